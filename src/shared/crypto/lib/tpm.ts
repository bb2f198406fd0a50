// TPM 2.0 structures and credential protection for the verifier: parses public areas, quotes and signatures, and makes credentials (Part 1 §24) with node:crypto only.
// Must never read past the end of untrusted input, trust a quote signed by a key that is not a restricted signing key, or keep seeds and derived keys after use.
import * as nodeCrypto from 'node:crypto';
import { hash, randomBytes, zeroize } from './bytes.ts';
import { hmac } from './mac.ts';
import { agreeSharedSecret, hashLength, rsaOaepEncrypt, verifyMessage, type SignatureScheme } from './asymmetric.ts';

/** Malformed, truncated or unsupported TPM structure. The message names the field and the offset. */
export class TpmFormatError extends Error {
  readonly code = 'TpmFormatError';
  constructor(message: string) {
    super(message);
    this.name = 'TpmFormatError';
  }
}

export type TpmHashName = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export type TpmCurveName = 'P-256' | 'P-384' | 'P-521';

/** TPMA_OBJECT bits (Part 2 §8.3). */
export const TPMA_OBJECT = {
  fixedTPM: 0x0000_0002,
  stClear: 0x0000_0004,
  fixedParent: 0x0000_0010,
  sensitiveDataOrigin: 0x0000_0020,
  userWithAuth: 0x0000_0040,
  adminWithPolicy: 0x0000_0080,
  noDA: 0x0000_0400,
  encryptedDuplication: 0x0000_0800,
  restricted: 0x0001_0000,
  decrypt: 0x0002_0000,
  sign: 0x0004_0000,
} as const;

export interface TpmSymmetricDefinition {
  algorithm: 'aes' | 'sm4' | 'camellia';
  keyBits: number;
  mode: 'ctr' | 'ofb' | 'cbc' | 'cfb' | 'ecb' | 'null';
}

export type TpmSchemeName = 'rsassa' | 'rsapss' | 'rsaes' | 'oaep' | 'ecdsa' | 'ecdh' | 'ecdaa' | 'sm2' | 'ecschnorr' | 'ecmqv';

export interface TpmScheme {
  scheme: TpmSchemeName;
  /** Absent only for RSAES, which has no hash. */
  hash?: TpmHashName;
  /** ECDAA's commit counter. */
  count?: number;
}

export interface TpmPublic {
  type: 'rsa' | 'ecc';
  nameAlg: TpmHashName;
  objectAttributes: number;
  authPolicy: Buffer;
  publicKey: nodeCrypto.KeyObject;
  /** nameAlg id (2 bytes) || H_nameAlg(TPMT_PUBLIC). */
  name: Buffer;
  /** The TPMT_PUBLIC bytes the name covers. */
  publicArea: Buffer;
  /** Present for storage keys and EKs (restricted decryption keys). */
  symmetric?: TpmSymmetricDefinition;
  scheme?: TpmScheme;
  rsa?: { keyBits: number; exponent: number };
  /** Coordinates exactly as the TPM wrote them; KDFe uses them unaltered. */
  ecc?: { curve: TpmCurveName; x: Buffer; y: Buffer; kdf?: { scheme: 'mgf1' | 'kdf1-sp800-56a' | 'kdf2' | 'kdf1-sp800-108'; hash: TpmHashName } };
}

export interface TpmPcrSelection {
  hash: TpmHashName;
  pcrs: number[];
}

export interface QuoteInfo {
  /** Qualified name of the signing key. */
  qualifiedSigner: Buffer;
  /** The verifier's nonce, as the TPM signed it. */
  extraData: Buffer;
  /** Milliseconds the TPM has been powered since its last TPM2_Clear (a UINT64 on the wire). */
  clock: number;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  pcrSelections: TpmPcrSelection[];
  pcrDigest: Buffer;
}

export type TpmSignature =
  | { algorithm: 'rsassa' | 'rsapss'; hash: TpmHashName; signature: Buffer }
  | { algorithm: 'ecdsa'; hash: TpmHashName; r: Buffer; s: Buffer };

export interface TpmCredential {
  /** TPM2B_ID_OBJECT. */
  credentialBlob: Buffer;
  /** TPM2B_ENCRYPTED_SECRET. */
  encryptedSecret: Buffer;
}

