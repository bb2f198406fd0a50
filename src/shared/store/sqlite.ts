// The embedded store: SQLite in WAL mode with synchronous=FULL, so an acknowledged write
// survives kill -9. Must never run a multi-row change outside one transaction.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type {
  DomainKeyRecord, WrappedRecord, WrappedRecordCursor, WrappedRecordOwner, WrappedRecordReplacement, WrappedSecret,
} from '../crypto/index.ts';
import { sqliteMigrations, type Migration } from './migrations/sqlite.ts';
import {
  SECRET_PURPOSES, StoreConflictError, StoreDuplicateError, StoreLimitError, type AccessKeyRecord, type AccessKeyStatus, type AccountRecord,
  type AliasRecord, type GrantRecord, type KeyPatch, type KeyRecord, type KeyVersionRecord, type Page, type PrincipalKind,
  type PrincipalPolicyRecord, type PrincipalRecord, type SecretPurpose, type Store, type TagRecord,
} from './types.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

const toDate = (value: unknown): Date | undefined => (value === null || value === undefined ? undefined : new Date(Number(value)));
const fromDate = (value: Date | null | undefined): number | null => (value ? value.getTime() : null);

function encodeMarker(value: string): string {
  return Buffer.from(value, 'utf8').toString('base64url');
}

/** Decodes a pagination marker; undefined when absent, InvalidMarker when garbled. */
function decodeMarker(marker: string | undefined): string | undefined {
  if (marker === undefined) return undefined;
  const value = Buffer.from(marker, 'base64url').toString('utf8');
  if (value.length === 0 || encodeMarker(value) !== marker) throw new InvalidMarkerError();
  return value;
}

export class InvalidMarkerError extends Error {
  constructor() { super('The marker is invalid.'); this.name = 'InvalidMarkerError'; }
}

/** A table holding wrapped material: the material's column, and the column the wrap's associated data names the row by. */
interface WrappedTable {
  table: string;
  column: string;
  name: string;
}

/** Rows of secrets: each source is named by its purpose, so a row's source is the purpose it was wrapped for. */
const WRAPPED_SECRET_SOURCES = {
  [SECRET_PURPOSES.accessKey]: { table: 'access_keys', column: 'wrapped_secret', name: 'access_key_id' },
  [SECRET_PURPOSES.auditSigningKey]: { table: 'audit_signing_keys', column: 'wrapped_private_key', name: 'key_id' },
  [SECRET_PURPOSES.fleetCaKey]: { table: 'fleet_ca', column: 'wrapped_private_key', name: 'account_id' },
  [SECRET_PURPOSES.hostVaultKey]: { table: 'host_vaults', column: 'wrapped_vault_key', name: 'host_id' },
  [SECRET_PURPOSES.verifierSigningKey]: { table: 'verifier_keys', column: 'wrapped_private_key', name: 'key_id' },
  [SECRET_PURPOSES.appKey]: { table: 'app_keys', column: 'wrapped_key', name: "account_id || '/' || class_name || '/' || name" },
  [SECRET_PURPOSES.referencePolicy]: { table: 'reference_policies', column: 'wrapped_document', name: "account_id || '/' || class_name" },
  [SECRET_PURPOSES.attestationAlert]: { table: 'attestation_alerts', column: 'wrapped_body', name: 'alert_id' },
  [SECRET_PURPOSES.tpmEnrolment]: { table: 'tpm_enrolments', column: 'wrapped_inputs', name: 'enrolment_id' },
  [SECRET_PURPOSES.privopRelayRequest]: { table: 'privop_relays', column: 'wrapped_request', name: 'relay_id' },
  [SECRET_PURPOSES.privopCampaignSigner]: { table: 'privop_campaign_signers', column: 'wrapped_private_key', name: 'account_id' },
} as const satisfies Record<SecretPurpose, WrappedTable>;

const KEY_VERSION_SOURCE = 'key-version';

/** Every row holding material wrapped under a domain key, so rotation and migration miss none. */
const WRAPPED_RECORD_SOURCES: ReadonlyMap<string, WrappedTable> = new Map(Object.entries({
  ...WRAPPED_SECRET_SOURCES,
  [KEY_VERSION_SOURCE]: { table: 'key_versions', column: 'wrapped_material', name: 'key_id' },
}));

// Customer key versions also carry the version and spec their associated data binds.
const WRAPPED_RECORDS_SQL = [
  ...Object.entries(WRAPPED_SECRET_SOURCES).map(([source, { table, column, name }]) =>
    `SELECT '${source}' AS source, rowid AS row_id, ${name} AS name, NULL AS version, NULL AS key_spec, domain_key_id, ${column} AS wrapped FROM ${table}`),
  `SELECT '${KEY_VERSION_SOURCE}', v.rowid, v.key_id, v.version, k.key_spec, v.domain_key_id, v.wrapped_material
    FROM key_versions v JOIN keys k ON k.key_id = v.key_id`,
].join('\n  UNION ALL\n  ');

