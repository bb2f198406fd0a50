// Records of the attestation tables (host vaults, verdicts, reference policies, the
// verifier's keys, attested certificates, alerts, app keys) and the interface they are stored through.
// Must never hold a host's security attributes in clear: those live only inside its encrypted vault.
import type { WrappedSecret } from '../crypto/index.ts';

export type AttestationMode = 'tpm' | 'software';
/** `pending`: enrolled, no verdict yet. `silent`: missed too many intervals. */
export type AttestationStatus = 'pending' | 'affirming' | 'warning' | 'contraindicated' | 'silent';
export type CorrectiveAction = 'flag' | 'alert' | 'revoke';
export type ActionTrigger = 'contraindicated' | 'warning' | 'silent';

/** A class's attestation settings, stored as JSON on the class. */
export interface ClassAttestationSettings {
  mode: AttestationMode;
  intervalSeconds: number;
  /** Intervals a host may miss before it is flagged silent. */
  silentAfter: number;
  actions: Record<ActionTrigger, CorrectiveAction[]>;
  webhookUrl?: string;
  /** Whether hosts may enrol into the class with a join token; false: only TPMs whose EK is on its allowlist. */
  joinTokens: boolean;
}

/** Settings as stored (JSON on the class); those written before a setting existed get its default. */
export function classAttestationFromJson(text: string): ClassAttestationSettings {
  return { joinTokens: true, ...(JSON.parse(text) as Partial<ClassAttestationSettings>) } as ClassAttestationSettings;
}

/** The verdict in clear: what the scheduler and the push need without opening a vault. */
export interface HostAttestationRecord {
  hostId: string;
  accountId: string;
  status: AttestationStatus;
  mode: AttestationMode;
  /** The attestation key was proven to live in the host's TPM (credential activation); always true in software mode. */
  akTrusted: boolean;
  lastEvidence?: Date;
  lastVerified?: Date;
  /** When the host counts as silent unless new evidence arrives. */
  silentAt?: Date;
  failureCount: number;
}

export interface HostVaultRecord {
  hostId: string;
  accountId: string;
  vaultKey: WrappedSecret;
  format: number;
  ciphertext: Buffer;
  revision: number;
}

export interface ReferencePolicyRecord {
  accountId: string;
  className: string;
  version: number;
  /** Canonical JSON of the policy document, wrapped under the domain key (name `account/class`). */
  document: WrappedSecret;
  /** The verifier's compact JWS over the document (detached payload). */
  signature: string;
  createdAt: Date;
  createdBy: string;
}

export interface VerifierKeyRecord {
  keyId: string;
  /** SubjectPublicKeyInfo DER. */
  publicKeyDer: Buffer;
  privateKey: WrappedSecret;
  createdAt: Date;
}

/** The revocation reason of attested certificates whose host was removed from the fleet. */
export const HOST_REMOVED_REASON = 'host removed';

export interface AttestedCertificateRecord {
  serial: string;
  accountId: string;
  hostId: string;
  notAfter: Date;
  issuedAt: Date;
  revokedAt?: Date;
  revocationReason?: string;
}

export interface AlertRecord {
  id: number;
  /** Names the wrapped body (the associated data binds it). */
  alertId: string;
  accountId: string;
  url: string;
  body: WrappedSecret;
  attempts: number;
  nextAttemptAt: Date;
}

export interface AppKeyRecord {
  accountId: string;
  className: string;
  name: string;
  key: WrappedSecret;
  storedBy: string;
  storedAt: Date;
}

/** One verdict, written in one transaction with everything it causes. */
export interface VerdictWrite {
  attestation: HostAttestationRecord;
  /** The vault as it is now, when it changed; written only if its revision is still `expectedRevision`. */
  vault?: { record: HostVaultRecord; expectedRevision: number };
  /** Whether what the host may hold changed (a feed entry makes the push look at its ring again). */
  entitlementChanged: boolean;
  /** The alert the verdict sets off, queued in the same transaction. */
  alert?: { alertId: string; url: string; body: WrappedSecret };
  /** Written only if the stored verdict still has this status and last evidence time (nobody wrote a newer one). */
  expected?: { status: AttestationStatus; lastEvidence?: Date };
  /** Revoke the host's attested certificates (they vouch for an attestation that no longer holds). */
  revokeCertificates?: { reason: string };
  /** Quarantine the host and revoke its attested certificates. */
  quarantine?: { reason: string };
}

export interface AttestStore {
  setClassAttestation(accountId: string, className: string, settings: ClassAttestationSettings | undefined, now: Date): Promise<boolean>;
  classAttestation(accountId: string): Promise<Map<string, ClassAttestationSettings>>;


  getAttestation(hostId: string): Promise<HostAttestationRecord | undefined>;
  listAttestations(accountId: string): Promise<HostAttestationRecord[]>;
  /** Hosts past their silence deadline that are not yet flagged silent. */
  dueSilent(now: Date, limit: number): Promise<HostAttestationRecord[]>;
  getVault(hostId: string): Promise<HostVaultRecord | undefined>;
  /** Creates the vault and the pending verdict of a newly enrolled host (false if it has one). */
  createVault(record: HostVaultRecord, attestation: HostAttestationRecord): Promise<boolean>;
  /** False when the vault changed meanwhile (nothing written). */
  recordVerdict(write: VerdictWrite, now: Date): Promise<boolean>;
  /**
   * Records, in one transaction, that hosts sent evidence with an unchanged verdict (when, and when
   * they count as silent); times only move forward, so a late batch never undoes a newer verdict's.
   */
  touchAttestations(seen: Array<{ hostId: string; at: Date; silentAt: Date }>): Promise<void>;
  /** Lifts a quarantine; false when the host was not quarantined. */
  clearQuarantine(accountId: string, hostId: string, now: Date): Promise<boolean>;

  latestReferencePolicy(accountId: string, className: string): Promise<ReferencePolicyRecord | undefined>;
  /** Stores the next version; returns it. */
  addReferencePolicy(record: Omit<ReferencePolicyRecord, 'version'>): Promise<number>;

  listVerifierKeys(): Promise<VerifierKeyRecord[]>;
  /** Stores a key unless one exists; returns the keys in force. */
  addVerifierKey(record: VerifierKeyRecord): Promise<VerifierKeyRecord[]>;

  /**
   * Records an issued certificate, in one transaction with the check that its host is still active
   * and affirming: false (nothing recorded, so the certificate must not be handed out) otherwise.
   */
  recordAttestedCertificate(record: AttestedCertificateRecord): Promise<boolean>;
  /** A certificate by serial (lower-case hex); one whose host was removed reads as revoked. */
  getAttestedCertificate(serial: string): Promise<AttestedCertificateRecord | undefined>;
  /** Revoked certificates of an account, those of removed hosts included. */
  revokedCertificates(accountId: string): Promise<AttestedCertificateRecord[]>;

  dueAlerts(now: Date, limit: number): Promise<AlertRecord[]>;
  /** Delivered (nextAttemptAt undefined) or to be retried at nextAttemptAt. */
  settleAlert(id: number, delivered: boolean, nextAttemptAt: Date | undefined, error: string | undefined, now: Date): Promise<void>;

  /** Stores or replaces an app key; false (nothing written) when another host stored it: only that host may replace it. */
  putAppKey(record: AppKeyRecord): Promise<boolean>;
  getAppKey(accountId: string, className: string, name: string): Promise<AppKeyRecord | undefined>;
}
