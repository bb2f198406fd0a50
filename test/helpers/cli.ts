// Runs the trustplane CLI (bin/trustplane.js) as a user does, against a test server or on a home,
// with nothing from the developer's own AWS configuration unless a test passes it in.
import assert from 'node:assert/strict';
import { run, type RunResult } from './exec.ts';
import { repoRoot, trustplaneBin, type TestServer } from './server.ts';

export interface CliCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface CliOptions {
  /** The whole environment of the command (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Written to standard input, which is then closed. */
  input?: string;
}

/** How a failed command rejects: the exit code and both outputs, as execFile's errors carry them. */
export class CliFailure extends Error {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;

  constructor(args: string[], result: RunResult) {
    super(`trustplane ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
    this.name = 'CliFailure';
    this.code = result.code;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
  }
}

/**
 * The environment for commands against `server`: its endpoint (TRUSTPLANE_ENDPOINT) and region, and
 * `credentials`, else the server's own dev credentials; a server without any (not dev) gets none,
 * not even the developer's. Shared AWS files are /dev/null.
 */
export function cliEnv(server: TestServer, credentials?: CliCredentials): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, TRUSTPLANE_ENDPOINT: server.url, AWS_REGION: server.region,
    AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' };
  delete env.AWS_PROFILE;
  delete env.AWS_SESSION_TOKEN;
  const chosen = credentials ?? (server.accessKeyId ? server : undefined);
  if (chosen) {
    env.AWS_ACCESS_KEY_ID = chosen.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = chosen.secretAccessKey;
  } else {
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
  }
  return env;
}

/** Runs `trustplane <args>` and resolves to its stdout; a non-zero exit rejects with a CliFailure. */
export async function trustplane(args: string[], options: CliOptions = {}): Promise<string> {
  const result = await run(process.execPath, [trustplaneBin, ...args], { env: options.env, input: options.input, cwd: repoRoot });
  if (result.code !== 0) throw new CliFailure(args, result);
  return result.stdout;
}

/** Runs a command that must succeed and parses its stdout as JSON (args should include --json). */
export async function trustplaneJson<T = Record<string, unknown>>(args: string[], options: CliOptions = {}): Promise<T> {
  return JSON.parse(await trustplane(args, options)) as T;
}

/** Runs a command that must fail and returns how: exit code, stdout and stderr. */
export async function trustplaneFailure(args: string[], options: CliOptions = {}): Promise<RunResult> {
  const result = await run(process.execPath, [trustplaneBin, ...args], { env: options.env, input: options.input, cwd: repoRoot });
  assert.notEqual(result.code, 0, `expected trustplane ${args.join(' ')} to fail:\n${result.stdout}`);
  return result;
}

/** Runs a command that must fail and returns its stderr. */
export async function trustplaneFails(args: string[], options: CliOptions = {}): Promise<string> {
  return (await trustplaneFailure(args, options)).stderr;
}
