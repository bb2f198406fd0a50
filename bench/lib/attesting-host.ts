// Simulated hosts attesting in push mode as `trustplane agent` does in software mode: ask for a
// challenge, send the event list and the operational report, read the verdict; again every interval.
// Each host keeps its own kept-alive mutual-TLS connection (or, when asked, opens one per call as the
// real agent does). Must never share a connection between hosts (each is authenticated by its own
// certificate), nor keep running after stop().
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { SecureContext } from 'node:tls';
import { setMaxListeners } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { MeasurementEvent } from '../../src/shared/attest-wire.ts';
import type { SimulatedEnrolment } from './simulated-hosts.ts';

/** As long as `trustplane agent` waits for an answer on the mutual-TLS listener (src/agent/fleet-client.ts). */
export const AGENT_REQUEST_TIMEOUT_MS = 30_000;

export interface AttestationRound {
  host: number;
  /** performance.now() when the challenge was asked for. */
  startedAt: number;
  challengeMs: number;
  /** performance.now() just before the evidence was sent, and when the verdict had been read. */
  evidenceSentAt: number;
  verdictAt: number;
  /** Evidence sent → verdict read, as the host sees it (includes this process's own delays). */
  evidenceMs: number;
  /** The server's own LatencyMs in the verdict (millisecond clock). */
  serverLatencyMs?: number;
  status: string;
  failureIds: string[];
  /** Whether the evidence carried a changed component. */
  tampered: boolean;
}

export class AttestingHost {
  readonly index: number;
  readonly hostId: string;
  readonly #enrolment: SimulatedEnrolment;
  readonly #port: number;
  readonly #agent: HttpsAgent;
  readonly #operationalJson: string;
  #events: MeasurementEvent[];
  #tampered = false;
  /** The first verdict this host received. */
  firstStatus: string | undefined;
  /** A new mutual-TLS connection for every call instead of the kept-alive one (the agent keeps its calls' connections alive). */
  freshConnections = false;

  constructor(index: number, enrolment: SimulatedEnrolment, port: number, events: readonly MeasurementEvent[], operationalJson: string) {
    this.index = index;
    this.hostId = enrolment.hostId;
    this.#enrolment = enrolment;
    this.#port = port;
    this.#events = [...events];
    this.#operationalJson = operationalJson;
    // One socket, kept alive between intervals (the server keeps idle agent connections for 65 s).
    this.#agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
  }

  /** From now on the host reports `event` too, as re-measurement does when a component changed. */
  tamper(event: MeasurementEvent): void {
    this.#events = [...this.#events, event];
    this.#tampered = true;
  }

  /**
   * Opens the host's kept-alive connection with the first call an agent makes (a challenge, left
   * unanswered: the nonce expires). A verifier busy serving others accepts new connections slowly.
   */
  async connect(): Promise<void> {
    const challenge = await this.#post('/v1/agent/attest/challenge', Buffer.from('{}'));
    if (typeof challenge.Nonce !== 'string') throw new Error('a challenge without a nonce');
  }

