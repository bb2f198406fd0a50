// Records of the fleet's tables (host classes, hosts, join tokens, the change feed, the CA) and the
// interface the fleet service stores them through. Must never hold a join token in clear, only its hash.
import type { WrappedSecret } from '../crypto/index.ts';
import type { ClassAttestationSettings } from './attest-types.ts';

export interface HostClassRecord {
  accountId: string;
  name: string;
  parent?: string;
  createdAt: Date;
  keyIds: string[];
  /** The class's own attestation settings (hosts also follow their ancestors'). */
  attestation?: ClassAttestationSettings;
}

export interface JoinTokenRecord {
  tokenHash: Buffer;
  accountId: string;
  classes: string[];
  usesLeft: number;
  expiresAt: Date;
  createdAt: Date;
  createdBy: string;
}

export type FleetChangeKind = 'class-created' | 'class-deleted' | 'key-granted' | 'key-revoked'
  | 'host-enrolled' | 'host-classes-changed' | 'host-removed'
  /** A distributed key's versions, default, state or aliases changed (recorded by triggers on the key tables). */
  | 'key-changed'
  /** A host's verdict changed what it may hold (hostId), or a class's attestation settings changed (className). */
  | 'attestation-changed' | 'host-quarantined' | 'host-cleared';

export interface HostRecord {
  hostId: string;
  accountId: string;
  name: string;
  publicKeyDer: Buffer;
  /** The X25519 key key material is sealed to (HPKE); never the identity key. */
  hpkePublicKey?: Buffer;
  certificateSerial: string;
  certificateNotAfter: Date;
  status: 'active' | 'quarantined';
  agentVersion?: string;
  createdAt: Date;
  lastSeen?: Date;
  /** The last change-feed revision the agent acknowledged. */
  revision: number;
  classes: string[];
}

/** Key id → versions a host holds, as its agent acknowledged them. */
export type HostHoldings = Record<string, number[]>;

export type RotationState = 'pending' | 'promoted' | 'superseded';

export interface RotationRecord {
  keyId: string;
  version: number;
  accountId: string;
  state: RotationState;
  /** Why: `staged` (asked for), `scheduled`, `host-removed`, `class-revoked`. */
  reason: string;
  startedAt: Date;
  startedBy: string;
  promoteAfter?: Date;
  promotedAt?: Date;
  promotedBy?: string;
  /** Hosts that had not acknowledged when the version was promoted anyway. */
  leftBehind?: string[];
}

export interface CertificateAuthorityRecord {
  accountId: string;
  certificateDer: Buffer;
  privateKey: WrappedSecret;
  createdAt: Date;
}

export interface FleetChange {
  revision: number;
  accountId: string;
  kind: FleetChangeKind;
  className?: string;
  keyId?: string;
  hostId?: string;
  at: Date;
}

/** Every write is one transaction together with its change feed entry (and the request's audit record). */
export interface FleetStore {
  /** StoreDuplicateError when the class exists, StoreConflictError when the parent does not. */
  createClass(accountId: string, name: string, parent: string | undefined, now: Date): Promise<void>;
  getClass(accountId: string, name: string): Promise<HostClassRecord | undefined>;
  listClasses(accountId: string): Promise<HostClassRecord[]>;
  /** Deletes a class with no child classes and no hosts (StoreConflictError otherwise); false when it did not exist. */
  deleteClass(accountId: string, name: string, now: Date): Promise<boolean>;
  /** Grants a key to a class; false when it already had it (nothing changes, no feed entry). */
  grantKey(accountId: string, className: string, keyId: string, now: Date): Promise<boolean>;
  revokeKey(accountId: string, className: string, keyId: string): Promise<boolean>;

  createJoinToken(token: JoinTokenRecord): Promise<void>;
  /** A token's classes if it could be used now, without using it. */
  peekJoinToken(tokenHash: Buffer, now: Date): Promise<JoinTokenRecord | undefined>;
  /** Uses one use of the token and records the host; false if the token was used up meanwhile. */
  enrollHost(tokenHash: Buffer, host: HostRecord, now: Date): Promise<boolean>;

  changesSince(accountId: string, revision: number, limit: number): Promise<FleetChange[]>;

  getCertificateAuthority(accountId: string): Promise<CertificateAuthorityRecord | undefined>;
  /** Stores the account's CA unless another request stored one first; returns the one in force. */
  putCertificateAuthority(record: CertificateAuthorityRecord): Promise<CertificateAuthorityRecord>;

  getHost(accountId: string, hostId: string): Promise<HostRecord | undefined>;
  listHosts(accountId: string): Promise<HostRecord[]>;
  /** False when the host does not exist; StoreConflictError when a class does not. */
  setHostClasses(accountId: string, hostId: string, classes: string[], now: Date): Promise<boolean>;
  removeHost(accountId: string, hostId: string, now: Date): Promise<boolean>;

  /** A host by id alone (the mTLS listener learns the id from the certificate). */
  findHost(hostId: string): Promise<HostRecord | undefined>;
  replaceHostCertificate(hostId: string, serial: string, notAfter: Date, publicKeyDer: Buffer): Promise<boolean>;
  /** Records what a host holds of the given keys (replacing what it held of them), that it was seen, and its agent's version. */
  recordHoldings(hostId: string, holdings: HostHoldings, removedKeyIds: string[], revision: number, now: Date,
    agentVersion?: string): Promise<boolean>;
  holdingsOf(hostId: string): Promise<HostHoldings>;
  /** Every host's holdings in an account (the inventory), by host id. */
  holdingsByHost(accountId: string): Promise<Map<string, HostHoldings>>;
  /** Hosts that acknowledged one version of a key. */
  hostsHolding(keyId: string, version: number): Promise<string[]>;

  /** Changes of every account after a revision (the push follower's tail). */
  changesAfter(revision: number, limit: number): Promise<FleetChange[]>;
  latestRevision(): Promise<number>;

  /** Inside the caller's write transaction (the key store's addKeyVersion): records a staged version. */
  recordStagedRotationInTransaction(record: RotationRecord): void;
  latestRotation(keyId: string): Promise<RotationRecord | undefined>;
  pendingRotations(): Promise<RotationRecord[]>;
  /** Makes the pending version the default; false when it is no longer pending (someone else promoted it). */
  promoteRotation(keyId: string, version: number, promotedBy: string, leftBehind: string[], now: Date): Promise<boolean>;
  /** Whether any class holds a grant of the key (its rotations go through hosts). */
  isKeyDistributed(keyId: string): boolean;
}
