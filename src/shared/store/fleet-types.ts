// Records of the fleet's tables (host classes, hosts, join tokens, the change feed, the CA) and the
// interface the fleet service stores them through. Must never hold a join token in clear, only its hash.
import type { WrappedSecret } from '../crypto/index.ts';

export interface HostClassRecord {
  accountId: string;
  name: string;
  parent?: string;
  createdAt: Date;
  keyIds: string[];
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
  | 'host-enrolled' | 'host-classes-changed' | 'host-removed';

export interface HostRecord {
  hostId: string;
  accountId: string;
  name: string;
  publicKeyDer: Buffer;
  certificateSerial: string;
  certificateNotAfter: Date;
  status: 'active' | 'quarantined';
  agentVersion?: string;
  createdAt: Date;
  lastSeen?: Date;
  classes: string[];
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
}