  /** One interval's work: challenge, then evidence; rejects on anything but a verdict. */
  async round(): Promise<AttestationRound> {
    const startedAt = performance.now();
    const challenge = await this.#post('/v1/agent/attest/challenge', Buffer.from('{}'));
    const challengedAt = performance.now();
    if (typeof challenge.Nonce !== 'string') throw new Error('a challenge without a nonce');
    const tampered = this.#tampered;
    const payload = Buffer.from(JSON.stringify({ Nonce: challenge.Nonce, Events: this.#events, OperationalJson: this.#operationalJson }));
    const evidenceSentAt = performance.now();
    const verdict = await this.#post('/v1/agent/attest/evidence', payload);
    const verdictAt = performance.now();
    if (typeof verdict.Status !== 'string') throw new Error('evidence answered without a status');
    const failures = Array.isArray(verdict.Failures) ? verdict.Failures as Array<{ Id?: unknown }> : [];
    this.firstStatus ??= verdict.Status;
    return { host: this.index, startedAt, challengeMs: challengedAt - startedAt, evidenceSentAt, verdictAt, evidenceMs: verdictAt - evidenceSentAt,
      serverLatencyMs: typeof verdict.LatencyMs === 'number' ? verdict.LatencyMs : undefined, status: verdict.Status,
      failureIds: failures.map((failure) => String(failure.Id)), tampered };
  }

  close(): void {
    this.#agent.destroy();
  }

  #post(path: string, payload: Buffer): Promise<Record<string, unknown>> {
    // Node's TLS takes a ready SecureContext (one per host, made at enrolment) though RequestOptions does not name it.
    const options: RequestOptions & { secureContext: SecureContext } = { host: '127.0.0.1', port: this.#port,
      servername: this.#enrolment.serverName, secureContext: this.#enrolment.tls, minVersion: 'TLSv1.3',
      agent: this.freshConnections ? false : this.#agent, method: 'POST', path, timeout: AGENT_REQUEST_TIMEOUT_MS,
      headers: { 'content-type': 'application/json', 'content-length': payload.length } };
    // Where a request that times out was stuck: a connection refused or never accepted reads differently from a slow answer.
    let stage = 'waiting for a socket';
    return new Promise((resolve, reject) => {
      const request = httpsRequest(options, (response) => {
        stage = 'reading the answer';
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Record<string, unknown>;
          try {
            body = JSON.parse(text) as Record<string, unknown>;
          } catch {
            reject(new Error(`${path}: HTTP ${response.statusCode} without JSON`));
            return;
          }
          if (response.statusCode !== 200) reject(new Error(`${path}: HTTP ${response.statusCode} ${String(body.__type ?? 'no __type')}`));
          else resolve(body);
        });
      });
      request.on('socket', (socket) => {
        if (!socket.connecting) {
          stage = 'waiting for the answer on a kept-alive connection';
          return;
        }
        stage = 'connecting (TCP)';
        socket.once('connect', () => { stage = 'in the TLS handshake'; });
        socket.once('secureConnect', () => { stage = 'waiting for the answer on a new connection'; });
      });
      request.on('timeout', () => request.destroy(new Error(`${path}: unanswered within ${AGENT_REQUEST_TIMEOUT_MS} ms, ${stage}`)));
      request.on('error', reject);
      request.end(payload);
    });
  }
}

export interface RoundError {
  at: number;
  host: number;
  reason: string;
}

/**
 * Runs hosts' attestation loops: each starts at a random point of a ramp (by default the first
 * interval), then waits the interval (± jitter) after each round, as the agent does. Keeps every
 * round and every error.
 */
export class AttestationDriver {
  readonly rounds: AttestationRound[] = [];
  readonly errors: RoundError[] = [];
  readonly #intervalMs: number;
  readonly #jitter: number;
  readonly #abort = new AbortController();
  readonly #loops: Array<Promise<void>> = [];
  #stopped = false;

  constructor(options: { intervalMs: number; jitter: number }) {
    this.#intervalMs = options.intervalMs;
    this.#jitter = options.jitter;
    // Every waiting host listens on this one signal: thousands of listeners are the point, not a leak.
    setMaxListeners(0, this.#abort.signal);
  }

  start(hosts: readonly AttestingHost[], rampMs = this.#intervalMs): void {
    for (const host of hosts) this.#loops.push(this.#loop(host, Math.random() * rampMs));
  }

  /** Stops every loop and waits for rounds in flight (each bounded by the request timeout). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    await Promise.all(this.#loops);
  }

  async #sleep(ms: number): Promise<void> {
    try {
      await delay(ms, undefined, { signal: this.#abort.signal });
    } catch {
      // Aborted: stopping.
    }
  }

  async #loop(host: AttestingHost, startAfterMs: number): Promise<void> {
    await this.#sleep(startAfterMs);
    while (!this.#stopped) {
      try {
        this.rounds.push(await host.round());
      } catch (error) {
        this.errors.push({ at: performance.now(), host: host.index, reason: error instanceof Error ? error.message : String(error) });
      }
      await this.#sleep(this.#intervalMs * (1 - this.#jitter + 2 * this.#jitter * Math.random()));
    }
  }
}
