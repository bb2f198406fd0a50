// Byte helpers for key material: randomness, constant-time comparison, zeroing.
// Must never log or copy key bytes anywhere but into the caller's buffer.
import * as nodeCrypto from 'node:crypto';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export function randomBytes(length: number): Buffer {
  return nodeCrypto.randomBytes(length);
}

/** Constant-time equality; unequal lengths are unequal without leaking where they differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) {
    // Still spend comparable time so length is the only thing revealed.
    nodeCrypto.timingSafeEqual(Buffer.from(a), Buffer.from(a));
    return false;
  }
  return nodeCrypto.timingSafeEqual(a, b);
}

/** Overwrites a buffer holding secret bytes once it is no longer needed. */
export function zeroize(...buffers: Array<Uint8Array | undefined | null>): void {
  for (const buffer of buffers) buffer?.fill(0);
}

export function sha256(data: Uint8Array | string): Buffer {
  return nodeCrypto.createHash('sha256').update(data).digest();
}

export function sha256Hex(data: Uint8Array | string): string {
  return nodeCrypto.createHash('sha256').update(data).digest('hex');
}

export type HashName = 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';

export function hash(algorithm: HashName, data: Uint8Array): Buffer {
  return nodeCrypto.createHash(algorithm).update(data).digest();
}

export function randomUuid(): string {
  return nodeCrypto.randomUUID();
}

let collectGarbage: (() => void) | undefined;

/**
 * Runs a full garbage collection on the next turn. Objects that hold key schedules in native
 * memory (cipher contexts) are cleansed by OpenSSL only when collected; sealing should not wait
 * for that to happen by chance. Uses V8's gc hook, enabled once at first use.
 */
export function collectGarbageSoon(): void {
  if (!collectGarbage) {
    v8.setFlagsFromString('--expose-gc');
    collectGarbage = runInNewContext('gc') as () => void;
  }
  const gc = collectGarbage;
  setImmediate(() => gc());
}
