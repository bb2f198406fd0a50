// Wycheproof known-answer tests: every vector of every file goes through the crypto module's exports.
// Must never skip a vector silently: each file's checked count is asserted against its numberOfTests.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KeyObject } from 'node:crypto';
import {
  aesGcmEncrypt, aesGcmDecrypt, GCM_MAX_NONCE_LENGTH, aesKwpWrap, aesKwpUnwrap, hmac, verifyHmac, hkdf, hash,
  verifyMessage, verifyDigest, rsaOaepDecrypt, agreeSharedSecret, importPublicKeyDer, importPrivateKeyDer,
  importRawPublicKey, importRawPrivateKey, importEcPrivateScalar, OaepDecryptionError,
  type HashName, type SignatureScheme,
} from '../../src/shared/crypto/index.ts';
import { CiphertextError } from '../../src/shared/errors.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const vectorsDir = path.resolve(repoRoot, '..', 'shared', 'vectors', 'wycheproof');

type Expectation = 'valid' | 'invalid' | 'acceptable';

interface VectorTest {
  tcId: number;
  comment: string;
  flags: string[];
  result: Expectation;
}

interface VectorFile<G> {
  algorithm: string;
  numberOfTests: number;
  testGroups: G[];
}

interface AeadVector extends VectorTest { key: string; iv: string; aad: string; msg: string; ct: string; tag: string }
interface AeadGroup { ivSize: number; keySize: number; tagSize: number; tests: AeadVector[] }
interface KeywrapVector extends VectorTest { key: string; msg: string; ct: string }
interface KeywrapGroup { keySize: number; tests: KeywrapVector[] }
interface AgreementVector extends VectorTest { public: string; private: string; shared: string }
interface AgreementGroup { curve: string; tests: AgreementVector[] }
interface SignatureVector extends VectorTest { msg: string; sig: string }
interface SignatureGroup { publicKeyDer: string; sha?: string; sLen?: number; mgfSha?: string; tests: SignatureVector[] }
interface HkdfVector extends VectorTest { ikm: string; salt: string; info: string; size: number; okm: string }
interface HkdfGroup { keySize: number; tests: HkdfVector[] }
interface MacVector extends VectorTest { key: string; msg: string; tag: string }
interface MacGroup { keySize: number; tagSize: number; tests: MacVector[] }
interface OaepVector extends VectorTest { msg: string; ct: string; label: string }
interface OaepGroup { privateKeyPkcs8: string; sha: string; mgfSha: string; tests: OaepVector[] }

/** What the module did with one vector: accepted it (with a mismatch if its output was wrong) or rejected it. */
type Verdict = { accepted: true; mismatch?: string } | { accepted: false; reason: string };

interface Tally {
  valid: number;
  invalid: number;
  acceptable: number;
  acceptableAccepted: number;
  acceptableRejected: number;
  /** Valid vectors the module refuses on purpose; they must stay refused, each for the stated reason. */
  refusedByDesign: number;
}

/** Names why the module refuses a valid vector by design, or undefined when it must accept it. */
type DesignRefusal<G, T> = (group: G, vector: T) => string | undefined;

function loadVectors<G>(name: string): VectorFile<G> {
  return JSON.parse(readFileSync(path.join(vectorsDir, `${name}_test.json`), 'utf8')) as VectorFile<G>;
}

