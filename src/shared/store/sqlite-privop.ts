// The privileged-operation relay and campaign tables on the key service's SQLite connection: relays with their
// wrapped request files, sealed result chunks, campaigns and the per-account campaign signer.
// Must never mark a result completed before every one of its bytes is stored, nor accept chunks out of order.
import type Database from 'better-sqlite3';
import type {
  AppendOutcome, CampaignRecord, CampaignSignerRecord, NewRelay, PrivopStore, RelayRecord, RelayStatus,
} from './privop-types.ts';
import type { SqliteStore } from './sqlite.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

const optionalDate = (value: unknown): Date | undefined => (value === null || value === undefined ? undefined : new Date(Number(value)));
const OPEN = "status IN ('pending', 'delivered')";

function relayFromRow(row: Row): RelayRecord {
  return { relayId: String(row.relay_id), accountId: String(row.account_id), hostId: String(row.host_id),
    campaignId: (row.campaign_id as string | null) ?? undefined, submittedBy: String(row.submitted_by), requestDigest: String(row.request_digest),
    operation: (row.operation as string | null) ?? undefined,
    request: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_request as Buffer }, status: row.status as RelayStatus,
    createdAt: new Date(Number(row.created_at)), expiresAt: new Date(Number(row.expires_at)), deliveredAt: optionalDate(row.delivered_at),
    finishedAt: optionalDate(row.finished_at),
    refusal: row.refusal_code === null ? undefined : { code: String(row.refusal_code), message: String(row.refusal_message ?? '') },
    resultBytes: Number(row.result_bytes) };
}

function campaignFromRow(row: Row): CampaignRecord {
  return { campaignId: String(row.campaign_id), accountId: String(row.account_id), className: String(row.class_name), operation: String(row.operation),
    startedBy: String(row.started_by), createdAt: new Date(Number(row.created_at)), expiresAt: new Date(Number(row.expires_at)),
    hostCount: Number(row.host_count) };
}

function signerFromRow(row: Row): CampaignSignerRecord {
  return { accountId: String(row.account_id), certificatePem: String(row.certificate), notAfter: new Date(Number(row.not_after)),
    privateKey: { domainKeyId: String(row.domain_key_id), wrapped: row.wrapped_private_key as Buffer }, createdAt: new Date(Number(row.created_at)) };
}

export class SqlitePrivopStore implements PrivopStore {
  readonly #store: SqliteStore;
  readonly #statements: StatementCache;

  constructor(store: SqliteStore) {
    this.#store = store;
    this.#statements = new StatementCache(store.database);
  }

