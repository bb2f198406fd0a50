// The audit log's pure core: record schema and guard, canonical form, hash chain, checkpoints, verification.
// Must never do I/O: storage and signing keys live outside, in the store and the audit log.
export { canonicalJson, type CanonicalValue } from './canonical-json.ts';
export {
  AUDIT_RECORD_FORMAT_VERSION, AUDIT_DECISIONS, AUDIT_SUCCESS, MAX_AUDIT_FIELD_LENGTH, AuditRecordError,
  sanitizeAuditDraft, toAuditRecord, placeAuditDraft, encodeAuditRecord, decodeAuditRecord, readAuditRecord,
  type AuditRecord, type AuditRecordDraft, type AuditDecision, type SanitizedDraft,
} from './record.ts';
export { AUDIT_HASH_LENGTH, auditGenesisHash, chainHash, sameHash } from './chain.ts';
export {
  AUDIT_CHECKPOINT_FORMAT_VERSION, AUDIT_SIGNATURE_SCHEME, DEFAULT_CHECKPOINT_POLICY, checkpointMessage, isCheckpointDue,
  type AuditCheckpoint, type AuditCheckpointBody, type AuditSigningPublicKey, type CheckpointPolicy, type CheckpointState,
} from './checkpoint.ts';
export { verifyAuditChain, type AuditChainVerification, type AuditHead, type StoredAuditRecord } from './verify-chain.ts';