export interface VerifyQuoteOptions {
  /** Signature hashes accepted; SHA-1 is left out unless the caller asks for it. */
  hashes?: readonly TpmHashName[];
}

const TPM_ALG_NULL = 0x0010;
const TPM_ALG_RSA = 0x0001;
const TPM_ALG_ECC = 0x0023;
const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_QUOTE = 0x8018;
const CREDENTIAL_FILE_MAGIC = 0xbadcc0de;
const CREDENTIAL_FILE_VERSION = 1;
/** HASH_COUNT bound on TPML_PCR_SELECTION.count: more banks than any TPM has is malformed. */
const MAX_PCR_BANKS = 16;
/** PCR_SELECT_MAX in the reference implementation is 3 (24 PCRs); leave room for larger TPMs. */
const MAX_PCR_SELECT_BYTES = 8;
const IDENTITY_LABEL = 'IDENTITY';

const HASH_BY_ID: ReadonlyMap<number, TpmHashName> = new Map([[0x0004, 'sha1'], [0x000b, 'sha256'], [0x000c, 'sha384'], [0x000d, 'sha512']]);
const HASH_ID: Record<TpmHashName, number> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
const SYMMETRIC_BY_ID: ReadonlyMap<number, TpmSymmetricDefinition['algorithm']> = new Map([[0x0006, 'aes'], [0x0013, 'sm4'], [0x0026, 'camellia']]);
const MODE_BY_ID: ReadonlyMap<number, TpmSymmetricDefinition['mode']> = new Map([
  [0x0040, 'ctr'], [0x0041, 'ofb'], [0x0042, 'cbc'], [0x0043, 'cfb'], [0x0044, 'ecb'], [TPM_ALG_NULL, 'null'],
]);
const RSA_SCHEME_BY_ID: ReadonlyMap<number, TpmSchemeName> = new Map([[0x0014, 'rsassa'], [0x0015, 'rsaes'], [0x0016, 'rsapss'], [0x0017, 'oaep']]);
const ECC_SCHEME_BY_ID: ReadonlyMap<number, TpmSchemeName> = new Map([
  [0x0018, 'ecdsa'], [0x0019, 'ecdh'], [0x001a, 'ecdaa'], [0x001b, 'sm2'], [0x001c, 'ecschnorr'], [0x001d, 'ecmqv'],
]);
const KDF_BY_ID: ReadonlyMap<number, NonNullable<NonNullable<TpmPublic['ecc']>['kdf']>['scheme']> = new Map([
  [0x0007, 'mgf1'], [0x0020, 'kdf1-sp800-56a'], [0x0021, 'kdf2'], [0x0022, 'kdf1-sp800-108'],
]);
const CURVES: ReadonlyMap<number, { name: TpmCurveName; bytes: number; openssl: string }> = new Map([
  [0x0003, { name: 'P-256', bytes: 32, openssl: 'prime256v1' }],
  [0x0004, { name: 'P-384', bytes: 48, openssl: 'secp384r1' }],
  [0x0005, { name: 'P-521', bytes: 66, openssl: 'secp521r1' }],
]);
const SIGNATURE_BY_ID: ReadonlyMap<number, TpmSignature['algorithm']> = new Map([[0x0014, 'rsassa'], [0x0016, 'rsapss'], [0x0018, 'ecdsa']]);

const hex16 = (value: number) => `0x${value.toString(16).padStart(4, '0')}`;

/** Bounds-checked big-endian reader: every read names its field so errors say what was cut short. */
class Reader {
  private offset = 0;
  constructor(private readonly bytes: Buffer, private readonly structure: string) {}

  get position(): number { return this.offset; }
  get remaining(): number { return this.bytes.length - this.offset; }

