// CPU time used by another process (Linux /proc) and by this one, to tell which side of a
// loopback benchmark is saturated. Must never fail a bench: unknown figures are undefined.
import { readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** User + system CPU seconds used so far by `pid`, or undefined where /proc is unavailable. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at state; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds used so far by this process. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export interface MachineCpu {
  /** CPU seconds spent busy by every process on the machine (all cores). */
  busySeconds: number;
  /** CPU seconds the hypervisor gave to someone else. */
  stealSeconds: number;
}

/** Machine-wide CPU use so far from /proc/stat, or undefined where it is unavailable. */
export function machineCpu(): MachineCpu | undefined {
  try {
    const first = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    // cpu user nice system idle iowait irq softirq steal ...
    const [user, nice, system, , , irq, softirq, steal] = first.trim().split(/\s+/).slice(1).map(Number);
    return { busySeconds: (user + nice + system + irq + softirq) / CLOCK_TICKS_PER_SECOND,
      stealSeconds: (steal ?? 0) / CLOCK_TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}
