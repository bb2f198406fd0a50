// The payload checks S3 clients send (x-amz-checksum-* CRC32/CRC32C/CRC64NVME/SHA1/SHA256, Content-MD5), computed as bytes pass.
// Must never buffer a payload to check it, nor accept a value that is not exactly the algorithm's length.
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { Crc32c } from '@aws-crypto/crc32c';
import { Crc64Nvme } from '@aws-sdk/crc64-nvme';
import { S3Error } from '../errors.ts';

export type ChecksumAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME' | 'SHA1' | 'SHA256';

export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];

const DIGEST_LENGTH: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 };

/** The header (and trailer) that carries a checksum: `x-amz-checksum-crc32` and so on. */
export function checksumHeaderName(algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm.toLowerCase()}`;
}

/** The algorithm a checksum header names; undefined for any other header. */
export function checksumAlgorithmOfHeader(name: string): ChecksumAlgorithm | undefined {
  const lower = name.toLowerCase();
  return CHECKSUM_ALGORITHMS.find((algorithm) => checksumHeaderName(algorithm) === lower);
}

/** The algorithm S3 names in x-amz-sdk-checksum-algorithm and x-amz-checksum-algorithm (any case). */
export function parseChecksumAlgorithm(value: string): ChecksumAlgorithm | undefined {
  const upper = value.trim().toUpperCase();
  return CHECKSUM_ALGORITHMS.find((algorithm) => algorithm === upper);
}

/** A digest fed piece by piece. */
export interface RunningDigest {
  update(piece: Uint8Array): void;
  /** The digest; call once, after the last update. */
  digest(): Promise<Buffer>;
}

class NodeHashDigest implements RunningDigest {
  readonly #hash;
  constructor(algorithm: 'md5' | 'sha1' | 'sha256') { this.#hash = createHash(algorithm); }
  update(piece: Uint8Array): void { this.#hash.update(piece); }
  async digest(): Promise<Buffer> { return this.#hash.digest(); }
}

class Crc32Digest implements RunningDigest {
  #value = 0;
  update(piece: Uint8Array): void { this.#value = crc32(piece, this.#value); }
  async digest(): Promise<Buffer> {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.#value >>> 0);
    return out;
  }
}

class Crc32cDigest implements RunningDigest {
  readonly #crc = new Crc32c();
  update(piece: Uint8Array): void { this.#crc.update(piece); }
  async digest(): Promise<Buffer> {
    const out = Buffer.alloc(4);
    out.writeUInt32BE(this.#crc.digest() >>> 0);
    return out;
  }
}

class Crc64NvmeDigest implements RunningDigest {
  readonly #crc = new Crc64Nvme();
  update(piece: Uint8Array): void { this.#crc.update(piece); }
  async digest(): Promise<Buffer> { return Buffer.from(await this.#crc.digest()); }
}

export function createChecksum(algorithm: ChecksumAlgorithm): RunningDigest {
  switch (algorithm) {
    case 'CRC32': return new Crc32Digest();
    case 'CRC32C': return new Crc32cDigest();
    case 'CRC64NVME': return new Crc64NvmeDigest();
    case 'SHA1': return new NodeHashDigest('sha1');
    case 'SHA256': return new NodeHashDigest('sha256');
  }
}

/** MD5 (for Content-MD5 and the ETag) and SHA-256 (for x-amz-content-sha256 and chunk signatures). */
export function createDigest(algorithm: 'md5' | 'sha256'): RunningDigest {
  return new NodeHashDigest(algorithm);
}

/** A one-shot hex SHA-256 of one chunk's data, fed piece by piece without a promise (chunk signatures need it synchronously). */
export class ChunkSha256 {
  #hash = createHash('sha256');
  update(piece: Uint8Array): void { this.#hash.update(piece); }
  /** The hex digest of what was fed since the last call; starts afresh. */
  takeHex(): string {
    const hex = this.#hash.digest('hex');
    this.#hash = createHash('sha256');
    return hex;
  }
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 of exactly `length` bytes, or undefined. */
function decodeBase64Exact(value: string, length: number): Buffer | undefined {
  if (!STRICT_BASE64.test(value)) return undefined;
  const bytes = Buffer.from(value, 'base64');
  return bytes.length === length ? bytes : undefined;
}

/** The checksum a client sent, decoded; InvalidDigest when it is not base64 of the algorithm's length. */
export function parseChecksumValue(algorithm: ChecksumAlgorithm, value: string): Buffer {
  const bytes = decodeBase64Exact(value.trim(), DIGEST_LENGTH[algorithm]);
  if (!bytes) throw new S3Error('InvalidDigest', `The value specified in the ${checksumHeaderName(algorithm)} header is not a valid ${algorithm} checksum.`);
  return bytes;
}

/** Content-MD5, decoded; InvalidDigest when it is not base64 of 16 bytes. */
export function parseContentMd5(value: string): Buffer {
  const bytes = decodeBase64Exact(value.trim(), 16);
  if (!bytes) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.');
  return bytes;
}
