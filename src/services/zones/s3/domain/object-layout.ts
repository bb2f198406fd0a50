// How an encrypted object is laid out (single or multipart, part sizes), as compact text for sealed metadata, and client Range arithmetic.
// Must never do I/O or touch keys; must never accept a layout text that is not exactly what encodeObjectLayout writes.
import { CiphertextError } from '../../../../shared/errors.ts';
import { checkObjectLayout, objectPlaintextLength, type ObjectLayout, type ObjectLayoutPart } from '../../../../shared/crypto/index.ts';
import { S3Error } from '../errors.ts';

export type { ObjectLayout, ObjectLayoutPart };
export { objectPlaintextLength };

/*
 * Text format, version 1 (decimal numbers without leading zeros):
 *   single:    1:s:<chunk size>:<plaintext length>
 *   multipart: 1:m:<chunk size>:<run>[,<run>...]:<upload id>
 *     run = <first part>[-<last part>]=<plaintext length>+<ciphertext length - plaintext length>
 *     a run covers consecutive part numbers whose sizes are all equal.
 * Clients upload parts of one size (the last may be smaller) and every part header of an upload has
 * the same length (object-envelope.ts), so 10,000 parts are two runs: about 50 bytes plus the upload
 * id. The upload id comes last, so it may hold any character, ':' included.
 */

/** S3 allows 2 KB of user metadata in all; the layout may use at most half, sealed alongside the rest. */
export const MAX_ENCODED_LAYOUT_BYTES = 1024;
const VERSION = '1';
const NUMBER = '(0|[1-9][0-9]*)';
const RUN = new RegExp(`^${NUMBER}(?:-${NUMBER})?=${NUMBER}\\+${NUMBER}$`);
const SINGLE = new RegExp(`^${VERSION}:s:${NUMBER}:${NUMBER}$`);
const MULTIPART_HEAD = new RegExp(`^${VERSION}:m:${NUMBER}:([^:]+):`);

interface Run { first: number; last: number; plaintextLength: number; overhead: number }

function toRuns(parts: ObjectLayoutPart[]): Run[] {
  const runs: Run[] = [];
  for (const part of parts) {
    const overhead = part.ciphertextLength - part.plaintextLength;
    const run = runs.at(-1);
    if (run && run.last + 1 === part.partNumber && run.plaintextLength === part.plaintextLength && run.overhead === overhead) {
      run.last = part.partNumber;
    } else {
      runs.push({ first: part.partNumber, last: part.partNumber, plaintextLength: part.plaintextLength, overhead });
    }
  }
  return runs;
}

/**
 * The layout as compact text. Throws RangeError for a malformed layout, and S3Error InvalidRequest
 * when the parts' sizes vary so much that the text would exceed MAX_ENCODED_LAYOUT_BYTES.
 */
export function encodeObjectLayout(layout: ObjectLayout): string {
  checkObjectLayout(layout);
  if (layout.kind === 'single') return `${VERSION}:s:${layout.chunkSize}:${layout.plaintextLength}`;
  const runs = toRuns(layout.parts)
    .map((run) => `${run.first}${run.last === run.first ? '' : `-${run.last}`}=${run.plaintextLength}+${run.overhead}`)
    .join(',');
  const text = `${VERSION}:m:${layout.chunkSize}:${runs}:${layout.uploadId}`;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_ENCODED_LAYOUT_BYTES) {
    throw new S3Error('InvalidRequest', `The upload's parts have too many different sizes to record (${bytes} bytes of layout, `
      + `at most ${MAX_ENCODED_LAYOUT_BYTES}); upload parts of one size, the last one may be smaller.`);
  }
  return text;
}

function malformed(): never {
  throw new CiphertextError('The object layout is malformed.');
}

/** Reads encodeObjectLayout's text; CiphertextError for anything else (the text comes from sealed metadata). */
export function decodeObjectLayout(text: string): ObjectLayout {
  if (typeof text !== 'string' || Buffer.byteLength(text, 'utf8') > MAX_ENCODED_LAYOUT_BYTES) malformed();
  let layout: ObjectLayout;
  const single = SINGLE.exec(text);
  if (single) {
    layout = { kind: 'single', chunkSize: Number(single[1]), plaintextLength: Number(single[2]) };
  } else {
    const head = MULTIPART_HEAD.exec(text);
    if (!head) malformed();
    const uploadId = text.slice(head[0].length);
    const parts: ObjectLayoutPart[] = [];
    for (const runText of head[2].split(',')) {
      const run = RUN.exec(runText);
      if (!run) malformed();
      const first = Number(run[1]);
      const last = run[2] === undefined ? first : Number(run[2]);
      const plaintextLength = Number(run[3]);
      const ciphertextLength = plaintextLength + Number(run[4]);
      // Bounded by the part-number check below; refuse before building a huge array.
      if (last <= first && run[2] !== undefined) malformed();
      if (last - first + parts.length >= 10_000) malformed();
      for (let partNumber = first; partNumber <= last; partNumber += 1) parts.push({ partNumber, plaintextLength, ciphertextLength });
    }
    layout = { kind: 'multipart', uploadId, chunkSize: Number(head[1]), parts };
  }
  try {
    checkObjectLayout(layout);
  } catch {
    malformed();
  }
  // Exactly one text per layout: runs split where they could have been merged are refused.
  let canonical: string;
  try {
    canonical = encodeObjectLayout(layout);
  } catch {
    malformed();
  }
  if (canonical !== text) malformed();
  return layout;
}

/**
 * A client's Range header against an object of `objectLength` plaintext bytes, as S3 treats it:
 * absent, malformed or multi-range → undefined (the whole object); unsatisfiable → S3Error
 * InvalidRange; otherwise the inclusive range, clamped to the object.
 */
export function resolveRangeHeader(header: string | undefined, objectLength: number): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  const unsatisfiable = (): never => {
    throw new S3Error('InvalidRange', 'The requested range is not satisfiable',
      { RangeRequested: header.trim(), ActualObjectSize: String(objectLength) });
  };
  const last = objectLength - 1;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0 || objectLength === 0) unsatisfiable();
    return { start: Math.max(0, objectLength - suffix), end: last };
  }
  const start = Number(match[1]);
  // A last position before the first makes the header invalid, which HTTP says to ignore.
  if (match[2] !== '' && Number(match[2]) < start) return undefined;
  if (start >= objectLength) unsatisfiable();
  return { start, end: match[2] === '' ? last : Math.min(Number(match[2]), last) };
}
