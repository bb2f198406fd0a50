// What each key spec may do: usages, encryption, signing and MAC algorithms, as AWS KMS defines.
// Must never do I/O; pure tables and lookups only.
import type { HashName, KeySpec, MacAlgorithm, SignatureScheme } from '../../../shared/crypto/index.ts';
import type { KeyUsage } from '../../../shared/store/index.ts';

export const KEY_USAGES = ['ENCRYPT_DECRYPT', 'SIGN_VERIFY', 'GENERATE_VERIFY_MAC'] as const;

export const SIGNING_ALGORITHMS = ['RSASSA_PSS_SHA_256', 'RSASSA_PSS_SHA_384', 'RSASSA_PSS_SHA_512',
  'RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PKCS1_V1_5_SHA_384', 'RSASSA_PKCS1_V1_5_SHA_512',
  'ECDSA_SHA_256', 'ECDSA_SHA_384', 'ECDSA_SHA_512'] as const;
export type SigningAlgorithm = typeof SIGNING_ALGORITHMS[number];

export const ENCRYPTION_ALGORITHMS = ['SYMMETRIC_DEFAULT', 'RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] as const;
export type EncryptionAlgorithm = typeof ENCRYPTION_ALGORITHMS[number];

export const MAC_ALGORITHMS = ['HMAC_SHA_224', 'HMAC_SHA_256', 'HMAC_SHA_384', 'HMAC_SHA_512'] as const;

const RSA_SPECS: KeySpec[] = ['RSA_2048', 'RSA_3072', 'RSA_4096'];
const RSA_SIGNING: SigningAlgorithm[] = ['RSASSA_PSS_SHA_256', 'RSASSA_PSS_SHA_384', 'RSASSA_PSS_SHA_512',
  'RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PKCS1_V1_5_SHA_384', 'RSASSA_PKCS1_V1_5_SHA_512'];
const EC_SIGNING: Partial<Record<KeySpec, SigningAlgorithm>> = {
  ECC_NIST_P256: 'ECDSA_SHA_256', ECC_NIST_P384: 'ECDSA_SHA_384', ECC_NIST_P521: 'ECDSA_SHA_512',
  ECC_SECG_P256K1: 'ECDSA_SHA_256',
};
const HMAC_ALGORITHM: Partial<Record<KeySpec, MacAlgorithm>> = {
  HMAC_224: 'HMAC_SHA_224', HMAC_256: 'HMAC_SHA_256', HMAC_384: 'HMAC_SHA_384', HMAC_512: 'HMAC_SHA_512',
};

export function allowedUsages(spec: KeySpec): KeyUsage[] {
  if (spec === 'SYMMETRIC_DEFAULT') return ['ENCRYPT_DECRYPT'];
  if (RSA_SPECS.includes(spec)) return ['ENCRYPT_DECRYPT', 'SIGN_VERIFY'];
  if (spec in EC_SIGNING) return ['SIGN_VERIFY'];
  return ['GENERATE_VERIFY_MAC'];
}

export function defaultUsage(spec: KeySpec): KeyUsage {
  return allowedUsages(spec)[0];
}

export function encryptionAlgorithmsFor(spec: KeySpec, usage: KeyUsage): EncryptionAlgorithm[] | undefined {
  if (usage !== 'ENCRYPT_DECRYPT') return undefined;
  if (spec === 'SYMMETRIC_DEFAULT') return ['SYMMETRIC_DEFAULT'];
  return ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'];
}

export function signingAlgorithmsFor(spec: KeySpec, usage: KeyUsage): SigningAlgorithm[] | undefined {
  if (usage !== 'SIGN_VERIFY') return undefined;
  if (RSA_SPECS.includes(spec)) return RSA_SIGNING;
  const ec = EC_SIGNING[spec];
  return ec ? [ec] : undefined;
}

export function macAlgorithmsFor(spec: KeySpec): MacAlgorithm[] | undefined {
  const algorithm = HMAC_ALGORITHM[spec];
  return algorithm ? [algorithm] : undefined;
}

const SIGNING_HASH: Record<SigningAlgorithm, HashName> = {
  RSASSA_PSS_SHA_256: 'sha256', RSASSA_PSS_SHA_384: 'sha384', RSASSA_PSS_SHA_512: 'sha512',
  RSASSA_PKCS1_V1_5_SHA_256: 'sha256', RSASSA_PKCS1_V1_5_SHA_384: 'sha384', RSASSA_PKCS1_V1_5_SHA_512: 'sha512',
  ECDSA_SHA_256: 'sha256', ECDSA_SHA_384: 'sha384', ECDSA_SHA_512: 'sha512',
};

/** The signature scheme behind a KMS signing algorithm (KMS's ECDSA signatures are DER). */
export function signatureSchemeFor(algorithm: SigningAlgorithm): SignatureScheme {
  const hash = SIGNING_HASH[algorithm];
  if (algorithm.startsWith('RSASSA_PSS')) return { kind: 'rsa-pss', hash };
  if (algorithm.startsWith('RSASSA_PKCS1')) return { kind: 'rsa-pkcs1', hash };
  return { kind: 'ecdsa', hash, encoding: 'der' };
}

export function signingHash(algorithm: SigningAlgorithm): HashName {
  return SIGNING_HASH[algorithm];
}

export function oaepHash(algorithm: EncryptionAlgorithm): HashName {
  return algorithm === 'RSAES_OAEP_SHA_1' ? 'sha1' : 'sha256';
}
