import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  createObjectEncryptStream, encryptedObjectLength, plaintextObjectLength, objectHeaderContext, openObjectRange,
  openObjectMetadata, randomBytes, readFileHeader, sealObjectMetadata, sealedObjectMetadataLength, DEFAULT_CHUNK_SIZE,
  MIN_CHUNK_SIZE, type CiphertextSource, type EncryptionContext, type ObjectLayout, type ObjectSegment,
} from '../../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../../src/shared/errors.ts';

const CS = MIN_CHUNK_SIZE; // 4 KiB chunks keep the exhaustive edge cases fast
const TAG = 16;
const MiB = 1 << 20;
const CONTEXT: EncryptionContext = { bucket: 'photos', key: '2024/cat.jpg', zone: 'eu' };

/** An in-memory backing object that records every range asked of it and hands bytes out in uneven pieces. */
class MemorySource implements CiphertextSource {
  readonly requests: Array<{ start: number; end: number }> = [];
  readonly length: number;
  constructor(readonly bytes: Buffer, length = bytes.length, readonly overrun = 0) {
    this.length = length;
  }
  get bytesRequested(): number {
    return this.requests.reduce((sum, { start, end }) => sum + end - start + 1, 0);
  }
  async read(start: number, end: number): Promise<Readable> {
    assert.ok(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end < this.length,
      `range ${start}-${end} outside 0..${this.length - 1}`);
    this.requests.push({ start, end });
    const slice = this.bytes.subarray(start, Math.min(end + 1 + this.overrun, this.bytes.length));
    const pieces: Buffer[] = [];
    for (let offset = 0; offset < slice.length;) {
      const size = 1 + Math.floor(Math.random() * 3 * CS);
      pieces.push(slice.subarray(offset, offset + size));
      offset += size;
    }
    return Readable.from(pieces, { objectMode: false });
  }
}

interface Keys { dataKey: Buffer; wrappedDataKey: Buffer }
function newKeys(bytes = 32): Keys {
  return { dataKey: randomBytes(bytes), wrappedDataKey: randomBytes(150) };
}

async function collect(stream: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const piece of stream) out.push(piece as Buffer);
  return Buffer.concat(out);
}

async function encrypt(plaintext: Buffer, keys: Keys, options: { context?: EncryptionContext; chunkSize?: number; segment?: ObjectSegment } = {}): Promise<Buffer> {
  const stream = createObjectEncryptStream({ ...keys, context: options.context ?? CONTEXT, chunkSize: options.chunkSize ?? CS, segment: options.segment });
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < plaintext.length; offset += 70_000) pieces.push(plaintext.subarray(offset, offset + 70_000));
  return collect(Readable.from(pieces, { objectMode: false }).pipe(stream));
}

interface Multipart { object: Buffer; parts: Buffer[]; layout: ObjectLayout & { kind: 'multipart' } }
async function encryptMultipart(plaintexts: Buffer[], keys: Keys, uploadId = 'upload-1', chunkSize = CS, firstPart = 1): Promise<Multipart> {
  const parts: Buffer[] = [];
  const layoutParts = [];
  for (const [index, plaintext] of plaintexts.entries()) {
    const segment = { uploadId, partNumber: firstPart + index };
    const part = await encrypt(plaintext, keys, { chunkSize, segment });
    assert.equal(part.length, encryptedObjectLength(plaintext.length, { wrappedDataKey: keys.wrappedDataKey, context: CONTEXT, chunkSize, segment }));
    parts.push(part);
    layoutParts.push({ partNumber: segment.partNumber, plaintextLength: plaintext.length, ciphertextLength: part.length });
  }
  return { object: Buffer.concat(parts), parts, layout: { kind: 'multipart', uploadId, chunkSize, parts: layoutParts } };
}

function single(plaintextLength: number, chunkSize = CS): ObjectLayout {
  return { kind: 'single', plaintextLength, chunkSize };
}

/** Reads as a client would, keeping whatever plaintext came out before an error. */
async function readAll(source: CiphertextSource, dataKey: Buffer, layout: ObjectLayout, range?: { start: number; end: number },
  context = CONTEXT): Promise<{ released: Buffer; error?: unknown }> {
  const released: Buffer[] = [];
  try {
    const stream = await openObjectRange(source, { dataKey, context, layout, range });
    for await (const piece of stream) released.push(piece as Buffer);
    return { released: Buffer.concat(released) };
  } catch (error) {
    return { released: Buffer.concat(released), error };
  }
}

