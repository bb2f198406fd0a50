// Certificate checks for local workloads (VerifyCertificate): RFC 5280 path validation anchored at the
// account CA this host got at enrolment, with the account's CRL fetched from the server and cached
// for at most five minutes (less when it says its next update is sooner).
// Must never call a certificate valid without a current, verified CRL.
import {
  CertificateFormatError, certificatesFromPem, describeCertificate, validateCertificatePath, verifyRevocationList, type CertificatePurpose, type PathValidationResult,
  type VerifiedRevocationList,
} from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';
import { isAttestedHostUri } from '../shared/fleet-wire.ts';
import type { Logger } from '../shared/log.ts';
import type { JsonCall } from './attestation.ts';

const REVOCATION_LIST_CACHE_MS = 5 * 60_000;

export interface VerifyCertificateInput {
  /** PEM: the certificate to check first, then (optionally) chain certificates. */
  certificatePem: string;
  chainPem?: string[];
  purpose?: CertificatePurpose;
}

export class CertificateVerifier {
  readonly #call: JsonCall;
  readonly #anchorDer: Buffer;
  readonly #logger: Logger;
  readonly #now: () => Date;
  #cached?: { list: VerifiedRevocationList; fetchedAt: number };
  #fetching?: Promise<VerifiedRevocationList>;

  constructor(options: { call: JsonCall; anchorPem: string; logger: Logger; now?: () => Date }) {
    this.#call = options.call;
    this.#anchorDer = certificatesFromPem(options.anchorPem)[0] as Buffer;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** Something revoked certificates (this host was quarantined): the next check fetches the CRL again. */
  forgetRevocationList(): void {
    this.#cached = undefined;
  }

  async #revocationList(): Promise<{ list?: VerifiedRevocationList; unavailable?: string }> {
    const now = this.#now().getTime();
    const cached = this.#cached;
    if (cached && now - cached.fetchedAt < REVOCATION_LIST_CACHE_MS && (!cached.list.nextUpdate || cached.list.nextUpdate.getTime() > now)) {
      return { list: cached.list };
    }
    this.#fetching ??= (async () => {
      const reply = await this.#call('/v1/agent/attest/crl', {});
      const list = await verifyRevocationList(Buffer.from(String(reply.Crl), 'base64'), this.#anchorDer, this.#now());
      this.#cached = { list, fetchedAt: this.#now().getTime() };
      return list;
    })().finally(() => { this.#fetching = undefined; });
    try {
      return { list: await this.#fetching };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#logger.warn({ err: reason }, 'the revocation list could not be fetched: certificates cannot be validated');
      return { unavailable: reason };
    }
  }

  /** Full path validation; malformed input is a ValidationException, an invalid certificate an answer. */
  async verify(input: VerifyCertificateInput): Promise<PathValidationResult> {
    let certificateDer: Buffer;
    let chainDer: Buffer[];
    try {
      const [leaf, ...rest] = certificatesFromPem(input.certificatePem);
      certificateDer = leaf as Buffer;
      chainDer = [...rest, ...(input.chainPem ?? []).flatMap((pem) => certificatesFromPem(pem))];
    } catch (error) {
      if (error instanceof CertificateFormatError) throw new UserError('ValidationException', error.message);
      throw error;
    }
    const revocation = await this.#revocationList();
    try {
      const result = await validateCertificatePath({ certificateDer, chainDer, anchorDer: this.#anchorDer, revocationList: revocation.list,
        revocationUnavailable: revocation.unavailable, purpose: input.purpose, now: this.#now() });
      // The account CA also issues the agents' own fleet identity certificates, which say nothing about attestation.
      if (result.valid && !describeCertificate(certificateDer).uris.some(isAttestedHostUri)) {
        return { ...result, valid: false, reason: 'not a certificate issued on attestation (a fleet identity certificate is not one)' };
      }
      return result;
    } catch (error) {
      if (error instanceof CertificateFormatError) throw new UserError('ValidationException', error.message);
      throw error;
    }
  }
}
