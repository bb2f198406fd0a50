import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  aesGcmDecrypt, aesGcmEncrypt, ciphertextLength, createDecryptStream, createEncryptStream, decryptChunk,
  decryptRange, deriveChunkedFileKey, encodeEncryptionContext, encodeFileHeader, plaintextLength,
  plaintextRangeToChunks, randomBytes, readFileHeader, deriveChunkedFileKey as deriveKey, fileHeaderLength,
  CHUNKED_ALGORITHM_AES_128_GCM, CHUNKED_ALGORITHM_AES_256_GCM, DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE,
  type ChunkedFileHeader, type EncryptionContext,
} from '../../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../../src/shared/errors.ts';

const CS = MIN_CHUNK_SIZE; // 4 KiB chunks keep the exhaustive cases fast
const TAG = 16;

/** A stand-in for the key service: the wrapped key is AES-GCM under a master key, bound to the context. */
function fakeKeyService() {
  const master = randomBytes(32);
  return {
    generateDataKey(context: EncryptionContext = {}) {
      const dataKey = randomBytes(32);
      const nonce = randomBytes(12);
      const sealed = aesGcmEncrypt(master, nonce, dataKey, encodeEncryptionContext(context));
      return { dataKey, wrappedDataKey: Buffer.concat([nonce, sealed.ciphertext, sealed.tag]) };
    },
    resolveDataKey(header: ChunkedFileHeader): Buffer {
      const blob = header.wrappedDataKey;
      if (blob.length !== 12 + 32 + 16) throw new CiphertextError();
      return aesGcmDecrypt(master, blob.subarray(0, 12), blob.subarray(12, 44), blob.subarray(44), encodeEncryptionContext(header.context));
    },
  };
}

const kms = fakeKeyService();

/** Splits a buffer into pieces of random sizes up to `max`, to exercise every alignment. */
function split(data: Buffer, max: number): Buffer[] {
  const pieces: Buffer[] = [];
  let offset = 0;
  do {
    const size = Math.min(data.length - offset, 1 + Math.floor(Math.random() * max));
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  } while (offset < data.length);
  return pieces;
}

async function collect(source: Readable, transform: Transform): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(source, transform, async (stream: AsyncIterable<unknown>) => {
    for await (const chunk of stream) out.push(chunk as Buffer);
  });
  return Buffer.concat(out);
}

interface Sealed { file: Buffer; dataKey: Buffer; wrappedDataKey: Buffer; context: EncryptionContext }

async function encryptBuffer(plaintext: Buffer, options: { chunkSize?: number; context?: EncryptionContext; maxPiece?: number } = {}): Promise<Sealed> {
  const context = options.context ?? { purpose: 'test', file: 'a.txt' };
  const { dataKey, wrappedDataKey } = kms.generateDataKey(context);
  const stream = createEncryptStream({ dataKey, wrappedDataKey, context, chunkSize: options.chunkSize ?? CS });
  const file = await collect(Readable.from(split(plaintext, options.maxPiece ?? 3 * CS)), stream);
  return { file, dataKey, wrappedDataKey, context };
}

function decryptBuffer(file: Buffer, resolveDataKey: (header: ChunkedFileHeader) => Uint8Array | Promise<Uint8Array> = kms.resolveDataKey,
  maxPiece = 3 * CS): Promise<Buffer> {
  return collect(Readable.from(split(file, maxPiece)), createDecryptStream({ resolveDataKey }));
}

/** Ignores the wrapped key entirely, so header tampering must be caught by the chunks themselves. */
function lenient(dataKey: Buffer) {
  return () => Buffer.from(dataKey);
}

function records(file: Buffer, chunkSize = CS): { header: Buffer; chunks: Buffer[] } {
  const read = readFileHeader(file);
  assert.ok(read.complete);
  const chunks: Buffer[] = [];
  for (let offset = read.header.length; offset < file.length; offset += chunkSize + TAG) {
    chunks.push(file.subarray(offset, Math.min(offset + chunkSize + TAG, file.length)));
  }
  return { header: file.subarray(0, read.header.length), chunks };
}

async function rejects(file: Buffer, resolveDataKey?: (header: ChunkedFileHeader) => Uint8Array): Promise<void> {
  await assert.rejects(decryptBuffer(file, resolveDataKey), CiphertextError);
}

