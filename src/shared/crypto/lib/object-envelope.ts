// Object encryption for the S3 zone proxy: a TPENC stream per object or per multipart part, exact sizes, verified Range reads, sealed metadata.
// Must never release plaintext of a chunk before its tag verifies, nor serve bytes from another object, upload, part or position.
import { Readable, type Transform } from 'node:stream';
import { CiphertextError } from '../../errors.ts';
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH, GCM_TAG_LENGTH } from './aead.ts';
import { randomBytes, zeroize } from './bytes.ts';
import {
  chunkedAlgorithmForKey, ChunkedFileKey, ciphertextLength, createEncryptStream, fileHeaderLength, plaintextLength, plaintextRangeToChunks,
  readFileHeader, DEFAULT_CHUNK_SIZE, type ChunkedFileHeader,
} from './chunked-aead.ts';
import { encodeEncryptionContext, type EncryptionContext } from './ciphertext-blob.ts';
import { hkdf } from './mac.ts';

/*
 * Layout in the backing store.
 *
 * A single-PUT object is one TPENC stream (chunked-aead.ts) whose header context is the proxy's
 * context ({bucket, key, zone}). A multipart object is what S3 makes of its parts: their bytes
 * concatenated in part-number order. Each part is its own TPENC stream, all under the upload's one
 * data key, whose header context is the proxy's context plus {upload: upload id, part: the part
 * number as five digits}. The fixed width gives every part header of an upload the same length,
 * so equal plaintext parts have equal ciphertext sizes and the layout (below) stays a few runs.
 *
 * The layout (plaintext and ciphertext size of every part, chunk size, upload id) is kept in
 * sealed metadata, so it is authenticated; a reader checks the backing object against it: the
 * total size, each used part's header length, chunk size and context, then every chunk it uses.
 * A part moved, duplicated, dropped, taken from another upload or another object fails one of
 * those; so do truncation and extension (the sizes, then the final-chunk flag).
 *
 * Sealed metadata: base64url( version (1) || nonce (12) || AES-256-GCM ciphertext || tag (16) ),
 * key = HKDF-SHA-256(ikm = data key, salt = empty, info = "trustplane s3 object metadata v1", L = 32),
 * AAD = encodeEncryptionContext(context). A fresh data key per object makes random nonces safe.
 */

/** A multipart part: each is its own TPENC stream bound to its upload and part number. */
export interface ObjectSegment {
  uploadId: string;
  partNumber: number;
}

export interface ObjectLayoutPart {
  partNumber: number;
  plaintextLength: number;
  ciphertextLength: number;
}

export type ObjectLayout =
  | { kind: 'single'; plaintextLength: number; chunkSize: number }
  | { kind: 'multipart'; uploadId: string; chunkSize: number; parts: ObjectLayoutPart[] };

export interface ObjectEncryptOptions {
  /** 32 bytes (AES-256) or 16 bytes (AES-128). The caller keeps ownership and zeroizes it once the stream is made. */
  dataKey: Uint8Array;
  wrappedDataKey: Uint8Array;
  /** The proxy's context, {bucket, key, zone}; the names "upload" and "part" are reserved for parts. */
  context: EncryptionContext;
  chunkSize?: number;
  segment?: ObjectSegment;
}

export type ObjectSizeOptions = Omit<ObjectEncryptOptions, 'dataKey'>;

/** A backing object, read by byte ranges (a backing Range GET). */
export interface CiphertextSource {
  /** The backing object's actual size. */
  readonly length: number;
  /** Bytes [start, endInclusive] of the backing object. */
  read(start: number, endInclusive: number): Promise<Readable>;
}

export interface OpenObjectRangeOptions {
  dataKey: Uint8Array;
  context: EncryptionContext;
  layout: ObjectLayout;
  /** Plaintext bytes [start, end], end inclusive; the whole object when absent. */
  range?: { start: number; end: number };
}

