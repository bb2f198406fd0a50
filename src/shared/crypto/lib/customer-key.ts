// Customer key material per key spec, and the in-memory handle every key operation goes through.
// Must never hand raw key bytes to callers: only data keys the API returns leave in clear.
import * as nodeCrypto from 'node:crypto';
import { promisify } from 'node:util';
import { CiphertextError, SealedError } from '../../errors.ts';
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH } from './aead.ts';
import { randomBytes, zeroize, type HashName } from './bytes.ts';
import {
  ALGORITHM_AES_256_GCM, encodeCiphertextHeader, encodeEncryptionContext, parseCiphertextBlob,
  type EncryptionContext, type ParsedCiphertext,
} from './ciphertext-blob.ts';
import {
  rsaOaepDecrypt, rsaOaepEncrypt, signDigest, signMessage, verifyDigest, verifyMessage, type SignatureScheme,
} from './asymmetric.ts';
import { hmac, verifyHmac } from './mac.ts';

const generateKeyPair = promisify(nodeCrypto.generateKeyPair);

export const KEY_SPECS = ['SYMMETRIC_DEFAULT', 'RSA_2048', 'RSA_3072', 'RSA_4096', 'ECC_NIST_P256', 'ECC_NIST_P384',
  'ECC_NIST_P521', 'ECC_SECG_P256K1', 'HMAC_224', 'HMAC_256', 'HMAC_384', 'HMAC_512'] as const;
/** Not a KMS key spec (CreateKey refuses it): the spec of secret keys, whose versions are opaque values. */
export const SECRET_KEY_SPEC = 'SECRET';
export type KeySpec = typeof KEY_SPECS[number] | typeof SECRET_KEY_SPEC;

export const DATA_KEY_PAIR_SPECS = ['RSA_2048', 'RSA_3072', 'RSA_4096', 'ECC_NIST_P256', 'ECC_NIST_P384',
  'ECC_NIST_P521', 'ECC_SECG_P256K1'] as const;
export type DataKeyPairSpec = typeof DATA_KEY_PAIR_SPECS[number];

type AsymmetricSpec = DataKeyPairSpec;

const RSA_BITS: Partial<Record<KeySpec, number>> = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 };
const EC_CURVES: Partial<Record<KeySpec, string>> = {
  ECC_NIST_P256: 'prime256v1', ECC_NIST_P384: 'secp384r1', ECC_NIST_P521: 'secp521r1', ECC_SECG_P256K1: 'secp256k1',
};
const HMAC_KEY_BYTES: Partial<Record<KeySpec, number>> = { HMAC_224: 28, HMAC_256: 32, HMAC_384: 48, HMAC_512: 64 };

export function isAsymmetricSpec(spec: KeySpec): spec is AsymmetricSpec {
  return spec in RSA_BITS || spec in EC_CURVES;
}

export function isHmacSpec(spec: KeySpec): boolean {
  return spec in HMAC_KEY_BYTES;
}

export interface GeneratedKeyMaterial {
  /** Secret bytes to wrap at once and then zeroize: raw AES/HMAC key or PKCS#8 DER. */
  secret: Buffer;
  /** SPKI DER for asymmetric specs. */
  publicKeyDer?: Buffer;
}

/** Makes fresh key material for a spec (RSA generation runs off the event loop). */
export async function generateKeyMaterial(spec: KeySpec): Promise<GeneratedKeyMaterial> {
  if (spec === 'SYMMETRIC_DEFAULT') return { secret: randomBytes(32) };
  const hmacBytes = HMAC_KEY_BYTES[spec];
  if (hmacBytes) return { secret: randomBytes(hmacBytes) };
  const pair = await generateAsymmetricPair(spec as AsymmetricSpec);
  return { secret: pair.privateKeyDer, publicKeyDer: pair.publicKeyDer };
}

export interface KeyPairDer {
  privateKeyDer: Buffer;
  publicKeyDer: Buffer;
}

export async function generateAsymmetricPair(spec: DataKeyPairSpec): Promise<KeyPairDer> {
  const encoding = { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } } as const;
  const bits = RSA_BITS[spec];
  const pair = bits
    ? await generateKeyPair('rsa', { modulusLength: bits, publicExponent: 65537 })
    : await generateKeyPair('ec', { namedCurve: EC_CURVES[spec] as string });
  return { privateKeyDer: pair.privateKey.export(encoding.privateKeyEncoding),
    publicKeyDer: pair.publicKey.export(encoding.publicKeyEncoding) };
}

export interface SigningAlgorithmInfo {
  scheme: SignatureScheme;
  hash: HashName;
}

export type MacAlgorithm = 'HMAC_SHA_224' | 'HMAC_SHA_256' | 'HMAC_SHA_384' | 'HMAC_SHA_512';
export const MAC_HASH: Record<MacAlgorithm, HashName> = {
  HMAC_SHA_224: 'sha224', HMAC_SHA_256: 'sha256', HMAC_SHA_384: 'sha384', HMAC_SHA_512: 'sha512',
};

export type EncryptionAlgorithm = 'SYMMETRIC_DEFAULT' | 'RSAES_OAEP_SHA_1' | 'RSAES_OAEP_SHA_256';

/**
 * One version of a customer key, unwrapped, held as OpenSSL key objects. Created only by the
 * keyring after unwrapping; dropped from memory when the crypto module seals.
 */
