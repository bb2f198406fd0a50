// The fleet's tables (host classes, class key grants, join tokens, endorsement keys allowed per class
// and pending TPM enrolments, the change feed) on the key service's SQLite connection, so a change and
// its feed entry and audit record commit together.
// Must never store a join token in clear: only its SHA-256.
import type Database from 'better-sqlite3';
import type {
  AllowedEkRecord, CertificateAuthorityRecord, EndorsedEnrolmentResult, FleetChange, FleetChangeKind, FleetStore, HostClassRecord,
  HostHoldings, HostRecord, JoinTokenRecord, RotationRecord, RotationState, TpmEnrolmentRecord,
} from './fleet-types.ts';
import { classAttestationFromJson } from './attest-types.ts';
import type { SqliteStore } from './sqlite.ts';
import { StoreConflictError, StoreDuplicateError } from './types.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

// One query per listing: each class with its grants, each host with its classes, gathered as JSON arrays.
const CLASSES_SQL = `SELECT c.*, json_group_array(k.key_id ORDER BY k.key_id) FILTER (WHERE k.key_id IS NOT NULL) AS key_ids
  FROM host_classes c LEFT JOIN class_keys k ON k.account_id = c.account_id AND k.class_name = c.name`;
const HOSTS_SQL = `SELECT h.*, json_group_array(m.class_name ORDER BY m.class_name) FILTER (WHERE m.class_name IS NOT NULL) AS classes
  FROM hosts h LEFT JOIN host_memberships m ON m.host_id = h.host_id`;

function classFromRow(row: Row): HostClassRecord {
  return { accountId: String(row.account_id), name: String(row.name), parent: (row.parent as string | null) ?? undefined,
    createdAt: new Date(Number(row.created_at)), keyIds: JSON.parse(String(row.key_ids)) as string[],
    attestation: row.attestation === null || row.attestation === undefined ? undefined : classAttestationFromJson(String(row.attestation)) };
}

function hostFromRow(row: Row): HostRecord {
  return { hostId: String(row.host_id), accountId: String(row.account_id), name: String(row.name), publicKeyDer: row.public_key as Buffer,
    certificateSerial: String(row.certificate_serial), certificateNotAfter: new Date(Number(row.certificate_not_after)),
    status: row.status as HostRecord['status'], agentVersion: (row.agent_version as string | null) ?? undefined,
    createdAt: new Date(Number(row.created_at)), lastSeen: row.last_seen === null ? undefined : new Date(Number(row.last_seen)),
    hpkePublicKey: (row.hpke_public_key as Buffer | null) ?? undefined, revision: Number(row.revision),
    classes: JSON.parse(String(row.classes)) as string[] };
}

function changeFromRow(row: Row): FleetChange {
  return { revision: Number(row.revision), accountId: String(row.account_id), kind: row.kind as FleetChangeKind,
    className: (row.class_name as string | null) ?? undefined, keyId: (row.key_id as string | null) ?? undefined,
    hostId: (row.host_id as string | null) ?? undefined, at: new Date(Number(row.at)) };
}

const optionalDate = (value: unknown): Date | undefined => (value === null || value === undefined ? undefined : new Date(Number(value)));

function rotationFromRow(row: Row): RotationRecord {
  return { keyId: String(row.key_id), version: Number(row.version), accountId: String(row.account_id), state: row.state as RotationState,
    reason: String(row.reason), startedAt: new Date(Number(row.started_at)), startedBy: String(row.started_by),
    promoteAfter: optionalDate(row.promote_after), promotedAt: optionalDate(row.promoted_at),
    promotedBy: (row.promoted_by as string | null) ?? undefined,
    leftBehind: row.left_behind === null ? undefined : JSON.parse(String(row.left_behind)) as string[] };
}

function allowedEkFromRow(row: Row): AllowedEkRecord {
  return { fingerprint: String(row.fingerprint), accountId: String(row.account_id), className: String(row.class_name),
    addedBy: String(row.added_by), addedAt: new Date(Number(row.added_at)), enrolledHostId: (row.enrolled_host_id as string | null) ?? undefined };
}

