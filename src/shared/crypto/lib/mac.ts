// HMAC and HKDF over node:crypto. Verification is constant-time.
// Must never compare MACs with ===.
import * as nodeCrypto from 'node:crypto';
import { constantTimeEqual, type HashName } from './bytes.ts';

export function hmac(algorithm: HashName, key: Uint8Array | nodeCrypto.KeyObject, data: Uint8Array | string): Buffer {
  return nodeCrypto.createHmac(algorithm, key).update(data).digest();
}

/** Verifies a (possibly truncated) HMAC tag in constant time. */
export function verifyHmac(algorithm: HashName, key: Uint8Array | nodeCrypto.KeyObject,
  data: Uint8Array, tag: Uint8Array): boolean {
  const expected = hmac(algorithm, key, data);
  if (tag.length === 0 || tag.length > expected.length) return false;
  return constantTimeEqual(expected.subarray(0, tag.length), tag);
}

/** HKDF (RFC 5869). */
export function hkdf(algorithm: HashName, ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  return Buffer.from(nodeCrypto.hkdfSync(algorithm, ikm, salt, info, length));
}
