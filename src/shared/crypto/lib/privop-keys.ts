// Keys and signatures of sealed privileged operations: requester signing keys (Ed25519, or P-256),
// result keys (X25519 for HPKE) in PEM files, and detached compact JWS over canonical request bytes (jose).
// Must never accept a JWS algorithm other than EdDSA/ES256, nor one that does not match the key's type.
import * as nodeCrypto from 'node:crypto';
import { calculateJwkThumbprint, CompactSign, compactVerify, decodeProtectedHeader, type JWK } from 'jose';
import { generateHpkeKeyPair } from './hpke.ts';
import { sha256, zeroize } from './bytes.ts';
import { importRawPrivateKey, importRawPublicKey } from './asymmetric.ts';

export type PrivopJwsAlgorithm = 'EdDSA' | 'ES256';
export const PRIVOP_JWS_ALGORITHMS: readonly PrivopJwsAlgorithm[] = ['EdDSA', 'ES256'];

export class PrivopKeyError extends Error {
  readonly code = 'InvalidKey';
  constructor(message: string) {
    super(message);
    this.name = 'PrivopKeyError';
  }
}

function algorithmFor(key: nodeCrypto.KeyObject): PrivopJwsAlgorithm {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new PrivopKeyError('A signer key must be Ed25519 or ECDSA P-256.');
}

/** A new requester signing key pair (Ed25519): PKCS#8 and SPKI PEM. */
export function generateSignerKeyPair(): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = nodeCrypto.generateKeyPairSync('ed25519');
  return { privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }) as string };
}

/** A new result key pair (X25519, for HPKE): PKCS#8 and SPKI PEM, so standard tools read them. */
export async function generateResultKeyPair(): Promise<{ privateKeyPem: string; publicKeyPem: string }> {
  const pair = await generateHpkeKeyPair();
  try {
    return { privateKeyPem: importRawPrivateKey('x25519', pair.privateKey).export({ format: 'pem', type: 'pkcs8' }) as string,
      publicKeyPem: importRawPublicKey('x25519', pair.publicKey).export({ format: 'pem', type: 'spki' }) as string };
  } finally {
    zeroize(pair.privateKey);
  }
}

function rawOkp(key: nodeCrypto.KeyObject, part: 'x' | 'd'): Buffer {
  const jwk = key.export({ format: 'jwk' });
  const value = jwk[part];
  if (typeof value !== 'string') throw new PrivopKeyError('Expected an X25519 key.');
  return Buffer.from(value, 'base64url');
}

/** The raw X25519 public key (32 bytes) of a result.pub (SPKI PEM), or of a result.key (its public half). */
export function resultPublicKeyFromPem(pem: string): Buffer {
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPublicKey(pem);
  } catch {
    throw new PrivopKeyError('Not a PEM public key (expected an X25519 result key, e.g. result.pub).');
  }
  if (key.asymmetricKeyType !== 'x25519') throw new PrivopKeyError(`A result key must be X25519, not ${key.asymmetricKeyType ?? 'unknown'}.`);
  return rawOkp(key, 'x');
}

/** The raw X25519 private key (32 bytes; the caller zeroizes it) and its public key, from a result.key (PKCS#8 PEM). */
export function resultPrivateKeyFromPem(pem: string): { privateKey: Buffer; publicKey: Buffer } {
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPrivateKey(pem);
  } catch {
    throw new PrivopKeyError('Not a PEM private key (expected an X25519 result key, e.g. result.key).');
  }
  if (key.asymmetricKeyType !== 'x25519') throw new PrivopKeyError(`A result key must be X25519, not ${key.asymmetricKeyType ?? 'unknown'}.`);
  return { privateKey: rawOkp(key, 'd'), publicKey: rawOkp(nodeCrypto.createPublicKey(key), 'x') };
}

/** A signer's public key (SPKI PEM, Ed25519 or P-256) and its key id: the RFC 7638 JWK thumbprint (SHA-256). */
export async function importSignerPublicKey(pem: string): Promise<{ key: nodeCrypto.KeyObject; keyId: string; algorithm: PrivopJwsAlgorithm }> {
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPublicKey(pem);
  } catch {
    throw new PrivopKeyError('Not a PEM public key (expected a signer key, e.g. signer.pub).');
  }
  const algorithm = algorithmFor(key);
  return { key, keyId: await calculateJwkThumbprint(key.export({ format: 'jwk' }) as JWK, 'sha256'), algorithm };
}

