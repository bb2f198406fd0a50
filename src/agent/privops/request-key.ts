// This host's privileged-operation request key: an X25519 key pair it makes once after enrolment (the private part stays in
// its state directory), registered with the server whenever the agent connects; the answer also says the host's classes.
// Must never send or log the private key; a registration that fails leaves the key as it is (retried on the next connection).
import { certificateValidity, generateHpkeKeyPair, signWithPemKey, x25519PublicKeyOf, zeroize } from '../../shared/crypto/index.ts';
import type { Logger } from '../../shared/log.ts';
import { PRIVOP_REQUEST_KEY_PATH, requestKeyProofMessage, type RequestKeyRegistration } from '../../shared/privop-encrypted-request.ts';
import type { AgentState } from '../state.ts';

/** setTimeout's longest delay. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RequestKeyStatus {
  KeyId?: string;
  Registered: boolean;
  Classes?: string[];
}

export class HostRequestKey {
  readonly #state: AgentState;
  readonly #call: (path: string, body: unknown) => Promise<Record<string, unknown>>;
  readonly #logger: Logger;
  readonly #hostId: string;
  #registered?: RequestKeyRegistration;
  #registering?: Promise<void>;
  #timer?: NodeJS.Timeout;
  #stopped = false;

  constructor(options: { state: AgentState; call: (path: string, body: unknown) => Promise<Record<string, unknown>>; logger: Logger; hostId: string }) {
    this.#state = options.state;
    this.#call = options.call;
    this.#logger = options.logger;
    this.#hostId = options.hostId;
  }

  /** Makes the key pair when this host has none (first start after enrolment, or after a wipe). */
  async ensure(): Promise<void> {
    const existing = this.#state.requestKey();
    if (existing) {
      zeroize(existing);
      return;
    }
    const pair = await generateHpkeKeyPair();
    try {
      this.#state.saveRequestKey(pair.privateKey);
    } finally {
      zeroize(pair.privateKey);
    }
    this.#logger.info('privileged-operation request key made');
  }

  /** The key pair (the caller zeroizes privateKey), or undefined before ensure(). */
  keyPair(): { publicKey: Buffer; privateKey: Buffer } | undefined {
    const privateKey = this.#state.requestKey();
    return privateKey ? { publicKey: x25519PublicKeyOf(privateKey), privateKey } : undefined;
  }

  /**
   * The host's classes as the server last said them, and when (undefined: never). Stale while the agent has not
   * connected since a change.
   */
  membership(): { classes: string[]; receivedAt?: Date } {
    const saved = this.#state.hostClasses();
    const at = Date.parse(saved?.ReceivedAt ?? '');
    return { classes: saved?.Classes ?? [], ...(Number.isFinite(at) ? { receivedAt: new Date(at) } : {}) };
  }

  status(): RequestKeyStatus {
    return { KeyId: this.#registered?.KeyId, Registered: this.#registered !== undefined, Classes: this.#state.hostClasses()?.Classes };
  }

  /** Registers the key (one registration at a time); failures are logged, and the next connection tries again. */
  register(): Promise<void> {
    this.#registering ??= this.#register().catch((error: unknown) => {
      this.#logger.warn({ err: error }, 'privileged-operation request key could not be registered; retrying on the next connection');
    }).finally(() => { this.#registering = undefined; });
    return this.#registering;
  }

  async #register(): Promise<void> {
    const pair = this.keyPair();
    if (!pair) return;
    zeroize(pair.privateKey);
    const keys = this.#state.privateKeys();
    zeroize(keys.keyRingKey);
    const proof = signWithPemKey(keys.identityKeyPem, requestKeyProofMessage(this.#hostId, pair.publicKey));
    const reply = await this.#call(PRIVOP_REQUEST_KEY_PATH, { PublicKey: pair.publicKey.toString('base64'), Proof: proof.toString('base64') }) as unknown as RequestKeyRegistration;
    if (!Array.isArray(reply.Classes) || typeof reply.Certificate !== 'string') throw new Error('the server answered the registration without a certificate');
    this.#state.saveHostClasses(reply.Classes.map(String), new Date());
    this.#registered = reply;
    this.#logger.info({ keyId: reply.KeyId, classes: reply.Classes }, 'privileged-operation request key registered');
    this.#scheduleRenewal(reply.Certificate);
  }

  /** Registers again two thirds of the way to the certificate's expiry: an agent that stays connected keeps a current certificate. */
  #scheduleRenewal(certificatePem: string): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    const { notBefore, notAfter } = certificateValidity(certificatePem);
    const due = notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
    this.#timer = setTimeout(() => { void this.register(); }, Math.min(MAX_TIMER_MS, Math.max(60_000, due - Date.now())));
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }
}
