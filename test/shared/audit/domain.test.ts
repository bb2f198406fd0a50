// The audit log's pure core: canonical JSON (RFC 8785 vectors), the record's canonical form and
// chain hashes (known answers, checked with sha256sum), checkpoint scheduling, verification in memory.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import {
  auditGenesisHash, canonicalJson, chainHash, checkpointMessage, decodeAuditRecord, encodeAuditRecord, isCheckpointDue,
  toAuditRecord, verifyAuditChain, type AuditCheckpoint, type AuditRecordDraft, type StoredAuditRecord,
} from '../../../src/shared/audit/domain/index.ts';

const KNOWN_DRAFT: AuditRecordDraft = {
  time: 1700000000000, requestId: 'f9a3c1d2-0000-4000-8000-000000000001', accountId: '111122223333',
  principalArn: 'arn:aws:iam::111122223333:user/alice', sourceIp: '192.0.2.10', service: 'kms', operation: 'Encrypt',
  resource: 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab', decision: 'Allow',
  decidingStatement: 'key-policy#EnableRoot', outcome: 'Success', latencyMs: 0.1234567,
};
const KNOWN_TEXT = '{"accountId":"111122223333","decidingStatement":"key-policy#EnableRoot","decision":"Allow","formatVersion":1,'
  + '"latencyMs":0.123,"operation":"Encrypt","outcome":"Success","principalArn":"arn:aws:iam::111122223333:user/alice",'
  + '"requestId":"f9a3c1d2-0000-4000-8000-000000000001","resource":"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",'
  + '"seq":1,"service":"kms","sourceIp":"192.0.2.10","time":1700000000000}';
// sha256sum over 32 zero bytes followed by KNOWN_TEXT.
const KNOWN_HASH_1 = '5ab724fdc37e68db1523ea64141235af09cb6966775375b1554dc0aa7ad6ba77';
const KNOWN_HASH_2 = '3d56b680928f45ea2e89962092b6820a309c6bbc7e19dd8fab763345dd24e545';

describe('canonical JSON', () => {
  it('sorts members by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    const input = { '\u20ac': 'Euro Sign', '\r': 'Carriage Return', '\ufb33': 'Hebrew Letter Dalet With Dagesh', '1': 'One',
      '\ud83d\ude00': 'Emoji: Grinning Face', '\u0080': 'Control', '\u00f6': 'Latin Small Letter O With Diaeresis' };
    const order = ['\r', '1', '\u0080', '\u00f6', '\u20ac', '\ud83d\ude00', '\ufb33'] as const;
    const expected = `{${order.map((key) => `${JSON.stringify(key)}:${JSON.stringify(input[key])}`).join(',')}}`;
    assert.equal(canonicalJson(input), expected);
  });

  it('writes numbers and strings as RFC 8785 does, and refuses what has no single form', () => {
    assert.equal(canonicalJson([0, -0, 1e21, 1e-7, 0.000001, 333333333.3333333, 5e-324, -1.5]),
      '[0,0,1e+21,1e-7,0.000001,333333333.3333333,5e-324,-1.5]');
    assert.equal(canonicalJson({ b: 'a\u2028\n"\\', a: null, c: undefined, d: [true, false] }), '{"a":null,"b":"a\u2028\\n\\"\\\\","d":[true,false]}');
    assert.throws(() => canonicalJson(Number.NaN), RangeError);
    assert.throws(() => canonicalJson([undefined as never]), RangeError);
  });
});

describe('audit record and chain', () => {
  it('encodes a record canonically and chains it (known answers)', () => {
    const first = toAuditRecord(KNOWN_DRAFT, 1, 0);
    assert.equal(encodeAuditRecord(first), KNOWN_TEXT);
    const hash1 = chainHash(auditGenesisHash(), KNOWN_TEXT);
    assert.equal(hash1.toString('hex'), KNOWN_HASH_1);
    const second = toAuditRecord({ time: 1700000000500, requestId: 'r2', service: 'kms', operation: 'Decrypt', decision: 'Unauthenticated',
      outcome: 'InvalidSignatureException', latencyMs: 3 }, 2, 0);
    assert.equal(chainHash(hash1, encodeAuditRecord(second)).toString('hex'), KNOWN_HASH_2);
    assert.deepEqual(decodeAuditRecord(KNOWN_TEXT), first);
  });

  it('decodes strictly: unknown fields, another format version, non-canonical text are refused', () => {
    assert.throws(() => decodeAuditRecord(KNOWN_TEXT.replace('"accountId"', '"plaintext":"x","accountId"')), /outside the schema: plaintext/);
    assert.throws(() => decodeAuditRecord(KNOWN_TEXT.replace('"formatVersion":1', '"formatVersion":2')), /format version 2/);
    assert.throws(() => decodeAuditRecord(KNOWN_TEXT.replace('{"accountId"', '{ "accountId"')), /canonical/);
    assert.throws(() => decodeAuditRecord('[1]'), /object/);
  });

  it('encodes exactly as general canonical JSON does, with and without optional fields', () => {
    const minimal = toAuditRecord({ requestId: 'r', service: 'sts', operation: 'AssumeRole', decision: 'ImplicitDeny',
      outcome: 'AccessDenied', latencyMs: 12.5 }, 7, 1);
    const full = toAuditRecord({ ...KNOWN_DRAFT, requestId: 'quote " backslash \\ newline \n \u2028 \ud83d\ude00' }, 8, 1);
    for (const record of [minimal, full]) assert.equal(encodeAuditRecord(record), canonicalJson({ ...record }));
    assert.equal(encodeAuditRecord(minimal), '{"decision":"ImplicitDeny","formatVersion":1,"latencyMs":12.5,"operation":"AssumeRole",'
      + '"outcome":"AccessDenied","requestId":"r","seq":7,"service":"sts","time":1}');
  });

  it('fills in the time when a draft has none', () => {
    const { time: _, ...untimed } = KNOWN_DRAFT;
    assert.equal(toAuditRecord(untimed, 1, 42).time, 42);
  });
});

