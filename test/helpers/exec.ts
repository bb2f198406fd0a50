// Runs a program the way tests judge it: never throws on a failed command, the caller looks at the
// exit code and output. And the one rule for tools a test needs but the machine may lack.
import { execFile } from 'node:child_process';

export interface RunResult {
  /** The exit code; -1 when the program could not start, timed out or was killed (the reason is in stderr). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to the program's standard input, which is then closed. */
  input?: string;
  timeoutMs?: number;
}

export function run(file: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env: options.env, cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr: error && code === -1 ? `${stderr}${error.message}` : stderr });
      });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/**
 * What a test does when a tool it needs is missing: skip with the reason, unless
 * TRUSTPLANE_REQUIRE_ALL=1, where a missing tool is a failure.
 */
export function skipOrFail(problem: string): { skip: string } {
  if (process.env.TRUSTPLANE_REQUIRE_ALL === '1') throw new Error(`${problem}; TRUSTPLANE_REQUIRE_ALL=1 forbids skipping`);
  return { skip: problem };
}