  private take(length: number, field: string): Buffer {
    if (length > this.remaining) {
      throw new TpmFormatError(`${this.structure} is truncated: ${field} needs ${length} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  u8(field: string): number { return this.take(1, field)[0]; }
  u16(field: string): number { return this.take(2, field).readUInt16BE(0); }
  u32(field: string): number { return this.take(4, field).readUInt32BE(0); }
  u64(field: string): bigint { return this.take(8, field).readBigUInt64BE(0); }
  /** A copy, so the caller's buffer can be reused or zeroed independently. */
  bytesOf(length: number, field: string): Buffer { return Buffer.from(this.take(length, field)); }

  /** TPM2B: a 16-bit size then that many bytes, optionally capped. */
  sized(field: string, max?: number): Buffer {
    const at = this.offset;
    const size = this.u16(`${field}.size`);
    if (max !== undefined && size > max) throw new TpmFormatError(`${this.structure}: ${field} is ${size} bytes at offset ${at}, at most ${max} allowed`);
    return this.bytesOf(size, field);
  }

  hashAlg(field: string, allowNull = false): TpmHashName | undefined {
    const at = this.offset;
    const id = this.u16(field);
    if (allowNull && id === TPM_ALG_NULL) return undefined;
    const name = HASH_BY_ID.get(id);
    if (!name) throw new TpmFormatError(`${this.structure}: unsupported hash algorithm ${hex16(id)} in ${field} at offset ${at}`);
    return name;
  }

  end(): void {
    if (this.remaining !== 0) throw new TpmFormatError(`${this.structure} has ${this.remaining} unexpected trailing bytes at offset ${this.offset}`);
  }
}

function requireBuffer(bytes: unknown, structure: string): Buffer {
  if (!(bytes instanceof Uint8Array)) throw new TpmFormatError(`${structure} must be bytes`);
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function uint16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeUInt16BE(value);
  return out;
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

function sized(bytes: Buffer): Buffer {
  if (bytes.length > 0xffff) throw new RangeError('a TPM2B holds at most 65535 bytes');
  return Buffer.concat([uint16(bytes.length), bytes]);
}

/** The label as KDFa/KDFe hash it: its bytes and one terminating 0x00 (Part 1 §11.4.10). */
function terminatedLabel(label: string): Buffer {
  const bytes = Buffer.from(label, 'latin1');
  return bytes.at(-1) === 0 ? bytes : Buffer.concat([bytes, Buffer.alloc(1)]);
}

function requireKdfBits(bits: number): number {
  if (!Number.isInteger(bits) || bits <= 0 || bits > 0xffff * 8) throw new RangeError(`KDF output of ${bits} bits is out of range`);
  return Math.ceil(bits / 8);
}

/**
 * KDFa (Part 1 §11.4.10.2): SP 800-108 counter mode with HMAC, the counter and the output length
 * as 32-bit big-endian words around label || 0x00 || contextU || contextV.
 */
export function kdfa(hashName: TpmHashName, key: Uint8Array, label: string, contextU: Uint8Array, contextV: Uint8Array, bits: number): Buffer {
  const length = requireKdfBits(bits);
  const fixed = Buffer.concat([terminatedLabel(label), contextU, contextV, uint32(bits)]);
  const out = Buffer.alloc(length);
  for (let counter = 1, offset = 0; offset < length; counter += 1) {
    const block = hmac(hashName, key, Buffer.concat([uint32(counter), fixed]));
    offset += block.copy(out, offset);
    zeroize(block);
  }
  // The spec keeps the low-order bits when the length is not whole bytes.
  if (bits % 8 !== 0) out[0] &= (1 << (bits % 8)) - 1;
  return out;
}

/** KDFe (Part 1 §11.4.10.3): SP 800-56A concatenation KDF, H(counter || Z || label || 0x00 || partyU || partyV). */
export function kdfe(hashName: TpmHashName, z: Uint8Array, label: string, partyUInfo: Uint8Array, partyVInfo: Uint8Array, bits: number): Buffer {
  const length = requireKdfBits(bits);
  const out = Buffer.alloc(length);
  for (let counter = 1, offset = 0; offset < length; counter += 1) {
    const input = Buffer.concat([uint32(counter), z, terminatedLabel(label), partyUInfo, partyVInfo]);
    const block = hash(hashName, input);
    zeroize(input);
    offset += block.copy(out, offset);
    zeroize(block);
  }
  if (bits % 8 !== 0) out[0] &= (1 << (bits % 8)) - 1;
  return out;
}

function readSymmetric(reader: Reader): TpmSymmetricDefinition | undefined {
  const at = reader.position;
  const id = reader.u16('symmetric.algorithm');
  if (id === TPM_ALG_NULL) return undefined;
  const algorithm = SYMMETRIC_BY_ID.get(id);
  if (!algorithm) throw new TpmFormatError(`TPM2B_PUBLIC: unsupported symmetric algorithm ${hex16(id)} at offset ${at}`);
  const keyBits = reader.u16('symmetric.keyBits');
  const modeAt = reader.position;
  const modeId = reader.u16('symmetric.mode');
  const mode = MODE_BY_ID.get(modeId);
  if (!mode) throw new TpmFormatError(`TPM2B_PUBLIC: unsupported symmetric mode ${hex16(modeId)} at offset ${modeAt}`);
  if (![128, 192, 256].includes(keyBits)) throw new TpmFormatError(`TPM2B_PUBLIC: symmetric key size ${keyBits} is not 128, 192 or 256`);
  return { algorithm, keyBits, mode };
}

function readScheme(reader: Reader, table: ReadonlyMap<number, TpmSchemeName>): TpmScheme | undefined {
  const at = reader.position;
  const id = reader.u16('scheme.scheme');
  if (id === TPM_ALG_NULL) return undefined;
  const scheme = table.get(id);
  if (!scheme) throw new TpmFormatError(`TPM2B_PUBLIC: unsupported scheme ${hex16(id)} at offset ${at}`);
  if (scheme === 'rsaes') return { scheme };
  const schemeHash = reader.hashAlg('scheme.hashAlg')!;
  if (scheme === 'ecdaa') return { scheme, hash: schemeHash, count: reader.u16('scheme.count') };
  return { scheme, hash: schemeHash };
}

function base64url(bytes: Buffer): string {
  return bytes.toString('base64url');
}

/** Left-pads a coordinate to the curve's size; a longer one is only accepted if the excess is zeros. */
function fixedSize(value: Buffer, size: number, field: string): Buffer {
  if (value.length === size) return value;
  if (value.length < size) return Buffer.concat([Buffer.alloc(size - value.length), value]);
  const excess = value.subarray(0, value.length - size);
  if (excess.some((byte) => byte !== 0)) throw new TpmFormatError(`${field} is ${value.length} bytes, longer than the curve's ${size}`);
  return value.subarray(value.length - size);
}

/** Big-endian bytes without leading zeros, as JWK wants integers. */
function minimalUnsigned(value: number): Buffer {
  const bytes = uint32(value);
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start += 1;
  return bytes.subarray(start);
}

function importKey(jwk: nodeCrypto.JsonWebKey, what: string): nodeCrypto.KeyObject {
  try {
    return nodeCrypto.createPublicKey({ key: jwk, format: 'jwk' });
  } catch (error) {
    throw new TpmFormatError(`TPM2B_PUBLIC: the ${what} is not a valid public key (${(error as Error).message})`);
  }
}

/** Parses a TPM2B_PUBLIC (tpm2-tools' default "tss" output of createek, createak, readpublic). */
export function parseTpmPublic(bytes: Buffer): TpmPublic {
  const input = requireBuffer(bytes, 'TPM2B_PUBLIC');
  const outer = new Reader(input, 'TPM2B_PUBLIC');
  const size = outer.u16('size');
  if (size !== outer.remaining) throw new TpmFormatError(`TPM2B_PUBLIC: size field says ${size} bytes but ${outer.remaining} follow`);
  const publicArea = outer.bytesOf(size, 'publicArea');
  const reader = new Reader(publicArea, 'TPM2B_PUBLIC');
  const typeId = reader.u16('type');
  if (typeId !== TPM_ALG_RSA && typeId !== TPM_ALG_ECC) {
    throw new TpmFormatError(`TPM2B_PUBLIC: unsupported key type ${hex16(typeId)} (only RSA and ECC keys are supported)`);
  }
  const nameAlg = reader.hashAlg('nameAlg')!;
  const objectAttributes = reader.u32('objectAttributes');
  const authPolicy = reader.sized('authPolicy', 64);
  const symmetric = readSymmetric(reader);
  const name = Buffer.concat([uint16(HASH_ID[nameAlg]), hash(nameAlg, publicArea)]);
  if (typeId === TPM_ALG_RSA) {
    const scheme = readScheme(reader, RSA_SCHEME_BY_ID);
    const keyBits = reader.u16('keyBits');
    const rawExponent = reader.u32('exponent');
    const modulus = reader.sized('unique.rsa', 1024);
    reader.end();
    if (keyBits < 1024 || keyBits % 8 !== 0) throw new TpmFormatError(`TPM2B_PUBLIC: RSA key size ${keyBits} is not supported`);
    if (modulus.length * 8 !== keyBits) throw new TpmFormatError(`TPM2B_PUBLIC: RSA modulus is ${modulus.length * 8} bits but keyBits says ${keyBits}`);
    if ((modulus[0] & 0x80) === 0) throw new TpmFormatError('TPM2B_PUBLIC: RSA modulus is shorter than keyBits (leading zero)');
    // Part 2 §12.2.3.5: zero means the default exponent.
    const exponent = rawExponent === 0 ? 65537 : rawExponent;
    if (exponent < 3 || exponent % 2 === 0) throw new TpmFormatError(`TPM2B_PUBLIC: RSA exponent ${exponent} is not valid`);
    const publicKey = importKey({ kty: 'RSA', n: base64url(modulus), e: base64url(minimalUnsigned(exponent)) }, 'RSA modulus');
    return { type: 'rsa', nameAlg, objectAttributes, authPolicy, publicKey, name, publicArea, symmetric, scheme, rsa: { keyBits, exponent } };
  }
  const scheme = readScheme(reader, ECC_SCHEME_BY_ID);
  const curveAt = reader.position;
  const curveId = reader.u16('curveID');
  const curve = CURVES.get(curveId);
  if (!curve) throw new TpmFormatError(`TPM2B_PUBLIC: unsupported ECC curve ${hex16(curveId)} at offset ${curveAt}`);
  const kdfAt = reader.position;
  const kdfId = reader.u16('kdf.scheme');
  let kdf: NonNullable<TpmPublic['ecc']>['kdf'];
  if (kdfId !== TPM_ALG_NULL) {
    const kdfScheme = KDF_BY_ID.get(kdfId);
    if (!kdfScheme) throw new TpmFormatError(`TPM2B_PUBLIC: unsupported KDF scheme ${hex16(kdfId)} at offset ${kdfAt}`);
    kdf = { scheme: kdfScheme, hash: reader.hashAlg('kdf.hashAlg')! };
  }
  const x = reader.sized('unique.ecc.x', 66);
  const y = reader.sized('unique.ecc.y', 66);
  reader.end();
  if (x.length === 0 || y.length === 0) throw new TpmFormatError('TPM2B_PUBLIC: ECC point has an empty coordinate');
  const publicKey = importKey({
    kty: 'EC', crv: curve.name,
    x: base64url(fixedSize(x, curve.bytes, 'unique.ecc.x')), y: base64url(fixedSize(y, curve.bytes, 'unique.ecc.y')),
  }, `${curve.name} point`);
  return { type: 'ecc', nameAlg, objectAttributes, authPolicy, publicKey, name, publicArea, symmetric, scheme, ecc: { curve: curve.name, x, y, kdf } };
}

/**
 * An endorsement key's fingerprint: SHA-256 (lower-case hex) of its SubjectPublicKeyInfo DER as
 * re-encoded here, so the TPM's public area and an EK certificate for that key give the same one.
 */
export function endorsementKeyFingerprint(source: { tpmPublic: TpmPublic } | { certificateDer: Buffer }): string {
  let key: nodeCrypto.KeyObject;
  if ('tpmPublic' in source) {
    key = source.tpmPublic.publicKey;
  } else {
    try {
      key = new nodeCrypto.X509Certificate(requireBuffer(source.certificateDer, 'EK certificate')).publicKey;
    } catch (error) {
      if (error instanceof TpmFormatError) throw error;
      throw new TpmFormatError('EK certificate: not a DER X.509 certificate');
    }
  }
  return hash('sha256', key.export({ type: 'spki', format: 'der' })).toString('hex');
}

function requireName(objectName: Buffer): void {
  const name = requireBuffer(objectName, 'object name');
  const reader = new Reader(name, 'object name');
  const nameAlg = reader.hashAlg('nameAlg')!;
  if (reader.remaining !== hashLength(nameAlg)) {
    throw new TpmFormatError(`object name: a ${nameAlg} name carries ${hashLength(nameAlg)} digest bytes, got ${reader.remaining}`);
  }
}

/** The seed and what the TPM needs to recover it (TPM2B_ENCRYPTED_SECRET contents). */
function protectSeed(ek: TpmPublic): { seed: Buffer; encrypted: Buffer } {
  const seedLength = hashLength(ek.nameAlg);
  if (ek.type === 'rsa') {
    const seed = randomBytes(seedLength);
    // Part 1 §B.10.3: OAEP with the protector's nameAlg and the label's terminating zero included.
    const encrypted = rsaOaepEncrypt(ek.publicKey, ek.nameAlg, seed, terminatedLabel(IDENTITY_LABEL));
    return { seed, encrypted };
  }
  const ecc = ek.ecc!;
  const curve = [...CURVES.values()].find((entry) => entry.name === ecc.curve)!;
  const ephemeral = nodeCrypto.generateKeyPairSync('ec', { namedCurve: curve.openssl });
  const point = ephemeral.publicKey.export({ format: 'jwk' });
  const ephemeralX = Buffer.from(point.x!, 'base64url');
  const ephemeralY = Buffer.from(point.y!, 'base64url');
  const z = agreeSharedSecret(ephemeral.privateKey, ek.publicKey);
  try {
    // Part 1 §C.6.4: Z is the shared point's x; party U is the ephemeral key, party V the EK.
    const seed = kdfe(ek.nameAlg, z, IDENTITY_LABEL, ephemeralX, ecc.x, seedLength * 8);
    return { seed, encrypted: Buffer.concat([sized(ephemeralX), sized(ephemeralY)]) };
  } finally {
    zeroize(z);
  }
}

/**
 * TPM2_MakeCredential done by the verifier (Part 1 §24): only the TPM holding the EK's private key
 * can recover `secret`, and only while an object with `objectName` is loaded next to it.
 */
export function makeCredential(ekPublic: TpmPublic, objectName: Buffer, secret: Buffer): TpmCredential {
  requireName(objectName);
  const required = TPMA_OBJECT.decrypt | TPMA_OBJECT.restricted;
  // The EK comes from the host being enrolled, so an unfit one is bad input, like a malformed one.
  if ((ekPublic.objectAttributes & required) !== required) throw new TpmFormatError('EK: not a restricted decryption key');
  const symmetric = ekPublic.symmetric;
  if (!symmetric || symmetric.algorithm !== 'aes') throw new TpmFormatError('EK: no AES symmetric definition to protect credentials with');
  const digestLength = hashLength(ekPublic.nameAlg);
  if (secret.length === 0 || secret.length > digestLength) {
    throw new RangeError(`the credential must be 1 to ${digestLength} bytes for a ${ekPublic.nameAlg} EK`);
  }
  const { seed, encrypted } = protectSeed(ekPublic);
  const symKey = kdfa(ekPublic.nameAlg, seed, 'STORAGE', objectName, Buffer.alloc(0), symmetric.keyBits);
  const hmacKey = kdfa(ekPublic.nameAlg, seed, 'INTEGRITY', Buffer.alloc(0), Buffer.alloc(0), digestLength * 8);
  const plaintext = sized(secret);
  try {
    // The TPM always uses CFB with a zero IV for credentials, whatever mode the EK names (Part 1 §24.4).
    const cipher = nodeCrypto.createCipheriv(`aes-${symmetric.keyBits}-cfb`, symKey, Buffer.alloc(16));
    const encIdentity = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const outerHmac = hmac(ekPublic.nameAlg, hmacKey, Buffer.concat([encIdentity, objectName]));
    const idObject = Buffer.concat([sized(outerHmac), encIdentity]);
    return { credentialBlob: sized(idObject), encryptedSecret: sized(encrypted) };
  } finally {
    zeroize(seed, symKey, hmacKey, plaintext);
  }
}

function requireSized(bytes: Buffer, structure: string): void {
  const reader = new Reader(requireBuffer(bytes, structure), structure);
  reader.sized('buffer');
  reader.end();
}

/** The file tpm2_makecredential writes and tpm2_activatecredential -i reads (tpm2-tools 5.x). */
export function encodeCredentialFile(credentialBlob: Buffer, encryptedSecret: Buffer): Buffer {
  // Checked so a caller cannot hand the tool a file it would misread.
  requireSized(credentialBlob, 'TPM2B_ID_OBJECT');
  requireSized(encryptedSecret, 'TPM2B_ENCRYPTED_SECRET');
  return Buffer.concat([uint32(CREDENTIAL_FILE_MAGIC), uint32(CREDENTIAL_FILE_VERSION), credentialBlob, encryptedSecret]);
}

/** Splits a tpm2-tools credential file back into its two structures. */
export function decodeCredentialFile(file: Buffer): TpmCredential {
  const reader = new Reader(requireBuffer(file, 'credential file'), 'credential file');
  const magic = reader.u32('magic');
  if (magic !== CREDENTIAL_FILE_MAGIC) throw new TpmFormatError(`credential file: magic is 0x${magic.toString(16)}, expected 0xbadcc0de`);
  const version = reader.u32('version');
  if (version !== CREDENTIAL_FILE_VERSION) throw new TpmFormatError(`credential file: version ${version} is not supported`);
  const credentialBlob = reader.sized('credentialBlob');
  const encryptedSecret = reader.sized('secret');
  reader.end();
  return { credentialBlob: sized(credentialBlob), encryptedSecret: sized(encryptedSecret) };
}

function readPcrSelections(reader: Reader): TpmPcrSelection[] {
  const count = reader.u32('pcrSelect.count');
  if (count > MAX_PCR_BANKS) throw new TpmFormatError(`TPMS_ATTEST: ${count} PCR banks selected, at most ${MAX_PCR_BANKS}`);
  const selections: TpmPcrSelection[] = [];
  for (let bank = 0; bank < count; bank += 1) {
    const hashName = reader.hashAlg(`pcrSelect[${bank}].hash`)!;
    const sizeofSelect = reader.u8(`pcrSelect[${bank}].sizeofSelect`);
    if (sizeofSelect > MAX_PCR_SELECT_BYTES) {
      throw new TpmFormatError(`TPMS_ATTEST: pcrSelect[${bank}] is ${sizeofSelect} bytes, at most ${MAX_PCR_SELECT_BYTES}`);
    }
    const bitmap = reader.bytesOf(sizeofSelect, `pcrSelect[${bank}].pcrSelect`);
    const pcrs: number[] = [];
    for (let index = 0; index < sizeofSelect * 8; index += 1) {
      if (bitmap[index >> 3] & (1 << (index & 7))) pcrs.push(index);
    }
    selections.push({ hash: hashName, pcrs });
  }
  return selections;
}

/** Parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE (tpm2_quote -m). */
export function parseQuote(attest: Buffer): QuoteInfo {
  const reader = new Reader(requireBuffer(attest, 'TPMS_ATTEST'), 'TPMS_ATTEST');
  const magic = reader.u32('magic');
  if (magic !== TPM_GENERATED_VALUE) throw new TpmFormatError(`TPMS_ATTEST: magic is 0x${magic.toString(16)}, expected 0xff544347 (TPM_GENERATED)`);
  const type = reader.u16('type');
  if (type !== TPM_ST_ATTEST_QUOTE) throw new TpmFormatError(`TPMS_ATTEST: type is ${hex16(type)}, expected 0x8018 (quote)`);
  const qualifiedSigner = reader.sized('qualifiedSigner', 2 + 64);
  const extraData = reader.sized('extraData', 64);
  const clockAt = reader.position;
  const wideClock = reader.u64('clockInfo.clock');
  // 2^53 ms is 285,000 years of uptime: a larger value is corrupt, and a number is what callers compare.
  if (wideClock > BigInt(Number.MAX_SAFE_INTEGER)) throw new TpmFormatError(`TPMS_ATTEST: clockInfo.clock at offset ${clockAt} is implausibly large`);
  const clock = Number(wideClock);
  const resetCount = reader.u32('clockInfo.resetCount');
  const restartCount = reader.u32('clockInfo.restartCount');
  const safeByte = reader.u8('clockInfo.safe');
  if (safeByte > 1) throw new TpmFormatError(`TPMS_ATTEST: clockInfo.safe is ${safeByte}, not a TPMI_YES_NO`);
  const firmwareVersion = reader.u64('firmwareVersion');
  const pcrSelections = readPcrSelections(reader);
  const pcrDigest = reader.sized('pcrDigest', 64);
  reader.end();
  return { qualifiedSigner, extraData, clock, resetCount, restartCount, safe: safeByte === 1, firmwareVersion, pcrSelections, pcrDigest };
}

/** Parses a TPMT_SIGNATURE (tpm2_quote -s, tss format): RSASSA, RSAPSS or ECDSA. */
export function parseTpmSignature(bytes: Buffer): TpmSignature {
  const reader = new Reader(requireBuffer(bytes, 'TPMT_SIGNATURE'), 'TPMT_SIGNATURE');
  const id = reader.u16('sigAlg');
  const algorithm = SIGNATURE_BY_ID.get(id);
  if (!algorithm) throw new TpmFormatError(`TPMT_SIGNATURE: unsupported signature algorithm ${hex16(id)}`);
  const hashName = reader.hashAlg('hash')!;
  if (algorithm === 'ecdsa') {
    const r = reader.sized('signatureR', 66);
    const s = reader.sized('signatureS', 66);
    reader.end();
    return { algorithm, hash: hashName, r, s };
  }
  const signature = reader.sized('sig', 1024);
  reader.end();
  return { algorithm, hash: hashName, signature };
}

const DEFAULT_QUOTE_HASHES: readonly TpmHashName[] = ['sha256', 'sha384', 'sha512'];

/**
 * Checks the AK's signature over a TPMS_ATTEST. False for a bad signature, a disallowed hash, a
 * signature that does not fit the key, or an AK that is not a restricted signing key (an
 * unrestricted key signs any digest, including a forged quote). Throws TpmFormatError only when
 * the signature structure itself is malformed.
 */
export function verifyQuoteSignature(ak: TpmPublic, attest: Buffer, signature: Buffer, options: VerifyQuoteOptions = {}): boolean {
  const parsed = parseTpmSignature(signature);
  const required = TPMA_OBJECT.sign | TPMA_OBJECT.restricted | TPMA_OBJECT.fixedTPM;
  if ((ak.objectAttributes & required) !== required) return false;
  if (!(options.hashes ?? DEFAULT_QUOTE_HASHES).includes(parsed.hash)) return false;
  if (ak.scheme && (ak.scheme.scheme !== parsed.algorithm || ak.scheme.hash !== parsed.hash)) return false;
  const message = requireBuffer(attest, 'TPMS_ATTEST');
  let scheme: SignatureScheme;
  let bytes: Buffer;
  if (parsed.algorithm === 'ecdsa') {
    if (ak.type !== 'ecc') return false;
    const size = [...CURVES.values()].find((entry) => entry.name === ak.ecc!.curve)!.bytes;
    try {
      bytes = Buffer.concat([fixedSize(parsed.r, size, 'signatureR'), fixedSize(parsed.s, size, 'signatureS')]);
    } catch {
      return false;
    }
    scheme = { kind: 'ecdsa', hash: parsed.hash, encoding: 'p1363' };
  } else {
    if (ak.type !== 'rsa') return false;
    bytes = parsed.signature;
    // Part 1 §B.7 asks for a salt as long as the digest, but older firmware used the maximum;
    // the salt length carries no security for a verifier, so either is accepted.
    scheme = parsed.algorithm === 'rsassa'
      ? { kind: 'rsa-pkcs1', hash: parsed.hash }
      : { kind: 'rsa-pss', hash: parsed.hash, saltLength: nodeCrypto.constants.RSA_PSS_SALTLEN_AUTO };
  }
  return verifyMessage(scheme, ak.publicKey, message, bytes);
}

function requirePcrValues(values: readonly Buffer[], hashName: TpmHashName, what: string): void {
  const length = hashLength(hashName);
  values.forEach((value, index) => {
    if (!(value instanceof Uint8Array) || value.length !== length) {
      throw new TpmFormatError(`${what} ${index} is ${value?.length ?? 'not'} bytes; ${hashName} values are ${length}`);
    }
  });
}

/** The quote's pcrDigest: H of the selected PCR values concatenated in selection order. */
export function computePcrDigest(values: Buffer[], hashName: TpmHashName): Buffer {
  requirePcrValues(values, hashName, 'PCR value');
  return hash(hashName, Buffer.concat(values));
}

/** What a PCR holds after extending `digests` in order: PCR_new = H(PCR_old || digest). */
export function replayPcrExtends(initial: Buffer, digests: Buffer[], hashName: TpmHashName): Buffer {
  requirePcrValues([initial], hashName, 'initial PCR value');
  requirePcrValues(digests, hashName, 'digest');
  return digests.reduce((pcr, digest) => hash(hashName, Buffer.concat([pcr, digest])), Buffer.from(initial));
}