export const MAX_PART_NUMBER = 10_000;
const UPLOAD_FIELD = 'upload';
const PART_FIELD = 'part';
const PART_DIGITS = 5;
const MAX_WRAPPED_KEY_LENGTH = 0xffff;

function checkSegment(segment: ObjectSegment): void {
  if (typeof segment.uploadId !== 'string' || segment.uploadId.length === 0) throw new RangeError('upload id must be a non-empty string');
  if (!Number.isInteger(segment.partNumber) || segment.partNumber < 1 || segment.partNumber > MAX_PART_NUMBER) {
    throw new RangeError(`part number must be an integer from 1 to ${MAX_PART_NUMBER}`);
  }
}

/** The TPENC header context of an object, or of one part of a multipart upload. */
export function objectHeaderContext(context: EncryptionContext, segment?: ObjectSegment): EncryptionContext {
  // Reserved so a single object's context can never equal a part's, whatever the caller passes.
  if (Object.hasOwn(context, UPLOAD_FIELD) || Object.hasOwn(context, PART_FIELD)) {
    throw new RangeError(`encryption context names "${UPLOAD_FIELD}" and "${PART_FIELD}" are reserved for multipart parts`);
  }
  if (!segment) return { ...context };
  checkSegment(segment);
  return { ...context, [UPLOAD_FIELD]: segment.uploadId, [PART_FIELD]: String(segment.partNumber).padStart(PART_DIGITS, '0') };
}

/** Plaintext → the object's (or part's) ciphertext, header first. Holds at most one chunk of plaintext. */
export function createObjectEncryptStream(o: ObjectEncryptOptions): Transform {
  return createEncryptStream({
    dataKey: o.dataKey, wrappedDataKey: o.wrappedDataKey, context: objectHeaderContext(o.context, o.segment),
    chunkSize: o.chunkSize ?? DEFAULT_CHUNK_SIZE,
  });
}

function objectHeaderLength(o: ObjectSizeOptions): number {
  const length = o.wrappedDataKey.length;
  if (length === 0 || length > MAX_WRAPPED_KEY_LENGTH) throw new RangeError('wrapped data key must be 1 to 65535 bytes');
  return fileHeaderLength(objectHeaderContext(o.context, o.segment), length);
}

/** The exact ciphertext length of an object (or part) of `plaintextLength` bytes: the backing Content-Length. */
export function encryptedObjectLength(plaintextLength: number, o: ObjectSizeOptions): number {
  return ciphertextLength(plaintextLength, o.chunkSize ?? DEFAULT_CHUNK_SIZE, objectHeaderLength(o));
}

/** The plaintext length of an object (or part) stored in `ciphertextLength` bytes; CiphertextError if none has it. */
export function plaintextObjectLength(ciphertextLength: number, o: ObjectSizeOptions): number {
  return plaintextLength(ciphertextLength, o.chunkSize ?? DEFAULT_CHUNK_SIZE, objectHeaderLength(o));
}

