// Verifies a stored audit log end to end and reports it in the shape `audit verify --json` prints.
// Must never modify the log, and never report it intact when a pinned signing key is absent.
import type { AuditStore } from './audit-store.ts';
import { verifyAuditChain, type AuditSigningPublicKey } from './domain/index.ts';
import { auditKeyFingerprint } from './signing-key.ts';

export interface AuditLogReport {
  intact: boolean;
  /** Records that verified (every record when intact). */
  records: number;
  /** The last record's seq when intact; otherwise the last that verified. */
  lastSequence: number;
  checkpoints: number;
  lastCheckpointSequence: number;
  /** hash_lastSequence in hex, when intact: worth recording off the host. */
  chainHead?: string;
  signingKeys: Array<{ keyId: string; fingerprint: string }>;
  firstBadSequence?: number;
  reason?: string;
}

export interface VerifyAuditLogOptions {
  /** SHA-256 (hex) of the expected signing key's SubjectPublicKeyInfo: guards against a swapped public key. */
  expectedKeyFingerprint?: string;
}

/** Verifies records, checkpoints and head in one read snapshot, in constant memory. */
export function verifyAuditLog(store: AuditStore, options: VerifyAuditLogOptions = {}): AuditLogReport {
  return store.readSnapshot(() => {
    const head = store.readHead();
    const stored = store.publicKeys();
    const signingKeys = stored.map((key) => ({ keyId: key.keyId, fingerprint: auditKeyFingerprint(key.publicKeyDer) }));
    const pinned = options.expectedKeyFingerprint?.toLowerCase();
    let trusted: AuditSigningPublicKey[] = stored;
    if (pinned !== undefined) {
      trusted = stored.filter((key) => auditKeyFingerprint(key.publicKeyDer) === pinned);
      if (trusted.length === 0) {
        return { intact: false, records: 0, lastSequence: 0, checkpoints: 0, lastCheckpointSequence: 0, signingKeys,
          firstBadSequence: 1, reason: `the log holds no audit signing key with fingerprint ${pinned}; its public key was replaced or it is another log` };
      }
    }
    const result = verifyAuditChain(store.records(), store.checkpoints(), trusted, { head });
    if (result.ok) {
      return { intact: true, records: result.records, lastSequence: result.lastSeq, checkpoints: result.checkpoints,
        lastCheckpointSequence: result.lastCheckpointSeq, chainHead: result.chainHead.toString('hex'), signingKeys };
    }
    return { intact: false, records: result.records, lastSequence: result.records, checkpoints: result.checkpoints,
      lastCheckpointSequence: result.lastCheckpointSeq, signingKeys, firstBadSequence: result.firstBadSeq, reason: result.reason };
  });
}
