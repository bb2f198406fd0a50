// Times a piece of work in a loop for a fixed duration: synchronous work in slices that yield to the
// event loop (so a signal still stops the bench), or asynchronous work one at a time. Must never run
// unbounded: the clock and an iteration cap both end a loop.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { machineCpu, ownCpuSeconds } from './process-cpu.ts';

const SLICE_MS = 50;
const MAX_ITERATIONS = 50_000_000;

export interface TimedLoopResult {
  iterations: number;
  seconds: number;
  perSecond: number;
  /** Wall time per iteration. */
  microsEach: number;
  /** CPU of this process per iteration (synchronous loops), or of the whole machine (asynchronous ones, which wait on others). */
  cpuMicrosEach?: number;
}

function result(iterations: number, seconds: number, cpuSeconds: number | undefined): TimedLoopResult {
  return { iterations, seconds, perSecond: iterations / seconds, microsEach: (1e6 * seconds) / Math.max(1, iterations),
    cpuMicrosEach: cpuSeconds === undefined ? undefined : (1e6 * cpuSeconds) / Math.max(1, iterations) };
}

/** Runs `step` (synchronous) for `warmupSeconds` unrecorded, then `seconds` recorded; CPU is this process's. */
export async function timeSyncLoop(step: (iteration: number) => void, seconds: number, warmupSeconds = 0.3): Promise<TimedLoopResult> {
  let iteration = 0;
  const run = async (durationSeconds: number): Promise<number> => {
    const deadline = performance.now() + durationSeconds * 1000;
    let done = 0;
    while (performance.now() < deadline && done < MAX_ITERATIONS) {
      const sliceEnd = Math.min(deadline, performance.now() + SLICE_MS);
      while (performance.now() < sliceEnd) {
        step(iteration);
        iteration += 1;
        done += 1;
      }
      await yieldToEventLoop();
    }
    return done;
  };
  if (warmupSeconds > 0) await run(warmupSeconds);
  const cpuBefore = ownCpuSeconds();
  const started = performance.now();
  const done = await run(seconds);
  return result(done, (performance.now() - started) / 1000, ownCpuSeconds() - cpuBefore);
}

/** Runs `step` (asynchronous, one at a time) for `seconds`; CPU is the whole machine's busy time (undefined without /proc). */
export async function timeAsyncLoop(step: (iteration: number) => Promise<void>, seconds: number): Promise<TimedLoopResult> {
  const machineBefore = machineCpu();
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let done = 0;
  while (performance.now() < deadline && done < MAX_ITERATIONS) {
    await step(done);
    done += 1;
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const machineAfter = machineCpu();
  return result(done, wallSeconds, machineBefore && machineAfter ? machineAfter.busySeconds - machineBefore.busySeconds : undefined);
}
