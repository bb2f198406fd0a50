// The agent's side of the fleet: enrolment (with a join token, or with its TPM), then one long-lived mutual-TLS
// stream (Server-Sent Events) that resumes from the last revision, reconnects with jittered
// backoff, acknowledges what it stores, and renews the certificate at two thirds of its life.
// Must never accept key material not sealed to this host's key ring key for this revision.
import type { IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import {
  certificateValidity, endorsementKeyFingerprint, generateAsymmetricPair, generateHpkeKeyPair, hmac, hpkeOpen, importPrivateKeyDer, parseTpmPublic, privateKeyToPem, signMessage,
  zeroize, type HpkeKeyPair, type KeyPairDer,
} from '../shared/crypto/index.ts';
import {
  enrollmentProofMessage, fleetServerName, keyRingAad, KEY_RING_HPKE_INFO, renewalProofMessage, tpmEnrollmentProofMessage, tpmEnrollmentFinishMessage, unpackMaterial,
  type AckRequest, type HelloMessage, type RingMessage,
} from '../shared/fleet-wire.ts';
import { UserError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { AgentKeyRing } from './key-ring.ts';
import type { AgentIdentity, AgentState } from './state.ts';
import type { Tpm } from './tpm.ts';

export const AGENT_VERSION = '0.1.0';
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** The server sends a keep-alive every 15 s: silence for longer than this means a dead connection. */
const SILENCE_LIMIT_MS = 45_000;

interface JsonReply { status: number; body: Record<string, unknown> }

/** A reply body as an object; one that is not JSON is empty (the status then says what happened). */
function parseReply(status: number, text: string): JsonReply {
  try {
    return { status, body: JSON.parse(text) as Record<string, unknown> };
  } catch {
    return { status, body: {} };
  }
}

/** Reads a whole response of the mutual-TLS listener. */
function readReply(res: IncomingMessage): Promise<JsonReply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.on('end', () => resolve(parseReply(res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))));
    res.on('error', reject);
  });
}

