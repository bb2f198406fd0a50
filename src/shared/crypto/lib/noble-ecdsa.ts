// ECDSA over a precomputed digest via the audited @noble/curves: node:crypto always hashes.
// Must never be used for anything but digest-mode signing and verification.
import type { KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { p384 } from '@noble/curves/p384';
import { p521 } from '@noble/curves/p521';
import { secp256k1 } from '@noble/curves/secp256k1';

type Curve = typeof p256 | typeof p384 | typeof p521 | typeof secp256k1;

function curveOf(key: KeyObject): Curve {
  const name = key.asymmetricKeyDetails?.namedCurve;
  switch (name) {
    case 'prime256v1': case 'P-256': return p256;
    case 'secp384r1': case 'P-384': return p384;
    case 'secp521r1': case 'P-521': return p521;
    case 'secp256k1': return secp256k1;
    default: throw new RangeError(`unsupported ECDSA curve ${String(name)}`);
  }
}

function base64UrlToBytes(value: string | undefined): Uint8Array {
  if (!value) throw new RangeError('incomplete EC key');
  return Buffer.from(value, 'base64url');
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(bytes).toString('hex') || '0'}`);
}

export const ecdsa = {
  signDigest(privateKey: KeyObject, digest: Uint8Array, encoding: 'der' | 'p1363'): Buffer {
    const curve = curveOf(privateKey);
    const d = base64UrlToBytes(privateKey.export({ format: 'jwk' }).d);
    try {
      // prehash: false because the input already is the digest; lowS to match OpenSSL-free verifiers.
      const signature = curve.sign(digest, d, { prehash: false, lowS: false });
      return Buffer.from(encoding === 'der' ? signature.toDERRawBytes() : signature.toCompactRawBytes());
    } finally {
      d.fill(0);
    }
  },
  verifyDigest(publicKey: KeyObject, digest: Uint8Array, signature: Uint8Array, encoding: 'der' | 'p1363'): boolean {
    const curve = curveOf(publicKey);
    const jwk = publicKey.export({ format: 'jwk' });
    const point = curve.ProjectivePoint.fromAffine({ x: bytesToBigInt(base64UrlToBytes(jwk.x)),
      y: bytesToBigInt(base64UrlToBytes(jwk.y)) });
    try {
      return curve.verify(signature, digest, point.toRawBytes(false),
        { prehash: false, lowS: false, format: encoding === 'der' ? 'der' : 'compact' });
    } catch {
      return false;
    }
  },
};
