// The host request-key table on the key service's SQLite connection: hosts' request keys and certificates.
// Must never write a key for a host that is gone (checked in the same transaction as the write).
import type { HostRequestKeyRecord, RequestKeyStore } from './request-key-types.ts';
import type { SqliteStore } from './sqlite.ts';
import { StatementCache } from './statements.ts';

type Row = Record<string, unknown>;

function requestKeyFromRow(row: Row): HostRequestKeyRecord {
  return { hostId: String(row.host_id), accountId: String(row.account_id), publicKey: row.public_key as Buffer, keyId: String(row.key_id),
    certificateDer: row.certificate as Buffer, serial: String(row.serial), notAfter: new Date(Number(row.not_after)),
    registeredAt: new Date(Number(row.registered_at)), certifiedAt: new Date(Number(row.certified_at)) };
}

export class SqliteRequestKeyStore implements RequestKeyStore {
  readonly #store: SqliteStore;
  readonly #statements: StatementCache;

  constructor(store: SqliteStore) {
    this.#store = store;
    this.#statements = new StatementCache(store.database);
  }

  async getRequestKey(hostId: string): Promise<HostRequestKeyRecord | undefined> {
    const row = this.#statements.get('SELECT * FROM host_request_keys WHERE host_id = ?').get(hostId) as Row | undefined;
    return row ? requestKeyFromRow(row) : undefined;
  }

  async putRequestKey(record: HostRequestKeyRecord): Promise<boolean> {
    return this.#store.writeTransaction(() => {
      if (!this.#statements.get('SELECT 1 FROM hosts WHERE host_id = ? AND account_id = ?').get(record.hostId, record.accountId)) return false;
      this.#statements.get(`INSERT INTO host_request_keys (host_id, account_id, public_key, key_id, certificate, serial, not_after, registered_at,
        certified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host_id) DO UPDATE SET public_key = excluded.public_key,
        key_id = excluded.key_id, certificate = excluded.certificate, serial = excluded.serial, not_after = excluded.not_after,
        registered_at = excluded.registered_at, certified_at = excluded.certified_at`)
        .run(record.hostId, record.accountId, record.publicKey, record.keyId, record.certificateDer, record.serial, record.notAfter.getTime(),
          record.registeredAt.getTime(), record.certifiedAt.getTime());
      return true;
    });
  }
}
