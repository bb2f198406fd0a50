// Data policies in the S3 zone proxy, one action at a time, through real clients: deny, pass, quarantine, snapshot,
// log, route:<zone> and key strength; and that what is not passed reaches no backing store in clear.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import {
  bodyBytes, locateAwsCli, markedPlaintext, randomMarker, s3Error, sendWithHeaders, startZoneStack, ZONE_NAMES, type ZoneStack,
} from '../../helpers/zone-proxy.ts';

const located = await locateAwsCli();
const MARKER = randomMarker('POLICY');
const CARD = '4111 1111 1111 1111';
const SSN = '123-45-6789';
const IBAN = 'DE89 3704 0044 0532 0130 00';
const EMAIL = 'alice.zone@example.com';
const BUCKETS = ['guarded', 'www', 'intake', 'ledger', 'keyspec', 'typed', 'quarantine', 'evidence'];

/** Every value under a key named offset (any case) anywhere in `value`. */
function offsetsIn(value: unknown, found: number[] = []): number[] {
  if (Array.isArray(value)) for (const entry of value) offsetsIn(entry, found);
  else if (value && typeof value === 'object') {
    for (const [name, entry] of Object.entries(value)) {
      if (/^offset$/i.test(name) && typeof entry === 'number') found.push(entry);
      else offsetsIn(entry, found);
    }
  }
  return found;
}

