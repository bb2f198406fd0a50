// The S3 zone proxy's less travelled API: virtual-host-style requests, ListObjects (v1), GetBucketLocation, and
// multipart uploads that data policies judge on completion (the assembled object is scanned before it is placed).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetBucketLocationCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsCommand, PutObjectCommand, UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, markedPlaintext, randomMarker, rawS3Request, s3Error, startZoneStack, ZONE_NAMES, type ZoneStack } from '../../helpers/zone-proxy.ts';

const MARKER = randomMarker('EXTRAS');
const CARD = '4111 1111 1111 1111';
const SSN = '123-45-6789';
const PART = 5 * 1024 * 1024;

async function getBytes(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  return bodyBytes((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body);
}

async function multipartUpload(s3: S3Client, bucket: string, key: string, parts: Buffer[]): Promise<void> {
  const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'text/plain' }));
  const done = [];
  for (const [index, body] of parts.entries()) {
    const part = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: body }));
    done.push({ PartNumber: index + 1, ETag: part.ETag });
  }
  await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: created.UploadId, MultipartUpload: { Parts: done } }));
}

describe('S3 zone proxy: virtual hosts, ListObjects v1, bucket location, multipart under policies', () => {
  let stack: ZoneStack;
  let s3: S3Client;

  before(async () => {
    stack = await startZoneStack({
      quarantine: { bucket: 'quarantine' },
      policies: [
        { name: 'no-cards', match: { bucket: 'scanned', detectors: ['payment_card'] }, action: 'deny' },
        { name: 'hold-ssn', match: { bucket: 'scanned', detectors: ['us_ssn'] }, action: ['quarantine', 'log'] },
      ],
    });
    s3 = stack.s3();
    for (const bucket of ['vhost', 'listing', 'scanned', 'quarantine']) await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  });

  after(async () => {
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `no plaintext in zone ${zone}`);
    await stack.dispose();
  });

  it('answers virtual-host-style requests (bucket in the Host header) like path-style ones', async () => {
    const port = new URL(stack.endpoint).port;
    const body = Buffer.from(`virtual ${MARKER}`);
    const put = await rawS3Request(stack, { method: 'PUT', path: '/notes/v.txt', headers: { host: `vhost.localhost:${port}`, 'content-type': 'text/plain' }, body });
    assert.equal(put.status, 200, put.body.toString());
    const viaPath = await getBytes(s3, 'vhost', 'notes/v.txt');
    assert.deepEqual(viaPath, body);
    const get = await rawS3Request(stack, { method: 'GET', path: '/notes/v.txt', headers: { host: `vhost.localhost:${port}` } });
    assert.equal(get.status, 200);
    assert.deepEqual(get.body, body);
    const list = await rawS3Request(stack, { method: 'GET', path: '/', query: { 'list-type': '2' }, headers: { host: `vhost.localhost:${port}` } });
    assert.equal(list.status, 200);
    assert.match(list.body.toString(), new RegExp(`<Key>notes/v\\.txt</Key><LastModified>[^<]+</LastModified><ETag>[^<]+</ETag><Size>${body.length}</Size>`));
    const missing = await rawS3Request(stack, { method: 'GET', path: '/x', headers: { host: `no-such-bucket.localhost:${port}` } });
    assert.equal(missing.status, 404);
    assert.match(missing.body.toString(), /<Code>NoSuchBucket<\/Code>/);
  });

  it('lists with ListObjects v1: markers, delimiter and truncation', async () => {
    for (const key of ['a/1', 'a/2', 'b', 'c', 'd']) await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: key, Body: `${key} ${MARKER}` }));
    const first = await s3.send(new ListObjectsCommand({ Bucket: 'listing', Delimiter: '/', MaxKeys: 2 }));
    assert.deepEqual(first.CommonPrefixes?.map((entry) => entry.Prefix), ['a/']);
    assert.deepEqual(first.Contents?.map((entry) => entry.Key), ['b']);
    assert.equal(first.IsTruncated, true);
    assert.ok(first.NextMarker);
    const second = await s3.send(new ListObjectsCommand({ Bucket: 'listing', Delimiter: '/', Marker: first.NextMarker }));
    assert.deepEqual(second.Contents?.map((entry) => entry.Key), ['c', 'd']);
    assert.equal(second.IsTruncated, false);
    const sizes = await s3.send(new ListObjectsCommand({ Bucket: 'listing', Prefix: 'a/' }));
    assert.deepEqual(sizes.Contents?.map((entry) => [entry.Key, entry.Size]), [['a/1', 3 + 1 + MARKER.length], ['a/2', 3 + 1 + MARKER.length]]);
  });

  it('answers GetBucketLocation for a bucket it has, NoSuchBucket otherwise', async () => {
    const location = await s3.send(new GetBucketLocationCommand({ Bucket: 'listing' }));
    // S3 answers an empty constraint for us-east-1 and the region's name otherwise.
    const expected = stack.region === 'us-east-1' ? undefined : stack.region;
    assert.equal(location.LocationConstraint || undefined, expected);
    assert.equal((await s3Error(s3.send(new GetBucketLocationCommand({ Bucket: 'absent-bucket' })))).code, 'NoSuchBucket');
  });

  it('scans a multipart object on completion: a card in the last part denies it, nothing is left behind', async () => {
    const parts = [markedPlaintext(PART, MARKER), Buffer.from(`tail ${MARKER} pay ${CARD} now`)];
    const refused = await s3Error(multipartUpload(s3, 'scanned', 'cards.txt', parts));
    assert.equal(refused.code, 'AccessDenied');
    assert.match(refused.message, /no-cards/);
    assert.equal((await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'scanned', Key: 'cards.txt' })))).status, 404);
    for (const zone of ZONE_NAMES) {
      const keys = stack.zones[zone].objectKeys(`${zone}-scanned`).filter((key) => !key.startsWith('.trustplane-uploads/') && !key.startsWith('.trustplane-parts/'));
      assert.deepEqual(keys, [], `zone ${zone} keeps nothing of the denied object`);
    }
  });

  it('scans across a part boundary: an SSN split between two parts quarantines the object', async () => {
    const first = markedPlaintext(PART, MARKER);
    const text = Buffer.from(`employee ssn ${SSN}`);
    const split = text.length - 6;
    text.copy(first, PART - split, 0, split);
    const parts = [first, Buffer.concat([text.subarray(split), Buffer.from(` ${MARKER}`)])];
    await multipartUpload(s3, 'scanned', 'hr.txt', parts);
    assert.equal((await s3Error(s3.send(new HeadObjectCommand({ Bucket: 'scanned', Key: 'hr.txt' })))).status, 404);
    const held = await getBytes(s3, 'quarantine', 'scanned/hr.txt');
    assert.deepEqual(held, Buffer.concat(parts));
    const audit = readFileSync(stack.auditLogPath, 'utf8');
    assert.match(audit, /"operation":"CompleteMultipartUpload".*"outcome":"quarantined".*"us_ssn"/);
    assert.ok(!audit.includes(SSN));
  });

  it('places a clean multipart object under scanning rules where it belongs', async () => {
    const parts = [markedPlaintext(PART, MARKER), Buffer.from(`clean ${MARKER}`)];
    await multipartUpload(s3, 'scanned', 'clean.bin', parts);
    assert.deepEqual(await getBytes(s3, 'scanned', 'clean.bin'), Buffer.concat(parts));
  });
});