describe('chunked AEAD round trips', () => {
  for (const size of [0, 1, CS - 1, CS, CS + 1, 3 * CS, 3 * CS + 7]) {
    test(`${size} bytes`, async () => {
      const plaintext = randomBytes(size);
      const sealed = await encryptBuffer(plaintext);
      assert.equal(sealed.file.length, ciphertextLength(size, CS, records(sealed.file).header.length));
      assert.deepEqual(await decryptBuffer(sealed.file), plaintext);
    });
  }

  test('an empty input is a header and exactly one empty final chunk', async () => {
    const { file } = await encryptBuffer(Buffer.alloc(0));
    const { chunks } = records(file);
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0].length, TAG);
  });

  test('a multiple of the chunk size ends with an empty final chunk', async () => {
    const { file } = await encryptBuffer(randomBytes(2 * CS));
    assert.deepEqual(records(file).chunks.map((chunk) => chunk.length), [CS + TAG, CS + TAG, TAG]);
  });

  test('random sizes, chunk sizes and input/output splits, including one-byte pieces', async () => {
    for (let round = 0; round < 12; round += 1) {
      const chunkSize = [CS, 5000, 3 * CS, DEFAULT_CHUNK_SIZE][round % 4];
      const plaintext = randomBytes(Math.floor(Math.random() * 5 * chunkSize));
      const maxPiece = round % 3 === 0 ? 1 : 1 + Math.floor(Math.random() * 3 * chunkSize);
      const sealed = await encryptBuffer(plaintext, { chunkSize, maxPiece: round < 2 ? 97 : maxPiece });
      assert.deepEqual(await decryptBuffer(sealed.file, kms.resolveDataKey, round === 3 ? 1 : maxPiece), plaintext);
    }
  });

  test('the header carries the context and wrapped key, so decryption needs no flags', async () => {
    const context = { bucket: 'b', key: 'k/ü' };
    const sealed = await encryptBuffer(randomBytes(10), { context });
    let seen: ChunkedFileHeader | undefined;
    const plaintext = await decryptBuffer(sealed.file, (header) => { seen = header; return kms.resolveDataKey(header); });
    assert.equal(plaintext.length, 10);
    assert.deepEqual(seen?.context, context);
    assert.deepEqual(seen?.wrappedDataKey, sealed.wrappedDataKey);
    assert.equal(seen?.chunkSize, CS);
  });

  test('the decrypt stream zeroizes the data key the resolver returns', async () => {
    const sealed = await encryptBuffer(randomBytes(100));
    const returned = Buffer.from(sealed.dataKey);
    await decryptBuffer(sealed.file, () => returned);
    assert.deepEqual(returned, Buffer.alloc(32));
  });

  test('two encryptions of the same data under the same data key share no chunk bytes', async () => {
    const plaintext = Buffer.alloc(CS);
    const { dataKey, wrappedDataKey } = kms.generateDataKey({});
    const a = await collect(Readable.from([plaintext]), createEncryptStream({ dataKey, wrappedDataKey, chunkSize: CS }));
    const b = await collect(Readable.from([plaintext]), createEncryptStream({ dataKey, wrappedDataKey, chunkSize: CS }));
    assert.notDeepEqual(records(a).chunks[0], records(b).chunks[0]);
  });

  test('rejects data keys of the wrong length and chunk sizes out of range', () => {
    // 16 bytes is an AES-128 data key now (see 'chunked AEAD with AES-128 data keys'); other lengths are refused.
    for (const length of [0, 15, 24, 31, 33]) {
      assert.throws(() => createEncryptStream({ dataKey: randomBytes(length), wrappedDataKey: Buffer.from('w') }), RangeError);
    }
    for (const chunkSize of [MIN_CHUNK_SIZE - 1, 16 * 1024 * 1024 + 1, 4096.5]) {
      assert.throws(() => createEncryptStream({ dataKey: randomBytes(32), wrappedDataKey: Buffer.from('w'), chunkSize }), RangeError);
    }
    assert.throws(() => encodeFileHeader({ wrappedDataKey: Buffer.alloc(0) }), RangeError);
  });
});

