// Asymmetric primitives: signatures (RSA-PSS, RSA PKCS#1 v1.5, ECDSA, Ed25519),
// RSA-OAEP and key agreement (X25519, ECDH). Must never accept a signature it cannot verify.
import * as nodeCrypto from 'node:crypto';
import { ecdsa as nobleEcdsaCurves } from './noble-ecdsa.ts';
import { constantTimeEqual, type HashName } from './bytes.ts';

export type SignatureScheme =
  | { kind: 'rsa-pss'; hash: HashName; saltLength?: number; mgf1Hash?: HashName }
  | { kind: 'rsa-pkcs1'; hash: HashName }
  | { kind: 'ecdsa'; hash: HashName; encoding: 'der' | 'p1363' }
  | { kind: 'ed25519' };

export type PrivateKeyInput = nodeCrypto.KeyObject;
export type PublicKeyInput = nodeCrypto.KeyObject;

const HASH_LENGTHS: Record<HashName, number> = { sha1: 20, sha224: 28, sha256: 32, sha384: 48, sha512: 64 };

export function hashLength(hashName: HashName): number {
  return HASH_LENGTHS[hashName];
}

function rsaPadding(scheme: SignatureScheme, key: nodeCrypto.KeyObject) {
  if (scheme.kind === 'rsa-pss') {
    return { key, padding: nodeCrypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: scheme.saltLength ?? HASH_LENGTHS[scheme.hash] };
  }
  if (scheme.kind === 'rsa-pkcs1') return { key, padding: nodeCrypto.constants.RSA_PKCS1_PADDING };
  if (scheme.kind === 'ecdsa') return { key, dsaEncoding: scheme.encoding === 'der' ? 'der' as const : 'ieee-p1363' as const };
  return key;
}

/** Signs a message (hashing it with the scheme's hash). */
export function signMessage(scheme: SignatureScheme, privateKey: PrivateKeyInput, message: Uint8Array): Buffer {
  if (scheme.kind === 'ed25519') return nodeCrypto.sign(null, message, privateKey);
  if (scheme.kind === 'rsa-pss' && scheme.mgf1Hash && scheme.mgf1Hash !== scheme.hash) {
    throw new RangeError('RSA-PSS with an MGF1 hash different from the message hash is not supported');
  }
  return nodeCrypto.sign(scheme.hash, message, rsaPadding(scheme, privateKey));
}

/** Verifies a signature over a message; false (never a throw) for any malformed signature. */
export function verifyMessage(scheme: SignatureScheme, publicKey: PublicKeyInput, message: Uint8Array,
  signature: Uint8Array): boolean {
  try {
    if (scheme.kind === 'ed25519') return nodeCrypto.verify(null, message, publicKey, signature);
    if (scheme.kind === 'rsa-pss' && scheme.mgf1Hash && scheme.mgf1Hash !== scheme.hash) return false;
    return nodeCrypto.verify(scheme.hash, message, rsaPadding(scheme, publicKey), signature);
  } catch {
    return false;
  }
}