async function refused(source: CiphertextSource, dataKey: Buffer, layout: ObjectLayout, options: { range?: { start: number; end: number };
  context?: EncryptionContext; mayRelease?: Buffer } = {}): Promise<void> {
  const result = await readAll(source, dataKey, layout, options.range, options.context);
  assert.ok(result.error instanceof CiphertextError, `expected CiphertextError, got ${String(result.error)}`);
  // Only plaintext of chunks that verified (before the bad one) may have come out.
  assert.deepEqual(result.released, options.mayRelease ?? Buffer.alloc(0));
}

function recordsOf(file: Buffer, chunkSize = CS): { header: Buffer; chunks: Buffer[] } {
  const read = readFileHeader(file);
  assert.ok(read.complete);
  const chunks: Buffer[] = [];
  for (let offset = read.header.length; offset < file.length; offset += chunkSize + TAG) {
    chunks.push(file.subarray(offset, Math.min(offset + chunkSize + TAG, file.length)));
  }
  return { header: file.subarray(0, read.header.length), chunks };
}

/** What a range read of one TPENC stream must fetch: its header and the records of the chunks overlapping [from, to]. */
function neededBytes(headerLength: number, plaintextLength: number, from: number, to: number, chunkSize: number): number {
  const finalChunk = Math.floor(plaintextLength / chunkSize);
  let bytes = headerLength;
  for (let index = Math.floor(from / chunkSize); index <= Math.floor(to / chunkSize); index += 1) {
    bytes += index < finalChunk ? chunkSize + TAG : plaintextLength - finalChunk * chunkSize + TAG;
  }
  return bytes;
}

/** Positions at every chunk edge (k·S - 1, k·S, k·S + 1) and at the ends, within [0, length). */
function edges(length: number, boundaries: number[]): number[] {
  const points = new Set<number>([0, 1, length - 2, length - 1]);
  for (const boundary of boundaries) for (const delta of [-1, 0, 1]) points.add(boundary + delta);
  return [...points].filter((point) => point >= 0 && point < length).sort((a, b) => a - b);
}

describe('object encryption sizes', () => {
  test('encryptedObjectLength is the exact stream length and plaintextObjectLength its inverse', async () => {
    for (const keyBytes of [16, 32]) {
      const keys = newKeys(keyBytes);
      for (const size of [0, 1, CS - 1, CS, CS + 1, 3 * CS]) {
        for (const segment of [undefined, { uploadId: 'u', partNumber: 1 }, { uploadId: 'u', partNumber: 10_000 }]) {
          const options = { wrappedDataKey: keys.wrappedDataKey, context: CONTEXT, chunkSize: CS, segment };
          const object = await encrypt(randomBytes(size), keys, { segment });
          assert.equal(encryptedObjectLength(size, options), object.length);
          assert.equal(plaintextObjectLength(object.length, options), size);
        }
      }
    }
  });

  test('the default chunk size is 256 KiB', async () => {
    const keys = newKeys();
    const options = { wrappedDataKey: keys.wrappedDataKey, context: CONTEXT };
    const object = await collect(Readable.from([randomBytes(DEFAULT_CHUNK_SIZE + 1)]).pipe(createObjectEncryptStream({ ...keys, context: CONTEXT })));
    const read = readFileHeader(object);
    assert.ok(read.complete);
    assert.equal(read.header.chunkSize, 256 * 1024);
    assert.equal(encryptedObjectLength(DEFAULT_CHUNK_SIZE + 1, options), object.length);
  });

  test('every part header of an upload has the same length, so equal parts have equal sizes', () => {
    const options = (partNumber: number) => ({ wrappedDataKey: randomBytes(150), context: CONTEXT, segment: { uploadId: 'u', partNumber } });
    const sizes = [1, 9, 10, 99, 100, 9999, 10_000].map((partNumber) => encryptedObjectLength(5 * MiB, options(partNumber)));
    assert.equal(new Set(sizes).size, 1);
  });

  test('impossible ciphertext lengths and bad options are refused', () => {
    const options = { wrappedDataKey: randomBytes(150), context: CONTEXT, chunkSize: CS };
    const header = encryptedObjectLength(0, options) - TAG;
    for (const length of [0, header, header + TAG - 1, header + CS + TAG + TAG - 1]) {
      assert.throws(() => plaintextObjectLength(length, options), CiphertextError, String(length));
    }
    assert.throws(() => encryptedObjectLength(1, { ...options, context: { ...CONTEXT, part: '1' } }), RangeError);
    assert.throws(() => encryptedObjectLength(1, { ...options, segment: { uploadId: 'u', partNumber: 0 } }), RangeError);
    assert.throws(() => encryptedObjectLength(1, { ...options, segment: { uploadId: 'u', partNumber: 10_001 } }), RangeError);
    assert.throws(() => encryptedObjectLength(1, { ...options, segment: { uploadId: '', partNumber: 1 } }), RangeError);
    assert.throws(() => encryptedObjectLength(1, { ...options, wrappedDataKey: Buffer.alloc(0) }), RangeError);
    assert.throws(() => createObjectEncryptStream({ ...newKeys(24), context: CONTEXT }), RangeError);
  });

  test('a part\'s header context is the object context plus its upload and five-digit part number', async () => {
    assert.deepEqual(objectHeaderContext(CONTEXT, { uploadId: 'abc', partNumber: 7 }), { ...CONTEXT, upload: 'abc', part: '00007' });
    const part = await encrypt(randomBytes(10), newKeys(), { segment: { uploadId: 'abc', partNumber: 7 } });
    const read = readFileHeader(part);
    assert.ok(read.complete);
    assert.deepEqual(read.header.context, { ...CONTEXT, upload: 'abc', part: '00007' });
  });
});

