// Hosts' privileged-operation request keys: a host registers the X25519 key it made (over its mutual-TLS connection, signed
// by its identity key), the account's fleet CA certifies it, and operators fetch the certificate to encrypt requests to it.
// Must never certify a key the authenticated host did not sign for, nor publish a key of a host that is gone.
import type { AuditLog } from '../../shared/audit/index.ts';
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import {
  certificateToPem, constantTimeEqual, importPublicKeyDer, randomUuid, requestKeyId, sha256Hex, verifyMessage, x25519PublicKeySpki,
  HPKE_PUBLIC_KEY_LENGTH,
} from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { hostUri } from '../../shared/fleet-wire.ts';
import type { Logger } from '../../shared/log.ts';
import { requestKeyProofMessage, type RequestKeyRegistration } from '../../shared/privop-encrypted-request.ts';
import type { HostRecord, HostRequestKeyRecord, RequestKeyStore } from '../../shared/store/index.ts';
import { hostArn, type AccountCertificateIssuer } from '../fleet/index.ts';

const DAY_MS = 86_400_000;
export const DEFAULT_REQUEST_KEY_CERTIFICATE_LIFETIME_MS = 30 * DAY_MS;

export interface HostRequestKeyServiceOptions {
  store: RequestKeyStore;
  /** Signs with the account's fleet CA (the fleet service keeps it). */
  authority: AccountCertificateIssuer;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  audit?: AuditLog;
  now?: () => Date;
}

/** What an operator is given: the certificate and what identifies it. */
export interface HostRequestKeyView {
  HostId: string;
  KeyId: string;
  Certificate: string;
  /** SHA-256 (hex) of the certificate's DER. */
  Fingerprint: string;
  Serial: string;
  NotAfter: string;
  RegisteredAt: string;
}

export class HostRequestKeyService {
  readonly #options: HostRequestKeyServiceOptions;
  readonly #now: () => Date;

  constructor(options: HostRequestKeyServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }


  /**
   * Registers the request key of an authenticated host. The same key again is answered with its certificate (a new one only
   * past half its life); another key replaces it and is audited.
   */
  async register(host: HostRecord, publicKey: Buffer, proof: Buffer): Promise<RequestKeyRegistration> {
    if (publicKey.length !== HPKE_PUBLIC_KEY_LENGTH) throw new UserError('ValidationException', 'PublicKey must be a raw X25519 public key (32 bytes, base64).');
    // X25519 cannot sign: possession is bound by the mutual-TLS identity and the identity key's signature over the key.
    const proven = verifyMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPublicKeyDer(host.publicKeyDer),
      requestKeyProofMessage(host.hostId, publicKey), proof);
    if (!proven) throw new UserError('InvalidProofException', 'Proof is not a signature of the request key by this host\'s identity key.', 403);
    const now = this.#now();
    const existing = await this.#options.store.getRequestKey(host.hostId);
    const sameKey = existing !== undefined && constantTimeEqual(existing.publicKey, publicKey);
    if (existing && sameKey && existing.notAfter.getTime() - now.getTime() > DEFAULT_REQUEST_KEY_CERTIFICATE_LIFETIME_MS / 2) return this.#registration(existing, host);

    const issued = await this.#options.authority.issue(host.accountId, { subjectPublicKeyDer: x25519PublicKeySpki(publicKey), commonName: host.hostId,
      usage: 'privop-request-key', uris: [hostUri(host.accountId, host.hostId)], validityDays: DEFAULT_REQUEST_KEY_CERTIFICATE_LIFETIME_MS / DAY_MS, now });
    const record: HostRequestKeyRecord = { hostId: host.hostId, accountId: host.accountId, publicKey, keyId: requestKeyId(publicKey),
      certificateDer: issued.certificateDer, serial: issued.serialNumber, notAfter: issued.notAfter,
      registeredAt: sameKey && existing ? existing.registeredAt : now, certifiedAt: now };
    if (!(await this.#options.store.putRequestKey(record))) throw new UserError('HostRevokedException', `Host ${host.hostId} was removed from the fleet.`, 403);
    if (!sameKey) {
      const replaced = existing !== undefined;
      this.#options.logger.info({ hostId: host.hostId, keyId: record.keyId, replaced }, replaced ? 'host request key replaced' : 'host request key registered');
      await this.#options.audit?.record({ requestId: randomUuid(), accountId: host.accountId, principalArn: hostUri(host.accountId, host.hostId),
        service: 'trustplane', operation: replaced ? 'PrivopReplaceHostRequestKey' : 'PrivopRegisterHostRequestKey',
        resource: hostArn(this.#options.region, host.accountId, host.hostId), decision: 'Allow',
        decidingStatement: replaced ? `request key ${existing.keyId} replaced by ${record.keyId}` : `request key ${record.keyId}`, outcome: 'Success', latencyMs: 0 })
        .catch((error: unknown) => this.#options.logger.error({ err: error, hostId: host.hostId }, 'request key registration could not be audited'));
    }
    return this.#registration(record, host);
  }

  #registration(record: HostRequestKeyRecord, host: HostRecord): RequestKeyRegistration {
    return { Certificate: certificateToPem(record.certificateDer), KeyId: record.keyId, Classes: host.classes };
  }

  /** The certificate of a host's request key, for a caller allowed fleet:GetHostRequestKey on the host. */
  async describe(caller: Caller, hostId: string): Promise<HostRequestKeyView> {
    await this.#options.authorizer.require(caller, { action: 'fleet:GetHostRequestKey', resource: hostArn(this.#options.region, caller.accountId, hostId),
      resourceAccountId: caller.accountId });
    const record = await this.#options.store.getRequestKey(hostId);
    if (!record || record.accountId !== caller.accountId) {
      throw new UserError('PrivopNoRequestKey', `Host ${hostId} has no request key: it does not exist, or its agent has not connected since enrolment `
        + '(the agent registers its key when it connects).', 404);
    }
    return { HostId: record.hostId, KeyId: record.keyId, Certificate: certificateToPem(record.certificateDer), Fingerprint: sha256Hex(record.certificateDer),
      Serial: record.serial, NotAfter: record.notAfter.toISOString(), RegisteredAt: record.registeredAt.toISOString() };
  }
}
