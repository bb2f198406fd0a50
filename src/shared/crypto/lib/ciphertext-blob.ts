// The self-describing ciphertext format shared by the key service and host agents,
// and the unambiguous encoding of encryption context. Must never parse leniently.
import { CiphertextError } from '../../errors.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH } from './aead.ts';

/**
 * Layout of format version 1 (all integers big-endian); bytes 0..34 are the header,
 * authenticated as associated data together with the encoded encryption context:
 *   0      format version (1)
 *   1..16  key id (UUID, 16 bytes)
 *   17..20 key version (uint32, from 1)
 *   21     algorithm (1 = AES-256-GCM)
 *   22     nonce length (12)
 *   23..34 nonce
 *   35..   ciphertext, then the 16-byte GCM tag
 */
export const CIPHERTEXT_FORMAT_VERSION = 1;
export const ALGORITHM_AES_256_GCM = 1;
const HEADER_LENGTH = 23 + GCM_NONCE_LENGTH;
export const MIN_CIPHERTEXT_BLOB_LENGTH = HEADER_LENGTH + GCM_TAG_LENGTH;

export interface CiphertextHeader {
  formatVersion: number;
  keyId: string;
  keyVersion: number;
  algorithm: number;
  nonce: Buffer;
}

export interface ParsedCiphertext extends CiphertextHeader {
  header: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function uuidToBytes(uuid: string): Buffer {
  if (!UUID_PATTERN.test(uuid)) throw new RangeError('key id is not a lowercase UUID');
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function encodeCiphertextHeader(header: Omit<CiphertextHeader, 'formatVersion'>): Buffer {
  if (header.nonce.length !== GCM_NONCE_LENGTH) throw new RangeError('nonce must be 12 bytes');
  const out = Buffer.alloc(HEADER_LENGTH);
  out.writeUInt8(CIPHERTEXT_FORMAT_VERSION, 0);
  uuidToBytes(header.keyId).copy(out, 1);
  out.writeUInt32BE(header.keyVersion, 17);
  out.writeUInt8(header.algorithm, 21);
  out.writeUInt8(GCM_NONCE_LENGTH, 22);
  header.nonce.copy(out, 23);
  return out;
}

/** Parses a blob; anything not exactly of the format is an InvalidCiphertext. */
export function parseCiphertextBlob(blob: Uint8Array): ParsedCiphertext {
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (bytes.length < MIN_CIPHERTEXT_BLOB_LENGTH) throw new CiphertextError();
  if (bytes[0] !== CIPHERTEXT_FORMAT_VERSION) throw new CiphertextError();
  if (bytes[21] !== ALGORITHM_AES_256_GCM || bytes[22] !== GCM_NONCE_LENGTH) throw new CiphertextError();
  const keyVersion = bytes.readUInt32BE(17);
  if (keyVersion === 0) throw new CiphertextError();
  return {
    formatVersion: bytes[0],
    keyId: bytesToUuid(bytes.subarray(1, 17)),
    keyVersion,
    algorithm: bytes[21],
    nonce: bytes.subarray(23, HEADER_LENGTH),
    header: bytes.subarray(0, HEADER_LENGTH),
    ciphertext: bytes.subarray(HEADER_LENGTH, bytes.length - GCM_TAG_LENGTH),
    tag: bytes.subarray(bytes.length - GCM_TAG_LENGTH),
  };
}

export type EncryptionContext = Record<string, string>;

/**
 * Encodes an encryption context as count, then (key, value) pairs sorted by the key's
 * UTF-8 bytes, each length-prefixed (uint32): {"ab":"c"} and {"a":"bc"} never collide.
 */
export function encodeEncryptionContext(context: EncryptionContext | undefined): Buffer {
  const entries = Object.entries(context ?? {}).map(([key, value]) => {
    // An unpaired surrogate would become U+FFFD and collide with other strings: refuse it.
    if (!key.isWellFormed() || !value.isWellFormed()) throw new RangeError('encryption context strings must be well-formed Unicode');
    return [Buffer.from(key, 'utf8'), Buffer.from(value, 'utf8')] as const;
  });
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(entries.length);
  parts.push(count);
  for (const [key, value] of entries) {
    const keyLength = Buffer.alloc(4);
    keyLength.writeUInt32BE(key.length);
    const valueLength = Buffer.alloc(4);
    valueLength.writeUInt32BE(value.length);
    parts.push(keyLength, key, valueLength, value);
  }
  return Buffer.concat(parts);
}

/** Inverse of encodeEncryptionContext, for formats that carry the context with the data. */
export function decodeEncryptionContext(encoded: Uint8Array): EncryptionContext {
  const bytes = Buffer.from(encoded);
  const fail = (): never => { throw new CiphertextError('The encryption context encoding is malformed.'); };
  if (bytes.length < 4) fail();
  const count = bytes.readUInt32BE(0);
  let offset = 4;
  // defineProperty, not assignment: a key named __proto__ stays an ordinary own key.
  const context: EncryptionContext = {};
  const readField = (): string => {
    if (offset + 4 > bytes.length) fail();
    const length = bytes.readUInt32BE(offset);
    offset += 4;
    if (offset + length > bytes.length) fail();
    const value = bytes.subarray(offset, offset + length).toString('utf8');
    offset += length;
    return value;
  };
  for (let index = 0; index < count; index += 1) {
    const key = readField();
    Object.defineProperty(context, key, { value: readField(), enumerable: true });
  }
  if (offset !== bytes.length) fail();
  return context;
}