describe('object round trips', () => {
  for (const keyBytes of [32, 16]) {
    for (const [name, size, chunkSize] of [['0 B', 0, CS], ['1 B', 1, CS], ['chunk-1', CS - 1, CS], ['chunk', CS, CS], ['chunk+1', CS + 1, CS],
      ['5 MiB+1 at 256 KiB chunks', 5 * MiB + 1, DEFAULT_CHUNK_SIZE]] as const) {
      test(`${name}, AES-${keyBytes * 8}`, async () => {
        const keys = newKeys(keyBytes);
        const plaintext = randomBytes(size);
        const object = await encrypt(plaintext, keys, { chunkSize });
        assert.equal(object[6], keyBytes === 32 ? 1 : 2);
        const source = new MemorySource(object);
        const { released, error } = await readAll(source, keys.dataKey, single(size, chunkSize));
        assert.equal(error, undefined);
        assert.deepEqual(released, plaintext);
        // A whole read is one backing request for the whole object.
        assert.deepEqual(source.requests, [{ start: 0, end: object.length - 1 }]);
      });
    }
  }

  test('multipart: parts of 5 MiB, 5 MiB and 1 B; an empty final part; a single empty part', async () => {
    for (const sizes of [[5 * MiB, 5 * MiB, 1], [5 * MiB, 0], [0]]) {
      const keys = newKeys();
      const plaintexts = sizes.map((size) => randomBytes(size));
      const { object, layout } = await encryptMultipart(plaintexts, keys, 'upload-x', DEFAULT_CHUNK_SIZE);
      const source = new MemorySource(object);
      const { released, error } = await readAll(source, keys.dataKey, layout);
      assert.equal(error, undefined);
      assert.deepEqual(released, Buffer.concat(plaintexts));
      // Every part is read, in one request each, and verified, empty ones included.
      assert.equal(source.requests.length, sizes.length);
      assert.equal(source.bytesRequested, object.length);
    }
  });

  test('multipart with part numbers that skip', async () => {
    const keys = newKeys();
    const plaintexts = [randomBytes(CS + 3), randomBytes(7)];
    const parts = [];
    for (const [index, partNumber] of [2, 9].entries()) {
      parts.push(await encrypt(plaintexts[index], keys, { segment: { uploadId: 'u', partNumber } }));
    }
    const layout: ObjectLayout = { kind: 'multipart', uploadId: 'u', chunkSize: CS, parts: [
      { partNumber: 2, plaintextLength: CS + 3, ciphertextLength: parts[0].length },
      { partNumber: 9, plaintextLength: 7, ciphertextLength: parts[1].length },
    ] };
    assert.deepEqual((await readAll(new MemorySource(Buffer.concat(parts)), keys.dataKey, layout)).released, Buffer.concat(plaintexts));
  });
});