describe('chunked AEAD tampering is detected', () => {
  const plaintext = randomBytes(2 * CS + 17);
  let sealed: Sealed;
  test('setup', async () => { sealed = await encryptBuffer(plaintext); });

  test('truncation at every chunk boundary, dropping the final chunk', async () => {
    const { header, chunks } = records(sealed.file);
    assert.equal(chunks.length, 3);
    for (let keep = 0; keep < chunks.length; keep += 1) {
      await rejects(Buffer.concat([header, ...chunks.slice(0, keep)]));
    }
  });

  test('truncation inside the header and inside chunks', async () => {
    for (const length of [0, 1, 5, 44, records(sealed.file).header.length - 1, sealed.file.length - 1, sealed.file.length - 16, sealed.file.length - 17]) {
      await rejects(sealed.file.subarray(0, length));
    }
  });

  test('reordered chunks', async () => {
    const { header, chunks } = records(sealed.file);
    await rejects(Buffer.concat([header, chunks[1], chunks[0], chunks[2]]));
  });

  test('duplicated chunks', async () => {
    const { header, chunks } = records(sealed.file);
    await rejects(Buffer.concat([header, chunks[0], chunks[0], chunks[1], chunks[2]]));
    await rejects(Buffer.concat([header, chunks[0], chunks[0], chunks[2]]));
    await rejects(Buffer.concat([header, chunks[0], chunks[1], chunks[1], chunks[2]]));
  });

  test('appended data', async () => {
    const { chunks } = records(sealed.file);
    for (const extra of [Buffer.alloc(1), randomBytes(16), chunks[0], chunks[2], randomBytes(CS + TAG + 3)]) {
      await rejects(Buffer.concat([sealed.file, extra]));
    }
  });

  test('every flipped byte of the file, header and body alike', async () => {
    // The lenient resolver hands out the right key whatever the header says, so the chunks' own binding is tested.
    const resolve = lenient(sealed.dataKey);
    for (let index = 0; index < sealed.file.length; index += 1) {
      const tampered = Buffer.from(sealed.file);
      tampered[index] ^= 0x01;
      await assert.rejects(decryptBuffer(tampered, resolve), CiphertextError, `flip at byte ${index}`);
    }
  });

  test('every header byte flipped to each of several values', async () => {
    const resolve = lenient(sealed.dataKey);
    const headerLength = records(sealed.file).header.length;
    for (let index = 0; index < headerLength; index += 1) {
      for (const mask of [0x80, 0xff]) {
        const tampered = Buffer.from(sealed.file);
        tampered[index] ^= mask;
        await assert.rejects(decryptBuffer(tampered, resolve), CiphertextError, `byte ${index} ^ ${mask}`);
      }
    }
  });

  test('a different encryption context in the header', async () => {
    const read = readFileHeader(sealed.file);
    assert.ok(read.complete);
    const forged = encodeFileHeader({ wrappedDataKey: sealed.wrappedDataKey, context: { ...sealed.context, file: 'b.txt' }, chunkSize: CS, salt: read.header.salt });
    const file = Buffer.concat([forged, sealed.file.subarray(read.header.length)]);
    await rejects(file); // the key service refuses the wrong context
    await rejects(file, lenient(sealed.dataKey)); // and the chunks refuse it even if it did not
  });

  test('a header or a chunk from another file under the same data key', async () => {
    const { dataKey, wrappedDataKey, context } = sealed;
    const other = await collect(Readable.from([plaintext]), createEncryptStream({ dataKey, wrappedDataKey, context, chunkSize: CS }));
    const a = records(sealed.file);
    const b = records(other);
    await rejects(Buffer.concat([b.header, ...a.chunks]));
    await rejects(Buffer.concat([a.header, a.chunks[0], b.chunks[1], a.chunks[2]]));
  });

  test('the wrong data key', async () => {
    await rejects(sealed.file, () => randomBytes(32));
  });

  test('no plaintext of a chunk is released before its tag verifies', async () => {
    for (const [chunkIndex, expected] of [[0, 0], [1, CS], [2, 2 * CS]] as const) {
      const { header, chunks } = records(sealed.file);
      const bad = Buffer.from(chunks[chunkIndex]);
      bad[bad.length - 1] ^= 1;
      const parts = [header, ...chunks];
      parts[chunkIndex + 1] = bad;
      // Feed one record at a time and let each settle, so whatever the stream releases is observed.
      const released: Buffer[] = [];
      const stream = createDecryptStream({ resolveDataKey: kms.resolveDataKey });
      stream.on('data', (chunk: Buffer) => released.push(chunk));
      const failed = new Promise<unknown>((resolve) => stream.on('error', resolve));
      for (const part of parts) {
        stream.write(part);
        await new Promise(setImmediate);
      }
      stream.end();
      assert.ok(await failed instanceof CiphertextError);
      assert.deepEqual(Buffer.concat(released), plaintext.subarray(0, expected));
    }
  });

  test('errors from the resolver reach the caller unchanged', async () => {
    const refusal = new Error('AccessDenied');
    await assert.rejects(decryptBuffer(sealed.file, () => { throw refusal; }), (error) => error === refusal);
  });
});

