// Fleet use cases: host classes (a tree per account), which keys each class may hold, and how hosts
// enrol: with join tokens, or without one by a TPM whose endorsement key an operator allowed in a
// class. Every change lands in the fleet change feed, which agents follow.
// Must never return a join token except once, when it is made; only its hash is stored.
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import type { SecureContext } from 'node:tls';
import { createSecureContext } from 'node:tls';
import {
  certificateToPem, constantTimeEqual, createCertificateAuthority, describeCertificate, endorsementKeyFingerprint, generateAsymmetricPair,
  importPublicKeyDer, isHpkePublicKey, isP256PublicKey, issueCertificate, normalizeSerial, parseTpmPublic, privateKeyToPem, randomBytes, sha256,
  TpmFormatError, verifyHmac, verifyMessage, zeroize, createRevocationList,
  type IssueCertificateInput, type IssuedCertificate, type Keyring, type RevocationListInput,
} from '../../shared/crypto/index.ts';
import {
  accountFromServerName, enrollmentProofMessage, fleetServerName, hostUri, parseHostUri, renewalProofMessage, tpmEnrollmentFinishMessage, tpmEnrollmentProofMessage,
  type AckRequest,
} from '../../shared/fleet-wire.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  SECRET_PURPOSES, StoreConflictError, StoreDuplicateError, type AllowedEkRecord, type CertificateAuthorityRecord, type FleetChange,
  type FleetStore, type HostClassRecord, type HostRecord,
} from '../../shared/store/index.ts';
import type { KeyService } from '../kms/index.ts';
import type { AuditLog } from '../../shared/audit/index.ts';
import { rotationStatus, type RotationStatus } from './domain/rotation.ts';
import { classesByName, classesRefusingJoinTokens, entitledKeyIds } from './domain/classes.ts';
import { classArn, hostArn, JOIN_TOKEN_PREFIX, parseClassName } from './domain/names.ts';

const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 3600;
export const MAX_JOIN_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const DAY_MS = 86_400_000;
const DEFAULT_HOST_CERTIFICATE_LIFETIME_MS = 30 * DAY_MS;
/** The listener's own certificate per account: re-made when less than this is left. */
const SERVER_CERTIFICATE_DAYS = 30;
const SERVER_CERTIFICATE_RENEW_MS = DAY_MS;
const CA_VALIDITY_DAYS = 3650;
/** The purpose the CA's private key is wrapped for (with the account id). */
const FLEET_CA_KEY_PURPOSE = SECRET_PURPOSES.fleetCaKey;
/** How long a TPM has to activate its enrolment credential, and how many may wait per endorsement key. */
const TPM_ENROLMENT_TTL_MS = 5 * 60_000;
const MAX_PENDING_ENROLMENTS_PER_EK = 3;
const TPM_ENROLMENT_ID = /^te-[0-9a-f]{32}$/;
/** Format of what a pending TPM enrolment keeps of the host's request (wrapped under the domain key). */
const TPM_ENROLMENT_INPUTS_FORMAT = 1;
const EK_FINGERPRINT = /^[0-9a-f]{64}$/;

/** What a connection's client certificate says: the host and the certificate's serial. */
export interface AgentIdentity {
  accountId: string;
  hostId: string;
  serial: string;
}

export interface EnrollInput {
  joinToken: string;
  publicKeyDer: Buffer;
  hpkePublicKey: Buffer;
  proof: Buffer;
  name: string;
  agentVersion?: string;
}

/** The keys a TPM enrols with: TPM2B_PUBLIC areas, and the EK certificate in DER. */
export interface EnrolmentTpmKeys {
  EkPublic: Buffer;
  EkCertificate?: Buffer;
  AkPublic: Buffer;
}

export interface TpmEnrolmentStartInput extends EnrolmentTpmKeys {
  publicKeyDer: Buffer;
  hpkePublicKey: Buffer;
  /** The identity key's signature over tpmEnrollmentProofMessage (EK fingerprint, key ring key). */
  proof: Buffer;
  name: string;
  agentVersion?: string;
}

/** What token-less enrolment needs of the verifier, which owns EK and AK checks and host vaults. */
export interface EndorsementVerifier {
  /** Checks a TPM's keys (a UserError when they do not pass) and returns the EK's fingerprint and the AK's name. */
  inspect(keys: EnrolmentTpmKeys): { fingerprint: string; akName: Buffer };
  /** Whether hosts of the class attest with a TPM (its own settings or an ancestor's). */
  attestsWithTpm(accountId: string, className: string): Promise<boolean>;
  /** A credential only the TPM holding the EK can activate, and only next to the AK of that name. */
  makeCredential(ekPublic: Buffer, akName: Buffer, secret: Buffer): { credentialBlob: Buffer; encryptedSecret: Buffer };
  /** The vault of a host just admitted by its TPM, its AK already proven by the activation. */
  adoptTpm(host: HostRecord, keys: EnrolmentTpmKeys): Promise<void>;
}

/** What a pending TPM enrolment keeps of the host's request, until it finishes. */
interface StoredTpmEnrolmentInputs {
  Format: number;
  EkPublic: string;
  EkCertificate?: string;
  AkPublic: string;
  PublicKey: string;
  HpkePublicKey: string;
  Name: string;
  AgentVersion?: string;
  /** The credential secret: the key of the MAC that finishes the enrolment. */
  Secret: string;
}

/** Where an endorsement key to allow comes from: its certificate, its public area, or its fingerprint itself. */
export type EndorsementKeySource = { certificateDer: Buffer } | { ekPublic: Buffer } | { fingerprint: string };

export interface FleetServiceOptions {
  store: FleetStore;
  keys: KeyService;
  keyring: Keyring;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  audit?: AuditLog;
  hostCertificateLifetimeMs?: number;
  /** What a host may hold beyond class grants (attestation, key policies); absent: grants decide. */
  entitledKeys?: (host: HostRecord) => Promise<Set<string>>;
  /** Adds the attestation verdict to what GetHost answers. */
  describeAttestation?: (host: HostRecord) => Promise<unknown>;
  /** The agents' listener port, told to enrolling agents. */
  fleetPort?: () => number | undefined;
  /** The verifier's side of token-less TPM enrolment; absent: hosts enrol with join tokens only. */
  endorsement?: EndorsementVerifier;
  now?: () => Date;
}

