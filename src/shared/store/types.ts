// Records the store keeps, shared by every implementation. Key material appears here only
// wrapped (WrappedSecret); nothing in a record is usable without the crypto module.
import type { DomainKeyStore, WrappedRecordStore, WrappedSecret } from '../crypto/index.ts';

/**
 * What each stored secret (not a customer key) is wrapped for: bound into the wrap's associated
 * data with the row's name, and the store's name for the rows that hold it. Defined once, here.
 */
export const SECRET_PURPOSES = {
  accessKey: 'access-key',
  auditSigningKey: 'audit-signing-key',
  fleetCaKey: 'fleet-ca-key',
  hostVaultKey: 'host-vault-key',
  verifierSigningKey: 'verifier-signing-key',
  appKey: 'app-key',
  referencePolicy: 'reference-policy',
  attestationAlert: 'attestation-alert',
  tpmEnrolment: 'tpm-enrolment',
  privopRelayRequest: 'privop-relay-request',
  privopCampaignSigner: 'privop-campaign-signer',
} as const;

export type SecretPurpose = (typeof SECRET_PURPOSES)[keyof typeof SECRET_PURPOSES];

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';
/** SECRET_VALUE: a secret key's versions are opaque values (a password, an API token) that hosts fetch whole. */
export type KeyUsage = 'ENCRYPT_DECRYPT' | 'SIGN_VERIFY' | 'GENERATE_VERIFY_MAC' | 'SECRET_VALUE';
export type RotationType = 'AUTOMATIC' | 'ON_DEMAND';

export interface KeyRecord {
  keyId: string;
  accountId: string;
  arn: string;
  description: string;
  keySpec: string;
  keyUsage: KeyUsage;
  keyState: KeyState;
  origin: string;
  createdAt: Date;
  deletionDate?: Date;
  pendingWindowInDays?: number;
  /** The default version: new ciphertexts and signatures use it. */
  currentVersion: number;
  /** A staged version (two-phase rotation): decrypts, is pushed to hosts, not yet the default. */
  pendingVersion?: number;
  /** Versions below this one are refused for decryption (trustplane extension). */
  minDecryptVersion: number;
  /** Whether losing a host that held the key (removed, or its class's grant revoked) rotates it. */
  rotateOnHostLoss: boolean;
  rotationEnabled: boolean;
  rotationPeriodInDays?: number;
  nextRotationAt?: Date;
  policy: string;
  /** Bumped on every change, for optimistic concurrency. */
  revision: number;
}

export interface KeyVersionRecord {
  keyId: string;
  version: number;
  material: WrappedSecret;
  publicKeyDer?: Buffer;
  createdAt: Date;
  /** How this version came to be: undefined for the first one. */
  rotationType?: RotationType;
}

export interface AliasRecord {
  accountId: string;
  aliasName: string;
  keyId: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface TagRecord {
  tagKey: string;
  tagValue: string;
}

export type PrincipalKind = 'root' | 'user' | 'role' | 'host';

export interface AccountRecord {
  accountId: string;
  name: string;
  createdAt: Date;
  /** The account created at initialisation; its root may create other accounts. */
  management: boolean;
}

export interface PrincipalRecord {
  arn: string;
  accountId: string;
  kind: PrincipalKind;
  name: string;
  createdAt: Date;
  tags?: Record<string, string>;
  /** Roles only: who may assume the role (a resource policy document). */
  trustPolicy?: string;
  /** Roles only: the longest session AssumeRole may grant, in seconds. */
  maxSessionSeconds?: number;
}

export type AccessKeyStatus = 'Active' | 'Inactive';

export interface AccessKeyRecord {
  accessKeyId: string;
  principalArn: string;
  secret: WrappedSecret;
  status: AccessKeyStatus;
  createdAt: Date;
  /** Temporary credentials only: SHA-256 of the session token, the session name and expiry. */
  session?: { tokenHash: Buffer; name: string; expiresAt: Date };
}

export interface PrincipalPolicyRecord {
  principalArn: string;
  policyName: string;
  document: string;
  updatedAt: Date;
}

export interface GrantConstraints {
  encryptionContextEquals?: Record<string, string>;
  encryptionContextSubset?: Record<string, string>;
}

export interface GrantRecord {
  grantId: string;
  keyId: string;
  /** The key's account. */
  accountId: string;
  name?: string;
  granteePrincipal: string;
  retiringPrincipal?: string;
  operations: string[];
  constraints?: GrantConstraints;
  issuingAccount: string;
  createdAt: Date;
  /** SHA-256 of the grant token, so a token can be matched without storing it. */
  tokenHash: Buffer;
}

export interface Page<T> {
  items: T[];
  /** Opaque marker for the next page, when there is one. */
  nextMarker?: string;
}

/** Store-level conflict: a concurrent change won; the caller may re-read and retry. */
export class StoreConflictError extends Error {
  constructor(message: string) { super(message); this.name = 'StoreConflictError'; }
}

/** A per-principal limit (active access keys) would be exceeded. */
export class StoreLimitError extends Error {
  constructor(message: string) { super(message); this.name = 'StoreLimitError'; }
}

/** A unique name (alias, principal) already exists. */
export class StoreDuplicateError extends Error {
  constructor(message: string) { super(message); this.name = 'StoreDuplicateError'; }
}

export interface KeyPatch {
  description?: string;
  keyState?: KeyState;
  deletionDate?: Date | null;
  pendingWindowInDays?: number | null;
  rotationEnabled?: boolean;
  rotationPeriodInDays?: number | null;
  nextRotationAt?: Date | null;
  minDecryptVersion?: number;
  currentVersion?: number;
  pendingVersion?: number | null;
  rotateOnHostLoss?: boolean;
  policy?: string;
}

/**
 * The one store interface. Every method is one transaction: it either happens whole or not at
 * all. Implementations: SQLite (embedded default) and, later, PostgreSQL for many replicas.
 */
export interface Store extends DomainKeyStore, WrappedRecordStore {
  close(): Promise<void>;
  getMeta(name: string): Promise<string | undefined>;
  /** Forgets a crypto module nothing is wrapped under (a crashed init); StoreConflictError otherwise. */
  abandonUnusedModule(): Promise<void>;
  /** Sets a value only if absent; returns the value in force afterwards. */
  initMeta(name: string, value: string): Promise<string>;

