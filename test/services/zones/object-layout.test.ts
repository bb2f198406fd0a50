import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeObjectLayout, encodeObjectLayout, objectPlaintextLength, resolveRangeHeader, MAX_ENCODED_LAYOUT_BYTES, type ObjectLayout,
} from '../../../src/services/zones/s3/domain/object-layout.ts';
import { encryptedObjectLength, randomBytes } from '../../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../../src/shared/errors.ts';
import { S3Error } from '../../../src/services/zones/s3/errors.ts';

const MiB = 1 << 20;
const CHUNK = 256 * 1024;

/** A layout as the proxy would build it: part sizes from encryptedObjectLength. */
function multipart(sizes: number[], uploadId = 'VXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA'): ObjectLayout & { kind: 'multipart' } {
  const wrappedDataKey = randomBytes(150);
  return {
    kind: 'multipart', uploadId, chunkSize: CHUNK,
    parts: sizes.map((plaintextLength, index) => ({
      partNumber: index + 1, plaintextLength,
      ciphertextLength: encryptedObjectLength(plaintextLength, { wrappedDataKey, context: { bucket: 'b', key: 'k', zone: 'eu' }, chunkSize: CHUNK, segment: { uploadId, partNumber: index + 1 } }),
    })),
  };
}

describe('object layout encoding', () => {
  test('single objects round trip, empty ones too', () => {
    for (const layout of [{ kind: 'single', plaintextLength: 0, chunkSize: CHUNK }, { kind: 'single', plaintextLength: 5 * MiB + 1, chunkSize: 4096 }] as const) {
      const text = encodeObjectLayout(layout);
      assert.deepEqual(decodeObjectLayout(text), layout);
    }
    assert.equal(encodeObjectLayout({ kind: 'single', plaintextLength: 10, chunkSize: CHUNK }), '1:s:262144:10');
  });

  test('multipart layouts round trip: unequal parts, an empty last part, skipped part numbers, odd upload ids', () => {
    const layouts: ObjectLayout[] = [
      multipart([5 * MiB, 5 * MiB, 1]),
      multipart([5 * MiB, 0]),
      multipart([0]),
      multipart([7, 5 * MiB, 7, 7, 3], 'id:with:colons,and=plus+signs/ü'),
      { ...multipart([1, 2]), parts: [{ partNumber: 3, plaintextLength: 1, ciphertextLength: 300 }, { partNumber: 10_000, plaintextLength: 1, ciphertextLength: 300 }] },
    ];
    for (const layout of layouts) {
      const text = encodeObjectLayout(layout);
      assert.deepEqual(decodeObjectLayout(text), layout, text);
      assert.equal(objectPlaintextLength(decodeObjectLayout(text)), objectPlaintextLength(layout));
    }
  });

  test('10,000 equal parts and a short last one encode in a few dozen bytes beyond the upload id', () => {
    const layout = multipart([...Array.from({ length: 9_999 }, () => 5 * MiB), 12_345]);
    const text = encodeObjectLayout(layout);
    assert.ok(text.length - layout.uploadId.length < 64, `${text.length - layout.uploadId.length} bytes: ${text}`);
    assert.equal(decodeObjectLayout(text).kind, 'multipart');
    assert.deepEqual(decodeObjectLayout(text), layout);
  });

  test('a layout too varied to fit is refused with a clear S3 error', () => {
    const sizes = Array.from({ length: 200 }, (_, index) => 5 * MiB + index);
    assert.throws(() => encodeObjectLayout(multipart(sizes)), (error: unknown) =>
      error instanceof S3Error && error.code === 'InvalidRequest' && /too many different sizes/.test(error.message));
    // Somewhat varied layouts still fit.
    assert.ok(encodeObjectLayout(multipart(sizes.slice(0, 20))).length <= MAX_ENCODED_LAYOUT_BYTES);
  });

  test('malformed layouts are refused when encoding', () => {
    const base = multipart([5, 5]);
    const bad: ObjectLayout[] = [
      { kind: 'single', plaintextLength: -1, chunkSize: CHUNK },
      { kind: 'single', plaintextLength: 1, chunkSize: 100 },
      { ...base, parts: [] },
      { ...base, uploadId: '' },
      { ...base, parts: [base.parts[1], base.parts[0]] },
      { ...base, parts: [{ ...base.parts[0], partNumber: 0 }] },
      { ...base, parts: [{ ...base.parts[0], partNumber: 10_001 }] },
      { ...base, parts: [{ ...base.parts[0], ciphertextLength: 5 }] },
      { ...base, parts: [{ ...base.parts[0], plaintextLength: 1.5 }] },
    ];
    for (const layout of bad) assert.throws(() => encodeObjectLayout(layout), RangeError, JSON.stringify(layout));
  });

  test('decoding accepts exactly what encoding writes', () => {
    const good = encodeObjectLayout(multipart([5 * MiB, 5 * MiB, 1], 'u1'));
    assert.match(good, /^1:m:262144:1-2=5242880\+\d+,3=1\+\d+:u1$/);
    const overhead = good.match(/1-2=5242880\+(\d+)/)![1];
    for (const text of [
      '', '1', '2:s:262144:10', '1:s:262144', '1:s:262144:10:1', '1:s:0262144:10', '1:s:262144:-1', '1:s:100:10', '1:x:262144:10',
      '1:s:262144:99999999999999999999', '1:m:262144:1=5+40:', '1:m:262144::u', `1:m:262144:1=5+${overhead}`,
      `1:m:262144:1=5+${overhead},1=5+${overhead}:u`, `1:m:262144:2=5+${overhead},1=5+${overhead}:u`,
      // Runs that should have been one: not canonical.
      `1:m:262144:1=5242880+${overhead},2=5242880+${overhead},3=1+1:u1`,
      `1:m:262144:1-1=5+${overhead}:u`, `1:m:262144:2-1=5+${overhead}:u`, `1:m:262144:1-10001=5+${overhead}:u`,
      `1:m:262144:1-9999999999=5+${overhead}:u`, `1:m:262144:1=5+0:u`, ` ${good}`, `${good.replace('1:m', '1:M')}`,
      'x'.repeat(2000),
    ]) {
      assert.throws(() => decodeObjectLayout(text), CiphertextError, text.slice(0, 80));
    }
  });
});

