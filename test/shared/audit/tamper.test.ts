// `audit verify` against every kind of tampering, each on a copy of one database: records 1..40,
// signed checkpoints at 10, 20 and 30, records 31..40 not yet covered by a checkpoint.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { rmSync } from 'node:fs';
import {
  auditKeyFingerprint, checkpointMessage, chainHash, encodeAuditRecord, verifyAuditLog,
  type AuditLogReport, type AuditRecord,
} from '../../../src/shared/audit/index.ts';
import { openAuditLogReadOnly } from '../../../src/shared/store/sqlite-audit.ts';
import { copyHome, createAuditHome, draft, tamper } from './fixture.ts';

type Row = Record<string, unknown>;

let original: string;
const copies: string[] = [];

before(async () => {
  const home = await createAuditHome();
  original = home.home;
  const log = await home.openLog();
  for (let n = 1; n <= 40; n += 1) {
    await log.record(draft(n, n % 7 === 0 ? { outcome: 'AccessDeniedException', decision: 'ImplicitDeny' } : {}));
    if (n % 10 === 0 && n <= 30) await log.checkpointNow();
  }
  home.module.seal(); // closing while sealed: no final checkpoint, so 31..40 stay unsigned
  await log.close();
  await home.close();
});

after(() => {
  for (const home of [original, ...copies]) rmSync(home, { recursive: true, force: true });
});

function verifyCopy(change?: Parameters<typeof tamper>[1], options: { expectedKeyFingerprint?: string } = {}): AuditLogReport {
  const home = copyHome(original);
  copies.push(home);
  if (change) tamper(home, change);
  const store = openAuditLogReadOnly(home);
  try {
    return verifyAuditLog(store, options);
  } finally {
    store.close();
  }
}

function assertBroken(report: AuditLogReport, firstBad: number, reason: RegExp): void {
  assert.equal(report.intact, false, 'tampering went unnoticed');
  assert.equal(report.firstBadSequence, firstBad, report.reason);
  assert.match(report.reason ?? '', reason);
}

function rewriteFrom(db: import('better-sqlite3').Database, seq: number, change: (record: AuditRecord) => AuditRecord): void {
  let previous = (db.prepare('SELECT hash FROM audit_records WHERE seq = ?').get(seq - 1) as Row).hash as Buffer;
  const rows = db.prepare('SELECT seq, record FROM audit_records WHERE seq >= ? ORDER BY seq').all(seq) as Row[];
  const update = db.prepare('UPDATE audit_records SET record = ?, hash = ? WHERE seq = ?');
  for (const row of rows) {
    const record = JSON.parse(String(row.record)) as AuditRecord;
    const text = encodeAuditRecord(Number(row.seq) === seq ? change(record) : record);
    previous = chainHash(previous, text);
    update.run(text, previous, row.seq);
  }
  db.prepare('UPDATE audit_head SET hash = ? WHERE id = 1').run(previous);
}