  createAccount(account: AccountRecord, root: PrincipalRecord, rootKey: AccessKeyRecord): Promise<void>;
  getAccount(accountId: string): Promise<AccountRecord | undefined>;
  getAccountByName(name: string): Promise<AccountRecord | undefined>;
  listAccounts(limit: number, marker?: string): Promise<Page<AccountRecord>>;

  getPrincipal(arn: string): Promise<PrincipalRecord | undefined>;
  createPrincipal(principal: PrincipalRecord, accessKey?: AccessKeyRecord): Promise<void>;
  /** Deletes a principal with its access keys and policies; false when it did not exist. */
  deletePrincipal(arn: string): Promise<boolean>;
  listPrincipals(accountId: string, kind: PrincipalKind, limit: number, marker?: string): Promise<Page<PrincipalRecord>>;
  setTrustPolicy(roleArn: string, document: string): Promise<void>;
  putPrincipalPolicy(policy: PrincipalPolicyRecord): Promise<void>;
  deletePrincipalPolicy(principalArn: string, policyName: string): Promise<boolean>;
  listPrincipalPolicies(principalArn: string): Promise<PrincipalPolicyRecord[]>;

  getAccessKey(accessKeyId: string): Promise<AccessKeyRecord | undefined>;
  /** Adds a long-term key unless the principal already has `maxActive` active keys (StoreLimitError). */
  addAccessKey(accessKey: AccessKeyRecord, maxActive: number): Promise<void>;
  /** Long-term keys only (not session credentials). */
  listAccessKeys(principalArn: string): Promise<AccessKeyRecord[]>;
  setAccessKeyStatus(accessKeyId: string, status: AccessKeyStatus, maxActive: number): Promise<boolean>;
  deleteAccessKey(accessKeyId: string): Promise<boolean>;
  deleteExpiredSessions(now: Date): Promise<number>;

  createGrant(grant: GrantRecord): Promise<void>;
  getGrant(grantId: string): Promise<GrantRecord | undefined>;
  findGrantByTokenHash(tokenHash: Buffer): Promise<GrantRecord | undefined>;
  listGrants(filter: { keyId?: string; grantee?: string; retiringPrincipal?: string; grantId?: string },
    limit: number, marker?: string): Promise<Page<GrantRecord>>;
  /** Grants on a key naming this grantee, for authorisation. */
  grantsFor(keyId: string, granteePrincipal: string): Promise<GrantRecord[]>;
  deleteGrant(grantId: string): Promise<boolean>;

  createKey(key: KeyRecord, firstVersion: KeyVersionRecord, tags: TagRecord[]): Promise<void>;
  getKey(keyId: string): Promise<KeyRecord | undefined>;
  listKeys(accountId: string, limit: number, marker?: string): Promise<Page<KeyRecord>>;
  /** Applies a patch if the key is still at `expectedRevision`; StoreConflictError otherwise. */
  updateKey(keyId: string, expectedRevision: number, patch: KeyPatch): Promise<KeyRecord>;
  /** Adds the next version and makes it the default, in one transaction. */
  /** Adds a version; it becomes the default unless `staged`, when it becomes the pending version instead. */
  addKeyVersion(keyId: string, expectedRevision: number, version: KeyVersionRecord, patch: KeyPatch,
    options?: { staged?: boolean; alsoInTransaction?: () => void }): Promise<KeyRecord>;
  getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined>;
  listKeyVersions(keyId: string, limit: number, marker?: string, options?: { rotationsOnly?: boolean }): Promise<Page<KeyVersionRecord>>;
  /** Removes a key (with its versions, aliases and tags) only if it is still pending deletion and due. */
  deleteKeyIfDue(keyId: string, now: Date): Promise<boolean>;
  listKeysDueForDeletion(now: Date): Promise<KeyRecord[]>;
  listKeysDueForRotation(now: Date): Promise<KeyRecord[]>;

  createAlias(alias: AliasRecord): Promise<void>;
  getAlias(accountId: string, aliasName: string): Promise<AliasRecord | undefined>;
  updateAlias(accountId: string, aliasName: string, keyId: string, now: Date): Promise<void>;
  deleteAlias(accountId: string, aliasName: string): Promise<boolean>;
  listAliases(accountId: string, keyId: string | undefined, limit: number, marker?: string): Promise<Page<AliasRecord>>;

  putTags(keyId: string, tags: TagRecord[]): Promise<void>;
  removeTags(keyId: string, tagKeys: string[]): Promise<void>;
  listTags(keyId: string, limit: number, marker?: string): Promise<Page<TagRecord>>;
}
