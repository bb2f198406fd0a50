// Versioned schema migrations for the SQLite store, applied in order, each in a transaction.
// Must never edit a released migration: add a new one instead.
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const sqliteMigrations: Migration[] = [
  {
    version: 1,
    name: 'key service foundation',
    sql: `
      CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE module_values (name TEXT PRIMARY KEY, value BLOB NOT NULL);
      CREATE TABLE domain_keys (
        id TEXT PRIMARY KEY, wrapped BLOB NOT NULL, created_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'retired')));
      CREATE TABLE principals (
        arn TEXT PRIMARY KEY, account_id TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
        created_at INTEGER NOT NULL);
      CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY, principal_arn TEXT NOT NULL REFERENCES principals(arn) ON DELETE CASCADE,
        domain_key_id TEXT NOT NULL, wrapped_secret BLOB NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX access_keys_by_principal ON access_keys(principal_arn);
      CREATE TABLE keys (
        key_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, arn TEXT NOT NULL, description TEXT NOT NULL,
        key_spec TEXT NOT NULL, key_usage TEXT NOT NULL, key_state TEXT NOT NULL, origin TEXT NOT NULL,
        created_at INTEGER NOT NULL, deletion_date INTEGER, pending_window_days INTEGER,
        current_version INTEGER NOT NULL, min_decrypt_version INTEGER NOT NULL,
        rotation_enabled INTEGER NOT NULL, rotation_period_days INTEGER, next_rotation_at INTEGER,
        policy TEXT NOT NULL, revision INTEGER NOT NULL);
      CREATE INDEX keys_by_account ON keys(account_id, key_id);
      CREATE INDEX keys_by_deletion ON keys(deletion_date) WHERE deletion_date IS NOT NULL;
      CREATE INDEX keys_by_rotation ON keys(next_rotation_at) WHERE next_rotation_at IS NOT NULL;
      CREATE TABLE key_versions (
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE, version INTEGER NOT NULL,
        domain_key_id TEXT NOT NULL, wrapped_material BLOB NOT NULL, public_key BLOB,
        created_at INTEGER NOT NULL, rotation_type TEXT, PRIMARY KEY (key_id, version));
      CREATE TABLE aliases (
        account_id TEXT NOT NULL, alias_name TEXT NOT NULL,
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (account_id, alias_name));
      CREATE INDEX aliases_by_key ON aliases(key_id);
      CREATE TABLE key_tags (
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE, tag_key TEXT NOT NULL,
        tag_value TEXT NOT NULL, PRIMARY KEY (key_id, tag_key));
    `,
  },
];