async function postJson(url: string, body: unknown): Promise<JsonReply> {
  const response = await fetch(url, { method: body === undefined ? 'GET' : 'POST', headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  return parseReply(response.status, await response.text());
}

/** Times on the wire are epoch seconds (as in the AWS JSON protocol) or ISO text. */
function wireTime(value: unknown): string {
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(String(value));
  if (Number.isNaN(date.getTime())) throw new Error(`the server sent an unreadable time: ${String(value)}`);
  return date.toISOString();
}

function errorOf(reply: JsonReply): UserError {
  return new UserError(String(reply.body.__type ?? 'ServerError'), String(reply.body.message ?? `HTTP ${reply.status}`), reply.status);
}

/**
 * Makes this host's identity key (ECDSA P-256) and key ring key (X25519), has `enrol` get the
 * identity from the server with them (proving the first by signing what `proofMessage` says), and
 * keeps it all in the state directory.
 */
async function enrollWith(state: AgentState, serverUrl: string,
  enrol: (keys: { identity: KeyPairDer; keyRing: HpkeKeyPair; prove: (message: Buffer) => Buffer }) => Promise<JsonReply>): Promise<AgentIdentity> {
  const identityPair = await generateAsymmetricPair('ECC_NIST_P256');
  const keyRingPair = await generateHpkeKeyPair();
  try {
    const prove = (message: Buffer) => signMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPrivateKeyDer(identityPair.privateKeyDer),
      message);
    const reply = await enrol({ identity: identityPair, keyRing: keyRingPair, prove });
    if (reply.status !== 200) throw errorOf(reply);
    const identity: AgentIdentity = { HostId: String(reply.body.HostId), AccountId: String(reply.body.AccountId), ServerUrl: serverUrl,
      ServerName: String(reply.body.ServerName ?? fleetServerName(String(reply.body.AccountId))),
      FleetPort: reply.body.FleetPort === undefined ? undefined : Number(reply.body.FleetPort),
      Certificate: String(reply.body.Certificate), CaCertificate: String(reply.body.CaCertificate),
      CertificateExpiresAt: wireTime(reply.body.CertificateExpiresAt), CertificateReceivedAt: new Date().toISOString() };
    state.saveEnrolment(identity, privateKeyToPem(identityPair.privateKeyDer), keyRingPair.privateKey);
    return identity;
  } finally {
    zeroize(identityPair.privateKeyDer, keyRingPair.privateKey);
  }
}

/** Enrols this host with a join token: proves its identity key by signing the token (and its key ring key). */
export async function enroll(state: AgentState, serverUrl: string, joinToken: string, name: string): Promise<AgentIdentity> {
  return enrollWith(state, serverUrl, ({ identity, keyRing, prove }) => postJson(new URL('/v1/fleet/enroll', serverUrl).toString(), {
    JoinToken: joinToken, PublicKey: identity.publicKeyDer.toString('base64'), HpkePublicKey: keyRing.publicKey.toString('base64'),
    Proof: prove(enrollmentProofMessage(joinToken, keyRing.publicKey)).toString('base64'), Name: name, AgentVersion: AGENT_VERSION }));
}

/**
 * Enrols this host without a token, by its TPM, into the class an operator allowed its endorsement
 * key in: sends the EK (and its certificate) and the AK, activates the credential the server makes
 * for them, and returns the secret. The AK is then already trusted by the verifier.
 */
export async function enrollWithTpm(state: AgentState, serverUrl: string, tpm: Tpm, name: string): Promise<AgentIdentity> {
  const keys = await tpm.provision();
  const fingerprint = endorsementKeyFingerprint({ tpmPublic: parseTpmPublic(keys.ekPublic) });
  return enrollWith(state, serverUrl, async ({ identity, keyRing, prove }) => {
    const started = await postJson(new URL('/v1/fleet/enroll-tpm/start', serverUrl).toString(), { EkPublic: keys.ekPublic.toString('base64'),
      EkCertificate: keys.ekCertificate?.toString('base64'), AkPublic: keys.akPublic.toString('base64'),
      PublicKey: identity.publicKeyDer.toString('base64'), HpkePublicKey: keyRing.publicKey.toString('base64'),
      Proof: prove(tpmEnrollmentProofMessage(fingerprint, keyRing.publicKey)).toString('base64'), Name: name, AgentVersion: AGENT_VERSION });
    if (started.status !== 200) throw errorOf(started);
    const secret = await tpm.activateCredential(Buffer.from(String(started.body.CredentialBlob), 'base64'),
      Buffer.from(String(started.body.EncryptedSecret), 'base64'));
    try {
      const enrolmentId = String(started.body.EnrolmentId);
      const proof = hmac('sha256', secret, tpmEnrollmentFinishMessage(enrolmentId, identity.publicKeyDer, keyRing.publicKey));
      return await postJson(new URL('/v1/fleet/enroll-tpm/finish', serverUrl).toString(), { EnrolmentId: enrolmentId, Proof: proof.toString('base64') });
    } finally {
      zeroize(secret);
    }
  });
}

/** The kept-alive connections calls use (one per certificate: renewal makes a new one). */
const callAgent = () => new HttpsAgent({ keepAlive: true, maxSockets: 2, maxFreeSockets: 1, timeout: 60_000 });

export interface FleetClientEvents {
  /** The server says this host is removed or quarantined: wipe everything. */
  onRevoked(reason: string): void;
  onConnected(connected: boolean): void;
  /** A relayed privileged-operation request waits for this host: must return at once (the ring stream is in order behind it). */
  onPrivop?(data: Record<string, unknown>): void;
}

export class FleetClient {
  readonly #state: AgentState;
  readonly #ring: AgentKeyRing;
  readonly #logger: Logger;
  readonly #events: FleetClientEvents;
  #identity: AgentIdentity;
  #identityKeyPem: string;
  readonly #keyRingKey: Buffer;
  #stopped = false;
  #abort?: () => void;
  #wake?: () => void;
  #renewTimer?: NodeJS.Timeout;
  /** The TLS options of the current stream (port learnt for it), reused by calls made while it runs. */
  #streamOptions?: RequestOptions;
  /**
   * Calls (acks, evidence every interval) reuse kept-alive connections: a mutual-TLS handshake per
   * call cost the verifier two thirds more CPU per attestation round.
   */
  #callAgent = callAgent();
  connected = false;

  constructor(options: { state: AgentState; ring: AgentKeyRing; logger: Logger; events: FleetClientEvents; identity: AgentIdentity }) {
    this.#state = options.state;
    this.#ring = options.ring;
    this.#logger = options.logger;
    this.#events = options.events;
    this.#identity = options.identity;
    const keys = options.state.privateKeys();
    this.#identityKeyPem = keys.identityKeyPem;
    this.#keyRingKey = keys.keyRingKey;
  }

  get identity(): AgentIdentity {
    return this.#identity;
  }

  /** Runs until stop(): connect, stream, and on any failure wait (jittered, growing) and connect again. */
  async run(): Promise<void> {
    this.#scheduleRenewal();
    let failures = 0;
    while (!this.#stopped) {
      const started = Date.now();
      try {
        await this.#stream();
      } catch (error) {
        if (this.#stopped) break;
        if (error instanceof UserError && (error.code === 'HostRevokedException')) {
          this.#events.onRevoked(error.message);
          return;
        }
        this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'fleet connection failed');
      } finally {
        this.#setConnected(false);
        this.#streamOptions = undefined;
      }
      if (this.#stopped) break;
      // A connection that lived a while resets the backoff: the server was there.
      failures = Date.now() - started > 10_000 ? 1 : failures + 1;
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures, 16));
      await this.#sleep(Math.random() * ceiling);
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#callAgent.destroy();
    clearTimeout(this.#renewTimer);
    this.#abort?.();
    this.#wake?.();
    zeroize(this.#keyRingKey);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => { clearTimeout(timer); resolve(); };
    });
  }

  #setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.#events.onConnected(connected);
  }

  /** The mutual-TLS options: our certificate, only the account's CA, and the account's listener name. */
  async #tlsOptions(): Promise<RequestOptions> {
    const base = new URL(this.#identity.ServerUrl);
    const info = await postJson(new URL('/v1/fleet/info', base).toString(), undefined).catch(() => undefined);
    const port = Number(info?.body.FleetPort ?? this.#identity.FleetPort);
    if (!Number.isInteger(port) || port <= 0) throw new Error('the server did not say where host agents connect');
    return { host: base.hostname, port, servername: this.#identity.ServerName, cert: this.#identity.Certificate,
      key: this.#identityKeyPem, ca: this.#identity.CaCertificate, minVersion: 'TLSv1.3', agent: false };
  }

  /** One JSON call on the mutual-TLS listener (attestation uses it too); typed errors when the server refused. */
  async call(path: string, body: unknown): Promise<Record<string, unknown>> {
    const options = this.#streamOptions ?? await this.#tlsOptions();
    const payload = Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest({ ...options, agent: this.#callAgent, method: 'POST', path,
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: 30_000 }, (res) => {
        readReply(res).then((reply) => (reply.status === 200 ? resolve(reply.body) : reject(errorOf(reply))), reject);
      });
      req.on('timeout', () => req.destroy(new Error(`${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async #ack(ack: AckRequest): Promise<void> {
    await this.call('/v1/agent/ack', { ...ack, AgentVersion: AGENT_VERSION });
  }

  /** One stream: resolves when the server ends it, rejects on errors (typed, when the server said why). */
  async #stream(): Promise<void> {
    const options = await this.#tlsOptions();
    // Acks and renewals on this stream go where it went: no second lookup of the port per call.
    this.#streamOptions = options;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(silence);
        if (error) reject(error);
        else resolve();
      };
      let silence: NodeJS.Timeout | undefined;
      const req = httpsRequest({ ...options, method: 'GET', path: '/v1/agent/stream',
        headers: { accept: 'text/event-stream', 'last-event-id': String(this.#ring.revision) } }, (res) => {
        if (res.statusCode !== 200) {
          readReply(res).then((reply) => finish(errorOf(reply)), finish);
          return;
        }
        const resetSilence = () => {
          clearTimeout(silence);
          silence = setTimeout(() => req.destroy(new Error('no keep-alive from the server: reconnecting')), SILENCE_LIMIT_MS);
        };
        resetSilence();
        // Messages are handled one at a time, in order.
        let chain = Promise.resolve();
        const parser = createParser({
          onEvent: (event: EventSourceMessage) => {
            // Not part of the key ring: handed off at once, never queued behind (or ahead of) ring messages.
            if (event.event === 'privop') {
              this.#privop(event.data);
              return;
            }
            chain = chain.then(() => this.#handle(event)).catch((error: unknown) => {
              req.destroy(error instanceof Error ? error : new Error(String(error)));
            });
          },
          onComment: () => resetSilence(),
        });
        res.setEncoding('utf8');
        res.on('data', (text: string) => { resetSilence(); parser.feed(text); });
        res.on('end', () => { void chain.then(() => finish(), finish); });
        res.on('error', finish);
      });
      this.#abort = () => req.destroy();
      req.on('error', finish);
      req.end();
    });
  }

  #privop(text: string): void {
    try {
      this.#events.onPrivop?.(JSON.parse(text) as Record<string, unknown>);
    } catch (error) {
      this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'unreadable privop event ignored');
    }
  }

  async #handle(event: EventSourceMessage): Promise<void> {
    const data = JSON.parse(event.data) as Record<string, unknown>;
    if (event.event === 'hello') {
      const hello = data as unknown as HelloMessage;
      if (hello.HostId !== this.#identity.HostId) throw new Error('the server greeted another host');
      this.#setConnected(true);
      // Converge: the server learns exactly what this host holds (a crash may have cut an earlier ack).
      await this.#ack({ Revision: this.#ring.revision, Holds: this.#ring.holdings(), Full: true });
      return;
    }
    if (event.event === 'revoked') {
      throw new UserError('HostRevokedException', String(data.Reason ?? 'revoked'), 403);
    }
    if (event.event === 'revision') {
      this.#ring.noteRevision(Number(data.Revision));
      this.#save();
      return;
    }
    if (event.event === 'ring') await this.#applyRing(data as unknown as RingMessage);
  }

  async #applyRing(message: RingMessage): Promise<void> {
    if (message.HostId !== this.#identity.HostId) throw new Error('a key ring for another host');
    let packed: Buffer | undefined;
    try {
      if (message.Sealed) {
        packed = await hpkeOpen(this.#keyRingKey, { enc: Buffer.from(message.Sealed.Enc, 'base64'),
          ciphertext: Buffer.from(message.Sealed.Ciphertext, 'base64') }, KEY_RING_HPKE_INFO, keyRingAad(this.#identity.HostId, message.Revision));
      }
      const materials = packed ? unpackMaterial(packed) : [];
      const announced = new Set(message.Keys.flatMap((key) => key.NewVersions.map((version) => `${key.KeyId}/${version}`)));
      if (materials.length !== announced.size || !materials.every((entry) => announced.has(`${entry.keyId}/${entry.version}`))) {
        throw new Error('the sealed material does not match the versions the message announces');
      }
      const applied = this.#ring.apply(message, materials);
      this.#save();
      this.#logger.info({ revision: message.Revision, keys: message.Keys.length, removed: message.Removed.length }, 'key ring updated');
      await this.#ack({ Revision: message.Revision, Holds: applied.holds, Removed: applied.removed });
    } finally {
      zeroize(packed);
    }
  }

  #save(): void {
    const plaintext = this.#ring.serialize(this.#identity.HostId);
    try {
      this.#state.writeCache(this.#identity.HostId, plaintext);
    } finally {
      zeroize(plaintext);
    }
  }

  /**
   * Renews two thirds of the way from receipt to expiry (not from notBefore, which the CA backdates
   * for clock skew); checked again every minute at most, for clock jumps.
   */
  #scheduleRenewal(): void {
    const validity = certificateValidity(this.#identity.Certificate);
    const from = Date.parse(this.#identity.CertificateReceivedAt ?? '') || validity.notBefore.getTime();
    const to = validity.notAfter.getTime();
    const at = from + (to - from) * (2 / 3);
    const wait = Math.max(0, Math.min(at - Date.now(), 60_000));
    this.#renewTimer = setTimeout(() => {
      if (Date.now() < at) { this.#scheduleRenewal(); return; }
      this.#renew().then(() => this.#scheduleRenewal(), (error: unknown) => {
        this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'certificate renewal failed; retrying in a minute');
        this.#renewTimer = setTimeout(() => this.#scheduleRenewal(), 60_000);
      });
    }, wait);
    this.#renewTimer.unref();
  }

  async #renew(): Promise<void> {
    const pair = await generateAsymmetricPair('ECC_NIST_P256');
    try {
      const proof = signMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPrivateKeyDer(pair.privateKeyDer),
        renewalProofMessage(this.#identity.HostId));
      const reply = await this.call('/v1/agent/renew', { PublicKey: pair.publicKeyDer.toString('base64'), Proof: proof.toString('base64') });
      const identity = { ...this.#identity, Certificate: String(reply.Certificate), CertificateExpiresAt: wireTime(reply.CertificateExpiresAt),
        CertificateReceivedAt: new Date().toISOString() };
      const pem = privateKeyToPem(pair.privateKeyDer);
      this.#state.saveRenewal(identity, pem);
      this.#identity = identity;
      this.#identityKeyPem = pem;
      this.#streamOptions = undefined;
      // Kept-alive connections still present the old certificate, which the server now refuses.
      this.#callAgent.destroy();
      this.#callAgent = callAgent();
      this.#logger.info({ notAfter: identity.CertificateExpiresAt }, 'host certificate renewed');
      // The stream still runs on the old certificate, which the server no longer accepts: reconnect with the new one.
      this.#abort?.();
    } finally {
      zeroize(pair.privateKeyDer);
    }
  }
}
