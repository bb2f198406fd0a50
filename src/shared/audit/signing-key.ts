// The audit signing key: Ed25519, made once, private half only wrapped under a domain key and
// unwrapped just long enough to sign a checkpoint. Must never store or keep the private half in clear.
import {
  importPrivateKeyDer, importPublicKeyDer, importRawPrivateKey, importRawPublicKey, Keyring, randomBytes, sha256Hex,
  signMessage, verifyMessage, zeroize,
} from '../crypto/index.ts';
import { SECRET_PURPOSES } from '../store/index.ts';
import type { AuditSigningKeyRecord } from './audit-store.ts';
import { AUDIT_SIGNATURE_SCHEME } from './domain/index.ts';
import { AuditSigningKeyMismatchError } from './errors.ts';

/** The purpose the private half is wrapped for (bound into the wrap's associated data with the key id). */
export const AUDIT_SIGNING_KEY_PURPOSE = SECRET_PURPOSES.auditSigningKey;

/** SHA-256 of the SubjectPublicKeyInfo, hex: what an operator records to pin the key. */
export function auditKeyFingerprint(publicKeyDer: Uint8Array): string {
  return sha256Hex(publicKeyDer);
}

/** Makes a new key and returns it with the private half wrapped; needs the crypto module unsealed. */
export async function createAuditSigningKey(keyring: Keyring, now: Date): Promise<AuditSigningKeyRecord> {
  const seed = randomBytes(32);
  let pkcs8: Buffer | undefined;
  try {
    const privateKey = importRawPrivateKey('ed25519', seed);
    pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
    // The crypto module has no "public half of" call yet; the JWK form carries the public point as x.
    const { x } = privateKey.export({ format: 'jwk' });
    if (!x) throw new Error('Ed25519 key export lacks its public point');
    const publicKeyDer = importRawPublicKey('ed25519', Buffer.from(x, 'base64url')).export({ format: 'der', type: 'spki' });
    const keyId = `audit-${auditKeyFingerprint(publicKeyDer).slice(0, 16)}`;
    const wrapped = await keyring.wrapSecret(AUDIT_SIGNING_KEY_PURPOSE, keyId, pkcs8);
    return { keyId, publicKeyDer, privateKey: wrapped, createdAt: now, state: 'active' };
  } finally {
    zeroize(seed, pkcs8);
  }
}

/**
 * Signs with the key, unwrapping it for this one signature. The public half is stored in clear and
 * could have been swapped for an attacker's; a signature it does not verify is refused.
 */
export async function signWithAuditKey(keyring: Keyring, key: AuditSigningKeyRecord, message: Uint8Array): Promise<Buffer> {
  const pkcs8 = await keyring.unsafeUnwrapSecret(AUDIT_SIGNING_KEY_PURPOSE, key.keyId, key.privateKey);
  let signature: Buffer;
  try {
    signature = signMessage(AUDIT_SIGNATURE_SCHEME, importPrivateKeyDer(pkcs8), message);
  } finally {
    zeroize(pkcs8);
  }
  if (!verifyMessage(AUDIT_SIGNATURE_SCHEME, importPublicKeyDer(key.publicKeyDer), message, signature)) {
    throw new AuditSigningKeyMismatchError(key.keyId);
  }
  return signature;
}
