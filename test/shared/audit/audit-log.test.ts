// The audit log as services use it: group commit, records inside a state change's transaction,
// checkpoints (by count, by time, deferred while sealed), the schema guard, queries.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import {
  AuditLog, AuditLogClosedError, AuditRecordError, readAuditRecord, verifyAuditLog, type AuditRecordDraft,
} from '../../../src/shared/audit/index.ts';
import { SqliteAuditStore } from '../../../src/shared/store/sqlite-audit.ts';
import {
  BASE_TIME, BOB, createAuditHome, draft, KEY_ARN, KEY_ID, OTHER_KEY_ARN, type AuditHome,
} from './fixture.ts';

const homes: AuditHome[] = [];

async function freshHome(): Promise<AuditHome> {
  const home = await createAuditHome();
  homes.push(home);
  return home;
}

after(async () => {
  for (const home of homes) {
    await home.close().catch(() => undefined);
    rmSync(home.home, { recursive: true, force: true });
  }
});

function seqs(rows: Iterable<{ seq: number }>): number[] {
  return [...rows].map((row) => row.seq);
}

describe('audit log', () => {
  it('appends records and a checkpoint that verify, and the signing key is stored wrapped', async () => {
    const home = await freshHome();
    const log = await home.openLog();
    for (let n = 1; n <= 5; n += 1) assert.equal(await log.record(draft(n)), n);
    const checkpoint = await log.checkpointNow();
    assert.equal(checkpoint?.number, 1);
    assert.equal(checkpoint?.seq, 5);
    await log.record(draft(6));
    await log.close();

    const report = verifyAuditLog(home.auditStore);
    assert.equal(report.intact, true, report.reason);
    assert.deepEqual([report.records, report.lastSequence, report.checkpoints], [6, 6, 2]);
    assert.equal(report.lastCheckpointSequence, 6, 'close() signs a final checkpoint');
    const key = home.db.prepare('SELECT * FROM audit_signing_keys').get() as Record<string, Buffer | string>;
    assert.equal((key.wrapped_private_key as Buffer).includes(Buffer.from('302e020100300506032b6570', 'hex')), false,
      'no PKCS#8 Ed25519 header in clear');
    assert.equal(report.signingKeys.length, 1);
  });

  it('group commit: concurrent records get contiguous seqs, few transactions, and all resolve once durable', async () => {
    const home = await freshHome();
    const log = await home.openLog({ maxBatchRecords: 256 });
    const count = 1000;
    const results = await Promise.all(Array.from({ length: count }, (_, index) => log.record(draft(index + 1))));
    assert.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: count }, (_, index) => index + 1));
    const stats = log.stats();
    assert.equal(home.auditStore.defersSync, true, 'the fsync runs off the event loop');
    assert.equal(home.db.pragma('synchronous', { simple: true }), 2, 'the connection is back to synchronous=FULL');
    assert.equal(stats.recordsWritten, count);
    assert.ok(stats.transactions <= Math.ceil(count / 256) + 1, `${stats.transactions} transactions for ${count} records`);
    // Durable means visible to another connection the moment the promise resolves.
    const reader = new Database(home.path, { readonly: true });
    const resolvedSeq = await log.record(draft(count + 1));
    assert.equal((reader.prepare('SELECT max(seq) AS seq FROM audit_records').get() as { seq: number }).seq, resolvedSeq);
    reader.close();
    await log.close();
    assert.equal(verifyAuditLog(home.auditStore).intact, true);
  });

  it('group commit with the fsync inside the commit (deferSync: false) behaves the same', async () => {
    const home = await freshHome();
    const inline = new SqliteAuditStore(home.db, { deferSync: false });
    assert.equal(inline.defersSync, false);
    const log = await AuditLog.open({ store: inline, keyring: home.keyring });
    const seqsResolved = await Promise.all(Array.from({ length: 300 }, (_, index) => log.record(draft(index + 1))));
    assert.deepEqual([...seqsResolved].sort((a, b) => a - b), Array.from({ length: 300 }, (_, index) => index + 1));
    assert.ok(log.stats().transactions <= 3);
    await log.close();
    assert.equal(verifyAuditLog(inline).intact, true);
  });

  it('recordInTransaction commits with the state change, and leaves nothing when the transaction throws', async () => {
    const home = await freshHome();
    const log = await home.openLog();
    await log.record(draft(1));
    const changeState = home.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)');

    assert.throws(() => home.db.transaction(() => {
      changeState.run('rolled-back', 'x');
      log.recordInTransaction(draft(2, { operation: 'CreateAlias' }));
      throw new Error('the state change failed after its record was written');
    })(), /state change failed/);
    assert.equal(home.auditStore.readHead().seq, 1, 'no record, head unchanged');
    assert.equal(home.db.prepare("SELECT * FROM meta WHERE name = 'rolled-back'").get(), undefined);

    const record = home.db.transaction(() => {
      changeState.run('committed', 'y');
      return log.recordInTransaction(draft(3, { operation: 'CreateAlias' }));
    })();
    assert.equal(record.seq, 2, 'the rolled-back record left no gap');
    assert.ok(home.db.prepare("SELECT * FROM meta WHERE name = 'committed'").get());
    assert.throws(() => log.recordInTransaction(draft(4)), /inside a transaction/);
    assert.equal(await log.record(draft(5)), 3);
    await log.close();
    assert.equal(verifyAuditLog(home.auditStore).intact, true);
  });

  it('signs a checkpoint every N records and every T seconds', async () => {
    const home = await freshHome();
    const log = await home.openLog({ checkpoint: { everyRecords: 10, intervalMs: 3_600_000 } });
    for (let n = 1; n <= 25; n += 1) await log.record(draft(n));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const bySize = [...home.auditStore.checkpoints()].map((checkpoint) => checkpoint.seq);
    assert.deepEqual(bySize, [10, 20]);
    await log.close();

    const timed = await home.openLog({ checkpoint: { everyRecords: 1_000_000, intervalMs: 40 } });
    await timed.record(draft(26));
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(home.auditStore.lastCheckpoint()?.seq, 26, 'a checkpoint after T with no N reached');
    await timed.close();
  });

  it('defers checkpoints while the crypto module is sealed and catches up after unsealing', async () => {
    const home = await freshHome();
    const log = await home.openLog({ checkpoint: { everyRecords: 5, intervalMs: 3_600_000 } });
    home.module.seal();
    for (let n = 1; n <= 12; n += 1) await log.record(draft(n));
    assert.equal(await log.checkpointNow(), undefined);
    assert.equal(home.auditStore.lastCheckpoint(), undefined);
    assert.ok(log.stats().checkpointsDeferred >= 1);
    await home.module.unseal(home.rootKey);
    await log.record(draft(13));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(home.auditStore.lastCheckpoint()?.seq, 13, 'one checkpoint covers the backlog');
    await log.close();
    assert.equal(verifyAuditLog(home.auditStore).intact, true);
  });

  it('keeps fields outside the schema out of the log, and rejects drafts that break it', async () => {
    const home = await freshHome();
    const warnings: unknown[] = [];
    const logger = { warn: (fields: unknown) => warnings.push(fields), error: () => undefined, info: () => undefined };
    const log = await home.openLog({ logger: logger as never });
    const leaky = { ...draft(1), plaintext: 'attack at dawn', Plaintext: 'QUJD', signature: 'c2ln', secretAccessKey: 'wJalr' };
    await log.record(leaky as AuditRecordDraft);
    const stored = [...home.auditStore.records()][0].text;
    for (const secret of ['attack at dawn', 'QUJD', 'c2ln', 'wJalr', 'plaintext', 'signature']) assert.equal(stored.includes(secret), false, secret);
    assert.deepEqual(warnings, [{ service: 'kms', operation: 'Encrypt', fields: ['plaintext', 'Plaintext', 'signature', 'secretAccessKey'] }]);

    await assert.rejects(log.record({ ...draft(2), decision: 'Maybe' as never }), AuditRecordError);
    await assert.rejects(log.record({ ...draft(3), requestId: '' }), AuditRecordError);
    const long = await log.record(draft(4, { resource: `arn:${'x'.repeat(10_000)}` }));
    assert.equal(readAuditRecord([...home.auditStore.records({ afterSeq: long - 1 })][0].text).resource?.length, 2048);
    await log.close();
    await assert.rejects(log.record(draft(5)), AuditLogClosedError);
  });

  it('queries by principal, resource (ARN or key id), operation, outcome and time, with a limit', async () => {
    const home = await freshHome();
    const log = await home.openLog();
    const workload: AuditRecordDraft[] = [
      draft(1),
      draft(2, { principalArn: BOB, decision: 'ImplicitDeny', outcome: 'AccessDeniedException' }),
      draft(3, { operation: 'Decrypt' }),
      draft(4, { resource: OTHER_KEY_ARN }),
      draft(5, { principalArn: undefined, accountId: undefined, decision: 'Unauthenticated', outcome: 'InvalidSignatureException', resource: undefined }),
      draft(6, { principalArn: BOB, operation: 'Decrypt' }),
    ];
    await Promise.all(workload.map((item) => log.record(item)));
    await log.close();
    const store = home.auditStore;
    assert.deepEqual(seqs(store.query({ principalArn: BOB })), [2, 6]);
    assert.deepEqual(seqs(store.query({ resource: KEY_ARN })), [1, 2, 3, 6]);
    assert.deepEqual(seqs(store.query({ resource: KEY_ID })), [1, 2, 3, 6]);
    assert.deepEqual(seqs(store.query({ resource: 'no-such-key' })), []);
    assert.deepEqual(seqs(store.query({ operation: 'Decrypt' })), [3, 6]);
    assert.deepEqual(seqs(store.query({ outcome: 'Success' })), [1, 3, 4, 6]);
    assert.deepEqual(seqs(store.query({ outcome: 'AccessDeniedException' })), [2]);
    assert.deepEqual(seqs(store.query({ since: BASE_TIME + 3000, until: BASE_TIME + 5000 })), [3, 4]);
    assert.deepEqual(seqs(store.query({ principalArn: BOB, operation: 'Decrypt' })), [6]);
    assert.deepEqual(seqs(store.query({ limit: 2 })), [1, 2]);
    assert.deepEqual(seqs(store.query({ newestFirst: true, limit: 2 })), [6, 5]);
    assert.deepEqual(seqs(store.query({ afterSeq: 4 })), [5, 6]);
  });

  it('reads a large log a page at a time, and a read-only handle cannot write', async () => {
    const home = await freshHome();
    home.auditStore.appendBatch(Array.from({ length: 2500 }, (_, index) => draft(index + 1)));
    assert.deepEqual(seqs(home.auditStore.records({ pageSize: 1000 })), Array.from({ length: 2500 }, (_, index) => index + 1));
    const readOnly = SqliteAuditStore.openReadOnly(home.path);
    assert.throws(() => readOnly.appendBatch([draft(1)]), /readonly/i);
    readOnly.close();
    const log: AuditLog = await home.openLog();
    await log.close();
    assert.equal(verifyAuditLog(home.auditStore).intact, true);
  });
});
