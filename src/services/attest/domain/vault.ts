// A host's vault: its security attributes (TPM keys, measurements, failures, the last quote clock)
// as one record, sealed with AES-256-GCM under the host's own vault key, bound to the host id.
// Must never be written in clear, nor opened under another host's id (the associated data says whose it is).
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH, GCM_TAG_LENGTH, randomBytes } from '../../../shared/crypto/index.ts';
import type { AttestationFailure, ReportedOperational } from './operational.ts';
import type { EventLogMark, QuoteClock } from './appraisal.ts';

export const VAULT_FORMAT = 1;

export interface HostVault {
  Tpm?: {
    EkPublic: string;
    EkCertificate?: string;
    AkPublic: string;
    AkName: string;
    /** SHA-256 (hex) of the credential secret the TPM must recover, until activation. */
    PendingCredential?: { SecretDigest: string; ExpiresAt: string };
    ActivatedAt?: string;
  };
  Boot?: Record<string, string>;
  Current?: Record<string, string>;
  Failures: AttestationFailure[];
  Clock?: QuoteClock;
  /** TPM mode: the event list accepted last in the current TPM boot. */
  EventLog?: EventLogMark;
  /** The latest operational report and its digest (rewritten only when it changes). */
  Operational?: ReportedOperational;
  OperationalDigest?: string;
  ReferenceVersion?: number;
}

function vaultAad(hostId: string): Buffer {
  return Buffer.from(`trustplane-host-vault-v${VAULT_FORMAT}\0${hostId}`);
}

export function sealVault(vaultKey: Buffer, hostId: string, vault: HostVault): Buffer {
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const sealed = aesGcmEncrypt(vaultKey, nonce, Buffer.from(JSON.stringify(vault)), vaultAad(hostId));
  return Buffer.concat([nonce, sealed.ciphertext, sealed.tag]);
}

export function openVault(vaultKey: Buffer, hostId: string, format: number, sealed: Buffer): HostVault {
  if (format !== VAULT_FORMAT) throw new Error(`host vault format ${format} is not known to this server`);
  const nonce = sealed.subarray(0, GCM_NONCE_LENGTH);
  const tag = sealed.subarray(sealed.length - GCM_TAG_LENGTH);
  const ciphertext = sealed.subarray(GCM_NONCE_LENGTH, sealed.length - GCM_TAG_LENGTH);
  return JSON.parse(aesGcmDecrypt(vaultKey, nonce, ciphertext, tag, vaultAad(hostId)).toString('utf8')) as HostVault;
}
