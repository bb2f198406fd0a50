// The store's guards around domain keys: a key is retired only when no row references it, and no
// row can be written under a retired key (its material is destroyed; the row could never be read).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore, StoreConflictError } from '../../../src/shared/store/index.ts';
import { makeTempDir } from '../../helpers/server.ts';

describe('domain key retirement guards (SQLite)', () => {
  let dir: string;
  let store: SqliteStore;
  const key = (id: string, state: 'active' | 'retiring') => ({ id, module: 'software' as const, wrapped: Buffer.from([1, 2, 3]), createdAt: new Date(), state });
  const insertAccessKey = (id: string, domainKeyId: string) => store.database.prepare(`INSERT INTO access_keys
    (access_key_id, principal_arn, domain_key_id, wrapped_secret, status, created_at) VALUES (?, 'arn:test', ?, X'00', 'Active', 0)`).run(id, domainKeyId);

  before(async () => {
    dir = makeTempDir();
    store = SqliteStore.open(join(dir, 'test.db'));
    store.database.prepare("INSERT INTO principals (arn, account_id, kind, name, created_at) VALUES ('arn:test', '111111111111', 'user', 't', 0)").run();
    await store.initializeModule(key('dk-1', 'active'), {});
    await store.insertDomainKey(key('dk-2', 'active'));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('demotes the previous active key to retiring when a new one becomes active', async () => {
    assert.deepEqual((await store.listDomainKeys()).map((record) => [record.id, record.state]), [['dk-1', 'retiring'], ['dk-2', 'active']]);
  });

  it('refuses to retire a key a row still references, and retires it once none does', async () => {
    insertAccessKey('AK-1', 'dk-1');
    await assert.rejects(store.retireDomainKey('dk-1'), StoreConflictError);
    assert.equal((await store.listDomainKeys())[0]!.state, 'retiring');
    store.database.prepare("UPDATE access_keys SET domain_key_id = 'dk-2' WHERE access_key_id = 'AK-1'").run();
    await store.retireDomainKey('dk-1');
    const retired = (await store.listDomainKeys())[0]!;
    assert.deepEqual([retired.state, retired.wrapped.length], ['retired', 0]);
    await store.retireDomainKey('dk-1'); // a second retirement (another server) is not an error
    await assert.rejects(store.retireDomainKey('dk-2'), StoreConflictError, 'the active key never retires');
  });

  it('refuses a row wrapped under a retired or unknown domain key', () => {
    assert.throws(() => insertAccessKey('AK-2', 'dk-1'), /not live/);
    assert.throws(() => insertAccessKey('AK-3', 'no-such-key'), /not live/);
    insertAccessKey('AK-4', 'dk-2');
  });
});
