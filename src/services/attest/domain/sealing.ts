// Data sealed to a host's measurement: AES-256-GCM under the host's vault key with the host id and
// the digest of its measurements as associated data, so it opens only for that host measuring the same.
// Must never open a blob whose measurement digest differs from the host's current one.
import {
  aesGcmDecrypt, aesGcmEncrypt, constantTimeEqual, GCM_NONCE_LENGTH, GCM_TAG_LENGTH, randomBytes, sha256,
} from '../../../shared/crypto/index.ts';

const MAGIC = Buffer.from('TPSEAL1');
const DIGEST_BYTES = 32;

/** One digest for a set of measurements, independent of the order they were reported in. */
export function measurementDigest(current: Record<string, string>): Buffer {
  return sha256(JSON.stringify(Object.keys(current).sort().map((name) => [name, current[name]])));
}

function aad(hostId: string, digest: Buffer): Buffer {
  return Buffer.concat([MAGIC, Buffer.from(`\0${hostId}\0`), digest]);
}

/** MAGIC | host id length (1) | host id | measurement digest (32) | nonce | ciphertext | tag */
export function sealToMeasurement(vaultKey: Buffer, hostId: string, digest: Buffer, plaintext: Buffer): Buffer {
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const sealed = aesGcmEncrypt(vaultKey, nonce, plaintext, aad(hostId, digest));
  const id = Buffer.from(hostId);
  return Buffer.concat([MAGIC, Buffer.from([id.length]), id, digest, nonce, sealed.ciphertext, sealed.tag]);
}

export type OpenedSeal = { kind: 'opened'; plaintext: Buffer } | { kind: 'malformed' } | { kind: 'other-host' } | { kind: 'measurement-mismatch' };

export function openSealed(vaultKey: Buffer, hostId: string, currentDigest: Buffer, blob: Buffer): OpenedSeal {
  if (blob.length < MAGIC.length + 1 || !blob.subarray(0, MAGIC.length).equals(MAGIC)) return { kind: 'malformed' };
  const idLength = blob[MAGIC.length];
  const idStart = MAGIC.length + 1;
  const digestStart = idStart + idLength;
  const nonceStart = digestStart + DIGEST_BYTES;
  if (blob.length < nonceStart + GCM_NONCE_LENGTH + GCM_TAG_LENGTH) return { kind: 'malformed' };
  if (blob.subarray(idStart, digestStart).toString() !== hostId) return { kind: 'other-host' };
  const digest = blob.subarray(digestStart, nonceStart);
  if (!constantTimeEqual(digest, currentDigest)) return { kind: 'measurement-mismatch' };
  const nonce = blob.subarray(nonceStart, nonceStart + GCM_NONCE_LENGTH);
  const ciphertext = blob.subarray(nonceStart + GCM_NONCE_LENGTH, blob.length - GCM_TAG_LENGTH);
  const tag = blob.subarray(blob.length - GCM_TAG_LENGTH);
  try {
    return { kind: 'opened', plaintext: aesGcmDecrypt(vaultKey, nonce, ciphertext, tag, aad(hostId, digest)) };
  } catch {
    return { kind: 'malformed' };
  }
}
