// The store side of the relay: result chunks only in order and within the bound, completion only when every byte
// is stored, reads across chunk boundaries, refusal dropping a partial result, and time-based expiry and cleanup.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteStore, type NewRelay } from '../../../src/shared/store/index.ts';
import { SqlitePrivopStore } from '../../../src/shared/store/sqlite-privop.ts';
import { makeTempDir } from '../../helpers/server.ts';

const ACCOUNT = '111111111111';
const t0 = new Date('2026-11-01T00:00:00Z');
const at = (seconds: number) => new Date(t0.getTime() + seconds * 1000);

function relay(relayId: string, hostId: string, expiresAt = at(600)): NewRelay {
  return { relayId, accountId: ACCOUNT, hostId, submittedBy: 'arn:test', requestDigest: 'digest', operation: 'system.snapshot',
    request: { domainKeyId: 'dk-1', wrapped: Buffer.from('wrapped') }, createdAt: t0, expiresAt };
}

describe('relay (store)', () => {
  let dir: string;
  let store: SqliteStore;
  let privops: SqlitePrivopStore;

  before(async () => {
    dir = makeTempDir();
    store = SqliteStore.open(join(dir, 'relay.db'));
    await store.initializeModule({ id: 'dk-1', module: 'software', wrapped: Buffer.from([1, 2, 3]), createdAt: t0, state: 'active' }, {});
    privops = new SqlitePrivopStore(store);
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes result chunks in order, within the bound, and completes only with every byte stored', async () => {
    await privops.createRelays([relay('r-1', 'h-1')]);
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 0, Buffer.from('abc'), 10), 'not-delivering', 'not fetched yet');
    assert.equal(await privops.markDelivered('r-1', 'h-2', at(1)), false, 'another host');
    assert.equal(await privops.markDelivered('r-1', 'h-1', at(1)), true);
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 0, Buffer.from('abcd'), 10), 'stored');
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 0, Buffer.from('abcd'), 10), 'out-of-order', 'a repeated slice');
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 5, Buffer.from('x'), 10), 'out-of-order', 'a gap');
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 4, Buffer.from('efghijk'), 10), 'too-large');
    assert.equal(await privops.appendResultChunk('r-1', 'h-1', 4, Buffer.from('efgh'), 10), 'stored');
    assert.equal(await privops.completeResult('r-1', 'h-1', 9, at(2)), false, 'a byte short');
    assert.equal((await privops.getRelay('r-1'))?.status, 'delivered');
    assert.equal(await privops.completeResult('r-1', 'h-1', 8, at(2)), true);
    assert.equal((await privops.getRelay('r-1'))?.status, 'completed');
    assert.equal((await privops.readResult('r-1', 2, 4)).toString(), 'cdef', 'across a chunk boundary');
    assert.equal((await privops.readResult('r-1', 0, 100)).toString(), 'abcdefgh');
    assert.equal(await privops.markRefused('r-1', 'h-1', { code: 'PrivopReplay', message: 'late' }, at(3)), false, 'a finished relay stays finished');
    assert.equal(await privops.markDelivered('r-1', 'h-1', at(3)), false);
  });

  it('a refusal drops a partial result', async () => {
    await privops.createRelays([relay('r-2', 'h-1')]);
    await privops.markDelivered('r-2', 'h-1', at(1));
    await privops.appendResultChunk('r-2', 'h-1', 0, Buffer.from('partial'), 100);
    assert.equal(await privops.markRefused('r-2', 'h-1', { code: 'PrivopResultTooLarge', message: 'too large' }, at(2)), true);
    const refused = await privops.getRelay('r-2');
    assert.equal(refused?.status, 'refused');
    assert.deepEqual(refused?.refusal, { code: 'PrivopResultTooLarge', message: 'too large' });
    assert.equal(refused?.resultBytes, 0);
    assert.equal((await privops.readResult('r-2', 0, 100)).length, 0);
  });

  it('expires unfinished relays past their time and forgets finished ones after the retention', async () => {
    await privops.createRelays([relay('r-3', 'h-3', at(100)), relay('r-4', 'h-3', at(10_000))]);
    assert.deepEqual((await privops.openRelaysOf('h-3')).map((open) => open.relayId), ['r-3', 'r-4']);
    const first = await privops.expireRelays(at(200), at(0), 100);
    assert.deepEqual(first.expired.map((expired) => expired.relayId), ['r-3']);
    assert.equal((await privops.getRelay('r-3'))?.status, 'expired');
    assert.deepEqual((await privops.openRelaysOf('h-3')).map((open) => open.relayId), ['r-4']);
    // Finished before the cut-off: r-1 (completed at 2 s), r-2 (refused at 2 s), r-3 (expired at 200 s).
    const later = await privops.expireRelays(at(300), at(250), 100);
    assert.equal(later.deleted, 3);
    assert.equal(await privops.getRelay('r-1'), undefined);
    assert.equal((await privops.readResult('r-1', 0, 100)).length, 0, 'chunks go with their relay');
    assert.equal((await privops.getRelay('r-4'))?.status, 'pending');
  });
});