describe('object range reads', () => {
  test('single object: every pair of chunk-edge positions, fetching only the header and the chunks needed', async () => {
    const keys = newKeys();
    const size = 5 * CS + 1;
    const plaintext = randomBytes(size);
    const object = await encrypt(plaintext, keys);
    const headerLength = object.length - (size + 6 * TAG);
    const points = edges(size, [1, 2, 3, 4, 5].map((k) => k * CS));
    let reads = 0;
    for (const start of points) {
      for (const end of points.filter((point) => point >= start)) {
        const source = new MemorySource(object);
        const { released, error } = await readAll(source, keys.dataKey, single(size), { start, end });
        assert.equal(error, undefined, `${start}-${end}`);
        assert.deepEqual(released, plaintext.subarray(start, end + 1), `${start}-${end}`);
        assert.equal(source.bytesRequested, neededBytes(headerLength, size, start, end, CS), `${start}-${end}`);
        // The header is fetched with the chunks when they follow it, else in a small read of its own.
        assert.equal(source.requests.length, start < CS ? 1 : 2);
        reads += 1;
      }
    }
    assert.ok(reads > 100, `only ${reads} ranges`);
  });

  test('multipart: every pair of chunk- and part-edge positions over parts of unequal sizes', async () => {
    const keys = newKeys();
    const sizes = [3 * CS + 5, 2 * CS, 1];
    const plaintexts = sizes.map((size) => randomBytes(size));
    const plaintext = Buffer.concat(plaintexts);
    const { object, layout, parts } = await encryptMultipart(plaintexts, keys);
    const headerLengths = parts.map((part, index) => part.length - (sizes[index] + (Math.floor(sizes[index] / CS) + 1) * TAG));
    const boundaries: number[] = [];
    let partStart = 0;
    for (const size of sizes) {
      for (let offset = 0; offset <= size; offset += CS) boundaries.push(partStart + offset);
      partStart += size;
      boundaries.push(partStart);
    }
    const points = edges(plaintext.length, boundaries);
    for (const start of points) {
      for (const end of points.filter((point) => point >= start)) {
        const source = new MemorySource(object);
        const { released, error } = await readAll(source, keys.dataKey, layout, { start, end });
        assert.equal(error, undefined, `${start}-${end}`);
        assert.deepEqual(released, plaintext.subarray(start, end + 1), `${start}-${end}`);
        let expected = 0;
        let offset = 0;
        for (const [index, size] of sizes.entries()) {
          if (start < offset + size && end >= offset) {
            expected += neededBytes(headerLengths[index], size, Math.max(start, offset) - offset, Math.min(end, offset + size - 1) - offset, CS);
          }
          offset += size;
        }
        assert.equal(source.bytesRequested, expected, `${start}-${end}`);
      }
    }
  });

  test('multipart at 256 KiB chunks (5 MiB, 5 MiB, 1 B): ranges across part boundaries read only what they need', async () => {
    const keys = newKeys();
    const sizes = [5 * MiB, 5 * MiB, 1];
    const plaintexts = sizes.map((size) => randomBytes(size));
    const plaintext = Buffer.concat(plaintexts);
    const { object, layout, parts } = await encryptMultipart(plaintexts, keys, 'big', DEFAULT_CHUNK_SIZE);
    const S = DEFAULT_CHUNK_SIZE;
    for (const [start, end] of [[0, 0], [5 * MiB - 1, 5 * MiB], [5 * MiB - S - 1, 5 * MiB + S], [10 * MiB - 1, 10 * MiB], [10 * MiB, 10 * MiB],
      [S - 1, S], [3 * S + 17, 3 * S + 17], [0, 10 * MiB]]) {
      const source = new MemorySource(object);
      const { released, error } = await readAll(source, keys.dataKey, layout, { start, end });
      assert.equal(error, undefined);
      assert.deepEqual(released, plaintext.subarray(start, end + 1), `${start}-${end}`);
      let expected = 0;
      let offset = 0;
      for (const [index, size] of sizes.entries()) {
        const headerLength = parts[index].length - (size + (Math.floor(size / S) + 1) * TAG);
        if (start < offset + size && end >= offset) {
          expected += neededBytes(headerLength, size, Math.max(start, offset) - offset, Math.min(end, offset + size - 1) - offset, S);
        }
        offset += size;
      }
      assert.equal(source.bytesRequested, expected, `${start}-${end}`);
    }
  });

  test('ranges outside the object are a caller error', async () => {
    const keys = newKeys();
    const object = await encrypt(randomBytes(10), keys);
    for (const range of [{ start: 0, end: 10 }, { start: 5, end: 4 }, { start: -1, end: 2 }, { start: 0.5, end: 2 }]) {
      await assert.rejects(openObjectRange(new MemorySource(object), { dataKey: keys.dataKey, context: CONTEXT, layout: single(10), range }), RangeError);
    }
    const empty = await encrypt(Buffer.alloc(0), keys);
    await assert.rejects(openObjectRange(new MemorySource(empty), { dataKey: keys.dataKey, context: CONTEXT, layout: single(0), range: { start: 0, end: 0 } }), RangeError);
  });
});

