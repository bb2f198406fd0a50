// The audit log every service writes to: group commit (one transaction for the records of many
// concurrent requests), records inside a state change's transaction, and signed checkpoints.
// Must never tell a caller its record is stored before it has committed, nor sign while sealed.
import type { Keyring } from '../crypto/index.ts';
import { SealedError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { AuditSigningKeyRecord, AuditStore } from './audit-store.ts';
import {
  AUDIT_CHECKPOINT_FORMAT_VERSION, DEFAULT_CHECKPOINT_POLICY, checkpointMessage, isCheckpointDue, sanitizeAuditDraft,
  type AuditCheckpoint, type AuditRecord, type AuditRecordDraft, type CheckpointPolicy,
} from './domain/index.ts';
import { AuditLogClosedError } from './errors.ts';
import { createAuditSigningKey, signWithAuditKey } from './signing-key.ts';

export interface AuditLogOptions {
  store: AuditStore;
  /** Wraps the audit signing key at creation and unwraps it for each checkpoint. */
  keyring: Keyring;
  logger?: Logger;
  /** Defaults: every 1000 records or 60 s, whichever comes first. */
  checkpoint?: Partial<CheckpointPolicy>;
  /** Most records per transaction (default 256); more pending records take more transactions. */
  maxBatchRecords?: number;
  /** 0 (default): flush once the current turn of the event loop has queued its records. */
  flushDelayMs?: number;
  now?: () => number;
}

export interface AuditLogStats {
  recordsWritten: number;
  /** Group-commit transactions (one commit each; batches committed during an fsync share the next one). */
  transactions: number;
  checkpointsWritten: number;
  /** Times a due checkpoint waited because the crypto module was sealed. */
  checkpointsDeferred: number;
  pending: number;
}

interface PendingRecord {
  draft: AuditRecordDraft;
  resolve(seq: number): void;
  reject(error: unknown): void;
}

const DEFAULT_MAX_BATCH = 256;
const MAX_TIMER_PERIOD_MS = 1000;
const MAX_REMEMBERED_DROPS = 100;

export class AuditLog {
  readonly #store: AuditStore;
  readonly #keyring: Keyring;
  readonly #logger: Logger | undefined;
  readonly #policy: CheckpointPolicy;
  readonly #maxBatch: number;
  readonly #flushDelayMs: number;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  readonly #stats = { recordsWritten: 0, transactions: 0, checkpointsWritten: 0, checkpointsDeferred: 0 };
  readonly #reportedDrops = new Set<string>();
  #pending: PendingRecord[] = [];
  #flushScheduled = false;
  #flushQueued = false;
  #checkScheduled = false;
  #checkpointRun: Promise<AuditCheckpoint | undefined> | undefined;
  #signingKey: Promise<AuditSigningKeyRecord> | undefined;
  #lastCheckpointAt: number;
  /** The head's checkpoint seq as last read or written: only this log writes checkpoints. */
  #checkpointSeq: number | undefined;
  #closing: Promise<void> | undefined;
  /** A committed batch is waiting for its fsync; records queued meanwhile commit together once it is done. */
  #syncing = false;
  /** Settles after the newest batch's fsync (they complete in order) and the flush that follows it. */
  #lastDurable: Promise<void> = Promise.resolve();

  private constructor(options: AuditLogOptions) {
    this.#store = options.store;
    this.#keyring = options.keyring;
    this.#logger = options.logger;
    this.#policy = { ...DEFAULT_CHECKPOINT_POLICY, ...options.checkpoint };
    this.#maxBatch = Math.max(1, options.maxBatchRecords ?? DEFAULT_MAX_BATCH);
    this.#flushDelayMs = options.flushDelayMs ?? 0;
    this.#now = options.now ?? Date.now;
    this.#lastCheckpointAt = this.#store.lastCheckpoint()?.time ?? this.#now();
    this.#timer = setInterval(() => this.#checkCheckpoint(), Math.max(1, Math.min(this.#policy.intervalMs, MAX_TIMER_PERIOD_MS)));
    this.#timer.unref();
  }

  /** Opens the log; makes the signing key now if the crypto module is unsealed (else at the first checkpoint). */
  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const log = new AuditLog(options);
    if (!options.keyring.module.status().sealed) {
      try {
        await log.#ensureSigningKey();
      } catch (error) {
        if (!(error instanceof SealedError)) {
          clearInterval(log.#timer);
          throw error;
        }
      }
    }
    return log;
  }

  /**
   * Queues a record and resolves with its seq once it has committed and is on disk.
   * Records queued in the same turn of the event loop share one transaction. Rejects if the
   * draft breaks the schema or the write fails: a caller holding its response should then fail it.
   */
  record(draft: AuditRecordDraft): Promise<number> {
    if (this.#closing) return Promise.reject(new AuditLogClosedError());
    let admitted: AuditRecordDraft;
    try {
      admitted = this.#admit(draft);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise<number>((resolve, reject) => {
      this.#pending.push({ draft: admitted, resolve, reject });
      this.#scheduleFlush();
    });
  }

  /**
   * Appends a record inside the caller's open transaction on the store's connection, so a state
   * change and its record commit or roll back together. Synchronous; throws outside a transaction.
   */
  recordInTransaction(draft: AuditRecordDraft): AuditRecord {
    if (this.#closing) throw new AuditLogClosedError();
    const [record] = this.#store.appendInTransaction([this.#admit(draft)]);
    // After the caller's transaction has ended, whichever way it went.
    if (!this.#checkScheduled) {
      this.#checkScheduled = true;
      setImmediate(() => {
        this.#checkScheduled = false;
        this.#checkCheckpoint();
      });
    }
    return record;
  }

  /** Writes every queued record and waits until they are on disk (close() and tests; record() does not need it). */
  async flush(): Promise<void> {
    this.#flushNow();
    while (this.#syncing) await this.#lastDurable;
  }

  /**
   * Signs a checkpoint at the current head, if any record is unsigned. Resolves undefined when
   * there is nothing to sign or the crypto module is sealed (a later checkpoint catches up).
   */
  async checkpointNow(): Promise<AuditCheckpoint | undefined> {
    while (this.#checkpointRun) await this.#checkpointRun.catch(() => undefined);
    const run = this.#writeCheckpoint();
    this.#checkpointRun = run;
    try {
      return await run;
    } finally {
      if (this.#checkpointRun === run) this.#checkpointRun = undefined;
    }
  }

  stats(): AuditLogStats {
    return { ...this.#stats, pending: this.#pending.length };
  }

  /**
   * Writes queued records, waits for them to reach the disk, signs a final checkpoint if unsealed,
   * and refuses further records. The store stays open: its owner closes it afterwards.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      await this.flush();
      try {
        await this.checkpointNow();
      } catch (error) {
        this.#logger?.error({ err: error }, 'audit: final checkpoint failed');
      }
    })();
    return this.#closing;
  }

  #admit(input: AuditRecordDraft): AuditRecordDraft {
    const { draft, droppedFields } = sanitizeAuditDraft(input);
    if (droppedFields.length > 0) this.#reportDrop(droppedFields, draft);
    // The time a request was recorded, not the time its batch happened to commit.
    if (draft.time === undefined) draft.time = this.#now();
    return draft;
  }

  #reportDrop(fields: string[], draft: AuditRecordDraft): void {
    const signature = `${draft.service}:${draft.operation}:${fields.join(',')}`;
    if (this.#reportedDrops.has(signature) || this.#reportedDrops.size >= MAX_REMEMBERED_DROPS) return;
    this.#reportedDrops.add(signature);
    // Names only: the values are exactly what must not reach any log.
    this.#logger?.warn({ service: draft.service, operation: draft.operation, fields },
      'audit: fields outside the record schema were left out');
  }

  #scheduleFlush(): void {
    if (this.#pending.length >= this.#maxBatch) {
      // A microtask still runs outside any synchronous transaction of the code that queued it.
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => {
          this.#flushQueued = false;
          this.#flushNow();
        });
      }
      return;
    }
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    const run = () => {
      this.#flushScheduled = false;
      this.#flushNow();
    };
    if (this.#flushDelayMs > 0) setTimeout(run, this.#flushDelayMs);
    else setImmediate(run);
  }

  // Group commit: every record queued since the last commit goes into one transaction (or a few,
  // of maxBatch each); while their fsync runs off the event loop, new records wait and then commit
  // together. A record queued during an fsync needs the next fsync anyway, so waiting costs it
  // nothing, and the commits (each with a fixed cost on the event loop) stay few under load.
  #flushNow(): void {
    if (this.#syncing || this.#pending.length === 0) return;
    let synced: Promise<void> | undefined;
    // The head after the last batch that committed; unknown (read it) if any batch failed.
    let headSeq: number | undefined;
    let failed = false;
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, this.#maxBatch);
      let appended: { records: AuditRecord[]; durable: Promise<void> };
      try {
        appended = this.#store.appendBatchDurably(batch.map((pending) => pending.draft));
      } catch (error) {
        this.#logger?.error({ err: error, records: batch.length }, 'audit: writing records failed');
        for (const pending of batch) pending.reject(error);
        failed = true;
        continue;
      }
      this.#stats.transactions += 1;
      this.#stats.recordsWritten += appended.records.length;
      const { records } = appended;
      headSeq = records.at(-1)?.seq ?? headSeq;
      // Committed now; acknowledged once on disk.
      synced = appended.durable.then(() => {
        for (let index = 0; index < batch.length; index += 1) batch[index].resolve(records[index].seq);
      }, (error: unknown) => {
        this.#logger?.error({ err: error, records: batch.length }, 'audit: syncing records to disk failed');
        for (const pending of batch) pending.reject(error);
      });
    }
    if (synced) {
      this.#syncing = true;
      this.#lastDurable = synced.then(() => {
        this.#syncing = false;
        this.#flushNow();
      });
    }
    this.#checkCheckpoint(failed ? undefined : headSeq);
  }

  /** `committedSeq`: the head just committed by this log, which spares reading it back. */
  #checkCheckpoint(committedSeq?: number): void {
    if (this.#checkpointRun || this.#closing) return;
    let due: boolean;
    try {
      let headSeq = committedSeq;
      let checkpointSeq = this.#checkpointSeq;
      if (headSeq === undefined || checkpointSeq === undefined) {
        const head = this.#store.readHead();
        headSeq = head.seq;
        checkpointSeq = this.#checkpointSeq = head.checkpointSeq;
      }
      due = isCheckpointDue(this.#policy, { headSeq, checkpointSeq, lastCheckpointAt: this.#lastCheckpointAt, now: this.#now() });
    } catch (error) {
      this.#logger?.error({ err: error }, 'audit: reading the log head failed');
      return;
    }
    if (!due) return;
    this.checkpointNow().catch((error: unknown) => {
      this.#logger?.error({ err: error }, 'audit: checkpoint failed; retrying later');
    });
  }

  async #writeCheckpoint(): Promise<AuditCheckpoint | undefined> {
    // Leave the caller's synchronous code (and any transaction it has open) before reading the head.
    await Promise.resolve();
    if (this.#keyring.module.status().sealed) {
      this.#stats.checkpointsDeferred += 1;
      return undefined;
    }
    const head = this.#store.readHead();
    this.#checkpointSeq = head.checkpointSeq;
    if (head.seq === head.checkpointSeq) return undefined;
    try {
      const key = await this.#ensureSigningKey();
      const body = { number: head.checkpointNumber + 1, seq: head.seq, chainHead: head.hash, time: this.#now(),
        keyId: key.keyId, formatVersion: AUDIT_CHECKPOINT_FORMAT_VERSION };
      const signature = await signWithAuditKey(this.#keyring, key, checkpointMessage(body));
      const checkpoint: AuditCheckpoint = { ...body, signature };
      this.#store.writeCheckpoint(checkpoint);
      this.#lastCheckpointAt = checkpoint.time;
      this.#checkpointSeq = checkpoint.seq;
      this.#stats.checkpointsWritten += 1;
      return checkpoint;
    } catch (error) {
      if (error instanceof SealedError || this.#keyring.module.status().sealed) {
        this.#stats.checkpointsDeferred += 1;
        return undefined;
      }
      throw error;
    }
  }

  /** The active key, made (and stored) the first time one is needed while unsealed. */
  #ensureSigningKey(): Promise<AuditSigningKeyRecord> {
    if (this.#signingKey) return this.#signingKey;
    const ready = (async () => {
      const existing = this.#store.activeSigningKey();
      if (existing) return existing;
      const created = await createAuditSigningKey(this.#keyring, new Date(this.#now()));
      this.#store.insertSigningKey(created);
      this.#logger?.info({ keyId: created.keyId }, 'audit: created the audit signing key');
      return created;
    })();
    this.#signingKey = ready;
    // A failure (sealed, say) is not remembered: the next checkpoint tries again.
    ready.catch(() => { if (this.#signingKey === ready) this.#signingKey = undefined; });
    return ready;
  }
}
