// The S3 zone proxy's less travelled API: virtual-host-style requests, ListObjects (v1), GetBucketLocation, and
// multipart uploads that data policies judge on completion (the assembled object is scanned before it is placed).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetBucketLocationCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsCommand, ListObjectsV2Command, ListPartsCommand, PutObjectCommand, UploadPartCommand, type S3Client,
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

  it('never resolves dot segments: x/../target is refused and never reaches target', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'target', Body: `original ${MARKER}` }));
    const raw = await rawS3Request(stack, { method: 'PUT', path: '/listing/x/../target', body: Buffer.from(`intruder ${MARKER}`) });
    assert.equal(raw.status, 400, raw.body.toString());
    assert.match(raw.body.toString(), /<Code>InvalidArgument<\/Code>/);
    assert.equal((await s3Error(s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'dir/./x', Body: 'x' })))).code, 'InvalidArgument');
    assert.equal((await getBytes(s3, 'listing', 'target')).toString(), `original ${MARKER}`);
    const bucketEscape = await rawS3Request(stack, { method: 'DELETE', path: '/listing/../vhost' });
    assert.notEqual(bucketEscape.status, 204);
    await s3.send(new HeadObjectCommand({ Bucket: 'vhost', Key: 'notes/v.txt' }));
  });

  it('refuses object sub-resources it does not serve (tagging, acl) without touching the object', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'tagged', Body: `keep ${MARKER}` }));
    const tagging = '<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>';
    const put = await rawS3Request(stack, { method: 'PUT', path: '/listing/tagged', query: { tagging: '' }, body: Buffer.from(tagging) });
    assert.equal(put.status, 501);
    assert.match(put.body.toString(), /<Code>NotImplemented<\/Code>/);
    const del = await rawS3Request(stack, { method: 'DELETE', path: '/listing/tagged', query: { tagging: '' } });
    assert.equal(del.status, 501);
    const acl = await rawS3Request(stack, { method: 'GET', path: '/listing/tagged', query: { acl: '' } });
    assert.equal(acl.status, 501);
    assert.equal((await getBytes(s3, 'listing', 'tagged')).toString(), `keep ${MARKER}`);
  });

  it('honours If-None-Match: * and If-Match on PUT', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'once', Body: `first ${MARKER}` }));
    const again = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'once', Body: 'second', IfNoneMatch: '*' })));
    assert.equal(again.status, 412);
    const wrong = await s3Error(s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'once', Body: 'third', IfMatch: '"0123456789abcdef0123456789abcdef"' })));
    assert.equal(wrong.status, 412);
    assert.equal((await getBytes(s3, 'listing', 'once')).toString(), `first ${MARKER}`);
  });

  it('refuses what the backing store made up: a foreign object, a copy replayed under another name, an altered upload record', async () => {
    const direct = stack.directS3('eu');
    await direct.send(new PutObjectCommand({ Bucket: 'eu-listing', Key: 'foreign', Body: 'planted' }));
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'listing', Key: 'foreign' })))).code, 'InvalidObjectState');

    await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: 'secret', Body: `payroll ${MARKER}` }));
    const head = await direct.send(new HeadObjectCommand({ Bucket: 'eu-listing', Key: 'secret' }));
    const object = await direct.send(new GetObjectCommand({ Bucket: 'eu-listing', Key: 'secret' }));
    await direct.send(new PutObjectCommand({ Bucket: 'eu-vhost', Key: 'listing/secret', Body: Buffer.from(await object.Body!.transformToByteArray()),
      Metadata: { ...head.Metadata, 'tp-origin': '1' } }));
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: 'vhost', Key: 'listing/secret' })))).code, 'InvalidObjectState');

    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'listing', Key: 'upload' }));
    const recordKey = `.trustplane-uploads/${createHash('sha256').update(created.UploadId as string).digest('hex')}`;
    const recordFile = stack.zones.eu.objectFile('eu-listing', recordKey);
    const record = JSON.parse(readFileSync(recordFile, 'utf8')) as { sealed: string };
    const flipped = Buffer.from(record.sealed, 'base64url');
    flipped[flipped.length - 20] ^= 1;
    writeFileSync(recordFile, JSON.stringify({ ...record, sealed: flipped.toString('base64url') }));
    const refused = await s3Error(s3.send(new UploadPartCommand({ Bucket: 'listing', Key: 'upload', UploadId: created.UploadId, PartNumber: 1,
      Body: Buffer.from(`part ${MARKER}`) })));
    assert.equal(refused.code, 'InvalidObjectState');
  });

  it('refuses a multipart completion whose metadata cannot be stored, leaving the older object and the upload as they were', async () => {
    const key = `long/${`${'k'.repeat(99)}/`.repeat(7)}end`;
    await s3.send(new PutObjectCommand({ Bucket: 'listing', Key: key, Body: `older ${MARKER}` }));
    const metadata = { note: 'm'.repeat(900) };
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'listing', Key: key, Metadata: metadata }));
    const part = await s3.send(new UploadPartCommand({ Bucket: 'listing', Key: key, UploadId: created.UploadId, PartNumber: 1, Body: Buffer.from(`newer ${MARKER}`) }));
    const refused = await s3Error(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'listing', Key: key, UploadId: created.UploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } })));
    assert.equal(refused.code, 'MetadataTooLarge');
    assert.equal((await getBytes(s3, 'listing', key)).toString(), `older ${MARKER}`);
    const parts = await s3.send(new ListPartsCommand({ Bucket: 'listing', Key: key, UploadId: created.UploadId }));
    assert.equal(parts.Parts?.length, 1, 'the upload is still open');
    const listing = await s3.send(new ListObjectsV2Command({ Bucket: 'listing', Prefix: 'long/' }));
    assert.deepEqual(listing.Contents?.map((entry) => entry.Key), [key]);
  });

  it('places a clean multipart object under scanning rules where it belongs', async () => {
    const parts = [markedPlaintext(PART, MARKER), Buffer.from(`clean ${MARKER}`)];
    await multipartUpload(s3, 'scanned', 'clean.bin', parts);
    assert.deepEqual(await getBytes(s3, 'scanned', 'clean.bin'), Buffer.concat(parts));
  });
});