describe('object tampering is refused', () => {
  const plaintext = randomBytes(3 * CS + 100);
  const keys = newKeys();
  const layout = single(plaintext.length);
  let object: Buffer;
  test('setup', async () => { object = await encrypt(plaintext, keys); });

  test('a flipped byte in the header or in any chunk, for whole and range reads', async () => {
    const { header, chunks } = recordsOf(object);
    const positions = [5, 6, 20, header.length - 1];
    for (let chunk = 0; chunk < chunks.length; chunk += 1) positions.push(header.length + chunk * (CS + TAG), header.length + chunk * (CS + TAG) + 7);
    positions.push(object.length - 1);
    for (const position of positions) {
      const tampered = Buffer.from(object);
      tampered[position] ^= 0x01;
      const badChunk = position < header.length ? 0 : Math.floor((position - header.length) / (CS + TAG));
      await refused(new MemorySource(tampered), keys.dataKey, layout, { mayRelease: plaintext.subarray(0, badChunk * CS) });
      // A range over the bad chunk alone.
      await refused(new MemorySource(tampered), keys.dataKey, layout, { range: { start: badChunk * CS, end: badChunk * CS } });
    }
  });

  test('a tampered chunk further on destroys the stream after the verified chunks, and nothing of the bad one', async () => {
    const tampered = Buffer.from(object);
    const { header } = recordsOf(object);
    tampered[header.length + 2 * (CS + TAG) + 3] ^= 0x80;
    const stream = await openObjectRange(new MemorySource(tampered), { dataKey: keys.dataKey, context: CONTEXT, layout });
    const released: Buffer[] = [];
    await assert.rejects((async () => { for await (const piece of stream) released.push(piece as Buffer); })(), CiphertextError);
    assert.deepEqual(Buffer.concat(released), plaintext.subarray(0, 2 * CS));
  });

  test('truncated at a chunk boundary or mid-chunk', async () => {
    const { header } = recordsOf(object);
    for (const length of [header.length + CS + TAG, header.length + 3 * (CS + TAG), object.length - 1, object.length - TAG, header.length, 10]) {
      const truncated = object.subarray(0, length);
      await refused(new MemorySource(truncated), keys.dataKey, layout);
      // A source that claims the full length but whose reads stop short.
      await refused(new MemorySource(truncated, object.length), keys.dataKey, layout, { mayRelease: plaintext.subarray(0, Math.max(0, Math.floor((length - header.length) / (CS + TAG))) * CS) });
    }
  });

  test('extended: appended bytes, and a source that returns more than it was asked', async () => {
    for (const extra of [Buffer.alloc(1), randomBytes(TAG), recordsOf(object).chunks[0]]) {
      await refused(new MemorySource(Buffer.concat([object, extra])), keys.dataKey, layout);
    }
    const overrunning = new MemorySource(Buffer.concat([object, randomBytes(100)]), object.length, 5);
    const { error, released } = await readAll(overrunning, keys.dataKey, layout, { start: CS, end: CS + 10 });
    assert.ok(error instanceof CiphertextError);
    assert.equal(released.length, 0);
  });

  test('swapped and duplicated chunks', async () => {
    const { header, chunks } = recordsOf(object);
    await refused(new MemorySource(Buffer.concat([header, chunks[1], chunks[0], chunks[2], chunks[3]])), keys.dataKey, layout);
    await refused(new MemorySource(Buffer.concat([header, chunks[0], chunks[2], chunks[1], chunks[3]])), keys.dataKey, layout, { mayRelease: plaintext.subarray(0, CS) });
    await refused(new MemorySource(Buffer.concat([header, chunks[0], chunks[0], chunks[2], chunks[3]])), keys.dataKey, layout, { mayRelease: plaintext.subarray(0, CS) });
  });

  test('the object of another bucket or key, under the same data key', async () => {
    for (const other of [{ ...CONTEXT, key: 'other.jpg' }, { ...CONTEXT, bucket: 'other' }, { ...CONTEXT, zone: 'us' }]) {
      const moved = await encrypt(plaintext, keys, { context: other });
      await refused(new MemorySource(moved), keys.dataKey, layout);
      await refused(new MemorySource(moved), keys.dataKey, layout, { range: { start: 2 * CS, end: 2 * CS + 5 } });
    }
    // And a part passed off as a single object.
    const part = await encrypt(plaintext, keys, { segment: { uploadId: 'u', partNumber: 1 } });
    await refused(new MemorySource(part), keys.dataKey, layout);
  });

  test('the wrong data key, of either length', async () => {
    for (const dataKey of [randomBytes(32), randomBytes(16), keys.dataKey.subarray(0, 16)]) {
      await refused(new MemorySource(object), dataKey, layout);
      await refused(new MemorySource(object), dataKey, layout, { range: { start: 2 * CS, end: 2 * CS } });
    }
  });

  test('a layout that does not match the stored object', async () => {
    await refused(new MemorySource(object), keys.dataKey, single(plaintext.length + 1));
    await refused(new MemorySource(object), keys.dataKey, single(plaintext.length - 1));
    await refused(new MemorySource(object), keys.dataKey, single(plaintext.length, 2 * CS));
    const { layout: multipart } = await encryptMultipart([plaintext], keys);
    await refused(new MemorySource(object), keys.dataKey, multipart);
  });

  test('the data key the caller passes is left intact, and the reserved context names are refused', async () => {
    const copy = Buffer.from(keys.dataKey);
    await readAll(new MemorySource(object), copy, layout);
    assert.deepEqual(copy, keys.dataKey);
    await assert.rejects(openObjectRange(new MemorySource(object), { dataKey: copy, context: { ...CONTEXT, upload: 'x' }, layout }), RangeError);
  });
});