function hex(value: string): Buffer {
  return Buffer.from(value, 'hex');
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function compare(what: string, actual: Uint8Array, expected: string): string | undefined {
  const actualHex = Buffer.from(actual).toString('hex');
  return actualHex === expected ? undefined : `${what} ${actualHex} != expected ${expected}`;
}

function accepted(...mismatches: Array<string | undefined>): Verdict {
  const mismatch = mismatches.filter((entry) => entry !== undefined).join('; ');
  return mismatch ? { accepted: true, mismatch } : { accepted: true };
}

/**
 * Runs an operation whose rejection is a thrown error; only errors that `isRejection` recognises
 * count as the module saying no, anything else escapes and fails the test.
 */
function attempt<R>(operation: () => R, isRejection: (error: unknown) => boolean): { value: R } | { rejected: string } {
  try {
    return { value: operation() };
  } catch (error) {
    if (isRejection(error)) return { rejected: describeError(error) };
    throw error;
  }
}

/** A key the module cannot import is the module rejecting the vector. */
function withKey(importKey: () => KeyObject, use: (key: KeyObject) => Verdict): Verdict {
  let key: KeyObject;
  try {
    key = importKey();
  } catch (error) {
    return { accepted: false, reason: `key import failed: ${describeError(error)}` };
  }
  return use(key);
}

function fromBoolean(result: boolean): Verdict {
  return result ? { accepted: true } : { accepted: false, reason: 'returned false' };
}

const isCiphertextError = (error: unknown): boolean => error instanceof CiphertextError;
const isOaepError = (error: unknown): boolean => error instanceof OaepDecryptionError;
const isRangeError = (error: unknown): boolean => error instanceof RangeError;

/**
 * Checks every vector of a file and returns the counts; valid vectors must be accepted with the
 * expected output, invalid ones rejected, acceptable ones may go either way but must be right if accepted.
 */
function runVectors<T extends VectorTest, G extends { tests: T[] }>(t: TestContext, label: string,
  file: VectorFile<G>, check: (group: G, vector: T) => Verdict, refusedByDesign?: DesignRefusal<G, T>): Tally {
  const tally: Tally = { valid: 0, invalid: 0, acceptable: 0, acceptableAccepted: 0, acceptableRejected: 0,
    refusedByDesign: 0 };
  const failures: string[] = [];
  let listed = 0;
  for (const group of file.testGroups) {
    for (const vector of group.tests) {
      listed += 1;
      const where = `${label} tcId ${vector.tcId} [${vector.result}] ${vector.comment} {${vector.flags.join(',')}}`;
      let verdict: Verdict;
      try {
        verdict = check(group, vector);
      } catch (error) {
        failures.push(`${where}: unexpected exception ${describeError(error)}`);
        continue;
      }
      tally[vector.result] += 1;
      const designReason = vector.result === 'valid' ? refusedByDesign?.(group, vector) : undefined;
      if (designReason !== undefined) {
        tally.refusedByDesign += 1;
        if (verdict.accepted) failures.push(`${where}: accepted although refused by design (${designReason})`);
        continue;
      }
      if (verdict.accepted && verdict.mismatch) failures.push(`${where}: wrong output: ${verdict.mismatch}`);
      if (vector.result === 'valid' && !verdict.accepted) failures.push(`${where}: rejected: ${verdict.reason}`);
      if (vector.result === 'invalid' && verdict.accepted) failures.push(`${where}: accepted`);
      if (vector.result === 'acceptable') {
        if (verdict.accepted) tally.acceptableAccepted += 1;
        else tally.acceptableRejected += 1;
      }
    }
  }
  assert.deepEqual(failures, [], `${label}: ${failures.length} vector(s) failed`);
  const checked = tally.valid + tally.invalid + tally.acceptable;
  assert.ok(checked > 0, `${label}: no vectors checked`);
  assert.equal(listed, file.numberOfTests, `${label}: file lists ${listed} tests but declares ${file.numberOfTests}`);
  assert.equal(checked, file.numberOfTests, `${label}: checked ${checked} of ${file.numberOfTests} vectors`);
  t.diagnostic(`${label}: ${tally.valid} valid, ${tally.invalid} invalid, ${tally.acceptable} acceptable `
    + `(${tally.acceptableAccepted} accepted, ${tally.acceptableRejected} rejected)`
    + (tally.refusedByDesign ? `; ${tally.refusedByDesign} valid refused by design` : ''));
  return tally;
}

const HASH_NAMES: Record<string, HashName> = {
  'SHA-1': 'sha1', 'SHA-224': 'sha224', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512',
};

function hashNameOf(sha: string | undefined): HashName {
  const name = sha === undefined ? undefined : HASH_NAMES[sha];
  if (!name) throw new Error(`vector file names an unknown hash ${String(sha)}`);
  return name;
}

test('AES-GCM: Wycheproof aes_gcm', (t) => {
  runVectors<AeadVector, AeadGroup>(t, 'aes_gcm', loadVectors('aes_gcm'), (group, vector) => {
    const key = hex(vector.key);
    const iv = hex(vector.iv);
    const aad = hex(vector.aad);
    if (iv.length > GCM_MAX_NONCE_LENGTH) {
      assert.throws(() => aesGcmEncrypt(key, iv, hex(vector.msg), aad), RangeError, 'over-long nonce must be refused');
    }
    const opened = attempt(() => aesGcmDecrypt(key, iv, hex(vector.ct), hex(vector.tag), aad), isCiphertextError);
    if ('rejected' in opened) return { accepted: false, reason: opened.rejected };
    const plaintextMismatch = compare('plaintext', opened.value, vector.msg);
    // Encrypting only makes sense where the vector's ciphertext is the genuine one.
    if (vector.result === 'invalid') return accepted(plaintextMismatch);
    const sealed = aesGcmEncrypt(key, iv, hex(vector.msg), aad, group.tagSize / 8);
    return accepted(plaintextMismatch, compare('ciphertext', sealed.ciphertext, vector.ct),
      compare('tag', sealed.tag, vector.tag));
  }, (_group, vector) => (vector.iv.length / 2 > GCM_MAX_NONCE_LENGTH
    ? `${vector.iv.length / 2}-byte nonce exceeds OpenSSL's ${GCM_MAX_NONCE_LENGTH}-byte GCM limit` : undefined));
});

test('AES-KWP: Wycheproof aes_kwp', (t) => {
  runVectors<KeywrapVector, KeywrapGroup>(t, 'aes_kwp', loadVectors('aes_kwp'), (_group, vector) => {
    const key = hex(vector.key);
    const unwrapped = attempt(() => aesKwpUnwrap(key, hex(vector.ct)), isCiphertextError);
    if ('rejected' in unwrapped) return { accepted: false, reason: unwrapped.rejected };
    const plaintextMismatch = compare('unwrapped', unwrapped.value, vector.msg);
    if (vector.result === 'invalid') return accepted(plaintextMismatch);
    return accepted(plaintextMismatch, compare('wrapped', aesKwpWrap(key, hex(vector.msg)), vector.ct));
  });
});

function agreementVerdict(privateKey: KeyObject, publicKey: KeyObject, expected: string): Verdict {
  // agreeSharedSecret refuses by throwing: RangeError for an all-zero X25519 result,
  // OpenSSL's error (always an Error with a code) for keys it cannot combine.
  const shared = attempt(() => agreeSharedSecret(privateKey, publicKey),
    (error) => error instanceof Error && (error instanceof RangeError || 'code' in error));
  if ('rejected' in shared) return { accepted: false, reason: shared.rejected };
  return accepted(compare('shared secret', shared.value, expected));
}

test('ECDH P-256: Wycheproof ecdh_secp256r1 (SPKI-encoded peer keys)', (t) => {
  runVectors<AgreementVector, AgreementGroup>(t, 'ecdh_secp256r1', loadVectors('ecdh_secp256r1'), (group, vector) => {
    assert.equal(group.curve, 'secp256r1');
    const privateKey = importEcPrivateScalar('P-256', hex(vector.private));
    return withKey(() => importPublicKeyDer(hex(vector.public)),
      (publicKey) => agreementVerdict(privateKey, publicKey, vector.shared));
  });
});

test('X25519: Wycheproof x25519 (raw keys)', (t) => {
  runVectors<AgreementVector, AgreementGroup>(t, 'x25519', loadVectors('x25519'), (group, vector) => {
    assert.equal(group.curve, 'curve25519');
    const privateKey = importRawPrivateKey('x25519', hex(vector.private));
    return withKey(() => importRawPublicKey('x25519', hex(vector.public)),
      (publicKey) => agreementVerdict(privateKey, publicKey, vector.shared));
  });
});

/**
 * Signature files run twice: once through verifyMessage (OpenSSL hashes) and, where the module has a
 * digest path, once through verifyDigest over the precomputed hash (@noble/curves for ECDSA, raw
 * RSA public operation for PKCS#1 v1.5). Both paths must agree with Wycheproof on every vector.
 */
function runSignatureFile(t: TestContext, name: string, schemeOf: (group: SignatureGroup) => SignatureScheme,
  withDigestPath: boolean): void {
  const file = loadVectors<SignatureGroup>(name);
  runVectors<SignatureVector, SignatureGroup>(t, `${name} verifyMessage`, file, (group, vector) =>
    withKey(() => importPublicKeyDer(hex(group.publicKeyDer)),
      (publicKey) => fromBoolean(verifyMessage(schemeOf(group), publicKey, hex(vector.msg), hex(vector.sig)))));
  if (!withDigestPath) return;
  runVectors<SignatureVector, SignatureGroup>(t, `${name} verifyDigest`, file, (group, vector) => {
    const scheme = schemeOf(group);
    const digest = hash(hashNameOf(group.sha), hex(vector.msg));
    return withKey(() => importPublicKeyDer(hex(group.publicKeyDer)),
      (publicKey) => fromBoolean(verifyDigest(scheme, publicKey, digest, hex(vector.sig))));
  });
}

const ecdsaDer = (group: SignatureGroup): SignatureScheme => ({ kind: 'ecdsa', hash: hashNameOf(group.sha), encoding: 'der' });

test('ECDSA P-256 SHA-256 (DER): Wycheproof ecdsa_secp256r1_sha256', (t) => {
  runSignatureFile(t, 'ecdsa_secp256r1_sha256', ecdsaDer, true);
});

test('ECDSA P-256 SHA-256 (IEEE P1363): Wycheproof ecdsa_secp256r1_sha256_p1363', (t) => {
  runSignatureFile(t, 'ecdsa_secp256r1_sha256_p1363',
    (group) => ({ kind: 'ecdsa', hash: hashNameOf(group.sha), encoding: 'p1363' }), true);
});

test('ECDSA P-384 SHA-384 (DER): Wycheproof ecdsa_secp384r1_sha384', (t) => {
  runSignatureFile(t, 'ecdsa_secp384r1_sha384', ecdsaDer, true);
});

test('ECDSA P-521 SHA-512 (DER): Wycheproof ecdsa_secp521r1_sha512', (t) => {
  runSignatureFile(t, 'ecdsa_secp521r1_sha512', ecdsaDer, true);
});

test('Ed25519: Wycheproof ed25519', (t) => {
  runSignatureFile(t, 'ed25519', () => ({ kind: 'ed25519' }), false);
});

test('RSA-PSS 2048 SHA-256 MGF1-SHA-256 salt 32: Wycheproof rsa_pss_2048_sha256_mgf1_32', (t) => {
  runSignatureFile(t, 'rsa_pss_2048_sha256_mgf1_32', (group) => {
    assert.equal(typeof group.sLen, 'number', 'PSS group without sLen');
    return { kind: 'rsa-pss', hash: hashNameOf(group.sha), saltLength: group.sLen, mgf1Hash: hashNameOf(group.mgfSha) };
  }, false);
});

test('RSA PKCS#1 v1.5 2048 SHA-256: Wycheproof rsa_signature_2048_sha256', (t) => {
  runSignatureFile(t, 'rsa_signature_2048_sha256', (group) => ({ kind: 'rsa-pkcs1', hash: hashNameOf(group.sha) }), true);
});

test('RSA-OAEP 2048 SHA-256 MGF1-SHA-256: Wycheproof rsa_oaep_2048_sha256_mgf1sha256', (t) => {
  runVectors<OaepVector, OaepGroup>(t, 'rsa_oaep_2048_sha256_mgf1sha256', loadVectors('rsa_oaep_2048_sha256_mgf1sha256'),
    (group, vector) => {
      // The module's OAEP uses one hash for both OAEP and MGF1; a file that differs would need another API.
      assert.equal(group.mgfSha, group.sha, 'OAEP group with a different MGF1 hash');
      return withKey(() => importPrivateKeyDer(hex(group.privateKeyPkcs8)), (privateKey) => {
        const opened = attempt(() => rsaOaepDecrypt(privateKey, hashNameOf(group.sha), hex(vector.ct), hex(vector.label)),
          isOaepError);
        if ('rejected' in opened) return { accepted: false, reason: opened.rejected };
        return accepted(compare('plaintext', opened.value, vector.msg));
      });
    });
});

test('HKDF-SHA-256: Wycheproof hkdf_sha256', (t) => {
  runVectors<HkdfVector, HkdfGroup>(t, 'hkdf_sha256', loadVectors('hkdf_sha256'), (_group, vector) => {
    // node:crypto refuses an output longer than 255 hash blocks with a RangeError.
    const okm = attempt(() => hkdf('sha256', hex(vector.ikm), hex(vector.salt), hex(vector.info), vector.size),
      isRangeError);
    if ('rejected' in okm) return { accepted: false, reason: okm.rejected };
    return accepted(compare('okm', okm.value, vector.okm));
  });
});

for (const hashName of ['sha256', 'sha384', 'sha512'] as const) {
  test(`HMAC-${hashName.toUpperCase()}: Wycheproof hmac_${hashName}`, (t) => {
    runVectors<MacVector, MacGroup>(t, `hmac_${hashName}`, loadVectors(`hmac_${hashName}`), (group, vector) => {
      const key = hex(vector.key);
      const message = hex(vector.msg);
      const verdict = fromBoolean(verifyHmac(hashName, key, message, hex(vector.tag)));
      if (!verdict.accepted || vector.result === 'invalid') return verdict;
      return accepted(compare('tag', hmac(hashName, key, message).subarray(0, group.tagSize / 8), vector.tag));
    });
  });
}
