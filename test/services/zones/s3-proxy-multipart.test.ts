// Multipart uploads through the S3 zone proxy: the SDK's Create/UploadPart/Complete by hand and the AWS CLI's own
// 8 MiB splitting of a 100 MiB file; whole and ranged reads, ListParts, ListMultipartUploads, Abort; no plaintext behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand,
  HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, ListPartsCommand, UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import {
  bodyBytes, locateAwsCli, markedPlaintext, randomMarker, s3Error, sendWithHeaders, startZoneStack, ZONE_NAMES, type ZoneStack,
} from '../../helpers/zone-proxy.ts';

const located = await locateAwsCli();
const MiB = 1024 * 1024;
const BUCKET = 'uploads';
const MARKER = randomMarker('MULTIPART');

async function sha256File(path: string): Promise<string> {
  const hash = nodeCrypto.createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

describe('S3 zone proxy: multipart uploads', () => {
  let stack: ZoneStack;
  let s3: S3Client;

  before(async () => {
    stack = await startZoneStack();
    s3 = stack.s3();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    await stack?.dispose();
  });

  describe('by hand with the SDK: parts of 5 MiB, 5 MiB (streamed, aws-chunked) and 1 B', () => {
    const key = 'by-hand/object.bin';
    const parts = [markedPlaintext(5 * MiB, MARKER), markedPlaintext(5 * MiB, MARKER), Buffer.from('z')];
    const whole = Buffer.concat(parts);
    let uploadId: string;
    let finalETag: string;

    const eTags: string[] = [];

    it('uploads three parts (the second streamed aws-chunked); ListMultipartUploads and ListParts show them', async () => {
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ContentType: 'application/x-tar',
        Metadata: { owner: 'erin', note: MARKER } }));
      assert.ok(created.UploadId);
      uploadId = created.UploadId;
      assert.equal(created.Key, key);

      const first = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 1, Body: parts[0] }));
      eTags.push(first.ETag!);
      const pieces = Array.from({ length: 80 }, (_, index) => parts[1].subarray(index * 65536, (index + 1) * 65536));
      const second = await sendWithHeaders(s3, new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 2,
        Body: Readable.from(pieces), ContentLength: parts[1].length }));
      assert.match(second.requestHeaders['content-encoding'] ?? '', /aws-chunked/, 'part 2 went aws-chunked');
      eTags.push(second.output.ETag!);
      const third = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, PartNumber: 3, Body: parts[2] }));
      eTags.push(third.ETag!);
      // S3 gives a part's MD5 only for unencrypted data (SSE-KMS ETags are not MD5s): a quoted hex digest, one per part.
      for (const eTag of eTags) assert.match(eTag, /^"[0-9a-f]{32}"$/);
      assert.equal(new Set(eTags).size, 3);

      const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      const listed = uploads.Uploads?.find((upload) => upload.UploadId === uploadId);
      assert.ok(listed, `ListMultipartUploads shows the upload: ${JSON.stringify(uploads.Uploads)}`);
      assert.equal(listed.Key, key);

      const listedParts = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId }));
      assert.deepEqual(listedParts.Parts?.map((part) => [part.PartNumber, part.Size, part.ETag]),
        parts.map((part, index) => [index + 1, part.length, eTags[index]]), 'ListParts shows plaintext sizes and the part ETags');
      const missing = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })));
      assert.equal(missing.code, 'NoSuchKey', 'an unfinished upload is not an object');
    });

    it('pages ListParts with MaxParts and PartNumberMarker', async () => {
      const firstPage = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MaxParts: 2 }));
      assert.deepEqual(firstPage.Parts?.map((part) => part.PartNumber), [1, 2]);
      assert.equal(firstPage.IsTruncated, true);
      assert.equal(String(firstPage.NextPartNumberMarker), '2');
      const secondPage = await s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId,
        PartNumberMarker: firstPage.NextPartNumberMarker }));
      assert.deepEqual(secondPage.Parts?.map((part) => part.PartNumber), [3]);
      assert.equal(secondPage.IsTruncated, false);
    });

    it('completes with a multipart ETag and leaves ListMultipartUploads', async () => {
      const completed = await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId,
        MultipartUpload: { Parts: eTags.map((eTag, index) => ({ PartNumber: index + 1, ETag: eTag })) } }));
      assert.match(completed.ETag ?? '', /^"[0-9a-f]{32}-3"$/, 'a multipart ETag: a digest, a dash and the part count');
      finalETag = completed.ETag!;
      const after = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      assert.ok(!after.Uploads?.some((upload) => upload.UploadId === uploadId), 'a completed upload is no longer listed');
    });

    it('reads the object back whole, with HEAD and LIST showing the plaintext size', async () => {
      const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      assert.equal(got.ContentLength, whole.length);
      assert.equal(got.ETag, finalETag);
      assert.equal(got.ContentType, 'application/x-tar');
      assert.deepEqual(got.Metadata, { owner: 'erin', note: MARKER });
      assert.ok((await bodyBytes(got.Body)).equals(whole), 'GET returns the three parts joined');
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      assert.equal(head.ContentLength, whole.length);
      assert.equal(head.ETag, finalETag);
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'by-hand/' }));
      assert.deepEqual(listed.Contents?.map((entry) => [entry.Key, entry.Size, entry.ETag]), [[key, whole.length, finalETag]]);
    });

    const ranges: Array<[string, number, number]> = [
      ['first byte', 0, 0],
      ['across the part 1/part 2 boundary', 5 * MiB - 10, 5 * MiB + 9],
      ['inside part 2', 5 * MiB + 300_000, 5 * MiB + 900_000],
      ['the last byte of part 2 and the 1-byte part 3', 10 * MiB - 1, 10 * MiB],
      ['only part 3', 10 * MiB, 10 * MiB],
      ['all of it', 0, 10 * MiB],
    ];
    for (const [what, first, last] of ranges) {
      it(`reads a range: ${what} (bytes=${first}-${last})`, async () => {
        const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: `bytes=${first}-${last}` }));
        assert.equal(got.ContentRange, `bytes ${first}-${last}/${whole.length}`);
        assert.ok((await bodyBytes(got.Body)).equals(whole.subarray(first, last + 1)));
      });
    }

    it('refuses Complete with a part that was never uploaded, and UploadPart to an unknown upload', async () => {
      const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'by-hand/bad-complete' }));
      const part = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'by-hand/bad-complete', UploadId: created.UploadId, PartNumber: 1,
        Body: Buffer.from(`only part ${MARKER}`) }));
      const invalid = await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'by-hand/bad-complete',
        UploadId: created.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }, { PartNumber: 2, ETag: part.ETag }] } })));
      assert.equal(invalid.code, 'InvalidPart');
      assert.equal(invalid.status, 400);
      const unknown = await s3Error(s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'by-hand/bad-complete', UploadId: 'no-such-upload-id',
        PartNumber: 1, Body: Buffer.from('x') })));
      assert.equal(unknown.code, 'NoSuchUpload');
      assert.equal(unknown.status, 404);
      await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'by-hand/bad-complete', UploadId: created.UploadId }));
    });
  });

  it('aborts an upload: it leaves the listings, its parts are gone, and no object appears', async () => {
    const key = 'aborted/object.bin';
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId, PartNumber: 1, Body: markedPlaintext(5 * MiB, MARKER) }));
    const listed = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    assert.ok(listed.Uploads?.some((upload) => upload.UploadId === created.UploadId));
    await s3.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId }));
    const after = await s3.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    assert.ok(!after.Uploads?.some((upload) => upload.UploadId === created.UploadId), 'an aborted upload is no longer listed');
    const parts = await s3Error(s3.send(new ListPartsCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId })));
    assert.equal(parts.code, 'NoSuchUpload');
    assert.equal(parts.status, 404);
    const object = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })));
    assert.equal(object.code, 'NoSuchKey');
    const complete = await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: '"00000000000000000000000000000000"' }] } })));
    assert.equal(complete.code, 'NoSuchUpload');
  });

  describe('100 MiB through `aws s3 cp` (the CLI uploads 8 MiB parts, 10 at a time)', { skip: located.skip }, () => {
    const size = 100 * MiB;
    const key = 'cli/big.bin';
    let upload: string;
    let plaintext: Buffer;

    before(() => {
      plaintext = markedPlaintext(size, MARKER, 1024 * 1024);
      upload = join(stack.workDir, 'big-up.bin');
      writeFileSync(upload, plaintext);
    });

    it('uploads with `aws s3 cp` and reads back the same bytes with `aws s3 cp`', async () => {
      const up = await stack.aws(['s3', 'cp', upload, `s3://${BUCKET}/${key}`, '--no-progress']);
      assert.equal(up.code, 0, `aws s3 cp up failed:\n${up.stderr}`);
      const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      assert.equal(head.ContentLength, size);
      assert.match(head.ETag ?? '', /^"[0-9a-f]{32}-13"$/, 'a multipart ETag of 13 parts of 8 MiB');
      const down = join(stack.workDir, 'big-down.bin');
      const got = await stack.aws(['s3', 'cp', `s3://${BUCKET}/${key}`, down, '--no-progress']);
      assert.equal(got.code, 0, `aws s3 cp down failed:\n${got.stderr}`);
      assert.equal(await sha256File(down), nodeCrypto.createHash('sha256').update(plaintext).digest('hex'), 'the download is the upload');
    });

    it('reads ranges of it with the SDK and with `aws s3api get-object --range`', async () => {
      const cases: Array<[number, number]> = [[0, 0], [8 * MiB - 5, 8 * MiB + 4], [50 * MiB + 123, 50 * MiB + 262_144 * 2 + 7], [size - 1, size - 1]];
      for (const [first, last] of cases) {
        const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: `bytes=${first}-${last}` }));
        assert.equal(got.ContentRange, `bytes ${first}-${last}/${size}`);
        assert.ok((await bodyBytes(got.Body)).equals(plaintext.subarray(first, last + 1)), `bytes=${first}-${last}`);
      }
      const out = join(stack.workDir, 'range.bin');
      const ranged = await stack.aws(['s3api', 'get-object', '--bucket', BUCKET, '--key', key, '--range', `bytes=${96 * MiB}-${96 * MiB + 999}`, out,
        '--output', 'json']);
      assert.equal(ranged.code, 0, ranged.stderr);
      assert.equal((JSON.parse(ranged.stdout) as { ContentLength: number }).ContentLength, 1000);
      assert.ok(readFileSync(out).equals(plaintext.subarray(96 * MiB, 96 * MiB + 1000)));
      const listed = await stack.aws(['s3api', 'list-objects-v2', '--bucket', BUCKET, '--prefix', 'cli/', '--output', 'json']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual((JSON.parse(listed.stdout) as { Contents: Array<{ Key: string; Size: number }> }).Contents.map((entry) => [entry.Key, entry.Size]),
        [[key, size]]);
    });
  });

  it('left no plaintext or metadata value in either backing store (objects, parts, upload records)', async () => {
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `zone ${zone}: files holding the marker`);
    assert.ok(!stack.proxyOutput().includes(MARKER), 'the proxy logged plaintext');
  });
});