const notFound = (message: string) => new UserError('NotFoundException', message, 404);
// One answer for unknown, expired and used-up tokens: a guesser learns nothing from the difference.
const invalidJoinToken = () => new UserError('InvalidJoinTokenException', 'The join token is unknown, expired or used up.', 401);
const badCertificate = (why: string) => new UserError('InvalidHostCertificateException', why, 401);
// One answer for an endorsement key on no list, or one whose class cannot take it now: a prober
// holding some TPM's public key learns nothing from the difference (the server log says which).
const invalidEndorsementKey = () => new UserError('InvalidEndorsementKeyException',
  'This TPM\'s endorsement key is not allowed in any class that admits hosts by their TPM.', 401);
const invalidEnrolment = () => new UserError('InvalidEnrolmentException', 'The enrolment is unknown, expired or already finished; start again.', 401);
const ekInUse = (hostId: string) => new UserError('ConflictException',
  `This TPM's endorsement key already enrolled host ${hostId}, which is still in the fleet; remove that host first to enrol it again.`, 409);

function checkIdentityKey(publicKeyDer: Buffer): void {
  if (!isP256PublicKey(publicKeyDer)) {
    throw new UserError('ValidationException', 'PublicKey must be a DER SubjectPublicKeyInfo of an ECDSA P-256 key (base64).');
  }
}

function checkHostKeys(publicKeyDer: Buffer, hpkePublicKey: Buffer): void {
  checkIdentityKey(publicKeyDer);
  if (!isHpkePublicKey(hpkePublicKey)) {
    throw new UserError('ValidationException', 'HpkePublicKey must be a raw X25519 public key (32 bytes, base64).');
  }
}

function provenBy(publicKeyDer: Buffer, message: Buffer, proof: Buffer): boolean {
  return verifyMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPublicKeyDer(publicKeyDer), message, proof);
}

/** The fingerprint operators allow: SHA-256 (hex) of the EK's SubjectPublicKeyInfo, from whichever source they have. */
function fingerprintOf(source: EndorsementKeySource): string {
  if ('fingerprint' in source) {
    const fingerprint = source.fingerprint.toLowerCase();
    if (!EK_FINGERPRINT.test(fingerprint)) throw new UserError('ValidationException', 'An EK fingerprint is a SHA-256 digest: 64 hexadecimal digits.');
    return fingerprint;
  }
  try {
    return 'certificateDer' in source ? endorsementKeyFingerprint({ certificateDer: source.certificateDer })
      : endorsementKeyFingerprint({ tpmPublic: parseTpmPublic(source.ekPublic) });
  } catch (error) {
    if (error instanceof TpmFormatError) throw new UserError('ValidationException', `The endorsement key cannot be read: ${error.message}`);
    throw error;
  }
}

export function joinTokenHash(token: string): Buffer {
  return sha256(token);
}

/** Certificates from an account's fleet CA for other services (attested hosts, request keys, the campaign signer): signing, never the key. */
export interface AccountCertificateIssuer {
  issue(accountId: string, input: Omit<IssueCertificateInput, 'authority'>): Promise<IssuedCertificate & { authorityDer: Buffer }>;
}

export class FleetService {
  readonly #options: FleetServiceOptions;
  readonly #now: () => Date;
  readonly #serverContexts = new Map<string, Promise<{ context: SecureContext; notAfter: Date }>>();
  readonly #audiences = new Map<string, { revision: number; entitled: string[] }>();

