// The attestation tables on the key service's SQLite connection, so a verdict, the vault it
// changed, the quarantine it caused and the feed entry the push follows commit together.
// Must never write a vault whose revision moved since it was read (compare-and-swap).
import type Database from 'better-sqlite3';
import type {
  AlertRecord, AppKeyRecord, AttestedCertificateRecord, AttestStore, ClassAttestationSettings, HostAttestationRecord, HostVaultRecord,
  ReferencePolicyRecord, VerdictWrite, VerifierKeyRecord,
} from './attest-types.ts';
import { classAttestationFromJson, HOST_REMOVED_REASON } from './attest-types.ts';
import type { FleetChangeKind } from './fleet-types.ts';
import type { SqliteStore } from './sqlite.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

const optionalDate = (value: unknown): Date | undefined => (value === null || value === undefined ? undefined : new Date(Number(value)));

function attestationFromRow(row: Row): HostAttestationRecord {
  return { hostId: String(row.host_id), accountId: String(row.account_id), status: row.status as HostAttestationRecord['status'],
    mode: row.mode as HostAttestationRecord['mode'], akTrusted: Number(row.ak_trusted) === 1, lastEvidence: optionalDate(row.last_evidence),
    lastVerified: optionalDate(row.last_verified), silentAt: optionalDate(row.silent_at), failureCount: Number(row.failure_count) };
}

function vaultFromRow(row: Row): HostVaultRecord {
  return { hostId: String(row.host_id), accountId: String(row.account_id),
    vaultKey: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_vault_key as Buffer }, format: Number(row.format),
    ciphertext: row.ciphertext as Buffer, revision: Number(row.revision) };
}

/**
 * Attested certificates with their revocation: explicit (a quarantine), or implied by the host's
 * removal from the fleet (dated by the removal's feed entry).
 */
const ATTESTED_CERTIFICATES_SQL = `SELECT c.serial, c.account_id, c.host_id, c.not_after, c.issued_at,
    CASE WHEN c.revoked_at IS NOT NULL THEN c.revoked_at
      WHEN NOT EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = c.host_id) THEN coalesce((SELECT max(f.at) FROM fleet_changes f
        WHERE f.host_id = c.host_id AND f.kind = 'host-removed'), c.issued_at) END AS revoked_at,
    CASE WHEN c.revoked_at IS NOT NULL THEN c.revocation_reason
      WHEN NOT EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = c.host_id) THEN '${HOST_REMOVED_REASON}' END AS revocation_reason
  FROM attested_certificates c`;

function certificateFromRow(row: Row): AttestedCertificateRecord {
  return { serial: String(row.serial), accountId: String(row.account_id), hostId: String(row.host_id), notAfter: new Date(Number(row.not_after)),
    issuedAt: new Date(Number(row.issued_at)), revokedAt: optionalDate(row.revoked_at),
    revocationReason: (row.revocation_reason as string | null) ?? undefined };
}

export class SqliteAttestStore implements AttestStore {
  readonly #store: SqliteStore;
  readonly #statements: StatementCache;

  constructor(store: SqliteStore) {
    this.#store = store;
    this.#statements = new StatementCache(store.database);
  }

