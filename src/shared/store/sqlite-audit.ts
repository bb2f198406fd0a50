// The audit log in the SQLite store: appends (seq and chain hash from the head row, in the caller's
// transaction), signed checkpoints, the audit signing key, paged reads. Must never update or delete a record.
//
// Group-commit durability without blocking the event loop: a batch commits with synchronous=NORMAL
// (the WAL write reaches the OS, no fsync), then the WAL file is fsynced on libuv's thread pool and
// only then is the batch reported durable. That is what synchronous=FULL would have done inside the
// commit, on the event loop; checkpoints of the WAL still sync as usual under NORMAL.
import { close as closeFile, closeSync, existsSync, fsync, openSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { syncDirectory } from '../fs.ts';
import type { AuditQuery, AuditSigningKeyRecord, AuditStore } from '../audit/audit-store.ts';
import { auditErrors } from '../audit/errors.ts';
import { HOME_DATABASE_FILE } from '../config.ts';
import {
  chainHash, encodeAuditRecord, placeAuditDraft, sameHash, type AuditCheckpoint, type AuditHead, type AuditRecord,
  type AuditRecordDraft, type AuditSigningPublicKey, type StoredAuditRecord,
} from '../audit/domain/index.ts';
import { StoreConflictError } from './types.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

const DEFAULT_PAGE_SIZE = 1000;

function checkpointFromRow(row: Row): AuditCheckpoint {
  return { number: Number(row.number), seq: Number(row.seq), chainHead: row.chain_head as Buffer, time: Number(row.time),
    keyId: String(row.key_id), formatVersion: Number(row.format_version), signature: row.signature as Buffer };
}

function signingKeyFromRow(row: Row): AuditSigningKeyRecord {
  return { keyId: String(row.key_id), publicKeyDer: row.public_key as Buffer,
    privateKey: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_private_key as Buffer },
    createdAt: new Date(Number(row.created_at)), state: row.state as AuditSigningKeyRecord['state'] };
}

function storedRecordFromRow(row: Row): StoredAuditRecord {
  return { seq: Number(row.seq), text: String(row.record), hash: row.hash as Buffer };
}

function escapeLike(value: string): string {
  return value.replace(/[\\%_]/g, (character) => `\\${character}`);
}

/** Thrown by the read-only opener when the file has no audit tables (a home from before the audit log). */
export class NoAuditLogError extends Error {
  constructor(path: string) { super(`${path} has no audit log (its schema predates it)`); this.name = 'NoAuditLogError'; }
}

/** Finds and opens a home's audit log read-only, for the CLI on a stopped (or running) server; never creates a home. */
export function openAuditLogReadOnly(home: string): SqliteAuditStore {
  if (!existsSync(home)) throw auditErrors.homeNotFound(`${home} does not exist; pass --home DIR or set TRUSTPLANE_HOME.`);
  if (!statSync(home).isDirectory()) throw auditErrors.homeNotFound(`${home} is not a directory; pass --home DIR or set TRUSTPLANE_HOME.`);
  const path = join(home, HOME_DATABASE_FILE);
  if (!existsSync(path)) throw auditErrors.homeNotFound(`${home} is not a trustplane home (no ${HOME_DATABASE_FILE}); has a server run there?`);
  try {
    return SqliteAuditStore.openReadOnly(path);
  } catch (error) {
    if (error instanceof NoAuditLogError) throw auditErrors.unavailable(`${path} has no audit log yet; start this version of the server on it once.`);
    throw auditErrors.unavailable(`cannot read ${path}: ${(error as Error).message}`);
  }
}

export class SqliteAuditStore implements AuditStore {
  readonly #db: Database.Database;
  readonly #ownsConnection: boolean;
  readonly #statements: StatementCache;
  #appendBatch: ((drafts: readonly AuditRecordDraft[], now: number) => AuditRecord[]) | undefined;
  /** The connection's own synchronous level, restored after every deferred-sync batch. */
  readonly #synchronous: number;
  #walPath: string | undefined;
  #walFd: number | undefined;
  #syncing: Promise<void> | undefined;
  #nextSync: Promise<void> | undefined;

