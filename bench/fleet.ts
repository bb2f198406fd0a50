// Fleet key distribution at scale: one server and many simulated host agents (one process, one mutual-TLS
// stream each) for staged rotation and push, and one real agent's socket Encrypt against server Encrypt.
//
//   TRUSTPLANE_BENCH_AGENTS=1000 node --import tsx bench/fleet.ts [--agents N] [--rounds R] [--seconds S]
//                                                                [--concurrency C] [--warmup S]
//
// Simulated agents enrol, stream and acknowledge exactly as `trustplane agent` does, but never open the
// sealed material. Loopback only. Must never leave a server, an agent or a temporary directory behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { parseArgs } from 'node:util';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { AgentClient } from '../src/clients/agent.ts';
import type { AckRequest, RingMessage } from '../src/shared/fleet-wire.ts';
import { makeTempDir, trustplaneBin, type TestServer } from '../test/helpers/server.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import type { LoadOptions, Outcome } from './lib/load-generator.ts';
import { machineCpu, ownCpuSeconds, processCpuSeconds, runLoadWithCpu, type LoadWithCpu } from './lib/process-cpu.ts';
import { count, fixed, printProblemBanner, printTable } from './lib/report.ts';
import { createSymmetricKey, judgeReply, keepAliveAgent, SignedJsonClient } from './lib/signed-json-client.ts';
import { forEachBounded, withDeadline } from './lib/concurrency.ts';
import {
  concurrencyFlag, DISTURBED_OTHER_CPU_PERCENT, MAX_REQUESTS_PER_MEASUREMENT, positiveNumber, REQUEST_TIMEOUT_MS, serverLogProblems, warmupFlag,
} from './lib/settings.ts';

const DEFAULT_AGENTS = 1000;
/** Past this, one process runs out of descriptors and ephemeral ports long before the server does. */
const MAX_AGENTS = 10_000;
const MAX_ROUNDS = 20;
const ENROLL_CONCURRENCY = 16;
const CONNECT_CONCURRENCY = 32;
/** Enrolment is rate-limited per source address (50/s): a throttled enrolment waits this long and tries again. */
const THROTTLED_RETRY_MS = 200;
const MAX_ENROLL_ATTEMPTS = 100;
const CONNECT_TIMEOUT_MS = 30_000;
/** As long as the real agent waits for an acknowledgement's answer (a rotation makes every agent ack at once). */
const ACK_TIMEOUT_MS = 30_000;
const PHASE_TIMEOUT_MS = 10 * 60_000;
const ROUND_TIMEOUT_MS = 5 * 60_000;
const AGENT_START_TIMEOUT_MS = 60_000;
const AGENT_STOP_GRACE_MS = 10_000;
const PLAINTEXT_BYTES = 64;
const SIMULATED_AGENT_VERSION = 'bench-sim';
const SERVER_ENCRYPT = 'server Encrypt (signed HTTP)';
const SOCKET_ENCRYPT = 'agent socket Encrypt';

interface Settings {
  agents: number;
  rounds: number;
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
}

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    agents: { type: 'string', default: process.env.TRUSTPLANE_BENCH_AGENTS ?? String(DEFAULT_AGENTS) },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
  } });
  const agents = positiveNumber('agents (or TRUSTPLANE_BENCH_AGENTS)', values.agents, true);
  if (agents > MAX_AGENTS) throw new Error(`--agents is capped at ${MAX_AGENTS}`);
  return { agents, rounds: Math.min(MAX_ROUNDS, positiveNumber('rounds', values.rounds, true)),
    seconds: positiveNumber('seconds', values.seconds, false), warmupSeconds: warmupFlag(values.warmup),
    concurrency: concurrencyFlag(values.concurrency) };
}

// ---- small helpers ---------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending list; NaN when it is empty. */
function percentile(sorted: number[], fraction: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1))];
}