  #statement(sql: string): Database.Statement {
    return this.#statements.get(sql);
  }

  async createRelays(relays: NewRelay[], campaign?: CampaignRecord): Promise<void> {
    this.#store.writeTransaction(() => {
      if (campaign) {
        this.#statement(`INSERT INTO privop_campaigns (campaign_id, account_id, class_name, operation, started_by, created_at, expires_at, host_count)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(campaign.campaignId, campaign.accountId, campaign.className, campaign.operation, campaign.startedBy,
          campaign.createdAt.getTime(), campaign.expiresAt.getTime(), campaign.hostCount);
      }
      const insert = this.#statement(`INSERT INTO privop_relays (relay_id, account_id, host_id, campaign_id, submitted_by, request_digest, operation,
        domain_key_id, wrapped_request, status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`);
      for (const relay of relays) {
        insert.run(relay.relayId, relay.accountId, relay.hostId, relay.campaignId ?? null, relay.submittedBy, relay.requestDigest,
          relay.operation ?? null, relay.request.domainKeyId, relay.request.wrapped, relay.createdAt.getTime(), relay.expiresAt.getTime());
      }
    });
  }

  async getRelay(relayId: string): Promise<RelayRecord | undefined> {
    const row = this.#statement('SELECT * FROM privop_relays WHERE relay_id = ?').get(relayId) as Row | undefined;
    return row ? relayFromRow(row) : undefined;
  }

  async openRelaysOf(hostId: string): Promise<RelayRecord[]> {
    return (this.#statement(`SELECT * FROM privop_relays WHERE host_id = ? AND ${OPEN} ORDER BY seq`).all(hostId) as Row[]).map(relayFromRow);
  }

  async pendingAfter(seq: number, limit: number): Promise<{ relays: RelayRecord[]; lastSeq: number }> {
    const rows = this.#statement('SELECT * FROM privop_relays WHERE seq > ? ORDER BY seq LIMIT ?').all(seq, limit) as Row[];
    return { relays: rows.filter((row) => row.status === 'pending').map(relayFromRow), lastSeq: rows.length ? Number(rows[rows.length - 1].seq) : seq };
  }

  async latestRelaySeq(): Promise<number> {
    const row = this.#statement('SELECT max(seq) AS seq FROM privop_relays').get() as Row;
    return Number(row.seq ?? 0);
  }

  async markDelivered(relayId: string, hostId: string, at: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      this.#statement("UPDATE privop_relays SET status = 'delivered', delivered_at = ? WHERE relay_id = ? AND host_id = ? AND status = 'pending'")
        .run(at.getTime(), relayId, hostId);
      const row = this.#statement('SELECT status FROM privop_relays WHERE relay_id = ? AND host_id = ?').get(relayId, hostId) as Row | undefined;
      return row?.status === 'delivered';
    });
  }

  async markRefused(relayId: string, hostId: string, refusal: { code: string; message: string }, at: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      const changed = this.#statement(`UPDATE privop_relays SET status = 'refused', finished_at = ?, refusal_code = ?, refusal_message = ?, result_bytes = 0
        WHERE relay_id = ? AND host_id = ? AND ${OPEN}`).run(at.getTime(), refusal.code, refusal.message, relayId, hostId).changes === 1;
      if (changed) this.#statement('DELETE FROM privop_result_chunks WHERE relay_id = ?').run(relayId);
      return changed;
    });
  }

  async appendResultChunk(relayId: string, hostId: string, offset: number, data: Buffer, maxBytes: number): Promise<AppendOutcome> {
    return this.#store.writeTransaction(() => {
      const row = this.#statement('SELECT status, result_bytes FROM privop_relays WHERE relay_id = ? AND host_id = ?').get(relayId, hostId) as Row | undefined;
      if (!row || row.status !== 'delivered') return 'not-delivering';
      const stored = Number(row.result_bytes);
      if (offset !== stored) return 'out-of-order';
      if (stored + data.length > maxBytes) return 'too-large';
      const next = this.#statement('SELECT coalesce(max(chunk), -1) + 1 AS next FROM privop_result_chunks WHERE relay_id = ?').get(relayId) as Row;
      this.#statement('INSERT INTO privop_result_chunks (relay_id, chunk, start_offset, data) VALUES (?, ?, ?, ?)')
        .run(relayId, Number(next.next), offset, data);
      this.#statement('UPDATE privop_relays SET result_bytes = ? WHERE relay_id = ?').run(stored + data.length, relayId);
      return 'stored';
    });
  }

  async completeResult(relayId: string, hostId: string, totalBytes: number, at: Date): Promise<boolean> {
    return this.#store.writeTransaction(() => this.#statement(`UPDATE privop_relays SET status = 'completed', finished_at = ?
      WHERE relay_id = ? AND host_id = ? AND status = 'delivered' AND result_bytes = ? AND result_bytes > 0`)
      .run(at.getTime(), relayId, hostId, totalBytes).changes === 1);
  }

  async readResult(relayId: string, offset: number, length: number): Promise<Buffer> {
    const rows = this.#statement(`SELECT start_offset, data FROM privop_result_chunks WHERE relay_id = ?
      AND start_offset + length(data) > ? AND start_offset < ? ORDER BY chunk`).all(relayId, offset, offset + length) as Row[];
    const parts = rows.map((row) => {
      const data = row.data as Buffer;
      const start = Number(row.start_offset);
      return data.subarray(Math.max(0, offset - start), Math.min(data.length, offset + length - start));
    });
    return Buffer.concat(parts);
  }

  async deleteRelay(relayId: string): Promise<boolean> {
    return this.#store.writeTransaction(() => this.#statement('DELETE FROM privop_relays WHERE relay_id = ?').run(relayId).changes === 1);
  }

  async expireRelays(now: Date, finishedBefore: Date, limit: number): Promise<{ expired: RelayRecord[]; deleted: number }> {
    return this.#store.writeTransaction(() => {
      const expired = (this.#statement(`SELECT * FROM privop_relays WHERE ${OPEN} AND expires_at <= ? ORDER BY expires_at LIMIT ?`)
        .all(now.getTime(), limit) as Row[]).map(relayFromRow);
      const mark = this.#statement(`UPDATE privop_relays SET status = 'expired', finished_at = ?, result_bytes = 0 WHERE relay_id = ? AND ${OPEN}`);
      const dropChunks = this.#statement('DELETE FROM privop_result_chunks WHERE relay_id = ?');
      for (const relay of expired) {
        mark.run(now.getTime(), relay.relayId);
        dropChunks.run(relay.relayId);
      }
      const deleted = this.#statement(`DELETE FROM privop_relays WHERE relay_id IN (SELECT relay_id FROM privop_relays
        WHERE status NOT IN ('pending', 'delivered') AND finished_at < ? LIMIT ?)`).run(finishedBefore.getTime(), limit).changes;
      this.#statement(`DELETE FROM privop_campaigns WHERE expires_at < ?
        AND NOT EXISTS (SELECT 1 FROM privop_relays r WHERE r.campaign_id = privop_campaigns.campaign_id)`).run(finishedBefore.getTime());
      return { expired: expired.map((relay) => ({ ...relay, status: 'expired' as const, finishedAt: now, resultBytes: 0 })), deleted };
    });
  }

  async getCampaign(campaignId: string): Promise<CampaignRecord | undefined> {
    const row = this.#statement('SELECT * FROM privop_campaigns WHERE campaign_id = ?').get(campaignId) as Row | undefined;
    return row ? campaignFromRow(row) : undefined;
  }

  async relaysOfCampaign(campaignId: string): Promise<RelayRecord[]> {
    return (this.#statement('SELECT * FROM privop_relays WHERE campaign_id = ? ORDER BY host_id').all(campaignId) as Row[]).map(relayFromRow);
  }

  async getCampaignSigner(accountId: string): Promise<CampaignSignerRecord | undefined> {
    const row = this.#statement('SELECT * FROM privop_campaign_signers WHERE account_id = ?').get(accountId) as Row | undefined;
    return row ? signerFromRow(row) : undefined;
  }

  async putCampaignSigner(record: CampaignSignerRecord, replace: boolean): Promise<CampaignSignerRecord> {
    const onConflict = replace ? `DO UPDATE SET certificate = excluded.certificate, not_after = excluded.not_after, domain_key_id = excluded.domain_key_id,
      wrapped_private_key = excluded.wrapped_private_key, created_at = excluded.created_at WHERE privop_campaign_signers.not_after < excluded.not_after`
      : 'DO NOTHING';
    this.#store.writeTransaction(() => this.#statement(`INSERT INTO privop_campaign_signers (account_id, certificate, not_after, domain_key_id,
      wrapped_private_key, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) ${onConflict}`)
      .run(record.accountId, record.certificatePem, record.notAfter.getTime(), record.privateKey.domainKeyId, record.privateKey.wrapped,
        record.createdAt.getTime()));
    return (await this.getCampaignSigner(record.accountId)) as CampaignSignerRecord;
  }
}