// DER DigestInfo prefixes (RFC 8017 §9.2 note 1): node:crypto has no "sign this digest" call
// for RSA, so PKCS#1 v1.5 over a precomputed digest is the private-key operation over
// DigestInfo with PKCS#1 type-1 padding, which is exactly what RSA_sign does inside OpenSSL.
const DIGEST_INFO_PREFIX: Partial<Record<HashName, string>> = {
  sha224: '302d300d06096086480165030402040500041c',
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/**
 * Signs a precomputed digest. Supported: RSA PKCS#1 v1.5 (OpenSSL) and ECDSA (audited
 * @noble/curves, because OpenSSL's prehashed ECDSA is not reachable from node:crypto).
 * RSA-PSS over a digest is not reachable either, and we do not implement PSS encoding ourselves.
 */
export function signDigest(scheme: SignatureScheme, privateKey: PrivateKeyInput, digest: Uint8Array): Buffer {
  if (digest.length !== hashLengthOf(scheme)) throw new RangeError('digest length does not match the hash');
  if (scheme.kind === 'rsa-pkcs1') {
    const prefix = DIGEST_INFO_PREFIX[scheme.hash];
    if (!prefix) throw new RangeError(`no DigestInfo for ${scheme.hash}`);
    const digestInfo = Buffer.concat([Buffer.from(prefix, 'hex'), digest]);
    return nodeCrypto.privateEncrypt({ key: privateKey, padding: nodeCrypto.constants.RSA_PKCS1_PADDING }, digestInfo);
  }
  if (scheme.kind === 'ecdsa') return nobleEcdsaCurves.signDigest(privateKey, digest, scheme.encoding);
  throw new UnsupportedDigestSigningError();
}

export function verifyDigest(scheme: SignatureScheme, publicKey: PublicKeyInput, digest: Uint8Array,
  signature: Uint8Array): boolean {
  if (digest.length !== hashLengthOf(scheme)) return false;
  try {
    if (scheme.kind === 'rsa-pkcs1') {
      const prefix = DIGEST_INFO_PREFIX[scheme.hash];
      if (!prefix) return false;
      const expected = Buffer.concat([Buffer.from(prefix, 'hex'), digest]);
      const recovered = nodeCrypto.publicDecrypt({ key: publicKey, padding: nodeCrypto.constants.RSA_PKCS1_PADDING },
        signature);
      return constantTimeEqual(recovered, expected);
    }
    if (scheme.kind === 'ecdsa') return nobleEcdsaCurves.verifyDigest(publicKey, digest, signature, scheme.encoding);
  } catch {
    return false;
  }
  throw new UnsupportedDigestSigningError();
}

export class UnsupportedDigestSigningError extends Error {
  constructor() {
    super('Signing a precomputed digest is not supported for this signing algorithm; use MessageType RAW.');
    this.name = 'UnsupportedDigestSigningError';
  }
}

function hashLengthOf(scheme: SignatureScheme): number {
  if (scheme.kind === 'ed25519') return -1;
  return HASH_LENGTHS[scheme.hash];
}

export function rsaOaepEncrypt(publicKey: PublicKeyInput, hashName: HashName, plaintext: Uint8Array,
  label?: Uint8Array): Buffer {
  return nodeCrypto.publicEncrypt({ key: publicKey, padding: nodeCrypto.constants.RSA_PKCS1_OAEP_PADDING,
    oaepHash: hashName, oaepLabel: label }, plaintext);
}

/** RSA-OAEP decryption; throws on any padding failure without saying why. */
export function rsaOaepDecrypt(privateKey: PrivateKeyInput, hashName: HashName, ciphertext: Uint8Array,
  label?: Uint8Array): Buffer {
  try {
    return nodeCrypto.privateDecrypt({ key: privateKey, padding: nodeCrypto.constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: hashName, oaepLabel: label }, ciphertext);
  } catch {
    throw new OaepDecryptionError();
  }
}

export class OaepDecryptionError extends Error {
  constructor() { super('RSA-OAEP decryption failed'); this.name = 'OaepDecryptionError'; }
}

/** Diffie-Hellman style agreement for X25519 and NIST curves; rejects all-zero X25519 results. */
export function agreeSharedSecret(privateKey: PrivateKeyInput, peerPublicKey: PublicKeyInput): Buffer {
  const secret = nodeCrypto.diffieHellman({ privateKey, publicKey: peerPublicKey });
  if (privateKey.asymmetricKeyType === 'x25519' && secret.every((byte) => byte === 0)) {
    throw new RangeError('X25519 produced the all-zero shared secret (low-order point)');
  }
  return secret;
}

/** Where the content of the DER element starting at `offset` lies (input is OpenSSL's own well-formed export). */
function derContent(der: Buffer, offset: number): { start: number; end: number } {
  const lengthByte = der[offset + 1];
  if (lengthByte < 0x80) return { start: offset + 2, end: offset + 2 + lengthByte };
  const count = lengthByte & 0x7f;
  let length = 0;
  for (let index = 0; index < count; index += 1) length = length * 256 + der[offset + 2 + index];
  return { start: offset + 2 + count, end: offset + 2 + count + length };
}

const DER_OID_TAG = 0x06;

// OpenSSL accepts explicit curve parameters and quietly matches them to a named curve even when
// the cofactor is missing or wrong (Wycheproof ecdh tcId 359, 361); RFC 5480 forbids them, so we
// accept only keys whose AlgorithmIdentifier names the curve. The re-export keeps the input's form.
function namesItsCurve(key: nodeCrypto.KeyObject): boolean {
  const der = key.export({ format: 'der', type: 'spki' });
  const spki = derContent(der, 0);
  const algorithm = derContent(der, spki.start);
  const algorithmOid = derContent(der, algorithm.start);
  return algorithmOid.end < algorithm.end && der[algorithmOid.end] === DER_OID_TAG;
}

/** Imports an SPKI public key; EC keys must use a named curve (no explicit parameters). */
export function importPublicKeyDer(spki: Uint8Array): nodeCrypto.KeyObject {
  const key = nodeCrypto.createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType === 'ec' && !namesItsCurve(key)) {
    throw new RangeError('EC public key must name its curve; explicit curve parameters are not accepted (RFC 5480)');
  }
  return key;
}

