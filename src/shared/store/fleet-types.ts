// Records of the fleet's tables (host classes, hosts, join tokens, allowed endorsement keys and pending
// TPM enrolments, the change feed, the CA) and the interface the fleet service stores them through.
// Must never hold a join token in clear, only its hash.
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

/** An endorsement key admitted to a class: a TPM holding it enrols there without a join token. */
export interface AllowedEkRecord {
  /** SHA-256 (lower-case hex) of the EK's SubjectPublicKeyInfo DER. */
  fingerprint: string;
  accountId: string;
  className: string;
  addedBy: string;
  addedAt: Date;
  /** The live host this EK enrolled, if any (a removed host frees it). */
  enrolledHostId?: string;
}

/** A credential made for an allowed EK, waiting for the TPM to activate it; single use, short-lived. */
export interface TpmEnrolmentRecord {
  enrolmentId: string;
  accountId: string;
  className: string;
  fingerprint: string;
  /** SHA-256 of the credential's secret. */
  secretDigest: Buffer;
  expiresAt: Date;
  createdAt: Date;
  /** What the host sent (JSON), wrapped under the domain key (name: the enrolment id). */
  inputs: WrappedSecret;
}

/** How enrolling a host by its endorsement key went. */
export type EndorsedEnrolmentResult =
  | { kind: 'enrolled' }
  /** The EK is no longer allowed in that class (removed meanwhile). */
  | { kind: 'not-allowed' }
  /** The EK already enrolled a host that is still in the fleet. */
  | { kind: 'in-use'; hostId: string };

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

  /**
   * Admits an EK to a class: true when added, false when it already was in that class;
   * StoreDuplicateError when it is allowed in another class (of any account), StoreConflictError when the class does not exist.
   */
  allowEk(record: Omit<AllowedEkRecord, 'enrolledHostId'>): Promise<boolean>;
  listAllowedEks(accountId: string, className: string): Promise<AllowedEkRecord[]>;
  /** The EK wherever it is allowed (enrolling hosts name no account). */
  findAllowedEk(fingerprint: string): Promise<AllowedEkRecord | undefined>;
  /** Takes an EK off a class's list, with its pending enrolments; false when it was not on it. */
  removeAllowedEk(accountId: string, className: string, fingerprint: string): Promise<boolean>;
  /**
   * Records a pending TPM enrolment, forgets expired ones, and keeps at most `maxPerEk` per EK (the
   * oldest go): callers without credentials cannot grow the table. False when the EK is no longer allowed.
   */
  createTpmEnrolment(record: TpmEnrolmentRecord, maxPerEk: number, now: Date): Promise<boolean>;
  /** Takes a pending enrolment out (single use, whatever happens next); undefined when unknown or expired. */
  takeTpmEnrolment(enrolmentId: string, now: Date): Promise<TpmEnrolmentRecord | undefined>;
  purgeTpmEnrolments(now: Date): Promise<number>;
  /**
   * Records a host admitted by its EK in the class the EK is allowed in (host.classes), and marks
   * the EK as having enrolled it, in one transaction. StoreConflictError when the class is gone.
   */
  enrollHostByEndorsement(host: HostRecord, fingerprint: string, now: Date): Promise<EndorsedEnrolmentResult>;

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
