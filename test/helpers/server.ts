// Starts a real `trustplane server --dev` in a temporary home on a free port, and stops it.
// Tests drive it over HTTP exactly as users do; nothing here reaches into the server's memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const trustplaneBin = join(repoRoot, 'bin', 'trustplane.js');

export interface TestServer {
  url: string;
  home: string;
  accountId: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  process: ChildProcess;
  /** Everything the server wrote to stdout and stderr so far. */
  output(): string;
  /** Whether the server process has neither exited nor been killed. */
  isRunning(): boolean;
  /** Stops the server with SIGTERM and waits for it to exit. */
  stop(): Promise<number | null>;
  /** Kills the server with SIGKILL (crash) and waits for it to exit. */
  kill(): Promise<void>;
  /** Stops the server and removes its home. */
  dispose(): Promise<void>;
}

export interface StartOptions {
  home?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** false starts a production-style server: sealed, no credentials printed (accessKeyId and secretAccessKey are ''). */
  dev?: boolean;
}

export function makeTempDir(prefix = 'trustplane-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Starts a server (dev mode unless dev: false) and resolves once it prints its address (and, in dev mode, credentials). */
export async function startTestServer(options: StartOptions = {}): Promise<TestServer> {
  const home = options.home ?? makeTempDir();
  const dev = options.dev ?? true;
  const child = spawn(process.execPath, [trustplaneBin, 'server', ...(dev ? ['--dev'] : []), '--home', home, '--listen', '127.0.0.1:0',
    ...(options.extraArgs ?? [])], {
    env: { ...process.env, TRUSTPLANE_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    // TRUSTPLANE_TEST_SERVER_LOG=1 shows the servers' logs while debugging a test.
    if (process.env.TRUSTPLANE_TEST_SERVER_LOG === '1') process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));

  const fields = await new Promise<Record<string, string>>((resolveFields, reject) => {
    const found: Record<string, string> = {};
    const lines = createInterface({ input: child.stdout! });
    const fail = (code: number | null) => reject(new Error(`server exited (${code}) before it was ready:\n${output}`));
    child.once('exit', fail);
    lines.on('line', (line) => {
      output += `${line}\n`;
      const listening = /listening on (\S+)/.exec(line);
      if (listening) found.url = listening[1];
      const home = /account: (\d+)\s+region: (\S+)/.exec(line);
      if (home) { found.accountId = home[1]; found.region = home[2]; }
      const credentials = /AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=(\S+)/.exec(line);
      if (credentials) { found.accessKeyId = credentials[1]; found.secretAccessKey = credentials[2]; }
      if ((dev ? line.startsWith('Try:') && found.accessKeyId : found.accountId) && found.url) {
        child.off('exit', fail);
        resolveFields(found);
      }
    });
  });

  let stopped = false;
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<number | null> => {
    if (stopped || !isRunning()) return child.exitCode;
    stopped = true;
    child.kill('SIGTERM');
    return exited;
  };
  return {
    url: fields.url, home, accountId: fields.accountId, region: fields.region,
    accessKeyId: fields.accessKeyId ?? '', secretAccessKey: fields.secretAccessKey ?? '', process: child,
    output: () => output,
    isRunning,
    stop,
    async kill() {
      if (!isRunning()) return;
      stopped = true;
      child.kill('SIGKILL');
      await exited;
    },
    async dispose() {
      await stop();
      if (!options.home) rmSync(home, { recursive: true, force: true });
    },
  };
}
