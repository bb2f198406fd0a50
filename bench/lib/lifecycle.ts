// Cleanup for benches that start servers and temporary homes: everything registered is undone on
// success, on error, and on SIGINT/SIGTERM. Must never leave a server running or a home behind.
import { rmSync } from 'node:fs';
import { makeTempDir, startTestServer, type TestServer } from '../../test/helpers/server.ts';

/** How long a server gets to stop after SIGTERM before it is killed. */
const STOP_GRACE_MS = 15_000;

export class BenchLifecycle {
  readonly #stoppers: Array<() => Promise<void>> = [];
  readonly #lastResorts: Array<() => void> = [];
  #shuttingDown: Promise<void> | undefined;
  #signalsInstalled = false;

  /** Runs `stop` at shutdown (in reverse order of registration). */
  defer(stop: () => Promise<void> | void): void {
    this.#stoppers.push(async () => { await stop(); });
  }

  /** Runs `kill` synchronously at process exit, whatever happened before (SIGKILL, rm -rf). */
  lastResort(kill: () => void): void {
    this.#lastResorts.push(kill);
  }

  shutdown(): Promise<void> {
    this.#shuttingDown ??= (async () => {
      for (const stop of this.#stoppers.splice(0).reverse()) {
        try {
          await stop();
        } catch (error) {
          process.stderr.write(`cleanup failed: ${String(error)}\n`);
        }
      }
    })();
    return this.#shuttingDown;
  }

  /**
   * Stops everything on SIGINT/SIGTERM, and runs the last resorts at exit. Install it only once something
   * needs stopping: while it is installed, a signal waits for the event loop (a synchronous loop delays it).
   */
  installSignalHandlers(): void {
    if (this.#signalsInstalled) return;
    this.#signalsInstalled = true;
    process.on('exit', () => {
      for (const kill of this.#lastResorts) {
        try { kill(); } catch { /* exiting anyway */ }
      }
    });
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.on(signal, () => {
        process.stderr.write(`\n${signal}: stopping servers and removing temporary homes\n`);
        void this.shutdown().finally(() => process.exit(130));
      });
    }
  }

  /**
   * A trustplane server on 127.0.0.1 in its own temporary home; stopped and the home removed at shutdown.
   * Dev mode unless `dev: false` (then it starts uninitialised or sealed, and has no credentials yet).
   */
  async startTrustplane(prefix: string, env: Record<string, string>,
    options: { dev?: boolean; extraArgs?: string[] } = {}): Promise<TestServer> {
    this.installSignalHandlers();
    const home = makeTempDir(prefix);
    const removeHome = () => rmSync(home, { recursive: true, force: true });
    this.lastResort(removeHome);
    let server: TestServer;
    try {
      server = await startTestServer({ home, env, dev: options.dev, extraArgs: options.extraArgs });
    } catch (error) {
      removeHome();
      throw error;
    }
    this.lastResort(() => { if (server.isRunning()) server.process.kill('SIGKILL'); });
    this.defer(async () => {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), STOP_GRACE_MS); });
      const outcome = await Promise.race([server.stop(), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        process.stderr.write(`server ${server.url} did not stop within ${STOP_GRACE_MS} ms of SIGTERM; killing it\n`);
        await server.kill();
      }
      removeHome();
    });
    return server;
  }
}
