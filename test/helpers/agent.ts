// Starts a real `trustplane agent` process against a test server, and waits on what it reports
// through its socket. Waiting polls the socket's status for a condition (with a deadline); it
// never sleeps a fixed time.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { AgentClient } from '../../src/clients/agent.ts';
import { makeTempDir, trustplaneBin } from './server.ts';

export interface AgentKeyView { KeyId: string; Aliases: string[]; DefaultVersion: number; PendingVersion?: number; Versions: number[] }
export interface AgentStatusView { HostId: string; Revision: number; Connected: boolean; Keys: AgentKeyView[];
  Attestation?: { Status: string; Failures: Array<{ Id: string }>; VerifiedAt?: string } }

export interface TestAgent {
  hostId: string;
  stateDir: string;
  socketPath: string;
  client: AgentClient;
  process: ChildProcess;
  output(): string;
  status(): Promise<AgentStatusView>;
  /** Resolves with the first status satisfying `condition`; fails after `timeoutMs` with the last status seen. */
  waitFor(condition: (status: AgentStatusView) => boolean, what: string, timeoutMs?: number): Promise<AgentStatusView>;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** A port free right now on 127.0.0.1 (for a server that must come back on the same address). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startTestAgent(options: { serverUrl: string; joinToken?: string; stateDir?: string; name?: string;
  /** More agent flags (--tpm, --measure ...). */
  extraArgs?: string[] }): Promise<TestAgent> {
  const stateDir = options.stateDir ?? join(makeTempDir('trustplane-agent-'), 'state');
  const socketPath = join(stateDir, '..', 'agent.sock');
  const child = spawn(process.execPath, [trustplaneBin, 'agent', '--server', options.serverUrl, '--state', stateDir, '--socket', socketPath,
    '--socket-mode', '600', ...(options.name ? ['--name', options.name] : []), ...(options.extraArgs ?? [])], {
    env: { ...process.env, TRUSTPLANE_LOG_LEVEL: 'info', ...(options.joinToken ? { TRUSTPLANE_JOIN_TOKEN: options.joinToken } : {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (process.env.TRUSTPLANE_TEST_SERVER_LOG === '1') process.stderr.write(chunk);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const hostId = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`agent exited (${code}) before it was ready:\n${output}`));
    child.once('exit', onExit);
    child.stdout?.on('data', () => {
      const match = /running as host (h-[0-9a-f]+)/.exec(output);
      if (match) {
        child.off('exit', onExit);
        resolve(match[1]);
      }
    });
  });
  const client = new AgentClient(socketPath);
  const status = () => client.call<AgentStatusView>('status');
  return {
    hostId, stateDir, socketPath, client, process: child, exited, output: () => output, status,
    async waitFor(condition, what, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last: AgentStatusView | undefined;
      for (;;) {
        last = await status().catch(() => last);
        if (last && condition(last)) return last;
        if (Date.now() > deadline) throw new Error(`agent ${hostId}: timed out waiting for ${what}; last status ${JSON.stringify(last)}\n${output}`);
        await delay(25);
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      return exited;
    },
  };
}

export function heldVersions(status: AgentStatusView, keyId: string): number[] {
  return status.Keys.find((key) => key.KeyId === keyId)?.Versions ?? [];
}