  constructor(options: FleetServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  get #certificateLifetimeDays(): number {
    return (this.#options.hostCertificateLifetimeMs ?? DEFAULT_HOST_CERTIFICATE_LIFETIME_MS) / DAY_MS;
  }

  async #require(caller: Caller, action: string, className = '*'): Promise<void> {
    await this.#options.authorizer.require(caller, { action, resource: classArn(this.#options.region, caller.accountId, className),
      resourceAccountId: caller.accountId });
  }

  async #existingClass(caller: Caller, name: string): Promise<HostClassRecord> {
    const found = await this.#options.store.getClass(caller.accountId, parseClassName(name).name);
    if (!found) throw notFound(`Class ${name} does not exist.`);
    return found;
  }

  async createClass(caller: Caller, rawName: string, rawParent?: string): Promise<HostClassRecord> {
    const { name, parent } = parseClassName(rawName, rawParent);
    await this.#require(caller, 'fleet:CreateClass', name);
    try {
      await this.#options.store.createClass(caller.accountId, name, parent, this.#now());
    } catch (error) {
      if (error instanceof StoreDuplicateError) throw new UserError('AlreadyExistsException', `Class ${name} already exists.`, 409);
      if (error instanceof StoreConflictError) throw notFound(`Parent class ${parent} does not exist; create it first.`);
      throw error;
    }
    return (await this.#options.store.getClass(caller.accountId, name)) as HostClassRecord;
  }

  async listClasses(caller: Caller): Promise<Array<HostClassRecord & { entitledKeyIds: string[] }>> {
    await this.#require(caller, 'fleet:ListClasses');
    const classes = await this.#options.store.listClasses(caller.accountId);
    const byName = classesByName(classes);
    return classes.map((record) => ({ ...record, entitledKeyIds: entitledKeyIds(byName, [record.name]) }));
  }

  async deleteClass(caller: Caller, rawName: string): Promise<void> {
    const { name } = parseClassName(rawName);
    await this.#require(caller, 'fleet:DeleteClass', name);
    try {
      if (!(await this.#options.store.deleteClass(caller.accountId, name, this.#now()))) throw notFound(`Class ${name} does not exist.`);
    } catch (error) {
      if (error instanceof StoreConflictError) {
        throw new UserError('ConflictException', `Class ${name} has child classes or hosts; delete or move them first.`, 409);
      }
      throw error;
    }
  }

  /**
   * Grants a key (id, ARN or alias) to a class and so to every class below it: hosts there will
   * hold its material. Only a key of the caller's own account, not pending deletion.
   */
  async grantKey(caller: Caller, className: string, key: string): Promise<{ keyId: string; changed: boolean }> {
    const { name } = parseClassName(className);
    await this.#require(caller, 'fleet:GrantKey', name);
    const found = await this.#existingClass(caller, name);
    const keyRecord = await this.#options.keys.describeKey(caller, key);
    if (keyRecord.accountId !== caller.accountId) {
      throw new UserError('AccessDeniedException', 'Only keys of your own account can be given to your hosts.', 403);
    }
    try {
      const changed = await this.#options.store.grantKey(caller.accountId, found.name, keyRecord.keyId, this.#now());
      return { keyId: keyRecord.keyId, changed };
    } catch (error) {
      if (error instanceof StoreConflictError) throw notFound(`Class ${found.name} or key ${keyRecord.keyId} no longer exists, or the key is pending deletion.`);
      throw error;
    }
  }

  /** Takes a key from a class. Needs no permission on the key itself: reducing exposure must always be possible. */
  async revokeKey(caller: Caller, className: string, key: string): Promise<{ keyId: string; changed: boolean }> {
    const { name } = parseClassName(className);
    await this.#require(caller, 'fleet:RevokeKey', name);
    const found = await this.#existingClass(caller, name);
    const keyId = found.keyIds.includes(key) ? key : (await this.#options.keys.describeKey(caller, key)).keyId;
    const changed = await this.#options.store.revokeKey(caller.accountId, found.name, keyId);
    if (!changed) throw notFound(`Class ${found.name} holds no grant of key ${keyId}.`);
    // The class's hosts had the key's material: it rotates for the hosts that keep it (where the key asks for it).
    await this.#rotateAfterLoss([keyId], 'class-revoked');
    await this.#promoteIfComplete(keyId);
    return { keyId, changed };
  }

  /** A token hosts enrol with, naming their classes; single-use unless `uses` says otherwise. */
  async createJoinToken(caller: Caller, classNames: string[], uses = 1, ttlSeconds = DEFAULT_JOIN_TOKEN_TTL_SECONDS) {
    if (classNames.length === 0) throw new UserError('ValidationException', 'A join token names at least one class.');
    const named = [...new Set(classNames.map((name) => parseClassName(name).name))];
    for (const name of named) await this.#require(caller, 'fleet:CreateJoinToken', name);
    const classes = await Promise.all(named.map(async (name) => (await this.#existingClass(caller, name)).name));
    const refusing = classesRefusingJoinTokens(classesByName(await this.#options.store.listClasses(caller.accountId)), classes);
    if (refusing.length > 0) {
      throw new UserError('ValidationException', `Class ${refusing.join(', ')} admits no hosts with join tokens (--join-tokens deny): `
        + 'its hosts enrol with their TPM once an operator allows its endorsement key (trustplane class allow-ek).');
    }
    const now = this.#now();
    const token = `${JOIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    await this.#options.store.createJoinToken({ tokenHash: joinTokenHash(token), accountId: caller.accountId, classes, usesLeft: uses,
      expiresAt, createdAt: now, createdBy: caller.principalArn });
    this.#options.logger.info({ classes, uses, expiresAt }, 'join token created');
    return { token, expiresAt, classes, uses };
  }

  async changesSince(caller: Caller, revision: number, limit: number): Promise<FleetChange[]> {
    await this.#require(caller, 'fleet:ListChanges');
    return this.#options.store.changesSince(caller.accountId, revision, limit);
  }

  /** The account's fleet CA, made (and its private key wrapped under the domain key) the first time it is needed. */
  async #authority(accountId: string): Promise<CertificateAuthorityRecord> {
    const existing = await this.#options.store.getCertificateAuthority(accountId);
    if (existing) return existing;
    const made = await createCertificateAuthority(`trustplane fleet CA ${accountId}`, CA_VALIDITY_DAYS, this.#now());
    try {
      const privateKey = await this.#options.keyring.wrapSecret(FLEET_CA_KEY_PURPOSE, accountId, made.privateKeyPkcs8);
      return await this.#options.store.putCertificateAuthority({ accountId, certificateDer: made.certificateDer, privateKey, createdAt: this.#now() });
    } finally {
      zeroize(made.privateKeyPkcs8);
    }
  }

  /**
   * Enrols a host with a join token: checks the token and the proof that the host holds its key,
   * issues it a client certificate from the account's CA, and records it in the token's classes.
   * Needs no credentials (the host has none yet); the token is the credential, used once.
   */
  async enroll(input: EnrollInput) {
    const now = this.#now();
    if (!input.joinToken.startsWith(JOIN_TOKEN_PREFIX)) throw invalidJoinToken();
    const tokenHash = joinTokenHash(input.joinToken);
    const token = await this.#options.store.peekJoinToken(tokenHash, now);
    if (!token) throw invalidJoinToken();
    // A class may have stopped taking join tokens after this one was made.
    const refusing = classesRefusingJoinTokens(classesByName(await this.#options.store.listClasses(token.accountId)), token.classes);
    if (refusing.length > 0) {
      throw new UserError('AccessDeniedException', `Class ${refusing.join(', ')} no longer admits hosts with join tokens: `
        + 'its hosts enrol with their TPM (trustplane agent --tpm TCTI, no token) once an operator allows its endorsement key.', 403);
    }
    checkHostKeys(input.publicKeyDer, input.hpkePublicKey);
    if (!provenBy(input.publicKeyDer, enrollmentProofMessage(input.joinToken, input.hpkePublicKey), input.proof)) {
      throw new UserError('InvalidProofException', 'Proof is not a signature of the join token by the key being enrolled.');
    }

    const hostId = `h-${randomBytes(10).toString('hex')}`;
    const { issued, authority } = await this.#issueHostCertificate(token.accountId, hostId, input.publicKeyDer, now);
    const host: HostRecord = { hostId, accountId: token.accountId, name: input.name, publicKeyDer: input.publicKeyDer,
      hpkePublicKey: input.hpkePublicKey, certificateSerial: issued.serialNumber, certificateNotAfter: issued.notAfter, status: 'active',
      agentVersion: input.agentVersion, createdAt: now, lastSeen: now, revision: 0, classes: token.classes };
    try {
      if (!(await this.#options.store.enrollHost(tokenHash, host, now))) throw invalidJoinToken();
    } catch (error) {
      if (error instanceof StoreConflictError) throw new UserError('ConflictException', 'A class named by the join token was deleted; ask for a new token.', 409);
      throw error;
    }
    this.#options.logger.info({ hostId, classes: token.classes }, 'host enrolled');
    return this.#enrolled(host, issued, authority);
  }

  /** What an enrolled host is told: its identity, and where and how to connect. */
  #enrolled(host: HostRecord, issued: IssuedCertificate, authority: CertificateAuthorityRecord) {
    return { host, certificatePem: certificateToPem(issued.certificateDer), caCertificatePem: certificateToPem(authority.certificateDer),
      fleetPort: this.#options.fleetPort?.(), serverName: fleetServerName(host.accountId) };
  }

  // ---- token-less enrolment: a TPM whose endorsement key is allowed in a class -------------------

  /** Allows a TPM's endorsement key in a class: a TPM holding it enrols there without a join token. */
  async allowEk(caller: Caller, className: string, source: EndorsementKeySource): Promise<{ className: string; fingerprint: string; added: boolean }> {
    const { name } = parseClassName(className);
    await this.#require(caller, 'fleet:AllowEk', name);
    const found = await this.#existingClass(caller, name);
    const fingerprint = fingerprintOf(source);
    if (!(await this.#options.endorsement?.attestsWithTpm(caller.accountId, found.name))) {
      throw new UserError('ValidationException', `Class ${found.name} does not attest with a TPM: set --attestation tpm on it (or an ancestor) first.`);
    }
    let added: boolean;
    try {
      added = await this.#options.store.allowEk({ fingerprint, accountId: caller.accountId, className: found.name, addedBy: caller.principalArn,
        addedAt: this.#now() });
    } catch (error) {
      if (error instanceof StoreConflictError) throw notFound(`Class ${found.name} does not exist.`);
      if (error instanceof StoreDuplicateError) {
        const other = await this.#options.store.findAllowedEk(fingerprint);
        // Another account's lists are not this caller's to read: only that the EK is taken.
        throw new UserError('ConflictException', other?.accountId === caller.accountId
          ? `Endorsement key ${fingerprint} is allowed in class ${other.className}; remove it there first (an EK enrols into one class).`
          : `Endorsement key ${fingerprint} is allowed elsewhere (an EK enrols into one class).`, 409);
      }
      throw error;
    }
    if (added) this.#options.logger.info({ className: found.name, fingerprint, by: caller.principalArn }, 'endorsement key allowed');
    return { className: found.name, fingerprint, added };
  }

  async listEks(caller: Caller, className: string): Promise<AllowedEkRecord[]> {
    const { name } = parseClassName(className);
    await this.#require(caller, 'fleet:ListEks', name);
    const found = await this.#existingClass(caller, name);
    return this.#options.store.listAllowedEks(caller.accountId, found.name);
  }

  /** Takes an EK off a class's list (and forgets its pending enrolments); a host it enrolled stays. */
  async removeEk(caller: Caller, className: string, rawFingerprint: string): Promise<void> {
    const { name } = parseClassName(className);
    await this.#require(caller, 'fleet:RemoveEk', name);
    const fingerprint = fingerprintOf({ fingerprint: rawFingerprint });
    if (!(await this.#options.store.removeAllowedEk(caller.accountId, name, fingerprint))) {
      throw notFound(`Endorsement key ${fingerprint} is not allowed in class ${name}.`);
    }
    this.#options.logger.info({ className: name, fingerprint, by: caller.principalArn }, 'endorsement key removed');
  }

  #endorsement(): EndorsementVerifier {
    if (!this.#options.endorsement) throw new UserError('UnknownOperationException', 'This server admits hosts with join tokens only.', 404);
    return this.#options.endorsement;
  }

  /**
   * First half of token-less enrolment (no credentials: the TPM is the credential). Everything that
   * does not depend on the allowlist is checked first (the TPM's keys, the EK certificate against
   * the EK CAs, the identity key's proof), then the EK must be allowed in a class that attests with
   * a TPM; the answer is a credential for the AK only the TPM holding the EK can activate.
   */
  async startTpmEnrolment(input: TpmEnrolmentStartInput) {
    const endorsement = this.#endorsement();
    checkHostKeys(input.publicKeyDer, input.hpkePublicKey);
    const { fingerprint, akName } = endorsement.inspect(input);
    if (!provenBy(input.publicKeyDer, tpmEnrollmentProofMessage(fingerprint, input.hpkePublicKey), input.proof)) {
      throw new UserError('InvalidProofException', 'Proof is not a signature of the endorsement key\'s fingerprint by the key being enrolled.');
    }
    const allowed = await this.#options.store.findAllowedEk(fingerprint);
    if (!allowed) {
      this.#options.logger.info({ fingerprint }, 'TPM enrolment refused: endorsement key not allowed in any class');
      throw invalidEndorsementKey();
    }
    if (!(await endorsement.attestsWithTpm(allowed.accountId, allowed.className))) {
      this.#options.logger.warn({ fingerprint, className: allowed.className }, 'TPM enrolment refused: the class the EK is allowed in does not attest with a TPM');
      throw invalidEndorsementKey();
    }
    const now = this.#now();
    const secret = randomBytes(32);
    try {
      const credential = endorsement.makeCredential(input.EkPublic, akName, secret);
      const enrolmentId = `te-${randomBytes(16).toString('hex')}`;
      const stored: StoredTpmEnrolmentInputs = { Format: TPM_ENROLMENT_INPUTS_FORMAT, EkPublic: input.EkPublic.toString('base64'),
        EkCertificate: input.EkCertificate?.toString('base64'), AkPublic: input.AkPublic.toString('base64'),
        PublicKey: input.publicKeyDer.toString('base64'), HpkePublicKey: input.hpkePublicKey.toString('base64'), Name: input.name,
        AgentVersion: input.agentVersion, Secret: secret.toString('base64') };
      const inputs = await this.#options.keyring.wrapSecret(SECRET_PURPOSES.tpmEnrolment, enrolmentId, Buffer.from(JSON.stringify(stored)));
      const expiresAt = new Date(now.getTime() + TPM_ENROLMENT_TTL_MS);
      const recorded = await this.#options.store.createTpmEnrolment({ enrolmentId, accountId: allowed.accountId, className: allowed.className,
        fingerprint, secretDigest: sha256(secret), expiresAt, createdAt: now, inputs }, MAX_PENDING_ENROLMENTS_PER_EK, now);
      if (!recorded) throw invalidEndorsementKey();
      this.#options.logger.info({ enrolmentId, className: allowed.className, fingerprint }, 'TPM enrolment started');
      return { enrolmentId, credentialBlob: credential.credentialBlob, encryptedSecret: credential.encryptedSecret, expiresAt };
    } finally {
      zeroize(secret);
    }
  }

  /**
   * Second half: the secret the TPM recovered proves it holds the EK and the AK. The enrolment is used
   * up by this call whatever happens; the host joins the class its EK is allowed in (recorded with
   * the EK as enrolled, in one transaction) and its vault starts with the AK trusted.
   */
  async finishTpmEnrolment(input: { enrolmentId: string; proof: Buffer }) {
    const endorsement = this.#endorsement();
    const now = this.#now();
    const pending = TPM_ENROLMENT_ID.test(input.enrolmentId) ? await this.#options.store.takeTpmEnrolment(input.enrolmentId, now) : undefined;
    if (!pending) throw invalidEnrolment();
    const plaintext = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.tpmEnrolment, pending.enrolmentId, pending.inputs);
    let stored: StoredTpmEnrolmentInputs;
    try {
      stored = JSON.parse(plaintext.toString('utf8')) as StoredTpmEnrolmentInputs;
    } finally {
      zeroize(plaintext);
    }
    if (stored.Format !== TPM_ENROLMENT_INPUTS_FORMAT) throw new Error(`pending TPM enrolment format ${stored.Format} is not known to this server`);
    const secret = Buffer.from(stored.Secret, 'base64');
    try {
      const message = tpmEnrollmentFinishMessage(pending.enrolmentId, Buffer.from(stored.PublicKey, 'base64'), Buffer.from(stored.HpkePublicKey, 'base64'));
      if (!constantTimeEqual(sha256(secret), pending.secretDigest) || !verifyHmac('sha256', secret, message, input.proof)) {
        this.#options.logger.warn({ enrolmentId: pending.enrolmentId, fingerprint: pending.fingerprint }, 'TPM enrolment refused: wrong credential proof');
        throw new UserError('InvalidProofException',
          'The proof was not made with the credential\'s secret over the keys being enrolled: the AK is not in the TPM that owns the EK, or the enrolment was relayed. Start again.', 400);
      }
    } finally {
      zeroize(secret);
    }
    const keys: EnrolmentTpmKeys = { EkPublic: Buffer.from(stored.EkPublic, 'base64'), AkPublic: Buffer.from(stored.AkPublic, 'base64'),
      EkCertificate: stored.EkCertificate === undefined ? undefined : Buffer.from(stored.EkCertificate, 'base64') };
    // Checked before a certificate is signed; the store checks again as it records the host.
    const allowed = await this.#options.store.findAllowedEk(pending.fingerprint);
    if (!allowed || allowed.accountId !== pending.accountId || allowed.className !== pending.className) throw invalidEndorsementKey();
    if (allowed.enrolledHostId) throw ekInUse(allowed.enrolledHostId);

    const publicKeyDer = Buffer.from(stored.PublicKey, 'base64');
    const hostId = `h-${randomBytes(10).toString('hex')}`;
    const { issued, authority } = await this.#issueHostCertificate(pending.accountId, hostId, publicKeyDer, now);
    const host: HostRecord = { hostId, accountId: pending.accountId, name: stored.Name, publicKeyDer, hpkePublicKey: Buffer.from(stored.HpkePublicKey, 'base64'),
      certificateSerial: issued.serialNumber, certificateNotAfter: issued.notAfter, status: 'active', agentVersion: stored.AgentVersion,
      createdAt: now, lastSeen: now, revision: 0, classes: [pending.className] };
    let result;
    try {
      result = await this.#options.store.enrollHostByEndorsement(host, pending.fingerprint, now);
    } catch (error) {
      if (error instanceof StoreConflictError) throw new UserError('ConflictException', `Class ${pending.className} was deleted during the enrolment.`, 409);
      throw error;
    }
    if (result.kind === 'not-allowed') throw invalidEndorsementKey();
    if (result.kind === 'in-use') throw ekInUse(result.hostId);
    try {
      await endorsement.adoptTpm(host, keys);
    } catch (error) {
      // A host whose vault does not vouch for its TPM was not admitted by it: it goes, and frees the EK.
      await this.#options.store.removeHost(host.accountId, hostId, this.#now())
        .catch((failure: unknown) => this.#options.logger.error({ err: failure, hostId }, 'a host whose TPM could not be adopted could not be removed'));
      throw error;
    }
    this.#options.logger.info({ hostId, className: pending.className, fingerprint: pending.fingerprint }, 'host enrolled by its TPM');
    return this.#enrolled(host, issued, authority);
  }

  /** Signs with the account's CA key, unwrapped only for this and zeroed after. */
  async #withAuthorityKey<T>(authority: CertificateAuthorityRecord, sign: (key: { certificateDer: Buffer; privateKeyPkcs8: Buffer }) => Promise<T>): Promise<T> {
    const caKey = await this.#options.keyring.unsafeUnwrapSecret(FLEET_CA_KEY_PURPOSE, authority.accountId, authority.privateKey);
    try {
      return await sign({ certificateDer: authority.certificateDer, privateKeyPkcs8: caKey });
    } finally {
      zeroize(caKey);
    }
  }

  async #issueFromAuthority(authority: CertificateAuthorityRecord, input: Omit<IssueCertificateInput, 'authority'>) {
    return this.#withAuthorityKey(authority, (key) => issueCertificate({ ...input, authority: key }));
  }

  /**
   * Signs a certificate with the account's fleet CA for another service (the verifier's attested
   * host certificates), which decided what it says; the CA's certificate comes back for the chain.
   */
  async issueWithAccountAuthority(accountId: string, input: Omit<IssueCertificateInput, 'authority'>): Promise<IssuedCertificate & { authorityDer: Buffer }> {
    const authority = await this.#authority(accountId);
    return { ...(await this.#issueFromAuthority(authority, input)), authorityDer: authority.certificateDer };
  }

  /** A CRL signed by the account's fleet CA; undefined when the account has no CA (it never issued a certificate). */
  async signRevocationList(accountId: string, input: Omit<RevocationListInput, 'authority'>): Promise<Buffer | undefined> {
    const authority = await this.#options.store.getCertificateAuthority(accountId);
    if (!authority) return undefined;
    return this.#withAuthorityKey(authority, (key) => createRevocationList({ ...input, authority: key }));
  }

  async #issueHostCertificate(accountId: string, hostId: string, publicKeyDer: Buffer, now: Date) {
    const authority = await this.#authority(accountId);
    const issued = await this.#issueFromAuthority(authority, { subjectPublicKeyDer: publicKeyDer, commonName: hostId, usage: 'client',
      uris: [hostUri(accountId, hostId)], validityDays: this.#certificateLifetimeDays, now });
    return { issued, authority };
  }

  /** Where agents connect: the port of the mutual-TLS listener (the host is the one they enrolled at). */
  fleetInfo(): { fleetPort?: number } {
    return { fleetPort: this.#options.fleetPort?.() };
  }

  // ---- the agents' mutual-TLS listener ---------------------------------------------------------

  /**
   * The TLS context for an account's agents, chosen by the server name they ask for: the listener's
   * certificate from the account's CA, and that CA as the only issuer of client certificates.
   */
  async tlsContextFor(serverName: string): Promise<SecureContext> {
    const accountId = accountFromServerName(serverName);
    if (!accountId) throw new Error(`unknown server name ${serverName}`);
    const cached = this.#serverContexts.get(accountId);
    if (cached) {
      const current = await cached.catch(() => undefined);
      if (current && current.notAfter.getTime() - this.#now().getTime() > SERVER_CERTIFICATE_RENEW_MS) return current.context;
    }
    const made = this.#makeServerContext(accountId);
    this.#serverContexts.set(accountId, made);
    made.catch(() => this.#serverContexts.delete(accountId));
    return (await made).context;
  }

  async #makeServerContext(accountId: string): Promise<{ context: SecureContext; notAfter: Date }> {
    const authority = await this.#options.store.getCertificateAuthority(accountId);
    if (!authority) throw new Error(`account ${accountId} has no fleet CA yet`);
    const pair = await generateAsymmetricPair('ECC_NIST_P256');
    try {
      const issued = await this.#issueFromAuthority(authority, { subjectPublicKeyDer: pair.publicKeyDer, commonName: fleetServerName(accountId),
        usage: 'server', dnsNames: [fleetServerName(accountId)], validityDays: SERVER_CERTIFICATE_DAYS, now: this.#now() });
      const context = createSecureContext({ key: privateKeyToPem(pair.privateKeyDer), cert: certificateToPem(issued.certificateDer),
        ca: certificateToPem(authority.certificateDer), minVersion: 'TLSv1.3' });
      return { context, notAfter: issued.notAfter };
    } finally {
      zeroize(pair.privateKeyDer);
    }
  }

  /**
   * Who a mutual-TLS connection says it is. TLS has checked the chain to the account's CA
   * (verification result in `authorizationError`); this reads the host the certificate names. It
   * cannot change for the life of the connection, so the listener asks once per connection.
   */
  identifyAgent(serverName: string | undefined, peer: { authorized: boolean; authorizationError?: string; certificateDer?: Buffer }): AgentIdentity {
    const accountId = accountFromServerName(serverName);
    if (!peer.certificateDer || peer.certificateDer.length === 0) throw badCertificate('A host certificate is required on this listener.');
    if (!peer.authorized || !accountId) {
      throw badCertificate(`The host certificate was refused: ${peer.authorizationError ?? 'not issued by this account\'s fleet CA'}.`);
    }
    const certificate = describeCertificate(peer.certificateDer);
    const identity = certificate.uris.map(parseHostUri).find((parsed) => parsed !== undefined);
    if (!identity || identity.accountId !== accountId) throw badCertificate('The certificate names no host of this account.');
    return { accountId, hostId: identity.hostId, serial: certificate.serialNumber };
  }

  /**
   * The host behind an identified connection, checked on every request: it still exists, and the
   * certificate is the one it was last issued (a renewed-away one is refused).
   */
  async authenticateAgent(identity: AgentIdentity): Promise<HostRecord> {
    const host = await this.#options.store.findHost(identity.hostId);
    if (!host || host.accountId !== identity.accountId) throw new UserError('HostRevokedException', `Host ${identity.hostId} was removed from the fleet.`, 403);
    if (normalizeSerial(host.certificateSerial) !== identity.serial) {
      throw badCertificate('The certificate was replaced by a renewal; use the current one.');
    }
    // A quarantined host stays connected: it is sent no keys, and keeps attesting until an operator clears it.
    return host;
  }

  /** An agent's acknowledgement: what it now holds. Staged versions it completes are promoted. */
  async acknowledge(host: HostRecord, ack: AckRequest): Promise<{ promoted: Array<{ keyId: string; version: number }> }> {
    // A full report replaces everything: keys it no longer mentions are gone from the host.
    const removed = ack.Full ? Object.keys(await this.#options.store.holdingsOf(host.hostId)).filter((keyId) => !(keyId in ack.Holds))
      : ack.Removed ?? [];
    await this.#options.store.recordHoldings(host.hostId, ack.Holds, removed, ack.Revision, this.#now(), ack.AgentVersion);
    const promoted: Array<{ keyId: string; version: number }> = [];
    for (const keyId of Object.keys(ack.Holds)) {
      const version = await this.#promoteIfComplete(keyId);
      if (version !== undefined) promoted.push({ keyId, version });
    }
    return { promoted };
  }

  /** A new certificate for a new key, asked for over a connection made with the current one. */
  async renew(host: HostRecord, publicKeyDer: Buffer, proof: Buffer) {
    checkIdentityKey(publicKeyDer);
    if (!provenBy(publicKeyDer, renewalProofMessage(host.hostId), proof)) throw new UserError('InvalidProofException', 'Proof is not a signature of the host id by the new key.');
    const now = this.#now();
    const { issued } = await this.#issueHostCertificate(host.accountId, host.hostId, publicKeyDer, now);
    if (!(await this.#options.store.replaceHostCertificate(host.hostId, issued.serialNumber, issued.notAfter, publicKeyDer))) {
      throw new UserError('HostRevokedException', `Host ${host.hostId} was removed from the fleet.`, 403);
    }
    this.#options.logger.info({ hostId: host.hostId, notAfter: issued.notAfter }, 'host certificate renewed');
    return { certificatePem: certificateToPem(issued.certificateDer), notAfter: issued.notAfter };
  }

  // ---- two-phase rotation --------------------------------------------------------------------

  /**
   * Active hosts entitled to a key. Acknowledgements change no class, grant or host, so the answer
   * is reused while the change feed stands still: a rotation's N acks do not each re-read the fleet.
   */
  async #keyAudience(accountId: string, keyId: string): Promise<{ entitled: string[] }> {
    const revision = await this.#options.store.latestRevision();
    const cached = this.#audiences.get(keyId);
    if (cached && cached.revision === revision) return cached;
    const classes = classesByName(await this.#options.store.listClasses(accountId));
    const hosts = await this.#options.store.listHosts(accountId);
    const granted = hosts.filter((host) => host.status === 'active' && entitledKeyIds(classes, host.classes).includes(keyId));
    // Hosts attestation or the key's policy keeps the key from are not waited for: they will not get it.
    const entitled: string[] = [];
    for (const host of granted) {
      if (!this.#options.entitledKeys || (await this.#options.entitledKeys(host)).has(keyId)) entitled.push(host.hostId);
    }
    if (this.#audiences.size > 10_000) this.#audiences.clear();
    const audience = { revision, entitled };
    this.#audiences.set(keyId, audience);
    return audience;
  }

  async #status(keyId: string): Promise<RotationStatus | undefined> {
    const key = await this.#options.keys.findKey(keyId);
    if (!key) return undefined;
    const rotation = await this.#options.store.latestRotation(keyId);
    const version = key.pendingVersion ?? rotation?.version ?? key.currentVersion;
    const { entitled } = await this.#keyAudience(key.accountId, keyId);
    const holding = await this.#options.store.hostsHolding(keyId, version);
    return rotationStatus({ key, rotation: rotation?.version === version ? rotation : undefined, version, entitled, holding });
  }

  /** Promotes a key's pending version if every entitled host holds it; returns the version promoted. */
  async #promoteIfComplete(keyId: string): Promise<number | undefined> {
    const status = await this.#status(keyId);
    if (!status || status.State !== 'pending' || status.Missing.length > 0 || status.PendingVersion === undefined) return undefined;
    return (await this.#promote(keyId, status.PendingVersion, 'trustplane:fleet (every entitled host acknowledged)', [])) ? status.PendingVersion : undefined;
  }

  async #promote(keyId: string, version: number, by: string, leftBehind: string[]): Promise<boolean> {
    const promoted = await this.#options.store.promoteRotation(keyId, version, by, leftBehind, this.#now());
    if (promoted) this.#options.logger.info({ keyId, version, by, leftBehind }, 'staged key version promoted to default');
    return promoted;
  }

  async rotateStaged(caller: Caller, key: string, promoteAfterSeconds?: number): Promise<RotationStatus> {
    const promoteAfter = promoteAfterSeconds === undefined ? undefined : new Date(this.#now().getTime() + promoteAfterSeconds * 1000);
    const rotated = await this.#options.keys.rotateKeyStaged(caller, key, { promoteAfter });
    // No host to wait for (or all already hold it): promoted at once.
    await this.#promoteIfComplete(rotated.keyId);
    return (await this.#status(rotated.keyId)) as RotationStatus;
  }

  async setRotateOnHostLoss(caller: Caller, key: string, enabled: boolean) {
    return this.#options.keys.setRotateOnHostLoss(caller, key, enabled);
  }

  async rotationStatusOf(caller: Caller, key: string): Promise<RotationStatus> {
    await this.#require(caller, 'fleet:GetRotationStatus');
    const record = await this.#options.keys.describeKey(caller, key);
    return (await this.#status(record.keyId)) as RotationStatus;
  }

  /**
   * Promotes a pending version now. Without force only when no host is missing; with force the
   * hosts left behind are named in the answer and recorded with the rotation (and so audited).
   */
  async promoteNow(caller: Caller, key: string, force: boolean): Promise<RotationStatus & { LeftBehind: string[] }> {
    await this.#require(caller, 'fleet:PromoteRotation');
    const record = await this.#options.keys.authorizeKey(caller, key, 'kms:RotateKeyOnDemand');
    const status = await this.#status(record.keyId) as RotationStatus;
    if (status.State !== 'pending' || status.PendingVersion === undefined) {
      throw new UserError('ConflictException', `Key ${record.keyId} has no staged version waiting for promotion.`, 409);
    }
    if (status.Missing.length > 0 && !force) {
      throw new UserError('ConflictException', `${status.Missing.length} host(s) have not acknowledged version ${status.PendingVersion}: `
        + `${status.Missing.join(', ')}. Pass --force to promote anyway and leave them behind.`, 409);
    }
    if (!(await this.#promote(record.keyId, status.PendingVersion, caller.principalArn, status.Missing))) {
      throw new UserError('ConflictException', `Version ${status.PendingVersion} of ${record.keyId} was promoted or superseded meanwhile.`, 409);
    }
    await this.#auditLeftBehind(record, status.PendingVersion, caller.principalArn, status.Missing);
    return { ...(await this.#status(record.keyId) as RotationStatus), LeftBehind: status.Missing };
  }

  /** Scheduled: promotes pending versions past their promote-after time (leaving missing hosts behind) or now complete. */
  async runDueWork(): Promise<number> {
    await this.#options.store.purgeTpmEnrolments(this.#now());
    let promoted = 0;
    for (const rotation of await this.#options.store.pendingRotations()) {
      const status = await this.#status(rotation.keyId);
      if (!status || status.State !== 'pending' || status.PendingVersion !== rotation.version) continue;
      const due = rotation.promoteAfter !== undefined && rotation.promoteAfter.getTime() <= this.#now().getTime();
      if (status.Missing.length > 0 && !due) continue;
      const by = status.Missing.length > 0 ? 'trustplane:scheduler (promote-after reached)' : 'trustplane:fleet (every entitled host acknowledged)';
      if (await this.#promote(rotation.keyId, rotation.version, by, status.Missing)) {
        promoted += 1;
        const key = await this.#options.keys.findKey(rotation.keyId);
        if (key) await this.#auditLeftBehind(key, rotation.version, 'trustplane:scheduler', status.Missing);
      }
    }
    return promoted;
  }

  /** One audit record per host a promotion left behind (who promoted, which host), beside the rotation's own record of them. */
  async #auditLeftBehind(key: { accountId: string; arn: string }, version: number, by: string, hostIds: string[]): Promise<void> {
    if (hostIds.length === 0) return;
    const requestId = randomBytes(16).toString('hex');
    this.#options.logger.warn({ key: key.arn, version, by, leftBehind: hostIds }, 'staged version promoted with hosts left behind');
    for (const hostId of hostIds) {
      await this.#options.audit?.record({ requestId, accountId: key.accountId, principalArn: by, service: 'trustplane',
        operation: 'FleetPromotionLeftHostBehind', resource: hostArn(this.#options.region, key.accountId, hostId), decision: 'Allow',
        decidingStatement: `${key.arn} version ${version}`, outcome: 'Success', latencyMs: 0 })
        .catch((error: unknown) => this.#options.logger.error({ err: error, hostId }, 'a host left behind could not be audited'));
    }
  }

  /**
   * Rotates (staged) every key a departed host or class held, where the key asks for it. The
   * caller then promotes what is complete: the departure may leave no host to wait for.
   */
  async #rotateAfterLoss(keyIds: Iterable<string>, reason: string): Promise<void> {
    for (const keyId of new Set(keyIds)) {
      try {
        await this.#options.keys.rotateKeyForEvent(keyId, reason, 'trustplane:fleet');
      } catch (error) {
        this.#options.logger.error({ err: error, keyId, reason }, 'event-triggered rotation failed');
      }
    }
  }

  /** The account's fleet CA certificate (public): what hosts' identity certificates, and so their sealed results, chain to. */
  async accountCertificateAuthority(caller: Caller): Promise<Buffer> {
    await this.#require(caller, 'fleet:GetAccountCa');
    return (await this.#authority(caller.accountId)).certificateDer;
  }

  async listHosts(caller: Caller): Promise<Array<HostRecord & { holdings: Record<string, number[]> }>> {
    await this.#require(caller, 'fleet:ListHosts');
    const holdings = await this.#options.store.holdingsByHost(caller.accountId);
    return (await this.#options.store.listHosts(caller.accountId)).map((host) => ({ ...host, holdings: holdings.get(host.hostId) ?? {} }));
  }

  async getHost(caller: Caller, hostId: string): Promise<HostRecord & { entitledKeyIds: string[]; holdings: Record<string, number[]>;
    attestation?: unknown }> {
    await this.#require(caller, 'fleet:GetHost');
    const host = await this.#options.store.getHost(caller.accountId, hostId);
    if (!host) throw notFound(`Host ${hostId} does not exist.`);
    const classes = classesByName(await this.#options.store.listClasses(caller.accountId));
    return { ...host, entitledKeyIds: entitledKeyIds(classes, host.classes), holdings: await this.#options.store.holdingsOf(hostId),
      attestation: await this.#options.describeAttestation?.(host) };
  }

  async setHostClasses(caller: Caller, hostId: string, classNames: string[]): Promise<void> {
    if (classNames.length === 0) throw new UserError('ValidationException', 'A host belongs to at least one class.');
    const classes = [...new Set(classNames.map((name) => parseClassName(name).name))];
    const current = await this.#options.store.getHost(caller.accountId, hostId);
    // Taking a host out of a class is as much a change to that class as putting it in.
    for (const name of new Set([...classes, ...(current?.classes ?? [])])) await this.#require(caller, 'fleet:SetHostClasses', name);
    // Re-classing a host changes which classes it is in, not the classes: one read serves before and after.
    const classTree = classesByName(await this.#options.store.listClasses(caller.accountId));
    const before = current ? new Set(entitledKeyIds(classTree, current.classes)) : new Set<string>();
    try {
      if (!(await this.#options.store.setHostClasses(caller.accountId, hostId, classes, this.#now()))) throw notFound(`Host ${hostId} does not exist.`);
    } catch (error) {
      if (error instanceof StoreConflictError) throw notFound(error.message.replace(/^class (\S+) does not exist$/, 'Class $1 does not exist.'));
      throw error;
    }
    // Keys the host held and may no longer hold: it had their material, so they rotate (where the key asks for it).
    const after = new Set(entitledKeyIds(classTree, classes));
    await this.#rotateAfterLoss([...before].filter((keyId) => !after.has(keyId)), 'class-revoked');
    await this.#promoteCompleteRotations(caller.accountId);
  }

  async removeHost(caller: Caller, hostId: string): Promise<void> {
    await this.#require(caller, 'fleet:RemoveHost');
    const held = Object.keys(await this.#options.store.holdingsOf(hostId));
    if (!(await this.#options.store.removeHost(caller.accountId, hostId, this.#now()))) throw notFound(`Host ${hostId} does not exist.`);
    this.#options.logger.info({ hostId, keys: held.length }, 'host removed');
    await this.#rotateAfterLoss(held, 'host-removed');
    // A rotation may have been waiting only for this host.
    await this.#promoteCompleteRotations(caller.accountId);
  }

  async #promoteCompleteRotations(accountId: string): Promise<void> {
    for (const rotation of await this.#options.store.pendingRotations()) {
      if (rotation.accountId === accountId) await this.#promoteIfComplete(rotation.keyId);
    }
  }
}