function wrappedRecordFromRow(row: Row): WrappedRecord {
  const material = { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped as Buffer };
  const source = String(row.source);
  const owner: WrappedRecordOwner = source === KEY_VERSION_SOURCE
    ? { kind: 'customer-key', keyId: String(row.name), version: Number(row.version), spec: String(row.key_spec) }
    : { kind: 'secret', purpose: source, name: String(row.name) };
  return { source, rowId: Number(row.row_id), owner, material };
}

function keyFromRow(row: Row): KeyRecord {
  return {
    keyId: String(row.key_id), accountId: String(row.account_id), arn: String(row.arn),
    description: String(row.description), keySpec: String(row.key_spec), keyUsage: row.key_usage as KeyRecord['keyUsage'],
    keyState: row.key_state as KeyRecord['keyState'], origin: String(row.origin), createdAt: toDate(row.created_at) as Date,
    deletionDate: toDate(row.deletion_date), pendingWindowInDays: (row.pending_window_days as number | null) ?? undefined,
    currentVersion: Number(row.current_version), minDecryptVersion: Number(row.min_decrypt_version),
    pendingVersion: (row.pending_version as number | null) ?? undefined, rotateOnHostLoss: row.rotate_on_host_loss !== 0,
    rotationEnabled: row.rotation_enabled === 1, rotationPeriodInDays: (row.rotation_period_days as number | null) ?? undefined,
    nextRotationAt: toDate(row.next_rotation_at), policy: String(row.policy), revision: Number(row.revision),
  };
}

function versionFromRow(row: Row): KeyVersionRecord {
  return {
    keyId: String(row.key_id), version: Number(row.version),
    material: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_material as Buffer },
    publicKeyDer: (row.public_key as Buffer | null) ?? undefined, createdAt: toDate(row.created_at) as Date,
    rotationType: (row.rotation_type as KeyVersionRecord['rotationType'] | null) ?? undefined,
  };
}

function aliasFromRow(row: Row): AliasRecord {
  return { accountId: String(row.account_id), aliasName: String(row.alias_name), keyId: String(row.key_id),
    createdAt: toDate(row.created_at) as Date, updatedAt: toDate(row.updated_at) as Date };
}

function principalFromRow(row: Row): PrincipalRecord {
  return { arn: String(row.arn), accountId: String(row.account_id), kind: row.kind as PrincipalRecord['kind'],
    name: String(row.name), createdAt: toDate(row.created_at) as Date,
    tags: JSON.parse(String(row.tags ?? '{}')) as Record<string, string>,
    trustPolicy: (row.trust_policy as string | null) ?? undefined,
    maxSessionSeconds: (row.max_session_seconds as number | null) ?? undefined };
}

function accessKeyFromRow(row: Row): AccessKeyRecord {
  const session = row.session_token_hash ? { tokenHash: row.session_token_hash as Buffer,
    name: String(row.session_name), expiresAt: toDate(row.expires_at) as Date } : undefined;
  return { accessKeyId: String(row.access_key_id), principalArn: String(row.principal_arn),
    secret: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_secret as Buffer },
    status: row.status as AccessKeyRecord['status'], createdAt: toDate(row.created_at) as Date, session };
}

function accountFromRow(row: Row): AccountRecord {
  return { accountId: String(row.account_id), name: String(row.name), createdAt: toDate(row.created_at) as Date,
    management: row.management === 1 };
}

function grantFromRow(row: Row): GrantRecord {
  return { grantId: String(row.grant_id), keyId: String(row.key_id), accountId: String(row.account_id),
    name: (row.name as string | null) ?? undefined, granteePrincipal: String(row.grantee_principal),
    retiringPrincipal: (row.retiring_principal as string | null) ?? undefined,
    operations: JSON.parse(String(row.operations)) as string[],
    constraints: row.constraints ? JSON.parse(String(row.constraints)) as GrantRecord['constraints'] : undefined,
    issuingAccount: String(row.issuing_account), createdAt: toDate(row.created_at) as Date, tokenHash: row.token_hash as Buffer };
}

const PATCH_COLUMNS: Record<keyof KeyPatch, string> = {
  description: 'description', keyState: 'key_state', deletionDate: 'deletion_date',
  pendingWindowInDays: 'pending_window_days', rotationEnabled: 'rotation_enabled',
  rotationPeriodInDays: 'rotation_period_days', nextRotationAt: 'next_rotation_at',
  minDecryptVersion: 'min_decrypt_version', currentVersion: 'current_version', pendingVersion: 'pending_version',
  rotateOnHostLoss: 'rotate_on_host_loss', policy: 'policy',
};