describe('chunked AEAD format', () => {
  test('a file decrypts by the written spec alone, with node:crypto directly', async () => {
    const plaintext = randomBytes(2 * CS + 100);
    const context = { app: 'spec', 'ä': 'ö' };
    const sealed = await encryptBuffer(plaintext, { context });
    const file = sealed.file;
    assert.equal(file.subarray(0, 5).toString('latin1'), 'TPENC');
    assert.equal(file[5], 1);
    assert.equal(file[6], 1);
    assert.equal(file.readUInt32BE(7), CS);
    const salt = file.subarray(11, 43);
    const contextLength = file.readUInt16BE(43);
    assert.deepEqual(file.subarray(45, 45 + contextLength), encodeEncryptionContext(context));
    const wrappedLength = file.readUInt16BE(45 + contextLength);
    const headerLength = 47 + contextLength + wrappedLength;
    assert.deepEqual(file.subarray(47 + contextLength, headerLength), sealed.wrappedDataKey);
    const digest = createHash('sha256').update(file.subarray(0, headerLength)).digest();
    const okm = Buffer.from(hkdfSync('sha256', sealed.dataKey, salt, Buffer.from('trustplane chunked-aead v1'), 36));
    const recovered: Buffer[] = [];
    let index = 0;
    for (let offset = headerLength; offset < file.length; offset += CS + TAG, index += 1) {
      const record = file.subarray(offset, Math.min(offset + CS + TAG, file.length));
      const isFinal = offset + record.length === file.length;
      const nonce = Buffer.alloc(12);
      okm.copy(nonce, 0, 32, 36);
      nonce.writeBigUInt64BE(BigInt(index), 4);
      const aad = Buffer.alloc(41);
      digest.copy(aad, 0);
      aad.writeBigUInt64BE(BigInt(index), 32);
      aad[40] = isFinal ? 1 : 0;
      const decipher = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), nonce);
      decipher.setAuthTag(record.subarray(record.length - TAG));
      decipher.setAAD(aad);
      recovered.push(decipher.update(record.subarray(0, record.length - TAG)), decipher.final());
    }
    assert.equal(index, 3);
    assert.deepEqual(Buffer.concat(recovered), plaintext);
  });
});

describe('chunked file header', () => {
  test('is read incrementally: incomplete prefixes ask for more, the whole header parses', () => {
    const bytes = encodeFileHeader({ wrappedDataKey: randomBytes(200), context: { a: '1', bb: '22' }, chunkSize: 65536 });
    let length = 0;
    let steps = 0;
    for (;;) {
      const read = readFileHeader(bytes.subarray(0, length));
      if (read.complete) {
        assert.equal(read.header.length, bytes.length);
        assert.deepEqual(read.header.context, { a: '1', bb: '22' });
        assert.equal(read.header.chunkSize, 65536);
        break;
      }
      assert.ok(read.bytesNeeded > length && read.bytesNeeded <= bytes.length);
      length = read.bytesNeeded;
      steps += 1;
    }
    assert.equal(steps, 3);
    // Bytes after the header (the chunks) are not part of it.
    const read = readFileHeader(Buffer.concat([bytes, randomBytes(10)]));
    assert.ok(read.complete && read.header.bytes.equals(bytes));
  });

  test('rejects foreign input from the first bytes', () => {
    for (const bad of ['TPX', 'PK\u0003\u0004', 'TPENC\u0002', 'TPENC\u0001\u0003', 'TPENC\u0001\u0000']) {
      assert.throws(() => readFileHeader(Buffer.from(bad, 'latin1')), CiphertextError, bad);
    }
  });

  test('rejects a non-canonical context encoding', () => {
    const header = encodeFileHeader({ wrappedDataKey: Buffer.from('w'), context: { a: '1', b: '2' } });
    // Swap the two entries: still decodable, but not sorted, so not canonical.
    const start = 45;
    const entryA = header.subarray(start + 4, start + 4 + 10);
    const entryB = header.subarray(start + 14, start + 24);
    const swapped = Buffer.concat([header.subarray(0, start + 4), entryB, entryA, header.subarray(start + 24)]);
    assert.equal(swapped.length, header.length);
    assert.ok(readFileHeader(header).complete);
    assert.throws(() => readFileHeader(swapped), CiphertextError);
  });

  test('the decrypt stream can refuse chunk sizes above a bound before asking for the key', async () => {
    const sealed = await encryptBuffer(randomBytes(10), { chunkSize: 2 * CS });
    let asked = false;
    const stream = createDecryptStream({ resolveDataKey: (header) => { asked = true; return kms.resolveDataKey(header); }, maxChunkSize: CS });
    await assert.rejects(collect(Readable.from([sealed.file]), stream), CiphertextError);
    assert.equal(asked, false);
  });

  test('the decrypt stream rejects a header alone and garbage', async () => {
    await rejects(encodeFileHeader({ wrappedDataKey: Buffer.from('w') }));
    await rejects(Buffer.from('hello, world'));
    await rejects(randomBytes(100_000));
  });
});

