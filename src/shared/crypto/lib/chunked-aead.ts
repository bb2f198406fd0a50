// Streaming, chunked AES-GCM (256- or 128-bit data keys) for envelope-encrypted files and objects of any size, in constant memory.
// Must never release plaintext of a chunk before its tag verifies, nor accept a truncated, reordered or extended file.
import * as nodeCrypto from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CiphertextError } from '../../errors.ts';
import { GCM_TAG_LENGTH } from './aead.ts';
import { randomBytes, sha256, zeroize } from './bytes.ts';
import { decodeEncryptionContext, encodeEncryptionContext, type EncryptionContext } from './ciphertext-blob.ts';
import { hkdf } from './mac.ts';

/*
 * Format version 1 ("TPENC"). All integers are big-endian.
 *
 * File = header || chunk 0 || chunk 1 || ... || chunk n (the final chunk).
 *
 * Header:
 *   offset  size  field
 *   0       5     magic "TPENC"
 *   5       1     format version (1)
 *   6       1     algorithm (1 = AES-256-GCM, 2 = AES-128-GCM; both HKDF-SHA-256 per-file keys, 16-byte tags)
 *   7       4     chunk size S in plaintext bytes, 4096 <= S <= 16 MiB (default 256 KiB)
 *   11      32    salt (random per file)
 *   43      2     C = length of the encoded encryption context, 4 <= C <= 65535
 *   45      C     encryption context, exactly encodeEncryptionContext's canonical encoding
 *   45+C    2     W = length of the wrapped data key, 1 <= W <= 65535
 *   47+C    W     wrapped data key: the key service's ciphertext blob, opaque here
 *   The header's length is H = 47 + C + W; D = SHA-256(header bytes).
 *
 * Keys and nonces (K = 32 for algorithm 1, 16 for algorithm 2; the data key is K bytes too):
 *   algorithm 1: okm = HKDF-SHA-256(ikm = data key, salt = salt, info = "trustplane chunked-aead v1", L = 36)
 *   algorithm 2: okm = HKDF-SHA-256(ikm = data key, salt = salt, info = "trustplane chunked-aead v1 aes-128-gcm", L = 20)
 *   file key = okm[0..K), nonce prefix = okm[K..K+4)
 *   (Distinct info strings keep the two derivations apart even for related inputs. The encryptor
 *   picks the algorithm from the data key's length; a decryptor refuses a data key whose length
 *   does not match the header's algorithm, as a CiphertextError, since the header is untrusted.)
 *   nonce(i) = nonce prefix (4) || i as uint64 (8)
 *   The file key is unique per file (random 256-bit salt), so nonces never repeat across files even
 *   if a data key were reused; within a file they are unique by chunk index.
 *
 * Chunks: plaintext is cut into chunks of exactly S bytes; the final chunk is always strictly
 * shorter than S (0..S-1 bytes), so a plaintext whose length is a multiple of S (including an
 * empty one) ends with an empty final chunk. Chunk i on disk is
 *   AES-GCM(file key, nonce(i), plaintext_i, aad(i)) = ciphertext_i (same length) || tag (16)
 *   aad(i) = D (32) || i as uint64 (8) || final flag (1 byte: 1 for the final chunk, else 0)
 * Because every non-final chunk is S+16 bytes and the final one is 16..S+15, the file's length
 * alone determines every chunk boundary and which chunk is final; a decryptor that sees a full
 * S+16 record at the end of the input, or fewer than 16 bytes, rejects the file.
 *
 * What the binding buys: D in every chunk's AAD authenticates the whole header (context,
 * wrapped key, chunk size, salt); the index rejects reordering and duplication; the final flag
 * rejects truncation at a chunk boundary and appended data (the real final chunk would no longer
 * be last, and a non-final chunk cannot pass as final).
 */