describe('S3 zone proxy: data policies', () => {
  let stack: ZoneStack;
  let s3: S3Client;

  before(async () => {
    stack = await startZoneStack({
      quarantine: { bucket: 'quarantine', zone: 'eu' },
      evidence: { bucket: 'evidence', zone: 'eu' },
      detectors: { custom: [{ name: 'project-x', keywords: ['falcon', 'osprey'], contextWords: ['project'] }] },
      policies: [
        { name: 'no-cards', match: { bucket: 'guarded', detectors: ['payment_card'] }, action: 'deny' },
        { name: 'no-project-x', match: { bucket: 'guarded', detectors: ['project-x'] }, action: 'deny' },
        { name: 'public', match: { bucket: 'www', prefix: 'public/' }, action: 'pass' },
        { name: 'hold-ssn', match: { bucket: 'intake', detectors: ['us_ssn'] }, action: 'quarantine' },
        { name: 'keep-iban', match: { bucket: 'intake', detectors: ['iban'] }, action: 'snapshot' },
        { name: 'email-to-us', match: { bucket: 'intake', detectors: ['email'] }, action: 'route:us' },
        { name: 'log-cards', match: { bucket: 'ledger', detectors: ['payment_card'] }, action: 'log' },
        { name: 'weak', match: { bucket: 'keyspec', prefix: 'weak/' }, action: 'encrypt', keySpec: 'AES_128' },
        { name: 'strong', match: { bucket: 'keyspec', prefix: 'strong/' }, action: 'encrypt', keySpec: 'AES_256' },
        { name: 'text-ssn', match: { bucket: 'typed', detectors: ['us_ssn'], contentType: 'text/*' }, action: ['snapshot', 'log'] },
      ],
    });
    s3 = stack.s3();
    for (const bucket of BUCKETS) {
      try {
        await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      } catch (error) {
        // A proxy may create the quarantine and evidence buckets itself.
        if ((error as Error).name !== 'BucketAlreadyOwnedByYou') throw error;
      }
    }
  });
  after(async () => {
    await stack?.dispose();
  });

  const get = async (bucket: string, key: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
  const keysIn = async (bucket: string, prefix?: string) =>
    ((await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((entry) => entry.Key!);
  const auditRecords = () => (existsSync(stack.auditLogPath) ? readFileSync(stack.auditLogPath, 'utf8') : '').split('\n').filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

  it('deny: a card number in a guarded bucket is refused with AccessDenied naming the rule, and nothing is stored', async () => {
    const body = Buffer.from(`invoice ${MARKER}\ncard: ${CARD}\n`);
    const error = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'guarded', Key: 'card.txt', Body: body })));
    assert.equal(error.code, 'AccessDenied');
    assert.equal(error.status, 403);
    assert.ok(error.message.includes('no-cards') || JSON.stringify(error.fields).includes('no-cards'), `the refusal names the rule: ${JSON.stringify(error)}`);
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'guarded', Key: 'card.txt' })))).code, 'NoSuchKey');
    assert.deepEqual(await keysIn('guarded'), []);

    // Streamed (aws-chunked): the body is scanned as it arrives, and the verdict still stops it.
    const streamed = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'guarded', Key: 'card-stream.txt',
      Body: Readable.from([Buffer.alloc(300_000, 'a'), Buffer.from(` card ${CARD} `), Buffer.alloc(10_000, 'b')]), ContentLength: 300_000 + CARD.length + 7 + 10_000 })));
    assert.equal(streamed.code, 'AccessDenied');

    const custom = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'guarded', Key: 'plan.txt', Body: Buffer.from('the project falcon launch plan') })));
    assert.equal(custom.code, 'AccessDenied');
    assert.ok(custom.message.includes('no-project-x') || JSON.stringify(custom.fields).includes('no-project-x'), 'a custom detector rule denies');

    await s3.send(new PutObjectCommand({ Bucket: 'guarded', Key: 'clean.txt', Body: Buffer.from(`nothing to see ${MARKER}`) }));
    assert.deepEqual(await keysIn('guarded'), ['clean.txt'], 'a clean object in the same bucket is stored');
    for (const zone of ZONE_NAMES) {
      assert.deepEqual(stack.zones[zone].filesContaining(CARD), [], `zone ${zone} holds the denied card number`);
      assert.deepEqual(stack.zones[zone].filesContaining('falcon'), [], `zone ${zone} holds the denied plan`);
    }
  });

  it('pass: an object under www/public/ is stored in clear, one elsewhere in www is encrypted', async () => {
    const open = randomMarker('PUBLIC');
    const page = Buffer.from(`<html>${open}</html>`);
    await s3.send(new PutObjectCommand({ Bucket: 'www', Key: 'public/index.html', Body: page, ContentType: 'text/html',
      CacheControl: 'max-age=60', ContentDisposition: 'inline', ContentLanguage: 'en', Metadata: { owner: 'web' } }));
    assert.ok((await get('www', 'public/index.html')).equals(page));
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'www', Key: 'public/index.html' }));
    assert.deepEqual([head.ContentType, head.CacheControl, head.ContentDisposition, head.ContentLanguage, head.Metadata?.owner],
      ['text/html', 'max-age=60', 'inline', 'en', 'web'], 'a passed object keeps its headers and metadata');
    const holding = stack.zones.eu.filesContaining(open);
    assert.ok(holding.some((file) => readFileSync(file).equals(page)), `the passed object is stored as is: ${JSON.stringify(holding)}`);

    const hidden = randomMarker('PRIVATE');
    await s3.send(new PutObjectCommand({ Bucket: 'www', Key: 'private/index.html', Body: Buffer.from(`<html>${hidden}</html>`) }));
    assert.equal((await get('www', 'private/index.html')).toString(), `<html>${hidden}</html>`);
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(hidden), [], `zone ${zone} holds www/private in clear`);
  });

  it('quarantine: an SSN sends the object to the quarantine bucket, not its target, and the response says so', async () => {
    const body = Buffer.from(`employee record ${MARKER}\nSSN ${SSN}\n`);
    const { headers } = await sendWithHeaders(s3, new PutObjectCommand({ Bucket: 'intake', Key: 'hr/ssn.txt', Body: body, ContentType: 'text/plain' }));
    assert.equal(headers['x-trustplane-policy-action'], 'quarantine');
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'intake', Key: 'hr/ssn.txt' })))).code, 'NoSuchKey');
    assert.ok(!(await keysIn('intake')).includes('hr/ssn.txt'));
    const quarantined = (await keysIn('quarantine')).filter((key) => key.endsWith('hr/ssn.txt'));
    assert.equal(quarantined.length, 1, `one quarantined copy: ${JSON.stringify(await keysIn('quarantine'))}`);
    assert.ok((await get('quarantine', quarantined[0])).equals(body), 'the quarantined object reads back from the quarantine bucket');
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(SSN), [], `zone ${zone} holds the SSN in clear`);
  });

  it('snapshot: an IBAN is stored at its target and a copy lands in the evidence bucket', async () => {
    const body = Buffer.from(`payout ${MARKER}\nIBAN ${IBAN}\n`);
    await s3.send(new PutObjectCommand({ Bucket: 'intake', Key: 'finance/iban.txt', Body: body }));
    assert.ok((await get('intake', 'finance/iban.txt')).equals(body), 'the object is stored at its target');
    const evidence = (await keysIn('evidence')).filter((key) => key.endsWith('finance/iban.txt'));
    assert.equal(evidence.length, 1, `one evidence copy: ${JSON.stringify(await keysIn('evidence'))}`);
    assert.ok((await get('evidence', evidence[0])).equals(body));
    assert.match(evidence[0], /^\d{8}T\d{6}Z-[0-9a-f]{8}\/intake\/finance\/iban\.txt$/);
    // A later snapshot of the same name adds a copy; the earlier evidence stays as it was.
    const second = Buffer.from(`second payout ${MARKER}\nIBAN ${IBAN}\n`);
    await s3.send(new PutObjectCommand({ Bucket: 'intake', Key: 'finance/iban.txt', Body: second }));
    const both = (await keysIn('evidence')).filter((key) => key.endsWith('finance/iban.txt'));
    assert.equal(both.length, 2);
    const contents = await Promise.all(both.map((key) => get('evidence', key)));
    assert.ok(contents.some((bytes) => bytes.equals(body)) && contents.some((bytes) => bytes.equals(second)));
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining('3704 0044'), [], `zone ${zone} holds the IBAN in clear`);
  });

  it('log: a card number in the ledger is stored and audited with rule, detector type and offset, never the number', async () => {
    const prefix = `ledger line ${MARKER}\ncard: `;
    const body = Buffer.from(`${prefix}${CARD}\n`);
    await s3.send(new PutObjectCommand({ Bucket: 'ledger', Key: 'cards.txt', Body: body }));
    assert.ok((await get('ledger', 'cards.txt')).equals(body), 'a logged object is stored');
    const records = auditRecords().filter((record) => JSON.stringify(record).includes('log-cards'));
    assert.ok(records.length >= 1, `an audit record names the rule: ${readFileSync(stack.auditLogPath, 'utf8').slice(-2000)}`);
    const record = records.at(-1)!;
    assert.ok(JSON.stringify(record).includes('payment_card'), 'the record names the detector type');
    assert.ok(offsetsIn(record).includes(prefix.length), `the record gives the match offset ${prefix.length}: ${JSON.stringify(record)}`);
    const log = readFileSync(stack.auditLogPath, 'utf8');
    for (const text of [CARD, CARD.replace(/ /g, ''), '1111 1111', MARKER]) assert.ok(!log.includes(text), `the audit log holds ${text}`);
  });

  it('route:us: an e-mail address sends the object to zone us, where GET, HEAD, LIST and DELETE find it', async () => {
    const body = Buffer.from(`contact ${MARKER}: ${EMAIL}\n`);
    await s3.send(new PutObjectCommand({ Bucket: 'intake', Key: 'contacts/alice.txt', Body: body }));
    assert.ok(stack.zones.us.objectKeys(stack.backingBucket('us', 'intake')).includes('contacts/alice.txt'), 'the object is in zone us');
    assert.ok(!stack.zones.eu.objectKeys(stack.backingBucket('eu', 'intake')).includes('contacts/alice.txt'), 'and not in zone eu');
    assert.ok((await get('intake', 'contacts/alice.txt')).equals(body));
    assert.equal((await s3.send(new HeadObjectCommand({ Bucket: 'intake', Key: 'contacts/alice.txt' }))).ContentLength, body.length);
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'intake' }));
    const keys = listed.Contents?.map((entry) => [entry.Key, entry.Size]) ?? [];
    assert.ok(keys.some(([key, size]) => key === 'contacts/alice.txt' && size === body.length), `LIST shows the us object: ${JSON.stringify(keys)}`);
    assert.ok(keys.some(([key]) => key === 'finance/iban.txt'), 'LIST shows the eu objects of the same bucket too');
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(EMAIL), [], `zone ${zone} holds the address in clear`);
    await s3.send(new DeleteObjectCommand({ Bucket: 'intake', Key: 'contacts/alice.txt' }));
    assert.ok(!stack.zones.us.objectKeys(stack.backingBucket('us', 'intake')).includes('contacts/alice.txt'), 'DELETE removes it from zone us');
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'intake', Key: 'contacts/alice.txt' })))).code, 'NoSuchKey');
  });

  it('keySpec: AES_128 and AES_256 rules show in byte 6 of the backing TPENC header (2 and 1); the default is AES-256', async () => {
    const cases: Array<[string, number]> = [['weak/a.bin', 2], ['strong/b.bin', 1], ['other/c.bin', 1]];
    for (const [key, algorithm] of cases) {
      const body = markedPlaintext(100_000, MARKER);
      await s3.send(new PutObjectCommand({ Bucket: 'keyspec', Key: key, Body: body }));
      const stored = readFileSync(stack.zones.eu.objectFile(stack.backingBucket('eu', 'keyspec'), key));
      assert.equal(stored.subarray(0, 5).toString('latin1'), 'TPENC', `${key}: the backing object starts with a TPENC header`);
      assert.equal(stored[6], algorithm, `${key}: algorithm byte`);
      assert.ok((await get('keyspec', key)).equals(body), `${key} reads back`);
    }
  });

  it('contentType in a rule: an SSN in text/plain is snapshotted and logged, the same bytes as octet-stream are not', async () => {
    const body = Buffer.from(`typed ${MARKER} SSN ${SSN}`);
    await s3.send(new PutObjectCommand({ Bucket: 'typed', Key: 'note.txt', Body: body, ContentType: 'text/plain; charset=utf-8' }));
    await s3.send(new PutObjectCommand({ Bucket: 'typed', Key: 'blob.bin', Body: body, ContentType: 'application/octet-stream' }));
    const evidence = await keysIn('evidence');
    assert.ok(evidence.some((key) => key.endsWith('typed/note.txt')), `text/plain is snapshotted: ${JSON.stringify(evidence)}`);
    assert.ok(!evidence.some((key) => key.endsWith('blob.bin')), 'application/octet-stream is not');
    const logged = auditRecords().filter((record) => JSON.stringify(record).includes('text-ssn'));
    assert.ok(logged.some((record) => JSON.stringify(record).includes('note.txt')), 'the text/plain object is logged');
    assert.ok(!logged.some((record) => JSON.stringify(record).includes('blob.bin')), 'the octet-stream object is not logged under text-ssn');
  });

  it('policies apply to `aws s3 cp` uploads too: a card number in a guarded bucket fails the copy', { skip: located.skip }, async () => {
    const file = join(stack.workDir, 'cards.csv');
    writeFileSync(file, `name,card\nzed,${CARD}\n`);
    const result = await stack.aws(['s3', 'cp', file, 's3://guarded/cards.csv']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /AccessDenied/);
    assert.ok(!(await keysIn('guarded')).includes('cards.csv'));
  });

  it('left no plaintext except the passed object in the backing stores, and the proxy logged none', async () => {
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `zone ${zone}: files holding the marker`);
    for (const text of [CARD, SSN, EMAIL, MARKER]) assert.ok(!stack.proxyOutput().includes(text), `the proxy logged ${text}`);
  });
});