  /**
   * Uses a connection to a database the migrations have brought to version 2 or later.
   * `deferSync: false` makes appendBatchDurably commit with the connection's own synchronous
   * level, fsync included, on the event loop (no difference in what is durable when).
   */
  constructor(db: Database.Database, options: { ownsConnection?: boolean; deferSync?: boolean } = {}) {
    this.#db = db;
    this.#statements = new StatementCache(db);
    this.#ownsConnection = options.ownsConnection ?? false;
    this.#synchronous = Number(db.pragma('synchronous', { simple: true }));
    const fileBacked = !db.memory && !db.readonly && db.name !== '' && db.name !== ':memory:';
    const wal = fileBacked && String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal';
    if (wal && (options.deferSync ?? true)) this.#walPath = `${resolve(db.name)}-wal`;
  }

  /** True when batches commit without an fsync on the event loop (file-backed WAL database). */
  get defersSync(): boolean {
    return this.#walPath !== undefined;
  }

  /** Opens a database file read-only (a stopped server's home, or beside a running one). */
  static openReadOnly(path: string): SqliteAuditStore {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const table = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'audit_head'").get();
      if (!table) throw new NoAuditLogError(path);
    } catch (error) {
      db.close();
      throw error;
    }
    return new SqliteAuditStore(db, { ownsConnection: true });
  }

  /** Releases the WAL file handle, and closes the connection if this store opened it (openReadOnly). */
  close(): void {
    if (this.#walFd !== undefined) closeSync(this.#walFd);
    this.#walFd = undefined;
    this.#walPath = undefined;
    if (this.#ownsConnection) this.#db.close();
  }

  #statement(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  readHead(): AuditHead {
    const row = this.#statement('SELECT seq, hash, checkpoint_number, checkpoint_seq FROM audit_head WHERE id = 1').get() as Row | undefined;
    if (!row) throw new Error('the audit head row is missing');
    return { seq: Number(row.seq), hash: row.hash as Buffer, checkpointNumber: Number(row.checkpoint_number),
      checkpointSeq: Number(row.checkpoint_seq) };
  }

  appendInTransaction(drafts: readonly AuditRecordDraft[], now: number = Date.now()): AuditRecord[] {
    if (!this.#db.inTransaction) throw new Error('appendInTransaction must run inside a transaction on the same connection');
    if (drafts.length === 0) return [];
    const head = this.#statement('SELECT seq, hash FROM audit_head WHERE id = 1').get() as Row;
    let seq = Number(head.seq);
    let hash = head.hash as Buffer;
    const insert = this.#statement('INSERT INTO audit_records (seq, record, hash) VALUES (?, ?, ?)');
    const records: AuditRecord[] = [];
    for (const draft of drafts) {
      seq += 1;
      const record = placeAuditDraft(draft, seq, now);
      const text = encodeAuditRecord(record);
      hash = chainHash(hash, text);
      insert.run(seq, text, hash);
      records.push(record);
    }
    this.#statement('UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1').run(seq, hash);
    return records;
  }

  appendBatch(drafts: readonly AuditRecordDraft[], now: number = Date.now()): AuditRecord[] {
    // Inside someone else's transaction the batch would commit (or vanish) with theirs, and a
    // caller told "durable" could be wrong: that case is appendInTransaction's.
    if (this.#db.inTransaction) throw new Error('appendBatch must not run inside another transaction; use appendInTransaction');
    this.#appendBatch ??= this.#db.transaction((batch: readonly AuditRecordDraft[], at: number) => this.appendInTransaction(batch, at)).immediate;
    return this.#appendBatch(drafts, now);
  }

  appendBatchDurably(drafts: readonly AuditRecordDraft[], now: number = Date.now()): { records: AuditRecord[]; durable: Promise<void> } {
    if (this.#walPath === undefined) return { records: this.appendBatch(drafts, now), durable: Promise.resolve() };
    if (this.#db.inTransaction) throw new Error('appendBatchDurably must not run inside another transaction; use appendInTransaction');
    this.#statement('PRAGMA synchronous = NORMAL').run();
    let records: AuditRecord[];
    try {
      records = this.appendBatch(drafts, now);
    } finally {
      this.#statement(`PRAGMA synchronous = ${this.#synchronous}`).run();
    }
    return { records, durable: this.#syncWal() };
  }

  /** Resolves once the WAL, as it stands now, is on disk. One fsync runs at a time; waiters share the next. */
  #syncWal(): Promise<void> {
    if (!this.#syncing) {
      const running = this.#fsyncWal().finally(() => { if (this.#syncing === running) this.#syncing = undefined; });
      this.#syncing = running;
      return running;
    }
    // This commit may have reached the WAL after the running fsync began: only the next one covers it.
    const running = this.#syncing;
    this.#nextSync ??= running.catch(() => undefined).then(() => {
      this.#nextSync = undefined;
      return this.#syncWal();
    });
    return this.#nextSync;
  }

  #fsyncWal(): Promise<void> {
    return new Promise<void>((done, fail) => {
      const walPath = this.#walPath;
      let opened = false;
      try {
        // The WAL exists once a batch has committed; it keeps its inode while any connection is open.
        if (walPath === undefined) throw new Error('the audit WAL can no longer be synced (store closed, or an earlier fsync failed)');
        if (this.#walFd === undefined) {
          this.#walFd = openSync(walPath, 'r');
          opened = true;
        }
      } catch (error) {
        fail(error);
        return;
      }
      fsync(this.#walFd, (error) => {
        if (!error) {
          // SQLite syncs the directory of a WAL it creates only when it syncs the WAL itself; do it once here too.
          if (opened && walPath !== undefined) syncDirectory(dirname(walPath)).then(done, fail);
          else done();
          return;
        }
        // After a failed fsync the page cache may have dropped the data: never trust a later fsync
        // of this file; commit with the connection's own synchronous level from now on.
        const fd = this.#walFd;
        this.#walFd = undefined;
        this.#walPath = undefined;
        if (fd !== undefined) closeFile(fd, () => undefined);
        fail(error);
      });
    });
  }

  writeCheckpoint(checkpoint: AuditCheckpoint): void {
    this.#db.transaction(() => {
      const head = this.readHead();
      if (checkpoint.number !== head.checkpointNumber + 1) {
        throw new StoreConflictError(`audit checkpoint ${checkpoint.number} is not the next one (${head.checkpointNumber + 1})`);
      }
      if (checkpoint.seq <= head.checkpointSeq || checkpoint.seq > head.seq) {
        throw new StoreConflictError(`audit checkpoint at record ${checkpoint.seq} is outside ${head.checkpointSeq + 1}..${head.seq}`);
      }
      const row = this.#statement('SELECT hash FROM audit_records WHERE seq = ?').get(checkpoint.seq) as Row | undefined;
      if (!row || !sameHash(row.hash as Buffer, checkpoint.chainHead)) {
        throw new StoreConflictError(`audit checkpoint at record ${checkpoint.seq} names a chain head the log does not have`);
      }
      this.#statement(`INSERT INTO audit_checkpoints (number, seq, chain_head, time, key_id, format_version, signature)
        VALUES (?, ?, ?, ?, ?, ?, ?)`).run(checkpoint.number, checkpoint.seq, checkpoint.chainHead, checkpoint.time,
        checkpoint.keyId, checkpoint.formatVersion, checkpoint.signature);
      this.#statement('UPDATE audit_head SET checkpoint_number = ?, checkpoint_seq = ? WHERE id = 1').run(checkpoint.number, checkpoint.seq);
    }).immediate();
  }

  lastCheckpoint(): AuditCheckpoint | undefined {
    const row = this.#statement('SELECT * FROM audit_checkpoints ORDER BY number DESC LIMIT 1').get() as Row | undefined;
    return row ? checkpointFromRow(row) : undefined;
  }

  activeSigningKey(): AuditSigningKeyRecord | undefined {
    const row = this.#statement("SELECT * FROM audit_signing_keys WHERE state = 'active' ORDER BY created_at DESC LIMIT 1").get() as Row | undefined;
    return row ? signingKeyFromRow(row) : undefined;
  }

  insertSigningKey(key: AuditSigningKeyRecord): void {
    this.#db.transaction(() => {
      this.#statement("UPDATE audit_signing_keys SET state = 'retired' WHERE state = 'active'").run();
      this.#statement(`INSERT INTO audit_signing_keys (key_id, public_key, domain_key_id, wrapped_private_key, created_at, state)
        VALUES (?, ?, ?, ?, ?, 'active')`).run(key.keyId, key.publicKeyDer, key.privateKey.domainKeyId, key.privateKey.wrapped,
        key.createdAt.getTime());
    }).immediate();
  }

  publicKeys(): AuditSigningPublicKey[] {
    return (this.#statement('SELECT key_id, public_key FROM audit_signing_keys ORDER BY created_at').all() as Row[])
      .map((row) => ({ keyId: String(row.key_id), publicKeyDer: row.public_key as Buffer }));
  }

  // Paged rather than one open cursor: better-sqlite3 refuses writes on a connection while a
  // cursor is open, and a reader must not stall the writer sharing its connection.
  *records(options: { afterSeq?: number; pageSize?: number } = {}): Generator<StoredAuditRecord> {
    yield* this.#paged('SELECT seq, record, hash FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?', 'seq',
      options.afterSeq ?? 0, options.pageSize ?? DEFAULT_PAGE_SIZE, storedRecordFromRow);
  }

  *checkpoints(options: { pageSize?: number } = {}): Generator<AuditCheckpoint> {
    yield* this.#paged('SELECT * FROM audit_checkpoints WHERE number > ? ORDER BY number LIMIT ?', 'number',
      0, options.pageSize ?? DEFAULT_PAGE_SIZE, checkpointFromRow);
  }

  /** Rows of `sql` (parameters: the last `key` seen, then the page size), a page at a time in `key` order. */
  *#paged<T>(sql: string, key: string, after: number, pageSize: number, fromRow: (row: Row) => T): Generator<T> {
    const page = this.#statement(sql);
    for (;;) {
      const rows = page.all(after, pageSize) as Row[];
      for (const row of rows) yield fromRow(row);
      if (rows.length < pageSize) return;
      after = Number(rows[rows.length - 1][key]);
    }
  }

  // Only time is indexed (see migration 2): a time range becomes a seq range through that index;
  // the other filters are checked on each record of the range, a page at a time.
  *query(filter: AuditQuery): Generator<StoredAuditRecord> {
    let low = filter.afterSeq ?? 0;
    let high = filter.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    const conditions: string[] = [];
    const params: unknown[] = [];
    if (filter.since !== undefined || filter.until !== undefined) {
      const since = filter.since ?? Number.MIN_SAFE_INTEGER;
      const until = filter.until ?? Number.MAX_SAFE_INTEGER;
      const span = this.#statement('SELECT min(seq) AS low, max(seq) AS high FROM audit_records WHERE time >= ? AND time < ?')
        .get(since, until) as Row;
      if (span.low === null) return;
      low = Math.max(low, Number(span.low) - 1);
      high = Math.min(high, Number(span.high) + 1);
      conditions.push('time >= ? AND time < ?');
      params.push(since, until);
    }
    if (filter.principalArn !== undefined) { conditions.push('principal_arn = ?'); params.push(filter.principalArn); }
    if (filter.operation !== undefined) { conditions.push('operation = ?'); params.push(filter.operation); }
    if (filter.outcome !== undefined) { conditions.push('outcome = ?'); params.push(filter.outcome); }
    const resource = filter.resource;
    const bareName = resource !== undefined && !resource.startsWith('arn:');
    if (resource !== undefined && !bareName) { conditions.push('resource = ?'); params.push(resource); }
    if (resource !== undefined && bareName) {
      // A key id or alias name stands for every resource ARN ending in it; LIKE narrows, endsWith decides (LIKE ignores case).
      conditions.push("(resource LIKE ? ESCAPE '\\' OR resource LIKE ? ESCAPE '\\')");
      params.push(`%/${escapeLike(resource)}`, `%:${escapeLike(resource)}`);
    }
    const newestFirst = filter.newestFirst ?? false;
    conditions.push('seq > ?', 'seq < ?');
    const page = this.#db.prepare(`SELECT seq, record, hash${bareName ? ', resource' : ''} FROM audit_records
      WHERE ${conditions.join(' AND ')} ORDER BY seq ${newestFirst ? 'DESC' : 'ASC'} LIMIT ?`);
    let remaining = filter.limit ?? Number.POSITIVE_INFINITY;
    while (remaining > 0 && low < high - 1) {
      const rows = page.all(...params, low, high, DEFAULT_PAGE_SIZE) as Row[];
      for (const row of rows) {
        if (bareName && !(String(row.resource).endsWith(`/${resource}`) || String(row.resource).endsWith(`:${resource}`))) continue;
        yield storedRecordFromRow(row);
        remaining -= 1;
        if (remaining === 0) return;
      }
      if (rows.length < DEFAULT_PAGE_SIZE) return;
      const last = Number(rows[rows.length - 1].seq);
      if (newestFirst) high = last;
      else low = last;
    }
  }

  readSnapshot<T>(work: () => T): T {
    if (this.#db.inTransaction) return work();
    return this.#db.transaction(work)();
  }
}
