// Memory of another process (Linux /proc), to report what a server holds per connected client.
// Must never fail a bench: an unknown figure is undefined.
import { readFileSync } from 'node:fs';

function statusField(pid: number | undefined, field: string): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith(`${field}:`));
    const value = line ? Number(/(\d+)/.exec(line)?.[1]) : NaN;
    return Number.isFinite(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** Resident memory of `pid` now, in KiB. */
export function residentKib(pid: number | undefined): number | undefined {
  return statusField(pid, 'VmRSS');
}

/** The highest resident memory `pid` has had so far, in KiB. */
export function peakResidentKib(pid: number | undefined): number | undefined {
  return statusField(pid, 'VmHWM');
}