describe('client Range headers', () => {
  const length = 1000;
  test('satisfiable ranges, clamped to the object', () => {
    const cases: Array<[string, { start: number; end: number }]> = [
      ['bytes=0-0', { start: 0, end: 0 }], ['bytes=0-999', { start: 0, end: 999 }], ['bytes=0-5000', { start: 0, end: 999 }],
      ['bytes=10-', { start: 10, end: 999 }], ['bytes=-1', { start: 999, end: 999 }], ['bytes=-5000', { start: 0, end: 999 }],
      ['bytes=999-999', { start: 999, end: 999 }], ['bytes = 5 - 9', { start: 5, end: 9 }], ['Bytes=1-2', { start: 1, end: 2 }],
      ['bytes=0-99999999999999999999999', { start: 0, end: 999 }],
    ];
    for (const [header, range] of cases) assert.deepEqual(resolveRangeHeader(header, length), range, header);
  });

  test('absent, malformed and multi-range headers mean the whole object', () => {
    for (const header of [undefined, '', 'bytes=', 'bytes=-', 'bytes=5-4', 'items=0-1', 'bytes=0-1,3-4', 'bytes=a-b', 'bytes=1.5-2']) {
      assert.equal(resolveRangeHeader(header, length), undefined, String(header));
    }
  });

  test('unsatisfiable ranges are S3 InvalidRange with the object size', () => {
    for (const [header, size] of [['bytes=1000-', length], ['bytes=1000-2000', length], ['bytes=-0', length], ['bytes=0-', 0], ['bytes=-5', 0],
      ['bytes=99999999999999999999999-', length]] as const) {
      assert.throws(() => resolveRangeHeader(header, size), (error: unknown) =>
        error instanceof S3Error && error.code === 'InvalidRange' && error.status === 416 && error.fields.ActualObjectSize === String(size), header);
    }
  });
});
