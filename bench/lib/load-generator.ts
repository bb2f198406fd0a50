// A closed-loop load generator: C requests in flight, each replaced as soon as it completes,
// for a fixed time (and never more than a fixed count). Must never run unbounded or retry.

/** What one request reports back: ok, or a short reason to tally. */
export type Outcome = { ok: true } | { ok: false; reason: string };

export interface LoadOptions {
  concurrency: number;
  /** Measured phase length. */
  durationMs: number;
  /** Unrecorded phase before it, so sockets, JIT and caches are warm. */
  warmupMs: number;
  /** Hard cap on measured requests, whatever the clock says. */
  maxRequests: number;
}

/** Error reasons with their counts, most frequent first. */
export type ErrorReasons = Array<{ reason: string; count: number }>;

export interface LoadResult {
  completed: number;
  ok: number;
  errors: number;
  errorReasons: ErrorReasons;
  seconds: number;
  /** Successful requests per second over the measured phase. */
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1);
  return sorted[Math.max(0, index)];
}

async function runPhase(issue: () => Promise<Outcome>, concurrency: number, durationMs: number, maxRequests: number,
  record: boolean) {
  const latencies = new Float64Array(record ? maxRequests : 0);
  const reasons = new Map<string, number>();
  let started = 0;
  let completed = 0;
  let ok = 0;
  const begin = performance.now();
  const deadline = begin + durationMs;

  const worker = async (): Promise<void> => {
    while (started < maxRequests && performance.now() < deadline) {
      started += 1;
      const sent = performance.now();
      let outcome: Outcome;
      try {
        outcome = await issue();
      } catch (error) {
        outcome = { ok: false, reason: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
      }
      if (record) latencies[completed] = performance.now() - sent;
      completed += 1;
      if (outcome.ok) ok += 1;
      else reasons.set(outcome.reason, (reasons.get(outcome.reason) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - begin) / 1000;
  return { latencies: latencies.subarray(0, completed), completed, ok, reasons, seconds };
}

function sortReasons(reasons: Map<string, number>): ErrorReasons {
  return [...reasons].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count);
}

/** The reasons of several runs added up, most frequent first. */
export function mergeReasons(runs: Iterable<ErrorReasons>): ErrorReasons {
  const reasons = new Map<string, number>();
  for (const run of runs) for (const { reason, count } of run) reasons.set(reason, (reasons.get(reason) ?? 0) + count);
  return sortReasons(reasons);
}

/** Warms up, then measures `issue` under constant concurrency. Latency includes client-side signing. */
export async function runLoad(issue: () => Promise<Outcome>, options: LoadOptions): Promise<LoadResult> {
  if (options.warmupMs > 0) await runPhase(issue, options.concurrency, options.warmupMs, options.maxRequests, false);
  const phase = await runPhase(issue, options.concurrency, options.durationMs, options.maxRequests, true);
  const sorted = phase.latencies.slice().sort();
  return {
    completed: phase.completed, ok: phase.ok, errors: phase.completed - phase.ok, errorReasons: sortReasons(phase.reasons),
    seconds: phase.seconds, requestsPerSecond: phase.ok / phase.seconds,
    p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99),
  };
}
