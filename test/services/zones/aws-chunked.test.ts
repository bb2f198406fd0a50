// The aws-chunked decoder on its own: AWS's documented examples, chunk and trailer signatures, framing
// errors, and the bounds that keep a hostile client from making it buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AwsChunkedDecoder, MAX_FRAMING_LINE, type AwsChunkedDecoderOptions } from '../../../src/services/zones/s3/auth/index.ts';
import { S3Error } from '../../../src/services/zones/s3/errors.ts';
import { createChecksum } from '../../../src/services/zones/s3/auth/index.ts';
import { AWS_EXAMPLE, awsExampleBody, encodeAwsChunked, signingKey, type ChunkSigner } from './s3-auth-fixture.ts';

const exampleKey = signingKey(AWS_EXAMPLE.secret, '20130524', 'us-east-1');

function exampleSigning(seedSignature: string): NonNullable<AwsChunkedDecoderOptions['signing']> {
  return { signingKey: exampleKey, amzDate: AWS_EXAMPLE.amzDate, scope: AWS_EXAMPLE.scope, seedSignature };
}

/** Feeds `framed` in pieces of `step` bytes; returns the decoded bytes and the trailers, or throws the S3Error. */
function decode(options: AwsChunkedDecoderOptions, framed: Buffer, step = framed.length): { data: Buffer; trailers: ReadonlyMap<string, string> } {
  const decoder = new AwsChunkedDecoder(options);
  const out: Buffer[] = [];
  for (let offset = 0; offset < framed.length; offset += step) {
    decoder.write(framed.subarray(offset, offset + step), (slice) => out.push(Buffer.from(slice)));
  }
  const trailers = decoder.end();
  return { data: Buffer.concat(out), trailers };
}

