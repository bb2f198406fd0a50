// Whoever controls a backing store cannot make the S3 zone proxy deliver wrong bytes: edits made straight to s3rver's
// files (a flipped byte, truncation, an appended byte, swapped objects, a dropped part) make GETs fail, never lie.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readdirSync, readFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, markedPlaintext, randomMarker, readObject, startZoneStack, ZONE_NAMES, type ReadOutcome, type ZoneStack } from '../../helpers/zone-proxy.ts';

const CHUNK = 65536;
const TAG = 16;
const MiB = 1024 * 1024;
const BUCKET = 'ledger';
const MARKER = randomMarker('TAMPER');
const SIZE = 4 * CHUNK + 5000;

/** Where the TPENC stream starts in a backing object, and its header's length and chunk size (format v1, see chunked-aead.ts). */
interface ChunkLayout {
  start: number;
  headerLength: number;
  chunkSize: number;
  algorithm: number;
}

function parseLayout(bytes: Buffer): ChunkLayout {
  const start = bytes.subarray(0, 65536).indexOf('TPENC', 0, 'latin1');
  assert.ok(start >= 0, 'the backing object holds a TPENC stream');
  assert.equal(bytes[start + 5], 1, 'TPENC format version 1');
  const chunkSize = bytes.readUInt32BE(start + 7);
  const contextLength = bytes.readUInt16BE(start + 43);
  const wrappedLength = bytes.readUInt16BE(start + 45 + contextLength);
  return { start, headerLength: 47 + contextLength + wrappedLength, chunkSize, algorithm: bytes[start + 6] };
}

/** Byte offset in the backing object where encrypted chunk `index` begins. */
const chunkOffset = (layout: ChunkLayout, index: number) => layout.start + layout.headerLength + index * (layout.chunkSize + TAG);

/**
 * The rule for a tampered object: the client sees an S3 error, or a body that ends short of its Content-Length (or
 * fails mid-stream); what it does receive is a prefix of the true plaintext, no longer than `safePrefix` bytes
 * (the chunks before the damage), and never the bytes of another object.
 */
function assertRefused(outcome: ReadOutcome, expected: Buffer, safePrefix: number, what: string): void {
  if (outcome.kind === 'error') {
    assert.ok((outcome.status ?? 0) >= 400, `${what}: error status ${outcome.status}`);
    return;
  }
  const summary = JSON.stringify({ ...outcome, bytes: outcome.bytes.length });
  assert.ok(outcome.streamError !== undefined || outcome.bytes.length < (outcome.contentLength ?? Infinity),
    `${what}: the response completed as if nothing were wrong: ${summary}`);
  assert.ok(!outcome.stalled, `${what}: the response stopped short but left the connection hanging instead of closing it: ${summary}`);
  assert.ok(outcome.bytes.length <= safePrefix, `${what}: ${outcome.bytes.length} bytes delivered, beyond the ${safePrefix} before the damage`);
  assert.ok(outcome.bytes.equals(expected.subarray(0, outcome.bytes.length)), `${what}: delivered bytes that are not the object's plaintext`);
}

