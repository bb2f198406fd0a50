// HPKE (RFC 9180) base mode, one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, from
// @hpke/core. Used wherever key material or results travel to one holder of a private key.
// Must never reuse a key pair made for signing: HPKE keys are X25519 and only for this.
import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';
import { CiphertextError } from '../../errors.ts';
import { zeroize } from './bytes.ts';

export const HPKE_PUBLIC_KEY_LENGTH = 32;
export const HPKE_ENCAPSULATED_KEY_LENGTH = 32;

/** RFC 9180 DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM: the one suite every HPKE use here shares. */
export const HPKE_SUITE = new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });

export interface HpkeKeyPair {
  /** Raw X25519 public key (32 bytes). */
  publicKey: Buffer;
  /** Raw X25519 private key (32 bytes); zeroize when done. */
  privateKey: Buffer;
}

export interface HpkeSealed {
  /** The encapsulated key (32 bytes). */
  enc: Buffer;
  ciphertext: Buffer;
}

export async function generateHpkeKeyPair(): Promise<HpkeKeyPair> {
  const pair = await HPKE_SUITE.kem.generateKeyPair();
  return {
    publicKey: Buffer.from(await HPKE_SUITE.kem.serializePublicKey(pair.publicKey)),
    privateKey: Buffer.from(await HPKE_SUITE.kem.serializePrivateKey(pair.privateKey)),
  };
}

export function isHpkePublicKey(bytes: Uint8Array): boolean {
  return bytes.length === HPKE_PUBLIC_KEY_LENGTH;
}

/** Encrypts to the holder of `recipientPublicKey`; `info` names the purpose, `aad` binds the context. */
export async function hpkeSeal(recipientPublicKey: Uint8Array, plaintext: Uint8Array, info: string, aad: Uint8Array): Promise<HpkeSealed> {
  if (!isHpkePublicKey(recipientPublicKey)) throw new RangeError('HPKE public key must be 32 bytes (X25519)');
  const recipient = await HPKE_SUITE.kem.deserializePublicKey(new Uint8Array(recipientPublicKey));
  const sealed = await HPKE_SUITE.seal({ recipientPublicKey: recipient, info: Buffer.from(info, 'utf8') }, plaintext, aad);
  return { enc: Buffer.from(sealed.enc), ciphertext: Buffer.from(sealed.ct) };
}

/** Decrypts what hpkeSeal made; CiphertextError on any mismatch (key, info, aad, tampering). */
export async function hpkeOpen(privateKey: Uint8Array, sealed: HpkeSealed, info: string, aad: Uint8Array): Promise<Buffer> {
  if (sealed.enc.length !== HPKE_ENCAPSULATED_KEY_LENGTH) throw new CiphertextError();
  const copy = new Uint8Array(privateKey);
  try {
    const recipientKey = await HPKE_SUITE.kem.deserializePrivateKey(copy);
    const opened = await HPKE_SUITE.open({ recipientKey, enc: new Uint8Array(sealed.enc), info: Buffer.from(info, 'utf8') },
      new Uint8Array(sealed.ciphertext), aad);
    return Buffer.from(opened);
  } catch {
    throw new CiphertextError();
  } finally {
    zeroize(copy);
  }
}