/** The key of a signer certificate (DER; Ed25519 or P-256) and its key id, to verify the request's JWS with. */
export async function importSignerCertificateKey(certificateDer: Uint8Array): Promise<{ key: nodeCrypto.KeyObject; keyId: string; algorithm: PrivopJwsAlgorithm }> {
  const key = new nodeCrypto.X509Certificate(Buffer.from(certificateDer)).publicKey;
  const algorithm = algorithmFor(key);
  return { key, keyId: await calculateJwkThumbprint(key.export({ format: 'jwk' }) as JWK, 'sha256'), algorithm };
}

/** PKCS#8 DER of a PEM private key and SPKI DER of its public half (to issue certificates with keys read from files); the caller zeroizes `pkcs8`. */
export function privateKeyPemToDer(pem: string): { pkcs8: Buffer; publicKeySpki: Buffer } {
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPrivateKey(pem);
  } catch {
    throw new PrivopKeyError('Not a PEM private key.');
  }
  return { pkcs8: key.export({ format: 'der', type: 'pkcs8' }), publicKeySpki: nodeCrypto.createPublicKey(key).export({ format: 'der', type: 'spki' }) };
}

/** SPKI DER of a PEM public key. */
export function publicKeyPemToDer(pem: string): Buffer {
  try {
    return nodeCrypto.createPublicKey(pem).export({ format: 'der', type: 'spki' });
  } catch {
    throw new PrivopKeyError('Not a PEM public key.');
  }
}

/**
 * A compact JWS over `payload` with the payload detached (`header..signature`, RFC 7515 appendix F),
 * signed with a PKCS#8 PEM key (Ed25519 → EdDSA, P-256 → ES256); kid is the key's JWK thumbprint.
 */
/**
 * Signs `payload` as a compact JWS with a detached payload. `certificateDer`: the signer's certificate, named in the protected
 * header (x5t#S256) so the certificate a request is judged under is covered by the signature.
 */
export async function signDetachedJws(privateKeyPem: string, payload: Uint8Array, type: string, certificateDer?: Uint8Array): Promise<string> {
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPrivateKey(privateKeyPem);
  } catch {
    throw new PrivopKeyError('Not a PEM private key (expected a signer key, e.g. signer.key).');
  }
  const algorithm = algorithmFor(key);
  const keyId = await calculateJwkThumbprint(nodeCrypto.createPublicKey(key).export({ format: 'jwk' }) as JWK, 'sha256');
  const jws = await new CompactSign(payload).setProtectedHeader({ alg: algorithm, kid: keyId, typ: type,
    ...(certificateDer ? { 'x5t#S256': certificateThumbprint(certificateDer) } : {}) }).sign(key);
  const [header, , signature] = jws.split('.');
  return `${header}..${signature}`;
}

/** RFC 7515 x5t#S256: base64url SHA-256 of a certificate's DER. */
export function certificateThumbprint(certificateDer: Uint8Array): string {
  return sha256(certificateDer).toString('base64url');
}

/** The protected header of a detached JWS (unverified: only to pick the key), or undefined when malformed. */
export function detachedJwsHeader(detached: string): { alg?: string; kid?: string; typ?: string; x5tS256?: string } | undefined {
  const parts = detached.split('.');
  if (parts.length !== 3 || parts[1] !== '' || !parts[0] || !parts[2]) return undefined;
  try {
    const header = decodeProtectedHeader(detached);
    const thumbprint = header['x5t#S256'];
    return { alg: header.alg, kid: header.kid, typ: header.typ, ...(typeof thumbprint === 'string' ? { x5tS256: thumbprint } : {}) };
  } catch {
    return undefined;
  }
}

/** Checks a detached JWS over `payload` with one key, the algorithm fixed by the key's type and `typ` required; false on any mismatch. */
export async function verifyDetachedJws(publicKey: nodeCrypto.KeyObject, detached: string, payload: Uint8Array, type: string): Promise<boolean> {
  const header = detachedJwsHeader(detached);
  if (!header || header.typ !== type) return false;
  const [protectedHeader, , signature] = detached.split('.');
  try {
    await compactVerify(`${protectedHeader}.${Buffer.from(payload).toString('base64url')}.${signature}`, publicKey,
      { algorithms: [algorithmFor(publicKey)] });
    return true;
  } catch {
    return false;
  }
}

/** ECDSA P-256 / SHA-256 (DER) signature with a PKCS#8 PEM key (a host's identity key). */
export function signWithPemKey(privateKeyPem: string, message: Uint8Array): Buffer {
  const key = nodeCrypto.createPrivateKey(privateKeyPem);
  if (key.asymmetricKeyType !== 'ec') throw new PrivopKeyError('The host identity key must be ECDSA.');
  return nodeCrypto.sign('sha256', message, { key, dsaEncoding: 'der' });
}
