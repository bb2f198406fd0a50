// This host's attested certificate: asked for (a new key pair made here, a CSR sent) once the verdict
// affirms, renewed two thirds of the way through its life, dropped when the host is quarantined (the
// verifier revoked it) and asked for again once an operator cleared the quarantine and it affirms.
// Must never send or return the private key: only the certificate and its chain leave this module.
import { createCertificateRequest, generateAsymmetricPair, privateKeyToPem, zeroize } from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import type { JsonCall, Verdict } from './attestation.ts';
import type { CertificateVerifier } from './certificate-verifier.ts';
import type { AgentState, AttestedCertificateState } from './state.ts';

/** Renewal is re-checked at least this often, for verdicts that come rarely (long class intervals). */
const CHECK_EVERY_MS = 30_000;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 5 * 60_000;

export interface HostCertificateView {
  Certificate: string;
  Chain: string[];
  Serial: string;
  NotAfter: string;
}

export class HostCertificates {
  readonly #state: AgentState;
  readonly #call: JsonCall;
  readonly #logger: Logger;
  readonly #hostId: string;
  readonly #verifier: CertificateVerifier;
  #current?: AttestedCertificateState;
  #verdict?: Verdict;
  /** A certificate kept from an earlier run may have been revoked while the agent was down: checked once. */
  #checked = false;
  #running?: Promise<void>;
  #failures = 0;
  #retryAt = 0;
  #timer?: NodeJS.Timeout;
  #stopped = false;

  constructor(options: { state: AgentState; call: JsonCall; logger: Logger; hostId: string; verifier: CertificateVerifier }) {
    this.#state = options.state;
    this.#call = options.call;
    this.#logger = options.logger;
    this.#hostId = options.hostId;
    this.#verifier = options.verifier;
    try {
      this.#current = this.#state.attestedCertificate(this.#hostId)?.certificate;
    } catch (error) {
      // Unlike the key ring cache, nothing is lost by dropping it: a new one is asked for once the host affirms.
      this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'the stored attested certificate is unreadable: dropping it');
      this.#state.removeAttestedCertificate();
    }
    this.#timer = setInterval(() => this.#refresh(), CHECK_EVERY_MS);
    this.#timer.unref();
  }

  /** Every attestation verdict: a quarantine drops the certificate; an affirming verdict may bring a new one. */
  onVerdict(verdict: Verdict): void {
    this.#verdict = verdict;
    if (verdict.Quarantined) {
      // The verifier revoked every attested certificate of this host when it quarantined it.
      this.#verifier.forgetRevocationList();
      if (this.#current) {
        this.#logger.warn({ serial: this.#current.Serial }, 'host quarantined: its attested certificate is revoked and dropped');
        this.#current = undefined;
        this.#state.removeAttestedCertificate();
      }
      return;
    }
    this.#refresh();
  }

  #refresh(): void {
    if (this.#stopped || this.#running || this.#verdict?.Status !== 'affirming' || this.#verdict.Quarantined) return;
    if (Date.now() < this.#retryAt) return;
    this.#running = this.#renewIfDue().then(() => {
      this.#failures = 0;
      this.#retryAt = 0;
    }, (error: unknown) => {
      this.#failures += 1;
      this.#retryAt = Date.now() + Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.#failures, 16));
      this.#logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'attested host certificate could not be obtained');
    }).finally(() => { this.#running = undefined; });
  }

  async #renewIfDue(): Promise<void> {
    const current = this.#current;
    if (current && !this.#checked) {
      const result = await this.#verifier.verify({ certificatePem: current.Certificate });
      this.#checked = true;
      // Only a definite answer drops it (a CRL out of reach does not).
      if (!result.valid && /^(revoked|expired)/.test(result.reason ?? '')) {
        this.#logger.warn({ serial: current.Serial, reason: result.reason }, 'the stored attested certificate is no longer valid: asking for a new one');
        this.#current = undefined;
        this.#state.removeAttestedCertificate();
      }
    }
    if (this.#current && Date.now() < renewalDue(this.#current)) return;
    await this.#request();
  }

  async #request(): Promise<void> {
    const pair = await generateAsymmetricPair('ECC_NIST_P256');
    try {
      const csr = await createCertificateRequest({ privateKeyPkcs8: pair.privateKeyDer, publicKeyDer: pair.publicKeyDer, commonName: this.#hostId });
      const reply = await this.#call('/v1/agent/attest/certificate', { Csr: csr });
      const issued: AttestedCertificateState = { Certificate: String(reply.Certificate), Chain: (reply.Chain as unknown[]).map(String),
        Serial: String(reply.Serial), NotAfter: new Date(String(reply.NotAfter)).toISOString(), ReceivedAt: new Date().toISOString() };
      if (this.#stopped) return;
      this.#state.saveAttestedCertificate(this.#hostId, issued, privateKeyToPem(pair.privateKeyDer));
      const previous = this.#current;
      this.#current = issued;
      this.#checked = true;
      this.#logger.info({ serial: issued.Serial, notAfter: issued.NotAfter, renewed: previous?.Serial }, 'attested host certificate issued');
    } finally {
      zeroize(pair.privateKeyDer);
    }
  }

  /** The current certificate and its chain (never the key). */
  describe(): HostCertificateView {
    const current = this.#current;
    if (!current || Date.parse(current.NotAfter) <= Date.now()) {
      const status = this.#verdict ? `${this.#verdict.Status}${this.#verdict.Quarantined ? ', quarantined' : ''}` : 'not yet attested';
      throw new UserError('CertificateUnavailableException', `This host has no attested certificate now (attestation: ${status}): `
        + 'one is issued once it is active and its attestation affirms.', 409);
    }
    return { Certificate: current.Certificate, Chain: current.Chain, Serial: current.Serial, NotAfter: current.NotAfter };
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }
}

/** Two thirds of the way from receipt to expiry (notBefore is backdated for clock skew, so it is not used). */
function renewalDue(certificate: AttestedCertificateState): number {
  const from = Date.parse(certificate.ReceivedAt);
  const to = Date.parse(certificate.NotAfter);
  return from + (to - from) * (2 / 3);
}