describe('audit verify on a tampered copy', () => {
  it('reports an untouched copy intact', () => {
    const report = verifyCopy();
    assert.equal(report.intact, true, report.reason);
    assert.deepEqual([report.records, report.lastSequence, report.checkpoints, report.lastCheckpointSequence], [40, 40, 3, 30]);
  });

  it('a field modified through SQL: names that record', () => {
    assertBroken(verifyCopy(`UPDATE audit_records SET record = replace(record, '"outcome":"AccessDeniedException"', '"outcome":"Success"') WHERE seq = 21`),
      21, /record 21 was modified \(hash mismatch\)/);
  });

  it('a field modified so the JSON is no longer canonical: names that record', () => {
    assertBroken(verifyCopy(`UPDATE audit_records SET record = replace(record, '"decision":', '"decision" :') WHERE seq = 23`),
      23, /record 23 was modified \(not in canonical form\)/);
  });

  it('a record deleted: names the missing seq', () => {
    assertBroken(verifyCopy('DELETE FROM audit_records WHERE seq = 17'), 17, /record 17 was removed/);
  });

  it('a record deleted and the rest renumbered to close the gap: names the seq', () => {
    assertBroken(verifyCopy('DELETE FROM audit_records WHERE seq = 17; UPDATE audit_records SET seq = seq - 1 WHERE seq > 17'),
      17, /record 17 is out of place/);
  });

  it('two records swapped: names the first of them', () => {
    assertBroken(verifyCopy(`
      UPDATE audit_records SET seq = -12 WHERE seq = 12;
      UPDATE audit_records SET seq = 12 WHERE seq = 13;
      UPDATE audit_records SET seq = 13 WHERE seq = -12;`), 12, /record 12 is out of place: its place holds record 13/);
  });

  it('two records swapped with their seq fields rewritten: names the first of them', () => {
    assertBroken(verifyCopy((db) => {
      const [a, b] = [12, 13].map((seq) => JSON.parse(String((db.prepare('SELECT record FROM audit_records WHERE seq = ?').get(seq) as Row).record)) as AuditRecord);
      db.prepare('UPDATE audit_records SET record = ? WHERE seq = 12').run(encodeAuditRecord({ ...b, seq: 12 }));
      db.prepare('UPDATE audit_records SET record = ? WHERE seq = 13').run(encodeAuditRecord({ ...a, seq: 13 }));
    }), 12, /record 12 was modified \(hash mismatch\)/);
  });

  it('the tail truncated after the last checkpoint: the head row names the first missing seq', () => {
    assertBroken(verifyCopy('DELETE FROM audit_records WHERE seq > 35'), 36, /truncated: records 36\.\.40 were removed/);
  });

  it('the tail truncated past a checkpoint, head row rewritten to match: the checkpoint names the first missing seq', () => {
    assertBroken(verifyCopy(`DELETE FROM audit_records WHERE seq > 25;
      UPDATE audit_head SET seq = 25, hash = (SELECT hash FROM audit_records WHERE seq = 25) WHERE id = 1`),
    26, /truncated: checkpoint 3 vouches for records up to 30 but the log ends at 25/);
  });

  it('a checkpoint deleted: names the first record it vouched for alone', () => {
    assertBroken(verifyCopy('DELETE FROM audit_checkpoints WHERE number = 2'), 11, /checkpoint 2 was removed/);
  });

  it('the last checkpoint deleted: the head row notices', () => {
    assertBroken(verifyCopy('DELETE FROM audit_checkpoints WHERE number = 3'), 21, /checkpoint 3 was removed/);
  });

  it('a checkpoint signature altered: names the first record it vouched for', () => {
    assertBroken(verifyCopy((db) => {
      const { signature } = db.prepare('SELECT signature FROM audit_checkpoints WHERE number = 2').get() as { signature: Buffer };
      signature[5] ^= 0x01;
      db.prepare('UPDATE audit_checkpoints SET signature = ? WHERE number = 2').run(signature);
    }), 11, /checkpoint 2 \(at record 20\) has an invalid signature/);
  });

  it('a checkpoint moved to another record: its signature no longer holds', () => {
    assertBroken(verifyCopy(`UPDATE audit_checkpoints SET seq = 25, chain_head = (SELECT hash FROM audit_records WHERE seq = 25) WHERE number = 3`),
      21, /checkpoint 3 \(at record 25\) has an invalid signature/);
  });

  it('a record inserted at the end with a correct hash: the head row names it', () => {
    assertBroken(verifyCopy((db) => {
      const last = db.prepare('SELECT hash FROM audit_records WHERE seq = 40').get() as { hash: Buffer };
      const text = encodeAuditRecord({ ...draft(41), seq: 41, time: Date.now(), formatVersion: 1 } as AuditRecord);
      db.prepare('INSERT INTO audit_records (seq, record, hash) VALUES (41, ?, ?)').run(text, chainHash(last.hash, text));
    }), 41, /record 41 was inserted after the log's head/);
  });

  it('a record slipped into the middle, later records renumbered: names the inserted seq', () => {
    assertBroken(verifyCopy((db) => {
      db.exec('UPDATE audit_records SET seq = -seq WHERE seq >= 15; UPDATE audit_records SET seq = 1 - seq WHERE seq < 0');
      const previous = db.prepare('SELECT hash FROM audit_records WHERE seq = 14').get() as { hash: Buffer };
      const text = encodeAuditRecord({ ...draft(15, { principalArn: 'arn:aws:iam::111122223333:user/mallory' }), seq: 15, formatVersion: 1 } as AuditRecord);
      db.prepare('INSERT INTO audit_records (seq, record, hash) VALUES (15, ?, ?)').run(text, chainHash(previous.hash, text));
    }), 15, /record 15 was inserted/);
  });

  it('a record rewritten with every later hash and the head recomputed: the next checkpoint catches it', () => {
    assertBroken(verifyCopy((db) => rewriteFrom(db, 23, (record) => ({ ...record, principalArn: 'arn:aws:iam::111122223333:user/mallory' }))),
      21, /checkpoint 3 \(at record 30\) does not match the records: records 21\.\.30 were rewritten/);
  });

  it('documented limit: a rewrite after the last checkpoint, hashes and head recomputed, is not detectable', () => {
    const report = verifyCopy((db) => rewriteFrom(db, 35, (record) => ({ ...record, principalArn: 'arn:aws:iam::111122223333:user/mallory' })));
    assert.equal(report.intact, true);
    assert.equal(report.lastCheckpointSequence, 30, 'the report says how far the signatures reach');
  });

  it('the public key replaced and every checkpoint re-signed: caught when the key fingerprint is pinned', () => {
    const pinned = verifyCopy().signingKeys[0].fingerprint;
    const forge = (db: import('better-sqlite3').Database) => {
      const attacker = generateKeyPairSync('ed25519');
      db.prepare('UPDATE audit_signing_keys SET public_key = ?').run(attacker.publicKey.export({ format: 'der', type: 'spki' }));
      for (const row of db.prepare('SELECT * FROM audit_checkpoints').all() as Row[]) {
        const body = { number: Number(row.number), seq: Number(row.seq), chainHead: row.chain_head as Buffer, time: Number(row.time),
          keyId: String(row.key_id), formatVersion: Number(row.format_version) };
        db.prepare('UPDATE audit_checkpoints SET signature = ? WHERE number = ?').run(sign(null, checkpointMessage(body), attacker.privateKey), body.number);
      }
    };
    const unpinned = verifyCopy(forge);
    assert.equal(unpinned.intact, true, 'without a pin, the stored key is all there is to trust');
    assert.notEqual(unpinned.signingKeys[0].fingerprint, pinned);
    assertBroken(verifyCopy(forge, { expectedKeyFingerprint: pinned }), 1, /no audit signing key with fingerprint/);
    assert.equal(verifyCopy(undefined, { expectedKeyFingerprint: pinned.toUpperCase() }).intact, true);
    assert.equal(auditKeyFingerprint(Buffer.from('x')).length, 64);
  });
});