describe('chunked AEAD random access and lengths', () => {
  test('ciphertextLength and plaintextLength are inverse; impossible lengths are rejected', () => {
    for (const chunkSize of [CS, 5000, DEFAULT_CHUNK_SIZE]) {
      for (const size of [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3 * chunkSize, 12345678]) {
        const length = ciphertextLength(size, chunkSize, 100);
        assert.equal(plaintextLength(length, chunkSize, 100), size);
      }
      assert.throws(() => plaintextLength(15, chunkSize), CiphertextError);
      assert.throws(() => plaintextLength(chunkSize + TAG + 15, chunkSize), CiphertextError);
    }
  });

  test('decrypting only the chunks of a range gives that range of plaintext', async () => {
    const plaintext = randomBytes(7 * CS + 123);
    const sealed = await encryptBuffer(plaintext);
    const read = readFileHeader(sealed.file);
    assert.ok(read.complete);
    const header = read.header;
    assert.equal(plaintextLength(sealed.file.length, CS, header.length), plaintext.length);
    const fileKey = deriveChunkedFileKey(header, sealed.dataKey);
    const ranges = [[0, 1], [0, plaintext.length], [CS - 1, CS + 1], [CS, 2 * CS], [7 * CS, 7 * CS + 123], [plaintext.length - 1, plaintext.length]];
    for (let round = 0; round < 50; round += 1) {
      const start = Math.floor(Math.random() * plaintext.length);
      ranges.push([start, start + 1 + Math.floor(Math.random() * (plaintext.length - start))]);
    }
    for (const [start, end] of ranges) {
      const span = plaintextRangeToChunks(header, start, end, plaintext.length);
      const ciphertext = sealed.file.subarray(span.ciphertextStart, span.ciphertextEnd);
      assert.deepEqual(decryptRange(header, fileKey, span, ciphertext), plaintext.subarray(start, end), `${start}..${end}`);
      assert.deepEqual(decryptRange(header, sealed.dataKey, span, ciphertext), plaintext.subarray(start, end));
    }
    fileKey.zeroize();
  });

  test('a chunk decrypts only at its own index and with its own finality', async () => {
    const plaintext = randomBytes(2 * CS + 5);
    const sealed = await encryptBuffer(plaintext);
    const read = readFileHeader(sealed.file);
    assert.ok(read.complete);
    const { chunks } = records(sealed.file);
    assert.deepEqual(decryptChunk(read.header, sealed.dataKey, 1, false, chunks[1]), plaintext.subarray(CS, 2 * CS));
    assert.deepEqual(decryptChunk(read.header, sealed.dataKey, 2, true, chunks[2]), plaintext.subarray(2 * CS));
    assert.throws(() => decryptChunk(read.header, sealed.dataKey, 0, false, chunks[1]), CiphertextError);
    assert.throws(() => decryptChunk(read.header, sealed.dataKey, 1, true, chunks[1]), CiphertextError);
    assert.throws(() => decryptChunk(read.header, sealed.dataKey, 2, false, chunks[2]), CiphertextError);
    assert.throws(() => plaintextRangeToChunks(read.header, 5, 5, plaintext.length), RangeError);
    assert.throws(() => plaintextRangeToChunks(read.header, 0, plaintext.length + 1, plaintext.length), RangeError);
  });
});