function isLength(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Throws RangeError unless the layout is well formed: valid chunk size, sizes, part numbers ascending from 1..10000. */
export function checkObjectLayout(layout: ObjectLayout): void {
  ciphertextLength(0, layout.chunkSize); // checks the chunk size
  if (layout.kind === 'single') {
    if (!isLength(layout.plaintextLength)) throw new RangeError('object layout: plaintext length out of range');
    return;
  }
  if (layout.kind !== 'multipart') throw new RangeError('object layout: unknown kind');
  if (typeof layout.uploadId !== 'string' || layout.uploadId.length === 0) throw new RangeError('object layout: upload id must be non-empty');
  if (layout.parts.length === 0 || layout.parts.length > MAX_PART_NUMBER) throw new RangeError('object layout: 1 to 10000 parts');
  let previous = 0;
  let total = 0;
  for (const part of layout.parts) {
    if (!Number.isInteger(part.partNumber) || part.partNumber <= previous || part.partNumber > MAX_PART_NUMBER) {
      throw new RangeError('object layout: part numbers must ascend within 1..10000');
    }
    if (!isLength(part.plaintextLength) || !isLength(part.ciphertextLength) || part.ciphertextLength < part.plaintextLength + GCM_TAG_LENGTH) {
      throw new RangeError('object layout: part sizes out of range');
    }
    previous = part.partNumber;
    total += part.ciphertextLength;
  }
  if (!Number.isSafeInteger(total)) throw new RangeError('object layout: object too large');
}

/** The object's plaintext length, as clients see it. */
export function objectPlaintextLength(layout: ObjectLayout): number {
  if (layout.kind === 'single') return layout.plaintextLength;
  return layout.parts.reduce((sum, part) => sum + part.plaintextLength, 0);
}

/** One TPENC stream of the object and the plaintext wanted from it, [from, to) (empty: verify only). */
interface StreamRead {
  segment: ObjectSegment | undefined;
  /** Where the stream starts in the backing object, its ciphertext and plaintext lengths. */
  offset: number;
  ciphertextLength: number;
  plaintextLength: number;
  from: number;
  to: number;
  /** Read and verify every chunk (a whole-object read), not only those that hold [from, to). */
  whole: boolean;
}

/** The header length a stream must have, given its sizes; CiphertextError when no header of this context fits. */
function expectedHeaderLength(read: StreamRead, headerContext: EncryptionContext, chunkSize: number): number {
  const headerLength = read.ciphertextLength - ciphertextLength(read.plaintextLength, chunkSize);
  const wrappedLength = headerLength - fileHeaderLength(headerContext, 0);
  if (wrappedLength < 1 || wrappedLength > MAX_WRAPPED_KEY_LENGTH) throw new CiphertextError();
  return headerLength;
}

function planReads(source: CiphertextSource, layout: ObjectLayout, start: number, end: number, whole: boolean): StreamRead[] {
  if (!isLength(source.length)) throw new CiphertextError();
  if (layout.kind === 'single') {
    return [{ segment: undefined, offset: 0, ciphertextLength: source.length, plaintextLength: layout.plaintextLength, from: start, to: end, whole }];
  }
  const total = layout.parts.reduce((sum, part) => sum + part.ciphertextLength, 0);
  if (total !== source.length) throw new CiphertextError();
  const reads: StreamRead[] = [];
  let offset = 0;
  let plaintextOffset = 0;
  for (const part of layout.parts) {
    const partStart = plaintextOffset;
    const partEnd = plaintextOffset + part.plaintextLength;
    // A whole-object read verifies every part, empty ones too; a range read only the parts it overlaps.
    if (whole || (partStart < end && partEnd > start)) {
      reads.push({
        segment: { uploadId: layout.uploadId, partNumber: part.partNumber }, offset,
        ciphertextLength: part.ciphertextLength, plaintextLength: part.plaintextLength,
        from: Math.max(start, partStart) - partStart, to: Math.min(end, partEnd) - partStart, whole,
      });
    }
    offset += part.ciphertextLength;
    plaintextOffset = partEnd;
  }
  return reads;
}

/**
 * Cuts a byte stream into consecutive fields of the given lengths. A yielded field may be a view of
 * `staging`, valid until the next one is asked for. CiphertextError when the stream ends early or runs on.
 */
async function* cutFields(stream: Readable, lengths: number[], staging: Buffer): AsyncGenerator<Buffer> {
  let field = 0;
  let filled = 0;
  for await (const piece of stream) {
    const bytes = Buffer.isBuffer(piece) ? piece : Buffer.from((piece as Uint8Array).buffer, (piece as Uint8Array).byteOffset, (piece as Uint8Array).byteLength);
    let offset = 0;
    while (offset < bytes.length) {
      if (field === lengths.length) throw new CiphertextError();
      const want = lengths[field];
      if (filled === 0 && bytes.length - offset >= want) {
        // The whole field is in this piece: no copy.
        field += 1;
        offset += want;
        yield bytes.subarray(offset - want, offset);
        continue;
      }
      const copied = bytes.copy(staging, filled, offset, offset + Math.min(want - filled, bytes.length - offset));
      filled += copied;
      offset += copied;
      if (filled === want) {
        field += 1;
        filled = 0;
        yield staging.subarray(0, want);
      }
    }
  }
  if (field !== lengths.length) throw new CiphertextError();
}

async function* decryptStreamRead(source: CiphertextSource, read: StreamRead, dataKey: Uint8Array,
  context: EncryptionContext, chunkSize: number): AsyncGenerator<Buffer> {
  const headerContext = objectHeaderContext(context, read.segment);
  const headerLength = expectedHeaderLength(read, headerContext, chunkSize);
  const geometry = { chunkSize, length: headerLength };
  const finalChunk = Math.floor(read.plaintextLength / chunkSize);
  // A whole read verifies every chunk, the (maybe empty) final one included; so does a read of an empty part.
  const span = read.whole
    ? { firstChunk: 0, lastChunk: finalChunk, ciphertextStart: headerLength, ciphertextEnd: read.ciphertextLength }
    : plaintextRangeToChunks(geometry, read.from, read.to, read.plaintextLength);
  const recordLengths: number[] = [];
  for (let index = span.firstChunk; index <= span.lastChunk; index += 1) {
    recordLengths.push(index < finalChunk ? chunkSize + GCM_TAG_LENGTH : read.plaintextLength - finalChunk * chunkSize + GCM_TAG_LENGTH);
  }
  const staging = Buffer.alloc(Math.max(headerLength, chunkSize + GCM_TAG_LENGTH));
  // When the chunks follow the header, one backing read serves both.
  const together = span.firstChunk === 0;
  let fields = cutFields(await source.read(read.offset, read.offset + (together ? span.ciphertextEnd : headerLength) - 1),
    together ? [headerLength, ...recordLengths] : [headerLength], staging);
  let fileKey: ChunkedFileKey | undefined;
  try {
    const first = await fields.next();
    if (first.done) throw new CiphertextError();
    const header = checkHeader(first.value, headerLength, headerContext, chunkSize);
    fileKey = new ChunkedFileKey(header, dataKey);
    if (!together) {
      // Drains the header read (which must end here) before the second one.
      if (!(await fields.next()).done) throw new CiphertextError();
      fields = cutFields(await source.read(read.offset + span.ciphertextStart, read.offset + span.ciphertextEnd - 1), recordLengths, staging);
    }
    let index = span.firstChunk;
    for await (const record of fields) {
      const plaintext = fileKey.open(index, index === finalChunk, record);
      const chunkStart = index * chunkSize;
      index += 1;
      const from = Math.max(read.from - chunkStart, 0);
      const to = Math.min(read.to - chunkStart, plaintext.length);
      if (from < to) yield from === 0 && to === plaintext.length ? plaintext : Buffer.from(plaintext.subarray(from, to));
      if (from !== 0 || to !== plaintext.length) zeroize(plaintext);
    }
  } finally {
    fileKey?.zeroize();
    await fields.return(undefined);
  }
}

function checkHeader(bytes: Buffer, headerLength: number, headerContext: EncryptionContext, chunkSize: number): ChunkedFileHeader {
  const read = readFileHeader(bytes);
  if (!read.complete || read.header.length !== headerLength || read.header.chunkSize !== chunkSize) throw new CiphertextError();
  // Canonical encodings are unique, so equal bytes mean the same context: this part, of this upload, of this object.
  if (!encodeEncryptionContext(read.header.context).equals(encodeEncryptionContext(headerContext))) throw new CiphertextError();
  return read.header;
}

/**
 * Plaintext bytes [range.start, range.end] of an object (all of it when no range is given), fetching
 * only the headers and chunks needed and verifying every chunk used. The returned promise settles
 * once the sizes, the first header and the first chunk have been checked, so a wrong key, context or
 * layout is refused before a response starts; later failures (a tampered chunk further on) destroy
 * the stream with CiphertextError. Source errors reach the caller unchanged. The stream pulls from
 * the source only as fast as it is read, holding about one chunk. A caller that stops reading early
 * must destroy the stream: that closes the backing read and wipes the stream's copy of the data key.
 */
export async function openObjectRange(source: CiphertextSource, o: OpenObjectRangeOptions): Promise<Readable> {
  checkObjectLayout(o.layout);
  const total = objectPlaintextLength(o.layout);
  objectHeaderContext(o.context); // refuses reserved names before any read
  let start = 0;
  let end = total;
  if (o.range) {
    const { start: first, end: last } = o.range;
    if (!isLength(first) || !isLength(last) || first > last || last >= total) {
      throw new RangeError('range must satisfy 0 <= start <= end < object length');
    }
    start = first;
    end = last + 1;
  }
  const reads = planReads(source, o.layout, start, end, !o.range);
  const dataKey = Buffer.from(o.dataKey);
  const chunkSize = o.layout.chunkSize;
  async function* generate(): AsyncGenerator<Buffer> {
    try {
      for (const read of reads) yield* decryptStreamRead(source, read, dataKey, o.context, chunkSize);
    } finally {
      zeroize(dataKey);
    }
  }
  const pieces = generate();
  const first = await pieces.next();
  async function* resume(): AsyncGenerator<Buffer> {
    try {
      if (first.done) return;
      yield first.value;
      yield* pieces;
    } finally {
      await pieces.return(undefined);
    }
  }
  return Readable.from(resume(), { objectMode: false });
}

const METADATA_FORMAT_VERSION = 1;
const METADATA_INFO = Buffer.from('trustplane s3 object metadata v1', 'utf8');
const METADATA_OVERHEAD = 1 + GCM_NONCE_LENGTH + GCM_TAG_LENGTH;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function metadataKey(dataKey: Uint8Array): Buffer {
  return hkdf('sha256', dataKey, Buffer.alloc(0), METADATA_INFO, 32);
}

/** Seals object metadata under the object's data key, bound to its context; base64url text for an S3 metadata value. */
export function sealObjectMetadata(dataKey: Uint8Array, context: EncryptionContext, plaintext: Uint8Array): string {
  chunkedAlgorithmForKey(dataKey); // the same two key lengths as the body's chunks
  const key = metadataKey(dataKey);
  try {
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const { ciphertext, tag } = aesGcmEncrypt(key, nonce, plaintext, encodeEncryptionContext(context));
    return Buffer.concat([Buffer.from([METADATA_FORMAT_VERSION]), nonce, ciphertext, tag]).toString('base64url');
  } finally {
    zeroize(key);
  }
}

/** The length of sealObjectMetadata's text for a plaintext of this many bytes (to keep under S3's 2 KB). */
export function sealedObjectMetadataLength(plaintextLength: number): number {
  return Math.ceil(((METADATA_OVERHEAD + plaintextLength) * 4) / 3);
}

/** Opens sealObjectMetadata's text; CiphertextError on any problem (wrong key or context, tampering, bad encoding). */
export function openObjectMetadata(dataKey: Uint8Array, context: EncryptionContext, sealed: string): Buffer {
  if (typeof sealed !== 'string' || !BASE64URL.test(sealed)) throw new CiphertextError();
  const bytes = Buffer.from(sealed, 'base64url');
  // Only the canonical encoding: one sealed value has one text.
  if (bytes.length < METADATA_OVERHEAD || bytes.toString('base64url') !== sealed || bytes[0] !== METADATA_FORMAT_VERSION) {
    throw new CiphertextError();
  }
  if (dataKey.length !== 16 && dataKey.length !== 32) throw new CiphertextError();
  const key = metadataKey(dataKey);
  try {
    const nonce = bytes.subarray(1, 1 + GCM_NONCE_LENGTH);
    const tag = bytes.subarray(bytes.length - GCM_TAG_LENGTH);
    return aesGcmDecrypt(key, nonce, bytes.subarray(1 + GCM_NONCE_LENGTH, bytes.length - GCM_TAG_LENGTH), tag, encodeEncryptionContext(context));
  } finally {
    zeroize(key);
  }
}
