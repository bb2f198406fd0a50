// The S3 zone proxy as S3 clients see it: objects of every size round-trip through the real SDK (plain and aws-chunked
// bodies) and the real AWS CLI with their types, metadata and ETags; ranges, conditions, listings, buckets, deletes, copies.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  CopyObjectCommand, CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import {
  bodyBytes, locateAwsCli, markedPlaintext, md5Hex, randomMarker, readObject, s3Error, sendWithHeaders, startZoneStack, type ZoneStack,
} from '../../helpers/zone-proxy.ts';

const located = await locateAwsCli();
const CHUNK = 65536;
const MiB = 1024 * 1024;
const BUCKET = 'photos';
// Planted in every object body and metadata value this file writes; the backing stores must never hold it.
const MARKER = randomMarker('ROUNDTRIP');
const SIZES = [0, 1, 5 * MiB + 1];

describe('S3 zone proxy: round trips', () => {
  let stack: ZoneStack;
  let s3: S3Client;

  before(async () => {
    stack = await startZoneStack({ chunkSize: CHUNK });
    s3 = stack.s3();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    await stack?.dispose();
  });

  /** Puts `body` and checks the response's ETag is the MD5 of the plaintext. */
  async function put(key: string, body: Buffer, extra: { contentType?: string; metadata?: Record<string, string> } = {}): Promise<void> {
    const result = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body, ContentType: extra.contentType,
      Metadata: extra.metadata }));
    assert.equal(result.ETag, `"${md5Hex(body)}"`, `PutObject ${key}: ETag is the MD5 of the plaintext`);
  }

  /** GETs `key` and checks bytes, length, ETag, type and metadata. */
  async function assertObject(key: string, expected: Buffer, contentType: string, metadata: Record<string, string>): Promise<void> {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const bytes = await bodyBytes(got.Body);
    assert.equal(bytes.length, expected.length, `${key}: GET returns ${bytes.length} bytes, expected ${expected.length}`);
    assert.ok(bytes.equals(expected), `${key}: GET returns the bytes that were put`);
    assert.equal(got.ContentLength, expected.length);
    assert.equal(got.ETag, `"${md5Hex(expected)}"`);
    assert.equal(got.ContentType, contentType);
    assert.deepEqual(got.Metadata, metadata);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.equal(head.ContentLength, expected.length, `${key}: HEAD shows the plaintext size`);
    assert.equal(head.ETag, `"${md5Hex(expected)}"`);
    assert.equal(head.ContentType, contentType);
    assert.deepEqual(head.Metadata, metadata);
  }

  it('round-trips 0 B, 1 B and 5 MiB + 1 with a Buffer body: bytes, Content-Type, user metadata and ETag (MD5) come back', async () => {
    for (const size of SIZES) {
      const body = markedPlaintext(size, MARKER);
      const metadata = { owner: 'alice', note: `${MARKER} size ${size}` };
      await put(`buffer/${size}.bin`, body, { contentType: 'application/x-trustplane-test', metadata });
      await assertObject(`buffer/${size}.bin`, body, 'application/x-trustplane-test', metadata);
    }
  });

  it('round-trips 0 B, 1 B and 5 MiB + 1 with a stream body (aws-chunked with a trailing checksum)', async () => {
    for (const size of SIZES) {
      const body = markedPlaintext(size, MARKER);
      const metadata = { source: 'stream', note: MARKER };
      // 64 KiB pieces: the SDK frames each as an aws-chunked chunk.
      const pieces = Array.from({ length: Math.ceil(size / CHUNK) }, (_, index) => body.subarray(index * CHUNK, (index + 1) * CHUNK));
      const { output, requestHeaders } = await sendWithHeaders(s3, new PutObjectCommand({ Bucket: BUCKET,
        Key: `stream/${size}.bin`, Body: Readable.from(pieces), ContentLength: size, ContentType: 'text/plain', Metadata: metadata }));
      assert.match(requestHeaders['content-encoding'] ?? '', /aws-chunked/, 'the SDK sent the stream aws-chunked');
      assert.match(requestHeaders['x-amz-trailer'] ?? '', /^x-amz-checksum-/, 'the SDK sent a trailing checksum');
      assert.equal(output.ETag, `"${md5Hex(body)}"`);
      await assertObject(`stream/${size}.bin`, body, 'text/plain', metadata);
    }
  });

  it('round-trips 0 B, 1 B and 5 MiB + 1 through `aws s3 cp` up and down, with --content-type and --metadata', { skip: located.skip }, async () => {
    for (const size of SIZES) {
      const body = markedPlaintext(size, MARKER);
      const file = join(stack.workDir, `cli-up-${size}.bin`);
      writeFileSync(file, body);
      const up = await stack.aws(['s3', 'cp', file, `s3://${BUCKET}/cli/${size}.bin`, '--content-type', 'text/csv', '--metadata', `owner=bob,note=${MARKER}`]);
      assert.equal(up.code, 0, `aws s3 cp up (${size} B) failed:\n${up.stderr}`);
      const down = join(stack.workDir, `cli-down-${size}.bin`);
      const got = await stack.aws(['s3', 'cp', `s3://${BUCKET}/cli/${size}.bin`, down]);
      assert.equal(got.code, 0, `aws s3 cp down (${size} B) failed:\n${got.stderr}`);
      assert.ok(readFileSync(down).equals(body), `aws s3 cp down returns the ${size} bytes put`);
      const head = await stack.aws(['s3api', 'head-object', '--bucket', BUCKET, '--key', `cli/${size}.bin`, '--output', 'json']);
      assert.equal(head.code, 0, head.stderr);
      const described = JSON.parse(head.stdout) as { ContentLength: number; ETag: string; ContentType: string; Metadata: Record<string, string> };
      assert.equal(described.ContentLength, size);
      assert.equal(described.ETag, `"${md5Hex(body)}"`);
      assert.equal(described.ContentType, 'text/csv');
      assert.deepEqual(described.Metadata, { owner: 'bob', note: MARKER });
    }
  });

  it('shows plaintext sizes in HEAD and ListObjectsV2 while the backing store holds larger ciphertext', async () => {
    const sizes = [0, 1, 100, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7];
    for (const size of sizes) await put(`sizes/${String(size).padStart(7, '0')}`, markedPlaintext(size, MARKER));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'sizes/' }));
    assert.deepEqual(listed.Contents?.map((entry) => [entry.Key, entry.Size]), sizes.map((size) => [`sizes/${String(size).padStart(7, '0')}`, size]));
    for (const entry of listed.Contents ?? []) {
      assert.equal(entry.ETag, (await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: entry.Key }))).ETag, `${entry.Key}: LIST and HEAD agree on the ETag`);
      const backing = stack.zones.eu.objectFile(stack.backingBucket('eu', BUCKET), entry.Key!);
      assert.ok(statSync(backing).size > entry.Size!, `${entry.Key}: the backing object (${statSync(backing).size} B) is larger than the plaintext (${entry.Size} B)`);
    }
  });

  describe('Range GETs at chunk edges', () => {
    const size = 3 * CHUNK + 1000;
    const body = markedPlaintext(size, MARKER);
    const key = 'ranges/object.bin';
    before(async () => { await put(key, body); });

    const cases: Array<[string, number, number]> = [
      ['bytes=0-0', 0, 0],
      [`bytes=${CHUNK - 1}-${CHUNK}`, CHUNK - 1, CHUNK],
      [`bytes=${CHUNK}-${2 * CHUNK - 1}`, CHUNK, 2 * CHUNK - 1],
      [`bytes=${CHUNK - 10}-${2 * CHUNK + 10}`, CHUNK - 10, 2 * CHUNK + 10],
      [`bytes=${size - 1}-${size - 1}`, size - 1, size - 1],
      ['bytes=-10', size - 10, size - 1],
      [`bytes=-${size + 5}`, 0, size - 1],
      ['bytes=100-', 100, size - 1],
      [`bytes=${3 * CHUNK}-`, 3 * CHUNK, size - 1],
      [`bytes=${size - 5}-${size + 100}`, size - 5, size - 1],
      [`bytes=0-${size - 1}`, 0, size - 1],
    ];
    for (const [range, first, last] of cases) {
      it(`${range} returns bytes ${first}-${last} of ${size}`, async () => {
        const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: range }));
        assert.equal(got.$metadata.httpStatusCode, 206);
        assert.equal(got.ContentRange, `bytes ${first}-${last}/${size}`);
        assert.equal(got.ContentLength, last - first + 1);
        const bytes = await bodyBytes(got.Body);
        assert.ok(bytes.equals(body.subarray(first, last + 1)), `${range}: the bytes are the plaintext's ${first}-${last}`);
      });
    }

    it('refuses a range that starts past the end with 416 InvalidRange', async () => {
      const error = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: `bytes=${size}-` })));
      assert.equal(error.code, 'InvalidRange');
      assert.equal(error.status, 416);
    });

    it('honours If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since on GET', async () => {
      const eTag = `"${md5Hex(body)}"`;
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      assert.ok(head.LastModified instanceof Date);
      const past = new Date(head.LastModified.getTime() - 3_600_000);
      const future = new Date(Date.now() + 3_600_000);

      const matched = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfMatch: eTag }));
      assert.ok((await bodyBytes(matched.Body)).equals(body));
      const wrongMatch = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfMatch: '"0123456789abcdef0123456789abcdef"' })));
      assert.equal(wrongMatch.status, 412);
      assert.equal(wrongMatch.code, 'PreconditionFailed');

      const notModified = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfNoneMatch: eTag })));
      assert.equal(notModified.status, 304);
      const otherTag = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfNoneMatch: '"0123456789abcdef0123456789abcdef"' }));
      assert.ok((await bodyBytes(otherTag.Body)).equals(body));

      const since = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfModifiedSince: future })));
      assert.equal(since.status, 304);
      const modified = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfModifiedSince: past }));
      assert.ok((await bodyBytes(modified.Body)).equals(body));

      const unmodified = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfUnmodifiedSince: past })));
      assert.equal(unmodified.status, 412);
      const ranged = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, IfMatch: eTag, Range: 'bytes=10-19' }));
      assert.ok((await bodyBytes(ranged.Body)).equals(body.subarray(10, 20)), 'If-Match with a Range returns the range');
    });
  });

  it('lists with prefix, delimiter (CommonPrefixes), MaxKeys and continuation tokens', async () => {
    const keys = ['list/a/1', 'list/a/2', 'list/b/1', 'list/c', 'list/d', 'list/e/f/g', 'listing-not-under-prefix'];
    for (const key of keys) await put(key, Buffer.from(`${MARKER} ${key}`));
    const byDelimiter = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', Delimiter: '/' }));
    assert.deepEqual(byDelimiter.Contents?.map((entry) => entry.Key), ['list/c', 'list/d']);
    assert.deepEqual(byDelimiter.CommonPrefixes?.map((entry) => entry.Prefix), ['list/a/', 'list/b/', 'list/e/']);
    assert.equal(byDelimiter.KeyCount, 5);
    assert.equal(byDelimiter.IsTruncated, false);

    const paged: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', MaxKeys: 2, ContinuationToken: token }));
      assert.ok((page.Contents?.length ?? 0) <= 2, 'MaxKeys 2 returns at most 2 keys');
      paged.push(...(page.Contents ?? []).map((entry) => entry.Key!));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated) assert.ok(token, 'a truncated page carries a NextContinuationToken');
      pages += 1;
      assert.ok(pages < 10, 'continuation terminates');
    } while (token);
    assert.deepEqual(paged, keys.filter((key) => key.startsWith('list/')).sort());
    assert.equal(pages, 3);

    const after = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', StartAfter: 'list/b/1' }));
    assert.deepEqual(after.Contents?.map((entry) => entry.Key), ['list/c', 'list/d', 'list/e/f/g']);
    const nested = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/a/' }));
    assert.deepEqual(nested.Contents?.map((entry) => [entry.Key, entry.Size]), [['list/a/1', MARKER.length + 9], ['list/a/2', MARKER.length + 9]]);
  });

  it('creates, lists, heads and deletes buckets; DeleteBucket refuses a bucket that is not empty', async () => {
    const bucket = 'made-here';
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const buckets = await s3.send(new ListBucketsCommand({}));
    const names = buckets.Buckets?.map((entry) => entry.Name) ?? [];
    assert.ok(names.includes(bucket) && names.includes(BUCKET), `ListBuckets shows client bucket names: ${names.join(', ')}`);
    assert.ok(!names.some((name) => name?.startsWith('eu-') || name?.startsWith('us-')), 'ListBuckets shows no backing bucket names');
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    assert.ok(statSync(join(stack.zones.eu.directory, stack.backingBucket('eu', bucket))).isDirectory(), 'the backing bucket exists in the default zone');

    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'only', Body: Buffer.from(MARKER) }));
    const notEmpty = await s3Error(s3.send(new DeleteBucketCommand({ Bucket: bucket })));
    assert.equal(notEmpty.code, 'BucketNotEmpty');
    assert.equal(notEmpty.status, 409);
    await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'only' }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    const gone = await s3Error(s3.send(new HeadBucketCommand({ Bucket: bucket })));
    assert.equal(gone.status, 404);
    const missing = await s3Error(s3.send(new ListObjectsV2Command({ Bucket: bucket })));
    assert.equal(missing.code, 'NoSuchBucket');
    const missingPut = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'never-made', Key: 'k', Body: Buffer.from('x') })));
    assert.equal(missingPut.code, 'NoSuchBucket');
  });

  it('deletes objects one by one and in batches', async () => {
    await put('delete/one', Buffer.from(`${MARKER} one`));
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'delete/one' }));
    const gone = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'delete/one' })));
    assert.equal(gone.code, 'NoSuchKey');
    assert.equal(gone.status, 404);
    const headGone = await s3Error(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'delete/one' })));
    assert.equal(headGone.status, 404);
    // S3 answers a delete of a missing key with 204 too.
    await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'delete/never-there' }));

    for (const name of ['a', 'b', 'c']) await put(`delete/batch/${name}`, Buffer.from(`${MARKER} ${name}`));
    const batch = await s3.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [
      { Key: 'delete/batch/a' }, { Key: 'delete/batch/b' }, { Key: 'delete/batch/c' }, { Key: 'delete/batch/missing' }] } }));
    assert.deepEqual(batch.Deleted?.map((entry) => entry.Key).sort(), ['delete/batch/a', 'delete/batch/b', 'delete/batch/c', 'delete/batch/missing']);
    assert.equal(batch.Errors?.length ?? 0, 0);
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'delete/' }));
    assert.equal(left.KeyCount, 0);
    assert.deepEqual(stack.zones.eu.objectKeys(stack.backingBucket('eu', BUCKET)).filter((key) => key.startsWith('delete/')), []);
  });

  it('copies an object (CopyObject): the copy reads back with its metadata and is bound to its new name', async () => {
    const body = markedPlaintext(2 * CHUNK + 3, MARKER);
    await put('copy/source', body, { contentType: 'image/png', metadata: { owner: 'carol' } });
    await s3.send(new CreateBucketCommand({ Bucket: 'copies' }));
    const copied = await s3.send(new CopyObjectCommand({ Bucket: 'copies', Key: 'copy/target', CopySource: `${BUCKET}/copy/source` }));
    assert.equal(copied.CopyObjectResult?.ETag, `"${md5Hex(body)}"`);
    const got = await s3.send(new GetObjectCommand({ Bucket: 'copies', Key: 'copy/target' }));
    assert.ok((await bodyBytes(got.Body)).equals(body));
    assert.equal(got.ContentType, 'image/png');
    assert.deepEqual(got.Metadata, { owner: 'carol' });
    assert.equal(got.ETag, `"${md5Hex(body)}"`);

    const replaced = await s3.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copy/replaced', CopySource: `${BUCKET}/copy/source`,
      MetadataDirective: 'REPLACE', ContentType: 'text/plain', Metadata: { owner: 'dave' } }));
    assert.ok(replaced.CopyObjectResult?.ETag);
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'copy/replaced' }));
    assert.equal(head.ContentType, 'text/plain');
    assert.deepEqual(head.Metadata, { owner: 'dave' });
    assert.equal(head.ContentLength, body.length);

    // The copy's backing object moved under a third name must not decrypt there: it is bound to copy/target.
    const eu = stack.zones.eu;
    const [from, to] = [stack.backingBucket('eu', 'copies'), stack.backingBucket('eu', BUCKET)];
    await put('copy/elsewhere', markedPlaintext(body.length, MARKER));
    copyFileSync(eu.objectFile(from, 'copy/target'), eu.objectFile(to, 'copy/elsewhere'));
    copyFileSync(eu.metadataFile(from, 'copy/target'), eu.metadataFile(to, 'copy/elsewhere'));
    const moved = await readObject(s3, { Bucket: BUCKET, Key: 'copy/elsewhere' });
    if (moved.kind === 'body') {
      assert.ok(!moved.bytes.equals(body), 'a copied object moved to another name must not decrypt there');
      assert.ok(moved.streamError || moved.bytes.length < (moved.contentLength ?? 0), `GET of a moved object must fail: ${JSON.stringify({ ...moved, bytes: moved.bytes.length })}`);
      assert.equal(moved.bytes.length, 0, 'no plaintext of a moved object is delivered');
    } else {
      assert.ok((moved.status ?? 0) >= 400, `GET of a moved object fails: ${moved.code}`);
    }
  });

  it('left no plaintext, metadata value or marker in either backing store, and no marker or client secret in the proxy output', async () => {
    for (const zone of ['eu', 'us'] as const) {
      assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `zone ${zone}: files holding the marker`);
    }
    // The scan itself works: the same marker written straight to the backing store is found.
    const direct = stack.directS3('eu');
    await direct.send(new CreateBucketCommand({ Bucket: 'scan-check' }));
    await direct.send(new PutObjectCommand({ Bucket: 'scan-check', Key: 'clear', Body: Buffer.from(`clear ${MARKER}`) }));
    assert.equal(stack.zones.eu.filesContaining(MARKER).length, 1);
    await direct.send(new DeleteObjectCommand({ Bucket: 'scan-check', Key: 'clear' }));
    await direct.send(new DeleteBucketCommand({ Bucket: 'scan-check' }));
    assert.ok(!stack.proxyOutput().includes(MARKER), 'the proxy logged plaintext');
    assert.ok(!stack.proxyOutput().includes(stack.clientCredentials.secretAccessKey), 'the proxy logged a client secret');
  });
});