describe('chunked AEAD streams in constant memory', () => {
  test('512 MiB through encrypt → decrypt → hash keeps RSS growth small', async (t) => {
    const block = randomBytes(1 << 20);
    const { dataKey, wrappedDataKey } = kms.generateDataKey({ test: 'memory' });

    /** Streams `mib` MiB of generated data through encrypt → decrypt; returns both hashes and the peak RSS seen. */
    async function roundTrip(mib: number): Promise<{ expected: string; actual: string; bytes: number; peakRss: number }> {
      const expected = createHash('sha256');
      const actual = createHash('sha256');
      function* generate(): Generator<Buffer> {
        for (let counter = 0; counter < mib; counter += 1) {
          const piece = Buffer.allocUnsafe(block.length);
          block.copy(piece);
          piece.writeUInt32BE(counter, (counter * 4099) % (block.length - 4));
          expected.update(piece);
          yield piece;
        }
      }
      let peakRss = 0;
      let bytes = 0;
      await pipeline(
        Readable.from(generate(), { objectMode: false, highWaterMark: 1 << 20 }),
        createEncryptStream({ dataKey, wrappedDataKey, context: { test: 'memory' } }),
        createDecryptStream({ resolveDataKey: kms.resolveDataKey }),
        async (stream: AsyncIterable<unknown>) => {
          for await (const piece of stream) {
            const chunk = piece as Buffer;
            actual.update(chunk);
            bytes += chunk.length;
            if ((bytes & 0xffffff) < chunk.length) peakRss = Math.max(peakRss, process.memoryUsage().rss);
          }
        },
      );
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      return { expected: expected.digest('hex'), actual: actual.digest('hex'), bytes, peakRss };
    }

    // A short warm-up lets the JS heap's young generation and the allocator reach their working size,
    // so what follows measures growth with the amount of data, which constant memory rules out.
    await roundTrip(64);
    const baseline = process.memoryUsage().rss;
    const result = await roundTrip(512);
    assert.equal(result.bytes, 512 << 20);
    assert.equal(result.actual, result.expected);
    const growth = (result.peakRss - baseline) / (1 << 20);
    t.diagnostic(`RSS growth ${growth.toFixed(1)} MiB over a baseline of ${(baseline / (1 << 20)).toFixed(0)} MiB`);
    assert.ok(growth < 64, `RSS grew by ${growth.toFixed(1)} MiB`);
  });
});