export const CHUNKED_FORMAT_VERSION = 1;
/** 1 = AES-256-GCM (32-byte data keys), 2 = AES-128-GCM (16-byte data keys). */
export type ChunkedAlgorithm = 1 | 2;
export const CHUNKED_ALGORITHM_AES_256_GCM: ChunkedAlgorithm = 1;
export const CHUNKED_ALGORITHM_AES_128_GCM: ChunkedAlgorithm = 2;
const MAGIC = Buffer.from('TPENC', 'latin1');
const ALGORITHMS: Readonly<Record<ChunkedAlgorithm, { cipher: nodeCrypto.CipherGCMTypes; keyLength: number; info: Buffer }>> = {
  1: { cipher: 'aes-256-gcm', keyLength: 32, info: Buffer.from('trustplane chunked-aead v1', 'utf8') },
  2: { cipher: 'aes-128-gcm', keyLength: 16, info: Buffer.from('trustplane chunked-aead v1 aes-128-gcm', 'utf8') },
};
const NONCE_PREFIX_LENGTH = 4;
const SALT_LENGTH = 32;
const AAD_LENGTH = 32 + 8 + 1;
const FIXED_HEADER_LENGTH = 43;
const MAX_FIELD_LENGTH = 0xffff;

export const MIN_CHUNK_SIZE = 4 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
/**
 * 256 KiB. Measured with bench/file-encryption.ts (1 GiB, best of 5, runs interleaved with the
 * baseline, Node 20, 2-core Xeon with AES-NI/VAES), as a ratio to one AES-256-GCM cipher over the
 * same bytes (the faster of 64 KiB and 1 MiB updates):
 *   64 KiB:  encrypt 0.72-0.79, decrypt 0.62-0.75 (a fixed few microseconds per chunk for cipher
 *            set-up, tag and stream push is a quarter of a 64 KiB chunk's time);
 *   256 KiB: encrypt 0.84-1.01, decrypt 0.68-0.83, the best of the three in every run;
 *   1 MiB:   encrypt 0.84-0.98, decrypt 0.66-0.79 (no gain: chunk and output leave L2).
 * Decryption trails encryption by the per-chunk tag check and the copy of records that straddle
 * two reads (~5 % each in a profile). 256 KiB also bounds what a stream holds (about two chunks,
 * ~0.5 MiB) and what a Range GET over-reads (under one chunk at each end), which matter to the
 * S3 proxy's many concurrent streams; the tag costs 0.006 % of space.
 */
export const DEFAULT_CHUNK_SIZE = 256 * 1024;

export interface ChunkedFileHeader {
  readonly formatVersion: number;
  readonly algorithm: ChunkedAlgorithm;
  readonly chunkSize: number;
  readonly salt: Buffer;
  readonly context: EncryptionContext;
  readonly wrappedDataKey: Buffer;
  /** Header length in bytes: chunk 0 starts at this offset. */
  readonly length: number;
  /** The exact header bytes, as authenticated. */
  readonly bytes: Buffer;
  /** SHA-256 of the header bytes, bound into every chunk's associated data. */
  readonly digest: Buffer;
}

export interface FileHeaderFields {
  wrappedDataKey: Uint8Array;
  /** Default 1 (AES-256-GCM); must match the length of the data key the chunks are sealed with. */
  algorithm?: ChunkedAlgorithm;
  context?: EncryptionContext;
  chunkSize?: number;
  /** 32 random bytes; generated when absent (give one only for known-answer tests). */
  salt?: Uint8Array;
}

export type FileHeaderReadResult =
  | { complete: true; header: ChunkedFileHeader }
  | { complete: false; /** total bytes from the start of the file needed before reading again */ bytesNeeded: number };

function isChunkedAlgorithm(value: number | undefined): value is ChunkedAlgorithm {
  return value === CHUNKED_ALGORITHM_AES_256_GCM || value === CHUNKED_ALGORITHM_AES_128_GCM;
}

/** The algorithm for a data key of this length: 32 bytes → AES-256-GCM, 16 → AES-128-GCM; RangeError otherwise. */
export function chunkedAlgorithmForKey(dataKey: Uint8Array): ChunkedAlgorithm {
  if (dataKey.length === 32) return CHUNKED_ALGORITHM_AES_256_GCM;
  if (dataKey.length === 16) return CHUNKED_ALGORITHM_AES_128_GCM;
  throw new RangeError('data key must be 16 or 32 bytes');
}

/** The exact length of a header with this context and a wrapped data key of this many bytes. */
export function fileHeaderLength(context: EncryptionContext | undefined, wrappedDataKeyLength: number): number {
  return headerLength(encodeEncryptionContext(context).length, wrappedDataKeyLength);
}

/** Fixed fields, then two length-prefixed fields: the encoded context and the wrapped data key. */
function headerLength(contextLength: number, wrappedDataKeyLength: number): number {
  return FIXED_HEADER_LENGTH + 2 + contextLength + 2 + wrappedDataKeyLength;
}

function checkChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunk size must be an integer from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE}`);
  }
}

/** Encodes a file header; throws RangeError for fields the format cannot carry. */
export function encodeFileHeader(fields: FileHeaderFields): Buffer {
  const chunkSize = fields.chunkSize ?? DEFAULT_CHUNK_SIZE;
  checkChunkSize(chunkSize);
  const algorithm = fields.algorithm ?? CHUNKED_ALGORITHM_AES_256_GCM;
  if (!isChunkedAlgorithm(algorithm)) throw new RangeError('unknown chunked algorithm');
  const salt = fields.salt ?? randomBytes(SALT_LENGTH);
  if (salt.length !== SALT_LENGTH) throw new RangeError(`salt must be ${SALT_LENGTH} bytes`);
  const context = encodeEncryptionContext(fields.context);
  if (context.length > MAX_FIELD_LENGTH) throw new RangeError('encryption context is too long for a file header');
  const wrapped = fields.wrappedDataKey;
  if (wrapped.length === 0 || wrapped.length > MAX_FIELD_LENGTH) throw new RangeError('wrapped data key must be 1 to 65535 bytes');
  const out = Buffer.alloc(headerLength(context.length, wrapped.length));
  MAGIC.copy(out, 0);
  out[5] = CHUNKED_FORMAT_VERSION;
  out[6] = algorithm;
  out.writeUInt32BE(chunkSize, 7);
  out.set(salt, 11);
  let offset = FIXED_HEADER_LENGTH;
  offset = out.writeUInt16BE(context.length, offset);
  offset += context.copy(out, offset);
  offset = out.writeUInt16BE(wrapped.length, offset);
  out.set(wrapped, offset);
  return out;
}

/**
 * Reads a header from the start of `bytes`, which may hold less than the whole header (then the
 * result says how many bytes to gather first) or more (chunk data, ignored). Rejects anything not
 * exactly of the format with CiphertextError as early as the bytes present allow.
 */
export function readFileHeader(input: Uint8Array): FileHeaderReadResult {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const magicPresent = Math.min(bytes.length, MAGIC.length);
  if (!bytes.subarray(0, magicPresent).equals(MAGIC.subarray(0, magicPresent))) throw new CiphertextError();
  if (bytes.length > 5 && bytes[5] !== CHUNKED_FORMAT_VERSION) throw new CiphertextError();
  if (bytes.length > 6 && !isChunkedAlgorithm(bytes[6])) throw new CiphertextError();
  if (bytes.length < FIXED_HEADER_LENGTH + 2) return { complete: false, bytesNeeded: FIXED_HEADER_LENGTH + 2 };
  const chunkSize = bytes.readUInt32BE(7);
  if (chunkSize < MIN_CHUNK_SIZE || chunkSize > MAX_CHUNK_SIZE) throw new CiphertextError();
  const contextLength = bytes.readUInt16BE(FIXED_HEADER_LENGTH);
  if (contextLength < 4) throw new CiphertextError();
  const contextEnd = FIXED_HEADER_LENGTH + 2 + contextLength;
  if (bytes.length < contextEnd + 2) return { complete: false, bytesNeeded: contextEnd + 2 };
  const encodedContext = bytes.subarray(FIXED_HEADER_LENGTH + 2, contextEnd);
  const context = decodeEncryptionContext(encodedContext);
  // Only the canonical encoding is accepted, so one context has exactly one header.
  if (!encodeEncryptionContext(context).equals(encodedContext)) throw new CiphertextError();
  const wrappedLength = bytes.readUInt16BE(contextEnd);
  if (wrappedLength === 0) throw new CiphertextError();
  const length = contextEnd + 2 + wrappedLength;
  if (bytes.length < length) return { complete: false, bytesNeeded: length };
  const headerBytes = Buffer.from(bytes.subarray(0, length));
  return {
    complete: true,
    header: {
      formatVersion: CHUNKED_FORMAT_VERSION,
      algorithm: headerBytes[6] as ChunkedAlgorithm,
      chunkSize,
      salt: headerBytes.subarray(11, 11 + SALT_LENGTH),
      context,
      wrappedDataKey: headerBytes.subarray(contextEnd + 2, length),
      length,
      bytes: headerBytes,
      digest: sha256(headerBytes),
    },
  };
}

/** The per-file key derived from a data key and a header; zeroize() it when done. */
export class ChunkedFileKey {
  readonly #cipher: nodeCrypto.CipherGCMTypes;
  readonly #key: Buffer;
  readonly #noncePrefix: Buffer;
  readonly #headerDigest: Buffer;
  // Reused per chunk: createCipheriv and setAAD copy them.
  readonly #nonce = Buffer.alloc(12);
  readonly #aad = Buffer.alloc(AAD_LENGTH);
  #zeroized = false;

  /** CiphertextError when the data key's length does not match the header's algorithm (the header may be forged). */
  constructor(header: ChunkedFileHeader, dataKey: Uint8Array) {
    const algorithm = ALGORITHMS[header.algorithm];
    if (!algorithm || dataKey.length !== algorithm.keyLength) throw new CiphertextError();
    this.#cipher = algorithm.cipher;
    const okm = hkdf('sha256', dataKey, header.salt, algorithm.info, algorithm.keyLength + NONCE_PREFIX_LENGTH);
    this.#key = okm.subarray(0, algorithm.keyLength);
    this.#noncePrefix = okm.subarray(algorithm.keyLength);
    this.#noncePrefix.copy(this.#nonce, 0);
    this.#headerDigest = header.digest;
    header.digest.copy(this.#aad, 0);
  }

  #prepare(index: number, isFinal: boolean): void {
    if (this.#zeroized) throw new Error('chunked file key was zeroized');
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError('chunk index out of range');
    this.#nonce.writeBigUInt64BE(BigInt(index), NONCE_PREFIX_LENGTH);
    this.#aad.writeBigUInt64BE(BigInt(index), 32);
    this.#aad[40] = isFinal ? 1 : 0;
  }

  /** Encrypts one chunk; returns ciphertext and tag separately so callers need not concatenate. */
  seal(index: number, isFinal: boolean, plaintext: Uint8Array): { ciphertext: Buffer; tag: Buffer } {
    this.#prepare(index, isFinal);
    const cipher = nodeCrypto.createCipheriv(this.#cipher, this.#key, this.#nonce, { authTagLength: GCM_TAG_LENGTH });
    cipher.setAAD(this.#aad);
    const ciphertext = cipher.update(plaintext);
    cipher.final();
    return { ciphertext, tag: cipher.getAuthTag() };
  }

  /** Decrypts one whole chunk record (ciphertext || tag); returns plaintext only once the tag verifies. */
  open(index: number, isFinal: boolean, record: Uint8Array): Buffer {
    this.#prepare(index, isFinal);
    if (record.length < GCM_TAG_LENGTH) throw new CiphertextError();
    const split = record.length - GCM_TAG_LENGTH;
    const decipher = nodeCrypto.createDecipheriv(this.#cipher, this.#key, this.#nonce, { authTagLength: GCM_TAG_LENGTH });
    decipher.setAuthTag(record.subarray(split));
    decipher.setAAD(this.#aad);
    const plaintext = decipher.update(record.subarray(0, split));
    try {
      decipher.final();
    } catch {
      zeroize(plaintext);
      throw new CiphertextError();
    }
    return plaintext;
  }

  belongsTo(header: ChunkedFileHeader): boolean {
    return this.#headerDigest.equals(header.digest);
  }

  zeroize(): void {
    zeroize(this.#key, this.#noncePrefix, this.#nonce);
    this.#zeroized = true;
  }
}

/** Derives the per-file key; the caller keeps ownership of (and zeroizes) `dataKey`. */
export function deriveChunkedFileKey(header: ChunkedFileHeader, dataKey: Uint8Array): ChunkedFileKey {
  return new ChunkedFileKey(header, dataKey);
}

function recordSize(chunkSize: number): number {
  return chunkSize + GCM_TAG_LENGTH;
}

/** Encrypted length for a plaintext length: the chunks only, plus `headerLength` if given. */
export function ciphertextLength(plaintextLength: number, chunkSize: number, headerLength = 0): number {
  checkChunkSize(chunkSize);
  if (!Number.isSafeInteger(plaintextLength) || plaintextLength < 0) throw new RangeError('plaintext length out of range');
  const fullChunks = Math.floor(plaintextLength / chunkSize);
  return headerLength + fullChunks * recordSize(chunkSize) + (plaintextLength - fullChunks * chunkSize) + GCM_TAG_LENGTH;
}

/** Plaintext length for an encrypted length (chunks only, or minus `headerLength`); CiphertextError if no plaintext has it. */
export function plaintextLength(ciphertextLength: number, chunkSize: number, headerLength = 0): number {
  checkChunkSize(chunkSize);
  const body = ciphertextLength - headerLength;
  if (!Number.isSafeInteger(body) || body < GCM_TAG_LENGTH) throw new CiphertextError();
  const fullChunks = Math.floor(body / recordSize(chunkSize));
  const finalRecord = body - fullChunks * recordSize(chunkSize);
  if (finalRecord < GCM_TAG_LENGTH) throw new CiphertextError();
  return fullChunks * chunkSize + finalRecord - GCM_TAG_LENGTH;
}

/** Which chunks, and which encrypted bytes, serve the plaintext range [start, end). */
export interface ChunkSpan {
  readonly start: number;
  readonly end: number;
  readonly firstChunk: number;
  /** Inclusive. */
  readonly lastChunk: number;
  /** Index of the file's final chunk, for the isFinal argument of decryptChunk. */
  readonly finalChunk: number;
  /** Byte offsets in the whole encrypted object (header included); end exclusive. */
  readonly ciphertextStart: number;
  readonly ciphertextEnd: number;
}

/** Maps a plaintext range [start, end) of an object of `plaintextTotal` bytes to the chunks that hold it. */
export function plaintextRangeToChunks(header: Pick<ChunkedFileHeader, 'chunkSize' | 'length'>,
  start: number, end: number, plaintextTotal: number): ChunkSpan {
  const { chunkSize } = header;
  if (!Number.isSafeInteger(plaintextTotal) || plaintextTotal < 0) throw new RangeError('plaintext length out of range');
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start >= end || end > plaintextTotal) {
    throw new RangeError('range must satisfy 0 <= start < end <= plaintext length');
  }
  const firstChunk = Math.floor(start / chunkSize);
  const lastChunk = Math.floor((end - 1) / chunkSize);
  const finalChunk = Math.floor(plaintextTotal / chunkSize);
  const lastRecord = lastChunk < finalChunk ? recordSize(chunkSize) : plaintextTotal - finalChunk * chunkSize + GCM_TAG_LENGTH;
  return {
    start, end, firstChunk, lastChunk, finalChunk,
    ciphertextStart: header.length + firstChunk * recordSize(chunkSize),
    ciphertextEnd: header.length + lastChunk * recordSize(chunkSize) + lastRecord,
  };
}

function withFileKey<T>(header: ChunkedFileHeader, key: Uint8Array | ChunkedFileKey, use: (fileKey: ChunkedFileKey) => T): T {
  if (key instanceof ChunkedFileKey) {
    if (!key.belongsTo(header)) throw new RangeError('file key was derived for another header');
    return use(key);
  }
  const fileKey = new ChunkedFileKey(header, key);
  try {
    return use(fileKey);
  } finally {
    fileKey.zeroize();
  }
}

/**
 * Decrypts one chunk record (ciphertext || tag) given its index and whether it is the file's final
 * chunk. `key` is the data key or a ChunkedFileKey derived from it (cheaper for many chunks).
 */
export function decryptChunk(header: ChunkedFileHeader, key: Uint8Array | ChunkedFileKey,
  index: number, isFinal: boolean, record: Uint8Array): Buffer {
  const full = recordSize(header.chunkSize);
  if (isFinal ? record.length < GCM_TAG_LENGTH || record.length >= full : record.length !== full) throw new CiphertextError();
  return withFileKey(header, key, (fileKey) => fileKey.open(index, isFinal, record));
}

/** Decrypts the bytes [span.ciphertextStart, span.ciphertextEnd) and returns plaintext [span.start, span.end). */
export function decryptRange(header: ChunkedFileHeader, key: Uint8Array | ChunkedFileKey,
  span: ChunkSpan, ciphertext: Uint8Array): Buffer {
  if (ciphertext.length !== span.ciphertextEnd - span.ciphertextStart) throw new CiphertextError();
  const full = recordSize(header.chunkSize);
  const out = Buffer.alloc(span.end - span.start);
  return withFileKey(header, key, (fileKey) => {
    let written = 0;
    for (let index = span.firstChunk; index <= span.lastChunk; index += 1) {
      const offset = (index - span.firstChunk) * full;
      const record = ciphertext.subarray(offset, Math.min(offset + full, ciphertext.length));
      const plaintext = decryptChunk(header, fileKey, index, index === span.finalChunk, record);
      const chunkStart = index * header.chunkSize;
      const from = Math.max(span.start - chunkStart, 0);
      const to = Math.min(span.end - chunkStart, plaintext.length);
      written += plaintext.copy(out, written, from, to);
      zeroize(plaintext);
    }
    if (written !== out.length) throw new CiphertextError();
    return out;
  });
}

export interface EncryptStreamOptions {
  /**
   * The plaintext data key: 32 bytes (AES-256-GCM) or 16 bytes (AES-128-GCM), recorded in the header.
   * The caller keeps ownership and should zeroize it once the stream is made.
   */
  dataKey: Uint8Array;
  /** The key service's ciphertext blob for the data key; stored in the header. */
  wrappedDataKey: Uint8Array;
  /** Stored in the header and authenticated; the key service needs it to unwrap the data key. */
  context?: EncryptionContext;
  chunkSize?: number;
}

class ChunkedEncryptStream extends Transform {
  readonly header: ChunkedFileHeader;
  readonly #fileKey: ChunkedFileKey;
  readonly #staging: Buffer;
  #filled = 0;
  #index = 0;
  #headerSent = false;

  constructor(options: EncryptStreamOptions) {
    super();
    const algorithm = chunkedAlgorithmForKey(options.dataKey);
    const headerBytes = encodeFileHeader({ wrappedDataKey: options.wrappedDataKey, context: options.context, chunkSize: options.chunkSize, algorithm });
    const read = readFileHeader(headerBytes);
    if (!read.complete) throw new Error('encoded header does not parse');
    this.header = read.header;
    this.#fileKey = new ChunkedFileKey(this.header, options.dataKey);
    this.#staging = Buffer.alloc(this.header.chunkSize);
  }

  #sendHeader(): void {
    if (this.#headerSent) return;
    this.#headerSent = true;
    this.push(this.header.bytes);
  }

  #seal(plaintext: Buffer, isFinal: boolean): void {
    const { ciphertext, tag } = this.#fileKey.seal(this.#index, isFinal, plaintext);
    this.#index += 1;
    if (ciphertext.length > 0) this.push(ciphertext);
    this.push(tag);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#sendHeader();
      const chunkSize = this.#staging.length;
      let offset = 0;
      if (this.#filled > 0) {
        offset = chunk.copy(this.#staging, this.#filled, 0, chunkSize - this.#filled);
        this.#filled += offset;
        // A full chunk is never final: the final chunk is always shorter, so no look-ahead is needed.
        if (this.#filled === chunkSize) {
          this.#seal(this.#staging, false);
          this.#filled = 0;
        }
      }
      // Whole chunks are encrypted straight from the caller's buffer, without a copy.
      while (chunk.length - offset >= chunkSize) {
        this.#seal(chunk.subarray(offset, offset + chunkSize), false);
        offset += chunkSize;
      }
      if (offset < chunk.length) this.#filled += chunk.copy(this.#staging, this.#filled, offset);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#sendHeader();
      this.#seal(this.#staging.subarray(0, this.#filled), true);
      this.#wipe();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #wipe(): void {
    this.#fileKey.zeroize();
    zeroize(this.#staging);
    this.#filled = 0;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#wipe();
    callback(error);
  }
}

/** A Transform from plaintext to the chunked format (header first). Holds at most one chunk of plaintext. */
export function createEncryptStream(options: EncryptStreamOptions): Transform & { readonly header: ChunkedFileHeader } {
  return new ChunkedEncryptStream(options);
}

export interface DecryptStreamOptions {
  /**
   * Returns the data key for a header (32 bytes for algorithm 1, 16 for algorithm 2), typically by asking the key service to decrypt
   * header.wrappedDataKey with header.context. The stream takes ownership of the returned buffer
   * and zeroizes it once the file key is derived. Errors it throws reach the stream unchanged.
   */
  resolveDataKey: (header: ChunkedFileHeader) => Promise<Uint8Array> | Uint8Array;
  /**
   * Largest chunk size to accept (default MAX_CHUNK_SIZE). The stream holds about two chunks, so a
   * reader of untrusted objects can bound its memory; larger headers fail before resolveDataKey.
   */
  maxChunkSize?: number;
}

class ChunkedDecryptStream extends Transform {
  readonly #resolveDataKey: DecryptStreamOptions['resolveDataKey'];
  readonly #maxChunkSize: number;
  // Header phase: pieces gathered until they hold `#headerNeeded` bytes (bounded by the format at ~128 KiB).
  #headerPieces: Buffer[] = [];
  #headerGathered = 0;
  #headerNeeded = FIXED_HEADER_LENGTH + 2;
  #header: ChunkedFileHeader | undefined;
  #fileKey: ChunkedFileKey | undefined;
  // Body phase: one record is held back until a following byte (non-final) or the end (final) is seen.
  #staging: Buffer | undefined;
  #filled = 0;
  #index = 0;

  constructor(options: DecryptStreamOptions) {
    super();
    this.#resolveDataKey = options.resolveDataKey;
    this.#maxChunkSize = options.maxChunkSize ?? MAX_CHUNK_SIZE;
    checkChunkSize(this.#maxChunkSize);
  }

  get header(): ChunkedFileHeader | undefined {
    return this.#header;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#fileKey) {
      try {
        this.#acceptBody(chunk);
        callback();
      } catch (error) {
        callback(error as Error);
      }
      return;
    }
    this.#acceptHeader(chunk).then(() => callback(), callback);
  }

  async #acceptHeader(chunk: Buffer): Promise<void> {
    this.#headerPieces.push(chunk);
    this.#headerGathered += chunk.length;
    if (this.#headerGathered < this.#headerNeeded) {
      // Reject foreign input at once rather than after gathering a header's worth of it.
      if (this.#headerPieces.length === 1) readFileHeader(chunk);
      return;
    }
    const gathered = Buffer.concat(this.#headerPieces, this.#headerGathered);
    this.#headerPieces = [gathered];
    const read = readFileHeader(gathered);
    if (!read.complete) {
      this.#headerNeeded = read.bytesNeeded;
      return;
    }
    const header = read.header;
    if (header.chunkSize > this.#maxChunkSize) throw new CiphertextError();
    this.#headerPieces = [];
    this.#header = header;
    const dataKey = await this.#resolveDataKey(header);
    if (this.destroyed) {
      zeroize(dataKey);
      return;
    }
    try {
      this.#fileKey = new ChunkedFileKey(header, dataKey);
    } finally {
      zeroize(dataKey);
    }
    this.#staging = Buffer.alloc(recordSize(header.chunkSize));
    this.#acceptBody(gathered.subarray(header.length));
  }

  #open(record: Buffer, isFinal: boolean): void {
    const plaintext = this.#fileKey!.open(this.#index, isFinal, record);
    this.#index += 1;
    if (plaintext.length > 0) this.push(plaintext);
  }

  #acceptBody(chunk: Buffer): void {
    const staging = this.#staging!;
    const full = staging.length;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#filled === full) {
        // More bytes follow a whole record, so that record is not the final one.
        this.#open(staging, false);
        this.#filled = 0;
      }
      if (this.#filled === 0 && chunk.length - offset > full) {
        this.#open(chunk.subarray(offset, offset + full), false);
        offset += full;
        continue;
      }
      const copied = chunk.copy(staging, this.#filled, offset, Math.min(chunk.length, offset + full - this.#filled));
      this.#filled += copied;
      offset += copied;
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (!this.#fileKey) throw new CiphertextError();
      const staging = this.#staging!;
      // The final record is 16..S+15 bytes; a whole S+16 record at the end means the file was cut.
      if (this.#filled < GCM_TAG_LENGTH || this.#filled === staging.length) throw new CiphertextError();
      this.#open(staging.subarray(0, this.#filled), true);
      this.#wipe();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  #wipe(): void {
    this.#fileKey?.zeroize();
    zeroize(this.#staging);
    this.#headerPieces = [];
    this.#filled = 0;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#wipe();
    callback(error);
  }
}

/**
 * A Transform from the chunked format to plaintext. Each chunk's plaintext is emitted only after
 * its tag verifies; earlier chunks may already have been emitted when a later one fails, so a
 * consumer writing a file must write to a temporary name and rename only on success.
 */
export function createDecryptStream(options: DecryptStreamOptions): Transform & { readonly header: ChunkedFileHeader | undefined } {
  return new ChunkedDecryptStream(options);
}