export function importPrivateKeyDer(pkcs8: Uint8Array): nodeCrypto.KeyObject {
  return nodeCrypto.createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
}

export function importPublicKeyJwk(jwk: nodeCrypto.JsonWebKey): nodeCrypto.KeyObject {
  return nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' });
}

export function importPrivateKeyJwk(jwk: nodeCrypto.JsonWebKey): nodeCrypto.KeyObject {
  return nodeCrypto.createPrivateKey({ key: jwk, format: 'jwk' });
}

// Fixed DER prefixes (RFC 8410): an X25519/Ed25519 key is the OID plus the raw 32 bytes,
// so wrapping raw bytes in SPKI/PKCS#8 lets OpenSSL do all of the validation.
const RAW_KEY_PREFIXES = {
  x25519: { spki: '302a300506032b656e032100', pkcs8: '302e020100300506032b656e04220420' },
  ed25519: { spki: '302a300506032b6570032100', pkcs8: '302e020100300506032b657004220420' },
} as const;

export type RawKeyType = keyof typeof RAW_KEY_PREFIXES;

function requireRawLength(raw: Uint8Array): void {
  if (raw.length !== 32) throw new RangeError(`raw X25519/Ed25519 key must be 32 bytes, got ${raw.length}`);
}

/** Imports a raw 32-byte X25519 or Ed25519 public key (RFC 7748 / RFC 8032 encoding). */
export function importRawPublicKey(type: RawKeyType, raw: Uint8Array): nodeCrypto.KeyObject {
  requireRawLength(raw);
  return importPublicKeyDer(Buffer.concat([Buffer.from(RAW_KEY_PREFIXES[type].spki, 'hex'), raw]));
}

/** Imports a raw 32-byte X25519 or Ed25519 private key (scalar / seed). */
export function importRawPrivateKey(type: RawKeyType, raw: Uint8Array): nodeCrypto.KeyObject {
  requireRawLength(raw);
  const der = Buffer.concat([Buffer.from(RAW_KEY_PREFIXES[type].pkcs8, 'hex'), raw]);
  try {
    return importPrivateKeyDer(der);
  } finally {
    der.fill(0);
  }
}

export type EcCurveName = 'P-256' | 'P-384' | 'P-521';

const EC_CURVES: Record<EcCurveName, { openssl: string; scalarLength: number }> = {
  'P-256': { openssl: 'prime256v1', scalarLength: 32 },
  'P-384': { openssl: 'secp384r1', scalarLength: 48 },
  'P-521': { openssl: 'secp521r1', scalarLength: 66 },
};

/**
 * Imports a NIST-curve private key from its big-endian scalar. Leading zero bytes are
 * tolerated (integer encodings vary); a scalar wider than the curve order is refused.
 */
export function importEcPrivateScalar(curve: EcCurveName, scalar: Uint8Array): nodeCrypto.KeyObject {
  const { openssl, scalarLength } = EC_CURVES[curve];
  let start = 0;
  while (start < scalar.length - scalarLength && scalar[start] === 0) start += 1;
  const trimmed = scalar.subarray(start);
  if (trimmed.length > scalarLength) throw new RangeError(`EC scalar too long for ${curve}`);
  const d = Buffer.alloc(scalarLength);
  d.set(trimmed, scalarLength - trimmed.length);
  try {
    // createECDH derives the public point, which the JWK import needs alongside d.
    const ecdh = nodeCrypto.createECDH(openssl);
    ecdh.setPrivateKey(d);
    const point = ecdh.getPublicKey();
    const coordinateLength = (point.length - 1) / 2;
    return importPrivateKeyJwk({ kty: 'EC', crv: curve, d: d.toString('base64url'),
      x: point.subarray(1, 1 + coordinateLength).toString('base64url'),
      y: point.subarray(1 + coordinateLength).toString('base64url') });
  } finally {
    d.fill(0);
  }
}