function patchValue(value: unknown): unknown {
  if (value instanceof Date) return value.getTime();
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value ?? null;
}

function page<T>(rows: T[], limit: number, markerOf: (item: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows };
  const items = rows.slice(0, limit);
  return { items, nextMarker: encodeMarker(markerOf(items[items.length - 1])) };
}

export class SqliteStore implements Store {
  readonly #db: Database.Database;
  readonly #statements: StatementCache;
  #afterWrite: (() => void) | undefined;
  readonly #commitListeners = new Set<() => void>();

  private constructor(db: Database.Database) {
    this.#db = db;
    this.#statements = new StatementCache(db);
  }

  /** Opens (creating if needed) the database file and applies pending migrations. */
  static open(path: string): SqliteStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const store = new SqliteStore(db);
    store.#migrate(sqliteMigrations);
    return store;
  }

  #migrate(migrations: Migration[]): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set((this.#db.prepare('SELECT version FROM schema_migrations').all() as Row[]).map((row) => Number(row.version)));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((migration) => migration.version));
    if (newest > known) throw new Error(`database schema version ${newest} is newer than this trustplane (${known})`);
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      this.#db.transaction(() => {
        this.#db.exec(migration.sql);
        this.#db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(migration.version, migration.name, Date.now());
      })();
    }
  }

  #statement(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  /**
   * Runs a write in one transaction and, inside it, the after-write hook: how the audit record of
   * the request that caused the write commits together with the write (or not at all).
   */
  #write<T>(work: () => T): T {
    const result = this.#db.transaction(() => {
      const written = work();
      this.#afterWrite?.();
      return written;
    })();
    if (!this.#db.inTransaction) for (const listener of this.#commitListeners) listener();
    return result;
  }

  /** Called after every committed write transaction (the fleet push wakes on it); must not throw or write. */
  onCommit(listener: () => void): () => void {
    this.#commitListeners.add(listener);
    return () => this.#commitListeners.delete(listener);
  }

  /** Called inside every write transaction; the server sets it to record the request's audit entry. */
  setAfterWriteHook(hook: (() => void) | undefined): void {
    this.#afterWrite = hook;
  }

  /** Runs `work` as one write transaction of this store (with its audit hook), for stores of other services' tables. */
  writeTransaction<T>(work: () => T): T {
    return this.#write(work);
  }

  /** The connection, for the audit log's tables: its appends must share this store's transactions. */
  get database(): Database.Database {
    return this.#db;
  }

  async close(): Promise<void> {
    this.#db.close();
  }

  async getMeta(name: string): Promise<string | undefined> {
    const row = this.#statement('SELECT value FROM meta WHERE name = ?').get(name) as Row | undefined;
    return row ? String(row.value) : undefined;
  }

  async initMeta(name: string, value: string): Promise<string> {
    this.#statement('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(name, value);
    return (await this.getMeta(name)) as string;
  }

  async listDomainKeys(): Promise<DomainKeyRecord[]> {
    return (this.#statement('SELECT * FROM domain_keys ORDER BY created_at, rowid').all() as Row[]).map((row) => ({
      id: String(row.id), module: row.module as DomainKeyRecord['module'], wrapped: row.wrapped as Buffer,
      createdAt: toDate(row.created_at) as Date, state: row.state as DomainKeyRecord['state'],
    }));
  }

  /** One domain key row; `replace` overwrites a row of the same id (seal migration re-records the old keys as retired). */
  #putDomainKey(record: DomainKeyRecord, options: { replace?: boolean } = {}): void {
    const insert = 'INSERT INTO domain_keys (id, module, wrapped, created_at, state) VALUES (?, ?, ?, ?, ?)';
    this.#statement(options.replace
      ? `${insert} ON CONFLICT (id) DO UPDATE SET module = excluded.module, wrapped = excluded.wrapped, state = excluded.state`
      : insert)
      .run(record.id, record.module, record.wrapped, record.createdAt.getTime(), record.state);
  }

  #putModuleValue(name: string, value: Buffer): void {
    this.#statement('INSERT INTO module_values (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  async insertDomainKey(record: DomainKeyRecord): Promise<void> {
    this.#write(() => {
      if (record.state === 'active') this.#statement("UPDATE domain_keys SET state = 'retiring' WHERE state = 'active'").run();
      this.#putDomainKey(record);
    });
  }

  async retireDomainKey(id: string): Promise<void> {
    this.#write(() => {
      const state = (this.#statement('SELECT state FROM domain_keys WHERE id = ?').get(id) as Row | undefined)?.state;
      if (state === 'retired') return; // another server on this store retired it first
      if (state !== 'retiring') throw new StoreConflictError(`domain key ${id} is not retiring`);
      // Checked in the same transaction as the retirement: a row written under the key since the
      // rewrap's last count keeps it alive.
      const referenced = this.#statement(`SELECT 1 FROM (${WRAPPED_RECORDS_SQL}) WHERE domain_key_id = ? LIMIT 1`).get(id);
      if (referenced) throw new StoreConflictError(`domain key ${id} is still referenced`);
      this.#statement("UPDATE domain_keys SET state = 'retired', wrapped = X'' WHERE id = ?").run(id);
    });
  }

  async initializeModule(firstDomainKey: DomainKeyRecord, values: Record<string, Buffer>): Promise<void> {
    this.#write(() => {
      const existing = this.#statement("SELECT COUNT(*) AS n FROM domain_keys WHERE state != 'retired'").get() as Row;
      if (Number(existing.n) > 0) throw new StoreDuplicateError('the crypto module is already initialised');
      this.#putDomainKey(firstDomainKey);
      for (const [name, value] of Object.entries(values)) this.#putModuleValue(name, value);
    });
  }

  /**
   * Forgets a crypto module nothing was ever wrapped under (an init that crashed before its root
   * account was made, so its shares were never shown): init can then start again. Refuses otherwise.
   */
  async abandonUnusedModule(): Promise<void> {
    this.#write(() => {
      if (this.#statement(`SELECT 1 FROM (${WRAPPED_RECORDS_SQL}) LIMIT 1`).get()) {
        throw new StoreConflictError('material is wrapped under this crypto module; it cannot be abandoned');
      }
      this.#statement('DELETE FROM domain_keys').run();
      this.#statement('DELETE FROM module_values').run();
    });
  }

  async getModuleValue(name: string): Promise<Buffer | undefined> {
    const row = this.#statement('SELECT value FROM module_values WHERE name = ?').get(name) as Row | undefined;
    return row ? (row.value as Buffer) : undefined;
  }

  /**
   * Seal migration in one transaction: every rewrapped row, the domain keys in the order given
   * (retire the old ones before adding the new active one) and the module values. All or nothing.
   */
  async migrateModule(change: { replacements: WrappedRecordReplacement[]; domainKeys: DomainKeyRecord[];
    values: Record<string, Buffer | undefined> }): Promise<void> {
    this.#write(() => {
      for (const { record, material } of change.replacements) {
        if (this.#swapWrapped(record, material) !== 1) throw new StoreConflictError(`${record.source} row ${record.rowId} changed during the migration`);
      }
      for (const record of change.domainKeys) this.#putDomainKey(record, { replace: true });
      for (const [name, value] of Object.entries(change.values)) {
        if (value === undefined) this.#statement('DELETE FROM module_values WHERE name = ?').run(name);
        else this.#putModuleValue(name, value);
      }
    });
  }

  async listWrappedRecords(domainKeyIds: string[], after: WrappedRecordCursor | undefined, limit: number): Promise<WrappedRecord[]> {
    if (domainKeyIds.length === 0) return [];
    const placeholders = domainKeyIds.map(() => '?').join(', ');
    const rows = this.#db.prepare(`SELECT * FROM (${WRAPPED_RECORDS_SQL}) WHERE domain_key_id IN (${placeholders})
      AND (source, row_id) > (?, ?) ORDER BY source, row_id LIMIT ?`)
      .all(...domainKeyIds, after?.source ?? '', after?.rowId ?? -1, limit) as Row[];
    return rows.map(wrappedRecordFromRow);
  }

  async countWrappedRecords(): Promise<Map<string, number>> {
    const rows = this.#statement(`SELECT domain_key_id, COUNT(*) AS n FROM (${WRAPPED_RECORDS_SQL}) GROUP BY domain_key_id`).all() as Row[];
    return new Map(rows.map((row) => [String(row.domain_key_id), Number(row.n)]));
  }

  async replaceWrappedRecords(replacements: WrappedRecordReplacement[]): Promise<number> {
    return this.#write(() => {
      let replaced = 0;
      for (const { record, material } of replacements) replaced += this.#swapWrapped(record, material);
      return replaced;
    });
  }

  /** Compare-and-swap of one row's material: a row changed or deleted since it was read is left alone (0). */
  #swapWrapped(record: WrappedRecord, material: WrappedSecret): number {
    const target = WRAPPED_RECORD_SOURCES.get(record.source);
    if (!target) throw new Error(`unknown wrapped record source ${record.source}`);
    return this.#statement(`UPDATE ${target.table} SET domain_key_id = ?, ${target.column} = ?
      WHERE rowid = ? AND domain_key_id = ? AND ${target.column} = ?`)
      .run(material.domainKeyId, material.wrapped, record.rowId, record.material.domainKeyId, record.material.wrapped).changes;
  }

  async createAccount(account: AccountRecord, root: PrincipalRecord, rootKey: AccessKeyRecord): Promise<void> {
    this.#write(() => {
      const inserted = this.#statement('INSERT INTO accounts (account_id, name, created_at, management) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(account.accountId, account.name, account.createdAt.getTime(), account.management ? 1 : 0);
      if (inserted.changes === 0) throw new StoreDuplicateError(`account ${account.name} already exists`);
      this.#insertPrincipal(root);
      this.#insertAccessKey(rootKey);
    });
  }

  async getAccount(accountId: string): Promise<AccountRecord | undefined> {
    const row = this.#statement('SELECT * FROM accounts WHERE account_id = ?').get(accountId) as Row | undefined;
    return row ? accountFromRow(row) : undefined;
  }

  async getAccountByName(name: string): Promise<AccountRecord | undefined> {
    const row = this.#statement('SELECT * FROM accounts WHERE name = ?').get(name) as Row | undefined;
    return row ? accountFromRow(row) : undefined;
  }

  async listAccounts(limit: number, marker?: string): Promise<Page<AccountRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (this.#statement('SELECT * FROM accounts WHERE account_id > ? ORDER BY account_id LIMIT ?')
      .all(after, limit + 1) as Row[]).map(accountFromRow);
    return page(rows, limit, (account) => account.accountId);
  }

  async getPrincipal(arn: string): Promise<PrincipalRecord | undefined> {
    const row = this.#statement('SELECT * FROM principals WHERE arn = ?').get(arn) as Row | undefined;
    return row ? principalFromRow(row) : undefined;
  }

  #insertPrincipal(principal: PrincipalRecord): void {
    const inserted = this.#statement(`INSERT INTO principals (arn, account_id, kind, name, created_at, tags, trust_policy, max_session_seconds)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`)
      .run(principal.arn, principal.accountId, principal.kind, principal.name, principal.createdAt.getTime(),
        JSON.stringify(principal.tags ?? {}), principal.trustPolicy ?? null, principal.maxSessionSeconds ?? null);
    if (inserted.changes === 0) throw new StoreDuplicateError(`principal ${principal.arn} already exists`);
  }

  #insertAccessKey(accessKey: AccessKeyRecord): void {
    this.#statement(`INSERT INTO access_keys (access_key_id, principal_arn, domain_key_id, wrapped_secret, status, created_at,
      session_token_hash, session_name, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
      .run(accessKey.accessKeyId, accessKey.principalArn, accessKey.secret.domainKeyId, accessKey.secret.wrapped,
        accessKey.status, accessKey.createdAt.getTime(), accessKey.session?.tokenHash ?? null, accessKey.session?.name ?? null,
        fromDate(accessKey.session?.expiresAt));
  }

  async createPrincipal(principal: PrincipalRecord, accessKey?: AccessKeyRecord): Promise<void> {
    this.#write(() => {
      this.#insertPrincipal(principal);
      if (accessKey) this.#insertAccessKey(accessKey);
    });
  }

  async deletePrincipal(arn: string): Promise<boolean> {
    // Cascades remove the principal's access keys, sessions and policies in the same transaction.
    return this.#write(() => this.#statement('DELETE FROM principals WHERE arn = ?').run(arn).changes > 0);
  }

  async listPrincipals(accountId: string, kind: PrincipalKind, limit: number, marker?: string): Promise<Page<PrincipalRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (this.#statement('SELECT * FROM principals WHERE account_id = ? AND kind = ? AND name > ? ORDER BY name LIMIT ?')
      .all(accountId, kind, after, limit + 1) as Row[]).map(principalFromRow);
    return page(rows, limit, (principal) => principal.name);
  }

  async setTrustPolicy(roleArn: string, document: string): Promise<void> {
    this.#write(() => this.#statement("UPDATE principals SET trust_policy = ? WHERE arn = ? AND kind = 'role'").run(document, roleArn));
  }

  async putPrincipalPolicy(policy: PrincipalPolicyRecord): Promise<void> {
    return this.#write(() => {
      this.#statement(`INSERT INTO principal_policies (principal_arn, policy_name, document, updated_at) VALUES (?, ?, ?, ?)
        ON CONFLICT (principal_arn, policy_name) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at`)
        .run(policy.principalArn, policy.policyName, policy.document, policy.updatedAt.getTime());
    });
  }

  async deletePrincipalPolicy(principalArn: string, policyName: string): Promise<boolean> {
    return this.#write(() => {
      return this.#statement('DELETE FROM principal_policies WHERE principal_arn = ? AND policy_name = ?').run(principalArn, policyName).changes > 0;
    });
  }

  async listPrincipalPolicies(principalArn: string): Promise<PrincipalPolicyRecord[]> {
    return (this.#statement('SELECT * FROM principal_policies WHERE principal_arn = ? ORDER BY policy_name').all(principalArn) as Row[])
      .map((row) => ({ principalArn: String(row.principal_arn), policyName: String(row.policy_name), document: String(row.document),
        updatedAt: toDate(row.updated_at) as Date }));
  }

  async getAccessKey(accessKeyId: string): Promise<AccessKeyRecord | undefined> {
    const row = this.#statement('SELECT * FROM access_keys WHERE access_key_id = ?').get(accessKeyId) as Row | undefined;
    return row ? accessKeyFromRow(row) : undefined;
  }

  #activeKeyCount(principalArn: string): number {
    return Number((this.#statement("SELECT COUNT(*) AS n FROM access_keys WHERE principal_arn = ? AND status = 'Active' AND session_token_hash IS NULL")
      .get(principalArn) as Row).n);
  }

  async addAccessKey(accessKey: AccessKeyRecord, maxActive: number): Promise<void> {
    this.#write(() => {
      if (!accessKey.session && accessKey.status === 'Active' && this.#activeKeyCount(accessKey.principalArn) >= maxActive) {
        throw new StoreLimitError(`a principal may have at most ${maxActive} active access keys`);
      }
      this.#insertAccessKey(accessKey);
    });
  }

  async listAccessKeys(principalArn: string): Promise<AccessKeyRecord[]> {
    return (this.#statement('SELECT * FROM access_keys WHERE principal_arn = ? AND session_token_hash IS NULL ORDER BY created_at')
      .all(principalArn) as Row[]).map(accessKeyFromRow);
  }

  async setAccessKeyStatus(accessKeyId: string, status: AccessKeyStatus, maxActive: number): Promise<boolean> {
    return this.#write(() => {
      const current = this.#statement('SELECT * FROM access_keys WHERE access_key_id = ? AND session_token_hash IS NULL').get(accessKeyId) as Row | undefined;
      if (!current) return false;
      if (status === 'Active' && current.status !== 'Active' && this.#activeKeyCount(String(current.principal_arn)) >= maxActive) {
        throw new StoreLimitError(`a principal may have at most ${maxActive} active access keys`);
      }
      this.#statement('UPDATE access_keys SET status = ? WHERE access_key_id = ?').run(status, accessKeyId);
      return true;
    });
  }

  async deleteAccessKey(accessKeyId: string): Promise<boolean> {
    return this.#write(() => {
      return this.#statement('DELETE FROM access_keys WHERE access_key_id = ?').run(accessKeyId).changes > 0;
    });
  }

  async deleteExpiredSessions(now: Date): Promise<number> {
    return this.#statement('DELETE FROM access_keys WHERE session_token_hash IS NOT NULL AND expires_at <= ?').run(now.getTime()).changes;
  }

  async createGrant(grant: GrantRecord): Promise<void> {
    return this.#write(() => {
      this.#statement(`INSERT INTO grants (grant_id, key_id, account_id, name, grantee_principal, retiring_principal, operations,
        constraints, issuing_account, created_at, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(grant.grantId, grant.keyId, grant.accountId, grant.name ?? null, grant.granteePrincipal, grant.retiringPrincipal ?? null,
          JSON.stringify(grant.operations), grant.constraints ? JSON.stringify(grant.constraints) : null, grant.issuingAccount,
          grant.createdAt.getTime(), grant.tokenHash);
    });
  }

  async getGrant(grantId: string): Promise<GrantRecord | undefined> {
    const row = this.#statement('SELECT * FROM grants WHERE grant_id = ?').get(grantId) as Row | undefined;
    return row ? grantFromRow(row) : undefined;
  }

  async findGrantByTokenHash(tokenHash: Buffer): Promise<GrantRecord | undefined> {
    const row = this.#statement('SELECT * FROM grants WHERE token_hash = ?').get(tokenHash) as Row | undefined;
    return row ? grantFromRow(row) : undefined;
  }

  async listGrants(filter: { keyId?: string; grantee?: string; retiringPrincipal?: string; grantId?: string },
    limit: number, marker?: string): Promise<Page<GrantRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (this.#statement(`SELECT * FROM grants WHERE (@keyId IS NULL OR key_id = @keyId)
      AND (@grantee IS NULL OR grantee_principal = @grantee) AND (@retiring IS NULL OR retiring_principal = @retiring)
      AND (@grantId IS NULL OR grant_id = @grantId) AND grant_id > @after ORDER BY grant_id LIMIT @limit`)
      .all({ keyId: filter.keyId ?? null, grantee: filter.grantee ?? null, retiring: filter.retiringPrincipal ?? null,
        grantId: filter.grantId ?? null, after, limit: limit + 1 }) as Row[])
      .map(grantFromRow);
    return page(rows, limit, (grant) => grant.grantId);
  }

  async grantsFor(keyId: string, granteePrincipal: string): Promise<GrantRecord[]> {
    return (this.#statement('SELECT * FROM grants WHERE key_id = ? AND grantee_principal = ?').all(keyId, granteePrincipal) as Row[])
      .map(grantFromRow);
  }

  async deleteGrant(grantId: string): Promise<boolean> {
    return this.#write(() => {
      return this.#statement('DELETE FROM grants WHERE grant_id = ?').run(grantId).changes > 0;
    });
  }

  #insertVersion(version: KeyVersionRecord): void {
    this.#statement(`INSERT INTO key_versions (key_id, version, domain_key_id, wrapped_material, public_key, created_at, rotation_type)
      VALUES (?, ?, ?, ?, ?, ?, ?)`).run(version.keyId, version.version, version.material.domainKeyId, version.material.wrapped,
      version.publicKeyDer ?? null, version.createdAt.getTime(), version.rotationType ?? null);
  }

  #putTags(keyId: string, tags: TagRecord[]): void {
    const upsert = this.#statement(`INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES (?, ?, ?)
      ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = excluded.tag_value`);
    for (const tag of tags) upsert.run(keyId, tag.tagKey, tag.tagValue);
  }

  async createKey(key: KeyRecord, firstVersion: KeyVersionRecord, tags: TagRecord[]): Promise<void> {
    this.#write(() => {
      this.#statement(`INSERT INTO keys (key_id, account_id, arn, description, key_spec, key_usage, key_state, origin,
        created_at, deletion_date, pending_window_days, current_version, min_decrypt_version, rotation_enabled,
        rotation_period_days, next_rotation_at, policy, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(key.keyId, key.accountId, key.arn, key.description, key.keySpec, key.keyUsage, key.keyState, key.origin,
          key.createdAt.getTime(), fromDate(key.deletionDate), key.pendingWindowInDays ?? null, key.currentVersion,
          key.minDecryptVersion, key.rotationEnabled ? 1 : 0, key.rotationPeriodInDays ?? null,
          fromDate(key.nextRotationAt), key.policy, key.revision);
      this.#insertVersion(firstVersion);
      this.#putTags(key.keyId, tags);
    });
  }

  async getKey(keyId: string): Promise<KeyRecord | undefined> {
    const row = this.#statement('SELECT * FROM keys WHERE key_id = ?').get(keyId) as Row | undefined;
    return row ? keyFromRow(row) : undefined;
  }

  async listKeys(accountId: string, limit: number, marker?: string): Promise<Page<KeyRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (this.#statement('SELECT * FROM keys WHERE account_id = ? AND key_id > ? ORDER BY key_id LIMIT ?')
      .all(accountId, after, limit + 1) as Row[]).map(keyFromRow);
    return page(rows, limit, (key) => key.keyId);
  }

  #applyPatch(keyId: string, expectedRevision: number, patch: KeyPatch): KeyRecord {
    const entries = Object.entries(patch).filter(([, value]) => value !== undefined) as Array<[keyof KeyPatch, unknown]>;
    const assignments = entries.map(([field]) => `${PATCH_COLUMNS[field]} = ?`);
    assignments.push('revision = revision + 1');
    const result = this.#db.prepare(`UPDATE keys SET ${assignments.join(', ')} WHERE key_id = ? AND revision = ?`)
      .run(...entries.map(([, value]) => patchValue(value)), keyId, expectedRevision);
    if (result.changes === 0) throw new StoreConflictError(`key ${keyId} changed concurrently`);
    return keyFromRow(this.#statement('SELECT * FROM keys WHERE key_id = ?').get(keyId) as Row);
  }

  async updateKey(keyId: string, expectedRevision: number, patch: KeyPatch): Promise<KeyRecord> {
    return this.#write(() => this.#applyPatch(keyId, expectedRevision, patch));
  }

  async addKeyVersion(keyId: string, expectedRevision: number, version: KeyVersionRecord, patch: KeyPatch,
    options: { staged?: boolean; alsoInTransaction?: () => void } = {}): Promise<KeyRecord> {
    return this.#write(() => {
      const updated = this.#applyPatch(keyId, expectedRevision,
        { ...patch, ...(options.staged ? { pendingVersion: version.version } : { currentVersion: version.version }) });
      this.#insertVersion(version);
      options.alsoInTransaction?.();
      return updated;
    });
  }

  async getKeyVersion(keyId: string, version: number): Promise<KeyVersionRecord | undefined> {
    const row = this.#statement('SELECT * FROM key_versions WHERE key_id = ? AND version = ?').get(keyId, version) as Row | undefined;
    return row ? versionFromRow(row) : undefined;
  }

  async listKeyVersions(keyId: string, limit: number, marker?: string, options: { rotationsOnly?: boolean } = {}): Promise<Page<KeyVersionRecord>> {
    const after = Number(decodeMarker(marker) ?? '0');
    if (!Number.isInteger(after)) throw new InvalidMarkerError();
    const rows = (this.#statement(`SELECT * FROM key_versions WHERE key_id = ? AND version > ?
      AND (? = 0 OR rotation_type IS NOT NULL) ORDER BY version LIMIT ?`)
      .all(keyId, after, options.rotationsOnly ? 1 : 0, limit + 1) as Row[]).map(versionFromRow);
    return page(rows, limit, (version) => String(version.version));
  }

  async deleteKeyIfDue(keyId: string, now: Date): Promise<boolean> {
    return this.#write(() => {
      // Cascades remove versions, aliases and tags. Conditional, so a CancelKeyDeletion
      // acknowledged after the due list was read always wins.
      return this.#statement("DELETE FROM keys WHERE key_id = ? AND key_state = 'PendingDeletion' AND deletion_date <= ?")
        .run(keyId, now.getTime()).changes > 0;
    });
  }

  async listKeysDueForDeletion(now: Date): Promise<KeyRecord[]> {
    return (this.#statement("SELECT * FROM keys WHERE key_state = 'PendingDeletion' AND deletion_date <= ?")
      .all(now.getTime()) as Row[]).map(keyFromRow);
  }

  async listKeysDueForRotation(now: Date): Promise<KeyRecord[]> {
    return (this.#statement("SELECT * FROM keys WHERE rotation_enabled = 1 AND key_state = 'Enabled' AND next_rotation_at <= ?")
      .all(now.getTime()) as Row[]).map(keyFromRow);
  }

  async createAlias(alias: AliasRecord): Promise<void> {
    return this.#write(() => {
      const result = this.#statement(`INSERT INTO aliases (account_id, alias_name, key_id, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`).run(alias.accountId, alias.aliasName, alias.keyId,
        alias.createdAt.getTime(), alias.updatedAt.getTime());
      if (result.changes === 0) throw new StoreDuplicateError(`alias ${alias.aliasName} already exists`);
    });
  }

  async getAlias(accountId: string, aliasName: string): Promise<AliasRecord | undefined> {
    const row = this.#statement('SELECT * FROM aliases WHERE account_id = ? AND alias_name = ?').get(accountId, aliasName) as Row | undefined;
    return row ? aliasFromRow(row) : undefined;
  }

  async updateAlias(accountId: string, aliasName: string, keyId: string, now: Date): Promise<void> {
    return this.#write(() => {
      this.#statement('UPDATE aliases SET key_id = ?, updated_at = ? WHERE account_id = ? AND alias_name = ?')
        .run(keyId, now.getTime(), accountId, aliasName);
    });
  }

  async deleteAlias(accountId: string, aliasName: string): Promise<boolean> {
    return this.#write(() => {
      return this.#statement('DELETE FROM aliases WHERE account_id = ? AND alias_name = ?').run(accountId, aliasName).changes > 0;
    });
  }

  async listAliases(accountId: string, keyId: string | undefined, limit: number, marker?: string): Promise<Page<AliasRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (keyId
      ? this.#statement('SELECT * FROM aliases WHERE account_id = ? AND key_id = ? AND alias_name > ? ORDER BY alias_name LIMIT ?')
        .all(accountId, keyId, after, limit + 1)
      : this.#statement('SELECT * FROM aliases WHERE account_id = ? AND alias_name > ? ORDER BY alias_name LIMIT ?')
        .all(accountId, after, limit + 1)) as Row[];
    return page(rows.map(aliasFromRow), limit, (alias) => alias.aliasName);
  }

  async putTags(keyId: string, tags: TagRecord[]): Promise<void> {
    this.#write(() => this.#putTags(keyId, tags));
  }

  async removeTags(keyId: string, tagKeys: string[]): Promise<void> {
    this.#write(() => {
      const remove = this.#statement('DELETE FROM key_tags WHERE key_id = ? AND tag_key = ?');
      for (const tagKey of tagKeys) remove.run(keyId, tagKey);
    });
  }

  async listTags(keyId: string, limit: number, marker?: string): Promise<Page<TagRecord>> {
    const after = decodeMarker(marker) ?? '';
    const rows = (this.#statement('SELECT tag_key, tag_value FROM key_tags WHERE key_id = ? AND tag_key > ? ORDER BY tag_key LIMIT ?')
      .all(keyId, after, limit + 1) as Row[]).map((row) => ({ tagKey: String(row.tag_key), tagValue: String(row.tag_value) }));
    return page(rows, limit, (tag) => tag.tagKey);
  }
}
