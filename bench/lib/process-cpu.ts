// CPU time used by another process (Linux /proc) and by this one, to tell which side of a
// loopback benchmark is saturated. Must never fail a bench: unknown figures are undefined.
import { readFileSync } from 'node:fs';
import { runLoad, type LoadOptions, type LoadResult, type Outcome } from './load-generator.ts';

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

export interface LoadWithCpu {
  result: LoadResult;
  /** CPU of the serving process per request, and as % of one core (undefined without /proc). */
  serverCpuMicrosPerRequest?: number;
  serverCpuPercent?: number;
  /** CPU of this load generator, likewise. */
  clientCpuMicrosPerRequest?: number;
  clientCpuPercent: number;
  /** Every other process on the machine, and hypervisor steal, as % of one core. */
  otherCpuPercent?: number;
}

/**
 * Runs the load with CPU sampled around the whole call, warm-up included: the serving process's
 * (`serverPid`), this one's, and everything else's. Per-request figures divide by the requests in that
 * window, a warm-up's estimated at the measured rate (it is not counted); undefined when there were none.
 */
export async function runLoadWithCpu(issue: () => Promise<Outcome>, options: LoadOptions, serverPid: number | undefined): Promise<LoadWithCpu> {
  const machineBefore = machineCpu();
  const serverBefore = processCpuSeconds(serverPid);
  const clientBefore = ownCpuSeconds();
  const wallStart = performance.now();
  const result = await runLoad(issue, options);
  const wallSeconds = (performance.now() - wallStart) / 1000;
  const clientSeconds = ownCpuSeconds() - clientBefore;
  const serverAfter = processCpuSeconds(serverPid);
  const machineAfter = machineCpu();
  const requests = options.warmupMs > 0 ? result.completed * (wallSeconds / result.seconds) : result.completed;
  const serverSeconds = serverBefore !== undefined && serverAfter !== undefined ? serverAfter - serverBefore : undefined;
  const otherSeconds = machineBefore && machineAfter && serverSeconds !== undefined
    ? Math.max(0, machineAfter.busySeconds - machineBefore.busySeconds - serverSeconds - clientSeconds)
      + (machineAfter.stealSeconds - machineBefore.stealSeconds)
    : undefined;
  const perRequest = (seconds: number | undefined) => (seconds === undefined || requests === 0 ? undefined : (1e6 * seconds) / requests);
  return {
    result,
    serverCpuMicrosPerRequest: perRequest(serverSeconds),
    serverCpuPercent: serverSeconds === undefined ? undefined : (100 * serverSeconds) / wallSeconds,
    clientCpuMicrosPerRequest: perRequest(clientSeconds),
    clientCpuPercent: (100 * clientSeconds) / wallSeconds,
    otherCpuPercent: otherSeconds === undefined ? undefined : (100 * otherSeconds) / wallSeconds,
  };
}