export class CustomerKey {
  readonly keyId: string;
  readonly version: number;
  readonly spec: KeySpec;
  // Symmetric and HMAC material stays a Buffer we own, so destroy() can zero it at once;
  // asymmetric keys exist only as KeyObjects, which OpenSSL cleanses when they are freed.
  #secret?: Buffer;
  #privateKey?: nodeCrypto.KeyObject;
  #publicKey?: nodeCrypto.KeyObject;
  #destroyed = false;

  /** Takes ownership of `material`: keeps it (symmetric, HMAC) or zeroizes it after import (asymmetric). */
  constructor(keyId: string, version: number, spec: KeySpec, material: Buffer) {
    this.keyId = keyId;
    this.version = version;
    this.spec = spec;
    if (!isAsymmetricSpec(spec)) {
      this.#secret = material;
      return;
    }
    try {
      this.#privateKey = nodeCrypto.createPrivateKey({ key: material, format: 'der', type: 'pkcs8' });
      this.#publicKey = nodeCrypto.createPublicKey(this.#privateKey);
    } finally {
      zeroize(material);
    }
  }

  /** Zeroes the material (evicted from the cache, or sealed); any later use throws. */
  destroy(): void {
    this.#destroyed = true;
    zeroize(this.#secret);
    this.#secret = undefined;
    this.#privateKey = undefined;
    this.#publicKey = undefined;
  }

  /** Encrypts into a self-describing ciphertext blob (symmetric keys). */
  encrypt(plaintext: Uint8Array, context: EncryptionContext | undefined): Buffer {
    const secret = this.#requireSymmetric();
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const header = encodeCiphertextHeader({ keyId: this.keyId, keyVersion: this.version,
      algorithm: ALGORITHM_AES_256_GCM, nonce });
    const aad = Buffer.concat([header, encodeEncryptionContext(context)]);
    const sealed = aesGcmEncrypt(secret, nonce, plaintext, aad);
    return Buffer.concat([header, sealed.ciphertext, sealed.tag]);
  }

  /** Decrypts a parsed blob made by this key version; CiphertextError on any mismatch. */
  decrypt(parsed: ParsedCiphertext, context: EncryptionContext | undefined): Buffer {
    const secret = this.#requireSymmetric();
    if (parsed.keyId !== this.keyId || parsed.keyVersion !== this.version) throw new CiphertextError();
    const aad = Buffer.concat([parsed.header, encodeEncryptionContext(context)]);
    return aesGcmDecrypt(secret, parsed.nonce, parsed.ciphertext, parsed.tag, aad);
  }

  rsaEncrypt(hashName: HashName, plaintext: Uint8Array): Buffer {
    return rsaOaepEncrypt(this.#requirePublic(), hashName, plaintext);
  }

  rsaDecrypt(hashName: HashName, ciphertext: Uint8Array): Buffer {
    this.#requireLive();
    if (!this.#privateKey) throw new TypeError('not an asymmetric key');
    try {
      return rsaOaepDecrypt(this.#privateKey, hashName, ciphertext);
    } catch {
      throw new CiphertextError();
    }
  }

  sign(scheme: SignatureScheme, input: Uint8Array, inputIsDigest: boolean): Buffer {
    this.#requireLive();
    if (!this.#privateKey) throw new TypeError('not an asymmetric key');
    return inputIsDigest ? signDigest(scheme, this.#privateKey, input) : signMessage(scheme, this.#privateKey, input);
  }

  verify(scheme: SignatureScheme, input: Uint8Array, inputIsDigest: boolean, signature: Uint8Array): boolean {
    const publicKey = this.#requirePublic();
    return inputIsDigest ? verifyDigest(scheme, publicKey, input, signature)
      : verifyMessage(scheme, publicKey, input, signature);
  }

  generateMac(algorithm: MacAlgorithm, message: Uint8Array): Buffer {
    return hmac(MAC_HASH[algorithm], this.#requireSymmetric(), message);
  }

  verifyMac(algorithm: MacAlgorithm, message: Uint8Array, mac: Uint8Array): boolean {
    const expectedLength = hmac(MAC_HASH[algorithm], Buffer.alloc(0), Buffer.alloc(0)).length;
    if (mac.length !== expectedLength) return false;
    return verifyHmac(MAC_HASH[algorithm], this.#requireSymmetric(), Buffer.from(message), mac);
  }

  /** A secret key's value (a copy, for the caller to zero); only secret keys give theirs out. */
  secretValue(): Buffer {
    if (this.spec !== SECRET_KEY_SPEC) throw new TypeError('not a secret key');
    return Buffer.from(this.#requireSymmetric());
  }

  publicKeyDer(): Buffer {
    return this.#requirePublic().export({ format: 'der', type: 'spki' });
  }

  #requireLive(): void {
    // Only a seal destroys a key a request may still hold (eviction waits a turn of the event loop).
    if (this.#destroyed) throw new SealedError('The key service was sealed while this request was using a key.');
  }

  #requireSymmetric(): Buffer {
    this.#requireLive();
    if (!this.#secret) throw new TypeError('not a symmetric key');
    return this.#secret;
  }

  #requirePublic(): nodeCrypto.KeyObject {
    this.#requireLive();
    if (!this.#publicKey) throw new TypeError('not an asymmetric key');
    return this.#publicKey;
  }
}

export { parseCiphertextBlob };