describe('S3 zone proxy: tampering at the backing store', () => {
  let stack: ZoneStack;
  let s3: S3Client;
  let counter = 0;
  const backingBucket = () => stack.backingBucket('eu', BUCKET);
  const objectFile = (key: string) => stack.zones.eu.objectFile(backingBucket(), key);

  /** Puts a fresh SIZE-byte object and returns its key, plaintext and the layout of its backing object. */
  async function freshObject(size = SIZE): Promise<{ key: string; plaintext: Buffer; layout: ChunkLayout; file: string }> {
    counter += 1;
    const key = `victim-${counter}.bin`;
    const plaintext = markedPlaintext(size, MARKER);
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: plaintext, Metadata: { note: MARKER } }));
    const file = objectFile(key);
    const layout = parseLayout(readFileSync(file));
    assert.equal(layout.chunkSize, CHUNK, 'the zone.yaml chunk size is used');
    // Untampered, it reads back: the failures below are the tampering's doing.
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.ok((await bodyBytes(got.Body)).equals(plaintext));
    return { key, plaintext, layout, file };
  }

  const whole = (key: string) => readObject(s3, { Bucket: BUCKET, Key: key });
  const range = (key: string, first: number, last: number) => readObject(s3, { Bucket: BUCKET, Key: key, Range: `bytes=${first}-${last}` });

  before(async () => {
    stack = await startZoneStack({ chunkSize: CHUNK });
    s3 = stack.s3();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    await stack?.dispose();
  });

  it('one flipped ciphertext byte in chunk 2: whole GET stops before chunk 2, Range GETs of chunk 2 fail, chunk 0 still reads', async () => {
    const { key, plaintext, layout, file } = await freshObject();
    const bytes = readFileSync(file);
    bytes[chunkOffset(layout, 2) + 100] ^= 0x01;
    writeFileSync(file, bytes);
    assertRefused(await whole(key), plaintext, 2 * CHUNK, 'whole GET');
    assertRefused(await range(key, 2 * CHUNK, 2 * CHUNK + 10), plaintext.subarray(2 * CHUNK), 0, 'Range GET inside chunk 2');
    assertRefused(await range(key, CHUNK, 3 * CHUNK - 1), plaintext.subarray(CHUNK), CHUNK, 'Range GET of chunks 1-2');
    // Chunk 0 is intact and a Range GET reads only the chunks it needs.
    const first = await range(key, 0, CHUNK - 1);
    assert.equal(first.kind, 'body');
    assert.ok(first.kind === 'body' && first.bytes.equals(plaintext.subarray(0, CHUNK)) && first.streamError === undefined,
      'a Range GET of an intact chunk still succeeds');
  });

  it('one flipped byte in the TPENC header: nothing is delivered', async () => {
    const { key, plaintext, layout, file } = await freshObject();
    const bytes = readFileSync(file);
    bytes[layout.start + 20] ^= 0x80; // inside the salt
    writeFileSync(file, bytes);
    assertRefused(await whole(key), plaintext, 0, 'whole GET');
    assertRefused(await range(key, 0, 99), plaintext, 0, 'Range GET of chunk 0');
  });

  it('truncated at a chunk boundary: GET stops before the missing chunks, Range GETs past the cut fail', async () => {
    const { key, plaintext, layout, file } = await freshObject();
    truncateSync(file, chunkOffset(layout, 2));
    assertRefused(await whole(key), plaintext, 2 * CHUNK, 'whole GET');
    assertRefused(await range(key, SIZE - 1, SIZE - 1), plaintext.subarray(SIZE - 1), 0, 'Range GET of the last byte');
    assertRefused(await range(key, CHUNK, 2 * CHUNK), plaintext.subarray(CHUNK), CHUNK, 'Range GET across the cut');
  });

  it('truncated in the middle of a chunk: GET stops before the cut chunk', async () => {
    const { key, plaintext, layout, file } = await freshObject();
    truncateSync(file, chunkOffset(layout, 2) + 100);
    assertRefused(await whole(key), plaintext, 2 * CHUNK, 'whole GET');
    assertRefused(await range(key, 2 * CHUNK, 2 * CHUNK + 50), plaintext.subarray(2 * CHUNK), 0, 'Range GET of the cut chunk');
  });

  it('one byte appended: GET fails before the end', async () => {
    const { key, plaintext, file } = await freshObject();
    appendFileSync(file, Buffer.from([0x00]));
    assertRefused(await whole(key), plaintext, 4 * CHUNK, 'whole GET');
    assertRefused(await range(key, SIZE - 10, SIZE - 1), plaintext.subarray(SIZE - 10), 0, 'Range GET of the final chunk');
  });

  it("two objects' ciphertexts swapped: neither delivers the other's bytes", async () => {
    const [a, b] = [await freshObject(), await freshObject()];
    const parked = `${a.file}.parked`;
    renameSync(a.file, parked);
    renameSync(b.file, a.file);
    renameSync(parked, b.file);
    assertRefused(await whole(a.key), a.plaintext, 0, 'GET of a (holding b\'s ciphertext)');
    assertRefused(await whole(b.key), b.plaintext, 0, 'GET of b (holding a\'s ciphertext)');
    assertRefused(await range(a.key, 0, 99), a.plaintext, 0, 'Range GET of a');
  });

  it("two objects' ciphertexts and metadata swapped: neither delivers the other's bytes", async () => {
    const [a, b] = [await freshObject(), await freshObject()];
    const eu = stack.zones.eu;
    for (const fileOf of [eu.objectFile, eu.metadataFile, eu.md5File]) {
      const [fileA, fileB] = [fileOf(backingBucket(), a.key), fileOf(backingBucket(), b.key)];
      const parked = `${fileA}.parked`;
      renameSync(fileA, parked);
      renameSync(fileB, fileA);
      renameSync(parked, fileB);
    }
    assertRefused(await whole(a.key), a.plaintext, 0, 'GET of a (holding b\'s object and metadata)');
    assertRefused(await whole(b.key), b.plaintext, 0, 'GET of b (holding a\'s object and metadata)');
    assertRefused(await range(b.key, CHUNK, CHUNK + 9), b.plaintext.subarray(CHUNK), 0, 'Range GET of b');
  });

  it('an object copied over another name (both ciphertext and metadata): GET of that name fails', async () => {
    const [a, b] = [await freshObject(), await freshObject()];
    const eu = stack.zones.eu;
    for (const fileOf of [eu.objectFile, eu.metadataFile, eu.md5File]) copyFileSync(fileOf(backingBucket(), a.key), fileOf(backingBucket(), b.key));
    assertRefused(await whole(b.key), b.plaintext, 0, 'GET of b (a copy of a)');
  });

  it('a multipart object with its middle part dropped: GET stops before the gap, Range GETs after it fail', async () => {
    const key = 'multipart-victim.bin';
    const parts = [markedPlaintext(5 * MiB, MARKER), markedPlaintext(5 * MiB, MARKER), markedPlaintext(MiB, MARKER)];
    const plaintext = Buffer.concat(parts);
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const eTags: string[] = [];
    for (const [index, part] of parts.entries()) {
      eTags.push((await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId, PartNumber: index + 1, Body: part }))).ETag!);
    }
    // The proxy uploads each encrypted part as a part of a backing multipart upload; s3rver keeps those as files
    // named by part number until completion, which tells where each part's ciphertext sits in the joined object.
    const uploads = stack.zones.eu.uploadsDirectory(backingBucket());
    const pending = readdirSync(uploads).map((name) => join(uploads, name)).filter((dir) => readdirSync(dir).includes('3'));
    assert.equal(pending.length, 1, `one backing upload with 3 parts in ${uploads}: ${JSON.stringify(pending)}`);
    const partSizes = [1, 2, 3].map((number) => statSync(join(pending[0], String(number))).size);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: created.UploadId,
      MultipartUpload: { Parts: eTags.map((eTag, index) => ({ PartNumber: index + 1, ETag: eTag })) } }));
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.ok((await bodyBytes(got.Body)).equals(plaintext), 'untampered, the multipart object reads back');

    const file = objectFile(key);
    const bytes = readFileSync(file);
    assert.equal(bytes.length, partSizes[0] + partSizes[1] + partSizes[2], 'the backing object is its parts joined');
    writeFileSync(file, Buffer.concat([bytes.subarray(0, partSizes[0]), bytes.subarray(partSizes[0] + partSizes[1])]));
    assertRefused(await whole(key), plaintext, 5 * MiB, 'whole GET');
    assertRefused(await range(key, 10 * MiB, 10 * MiB + 99), plaintext.subarray(10 * MiB), 0, 'Range GET in part 3');
    assertRefused(await range(key, 5 * MiB, 5 * MiB + 99), plaintext.subarray(5 * MiB), 0, 'Range GET in the dropped part 2');
  });

  it('still serves untouched objects, never logged plaintext, and left none in the backing stores', async () => {
    const { key, plaintext } = await freshObject(CHUNK + 1);
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    assert.ok((await bodyBytes(got.Body)).equals(plaintext));
    assert.ok(!stack.proxyOutput().includes(MARKER), 'the proxy logged plaintext');
    for (const zone of ZONE_NAMES) assert.deepEqual(stack.zones[zone].filesContaining(MARKER), [], `zone ${zone}: files holding the marker`);
  });
});
