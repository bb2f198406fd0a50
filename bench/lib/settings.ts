// What every bench shares about its own running: flag parsing, the limits of a load measurement, and
// reading a server's log. Must never accept a flag that would make a run unbounded.

export const AUDIT_OFF_NOTICE = 'TRUSTPLANE_AUDIT=off';

/** A request still unanswered after this long counts as an error. */
export const REQUEST_TIMEOUT_MS = 10_000;
/** Hard cap on the requests of one measured phase, whatever its duration. */
export const MAX_REQUESTS_PER_MEASUREMENT = 2_000_000;
/** Other load above this (% of one core) during a measurement makes its figures suspect. */
export const DISTURBED_OTHER_CPU_PERCENT = 15;
const MAX_CONCURRENCY = 1024;

export function positiveNumber(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${text}`);
  }
  return value;
}

/** --concurrency: requests in flight, a positive integer up to 1024. */
export function concurrencyFlag(text: string): number {
  const concurrency = positiveNumber('concurrency', text, true);
  if (concurrency > MAX_CONCURRENCY) throw new Error(`--concurrency is capped at ${MAX_CONCURRENCY}`);
  return concurrency;
}

/** --warmup: unrecorded seconds before a measurement, 0 for none. */
export function warmupFlag(text: string): number {
  return Number(text) === 0 ? 0 : positiveNumber('warmup', text, false);
}

/** Warnings and errors a server logged, except the notices it logs by design (dev mode, and `expected`). */
export function serverLogProblems(output: string, expected: string[] = []): string[] {
  const notices = ['DEV MODE', ...expected];
  return output.split('\n').filter((line) => {
    if (!line.startsWith('{')) return false;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      const msg = String(entry.msg);
      return (entry.level ?? 0) >= 40 && !notices.some((notice) => msg.startsWith(notice));
    } catch {
      return false;
    }
  });
}
