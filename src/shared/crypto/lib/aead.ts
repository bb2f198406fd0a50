// AES-256-GCM and AES key wrap with padding (RFC 5649), the symmetric AEADs we compose.
// Must never return unauthenticated plaintext: decryption either verifies the tag or throws.
import * as nodeCrypto from 'node:crypto';
import { CiphertextError } from '../../errors.ts';

export type SymmetricKey = Uint8Array | nodeCrypto.KeyObject;

export const GCM_TAG_LENGTH = 16;
export const GCM_NONCE_LENGTH = 12;
/** OpenSSL's limit on GCM nonces (GCM_IV_MAX_SIZE); longer ones are refused rather than half-supported. */
export const GCM_MAX_NONCE_LENGTH = 128;

function gcmCipherName(key: SymmetricKey): nodeCrypto.CipherGCMTypes {
  const length = key instanceof nodeCrypto.KeyObject ? key.symmetricKeySize : key.length;
  switch (length) {
    case 16: return 'aes-128-gcm';
    case 24: return 'aes-192-gcm';
    case 32: return 'aes-256-gcm';
    default: throw new RangeError(`AES-GCM key must be 16, 24 or 32 bytes, got ${length}`);
  }
}

export interface GcmSealed {
  ciphertext: Buffer;
  tag: Buffer;
}

/** AES-GCM encryption; returns ciphertext and tag separately. */
export function aesGcmEncrypt(key: SymmetricKey, nonce: Uint8Array, plaintext: Uint8Array,
  aad?: Uint8Array, tagLength = GCM_TAG_LENGTH): GcmSealed {
  if (nonce.length === 0 || nonce.length > GCM_MAX_NONCE_LENGTH) {
    throw new RangeError(`AES-GCM nonce must be 1 to ${GCM_MAX_NONCE_LENGTH} bytes, got ${nonce.length}`);
  }
  const cipher = nodeCrypto.createCipheriv(gcmCipherName(key), key, nonce, { authTagLength: tagLength });
  if (aad) cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** AES-GCM decryption; throws CiphertextError on any authentication failure. */
export function aesGcmDecrypt(key: SymmetricKey, nonce: Uint8Array, ciphertext: Uint8Array,
  tag: Uint8Array, aad?: Uint8Array): Buffer {
  if (nonce.length === 0 || nonce.length > GCM_MAX_NONCE_LENGTH || tag.length < 12 || tag.length > 16) {
    throw new CiphertextError();
  }
  try {
    const decipher = nodeCrypto.createDecipheriv(gcmCipherName(key), key, nonce, { authTagLength: tag.length });
    decipher.setAuthTag(tag);
    if (aad) decipher.setAAD(aad);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch (error) {
    if (error instanceof RangeError) throw error;
    throw new CiphertextError();
  }
}

function kwpCipherName(key: SymmetricKey): string {
  const length = key instanceof nodeCrypto.KeyObject ? key.symmetricKeySize : key.length;
  switch (length) {
    case 16: return 'id-aes128-wrap-pad';
    case 24: return 'id-aes192-wrap-pad';
    case 32: return 'id-aes256-wrap-pad';
    default: throw new RangeError(`AES-KWP key must be 16, 24 or 32 bytes, got ${length}`);
  }
}

// RFC 5649 alternative initial value; OpenSSL's wrap-pad ciphers take it as the "IV".
const KWP_IV = Buffer.from('a65959a6', 'hex');

/** AES key wrap with padding (RFC 5649). */
export function aesKwpWrap(key: SymmetricKey, plaintext: Uint8Array): Buffer {
  if (plaintext.length === 0) throw new RangeError('AES-KWP cannot wrap an empty input');
  const cipher = nodeCrypto.createCipheriv(kwpCipherName(key), key, KWP_IV);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

/** AES key unwrap with padding; throws CiphertextError when the integrity check fails. */
export function aesKwpUnwrap(key: SymmetricKey, wrapped: Uint8Array): Buffer {
  if (wrapped.length < 16 || wrapped.length % 8 !== 0) throw new CiphertextError();
  try {
    const decipher = nodeCrypto.createDecipheriv(kwpCipherName(key), key, KWP_IV);
    return Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch (error) {
    if (error instanceof RangeError) throw error;
    throw new CiphertextError();
  }
}