describe('multipart tampering is refused', () => {
  const keys = newKeys();
  const plaintexts = [randomBytes(2 * CS + 1), randomBytes(2 * CS + 1), randomBytes(2 * CS + 1), randomBytes(5)];
  let upload: Multipart;
  test('setup', async () => { upload = await encryptMultipart(plaintexts, keys, 'upload-1'); });

  test('swapped parts of equal size', async () => {
    const [a, b, c, d] = upload.parts;
    await refused(new MemorySource(Buffer.concat([b, a, c, d])), keys.dataKey, upload.layout);
    await refused(new MemorySource(Buffer.concat([a, c, b, d])), keys.dataKey, upload.layout, { mayRelease: plaintexts[0] });
    await refused(new MemorySource(Buffer.concat([a, c, b, d])), keys.dataKey, upload.layout, { range: { start: 2 * CS + 1, end: 2 * CS + 1 } });
  });

  test('a duplicated or dropped part', async () => {
    const [a, b, c, d] = upload.parts;
    // Same total size: part 1 verifies and is released, the copy of it in part 2's place is not.
    await refused(new MemorySource(Buffer.concat([a, a, c, d])), keys.dataKey, upload.layout, { mayRelease: plaintexts[0] });
    await refused(new MemorySource(Buffer.concat([a, b, d])), keys.dataKey, upload.layout);
    await refused(new MemorySource(Buffer.concat([a, b, c, c, d])), keys.dataKey, upload.layout);
  });

  test('a part from another upload of the same object, even under the same data key', async () => {
    const other = await encryptMultipart(plaintexts, keys, 'upload-2');
    const [a, , c, d] = upload.parts;
    await refused(new MemorySource(Buffer.concat([a, other.parts[1], c, d])), keys.dataKey, upload.layout, { mayRelease: plaintexts[0] });
    await refused(new MemorySource(Buffer.concat([a, other.parts[1], c, d])), keys.dataKey, upload.layout, { range: { start: 3 * CS, end: 3 * CS } });
  });

  test('the same upload id and part numbers under another object', async () => {
    const stolen = [];
    for (const [index, plaintext] of plaintexts.entries()) {
      stolen.push(await encrypt(plaintext, keys, { context: { ...CONTEXT, key: 'other' }, segment: { uploadId: 'upload-1', partNumber: index + 1 } }));
    }
    await refused(new MemorySource(Buffer.concat(stolen)), keys.dataKey, upload.layout);
  });

  test('a tampered, truncated or extended part', async () => {
    const [a, b, c, d] = upload.parts;
    const flipped = Buffer.from(b);
    flipped[flipped.length - 5] ^= 4; // in the final record
    await refused(new MemorySource(Buffer.concat([a, flipped, c, d])), keys.dataKey, upload.layout,
      { mayRelease: Buffer.concat([plaintexts[0], plaintexts[1].subarray(0, 2 * CS)]) });
    await refused(new MemorySource(Buffer.concat([a, b.subarray(0, b.length - 1), c, d])), keys.dataKey, upload.layout);
    await refused(new MemorySource(Buffer.concat([a, b, c, d, Buffer.alloc(1)])), keys.dataKey, upload.layout);
    // Part 2 cut by one record and part 3 grown by one: the total still matches, the parts do not.
    const { header, chunks } = recordsOf(c);
    const cut = Buffer.concat([recordsOf(b).header, ...recordsOf(b).chunks.slice(1)]);
    await refused(new MemorySource(Buffer.concat([a, cut, Buffer.concat([header, chunks[0], ...chunks]), d])), keys.dataKey, upload.layout,
      { mayRelease: plaintexts[0] });
  });

  test('the wrong data key, and a layout whose sizes do not match', async () => {
    await refused(new MemorySource(upload.object), randomBytes(32), upload.layout);
    const wrong = structuredClone(upload.layout);
    wrong.parts[1].plaintextLength += 1;
    await refused(new MemorySource(upload.object), keys.dataKey, wrong, { mayRelease: plaintexts[0] });
    const moved = structuredClone(upload.layout);
    moved.parts[0].ciphertextLength += 1;
    moved.parts[1].ciphertextLength -= 1;
    await refused(new MemorySource(upload.object), keys.dataKey, moved);
    const renamed = { ...upload.layout, uploadId: 'upload-2' };
    await refused(new MemorySource(upload.object), keys.dataKey, renamed);
  });
});

