// The streaming scanner: chunk and step boundaries anywhere, whole-stream offsets, binary input, the match cap, bounded memory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileDetectorPolicy, scanText, type DataScanner, type DetectorMatch } from '../../../src/shared/data-policy/index.ts';

const ALL_DETECTORS = ['payment_card', 'us_ssn', 'iban', 'email', 'phone', { name: 'codename', keywords: ['bluebird'] }];
const factory = compileDetectorPolicy({ detectors: ALL_DETECTORS });
const SAMPLE = 'Card 4111 1111 1111 1111 — ünïcödé € 😀 ssn 123-45-6789, IBAN DE89 3704 0044 0532 0130 00, '
  + 'mail jane@example.com, call +44 20 7946 0958, bluebird.';

function scanChunks(scanner: DataScanner, chunks: readonly Uint8Array[]): DetectorMatch[] {
  return [...chunks.flatMap((chunk) => scanner.write(chunk)), ...scanner.finish()];
}

describe('DataScanner', () => {
  const expected = scanText(factory, SAMPLE);

  it('finds every kind in the sample, offsets pointing at the matched text', () => {
    assert.deepEqual(expected.map((m) => SAMPLE.slice(m.offset, m.offset + m.length)), ['4111 1111 1111 1111',
      '123-45-6789', 'DE89 3704 0044 0532 0130 00', 'jane@example.com', '+44 20 7946 0958', 'bluebird']);
  });

  it('gives the same matches for a split of the bytes at every point (including inside multi-byte characters)', () => {
    const bytes = Buffer.from(SAMPLE, 'utf8');
    for (let split = 0; split <= bytes.length; split += 1) {
      const matches = scanChunks(factory.createScanner(), [bytes.subarray(0, split), bytes.subarray(split)]);
      assert.deepEqual(matches, expected, `split at byte ${split}`);
    }
  });

  it('gives the same matches whatever the step size, byte by byte', () => {
    const bytes = Buffer.from(SAMPLE, 'utf8');
    for (const stepChars of [1, 2, 3, 7, 16, 50]) {
      const oneByteChunks = [...bytes].map((byte) => Uint8Array.of(byte));
      assert.deepEqual(scanChunks(factory.createScanner({ stepChars }), oneByteChunks), expected, `step ${stepChars}`);
    }
  });

  it('reports offsets in the whole stream, far beyond the window it keeps', () => {
    const filler = 'lorem ipsum dolor sit amet '.repeat(4000);
    const scanner = factory.createScanner({ stepChars: 512 });
    const matches = scanChunks(scanner, [Buffer.from(filler), Buffer.from(SAMPLE), Buffer.from(filler), Buffer.from(SAMPLE)]);
    const shift = (by: number) => expected.map((m) => ({ ...m, offset: m.offset + by }));
    assert.deepEqual(matches, [...shift(filler.length), ...shift(2 * filler.length + SAMPLE.length)]);
  });

  it('scans binary (non-UTF-8) content as replacement characters without throwing', () => {
    const garbage = Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0x80]);
    const scanner = factory.createScanner({ stepChars: 4 });
    const matches = scanChunks(scanner, [garbage, Buffer.from(' card 4111111111111111 '), garbage.subarray(0, 3)]);
    const decodedPrefix = new TextDecoder().decode(garbage).length;
    assert.deepEqual(matches.map((m) => [m.type, m.offset]), [['payment_card', decodedPrefix + 6]]);
  });

  it('stops at maxMatches per object and says so', () => {
    const capped = compileDetectorPolicy({ detectors: ['email'], maxMatches: 3 });
    const scanner = capped.createScanner({ stepChars: 10 });
    const matches = scanChunks(scanner, [Buffer.from('a@example.com '.repeat(10))]);
    assert.equal(matches.length, 3);
    assert.equal(scanner.truncated, true);
    const roomy = capped.createScanner();
    scanChunks(roomy, [Buffer.from('a@example.com b@example.com')]);
    assert.equal(roomy.truncated, false);
  });

  it('scans a 50 MiB stream holding bounded memory', { timeout: 300_000 }, () => {
    const streamBytes = 50 * 1024 * 1024;
    const filler = Buffer.from('order 4711 shipped, lorem ipsum dolor sit amet, consectetur 2024-11-24 12:00\n');
    const chunk = Buffer.concat([Buffer.from('card 4111-1111-1111-1111\n'),
      ...Array.from({ length: Math.ceil(65536 / filler.length) }, () => filler)]);
    const policy = compileDetectorPolicy({ detectors: ['payment_card', 'us_ssn', 'iban', 'email'], maxMatches: 1_000_000 });
    const scanner = policy.createScanner();
    const heapBefore = process.memoryUsage().heapUsed;
    let peakGrowth = 0;
    let fed = 0;
    let chunks = 0;
    let reported = 0;
    while (fed < streamBytes) {
      reported += scanner.write(chunk).length;
      fed += chunk.length;
      chunks += 1;
      if (chunks % 16 === 0) peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - heapBefore);
    }
    reported += scanner.finish().length;
    assert.equal(reported, chunks, 'one card per chunk, every one found');
    assert.equal(scanner.truncated, false);
    assert.ok(peakGrowth < 16 * 1024 * 1024, `heap grew ${peakGrowth} bytes for a ${streamBytes}-byte stream`);
  });
});
