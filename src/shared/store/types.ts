// Records the store keeps, shared by every implementation. Key material appears here only
// wrapped (WrappedSecret); nothing in a record is usable without the crypto module.
import type { DomainKeyStore, WrappedSecret } from '../crypto/index.ts';

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';
export type KeyUsage = 'ENCRYPT_DECRYPT' | 'SIGN_VERIFY' | 'GENERATE_VERIFY_MAC';
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
  /** Versions below this one are refused for decryption (trustplane extension). */
  minDecryptVersion: number;
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

export interface PrincipalRecord {
  arn: string;
  accountId: string;
  kind: PrincipalKind;
  name: string;
  createdAt: Date;
}

export type AccessKeyStatus = 'Active' | 'Inactive';

export interface AccessKeyRecord {
  accessKeyId: string;
  principalArn: string;
  secret: WrappedSecret;
  status: AccessKeyStatus;
  createdAt: Date;
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
  policy?: string;
}

/**
 * The one store interface. Every method is one transaction: it either happens whole or not at
 * all. Implementations: SQLite (embedded default) and, later, PostgreSQL for many replicas.
 */
export interface Store extends DomainKeyStore {
  close(): Promise<void>;
  getMeta(name: string): Promise<string | undefined>;
  /** Sets a value only if absent; returns the value in force afterwards. */
  initMeta(name: string, value: string): Promise<string>;

  getPrincipal(arn: string): Promise<PrincipalRecord | undefined>;
  createPrincipal(principal: PrincipalRecord, accessKey?: AccessKeyRecord): Promise<void>;
  getAccessKey(accessKeyId: string): Promise<AccessKeyRecord | undefined>;

  createKey(key: KeyRecord, firstVersion: KeyVersionRecord, tags: TagRecord[]): Promise<void>;
  getKey(keyId: string): Promise<KeyRecord | undefined>;
  listKeys(accountId: string, limit: number, marker?: string): Promise<Page<KeyRecord>>;
  /** Applies a patch if the key is still at `expectedRevision`; StoreConflictError otherwise. */
  updateKey(keyId: string, expectedRevision: number, patch: KeyPatch): Promise<KeyRecord>;
  /** Adds the next version and makes it the default, in one transaction. */
  addKeyVersion(keyId: string, expectedRevision: number, version: KeyVersionRecord, patch: KeyPatch): Promise<KeyRecord>;
  getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined>;
  listKeyVersions(keyId: string, limit: number, marker?: string): Promise<Page<KeyVersionRecord>>;
  /** Removes a key with its versions, aliases and tags. */
  deleteKey(keyId: string): Promise<void>;
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