describe('object streams', () => {
  /** A backing object made on the fly: the encryption of `mib` MiB of generated plaintext, with counters of what it produced. */
  function generatedSource(mib: number, keys: Keys) {
    const block = randomBytes(MiB);
    const expected = createHash('sha256');
    const state = { produced: 0, destroyed: false };
    function* generate(): Generator<Buffer> {
      for (let counter = 0; counter < mib; counter += 1) {
        const piece = Buffer.from(block);
        piece.writeUInt32BE(counter, 0);
        expected.update(piece);
        yield piece;
      }
    }
    const length = encryptedObjectLength(mib * MiB, { wrappedDataKey: keys.wrappedDataKey, context: CONTEXT });
    const source: CiphertextSource = {
      length,
      async read(start, end) {
        assert.deepEqual([start, end], [0, length - 1]);
        const stream = Readable.from(generate(), { objectMode: false }).pipe(createObjectEncryptStream({ ...keys, context: CONTEXT }));
        stream.on('data', (piece: Buffer) => { state.produced += piece.length; });
        stream.on('close', () => { state.destroyed = true; });
        return stream;
      },
    };
    return { source, expected, state, layout: single(mib * MiB, DEFAULT_CHUNK_SIZE) };
  }

  test('256 MiB through encrypt → openObjectRange → hash keeps RSS flat', async (t) => {
    const keys = newKeys();
    async function roundTrip(mib: number): Promise<{ matches: boolean; peakRss: number }> {
      const { source, expected, layout } = generatedSource(mib, keys);
      const actual = createHash('sha256');
      let peakRss = 0;
      let bytes = 0;
      await pipeline(await openObjectRange(source, { dataKey: keys.dataKey, context: CONTEXT, layout }), async (stream: AsyncIterable<unknown>) => {
        for await (const piece of stream) {
          actual.update(piece as Buffer);
          bytes += (piece as Buffer).length;
          if ((bytes & 0xffffff) < (piece as Buffer).length) peakRss = Math.max(peakRss, process.memoryUsage().rss);
        }
      });
      assert.equal(bytes, mib * MiB);
      return { matches: actual.digest('hex') === expected.digest('hex'), peakRss: Math.max(peakRss, process.memoryUsage().rss) };
    }
    await roundTrip(32);
    const baseline = process.memoryUsage().rss;
    const result = await roundTrip(256);
    assert.ok(result.matches);
    const growth = (result.peakRss - baseline) / MiB;
    t.diagnostic(`RSS growth ${growth.toFixed(1)} MiB over a baseline of ${(baseline / MiB).toFixed(0)} MiB`);
    assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB`);
  });

  test('a reader that stops reading stops the source; destroying the stream releases the source', async () => {
    const keys = newKeys();
    const { source, state, layout } = generatedSource(64, keys);
    const stream = await openObjectRange(source, { dataKey: keys.dataKey, context: CONTEXT, layout });
    const first = await new Promise<Buffer>((resolve) => stream.once('readable', () => resolve(stream.read() as Buffer)));
    assert.ok(first.length > 0);
    for (let turn = 0; turn < 20; turn += 1) await new Promise(setImmediate);
    assert.ok(state.produced < 4 * MiB, `source produced ${state.produced} bytes for an idle reader`);
    const closed = new Promise((resolve) => stream.once('close', resolve));
    stream.destroy();
    await closed;
    for (let turn = 0; turn < 5 && !state.destroyed; turn += 1) await new Promise(setImmediate);
    assert.ok(state.destroyed);
  });
});

describe('sealed object metadata', () => {
  const metadata = Buffer.from(JSON.stringify({ 'content-type': 'image/jpeg', etag: '"abc"', meta: { owner: 'ann' }, layout: '1:s:262144:10' }));

  test('round trips under AES-256 and AES-128 data keys, as base64url of the predicted length', () => {
    for (const keyBytes of [32, 16]) {
      const dataKey = randomBytes(keyBytes);
      const sealed = sealObjectMetadata(dataKey, CONTEXT, metadata);
      assert.match(sealed, /^[A-Za-z0-9_-]+$/);
      assert.equal(sealed.length, sealedObjectMetadataLength(metadata.length));
      assert.equal(Buffer.from(sealed, 'base64url')[0], 1);
      assert.deepEqual(openObjectMetadata(dataKey, CONTEXT, sealed), metadata);
      assert.notEqual(sealObjectMetadata(dataKey, CONTEXT, metadata), sealed); // a fresh nonce each time
      assert.deepEqual(openObjectMetadata(dataKey, CONTEXT, sealObjectMetadata(dataKey, CONTEXT, Buffer.alloc(0))), Buffer.alloc(0));
    }
  });

  test('the wrong key, another context, and any change are refused', () => {
    const dataKey = randomBytes(32);
    const sealed = sealObjectMetadata(dataKey, CONTEXT, metadata);
    assert.throws(() => openObjectMetadata(randomBytes(32), CONTEXT, sealed), CiphertextError);
    assert.throws(() => openObjectMetadata(dataKey.subarray(0, 16), CONTEXT, sealed), CiphertextError);
    assert.throws(() => openObjectMetadata(dataKey, { ...CONTEXT, key: 'other' }, sealed), CiphertextError);
    assert.throws(() => openObjectMetadata(dataKey, { ...CONTEXT, extra: '' }, sealed), CiphertextError);
    const bytes = Buffer.from(sealed, 'base64url');
    for (let index = 0; index < bytes.length; index += 1) {
      const tampered = Buffer.from(bytes);
      tampered[index] ^= 0x01;
      assert.throws(() => openObjectMetadata(dataKey, CONTEXT, tampered.toString('base64url')), CiphertextError, `byte ${index}`);
    }
    for (const bad of ['', sealed.slice(0, 40), `${sealed}A`, `${sealed}=`, sealed.replace(/-/g, '+'), `${sealed.slice(0, -1)}!`, 'AQ']) {
      if (bad === sealed) continue;
      assert.throws(() => openObjectMetadata(dataKey, CONTEXT, bad), CiphertextError, bad);
    }
    assert.throws(() => sealObjectMetadata(randomBytes(24), CONTEXT, metadata), RangeError);
  });

  test('sealing does not keep or alter the caller\'s key', () => {
    const dataKey = randomBytes(32);
    const copy = Buffer.from(dataKey);
    openObjectMetadata(dataKey, CONTEXT, sealObjectMetadata(dataKey, CONTEXT, metadata));
    assert.deepEqual(dataKey, copy);
  });
});
