// Privileged-operation requests encrypted to the target host's request key, and how a host registers that key.
// Must never show a courier more than the target host id, nor open an envelope for another host or another key.
//
// Encrypted request file (JSON, what `trustplane privop request --encrypt-to|--encrypt` prints), version 1:
//   { "Encrypted": { "Version": 1, "HostId": "h-…", "KeyId": base64url SHA-256 of the raw X25519 request key,
//                    "Enc": base64url HPKE encapsulated key (32 bytes), "Ciphertext": base64 } }
//   HPKE: RFC 9180 base mode, the suite of sealed results (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM), to the host's
//   request key; info "trustplane-privop-request-v1"; aad "trustplane-privop-request-v1\0" ‖ HostId ‖ "\0" ‖ KeyId, so an
//   envelope re-addressed to another host or key does not open. The plaintext is the whole signed request file
//   ({ Request, Signature, Certificates? }), so the host checks the signature exactly as for a plain request.
//
// Registration (agent → server, POST /v1/agent/privop/request-key over the mutual-TLS listener):
//   { "PublicKey": base64 raw X25519 (32 bytes), "Proof": base64 DER ECDSA P-256/SHA-256 by the host identity key over
//     "trustplane-privop-request-key-v1\n" ‖ HostId ‖ "\n" ‖ base64(PublicKey) }
//   → { "Certificate": PEM, "KeyId", "Classes": [the host's classes] }.
import { z } from 'zod';
import { hpkeOpen, hpkeSeal, requestKeyId, HPKE_ENCAPSULATED_KEY_LENGTH } from './crypto/index.ts';
import { UserError } from './errors.ts';
import { zodReason } from './privop-wire.ts';

export const ENCRYPTED_PRIVOP_REQUEST_VERSION = 1;
export const PRIVOP_REQUEST_ENCRYPTION_INFO = 'trustplane-privop-request-v1';
export const PRIVOP_REQUEST_KEY_PATH = '/v1/agent/privop/request-key';
/** A signed request file is at most a 16 MiB bulk parameter in base64 plus its envelope. */
const MAX_CIPHERTEXT_CHARS = 24 * 1024 * 1024;

const HOST_ID = /^h-[0-9a-f]{1,64}$/;

export const encryptedPrivopRequestSchema = z.object({
  Encrypted: z.object({
    Version: z.literal(ENCRYPTED_PRIVOP_REQUEST_VERSION),
    HostId: z.string().regex(HOST_ID, 'a host id (h-…)'),
    KeyId: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes'),
    Enc: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes'),
    Ciphertext: z.string().min(1).max(MAX_CIPHERTEXT_CHARS).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64'),
  }).strict(),
}).strict();

export type EncryptedPrivopRequest = z.infer<typeof encryptedPrivopRequestSchema>;

/** Whether a parsed request file is an encrypted envelope (the only top-level key is "Encrypted"), whatever its validity. */
export function isEncryptedPrivopRequest(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && 'Encrypted' in value;
}


/** An envelope checked for shape (what a courier can check); PrivopMalformedRequest says what is wrong. */
export function parseEncryptedPrivopRequest(value: unknown): EncryptedPrivopRequest {
  const parsed = encryptedPrivopRequestSchema.safeParse(value);
  if (!parsed.success) throw new UserError('PrivopMalformedRequest', `The encrypted request is malformed: ${zodReason(parsed.error)}.`);
  return parsed.data;
}

function envelopeAad(hostId: string, keyId: string): Buffer {
  return Buffer.from(`${PRIVOP_REQUEST_ENCRYPTION_INFO}\0${hostId}\0${keyId}`, 'utf8');
}

/** Encrypts a signed request file (its JSON bytes) to a host's request key (raw X25519, already checked by the caller). */
export async function encryptPrivopRequest(options: { requestFileJson: Buffer; hostId: string; requestKey: Buffer }): Promise<EncryptedPrivopRequest> {
  const keyId = requestKeyId(options.requestKey);
  const sealed = await hpkeSeal(options.requestKey, options.requestFileJson, PRIVOP_REQUEST_ENCRYPTION_INFO, envelopeAad(options.hostId, keyId));
  return { Encrypted: { Version: ENCRYPTED_PRIVOP_REQUEST_VERSION, HostId: options.hostId, KeyId: keyId, Enc: sealed.enc.toString('base64url'),
    Ciphertext: sealed.ciphertext.toString('base64') } };
}

const refuse = (code: string, message: string) => new UserError(code, message, 403);

/**
 * Opens an envelope on the host it names with its request key: PrivopWrongHost for another host, PrivopCannotDecrypt for another
 * key or any alteration. Returns the signed request file's bytes (JSON; the caller parses and judges it).
 */
export async function decryptPrivopRequest(envelope: EncryptedPrivopRequest, host: { hostId: string; requestKey?: { publicKey: Buffer; privateKey: Buffer } })
  : Promise<Buffer> {
  const { Encrypted: sealed } = envelope;
  if (sealed.HostId !== host.hostId) throw refuse('PrivopWrongHost', `The encrypted request is for ${sealed.HostId}, not this host (${host.hostId}).`);
  if (!host.requestKey) throw refuse('PrivopCannotDecrypt', 'This host has no request key yet: it cannot open encrypted requests.');
  const keyId = requestKeyId(host.requestKey.publicKey);
  if (sealed.KeyId !== keyId) {
    throw refuse('PrivopCannotDecrypt', 'The request is encrypted to another request key than this host\'s (an old or another host\'s key).');
  }
  const enc = Buffer.from(sealed.Enc, 'base64url');
  if (enc.length !== HPKE_ENCAPSULATED_KEY_LENGTH) throw refuse('PrivopCannotDecrypt', 'The encapsulated key is not 32 bytes.');
  try {
    return await hpkeOpen(host.requestKey.privateKey, { enc, ciphertext: Buffer.from(sealed.Ciphertext, 'base64') }, PRIVOP_REQUEST_ENCRYPTION_INFO,
      envelopeAad(sealed.HostId, sealed.KeyId));
  } catch {
    throw refuse('PrivopCannotDecrypt', 'The encrypted request does not open with this host\'s request key: it was altered or re-addressed.');
  }
}

/** What a host signs with its identity key to register its request key. */
export function requestKeyProofMessage(hostId: string, publicKey: Uint8Array): Buffer {
  return Buffer.from(`trustplane-privop-request-key-v1\n${hostId}\n${Buffer.from(publicKey).toString('base64')}`, 'utf8');
}

/** The server's answer to a registration. */
export interface RequestKeyRegistration {
  Certificate: string;
  KeyId: string;
  Classes: string[];
}
