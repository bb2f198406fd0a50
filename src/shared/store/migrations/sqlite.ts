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
  {
    version: 2,
    name: 'audit log',
    // Each record is stored as the canonical JSON that is hashed, so what is verified is exactly
    // what is stored; the query columns are derived from it and cannot disagree with it.
    // Only time is indexed: it grows with seq, so its index appends. Indexes on principal or
    // resource take scattered pages in every commit and cost ~4x the rest of an append together;
    // queries by them scan, within a time range when one is given.
    // audit_head moves in the same transaction as every append and checkpoint: it is how
    // verification notices records removed after the last signed checkpoint.
    sql: `
      CREATE TABLE audit_records (
        seq INTEGER PRIMARY KEY, record TEXT NOT NULL, hash BLOB NOT NULL,
        time INTEGER GENERATED ALWAYS AS (json_extract(record, '$.time')) VIRTUAL,
        principal_arn TEXT GENERATED ALWAYS AS (json_extract(record, '$.principalArn')) VIRTUAL,
        resource TEXT GENERATED ALWAYS AS (json_extract(record, '$.resource')) VIRTUAL,
        operation TEXT GENERATED ALWAYS AS (json_extract(record, '$.operation')) VIRTUAL,
        outcome TEXT GENERATED ALWAYS AS (json_extract(record, '$.outcome')) VIRTUAL);
      CREATE INDEX audit_records_by_time ON audit_records(time);
      CREATE TABLE audit_checkpoints (
        number INTEGER PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, chain_head BLOB NOT NULL, time INTEGER NOT NULL,
        key_id TEXT NOT NULL, format_version INTEGER NOT NULL, signature BLOB NOT NULL);
      CREATE TABLE audit_signing_keys (
        key_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, domain_key_id TEXT NOT NULL,
        wrapped_private_key BLOB NOT NULL, created_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'retired')));
      CREATE TABLE audit_head (
        id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL,
        checkpoint_number INTEGER NOT NULL, checkpoint_seq INTEGER NOT NULL);
      INSERT INTO audit_head (id, seq, hash, checkpoint_number, checkpoint_seq) VALUES (1, 0, zeroblob(32), 0, 0);
    `,
  },
  {
    version: 3,
    name: 'identity: accounts, principals, policies, sessions, grants',
    sql: `
      CREATE TABLE accounts (
        account_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL,
        management INTEGER NOT NULL DEFAULT 0);
      INSERT INTO accounts (account_id, name, created_at, management)
        SELECT value, 'default', CAST(strftime('%s','now') AS INTEGER) * 1000, 1 FROM meta WHERE name = 'account-id';
      ALTER TABLE principals ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
      ALTER TABLE principals ADD COLUMN trust_policy TEXT;
      ALTER TABLE principals ADD COLUMN max_session_seconds INTEGER;
      CREATE INDEX principals_by_account ON principals(account_id, kind, name);
      CREATE TABLE principal_policies (
        principal_arn TEXT NOT NULL REFERENCES principals(arn) ON DELETE CASCADE, policy_name TEXT NOT NULL,
        document TEXT NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (principal_arn, policy_name));
      ALTER TABLE access_keys ADD COLUMN session_token_hash BLOB;
      ALTER TABLE access_keys ADD COLUMN session_name TEXT;
      ALTER TABLE access_keys ADD COLUMN expires_at INTEGER;
      CREATE INDEX access_keys_by_expiry ON access_keys(expires_at) WHERE expires_at IS NOT NULL;
      CREATE TABLE grants (
        grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
        account_id TEXT NOT NULL, name TEXT, grantee_principal TEXT NOT NULL, retiring_principal TEXT,
        operations TEXT NOT NULL, constraints TEXT, issuing_account TEXT NOT NULL, created_at INTEGER NOT NULL,
        token_hash BLOB NOT NULL UNIQUE);
      CREATE INDEX grants_by_key ON grants(key_id, grantee_principal);
      CREATE INDEX grants_by_grantee ON grants(grantee_principal);
      CREATE INDEX grants_by_retiring ON grants(retiring_principal);
    `,
  },
  {
    version: 4,
    name: 'crypto modules: domain keys per module, retiring state, lookups by domain key',
    sql: `
      CREATE TABLE domain_keys_v4 (
        id TEXT PRIMARY KEY, module TEXT NOT NULL CHECK (module IN ('software', 'pkcs11')),
        wrapped BLOB NOT NULL, created_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')));
      INSERT INTO domain_keys_v4 (id, module, wrapped, created_at, state)
        SELECT id, 'software', wrapped, created_at, CASE state WHEN 'active' THEN 'active' ELSE 'retiring' END FROM domain_keys;
      DROP TABLE domain_keys;
      ALTER TABLE domain_keys_v4 RENAME TO domain_keys;
      CREATE UNIQUE INDEX domain_keys_one_active ON domain_keys(state) WHERE state = 'active';
      CREATE INDEX key_versions_by_domain_key ON key_versions(domain_key_id);
      CREATE INDEX access_keys_by_domain_key ON access_keys(domain_key_id);
      CREATE INDEX audit_signing_keys_by_domain_key ON audit_signing_keys(domain_key_id);
      -- Material wrapped under a retired (destroyed) domain key could never be read again: refuse
      -- the write instead (a server that missed another's rotation fails one request, loses nothing).
      CREATE TRIGGER key_versions_live_domain_key BEFORE INSERT ON key_versions
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      CREATE TRIGGER access_keys_live_domain_key BEFORE INSERT ON access_keys
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      CREATE TRIGGER audit_signing_keys_live_domain_key BEFORE INSERT ON audit_signing_keys
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
    `,
  },
  {
    version: 5,
    name: 'fleet: host classes, class key grants, join tokens, change feed',
    sql: `
      CREATE TABLE host_classes (
        account_id TEXT NOT NULL, name TEXT NOT NULL, parent TEXT, created_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, name),
        FOREIGN KEY (account_id, parent) REFERENCES host_classes(account_id, name));
      CREATE TABLE class_keys (
        account_id TEXT NOT NULL, class_name TEXT NOT NULL, key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
        granted_at INTEGER NOT NULL, PRIMARY KEY (account_id, class_name, key_id),
        FOREIGN KEY (account_id, class_name) REFERENCES host_classes(account_id, name) ON DELETE CASCADE);
      CREATE INDEX class_keys_by_key ON class_keys(key_id);
      CREATE TABLE join_tokens (
        token_hash BLOB PRIMARY KEY, account_id TEXT NOT NULL, classes TEXT NOT NULL, uses_left INTEGER NOT NULL,
        expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL);
      -- Every change to what a host may hold, in order: agents (on any replica) resume from a revision.
      CREATE TABLE fleet_changes (
        revision INTEGER PRIMARY KEY AUTOINCREMENT, account_id TEXT NOT NULL, kind TEXT NOT NULL,
        class_name TEXT, key_id TEXT, at INTEGER NOT NULL);
    `,
  },
  {
    version: 6,
    name: 'fleet: internal CA, hosts and their classes',
    sql: `
      CREATE TABLE fleet_ca (
        account_id TEXT PRIMARY KEY, certificate BLOB NOT NULL, domain_key_id TEXT NOT NULL,
        wrapped_private_key BLOB NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX fleet_ca_by_domain_key ON fleet_ca(domain_key_id);
      CREATE TRIGGER fleet_ca_live_domain_key BEFORE INSERT ON fleet_ca
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      CREATE TABLE hosts (
        host_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, name TEXT NOT NULL, public_key BLOB NOT NULL,
        certificate_serial TEXT NOT NULL, certificate_not_after INTEGER NOT NULL, status TEXT NOT NULL,
        agent_version TEXT, created_at INTEGER NOT NULL, last_seen INTEGER);
      CREATE INDEX hosts_by_account ON hosts(account_id, host_id);
      CREATE TABLE host_memberships (
        host_id TEXT NOT NULL REFERENCES hosts(host_id) ON DELETE CASCADE, account_id TEXT NOT NULL, class_name TEXT NOT NULL,
        PRIMARY KEY (host_id, class_name), FOREIGN KEY (account_id, class_name) REFERENCES host_classes(account_id, name));
      CREATE INDEX host_memberships_by_class ON host_memberships(account_id, class_name);
      ALTER TABLE fleet_changes ADD COLUMN host_id TEXT;
      -- However a grant goes (revoked, its class deleted, its key deleted on schedule), the feed says so.
      CREATE TRIGGER class_keys_revoked AFTER DELETE ON class_keys BEGIN
        INSERT INTO fleet_changes (account_id, kind, class_name, key_id, at)
          VALUES (OLD.account_id, 'key-revoked', OLD.class_name, OLD.key_id, CAST(unixepoch('subsec') * 1000 AS INTEGER));
      END;
    `,
  },
  {
    version: 7,
    name: 'fleet: staged key versions, what each host holds, rotations, host HPKE keys, key changes in the feed',
    sql: `
      -- A staged version: pushed to hosts and good for decryption, not yet the default for encryption.
      ALTER TABLE keys ADD COLUMN pending_version INTEGER;
      -- Whether losing a host (removed, or its class revoked) rotates the key.
      ALTER TABLE keys ADD COLUMN rotate_on_host_loss INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE hosts ADD COLUMN hpke_public_key BLOB;
      ALTER TABLE hosts ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
      -- The inventory: which versions of which keys each host has acknowledged holding.
      CREATE TABLE host_key_versions (
        host_id TEXT NOT NULL REFERENCES hosts(host_id) ON DELETE CASCADE, key_id TEXT NOT NULL, version INTEGER NOT NULL,
        received_at INTEGER NOT NULL, PRIMARY KEY (host_id, key_id, version));
      CREATE INDEX host_key_versions_by_key ON host_key_versions(key_id, version);
      CREATE TABLE fleet_rotations (
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE, version INTEGER NOT NULL, account_id TEXT NOT NULL,
        state TEXT NOT NULL, reason TEXT NOT NULL, started_at INTEGER NOT NULL, started_by TEXT NOT NULL, promote_after INTEGER,
        promoted_at INTEGER, promoted_by TEXT, left_behind TEXT, PRIMARY KEY (key_id, version));
      CREATE INDEX fleet_rotations_pending ON fleet_rotations(state, key_id) WHERE state = 'pending';
      -- New, staged, promoted or retired versions, state changes and alias changes of a distributed key reach its hosts.
      CREATE TRIGGER keys_fleet_changed AFTER UPDATE OF current_version, pending_version, key_state, min_decrypt_version ON keys
        WHEN (OLD.current_version IS NOT NEW.current_version OR OLD.pending_version IS NOT NEW.pending_version
          OR OLD.key_state IS NOT NEW.key_state OR OLD.min_decrypt_version IS NOT NEW.min_decrypt_version)
          AND EXISTS (SELECT 1 FROM class_keys WHERE key_id = NEW.key_id)
        BEGIN INSERT INTO fleet_changes (account_id, kind, key_id, at)
          VALUES (NEW.account_id, 'key-changed', NEW.key_id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
      CREATE TRIGGER aliases_fleet_added AFTER INSERT ON aliases WHEN EXISTS (SELECT 1 FROM class_keys WHERE key_id = NEW.key_id)
        BEGIN INSERT INTO fleet_changes (account_id, kind, key_id, at)
          VALUES (NEW.account_id, 'key-changed', NEW.key_id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
      CREATE TRIGGER aliases_fleet_removed AFTER DELETE ON aliases WHEN EXISTS (SELECT 1 FROM class_keys WHERE key_id = OLD.key_id)
        BEGIN INSERT INTO fleet_changes (account_id, kind, key_id, at)
          VALUES (OLD.account_id, 'key-changed', OLD.key_id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
      CREATE TRIGGER aliases_fleet_moved AFTER UPDATE OF key_id ON aliases BEGIN
        INSERT INTO fleet_changes (account_id, kind, key_id, at) SELECT OLD.account_id, 'key-changed', OLD.key_id,
          CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE EXISTS (SELECT 1 FROM class_keys WHERE key_id = OLD.key_id);
        INSERT INTO fleet_changes (account_id, kind, key_id, at) SELECT NEW.account_id, 'key-changed', NEW.key_id,
          CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE EXISTS (SELECT 1 FROM class_keys WHERE key_id = NEW.key_id);
      END;
    `,
  },
  {
    version: 8,
    name: 'attestation: class settings, host vaults, verdicts, reference policies, verifier keys, attested certificates, alerts',
    sql: `
      -- A class's attestation settings (mode, interval, corrective actions) as JSON; NULL: no attestation.
      ALTER TABLE host_classes ADD COLUMN attestation TEXT;
      -- Each host's security attributes, encrypted under the host's own vault key (wrapped under the domain key).
      CREATE TABLE host_vaults (
        host_id TEXT PRIMARY KEY REFERENCES hosts(host_id) ON DELETE CASCADE, account_id TEXT NOT NULL,
        domain_key_id TEXT NOT NULL, wrapped_vault_key BLOB NOT NULL, format INTEGER NOT NULL, ciphertext BLOB NOT NULL,
        revision INTEGER NOT NULL);
      CREATE INDEX host_vaults_by_domain_key ON host_vaults(domain_key_id);
      CREATE TRIGGER host_vaults_live_domain_key BEFORE INSERT ON host_vaults
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      -- The verdict in clear (status and times only: what the scheduler and the push need without opening vaults).
      CREATE TABLE host_attestations (
        host_id TEXT PRIMARY KEY REFERENCES hosts(host_id) ON DELETE CASCADE, account_id TEXT NOT NULL, status TEXT NOT NULL,
        mode TEXT NOT NULL, ak_trusted INTEGER NOT NULL DEFAULT 0, last_evidence INTEGER, last_verified INTEGER,
        silent_at INTEGER, failure_count INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX host_attestations_silent ON host_attestations(silent_at) WHERE silent_at IS NOT NULL;
      -- Reference values per class, versioned, signed by the verifier (a tampered row fails verification) and
      -- wrapped under the domain key (they are the measurements of the class's hosts).
      CREATE TABLE reference_policies (
        account_id TEXT NOT NULL, class_name TEXT NOT NULL, version INTEGER NOT NULL, domain_key_id TEXT NOT NULL,
        wrapped_document BLOB NOT NULL, signature TEXT NOT NULL, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
        PRIMARY KEY (account_id, class_name, version),
        FOREIGN KEY (account_id, class_name) REFERENCES host_classes(account_id, name) ON DELETE CASCADE);
      CREATE INDEX reference_policies_by_domain_key ON reference_policies(domain_key_id);
      CREATE TRIGGER reference_policies_live_domain_key BEFORE INSERT ON reference_policies
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      -- The verifier's signing keys (EAR tokens, reference policies); the private half wrapped under the domain key.
      CREATE TABLE verifier_keys (
        key_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, domain_key_id TEXT NOT NULL, wrapped_private_key BLOB NOT NULL,
        created_at INTEGER NOT NULL);
      CREATE INDEX verifier_keys_by_domain_key ON verifier_keys(domain_key_id);
      CREATE TRIGGER verifier_keys_live_domain_key BEFORE INSERT ON verifier_keys
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      -- Certificates issued to attested hosts on a CSR, and their revocation.
      CREATE TABLE attested_certificates (
        serial TEXT PRIMARY KEY, account_id TEXT NOT NULL, host_id TEXT NOT NULL, not_after INTEGER NOT NULL,
        issued_at INTEGER NOT NULL, revoked_at INTEGER, revocation_reason TEXT);
      CREATE INDEX attested_certificates_by_host ON attested_certificates(host_id);
      -- Application keys workloads keep with the verifier, released to attested hosts of the class they were stored for.
      CREATE TABLE app_keys (
        account_id TEXT NOT NULL, class_name TEXT NOT NULL, name TEXT NOT NULL, domain_key_id TEXT NOT NULL,
        wrapped_key BLOB NOT NULL, stored_by TEXT NOT NULL, stored_at INTEGER NOT NULL,
        PRIMARY KEY (account_id, class_name, name),
        FOREIGN KEY (account_id, class_name) REFERENCES host_classes(account_id, name) ON DELETE CASCADE);
      CREATE INDEX app_keys_by_domain_key ON app_keys(domain_key_id);
      CREATE TRIGGER app_keys_live_domain_key BEFORE INSERT ON app_keys
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      -- Signed alert webhooks waiting for (re)delivery.
      -- The body names failures with expected and found measurements: wrapped under the domain key until delivered.
      CREATE TABLE attestation_alerts (
        id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL, url TEXT NOT NULL,
        domain_key_id TEXT NOT NULL, wrapped_body BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at INTEGER NOT NULL, delivered_at INTEGER, last_error TEXT);
      CREATE INDEX attestation_alerts_due ON attestation_alerts(next_attempt_at) WHERE delivered_at IS NULL;
      CREATE INDEX attestation_alerts_by_domain_key ON attestation_alerts(domain_key_id);
      CREATE TRIGGER attestation_alerts_live_domain_key BEFORE INSERT ON attestation_alerts
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
    `,
  },
  {
    version: 9,
    name: 'token-less TPM enrolment: endorsement keys allowed per class, pending credential activations',
    sql: `
      -- Endorsement keys an operator admitted to a class, by fingerprint (SHA-256 of the EK's SubjectPublicKeyInfo):
      -- a TPM that holds one enrols without a join token. One class per EK. The host it enrolled, while that host lives.
      CREATE TABLE allowed_eks (
        fingerprint TEXT PRIMARY KEY, account_id TEXT NOT NULL, class_name TEXT NOT NULL, added_by TEXT NOT NULL,
        added_at INTEGER NOT NULL, enrolled_host_id TEXT REFERENCES hosts(host_id) ON DELETE SET NULL,
        FOREIGN KEY (account_id, class_name) REFERENCES host_classes(account_id, name) ON DELETE CASCADE);
      CREATE INDEX allowed_eks_by_class ON allowed_eks(account_id, class_name);
      CREATE INDEX allowed_eks_by_host ON allowed_eks(enrolled_host_id) WHERE enrolled_host_id IS NOT NULL;
      -- Credentials made for an allowed EK and not yet activated: short-lived, a few per EK, gone with the EK.
      -- What the host sent (EK, AK, identity and key ring keys, name) is wrapped under the domain key until it enrols.
      CREATE TABLE tpm_enrolments (
        enrolment_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, class_name TEXT NOT NULL,
        fingerprint TEXT NOT NULL REFERENCES allowed_eks(fingerprint) ON DELETE CASCADE, secret_digest BLOB NOT NULL,
        expires_at INTEGER NOT NULL, created_at INTEGER NOT NULL, domain_key_id TEXT NOT NULL, wrapped_inputs BLOB NOT NULL);
      CREATE INDEX tpm_enrolments_by_fingerprint ON tpm_enrolments(fingerprint, created_at);
      CREATE INDEX tpm_enrolments_expiry ON tpm_enrolments(expires_at);
      CREATE INDEX tpm_enrolments_by_domain_key ON tpm_enrolments(domain_key_id);
      CREATE TRIGGER tpm_enrolments_live_domain_key BEFORE INSERT ON tpm_enrolments
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
    `,
  },
  {
    version: 10,
    name: 'fleet: a new key policy of a distributed key reaches its hosts (tp:* conditions decide what hosts hold)',
    sql: `
      CREATE TRIGGER keys_policy_fleet_changed AFTER UPDATE OF policy ON keys
        WHEN OLD.policy IS NOT NEW.policy AND EXISTS (SELECT 1 FROM class_keys WHERE key_id = NEW.key_id)
        BEGIN INSERT INTO fleet_changes (account_id, kind, key_id, at)
          VALUES (NEW.account_id, 'key-changed', NEW.key_id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
    `,
  },
  {
    version: 11,
    name: 'privileged operations: each host\'s request key (X25519, the host made it) and its certificate from the fleet CA',
    sql: `
      -- One current request key per host; a new key replaces the old (audited). Public data only: the private part never leaves the host.
      -- Gone with the host, so a removed host's key is no longer published.
      CREATE TABLE host_request_keys (
        host_id TEXT PRIMARY KEY REFERENCES hosts(host_id) ON DELETE CASCADE, account_id TEXT NOT NULL,
        public_key BLOB NOT NULL CHECK (length(public_key) = 32), key_id TEXT NOT NULL, certificate BLOB NOT NULL,
        serial TEXT NOT NULL, not_after INTEGER NOT NULL, registered_at INTEGER NOT NULL, certified_at INTEGER NOT NULL);
      CREATE INDEX host_request_keys_by_account ON host_request_keys(account_id);
    `,
  },
  {
    version: 12,
    name: 'privileged operations: relayed requests and their sealed results, campaigns and the campaign signer',
    sql: `
      -- A request file a courier handed the server for one host: wrapped under the domain key (it may name what is asked),
      -- its status as the host reported it, and the size of the sealed result (already ciphertext to the requester's key).
      CREATE TABLE privop_relays (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, relay_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL, host_id TEXT NOT NULL,
        campaign_id TEXT, submitted_by TEXT NOT NULL, request_digest TEXT NOT NULL, operation TEXT,
        domain_key_id TEXT NOT NULL, wrapped_request BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'completed', 'refused', 'expired')),
        created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, delivered_at INTEGER, finished_at INTEGER,
        refusal_code TEXT, refusal_message TEXT, result_bytes INTEGER NOT NULL DEFAULT 0);
      CREATE INDEX privop_relays_by_host ON privop_relays(host_id, status);
      CREATE INDEX privop_relays_by_campaign ON privop_relays(campaign_id) WHERE campaign_id IS NOT NULL;
      CREATE INDEX privop_relays_expiry ON privop_relays(expires_at);
      CREATE INDEX privop_relays_by_domain_key ON privop_relays(domain_key_id);
      CREATE TRIGGER privop_relays_live_domain_key BEFORE INSERT ON privop_relays
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
      -- The sealed result in order, a chunk per row (at most 1 MiB each), gone with its relay.
      CREATE TABLE privop_result_chunks (
        relay_id TEXT NOT NULL REFERENCES privop_relays(relay_id) ON DELETE CASCADE, chunk INTEGER NOT NULL,
        start_offset INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (relay_id, chunk));
      -- Campaigns: one signed request per host of a class, each with its relay.
      CREATE TABLE privop_campaigns (
        campaign_id TEXT PRIMARY KEY, account_id TEXT NOT NULL, class_name TEXT NOT NULL, operation TEXT NOT NULL,
        started_by TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, host_count INTEGER NOT NULL);
      CREATE INDEX privop_campaigns_expiry ON privop_campaigns(expires_at);
      -- The server's campaign signer per account (Ed25519, certified by the account's fleet CA for privop signing).
      CREATE TABLE privop_campaign_signers (
        account_id TEXT PRIMARY KEY, certificate TEXT NOT NULL, not_after INTEGER NOT NULL, domain_key_id TEXT NOT NULL,
        wrapped_private_key BLOB NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX privop_campaign_signers_by_domain_key ON privop_campaign_signers(domain_key_id);
      CREATE TRIGGER privop_campaign_signers_live_domain_key BEFORE INSERT ON privop_campaign_signers
        WHEN (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'active'
          AND (SELECT state FROM domain_keys WHERE id = NEW.domain_key_id) IS NOT 'retiring'
        BEGIN SELECT RAISE(ABORT, 'wrapped under a domain key that is not live'); END;
    `,
  },
];
