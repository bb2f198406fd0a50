// A server home with a migrated database, an unsealed crypto module and an audit store on its
// own connection, plus helpers to copy a home and tamper with the copy the way an attacker would.
import { copyFileSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AuditLog, type AuditLogOptions, type AuditRecordDraft } from '../../../src/shared/audit/index.ts';
import { HOME_DATABASE_FILE } from '../../../src/shared/config.ts';
import { Keyring, randomBytes, SoftwareCryptoModule } from '../../../src/shared/crypto/index.ts';
import { SqliteStore } from '../../../src/shared/store/index.ts';
import { SqliteAuditStore } from '../../../src/shared/store/sqlite-audit.ts';

export const ACCOUNT = '111122223333';
export const ALICE = `arn:aws:iam::${ACCOUNT}:user/alice`;
export const BOB = `arn:aws:iam::${ACCOUNT}:user/bob`;
export const KEY_ID = '1234abcd-12ab-34cd-56ef-1234567890ab';
export const KEY_ARN = `arn:aws:kms:us-east-1:${ACCOUNT}:key/${KEY_ID}`;
export const OTHER_KEY_ARN = `arn:aws:kms:us-east-1:${ACCOUNT}:key/9999abcd-12ab-34cd-56ef-1234567890ab`;
export const BASE_TIME = Date.parse('2025-03-01T00:00:00Z');

/** The n-th request of a simple workload: alice encrypting under KEY_ARN, one second apart. */
export function draft(n: number, overrides: Partial<AuditRecordDraft> = {}): AuditRecordDraft {
  return { time: BASE_TIME + n * 1000, requestId: `req-${n}`, accountId: ACCOUNT, principalArn: ALICE, sourceIp: '127.0.0.1',
    service: 'kms', operation: 'Encrypt', resource: KEY_ARN, decision: 'Allow', decidingStatement: 'key-policy#EnableRoot',
    outcome: 'Success', latencyMs: 0.25, ...overrides };
}

/** A connection set up as the store sets up its own. */
export function openConnection(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  return db;
}

export interface AuditHome {
  home: string;
  path: string;
  store: SqliteStore;
  module: SoftwareCryptoModule;
  keyring: Keyring;
  db: Database.Database;
  auditStore: SqliteAuditStore;
  rootKey: Buffer;
  openLog(options?: Partial<AuditLogOptions>): Promise<AuditLog>;
  close(): Promise<void>;
}

export function makeTempHome(): string {
  return mkdtempSync(join(tmpdir(), 'trustplane-audit-'));
}

/** A fresh home: migrations applied by SqliteStore.open, crypto module initialised and unsealed. */
export async function createAuditHome(): Promise<AuditHome> {
  const home = makeTempHome();
  const path = join(home, HOME_DATABASE_FILE);
  const store = SqliteStore.open(path);
  const module = new SoftwareCryptoModule(store);
  await module.load();
  const rootKey = randomBytes(32);
  await module.initialize(rootKey);
  const keyring = new Keyring(module);
  const db = openConnection(path);
  const auditStore = new SqliteAuditStore(db);
  return {
    home, path, store, module, keyring, db, auditStore, rootKey,
    openLog: (options = {}) => AuditLog.open({ store: auditStore, keyring,
      checkpoint: { everyRecords: Number.MAX_SAFE_INTEGER, intervalMs: 3_600_000 }, ...options }),
    async close() {
      auditStore.close();
      db.close();
      await store.close();
    },
  };
}

/** Copies a home's database (closed, or with its WAL) into a new home. */
export function copyHome(home: string): string {
  const copy = makeTempHome();
  for (const suffix of ['', '-wal']) {
    const source = join(home, HOME_DATABASE_FILE + suffix);
    if (existsSync(source)) copyFileSync(source, join(copy, HOME_DATABASE_FILE + suffix));
  }
  return copy;
}

/** Opens the home's database for writing, as someone with file access would, and runs `change`. */
export function tamper(home: string, change: string | ((db: Database.Database) => void)): void {
  const db = openConnection(join(home, HOME_DATABASE_FILE));
  try {
    if (typeof change === 'string') db.exec(change);
    else change(db);
  } finally {
    db.close();
  }
}