describe('chunked AEAD with AES-128 data keys', () => {
  /** One chunk sealed by the spec alone: HKDF-SHA-256 to a 16-byte key and 4-byte nonce prefix, then AES-128-GCM. */
  function sealChunkBySpec(header: Buffer, dataKey: Buffer, index: number, isFinal: boolean, plaintext: Buffer): Buffer {
    const salt = header.subarray(11, 43);
    const okm = Buffer.from(hkdfSync('sha256', dataKey, salt, Buffer.from('trustplane chunked-aead v1 aes-128-gcm'), 20));
    const nonce = Buffer.alloc(12);
    okm.copy(nonce, 0, 16, 20);
    nonce.writeBigUInt64BE(BigInt(index), 4);
    const aad = Buffer.alloc(41);
    createHash('sha256').update(header).digest().copy(aad, 0);
    aad.writeBigUInt64BE(BigInt(index), 32);
    aad[40] = isFinal ? 1 : 0;
    const cipher = createCipheriv('aes-128-gcm', okm.subarray(0, 16), nonce);
    cipher.setAAD(aad);
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  test('known answer: a fixed header, key and chunk give the bytes node:crypto computes from the spec', () => {
    const dataKey = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const header = encodeFileHeader({
      wrappedDataKey: Buffer.from('wrapped'), context: { bucket: 'b', key: 'k', zone: 'eu' }, chunkSize: CS,
      salt: Buffer.alloc(32, 0x5a), algorithm: CHUNKED_ALGORITHM_AES_128_GCM,
    });
    assert.equal(header[6], 2);
    const read = readFileHeader(header);
    assert.ok(read.complete);
    assert.equal(read.header.algorithm, CHUNKED_ALGORITHM_AES_128_GCM);
    const plaintext = Buffer.alloc(CS, 0x61);
    const fileKey = deriveKey(read.header, dataKey);
    const { ciphertext, tag } = fileKey.seal(3, false, plaintext);
    fileKey.zeroize();
    assert.deepEqual(Buffer.concat([ciphertext, tag]), sealChunkBySpec(header, dataKey, 3, false, plaintext));
  });

  test('the encrypt stream picks AES-128 from a 16-byte key and its chunks match the spec', async () => {
    const dataKey = randomBytes(16);
    const plaintext = randomBytes(2 * CS + 9);
    const stream = createEncryptStream({ dataKey, wrappedDataKey: Buffer.from('w'), context: { a: 'b' }, chunkSize: CS });
    const file = await collect(Readable.from([plaintext]), stream);
    assert.equal(file[6], 2);
    assert.equal(stream.header.algorithm, CHUNKED_ALGORITHM_AES_128_GCM);
    const { header, chunks } = records(file);
    assert.deepEqual(chunks, [
      sealChunkBySpec(header, dataKey, 0, false, plaintext.subarray(0, CS)),
      sealChunkBySpec(header, dataKey, 1, false, plaintext.subarray(CS, 2 * CS)),
      sealChunkBySpec(header, dataKey, 2, true, plaintext.subarray(2 * CS)),
    ]);
    assert.equal(file.length, ciphertextLength(plaintext.length, CS, fileHeaderLength({ a: 'b' }, 1)));
    assert.deepEqual(await decryptBuffer(file, () => Buffer.from(dataKey)), plaintext);
  });

  test('round trips of every edge size, and range decryption', async () => {
    for (const size of [0, 1, CS - 1, CS, CS + 1, 3 * CS + 7]) {
      const dataKey = randomBytes(16);
      const plaintext = randomBytes(size);
      const file = await collect(Readable.from(split(plaintext, 3 * CS)), createEncryptStream({ dataKey, wrappedDataKey: Buffer.from('w'), chunkSize: CS }));
      assert.deepEqual(await decryptBuffer(file, () => Buffer.from(dataKey)), plaintext, `${size} bytes`);
      if (size > 2) {
        const read = readFileHeader(file);
        assert.ok(read.complete);
        const span = plaintextRangeToChunks(read.header, 1, size - 1, size);
        assert.deepEqual(decryptRange(read.header, dataKey, span, file.subarray(span.ciphertextStart, span.ciphertextEnd)), plaintext.subarray(1, size - 1));
      }
    }
  });

  test('a key of the wrong length for the header\'s algorithm is refused as a bad ciphertext', async () => {
    const key128 = randomBytes(16);
    const file128 = await collect(Readable.from([randomBytes(100)]), createEncryptStream({ dataKey: key128, wrappedDataKey: Buffer.from('w'), chunkSize: CS }));
    await rejects(file128, () => randomBytes(32));
    const sealed256 = await encryptBuffer(randomBytes(100));
    await rejects(sealed256.file, () => randomBytes(16));
    // Relabelling the algorithm byte fails whichever key is offered: the header digest is in every chunk's AAD.
    const relabelled = Buffer.from(sealed256.file);
    relabelled[6] = CHUNKED_ALGORITHM_AES_128_GCM;
    await rejects(relabelled, lenient(sealed256.dataKey));
    await rejects(relabelled, () => sealed256.dataKey.subarray(0, 16));
    const relabelled128 = Buffer.from(file128);
    relabelled128[6] = CHUNKED_ALGORITHM_AES_256_GCM;
    await rejects(relabelled128, () => Buffer.from(key128));
    await rejects(relabelled128, () => Buffer.concat([key128, key128]));
    const read = readFileHeader(file128);
    assert.ok(read.complete);
    assert.throws(() => deriveKey(read.header, randomBytes(32)), CiphertextError);
  });

  test('unknown algorithm bytes are refused', () => {
    for (const value of [0, 3, 255]) {
      const header = encodeFileHeader({ wrappedDataKey: Buffer.from('w') });
      header[6] = value;
      assert.throws(() => readFileHeader(header), CiphertextError);
    }
  });
});
