// Placement across backing zones in the S3 zone proxy: per-bucket placement, the signed x-trustplane-zone header,
// and hashed object names in a zone; clients see one bucket whatever zone holds each object, across proxy restarts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CopyObjectCommand, CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import {
  bodyBytes, markedPlaintext, objectPath, randomMarker, rawS3Request, s3Error, sendWithHeaders, startZoneStack, ZONE_NAMES, type ZoneStack,
} from '../../helpers/zone-proxy.ts';

const MARKER = randomMarker('ZONES');
// Object names carry a marker too: with hashNames the backing store must not learn them.
const NAME_MARKER = randomMarker('NAME').toLowerCase();

describe('S3 zone proxy: backing zones', () => {
  let stack: ZoneStack;
  let s3: S3Client;

  before(async () => {
    stack = await startZoneStack({ buckets: { archive: { zone: 'us' } }, hashNames: { us: true } });
    s3 = stack.s3();
    for (const bucket of ['archive', 'mixed']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });
  after(async () => {
    await stack?.dispose();
  });

  const get = async (bucket: string, key: string) => bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
  const backingKeys = (zone: 'eu' | 'us', bucket: string) => stack.zones[zone].objectKeys(stack.backingBucket(zone, bucket))
    .filter((key) => !key.startsWith('.trustplane-'));

  it('bucket placement: objects of `archive` live in zone us, under hashed names', async () => {
    const keys = [`reports/2024/${NAME_MARKER}-q1.csv`, `reports/2024/${NAME_MARKER}-q2.csv`, `reports/2025/${NAME_MARKER}-q1.csv`, `${NAME_MARKER}-top.txt`];
    const bodies = new Map(keys.map((key) => [key, markedPlaintext(70_000 + key.length, MARKER)]));
    for (const [key, body] of bodies) await s3.send(new PutObjectCommand({ Bucket: 'archive', Key: key, Body: body, Metadata: { name: key } }));

    const stored = backingKeys('us', 'archive');
    assert.equal(stored.length, keys.length, `zone us holds the ${keys.length} objects: ${JSON.stringify(stack.zones.us.listFiles())}`);
    assert.deepEqual(backingKeys('eu', 'archive'), [], 'zone eu holds none of them');
    for (const key of keys) assert.ok(!stored.includes(key), `the backing name is not the client's name ${key}`);
    assert.ok(!stack.zones.us.listFiles().some((file) => file.includes(NAME_MARKER) || file.includes('reports')),
      `no backing path shows a client name: ${JSON.stringify(stack.zones.us.listFiles())}`);
    assert.deepEqual(stack.zones.us.filesContaining(NAME_MARKER), [], 'no backing file holds a client name (names are encrypted in metadata)');

    for (const [key, body] of bodies) {
      assert.ok((await get('archive', key)).equals(body), `GET ${key}`);
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'archive', Key: key }));
      assert.equal(head.ContentLength, body.length);
      assert.deepEqual(head.Metadata, { name: key });
    }
  });

  it('lists a hashed-name zone with the real names: prefix, delimiter, MaxKeys and continuation', async () => {
    const all = await s3.send(new ListObjectsV2Command({ Bucket: 'archive' }));
    assert.deepEqual(all.Contents?.map((entry) => entry.Key), [`${NAME_MARKER}-top.txt`, `reports/2024/${NAME_MARKER}-q1.csv`,
      `reports/2024/${NAME_MARKER}-q2.csv`, `reports/2025/${NAME_MARKER}-q1.csv`].sort());
    const years = await s3.send(new ListObjectsV2Command({ Bucket: 'archive', Prefix: 'reports/', Delimiter: '/' }));
    assert.deepEqual(years.CommonPrefixes?.map((entry) => entry.Prefix), ['reports/2024/', 'reports/2025/']);
    assert.equal(years.Contents?.length ?? 0, 0);
    const sizes = await s3.send(new ListObjectsV2Command({ Bucket: 'archive', Prefix: 'reports/2024/' }));
    assert.deepEqual(sizes.Contents?.map((entry) => entry.Size), [`reports/2024/${NAME_MARKER}-q1.csv`, `reports/2024/${NAME_MARKER}-q2.csv`]
      .map((key) => 70_000 + key.length));
    const first = await s3.send(new ListObjectsV2Command({ Bucket: 'archive', MaxKeys: 3 }));
    assert.equal(first.Contents?.length, 3);
    assert.equal(first.IsTruncated, true);
    const rest = await s3.send(new ListObjectsV2Command({ Bucket: 'archive', MaxKeys: 3, ContinuationToken: first.NextContinuationToken }));
    assert.deepEqual([...first.Contents!, ...(rest.Contents ?? [])].map((entry) => entry.Key), all.Contents?.map((entry) => entry.Key));
  });

  it('copies and deletes within a hashed-name zone', async () => {
    const source = `reports/2024/${NAME_MARKER}-q1.csv`;
    await s3.send(new CopyObjectCommand({ Bucket: 'archive', Key: `copies/${NAME_MARKER}-copy.csv`, CopySource: `archive/${source}` }));
    assert.ok((await get('archive', `copies/${NAME_MARKER}-copy.csv`)).equals(await get('archive', source)));
    await s3.send(new DeleteObjectCommand({ Bucket: 'archive', Key: `copies/${NAME_MARKER}-copy.csv` }));
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'archive', Key: `copies/${NAME_MARKER}-copy.csv` })))).code, 'NoSuchKey');
    assert.equal(backingKeys('us', 'archive').length, 4, 'the deleted copy left zone us');
    assert.deepEqual(stack.zones.us.filesContaining(NAME_MARKER), []);
  });

  it('header placement: a signed x-trustplane-zone: us puts an object of an eu bucket in zone us', async () => {
    const here = Buffer.from(`default placement ${MARKER}`);
    const there = Buffer.from(`header placement ${MARKER}`);
    await s3.send(new PutObjectCommand({ Bucket: 'mixed', Key: 'in-eu.txt', Body: here }));
    const { requestHeaders } = await sendWithHeaders(s3, new PutObjectCommand({ Bucket: 'mixed', Key: 'in-us.txt', Body: there }),
      { 'x-trustplane-zone': 'us' });
    assert.match(requestHeaders.authorization ?? '', /SignedHeaders=[^,]*x-trustplane-zone/, 'the SDK signed the placement header');
    assert.deepEqual(backingKeys('eu', 'mixed'), ['in-eu.txt'], 'zone eu (clear names) holds only the default-placed object');
    assert.equal(backingKeys('us', 'mixed').length, 1, 'zone us holds the header-placed object');
    assert.ok((await get('mixed', 'in-eu.txt')).equals(here));
    assert.ok((await get('mixed', 'in-us.txt')).equals(there));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'mixed' }));
    assert.deepEqual(listed.Contents?.map((entry) => [entry.Key, entry.Size]), [['in-eu.txt', here.length], ['in-us.txt', there.length]],
      'LIST merges both zones');

    // Rewritten without the header, the object moves back to the bucket's zone and no stale copy is left in us.
    const moved = Buffer.from(`moved back ${MARKER}`);
    await s3.send(new PutObjectCommand({ Bucket: 'mixed', Key: 'in-us.txt', Body: moved }));
    assert.ok((await get('mixed', 'in-us.txt')).equals(moved));
    assert.deepEqual(backingKeys('eu', 'mixed'), ['in-eu.txt', 'in-us.txt']);
    assert.equal(backingKeys('us', 'mixed').length, 0, 'the older copy in zone us was retired');
  });

  it('refuses an x-trustplane-zone header that is unsigned or names an unknown zone', async () => {
    const unsigned = await rawS3Request(stack, { method: 'PUT', path: objectPath('mixed', 'unsigned-zone.txt'), body: Buffer.from(MARKER),
      tamper: (headers) => { headers['x-trustplane-zone'] = 'us'; } });
    if (unsigned.status === 200) {
      assert.ok(backingKeys('eu', 'mixed').includes('unsigned-zone.txt'), 'an unsigned placement header is ignored (object in the bucket\'s zone)');
      assert.equal(backingKeys('us', 'mixed').length, 0, 'an unsigned placement header does not move the object');
    } else {
      assert.ok(unsigned.status === 400 || unsigned.status === 403, `unsigned placement header: ${unsigned.status} ${unsigned.body.toString()}`);
    }
    const unknown = await s3Error(sendWithHeaders(s3, new PutObjectCommand({ Bucket: 'mixed', Key: 'nowhere.txt', Body: Buffer.from('x') }),
      { 'x-trustplane-zone': 'mars' }));
    assert.equal(unknown.status, 400, `unknown zone: ${JSON.stringify(unknown)}`);
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'mixed', Key: 'nowhere.txt' })))).code, 'NoSuchKey');
  });

  it('finds every object again after the proxy restarts (all state is in the backing zones)', async () => {
    await stack.restartProxy();
    const restarted = stack.s3();
    const listed = await restarted.send(new ListObjectsV2Command({ Bucket: 'archive', Prefix: 'reports/2025/' }));
    assert.deepEqual(listed.Contents?.map((entry) => entry.Key), [`reports/2025/${NAME_MARKER}-q1.csv`]);
    const got = await restarted.send(new GetObjectCommand({ Bucket: 'archive', Key: `${NAME_MARKER}-top.txt` }));
    assert.equal((await bodyBytes(got.Body)).length, 70_000 + `${NAME_MARKER}-top.txt`.length);
    assert.equal((await bodyBytes((await restarted.send(new GetObjectCommand({ Bucket: 'mixed', Key: 'in-eu.txt' }))).Body)).toString(),
      `default placement ${MARKER}`);
  });

  it('left no plaintext or client object name in either backing store', async () => {
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `zone ${zone}: files holding the marker`);
    assert.deepEqual(stack.zones.us.filesContaining(NAME_MARKER), [], 'zone us (hashed names) holds a client name');
    assert.ok(!stack.proxyOutput().includes(MARKER), 'the proxy logged plaintext');
  });
});