describe('checkpoint scheduling', () => {
  const policy = { everyRecords: 1000, intervalMs: 60_000 };
  it('is due after N records or T with unsigned records, never with none', () => {
    assert.equal(isCheckpointDue(policy, { headSeq: 1000, checkpointSeq: 0, lastCheckpointAt: 0, now: 1 }), true);
    assert.equal(isCheckpointDue(policy, { headSeq: 999, checkpointSeq: 0, lastCheckpointAt: 0, now: 1 }), false);
    assert.equal(isCheckpointDue(policy, { headSeq: 5, checkpointSeq: 4, lastCheckpointAt: 0, now: 60_000 }), true);
    assert.equal(isCheckpointDue(policy, { headSeq: 5, checkpointSeq: 5, lastCheckpointAt: 0, now: 600_000 }), false);
  });
});

describe('verifyAuditChain in memory', () => {
  const keys = generateKeyPairSync('ed25519');
  const publicKeys = [{ keyId: 'k1', publicKeyDer: keys.publicKey.export({ format: 'der', type: 'spki' }) }];

  function buildLog(count: number, checkpointAt: number[]): { records: StoredAuditRecord[]; checkpoints: AuditCheckpoint[] } {
    const records: StoredAuditRecord[] = [];
    const checkpoints: AuditCheckpoint[] = [];
    let hash = auditGenesisHash();
    for (let seq = 1; seq <= count; seq += 1) {
      const text = encodeAuditRecord(toAuditRecord({ ...KNOWN_DRAFT, requestId: `r${seq}` }, seq, 0));
      hash = chainHash(hash, text);
      records.push({ seq, text, hash });
      if (checkpointAt.includes(seq)) {
        const body = { number: checkpoints.length + 1, seq, chainHead: hash, time: seq, keyId: 'k1', formatVersion: 1 };
        checkpoints.push({ ...body, signature: sign(null, checkpointMessage(body), keys.privateKey) });
      }
    }
    return { records, checkpoints };
  }

  it('accepts an empty log and an intact one', () => {
    assert.deepEqual(verifyAuditChain([], [], publicKeys), { ok: true, lastSeq: 0, chainHead: auditGenesisHash(), records: 0, checkpoints: 0, lastCheckpointSeq: 0 });
    const { records, checkpoints } = buildLog(12, [4, 8]);
    const result = verifyAuditChain(records, checkpoints, publicKeys, { head: { seq: 12, hash: records[11].hash, checkpointNumber: 2, checkpointSeq: 8 } });
    assert.equal(result.ok, true);
    assert.equal(result.ok && result.lastSeq, 12);
  });

  it('refuses checkpoints out of order or signed with another key', () => {
    const { records, checkpoints } = buildLog(12, [4, 8]);
    const swapped = [{ ...checkpoints[1], number: 1 }, { ...checkpoints[0], number: 2 }];
    const outOfOrder = verifyAuditChain(records, swapped, publicKeys);
    assert.equal(outOfOrder.ok, false);
    assert.equal(!outOfOrder.ok && outOfOrder.firstBadSeq, 1);
    const otherKey = verifyAuditChain(records, checkpoints, [{ ...publicKeys[0], keyId: 'k2' }]);
    assert.match(!otherKey.ok ? otherKey.reason : '', /unknown audit signing key 'k1'/);
  });

  it('records inserted before the first record are named', () => {
    const { records } = buildLog(3, []);
    const forged = encodeAuditRecord(toAuditRecord({ ...KNOWN_DRAFT, requestId: 'forged' }, 1, 0));
    const shifted = [{ seq: 1, text: forged, hash: chainHash(auditGenesisHash(), forged) },
      ...records.map((record) => ({ ...record, seq: record.seq + 1 }))];
    const result = verifyAuditChain(shifted, [], publicKeys);
    assert.deepEqual(!result.ok && [result.firstBadSeq, result.reason], [1, 'record 1 was inserted (the original record 1 now sits at 2)']);
  });
});
