// Fleet use cases: host classes (a tree per account), which keys each class may hold, and join
// tokens hosts enrol with. Every change lands in the fleet change feed, which agents follow.
// Must never return a join token except once, when it is made; only its hash is stored.
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import {
  certificateToPem, createCertificateAuthority, importPublicKeyDer, isP256PublicKey, issueCertificate, randomBytes, sha256,
  verifyMessage, zeroize, type Keyring,
} from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  SECRET_PURPOSES, StoreConflictError, StoreDuplicateError, type CertificateAuthorityRecord, type FleetChange, type FleetStore,
  type HostClassRecord, type HostRecord,
} from '../../shared/store/index.ts';
import type { KeyService } from '../kms/index.ts';
import { classesByName, entitledKeyIds } from './domain/classes.ts';
import { classArn, JOIN_TOKEN_PREFIX, parseClassName } from './domain/names.ts';

const DEFAULT_JOIN_TOKEN_TTL_SECONDS = 3600;
export const MAX_JOIN_TOKEN_TTL_SECONDS = 30 * 24 * 3600;
const HOST_CERTIFICATE_DAYS = 30;
const CA_VALIDITY_DAYS = 3650;
/** The purpose the CA's private key is wrapped for (with the account id). */
const FLEET_CA_KEY_PURPOSE = SECRET_PURPOSES.fleetCaKey;
/** What an enrolling host signs with its new key: proof that it holds the key it asks a certificate for. */
export const ENROLL_PROOF_CONTEXT = 'trustplane-enroll-v1\n';

export interface EnrollInput {
  joinToken: string;
  publicKeyDer: Buffer;
  proof: Buffer;
  name: string;
  agentVersion?: string;
}

export interface FleetServiceOptions {
  store: FleetStore;
  keys: KeyService;
  keyring: Keyring;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  now?: () => Date;
}

const notFound = (message: string) => new UserError('NotFoundException', message, 404);
// One answer for unknown, expired and used-up tokens: a guesser learns nothing from the difference.
const invalidJoinToken = () => new UserError('InvalidJoinTokenException', 'The join token is unknown, expired or used up.', 401);

export function joinTokenHash(token: string): Buffer {
  return sha256(token);
}

export class FleetService {
  readonly #options: FleetServiceOptions;
  readonly #now: () => Date;

  constructor(options: FleetServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
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
    return { keyId, changed };
  }

  /** A token hosts enrol with, naming their classes; single-use unless `uses` says otherwise. */
  async createJoinToken(caller: Caller, classNames: string[], uses = 1, ttlSeconds = DEFAULT_JOIN_TOKEN_TTL_SECONDS) {
    if (classNames.length === 0) throw new UserError('ValidationException', 'A join token names at least one class.');
    const named = [...new Set(classNames.map((name) => parseClassName(name).name))];
    for (const name of named) await this.#require(caller, 'fleet:CreateJoinToken', name);
    const classes = await Promise.all(named.map(async (name) => (await this.#existingClass(caller, name)).name));
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
    if (!isP256PublicKey(input.publicKeyDer)) {
      throw new UserError('ValidationException', 'PublicKey must be a DER SubjectPublicKeyInfo of an ECDSA P-256 key (base64).');
    }
    const proven = verifyMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPublicKeyDer(input.publicKeyDer),
      Buffer.from(`${ENROLL_PROOF_CONTEXT}${input.joinToken}`), input.proof);
    if (!proven) throw new UserError('InvalidProofException', 'Proof is not a signature of the join token by the key being enrolled.');

    const authority = await this.#authority(token.accountId);
    const hostId = `h-${randomBytes(10).toString('hex')}`;
    const caKey = await this.#options.keyring.unsafeUnwrapSecret(FLEET_CA_KEY_PURPOSE, token.accountId, authority.privateKey);
    let issued;
    try {
      issued = await issueCertificate({ authority: { certificateDer: authority.certificateDer, privateKeyPkcs8: caKey },
        subjectPublicKeyDer: input.publicKeyDer, commonName: hostId, usage: 'client',
        uris: [`trustplane:host:${token.accountId}:${hostId}`], validityDays: HOST_CERTIFICATE_DAYS, now });
    } finally {
      zeroize(caKey);
    }
    const host: HostRecord = { hostId, accountId: token.accountId, name: input.name, publicKeyDer: input.publicKeyDer,
      certificateSerial: issued.serialNumber, certificateNotAfter: issued.notAfter, status: 'active', agentVersion: input.agentVersion,
      createdAt: now, lastSeen: now, classes: token.classes };
    try {
      if (!(await this.#options.store.enrollHost(tokenHash, host, now))) throw invalidJoinToken();
    } catch (error) {
      if (error instanceof StoreConflictError) throw new UserError('ConflictException', 'A class named by the join token was deleted; ask for a new token.', 409);
      throw error;
    }
    this.#options.logger.info({ hostId, classes: token.classes }, 'host enrolled');
    return { host, certificatePem: certificateToPem(issued.certificateDer), caCertificatePem: certificateToPem(authority.certificateDer) };
  }

  async listHosts(caller: Caller): Promise<HostRecord[]> {
    await this.#require(caller, 'fleet:ListHosts');
    return this.#options.store.listHosts(caller.accountId);
  }

  async getHost(caller: Caller, hostId: string): Promise<HostRecord & { entitledKeyIds: string[] }> {
    await this.#require(caller, 'fleet:GetHost');
    const host = await this.#options.store.getHost(caller.accountId, hostId);
    if (!host) throw notFound(`Host ${hostId} does not exist.`);
    const classes = classesByName(await this.#options.store.listClasses(caller.accountId));
    return { ...host, entitledKeyIds: entitledKeyIds(classes, host.classes) };
  }

  async setHostClasses(caller: Caller, hostId: string, classNames: string[]): Promise<void> {
    if (classNames.length === 0) throw new UserError('ValidationException', 'A host belongs to at least one class.');
    const classes = [...new Set(classNames.map((name) => parseClassName(name).name))];
    const current = await this.#options.store.getHost(caller.accountId, hostId);
    // Taking a host out of a class is as much a change to that class as putting it in.
    for (const name of new Set([...classes, ...(current?.classes ?? [])])) await this.#require(caller, 'fleet:SetHostClasses', name);
    try {
      if (!(await this.#options.store.setHostClasses(caller.accountId, hostId, classes, this.#now()))) throw notFound(`Host ${hostId} does not exist.`);
    } catch (error) {
      if (error instanceof StoreConflictError) throw notFound(error.message.replace(/^class (\S+) does not exist$/, 'Class $1 does not exist.'));
      throw error;
    }
  }

  async removeHost(caller: Caller, hostId: string): Promise<void> {
    await this.#require(caller, 'fleet:RemoveHost');
    if (!(await this.#options.store.removeHost(caller.accountId, hostId, this.#now()))) throw notFound(`Host ${hostId} does not exist.`);
  }
}