  #statement(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  #recordChange(accountId: string, kind: FleetChangeKind, at: Date, target: { hostId?: string; className?: string }): void {
    this.#statement('INSERT INTO fleet_changes (account_id, kind, class_name, host_id, at) VALUES (?, ?, ?, ?, ?)')
      .run(accountId, kind, target.className ?? null, target.hostId ?? null, at.getTime());
  }

  async setClassAttestation(accountId: string, className: string, settings: ClassAttestationSettings | undefined, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const changed = this.#statement('UPDATE host_classes SET attestation = ? WHERE account_id = ? AND name = ?')
        .run(settings === undefined ? null : JSON.stringify(settings), accountId, className).changes === 1;
      if (changed) this.#recordChange(accountId, 'attestation-changed', now, { className });
      return changed;
    });
  }

  async classAttestation(accountId: string): Promise<Map<string, ClassAttestationSettings>> {
    const rows = this.#statement('SELECT name, attestation FROM host_classes WHERE account_id = ? AND attestation IS NOT NULL')
      .all(accountId) as Row[];
    return new Map(rows.map((row) => [String(row.name), classAttestationFromJson(String(row.attestation))]));
  }

  async getAttestation(hostId: string): Promise<HostAttestationRecord | undefined> {
    const row = this.#statement('SELECT * FROM host_attestations WHERE host_id = ?').get(hostId) as Row | undefined;
    return row ? attestationFromRow(row) : undefined;
  }

  async listAttestations(accountId: string): Promise<HostAttestationRecord[]> {
    return (this.#statement('SELECT * FROM host_attestations WHERE account_id = ? ORDER BY host_id').all(accountId) as Row[]).map(attestationFromRow);
  }

  async dueSilent(now: Date, limit: number): Promise<HostAttestationRecord[]> {
    return (this.#statement(`SELECT * FROM host_attestations WHERE silent_at IS NOT NULL AND silent_at <= ? AND status != 'silent'
      ORDER BY silent_at LIMIT ?`).all(now.getTime(), limit) as Row[]).map(attestationFromRow);
  }

  async getVault(hostId: string): Promise<HostVaultRecord | undefined> {
    const row = this.#statement('SELECT * FROM host_vaults WHERE host_id = ?').get(hostId) as Row | undefined;
    return row ? vaultFromRow(row) : undefined;
  }

  #writeAttestation(record: HostAttestationRecord): void {
    this.#statement(`INSERT INTO host_attestations (host_id, account_id, status, mode, ak_trusted, last_evidence, last_verified, silent_at,
      failure_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET status = excluded.status, mode = excluded.mode,
      ak_trusted = excluded.ak_trusted, last_evidence = excluded.last_evidence, last_verified = excluded.last_verified,
      silent_at = excluded.silent_at, failure_count = excluded.failure_count`)
      .run(record.hostId, record.accountId, record.status, record.mode, record.akTrusted ? 1 : 0, record.lastEvidence?.getTime() ?? null,
        record.lastVerified?.getTime() ?? null, record.silentAt?.getTime() ?? null, record.failureCount);
  }

  async createVault(record: HostVaultRecord, attestation: HostAttestationRecord): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      if (!this.#statement('SELECT 1 FROM hosts WHERE host_id = ?').get(record.hostId)) return false;
      const inserted = this.#statement(`INSERT INTO host_vaults (host_id, account_id, domain_key_id, wrapped_vault_key, format, ciphertext, revision)
        VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`).run(record.hostId, record.accountId, record.vaultKey.domainKeyId,
        record.vaultKey.wrapped, record.format, record.ciphertext, record.revision).changes === 1;
      if (inserted) this.#writeAttestation(attestation);
      return inserted;
    });
  }

  async recordVerdict(write: VerdictWrite, now: Date): Promise<boolean> {
    const { attestation } = write;
    return this.#store.writeTransaction(() => {
      if (!this.#statement('SELECT 1 FROM hosts WHERE host_id = ?').get(attestation.hostId)) return false;
      if (write.expected) {
        const row = this.#statement('SELECT status, last_evidence FROM host_attestations WHERE host_id = ?').get(attestation.hostId) as Row | undefined;
        if (!row || row.status !== write.expected.status || (row.last_evidence ?? null) !== (write.expected.lastEvidence?.getTime() ?? null)) return false;
      }
      if (write.vault) {
        const { record, expectedRevision } = write.vault;
        const swapped = this.#statement(`UPDATE host_vaults SET ciphertext = ?, format = ?, revision = ? WHERE host_id = ? AND revision = ?`)
          .run(record.ciphertext, record.format, record.revision, record.hostId, expectedRevision).changes === 1;
        if (!swapped) return false;
      }
      this.#writeAttestation(attestation);
      if (write.alert) {
        this.#statement(`INSERT INTO attestation_alerts (alert_id, account_id, url, domain_key_id, wrapped_body, next_attempt_at)
          VALUES (?, ?, ?, ?, ?, ?)`).run(write.alert.alertId, attestation.accountId, write.alert.url, write.alert.body.domainKeyId,
          write.alert.body.wrapped, now.getTime());
      }
      const revocation = write.quarantine ?? write.revokeCertificates;
      if (revocation) {
        this.#statement(`UPDATE attested_certificates SET revoked_at = ?, revocation_reason = ? WHERE host_id = ? AND revoked_at IS NULL`)
          .run(now.getTime(), revocation.reason, attestation.hostId);
      }
      if (write.quarantine) {
        const quarantined = this.#statement(`UPDATE hosts SET status = 'quarantined' WHERE host_id = ? AND status = 'active'`)
          .run(attestation.hostId).changes === 1;
        if (quarantined) this.#recordChange(attestation.accountId, 'host-quarantined', now, { hostId: attestation.hostId });
      } else if (write.entitlementChanged) {
        this.#recordChange(attestation.accountId, 'attestation-changed', now, { hostId: attestation.hostId });
      }
      return true;
    });
  }

  async touchAttestations(seen: Array<{ hostId: string; at: Date; silentAt: Date }>): Promise<void> {
    if (seen.length === 0) return;
    this.#store.writeTransaction(() => {
      const touch = this.#statement(`UPDATE host_attestations SET last_evidence = max(coalesce(last_evidence, 0), ?),
        last_verified = max(coalesce(last_verified, 0), ?), silent_at = max(coalesce(silent_at, 0), ?) WHERE host_id = ? AND status != 'silent'`);
      for (const entry of seen) touch.run(entry.at.getTime(), entry.at.getTime(), entry.silentAt.getTime(), entry.hostId);
    });
  }

  async clearQuarantine(accountId: string, hostId: string, now: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const cleared = this.#statement(`UPDATE hosts SET status = 'active' WHERE account_id = ? AND host_id = ? AND status = 'quarantined'`)
        .run(accountId, hostId).changes === 1;
      if (cleared) this.#recordChange(accountId, 'host-cleared', now, { hostId });
      return cleared;
    });
  }

  async latestReferencePolicy(accountId: string, className: string): Promise<ReferencePolicyRecord | undefined> {
    const row = this.#statement(`SELECT * FROM reference_policies WHERE account_id = ? AND class_name = ? ORDER BY version DESC LIMIT 1`)
      .get(accountId, className) as Row | undefined;
    return row ? { accountId, className, version: Number(row.version), signature: String(row.signature),
      document: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_document as Buffer },
      createdAt: new Date(Number(row.created_at)), createdBy: String(row.created_by) } : undefined;
  }

  async addReferencePolicy(record: Omit<ReferencePolicyRecord, 'version'>): Promise<number> {
    return this.#store.writeTransaction(() => {
      const row = this.#statement('SELECT coalesce(max(version), 0) + 1 AS next FROM reference_policies WHERE account_id = ? AND class_name = ?')
        .get(record.accountId, record.className) as Row;
      const version = Number(row.next);
      this.#statement(`INSERT INTO reference_policies (account_id, class_name, version, domain_key_id, wrapped_document, signature,
        created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(record.accountId, record.className, version, record.document.domainKeyId,
        record.document.wrapped, record.signature, record.createdAt.getTime(), record.createdBy);
      this.#recordChange(record.accountId, 'attestation-changed', record.createdAt, { className: record.className });
      return version;
    });
  }

  async listVerifierKeys(): Promise<VerifierKeyRecord[]> {
    return (this.#statement('SELECT * FROM verifier_keys ORDER BY created_at, key_id').all() as Row[]).map((row) => ({
      keyId: String(row.key_id), publicKeyDer: row.public_key as Buffer, createdAt: new Date(Number(row.created_at)),
      privateKey: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_private_key as Buffer } }));
  }

  async addVerifierKey(record: VerifierKeyRecord): Promise<VerifierKeyRecord[]> {
    this.#store.writeTransaction(() => {
      // One key in force: a second server racing to make the first one loses and uses the winner's.
      if (this.#statement('SELECT 1 FROM verifier_keys LIMIT 1').get()) return;
      this.#statement(`INSERT INTO verifier_keys (key_id, public_key, domain_key_id, wrapped_private_key, created_at) VALUES (?, ?, ?, ?, ?)`)
        .run(record.keyId, record.publicKeyDer, record.privateKey.domainKeyId, record.privateKey.wrapped, record.createdAt.getTime());
    });
    return this.listVerifierKeys();
  }

  async recordAttestedCertificate(record: AttestedCertificateRecord): Promise<boolean> {
    return this.#store.writeTransaction(() => this.#statement(`INSERT INTO attested_certificates (serial, account_id, host_id, not_after, issued_at)
      SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM hosts WHERE host_id = ? AND account_id = ? AND status = 'active')
        AND EXISTS (SELECT 1 FROM host_attestations WHERE host_id = ? AND status = 'affirming')`)
      .run(record.serial, record.accountId, record.hostId, record.notAfter.getTime(), record.issuedAt.getTime(), record.hostId, record.accountId,
        record.hostId).changes === 1);
  }

  async getAttestedCertificate(serial: string): Promise<AttestedCertificateRecord | undefined> {
    const row = this.#statement(`${ATTESTED_CERTIFICATES_SQL} WHERE c.serial = ?`).get(serial) as Row | undefined;
    return row ? certificateFromRow(row) : undefined;
  }

  async revokedCertificates(accountId: string): Promise<AttestedCertificateRecord[]> {
    return (this.#statement(`${ATTESTED_CERTIFICATES_SQL} WHERE c.account_id = ?
      AND (c.revoked_at IS NOT NULL OR NOT EXISTS (SELECT 1 FROM hosts h WHERE h.host_id = c.host_id)) ORDER BY revoked_at, c.serial`)
      .all(accountId) as Row[]).map(certificateFromRow);
  }

  async dueAlerts(now: Date, limit: number): Promise<AlertRecord[]> {
    return (this.#statement(`SELECT * FROM attestation_alerts WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?`)
      .all(now.getTime(), limit) as Row[]).map((row) => ({ id: Number(row.id), alertId: String(row.alert_id), accountId: String(row.account_id),
      url: String(row.url), body: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_body as Buffer }, attempts: Number(row.attempts),
      nextAttemptAt: new Date(Number(row.next_attempt_at)) }));
  }

  async settleAlert(id: number, delivered: boolean, nextAttemptAt: Date | undefined, error: string | undefined, now: Date): Promise<void> {
    this.#store.writeTransaction(() => {
      if (delivered) {
        this.#statement('UPDATE attestation_alerts SET attempts = attempts + 1, delivered_at = ?, last_error = NULL WHERE id = ?').run(now.getTime(), id);
      } else if (nextAttemptAt) {
        this.#statement('UPDATE attestation_alerts SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?')
          .run(nextAttemptAt.getTime(), error ?? null, id);
      } else {
        // Given up: kept (with the last error) for the operator, never retried.
        this.#statement(`UPDATE attestation_alerts SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, delivered_at = -1 WHERE id = ?`)
          .run(now.getTime(), error ?? null, id);
      }
    });
  }

  async putAppKey(record: AppKeyRecord): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const existing = this.#statement('SELECT stored_by FROM app_keys WHERE account_id = ? AND class_name = ? AND name = ?')
        .get(record.accountId, record.className, record.name) as Row | undefined;
      if (existing && String(existing.stored_by) !== record.storedBy) return false;
      this.#statement(`INSERT INTO app_keys (account_id, class_name, name, domain_key_id, wrapped_key, stored_by, stored_at)
        VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, class_name, name) DO UPDATE SET domain_key_id = excluded.domain_key_id,
        wrapped_key = excluded.wrapped_key, stored_at = excluded.stored_at`)
        .run(record.accountId, record.className, record.name, record.key.domainKeyId, record.key.wrapped, record.storedBy,
          record.storedAt.getTime());
      return true;
    });
  }

  async getAppKey(accountId: string, className: string, name: string): Promise<AppKeyRecord | undefined> {
    const row = this.#statement('SELECT * FROM app_keys WHERE account_id = ? AND class_name = ? AND name = ?')
      .get(accountId, className, name) as Row | undefined;
    return row ? { accountId, className, name, key: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_key as Buffer },
      storedBy: String(row.stored_by), storedAt: new Date(Number(row.stored_at)) } : undefined;
  }
}