function assertS3Error(fn: () => unknown, code: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof S3Error, `expected an S3Error, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

function freshSigner(seed = 'f'.repeat(64)): ChunkSigner {
  return { key: exampleKey, amzDate: AWS_EXAMPLE.amzDate, scope: AWS_EXAMPLE.scope, previous: seed };
}

test('AWS example (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): the documented chunk signatures verify, in any slicing', () => {
  const framed = Buffer.concat([awsExampleBody(AWS_EXAMPLE.chunkSignatures), Buffer.from('\r\n')]);
  for (const step of [framed.length, 65_600, 4096, 7, 1]) {
    const { data } = decode({ signing: exampleSigning(AWS_EXAMPLE.seedSignature), trailers: [], decodedLength: 66560 }, framed, step);
    assert.equal(data.length, 66560);
    assert.ok(data.equals(Buffer.alloc(66560, 'a')), `step ${step}`);
  }
});

test('our spec-built encoder reproduces the AWS example byte for byte', () => {
  const signer = freshSigner(AWS_EXAMPLE.seedSignature);
  const ours = Buffer.concat([...encodeAwsChunked([Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a')], { signer })]);
  assert.ok(ours.equals(Buffer.concat([awsExampleBody(AWS_EXAMPLE.chunkSignatures), Buffer.from('\r\n')])));
});

test('AWS trailer example (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER): chunk and trailer signatures verify, CRC32C matches', async () => {
  const { trailer } = AWS_EXAMPLE;
  const framed = Buffer.concat([awsExampleBody(trailer.chunkSignatures),
    Buffer.from(`x-amz-checksum-crc32c:${trailer.checksum}\r\nx-amz-trailer-signature:${trailer.trailerSignature}\r\n\r\n`)]);
  const { data, trailers } = decode({ signing: exampleSigning(trailer.seedSignature), trailers: ['x-amz-checksum-crc32c'],
    decodedLength: 66560, signedTrailer: true }, framed, 1000);
  assert.equal(data.length, 66560);
  assert.equal(trailers.get('x-amz-checksum-crc32c'), trailer.checksum);
  const crc = createChecksum('CRC32C');
  crc.update(data);
  assert.equal((await crc.digest()).toString('base64'), trailer.checksum);

  const forged = Buffer.from(framed.toString('latin1').replace(trailer.checksum, 'AAAAAA=='), 'latin1');
  assertS3Error(() => decode({ signing: exampleSigning(trailer.seedSignature), trailers: ['x-amz-checksum-crc32c'],
    decodedLength: 66560, signedTrailer: true }, forged), 'SignatureDoesNotMatch');
});

test('a flipped data byte, a flipped chunk signature, or a wrong seed fails the chunk signature', () => {
  const good = Buffer.concat([awsExampleBody(AWS_EXAMPLE.chunkSignatures), Buffer.from('\r\n')]);
  const options = { signing: exampleSigning(AWS_EXAMPLE.seedSignature), trailers: [], decodedLength: 66560 };
  const flippedData = Buffer.from(good);
  flippedData[100] ^= 0x01;
  assertS3Error(() => decode(options, flippedData), 'SignatureDoesNotMatch');

  const flippedSignature = Buffer.from(good);
  const at = flippedSignature.indexOf('chunk-signature=') + 'chunk-signature='.length;
  flippedSignature[at] = flippedSignature[at] === 0x61 ? 0x62 : 0x61;
  assertS3Error(() => decode(options, flippedSignature), 'SignatureDoesNotMatch');

  assertS3Error(() => decode({ ...options, signing: exampleSigning('0'.repeat(64)) }, good), 'SignatureDoesNotMatch');
  // A signed body must sign every chunk: one without a signature is refused before its data passes.
  const unsignedChunk = Buffer.from(good.toString('latin1').replace(/^10000;chunk-signature=[0-9a-f]+/, '10000'), 'latin1');
  const decoder = new AwsChunkedDecoder(options);
  let delivered = 0;
  assertS3Error(() => decoder.write(unsignedChunk, (slice) => { delivered += slice.length; }), 'SignatureDoesNotMatch');
  assert.equal(delivered, 0);
});

test('chunks swapped or replayed break the chain', () => {
  const signer = freshSigner();
  const pieces = [...encodeAwsChunked([Buffer.from('first chunk'), Buffer.from('second chunk')], { signer })];
  // pieces: size, data, crlf, size, data, crlf, final
  const swapped = Buffer.concat([pieces[3], pieces[4], pieces[5], pieces[0], pieces[1], pieces[2], pieces[6]]);
  assertS3Error(() => decode({ signing: { signingKey: exampleKey, amzDate: AWS_EXAMPLE.amzDate, scope: AWS_EXAMPLE.scope,
    seedSignature: 'f'.repeat(64) }, trailers: [] }, swapped), 'SignatureDoesNotMatch');
});

test('unsigned chunks with a trailing checksum decode; the trailer must be the declared one', () => {
  const framed = Buffer.concat([...encodeAwsChunked([Buffer.from('hello '), Buffer.from('world')], { trailers: [['x-amz-checksum-crc32', 'DUoRhQ==']] })]);
  const { data, trailers } = decode({ trailers: ['x-amz-checksum-crc32'], decodedLength: 11 }, framed, 3);
  assert.equal(data.toString(), 'hello world');
  assert.equal(trailers.get('x-amz-checksum-crc32'), 'DUoRhQ==');
  assertS3Error(() => decode({ trailers: ['x-amz-checksum-sha256'] }, framed), 'InvalidRequest');
  const noTrailer = Buffer.concat([...encodeAwsChunked([Buffer.from('hello')])]);
  assertS3Error(() => decode({ trailers: ['x-amz-checksum-crc32'] }, noTrailer), 'IncompleteBody');
});

test('a body that ends right after the last chunk or trailer (no closing empty line) is complete', () => {
  assert.equal(decode({ trailers: [] }, Buffer.from('5\r\nhello\r\n0\r\n')).data.toString(), 'hello');
  assert.equal(decode({ trailers: ['x-amz-checksum-crc32'] }, Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n')).trailers.get('x-amz-checksum-crc32'), 'NhCmhg==');
});

test('truncation anywhere is IncompleteBody', () => {
  const framed = Buffer.concat([awsExampleBody(AWS_EXAMPLE.chunkSignatures), Buffer.from('\r\n')]);
  const options = { signing: exampleSigning(AWS_EXAMPLE.seedSignature), trailers: [], decodedLength: 66560 };
  for (const cut of [0, 10, 100, 65_600, framed.length - 90, framed.length - 3]) {
    assertS3Error(() => decode(options, framed.subarray(0, cut)), 'IncompleteBody');
  }
  assertS3Error(() => decode({ trailers: [] }, Buffer.from('5\r\nhel')), 'IncompleteBody');
  assertS3Error(() => decode({ trailers: ['x-amz-checksum-crc32'] }, Buffer.from('5\r\nhello\r\n0\r\nx-amz-checksum-crc32:Nh')), 'IncompleteBody');
});

test('more data than declared, or bytes after the end, are refused', () => {
  assertS3Error(() => decode({ trailers: [], decodedLength: 4 }, Buffer.from('5\r\nhello\r\n0\r\n\r\n')), 'InvalidRequest');
  assertS3Error(() => decode({ trailers: [], decodedLength: 6 }, Buffer.from('5\r\nhello\r\n0\r\n\r\n')), 'IncompleteBody');
  assertS3Error(() => decode({ trailers: [] }, Buffer.from('5\r\nhello\r\n0\r\n\r\nextra')), 'InvalidRequest');
  // The oversize chunk is refused at its size line, before any of its data is handed out.
  const decoder = new AwsChunkedDecoder({ trailers: [], decodedLength: 4 });
  let delivered = 0;
  assertS3Error(() => decoder.write(Buffer.from('5\r\nhello'), (slice) => { delivered += slice.length; }), 'InvalidRequest');
  assert.equal(delivered, 0);
});

test('malformed framing is refused', () => {
  const cases = ['zz\r\nhello\r\n0\r\n\r\n', '5\r\nhelloXY0\r\n\r\n', '5\nhello\r\n0\r\n\r\n', '-5\r\nhello\r\n0\r\n\r\n',
    '5\r\nhello\r\n0\r\nno-colon\r\n\r\n'];
  for (const body of cases) {
    assert.throws(() => decode({ trailers: [] }, Buffer.from(body)), (error: unknown) => error instanceof S3Error
      && ['IncompleteBody', 'InvalidRequest'].includes(error.code), JSON.stringify(body));
  }
  assertS3Error(() => decode({ trailers: [] }, Buffer.from('1000000000000\r\n')), 'InvalidRequest');
});

test('a framing line without an end is refused once it passes the bound, however it is sliced', () => {
  for (const step of [1, 1000, 1 << 20]) {
    const decoder = new AwsChunkedDecoder({ trailers: [] });
    const endless = Buffer.alloc(1 << 20, '0');
    assertS3Error(() => {
      for (let offset = 0; offset < endless.length; offset += step) decoder.write(endless.subarray(offset, offset + step), () => {});
    }, 'IncompleteBody');
  }
  // Exactly at the bound is still a line.
  const longest = `5;${'x'.repeat(MAX_FRAMING_LINE - 4)}\r\n`;
  assert.equal(Buffer.byteLength(longest), MAX_FRAMING_LINE);
  assert.equal(decode({ trailers: [] }, Buffer.from(`${longest}hello\r\n0\r\n\r\n`)).data.toString(), 'hello');
  // Trailers are bounded too.
  const names = Array.from({ length: 8 }, (_, index) => `x-amz-meta-t${index}`);
  const manyTrailers = names.map((name) => `${name}:${'A'.repeat(3000)}\r\n`).join('');
  assertS3Error(() => decode({ trailers: names }, Buffer.from(`0\r\n${manyTrailers}\r\n`)), 'IncompleteBody');
});

test('signed trailer: a missing, wrong or misplaced x-amz-trailer-signature is refused', () => {
  const body = (mutate: (trailerSignature: string) => string) => {
    const signer = freshSigner();
    const pieces = [...encodeAwsChunked([Buffer.from('payload')], { signer, trailers: [['x-amz-checksum-crc32', 'AAAAAA==']] })];
    const last = pieces.pop() as Buffer;
    return Buffer.concat([...pieces, Buffer.from(mutate(last.toString('latin1')), 'latin1')]);
  };
  const options = { signing: { signingKey: exampleKey, amzDate: AWS_EXAMPLE.amzDate, scope: AWS_EXAMPLE.scope, seedSignature: 'f'.repeat(64) },
    trailers: ['x-amz-checksum-crc32'], signedTrailer: true };
  assert.equal(decode(options, body((tail) => tail)).data.toString(), 'payload');
  assertS3Error(() => decode(options, body((tail) => tail.replace(/x-amz-trailer-signature:[0-9a-f]+\r\n/, ''))), 'SignatureDoesNotMatch');
  assertS3Error(() => decode(options, body((tail) => tail.replace(/signature:([0-9a-f])/, (_m, c: string) => `signature:${c === 'a' ? 'b' : 'a'}`))), 'SignatureDoesNotMatch');
  assertS3Error(() => decode(options, body((tail) => tail.replace('AAAAAA==', 'AAAAAB=='))), 'SignatureDoesNotMatch');
  assertS3Error(() => decode(options, body((tail) => `${tail.slice(0, -2)}x-amz-checksum-crc32:AAAAAA==\r\n\r\n`)), 'IncompleteBody');
});
