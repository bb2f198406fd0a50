// The audit log's public surface: the log services write to, the record schema, verification.
// Must never be bypassed: every service records through AuditLog, never straight into the store.
export { AuditLog, type AuditLogOptions, type AuditLogStats } from './audit-log.ts';
export type { AuditStore, AuditQuery, AuditSigningKeyRecord } from './audit-store.ts';
export {
  AUDIT_DECISIONS, AUDIT_SUCCESS, AUDIT_RECORD_FORMAT_VERSION, AuditRecordError, encodeAuditRecord,
  decodeAuditRecord, readAuditRecord, verifyAuditChain, checkpointMessage, chainHash, auditGenesisHash,
  DEFAULT_CHECKPOINT_POLICY,
  type AuditRecord, type AuditRecordDraft, type AuditDecision, type AuditCheckpoint, type AuditHead,
  type AuditChainVerification, type StoredAuditRecord, type AuditSigningPublicKey, type CheckpointPolicy,
} from './domain/index.ts';
export { AUDIT_SIGNING_KEY_PURPOSE, auditKeyFingerprint } from './signing-key.ts';
export { verifyAuditLog, type AuditLogReport, type VerifyAuditLogOptions } from './verify-log.ts';
export { auditErrors, AuditLogClosedError, AuditSigningKeyMismatchError } from './errors.ts';
export { auditRequestScope, recordCurrentRequestInTransaction, type RequestAuditScope } from './request-scope.ts';