function tpmEnrolmentFromRow(row: Row): TpmEnrolmentRecord {
  return { enrolmentId: String(row.enrolment_id), accountId: String(row.account_id), className: String(row.class_name),
    fingerprint: String(row.fingerprint), secretDigest: row.secret_digest as Buffer, expiresAt: new Date(Number(row.expires_at)),
    createdAt: new Date(Number(row.created_at)), inputs: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_inputs as Buffer } };
}

function holdingsFromRows(rows: Row[]): HostHoldings {
  const holdings: HostHoldings = {};
  for (const row of rows) (holdings[String(row.key_id)] ??= []).push(Number(row.version));
  return holdings;
}

export class SqliteFleetStore implements FleetStore {
  readonly #store: SqliteStore;
  readonly #statements: StatementCache;

  constructor(store: SqliteStore) {
    this.#store = store;
    this.#statements = new StatementCache(store.database);
  }

  #statement(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  #recordChange(change: Omit<FleetChange, 'revision'>): void {
    this.#statement('INSERT INTO fleet_changes (account_id, kind, class_name, key_id, host_id, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(change.accountId, change.kind, change.className ?? null, change.keyId ?? null, change.hostId ?? null, change.at.getTime());
  }

  async createClass(accountId: string, name: string, parent: string | undefined, now: Date): Promise<void> {
    this.#store.writeTransaction(() => {
      if (parent !== undefined && !this.#statement('SELECT 1 FROM host_classes WHERE account_id = ? AND name = ?').get(accountId, parent)) {
        throw new StoreConflictError(`parent class ${parent} does not exist`);
      }
      const inserted = this.#statement('INSERT INTO host_classes (account_id, name, parent, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(accountId, name, parent ?? null, now.getTime());
      if (inserted.changes === 0) throw new StoreDuplicateError(`class ${name} exists`);
      this.#recordChange({ accountId, kind: 'class-created', className: name, at: now });
    });
  }

  async getClass(accountId: string, name: string): Promise<HostClassRecord | undefined> {
    const row = this.#statement(`${CLASSES_SQL} WHERE c.account_id = ? AND c.name = ? GROUP BY c.account_id, c.name`)
      .get(accountId, name) as Row | undefined;
    return row ? classFromRow(row) : undefined;
  }

  async listClasses(accountId: string): Promise<HostClassRecord[]> {
    return (this.#statement(`${CLASSES_SQL} WHERE c.account_id = ? GROUP BY c.account_id, c.name ORDER BY c.name`)
      .all(accountId) as Row[]).map(classFromRow);
  }

  /** Deletes a class with no child classes; its key grants go with it. */
  async deleteClass(accountId: string, name: string, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      if (this.#statement('SELECT 1 FROM host_classes WHERE account_id = ? AND parent = ? LIMIT 1').get(accountId, name)) {
        throw new StoreConflictError(`class ${name} has child classes`);
      }
      if (this.#statement('SELECT 1 FROM host_memberships WHERE account_id = ? AND class_name = ? LIMIT 1').get(accountId, name)) {
        throw new StoreConflictError(`class ${name} has hosts`);
      }
      const deleted = this.#statement('DELETE FROM host_classes WHERE account_id = ? AND name = ?').run(accountId, name).changes === 1;
      if (deleted) {
        // A token naming the class must not enrol hosts into a later class of the same name.
        this.#statement('DELETE FROM join_tokens WHERE account_id = ? AND EXISTS (SELECT 1 FROM json_each(join_tokens.classes) WHERE value = ?)')
          .run(accountId, name);
        this.#recordChange({ accountId, kind: 'class-deleted', className: name, at: now });
      }
      return deleted;
    });
  }

  /** Grants a key to a class; false when it already had it (nothing changes, no feed entry). */
  async grantKey(accountId: string, className: string, keyId: string, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      // Checked here, not only by the caller: a class or key deleted meanwhile is a conflict, not a constraint failure.
      if (!this.#statement('SELECT 1 FROM host_classes WHERE account_id = ? AND name = ?').get(accountId, className)) {
        throw new StoreConflictError(`class ${className} does not exist`);
      }
      if (!this.#statement("SELECT 1 FROM keys WHERE key_id = ? AND key_state != 'PendingDeletion'").get(keyId)) {
        throw new StoreConflictError(`key ${keyId} does not exist or is pending deletion`);
      }
      const granted = this.#statement('INSERT INTO class_keys (account_id, class_name, key_id, granted_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(accountId, className, keyId, now.getTime()).changes === 1;
      if (granted) this.#recordChange({ accountId, kind: 'key-granted', className, keyId, at: now });
      return granted;
    });
  }

  /** Revokes a grant; the class_keys_revoked trigger records the change (as it does for every way a grant goes). */
  async revokeKey(accountId: string, className: string, keyId: string): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      return this.#statement('DELETE FROM class_keys WHERE account_id = ? AND class_name = ? AND key_id = ?')
        .run(accountId, className, keyId).changes === 1;
    });
  }

  async createJoinToken(token: JoinTokenRecord): Promise<void> {
    this.#store.writeTransaction(() => {
      this.#statement(`INSERT INTO join_tokens (token_hash, account_id, classes, uses_left, expires_at, created_at, created_by)
        VALUES (?, ?, ?, ?, ?, ?, ?)`).run(token.tokenHash, token.accountId, JSON.stringify(token.classes), token.usesLeft,
        token.expiresAt.getTime(), token.createdAt.getTime(), token.createdBy);
    });
  }

  async changesSince(accountId: string, revision: number, limit: number): Promise<FleetChange[]> {
    return (this.#statement('SELECT * FROM fleet_changes WHERE account_id = ? AND revision > ? ORDER BY revision LIMIT ?')
      .all(accountId, revision, limit) as Row[]).map(changeFromRow);
  }

  async changesAfter(revision: number, limit: number): Promise<FleetChange[]> {
    return (this.#statement('SELECT * FROM fleet_changes WHERE revision > ? ORDER BY revision LIMIT ?').all(revision, limit) as Row[])
      .map(changeFromRow);
  }

  async latestRevision(): Promise<number> {
    const row = this.#statement('SELECT max(revision) AS revision FROM fleet_changes').get() as Row;
    return Number(row.revision ?? 0);
  }

  async getCertificateAuthority(accountId: string): Promise<CertificateAuthorityRecord | undefined> {
    const row = this.#statement('SELECT * FROM fleet_ca WHERE account_id = ?').get(accountId) as Row | undefined;
    return row ? { accountId, certificateDer: row.certificate as Buffer, createdAt: new Date(Number(row.created_at)),
      privateKey: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_private_key as Buffer } } : undefined;
  }

  /** Stores the account's CA unless another request stored one first; returns the one in force. */
  async putCertificateAuthority(record: CertificateAuthorityRecord): Promise<CertificateAuthorityRecord> {
    this.#store.writeTransaction(() => {
      this.#statement(`INSERT INTO fleet_ca (account_id, certificate, domain_key_id, wrapped_private_key, created_at)
        VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`).run(record.accountId, record.certificateDer, record.privateKey.domainKeyId,
        record.privateKey.wrapped, record.createdAt.getTime());
    });
    return (await this.getCertificateAuthority(record.accountId)) as CertificateAuthorityRecord;
  }

  /** A token's classes if it could be used now, without using it (enrolment signs a certificate before it commits). */
  async peekJoinToken(tokenHash: Buffer, now: Date): Promise<JoinTokenRecord | undefined> {
    const row = this.#statement('SELECT * FROM join_tokens WHERE token_hash = ?').get(tokenHash) as Row | undefined;
    if (!row || Number(row.uses_left) < 1 || Number(row.expires_at) <= now.getTime()) return undefined;
    return { tokenHash, accountId: String(row.account_id), classes: JSON.parse(String(row.classes)) as string[],
      usesLeft: Number(row.uses_left), expiresAt: new Date(Number(row.expires_at)), createdAt: new Date(Number(row.created_at)),
      createdBy: String(row.created_by) };
  }

  /** Uses one use of the token and records the host with its classes, in one transaction; false if the token was used up meanwhile. */
  async enrollHost(tokenHash: Buffer, host: HostRecord, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const used = this.#statement('UPDATE join_tokens SET uses_left = uses_left - 1 WHERE token_hash = ? AND uses_left > 0 AND expires_at > ?')
        .run(tokenHash, now.getTime()).changes === 1;
      if (!used) return false;
      this.#insertHost(host, now);
      return true;
    });
  }

  #insertHost(host: HostRecord, now: Date): void {
    this.#statement(`INSERT INTO hosts (host_id, account_id, name, public_key, hpke_public_key, certificate_serial, certificate_not_after,
      status, agent_version, created_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(host.hostId, host.accountId, host.name,
      host.publicKeyDer, host.hpkePublicKey ?? null, host.certificateSerial, host.certificateNotAfter.getTime(), host.status,
      host.agentVersion ?? null, host.createdAt.getTime(), host.lastSeen?.getTime() ?? null);
    this.#insertMemberships(host.accountId, host.hostId, host.classes);
    this.#recordChange({ accountId: host.accountId, kind: 'host-enrolled', hostId: host.hostId, at: now });
  }

  async allowEk(record: Omit<AllowedEkRecord, 'enrolledHostId'>): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      if (!this.#statement('SELECT 1 FROM host_classes WHERE account_id = ? AND name = ?').get(record.accountId, record.className)) {
        throw new StoreConflictError(`class ${record.className} does not exist`);
      }
      const existing = this.#statement('SELECT account_id, class_name FROM allowed_eks WHERE fingerprint = ?').get(record.fingerprint) as Row | undefined;
      if (existing) {
        if (String(existing.account_id) === record.accountId && String(existing.class_name) === record.className) return false;
        throw new StoreDuplicateError(`endorsement key ${record.fingerprint} is allowed in another class`);
      }
      this.#statement('INSERT INTO allowed_eks (fingerprint, account_id, class_name, added_by, added_at) VALUES (?, ?, ?, ?, ?)')
        .run(record.fingerprint, record.accountId, record.className, record.addedBy, record.addedAt.getTime());
      return true;
    });
  }

  async listAllowedEks(accountId: string, className: string): Promise<AllowedEkRecord[]> {
    return (this.#statement('SELECT * FROM allowed_eks WHERE account_id = ? AND class_name = ? ORDER BY added_at, fingerprint')
      .all(accountId, className) as Row[]).map(allowedEkFromRow);
  }

  async findAllowedEk(fingerprint: string): Promise<AllowedEkRecord | undefined> {
    const row = this.#statement('SELECT * FROM allowed_eks WHERE fingerprint = ?').get(fingerprint) as Row | undefined;
    return row ? allowedEkFromRow(row) : undefined;
  }

  async removeAllowedEk(accountId: string, className: string, fingerprint: string): Promise<boolean> {
    return this.#store.writeTransaction(() => this.#statement('DELETE FROM allowed_eks WHERE fingerprint = ? AND account_id = ? AND class_name = ?')
      .run(fingerprint, accountId, className).changes === 1);
  }

  async createTpmEnrolment(record: TpmEnrolmentRecord, maxPerEk: number, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      this.#statement('DELETE FROM tpm_enrolments WHERE expires_at <= ?').run(now.getTime());
      const allowed = this.#statement('SELECT 1 FROM allowed_eks WHERE fingerprint = ? AND account_id = ? AND class_name = ?')
        .get(record.fingerprint, record.accountId, record.className);
      if (!allowed) return false;
      this.#statement(`INSERT INTO tpm_enrolments (enrolment_id, account_id, class_name, fingerprint, secret_digest, expires_at, created_at,
        domain_key_id, wrapped_inputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(record.enrolmentId, record.accountId, record.className,
        record.fingerprint, record.secretDigest, record.expiresAt.getTime(), record.createdAt.getTime(), record.inputs.domainKeyId,
        record.inputs.wrapped);
      // The newest few stay: a host that retries is not locked out by its own (or anyone's) earlier attempts.
      this.#statement(`DELETE FROM tpm_enrolments WHERE fingerprint = ? AND enrolment_id NOT IN (SELECT enrolment_id FROM tpm_enrolments
        WHERE fingerprint = ? ORDER BY created_at DESC, rowid DESC LIMIT ?)`).run(record.fingerprint, record.fingerprint, maxPerEk);
      return true;
    });
  }

  async takeTpmEnrolment(enrolmentId: string, now: Date): Promise<TpmEnrolmentRecord | undefined> {
    return this.#store.writeTransaction(() => {
      const row = this.#statement('DELETE FROM tpm_enrolments WHERE enrolment_id = ? RETURNING *').get(enrolmentId) as Row | undefined;
      return row && Number(row.expires_at) > now.getTime() ? tpmEnrolmentFromRow(row) : undefined;
    });
  }

  async purgeTpmEnrolments(now: Date): Promise<number> {
    return this.#store.writeTransaction(() => this.#statement('DELETE FROM tpm_enrolments WHERE expires_at <= ?').run(now.getTime()).changes);
  }

  async enrollHostByEndorsement(host: HostRecord, fingerprint: string, now: Date): Promise<EndorsedEnrolmentResult> {
    return this.#store.writeTransaction((): EndorsedEnrolmentResult => {
      const allowed = this.#statement(`SELECT a.enrolled_host_id FROM allowed_eks a WHERE a.fingerprint = ? AND a.account_id = ? AND a.class_name = ?`)
        .get(fingerprint, host.accountId, host.classes[0] ?? null) as Row | undefined;
      if (!allowed || host.classes.length !== 1) return { kind: 'not-allowed' };
      // The foreign key clears the column when the host is removed; a live host keeps its EK.
      if (allowed.enrolled_host_id !== null) return { kind: 'in-use', hostId: String(allowed.enrolled_host_id) };
      this.#insertHost(host, now);
      this.#statement('UPDATE allowed_eks SET enrolled_host_id = ? WHERE fingerprint = ?').run(host.hostId, fingerprint);
      return { kind: 'enrolled' };
    });
  }

  #insertMemberships(accountId: string, hostId: string, classes: string[]): void {
    for (const className of classes) {
      if (!this.#statement('SELECT 1 FROM host_classes WHERE account_id = ? AND name = ?').get(accountId, className)) {
        throw new StoreConflictError(`class ${className} does not exist`);
      }
      this.#statement('INSERT INTO host_memberships (host_id, account_id, class_name) VALUES (?, ?, ?)').run(hostId, accountId, className);
    }
  }

  async getHost(accountId: string, hostId: string): Promise<HostRecord | undefined> {
    const row = this.#statement(`${HOSTS_SQL} WHERE h.account_id = ? AND h.host_id = ? GROUP BY h.host_id`)
      .get(accountId, hostId) as Row | undefined;
    return row ? hostFromRow(row) : undefined;
  }

  async listHosts(accountId: string): Promise<HostRecord[]> {
    return (this.#statement(`${HOSTS_SQL} WHERE h.account_id = ? GROUP BY h.host_id ORDER BY h.host_id`)
      .all(accountId) as Row[]).map(hostFromRow);
  }

  async setHostClasses(accountId: string, hostId: string, classes: string[], now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      if (!this.#statement('SELECT 1 FROM hosts WHERE account_id = ? AND host_id = ?').get(accountId, hostId)) return false;
      this.#statement('DELETE FROM host_memberships WHERE host_id = ?').run(hostId);
      this.#insertMemberships(accountId, hostId, classes);
      this.#recordChange({ accountId, kind: 'host-classes-changed', hostId, at: now });
      return true;
    });
  }

  async removeHost(accountId: string, hostId: string, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const removed = this.#statement('DELETE FROM hosts WHERE account_id = ? AND host_id = ?').run(accountId, hostId).changes === 1;
      if (removed) this.#recordChange({ accountId, kind: 'host-removed', hostId, at: now });
      return removed;
    });
  }

  async findHost(hostId: string): Promise<HostRecord | undefined> {
    const row = this.#statement(`${HOSTS_SQL} WHERE h.host_id = ? GROUP BY h.host_id`).get(hostId) as Row | undefined;
    return row ? hostFromRow(row) : undefined;
  }

  async replaceHostCertificate(hostId: string, serial: string, notAfter: Date, publicKeyDer: Buffer): Promise<boolean> {
    return this.#store.writeTransaction(() => this.#statement(
      'UPDATE hosts SET certificate_serial = ?, certificate_not_after = ?, public_key = ? WHERE host_id = ?')
      .run(serial, notAfter.getTime(), publicKeyDer, hostId).changes === 1);
  }

  async recordHoldings(hostId: string, holdings: HostHoldings, removedKeyIds: string[], revision: number, now: Date,
    agentVersion?: string): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const updated = this.#statement(`UPDATE hosts SET last_seen = ?, revision = max(revision, ?), agent_version = coalesce(?, agent_version)
        WHERE host_id = ?`).run(now.getTime(), revision, agentVersion ?? null, hostId).changes === 1;
      if (!updated) return false;
      for (const keyId of [...Object.keys(holdings), ...removedKeyIds]) {
        this.#statement('DELETE FROM host_key_versions WHERE host_id = ? AND key_id = ?').run(hostId, keyId);
      }
      for (const [keyId, versions] of Object.entries(holdings)) {
        for (const version of versions) {
          this.#statement('INSERT INTO host_key_versions (host_id, key_id, version, received_at) VALUES (?, ?, ?, ?)')
            .run(hostId, keyId, version, now.getTime());
        }
      }
      return true;
    });
  }

  async holdingsOf(hostId: string): Promise<HostHoldings> {
    return holdingsFromRows(this.#statement('SELECT key_id, version FROM host_key_versions WHERE host_id = ? ORDER BY key_id, version')
      .all(hostId) as Row[]);
  }

  async holdingsByHost(accountId: string): Promise<Map<string, HostHoldings>> {
    const rows = this.#statement(`SELECT v.host_id, v.key_id, v.version FROM host_key_versions v JOIN hosts h ON h.host_id = v.host_id
      WHERE h.account_id = ? ORDER BY v.host_id, v.key_id, v.version`).all(accountId) as Row[];
    const byHost = new Map<string, Row[]>();
    for (const row of rows) {
      const list = byHost.get(String(row.host_id)) ?? [];
      list.push(row);
      byHost.set(String(row.host_id), list);
    }
    return new Map([...byHost].map(([hostId, hostRows]) => [hostId, holdingsFromRows(hostRows)]));
  }

  async hostsHolding(keyId: string, version: number): Promise<string[]> {
    return (this.#statement('SELECT host_id FROM host_key_versions WHERE key_id = ? AND version = ? ORDER BY host_id')
      .all(keyId, version) as Row[]).map((row) => String(row.host_id));
  }

  recordStagedRotationInTransaction(record: RotationRecord): void {
    // A still-pending older version is superseded: it never became a default, so nothing was encrypted under it.
    this.#statement("UPDATE fleet_rotations SET state = 'superseded' WHERE key_id = ? AND state = 'pending'").run(record.keyId);
    this.#statement(`INSERT INTO fleet_rotations (key_id, version, account_id, state, reason, started_at, started_by, promote_after)
      VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)`).run(record.keyId, record.version, record.accountId, record.reason,
      record.startedAt.getTime(), record.startedBy, record.promoteAfter?.getTime() ?? null);
  }

  async latestRotation(keyId: string): Promise<RotationRecord | undefined> {
    const row = this.#statement('SELECT * FROM fleet_rotations WHERE key_id = ? ORDER BY version DESC LIMIT 1').get(keyId) as Row | undefined;
    return row ? rotationFromRow(row) : undefined;
  }

  async pendingRotations(): Promise<RotationRecord[]> {
    return (this.#statement("SELECT * FROM fleet_rotations WHERE state = 'pending' ORDER BY key_id").all() as Row[]).map(rotationFromRow);
  }

  async promoteRotation(keyId: string, version: number, promotedBy: string, leftBehind: string[], now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const promoted = this.#statement(`UPDATE keys SET current_version = pending_version, pending_version = NULL, revision = revision + 1
        WHERE key_id = ? AND pending_version = ?`).run(keyId, version).changes === 1;
      if (!promoted) return false;
      this.#statement(`UPDATE fleet_rotations SET state = 'promoted', promoted_at = ?, promoted_by = ?, left_behind = ?
        WHERE key_id = ? AND version = ?`).run(now.getTime(), promotedBy, leftBehind.length > 0 ? JSON.stringify(leftBehind) : null,
        keyId, version);
      return true;
    });
  }

  isKeyDistributed(keyId: string): boolean {
    return this.#statement('SELECT 1 FROM class_keys WHERE key_id = ? LIMIT 1').get(keyId) !== undefined;
  }
}
