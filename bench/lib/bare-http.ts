// Starts and stops the bare-HTTP baseline in a child process, so it does not share the load
// generator's event loop (trustplane runs in its own process too). Must never listen beyond loopback.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface BareHttpServer {
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
  /** Synchronous last resort for exit handlers. */
  killNow(): void;
}

const childScript = fileURLToPath(new URL('./bare-http-child.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export async function startBareHttpServer(): Promise<BareHttpServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', childScript], {
    cwd: repoRoot, stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (code: number | null) => reject(new Error(`bare http server exited (${code}) before it was ready`));
    child.once('exit', fail);
    child.once('error', reject);
    lines.on('line', (line) => {
      const match = /listening on (\S+)/.exec(line);
      if (match) {
        child.off('exit', fail);
        resolve(match[1]);
      }
    });
  });
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    url, pid: child.pid,
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      await exited;
    },
    killNow() {
      if (alive()) child.kill('SIGKILL');
    },
  };
}
