// Reads a home's domain keys straight from its SQLite file (read-only), as a test checks what the
// server stored. Never writes; open it only while no server is mid-write, or accept a snapshot.
import { join } from 'node:path';
import Database from 'better-sqlite3';

export interface StoredDomainKey {
  id: string;
  module: string;
  /** Empty for a retired key and for one held in a PKCS#11 token. */
  wrapped: Buffer;
  state: string;
}

/** Every domain key of `home`, oldest first. */
export function readDomainKeys(home: string): StoredDomainKey[] {
  const db = new Database(join(home, 'trustplane.db'), { readonly: true });
  try {
    return db.prepare('SELECT id, module, wrapped, state FROM domain_keys ORDER BY created_at, rowid').all() as StoredDomainKey[];
  } finally {
    db.close();
  }
}
