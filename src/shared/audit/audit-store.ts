// What the audit log needs from storage: append in the caller's transaction, checkpoints, the
// signing key's stored halves, paged reads. Must never offer a way to change or delete a record.
import type { WrappedSecret } from '../crypto/index.ts';
import type {
  AuditCheckpoint, AuditHead, AuditRecord, AuditRecordDraft, AuditSigningPublicKey, StoredAuditRecord,
} from './domain/index.ts';

/** The audit signing key as stored: public half in clear (offline verification), private half wrapped. */
export interface AuditSigningKeyRecord {
  keyId: string;
  /** SubjectPublicKeyInfo, DER. */
  publicKeyDer: Buffer;
  /** PKCS#8 DER, wrapped by Keyring.wrapSecret('audit-signing-key', keyId, ...). */
  privateKey: WrappedSecret;
  createdAt: Date;
  state: 'active' | 'retired';
}

export interface AuditQuery {
  principalArn?: string;
  /** An ARN (exact), or a bare id or alias name matched against the end of resource ARNs. */
  resource?: string;
  operation?: string;
  /** 'Success' or an error code. */
  outcome?: string;
  /** Inclusive, milliseconds since the epoch. */
  since?: number;
  /** Exclusive, milliseconds since the epoch. */
  until?: number;
  /** Only records after this seq (oldest-first) or before it (newest-first). */
  afterSeq?: number;
  beforeSeq?: number;
  limit?: number;
  newestFirst?: boolean;
}

export interface AuditStore {
  /** The head row, as committed (or as seen by the caller's open transaction). */
  readHead(): AuditHead;
  /**
   * Appends drafts after the current head, assigning seq and chain hash. Synchronous and only
   * inside an open transaction on the same connection, so a state change and its record commit
   * (or roll back) together. Drafts come as AuditLog admits them: through the guard, time set.
   */
  appendInTransaction(drafts: readonly AuditRecordDraft[]): AuditRecord[];
  /**
   * Appends in a transaction of its own (one commit for the whole batch); the fsync may happen off
   * the event loop: the records are committed (and visible) on return, and on disk once `durable`
   * resolves. Group commit is built on this.
   */
  appendBatchDurably(drafts: readonly AuditRecordDraft[]): { records: AuditRecord[]; durable: Promise<void> };
  /** Stores a signed checkpoint if it is the next one and names a stored record's hash. */
  writeCheckpoint(checkpoint: AuditCheckpoint): void;
  lastCheckpoint(): AuditCheckpoint | undefined;
  activeSigningKey(): AuditSigningKeyRecord | undefined;
  /** Adds a key and makes it the active one. */
  insertSigningKey(key: AuditSigningKeyRecord): void;
  publicKeys(): AuditSigningPublicKey[];
  /** Records in seq order, read a page at a time (constant memory). */
  records(options?: { afterSeq?: number; pageSize?: number }): Iterable<StoredAuditRecord>;
  /** Checkpoints in number order, read a page at a time. */
  checkpoints(options?: { pageSize?: number }): Iterable<AuditCheckpoint>;
  query(filter: AuditQuery): Iterable<StoredAuditRecord>;
  /** Runs `work` in one read transaction, so paged reads see one consistent state. */
  readSnapshot<T>(work: () => T): T;
  /** Releases what the store holds (file handles); closes the connection only if the store opened it. */
  close(): void;
}