function ascending(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Resident memory of `pid` in KiB (Linux /proc), or undefined. */
function residentKib(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith('VmRSS:'));
    return line ? Number(/(\d+)/.exec(line)?.[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** A progress line on stderr at most once a second, and at the end. */
function progressLine(label: string, total: number): (done: number) => void {
  const started = performance.now();
  let printedAt = started;
  return (done) => {
    const now = performance.now();
    if (done < total && now - printedAt < 1000) return;
    printedAt = now;
    const rate = done / Math.max((now - started) / 1000, 1e-3);
    process.stderr.write(`${label}: ${done}/${total} (${rate.toFixed(0)}/s, ${((now - started) / 1000).toFixed(1)} s)\n`);
  };
}



function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- the fleet's set-up, over signed calls ---------------------------------------------------------

async function fleetCall(client: SignedJsonClient, operation: string, input: Record<string, unknown>): Promise<Record<string, unknown>> {
  const reply = await client.call(`TrustPlaneFleet.${operation}`, input);
  if (reply.status !== 200) throw new Error(`TrustPlaneFleet.${operation} failed: ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body;
}

/** A class granted `keyId`, and a join token for `uses` hosts in it. */
async function classWithToken(fleet: SignedJsonClient, className: string, keyId: string, uses: number): Promise<string> {
  await fleetCall(fleet, 'CreateClass', { Name: className });
  await fleetCall(fleet, 'GrantKey', { Class: className, KeyId: keyId });
  const made = await fleetCall(fleet, 'CreateJoinToken', { Classes: [className], Uses: uses, TtlSeconds: 3600 });
  if (typeof made.Token !== 'string') throw new Error(`CreateJoinToken answered no token: ${JSON.stringify(made)}`);
  return made.Token;
}

// ---- simulated agents ------------------------------------------------------------------------------

interface Enrolment {
  hostId: string;
  serverName: string;
  tls: SecureContext;
}

interface EnrolStats {
  throttled: number;
}

/** Enrols one host as the agent does: a P-256 identity key, an X25519 key ring key, and the proof binding both to the token. */
async function enrollSimulatedHost(serverUrl: string, joinToken: string, name: string, stats: EnrolStats): Promise<Enrolment> {
  const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyRing = generateKeyPairSync('x25519');
  // The raw X25519 public key is the tail of its SubjectPublicKeyInfo.
  const hpkePublicKey = keyRing.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const proof = sign('sha256', Buffer.from(`trustplane-enroll-v1\n${joinToken}\n${hpkePublicKey}`), identity.privateKey);
  const body = JSON.stringify({ JoinToken: joinToken, PublicKey: identity.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    HpkePublicKey: hpkePublicKey, Proof: proof.toString('base64'), Name: name, AgentVersion: SIMULATED_AGENT_VERSION });
  for (let attempt = 1; attempt <= MAX_ENROLL_ATTEMPTS; attempt += 1) {
    const response = await fetch(new URL('/v1/fleet/enroll', serverUrl), { method: 'POST', body,
      headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    const reply = await response.json() as Record<string, unknown>;
    if (response.status === 200) {
      return { hostId: String(reply.HostId), serverName: String(reply.ServerName),
        tls: createSecureContext({ cert: String(reply.Certificate), key: identity.privateKey.export({ format: 'pem', type: 'pkcs8' }),
          ca: String(reply.CaCertificate), minVersion: 'TLSv1.3' }) };
    }
    if (reply.__type !== 'ThrottlingException') throw new Error(`enrolment failed: ${response.status} ${JSON.stringify(reply)}`);
    stats.throttled += 1;
    await delay(THROTTLED_RETRY_MS * (0.5 + Math.random()));
  }
  throw new Error(`enrolment still throttled after ${MAX_ENROLL_ATTEMPTS} attempts`);
}

/** What a round of rotation wants to hear from the agents. */
interface FleetObserver {
  onRing(agent: SimulatedAgent, message: RingMessage, arrivedAt: number): void;
  onPromoted(promoted: Array<{ KeyId: string; Version: number }>, answeredAt: number): void;
  onFailure(agent: SimulatedAgent, error: unknown): void;
}

/**
 * One enrolled host on one stream: acknowledges the hello with a full report and every ring with
 * what it now holds, one message at a time in order, as FleetClient does (a new connection per ack).
 */
class SimulatedAgent {
  readonly hostId: string;
  readonly #enrolment: Enrolment;
  readonly #port: number;
  readonly #observer: FleetObserver;
  readonly #held = new Map<string, Set<number>>();
  #revision = 0;
  #chain: Promise<void> = Promise.resolve();
  #stream: ReturnType<typeof httpsRequest> | undefined;
  #closing = false;
  #firstRing: { resolve(): void; reject(error: unknown): void } | undefined;

  constructor(enrolment: Enrolment, port: number, observer: FleetObserver) {
    this.hostId = enrolment.hostId;
    this.#enrolment = enrolment;
    this.#port = port;
    this.#observer = observer;
  }

  #tlsOptions() {
    return { host: '127.0.0.1', port: this.#port, servername: this.#enrolment.serverName, secureContext: this.#enrolment.tls,
      minVersion: 'TLSv1.3' as const, agent: false as const };
  }

  /** Opens the stream; resolves once the first key ring has arrived and been acknowledged. */
  connect(): Promise<void> {
    const firstRing = new Promise<void>((resolve, reject) => { this.#firstRing = { resolve, reject }; });
    const stream = httpsRequest({ ...this.#tlsOptions(), method: 'GET', path: '/v1/agent/stream',
      headers: { accept: 'text/event-stream', 'last-event-id': String(this.#revision) } }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        this.#fail(new Error(`stream refused: HTTP ${response.statusCode}`));
        return;
      }
      const parser = createParser({ onEvent: (event: EventSourceMessage) => {
        const arrivedAt = performance.now();
        this.#chain = this.#chain.then(() => this.#handle(event, arrivedAt)).catch((error: unknown) => this.#fail(error));
      } });
      response.setEncoding('utf8');
      response.on('data', (text: string) => parser.feed(text));
      response.on('end', () => this.#fail(new Error('the server ended the stream')));
      response.on('error', (error) => this.#fail(error));
    });
    stream.on('error', (error) => this.#fail(error));
    stream.end();
    this.#stream = stream;
    return firstRing;
  }

  /** Resolves when every message received so far has been handled and acknowledged. */
  settled(): Promise<void> {
    return this.#chain;
  }

  close(): void {
    this.#closing = true;
    this.#stream?.destroy();
  }

  #fail(error: unknown): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#stream?.destroy();
    if (this.#firstRing) {
      this.#firstRing.reject(error);
      this.#firstRing = undefined;
    } else {
      this.#observer.onFailure(this, error);
    }
  }

  async #handle(event: EventSourceMessage, arrivedAt: number): Promise<void> {
    const data = JSON.parse(event.data) as Record<string, unknown>;
    if (event.event === 'hello') {
      await this.#ack({ Revision: this.#revision, Holds: this.#holdings(), Full: true });
    } else if (event.event === 'revision') {
      this.#revision = Number(data.Revision);
    } else if (event.event === 'revoked') {
      throw new Error(`revoked: ${String(data.Reason)}`);
    } else if (event.event === 'ring') {
      await this.#applyRing(data as unknown as RingMessage, arrivedAt);
    }
  }

  async #applyRing(message: RingMessage, arrivedAt: number): Promise<void> {
    if (message.HostId !== this.hostId) throw new Error('a key ring for another host');
    this.#observer.onRing(this, message, arrivedAt);
    // What the real agent acknowledges after storing the sealed material (which this one never opens).
    const holds: Record<string, number[]> = {};
    for (const key of message.Keys) {
      const versions = this.#held.get(key.KeyId) ?? new Set<number>();
      for (const version of key.NewVersions) versions.add(version);
      this.#held.set(key.KeyId, versions);
      holds[key.KeyId] = [...versions].sort((a, b) => a - b);
    }
    for (const keyId of message.Removed) this.#held.delete(keyId);
    this.#revision = message.Revision;
    const reply = await this.#ack({ Revision: message.Revision, Holds: holds, Removed: message.Removed });
    const promoted = Array.isArray(reply.Promoted) ? reply.Promoted as Array<{ KeyId: string; Version: number }> : [];
    if (promoted.length > 0) this.#observer.onPromoted(promoted, performance.now());
    if (this.#firstRing) {
      this.#firstRing.resolve();
      this.#firstRing = undefined;
    }
  }

  #holdings(): Record<string, number[]> {
    return Object.fromEntries([...this.#held].map(([keyId, versions]) => [keyId, [...versions].sort((a, b) => a - b)]));
  }

  #ack(ack: AckRequest): Promise<Record<string, unknown>> {
    const payload = Buffer.from(JSON.stringify({ ...ack, AgentVersion: SIMULATED_AGENT_VERSION }));
    return new Promise((resolve, reject) => {
      const request = httpsRequest({ ...this.#tlsOptions(), method: 'POST', path: '/v1/agent/ack', timeout: ACK_TIMEOUT_MS,
        headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (response.statusCode !== 200) {
            reject(new Error(`ack refused: HTTP ${response.statusCode} ${text.slice(0, 200)}`));
            return;
          }
          try {
            resolve(JSON.parse(text) as Record<string, unknown>);
          } catch {
            reject(new Error(`ack answered without JSON: ${text.slice(0, 200)}`));
          }
        });
      });
      request.on('timeout', () => request.destroy(new Error(`ack unanswered within ${ACK_TIMEOUT_MS} ms`)));
      request.on('error', reject);
      request.end(payload);
    });
  }
}

// ---- staged rotation rounds ------------------------------------------------------------------------

interface RoundResult {
  version: number;
  /** Per agent: rotate call → arrival of the ring announcing the new version. */
  pushMs: number[];
  /** Rotate call → the answer to the acknowledgement that completed the set and promoted the version. */
  promotedMs: number;
  /** Rotate call → the last agent told the new default. */
  allToldMs: number;
  /** The server's own record: StartedAt → PromotedAt of the rotation. */
  serverPromotedMs?: number;
  serverCpuSeconds?: number;
  /** CPU of every process but the server and this one (and hypervisor steal), as % of one core. */
  otherCpuPercent?: number;
}

/** Watches one staged rotation of `keyId` from the agents' side, from the moment the rotate call is made. */
class RotationRound implements FleetObserver {
  readonly #keyId: string;
  readonly #previousDefault: number;
  readonly #agents: number;
  readonly #startedAt: number;
  readonly #pushed = new Map<string, number>();
  readonly #told = new Set<string>();
  promotedAt: number | undefined;
  allToldAt: number | undefined;
  #resolve: () => void = () => undefined;
  #reject: (error: Error) => void = () => undefined;
  /** Resolves once every agent was told the new default; rejects at the first agent that fails. */
  readonly done: Promise<void>;

  constructor(keyId: string, previousDefault: number, agents: number) {
    this.#keyId = keyId;
    this.#previousDefault = previousDefault;
    this.#agents = agents;
    this.done = new Promise((resolve, reject) => { this.#resolve = resolve; this.#reject = reject; });
    this.#startedAt = performance.now();
  }

  get startedAt(): number {
    return this.#startedAt;
  }

  /** How far the round got: agents that received the new version, and agents told it is the default. */
  describeProgress(): string {
    return `${this.#pushed.size}/${this.#agents} agents got the new version, ${this.#told.size}/${this.#agents} told it was promoted`;
  }

  pushLatencies(): number[] {
    return [...this.#pushed.values()].map((at) => at - this.#startedAt);
  }

  onRing(agent: SimulatedAgent, message: RingMessage, arrivedAt: number): void {
    const key = message.Keys.find((entry) => entry.KeyId === this.#keyId);
    if (!key) return;
    if (!this.#pushed.has(agent.hostId) && key.NewVersions.some((version) => version > this.#previousDefault)) {
      this.#pushed.set(agent.hostId, arrivedAt);
    }
    if (key.DefaultVersion > this.#previousDefault && !this.#told.has(agent.hostId)) {
      this.#told.add(agent.hostId);
      if (this.#told.size === this.#agents) {
        this.allToldAt = arrivedAt;
        this.#resolve();
      }
    }
  }

  onPromoted(promoted: Array<{ KeyId: string; Version: number }>, answeredAt: number): void {
    if (promoted.some((entry) => entry.KeyId === this.#keyId && entry.Version > this.#previousDefault)) this.promotedAt ??= answeredAt;
  }

  onFailure(agent: SimulatedAgent, error: unknown): void {
    this.#reject(new Error(`simulated agent ${agent.hostId} failed during the round: ${errorText(error)}`));
  }
}

/**
 * Forwards to the round being measured, if any, so agents made once serve every round. Keeps every
 * failure, whenever it happens: an agent lost after its round ended would otherwise stall the next one.
 */
class ObserverSwitch implements FleetObserver {
  current: FleetObserver | undefined;
  readonly failures: string[] = [];
  onRing(agent: SimulatedAgent, message: RingMessage, arrivedAt: number): void { this.current?.onRing(agent, message, arrivedAt); }
  onPromoted(promoted: Array<{ KeyId: string; Version: number }>, answeredAt: number): void { this.current?.onPromoted(promoted, answeredAt); }
  onFailure(agent: SimulatedAgent, error: unknown): void {
    this.failures.push(`${agent.hostId}: ${errorText(error)}`);
    this.current?.onFailure(agent, error);
  }
}

function epochMs(value: unknown): number | undefined {
  return typeof value === 'number' ? value * 1000 : undefined;
}

async function runRotationRound(fleet: SignedJsonClient, keyId: string, agents: SimulatedAgent[], observers: ObserverSwitch,
  serverPid: number | undefined): Promise<RoundResult> {
  if (observers.failures.length > 0) throw new Error(`simulated agents failed before the round: ${observers.failures.slice(0, 3).join('; ')}`);
  const before = await fleetCall(fleet, 'GetRotationStatus', { KeyId: keyId });
  if (before.State !== 'promoted') throw new Error(`a rotation of ${keyId} is already pending: ${JSON.stringify(before)}`);
  const cpuBefore = processCpuSeconds(serverPid);
  const machineBefore = machineCpu();
  const ownBefore = ownCpuSeconds();
  const round = new RotationRound(keyId, Number(before.DefaultVersion), agents.length);
  observers.current = round;
  const rotated = await fleetCall(fleet, 'RotateKeyStaged', { KeyId: keyId });
  const version = Number(rotated.PendingVersion ?? rotated.DefaultVersion);
  const progress = setInterval(() => process.stderr.write(`  ${((performance.now() - round.startedAt) / 1000).toFixed(0)} s: ` +
    `${round.describeProgress()}\n`), 5000);
  try {
    await withDeadline(round.done, ROUND_TIMEOUT_MS, () => `rotation to version ${version} (${round.describeProgress()})`);
  } finally {
    clearInterval(progress);
  }
  // Their acknowledgements of the promotion belong to this round, not the next.
  await Promise.all(agents.map((agent) => agent.settled()));
  const cpuAfter = processCpuSeconds(serverPid);
  const machineAfter = machineCpu();
  const ownSeconds = ownCpuSeconds() - ownBefore;
  const wallSeconds = (performance.now() - round.startedAt) / 1000;
  observers.current = undefined;
  if (observers.failures.length > 0) throw new Error(`simulated agents failed: ${observers.failures.slice(0, 3).join('; ')}`);
  const serverCpuSeconds = cpuBefore !== undefined && cpuAfter !== undefined ? cpuAfter - cpuBefore : undefined;
  const otherSeconds = machineBefore && machineAfter && serverCpuSeconds !== undefined
    ? Math.max(0, machineAfter.busySeconds - machineBefore.busySeconds - serverCpuSeconds - ownSeconds)
      + (machineAfter.stealSeconds - machineBefore.stealSeconds)
    : undefined;
  const after = await fleetCall(fleet, 'GetRotationStatus', { KeyId: keyId });
  if (after.State !== 'promoted' || Number(after.DefaultVersion) !== version) {
    throw new Error(`version ${version} was not promoted: ${JSON.stringify({ ...after, Acknowledged: undefined })}`);
  }
  const started = epochMs(after.StartedAt);
  const promoted = epochMs(after.PromotedAt);
  return { version, pushMs: round.pushLatencies(), promotedMs: (round.promotedAt ?? NaN) - round.startedAt,
    allToldMs: (round.allToldAt ?? NaN) - round.startedAt,
    serverPromotedMs: started !== undefined && promoted !== undefined ? promoted - started : undefined,
    serverCpuSeconds, otherCpuPercent: otherSeconds === undefined ? undefined : (100 * otherSeconds) / wallSeconds };
}

// ---- one real agent --------------------------------------------------------------------------------

interface RealAgent {
  pid: number | undefined;
  socketPath: string;
}

/** `trustplane agent` in its own temporary directory; stopped (SIGTERM, then SIGKILL) and the directory removed at shutdown. */
async function startRealAgent(lifecycle: BenchLifecycle, serverUrl: string, joinToken: string): Promise<RealAgent> {
  const home = makeTempDir('trustplane-bench-agent-');
  const removeHome = () => rmSync(home, { recursive: true, force: true });
  lifecycle.lastResort(removeHome);
  const socketPath = join(home, 'agent.sock');
  const child: ChildProcess = spawn(process.execPath, [trustplaneBin, 'agent', '--server', serverUrl, '--join-token', joinToken,
    '--state', join(home, 'state'), '--socket', socketPath, '--socket-mode', '600', '--name', 'bench-real-agent'], {
    env: { ...process.env, TRUSTPLANE_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const running = () => child.exitCode === null && child.signalCode === null;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  lifecycle.lastResort(() => { if (running()) child.kill('SIGKILL'); });
  lifecycle.defer(async () => {
    if (running()) {
      child.kill('SIGTERM');
      const outcome = await Promise.race([exited.then(() => 'exited'), delay(AGENT_STOP_GRACE_MS, 'timeout')]);
      if (outcome === 'timeout') {
        child.kill('SIGKILL');
        await exited;
      }
    }
    removeHome();
  });
  let output = '';
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString(); });
  const started = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output += `${line}\n`;
      if (line.startsWith('trustplane agent running as host')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the agent exited (${code}) before it was ready:\n${output}`)));
  });
  await withDeadline(started, AGENT_START_TIMEOUT_MS, 'starting trustplane agent');
  return { pid: child.pid, socketPath };
}

/** Waits until the agent's socket serves `keyId` at its default version. */
async function waitForKey(agent: RealAgent, keyId: string): Promise<void> {
  const client = new AgentClient(agent.socketPath);
  const deadline = performance.now() + AGENT_START_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const status = await client.call<{ Keys: Array<{ KeyId: string; DefaultVersion: number; Versions: number[] }> }>('status');
    const key = status.Keys.find((entry) => entry.KeyId === keyId);
    if (key?.Versions.includes(key.DefaultVersion)) return;
    await delay(50);
  }
  throw new Error(`the agent did not receive ${keyId} within ${AGENT_START_TIMEOUT_MS / 1000} s`);
}

// ---- report ----------------------------------------------------------------------------------------

interface EncryptMeasurement {
  operation: string;
  note: string;
  sampled: LoadWithCpu;
}

function printRounds(rounds: RoundResult[], agents: number): void {
  printTable(['round', 'version', 'push p50 ms', 'push p99 ms', 'push max ms', 'promoted ms', 'server says ms', 'all told ms', 'server CPU s', 'other'],
    rounds.map((round, index) => {
      const sorted = ascending(round.pushMs);
      return [String(index + 1), String(round.version), fixed(percentile(sorted, 0.5), 1), fixed(percentile(sorted, 0.99), 1),
        fixed(sorted.at(-1), 1), fixed(round.promotedMs, 0), fixed(round.serverPromotedMs, 0), fixed(round.allToldMs, 0),
        fixed(round.serverCpuSeconds, 2),
        `${fixed(round.otherCpuPercent, 0)}%${(round.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`];
    }), { indent: '  ' });
  const all = ascending(rounds.flatMap((round) => round.pushMs));
  const medianPromoted = percentile(ascending(rounds.map((round) => round.promotedMs)), 0.5);
  console.log('');
  console.log(`  push latency over ${count(all.length)} deliveries (${agents} agents x ${rounds.length} rounds): ` +
    `p50 ${fixed(percentile(all, 0.5), 1)} ms, p90 ${fixed(percentile(all, 0.9), 1)} ms, p99 ${fixed(percentile(all, 0.99), 1)} ms, ` +
    `max ${fixed(all.at(-1), 1)} ms`);
  console.log(`  rotate --staged -> promoted with all ${agents} acks: median ${fixed(medianPromoted, 0)} ms over ${rounds.length} rounds ` +
    `(${fixed(medianPromoted / agents, 2)} ms per agent)`);
  console.log('  push: RotateKeyStaged sent -> the ring announcing the new version arrives at an agent (TLS stream, parsed).');
  console.log('  promoted: RotateKeyStaged sent -> the answer to the last acknowledgement, which promoted the version;');
  console.log('  server says: the rotation\'s StartedAt -> PromotedAt; all told: until the last agent got the new default.');
  console.log('  other: CPU used meanwhile by every process but the server and this one (and steal), % of one core; ! = disturbed.');
  console.log('  Each acknowledgement is a new mutual-TLS connection, as the agent makes it (the real agent also GETs /v1/fleet/info first).');
}

function printEncrypt(measurements: EncryptMeasurement[]): void {
  const baseline = measurements.find((entry) => entry.operation === SERVER_ENCRYPT);
  printTable(['operation', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'serving CPU', 'client CPU', 'other', 'vs server'],
    measurements.map(({ operation, sampled }) => {
      const { result } = sampled;
      const ratio = !baseline ? '-' : baseline.operation === operation ? 'baseline'
        : `${(result.requestsPerSecond / baseline.sampled.result.requestsPerSecond).toFixed(2)}x`;
      return [operation, count(result.requestsPerSecond), fixed(result.p50Ms, 2), fixed(result.p99Ms, 2),
        result.errors === 0 ? '0' : `${result.errors} !!!`,
        `${fixed(sampled.serverCpuMicrosPerRequest, 0)} us/req ${fixed(sampled.serverCpuPercent, 0)}%`,
        `${fixed(sampled.clientCpuMicrosPerRequest, 0)} us/req ${fixed(sampled.clientCpuPercent, 0)}%`,
        `${fixed(sampled.otherCpuPercent, 0)}%${(sampled.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`, ratio];
    }), { indent: '  ' });
  console.log('');
  for (const entry of measurements) console.log(`  ${entry.operation}: ${entry.note}`);
  console.log('  serving CPU: CPU time of the process answering (server or agent) per request, and as % of one core.');
}

// ---- the run ---------------------------------------------------------------------------------------

/** `started.server` is set as soon as the server runs, so a failed run can still show what it logged. */
async function main(lifecycle: BenchLifecycle, started: { server?: TestServer }): Promise<number> {
  const settings = readSettings();
  const cpus = os.cpus();
  const problems: string[] = [];
  console.log(`trustplane fleet bench: node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} CPUs ` +
    `(${cpus[0]?.model.trim() ?? 'unknown'})`);
  console.log(`${settings.agents} simulated agents in this process, ${settings.rounds} staged rotations; the server, the agents and` +
    ` one real agent share these ${cpus.length} CPUs.`);
  console.log('');

  const server: TestServer = await lifecycle.startTrustplane('trustplane-bench-fleet-', {},
    { extraArgs: ['--fleet-listen', '127.0.0.1:0'] });
  started.server = server;
  const serverPid = server.process.pid;
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const adminAgent = keepAliveAgent(1);
  lifecycle.defer(() => adminAgent.destroy());
  const clientFor = (service: string, agent = adminAgent) => new SignedJsonClient({ endpoint: server.url, region: server.region, service,
    credentials, agent, timeoutMs: REQUEST_TIMEOUT_MS });
  const fleet = clientFor('trustplane');
  const kms = clientFor('kms');

  const keyId = await createSymmetricKey(kms, 'bench/fleet.ts');
  const joinToken = await classWithToken(fleet, 'bench', keyId, settings.agents);
  const info = await (await fetch(new URL('/v1/fleet/info', server.url))).json() as { FleetPort?: number };
  const fleetPort = Number(info.FleetPort);
  if (!Number.isInteger(fleetPort) || fleetPort <= 0) throw new Error(`the server names no fleet port: ${JSON.stringify(info)}`);

  // 1. Enrolment (unmeasured beyond its rate: it is throttled per source address by design).
  const enrolStats: EnrolStats = { throttled: 0 };
  const enrolments: Enrolment[] = [];
  const enrolProgress = progressLine('enrolling', settings.agents);
  const enrolStarted = performance.now();
  await withDeadline(forEachBounded(Array.from({ length: settings.agents }, (_, index) => index), ENROLL_CONCURRENCY, async (index) => {
    enrolments.push(await enrollSimulatedHost(server.url, joinToken, `bench-sim-${index}`, enrolStats));
    enrolProgress(enrolments.length);
  }), PHASE_TIMEOUT_MS, 'enrolling');
  const enrolSeconds = (performance.now() - enrolStarted) / 1000;

  // 2. Every stream open, its first ring acknowledged; the server's memory before and after.
  await delay(1000);
  const rssBefore = residentKib(serverPid);
  const observers = new ObserverSwitch();
  const agents = enrolments.map((enrolment) => new SimulatedAgent(enrolment, fleetPort, observers));
  lifecycle.defer(() => { for (const agent of agents) agent.close(); });
  const connectProgress = progressLine('connecting', settings.agents);
  const connectStarted = performance.now();
  let connected = 0;
  await withDeadline(forEachBounded(agents, CONNECT_CONCURRENCY, async (agent) => {
    await withDeadline(agent.connect(), CONNECT_TIMEOUT_MS, `connecting ${agent.hostId}`);
    connected += 1;
    connectProgress(connected);
  }), PHASE_TIMEOUT_MS, 'connecting');
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  await Promise.all(agents.map((agent) => agent.settled()));
  await delay(1000);
  const rssAfter = residentKib(serverPid);

  console.log('fleet set-up');
  console.log(`  enrolled ${settings.agents} hosts in ${enrolSeconds.toFixed(1)} s (${(settings.agents / enrolSeconds).toFixed(0)}/s, ` +
    `${enrolStats.throttled} throttled attempts retried; enrolment is limited to 50/s per source address)`);
  console.log(`  connected ${settings.agents} streams, first ring acknowledged by each, in ${connectSeconds.toFixed(1)} s ` +
    `(${(settings.agents / connectSeconds).toFixed(0)}/s, ${CONNECT_CONCURRENCY} at a time)`);
  if (rssBefore !== undefined && rssAfter !== undefined) {
    console.log(`  server RSS: ${(rssBefore / 1024).toFixed(1)} MiB before connecting, ${(rssAfter / 1024).toFixed(1)} MiB with ` +
      `${settings.agents} connected -> ${((rssAfter - rssBefore) / settings.agents).toFixed(1)} KiB per connected agent ` +
      '(RSS, garbage not yet collected included)');
  } else {
    console.log('  server RSS: unknown (no /proc)');
  }
  console.log('');

  // 3. Staged rotations: push latency, and rotate -> promotion with every acknowledgement.
  const rounds: RoundResult[] = [];
  for (let round = 1; round <= settings.rounds; round += 1) {
    process.stderr.write(`rotation round ${round}/${settings.rounds} ...\n`);
    const result = await runRotationRound(fleet, keyId, agents, observers, serverPid);
    process.stderr.write(`  version ${result.version} promoted after ${fixed(result.promotedMs, 0)} ms, ` +
      `push p50 ${fixed(percentile(ascending(result.pushMs), 0.5), 0)} ms\n`);
    rounds.push(result);
  }
  console.log(`staged rotation with ${settings.agents} agents`);
  printRounds(rounds, settings.agents);
  console.log('');
  if (observers.failures.length > 0) problems.push(`${observers.failures.length} simulated agent(s) failed: ${observers.failures[0]}`);
  for (const agent of agents) agent.close();

  // 4. One real agent: its socket Encrypt against the server's, same concurrency and duration.
  const socketToken = await classWithToken(fleet, 'bench-socket', keyId, 1);
  process.stderr.write('starting a real trustplane agent ...\n');
  const realAgent = await startRealAgent(lifecycle, server.url, socketToken);
  await waitForKey(realAgent, keyId);
  const loadOptions: LoadOptions = { concurrency: settings.concurrency, durationMs: settings.seconds * 1000,
    warmupMs: settings.warmupSeconds * 1000, maxRequests: MAX_REQUESTS_PER_MEASUREMENT };
  const plaintext = randomBytes(PLAINTEXT_BYTES);
  const socketClient = new AgentClient(realAgent.socketPath);
  const kmsLoadAgent = keepAliveAgent(settings.concurrency);
  lifecycle.defer(() => kmsLoadAgent.destroy());
  const kmsLoad = clientFor('kms', kmsLoadAgent);
  const measurements: EncryptMeasurement[] = [];
  process.stderr.write(`measuring ${SERVER_ENCRYPT} ...\n`);
  measurements.push({ operation: SERVER_ENCRYPT, note: `${PLAINTEXT_BYTES}-byte plaintext, no context; SigV4-signed by this process, ` +
    'keep-alive TCP on loopback', sampled: await runLoadWithCpu(async () => judgeReply(
    await kmsLoad.call('TrentService.Encrypt', { KeyId: keyId, Plaintext: plaintext.toString('base64') }),
    (body) => typeof body.CiphertextBlob === 'string'), loadOptions, serverPid) });
  process.stderr.write(`measuring ${SOCKET_ENCRYPT} ...\n`);
  measurements.push({ operation: SOCKET_ENCRYPT, note: `the same input to \`trustplane agent\`'s Unix socket (src/clients/agent.ts), ` +
    'no signing, keys cached on the host', sampled: await runLoadWithCpu(async (): Promise<Outcome> => {
    const reply = await socketClient.call('Encrypt', { KeyId: keyId, Plaintext: plaintext });
    return typeof reply.CiphertextBlob === 'string' ? { ok: true } : { ok: false, reason: 'no CiphertextBlob' };
  }, loadOptions, realAgent.pid) });
  console.log(`Encrypt: ${settings.concurrency} in flight, ${settings.seconds} s after ${settings.warmupSeconds} s warm-up each`);
  printEncrypt(measurements);

  for (const { operation, sampled } of measurements) {
    if (sampled.result.errors > 0) {
      problems.push(`${operation}: ${sampled.result.errors} failed (${sampled.result.errorReasons.slice(0, 3)
        .map(({ reason, count: times }) => `${times} x ${reason}`).join(', ')})`);
    }
    if ((sampled.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT) {
      console.log(`!!! other load above ${DISTURBED_OTHER_CPU_PERCENT}% of a core during ${operation}: that row is disturbed.`);
    }
  }
  const logProblems = printServerLogProblems(server);
  printProblemBanner('THESE FIGURES ARE NOT A VALID MEASUREMENT', problems, 78);
  return problems.length > 0 || logProblems > 0 ? 1 : 0;
}

/** Prints the first warnings and errors the server logged; returns how many there were. */
function printServerLogProblems(server: TestServer): number {
  const logProblems = serverLogProblems(server.output());
  if (logProblems.length > 0) {
    console.log('');
    console.log(`!!! the trustplane server logged ${logProblems.length} warning/error line(s); first ones:`);
    for (const line of logProblems.slice(0, 5)) console.log(`    ${line.slice(0, 300)}`);
  }
  return logProblems.length;
}

const lifecycle = new BenchLifecycle();
const started: { server?: TestServer } = {};
let exitCode = 1;
try {
  exitCode = await main(lifecycle, started);
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  if (started.server) printServerLogProblems(started.server);
} finally {
  await lifecycle.shutdown();
}
process.exit(exitCode);
