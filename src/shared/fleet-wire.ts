// What the server and host agents say to each other on the fleet's mutual-TLS listener: the
// shapes of the pushed key ring, the acknowledgement, and how key material is packed and sealed.
// Must never carry key material outside the HPKE-sealed part.
import { bytesToUuid, uuidToBytes } from './crypto/index.ts';

/** The TLS server name an agent asks for: the account's listener identity, signed by the account's CA. */
export function fleetServerName(accountId: string): string {
  return `${accountId}.fleet.trustplane.internal`;
}

export function accountFromServerName(serverName: string | undefined): string | undefined {
  return /^(\d{12})\.fleet\.trustplane\.internal$/.exec(serverName ?? '')?.[1];
}

/** The URI SAN of a host certificate. */
export function hostUri(accountId: string, hostId: string): string {
  return `trustplane:host:${accountId}:${hostId}`;
}

/**
 * The URI SAN only certificates issued on attestation carry: a relying party checking a peer with
 * VerifyCertificate accepts those, not the fleet identity certificates the same CA issues to agents.
 */
export function attestedHostUri(accountId: string, hostId: string): string {
  return `trustplane:attested-host:${accountId}:${hostId}`;
}

export function isAttestedHostUri(uri: string): boolean {
  return /^trustplane:attested-host:\d{12}:h-[0-9a-f]+$/.test(uri);
}

export function parseHostUri(uri: string): { accountId: string; hostId: string } | undefined {
  const match = /^trustplane:host:(\d{12}):(h-[0-9a-f]+)$/.exec(uri);
  return match ? { accountId: match[1], hostId: match[2] } : undefined;
}

/** What an enrolling host signs with its identity key: the token and the key ring (HPKE) key keys will be sealed to. */
export function enrollmentProofMessage(joinToken: string, hpkePublicKey: Uint8Array): Buffer {
  return Buffer.from(`trustplane-enroll-v1\n${joinToken}\n${Buffer.from(hpkePublicKey).toString('base64')}`);
}

/**
 * What a host enrolling with its TPM (no join token) signs with its identity key: the fingerprint of
 * the endorsement key it enrols with and the key ring (HPKE) key keys will be sealed to.
 */
export function tpmEnrollmentProofMessage(ekFingerprint: string, hpkePublicKey: Uint8Array): Buffer {
  return Buffer.from(`trustplane-enroll-tpm-v1\n${ekFingerprint}\n${Buffer.from(hpkePublicKey).toString('base64')}`);
}

/**
 * What finishes a token-less enrolment: an HMAC keyed by the secret the TPM recovered, over the
 * enrolment and the keys being enrolled. The secret itself never travels, and a relay that swapped
 * in its own identity key at the start cannot make the MAC over it.
 */
export function tpmEnrollmentFinishMessage(enrolmentId: string, publicKeyDer: Uint8Array, hpkePublicKey: Uint8Array): Buffer {
  return Buffer.from(`trustplane-enroll-tpm-finish-v1\n${enrolmentId}\n${Buffer.from(publicKeyDer).toString('base64')}\n`
    + `${Buffer.from(hpkePublicKey).toString('base64')}`);
}

/** What a renewing agent signs with its new identity key. */
export function renewalProofMessage(hostId: string): Buffer {
  return Buffer.from(`trustplane-renew-v1\n${hostId}`);
}

export const KEY_RING_HPKE_INFO = 'trustplane fleet key ring v1';

/** What the sealed part of a push is bound to: the host and the revision it carries. */
export function keyRingAad(hostId: string, revision: number): Buffer {
  return Buffer.from(`trustplane-keyring-v1\n${hostId}\n${revision}`, 'utf8');
}

/** One key as a host sees it; material for `NewVersions` travels sealed beside it. */
export interface RingKey {
  KeyId: string;
  Arn: string;
  KeySpec: string;
  KeyUsage: string;
  Enabled: boolean;
  DefaultVersion: number;
  PendingVersion?: number;
  MinDecryptVersion: number;
  Aliases: string[];
  /** Versions whose material is in this message's sealed part. */
  NewVersions: number[];
}

export interface RingMessage {
  HostId: string;
  Revision: number;
  Keys: RingKey[];
  /** Keys the host may no longer hold: it deletes them. */
  Removed: string[];
  /** HPKE to the host's key ring key; absent when no new material is needed. */
  Sealed?: { Enc: string; Ciphertext: string };
}

export interface HelloMessage {
  HostId: string;
  Revision: number;
  CertificateExpiresAt: string;
}

/** Key id → versions held. */
export type Holdings = Record<string, number[]>;

export interface AckRequest {
  Revision: number;
  /** Every key the agent holds, when Full; else only the keys the acknowledged message named. */
  Holds: Holdings;
  Removed?: string[];
  Full?: boolean;
  AgentVersion?: string;
}

export interface PackedMaterial {
  keyId: string;
  version: number;
  material: Buffer;
}

/** key id (16) | version (u32) | length (u32) | material, repeated: a binary layout, so the buffer can be zeroed. */
export function packMaterial(entries: PackedMaterial[]): Buffer {
  const out = Buffer.alloc(entries.reduce((sum, entry) => sum + 24 + entry.material.length, 0));
  let offset = 0;
  for (const entry of entries) {
    uuidToBytes(entry.keyId).copy(out, offset);
    out.writeUInt32BE(entry.version, offset + 16);
    out.writeUInt32BE(entry.material.length, offset + 20);
    entry.material.copy(out, offset + 24);
    offset += 24 + entry.material.length;
  }
  return out;
}

/** Inverse of packMaterial; the materials are views into `packed` (zero it when done). */
export function unpackMaterial(packed: Buffer): PackedMaterial[] {
  const entries: PackedMaterial[] = [];
  let offset = 0;
  while (offset < packed.length) {
    if (offset + 24 > packed.length) throw new RangeError('truncated key material');
    const length = packed.readUInt32BE(offset + 20);
    if (offset + 24 + length > packed.length) throw new RangeError('truncated key material');
    entries.push({ keyId: bytesToUuid(packed.subarray(offset, offset + 16)), version: packed.readUInt32BE(offset + 16),
      material: packed.subarray(offset + 24, offset + 24 + length) });
    offset += 24 + length;
  }
  return entries;
}
