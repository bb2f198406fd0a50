// Splitting the root key into Shamir shares and collecting them again at unseal.
// The arithmetic is the reviewed `shamir-secret-sharing` library's; we only encode and count.
// Must never log a share, and must zero every share and every combined key when done with it.
import { combine, split } from 'shamir-secret-sharing';
import { armor, Encrypter } from 'age-encryption';
import { constantTimeEqual, randomBytes, zeroize } from '../../../shared/crypto/index.ts';
import { UserError } from '../../../shared/errors.ts';

export const ROOT_KEY_BYTES = 32;
const MAX_SHARES = 255;
/** Module values recording how the root key was split (read at unseal, written with the module). */
export const SHAMIR_THRESHOLD_VALUE = 'shamir-threshold';
export const SHAMIR_SHARES_VALUE = 'shamir-shares';

export interface ShareScheme {
  shares: number;
  threshold: number;
}

export function validateShareScheme(scheme: ShareScheme): void {
  const { shares, threshold } = scheme;
  if (!Number.isInteger(shares) || shares < 1 || shares > MAX_SHARES) {
    throw new UserError('ValidationException', `Shares must be an integer from 1 to ${MAX_SHARES}.`);
  }
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > shares) {
    throw new UserError('ValidationException', `Threshold must be an integer from 1 to the number of shares (${shares}).`);
  }
  // One share that alone unseals, handed out several times, would only pretend to split trust.
  if (threshold === 1 && shares > 1) {
    throw new UserError('ValidationException', 'A threshold of 1 needs exactly 1 share; use a threshold of at least 2 to split the root key.');
  }
}

export function shareSchemeValues(scheme: ShareScheme): Record<string, Buffer> {
  return { [SHAMIR_THRESHOLD_VALUE]: Buffer.from(String(scheme.threshold)), [SHAMIR_SHARES_VALUE]: Buffer.from(String(scheme.shares)) };
}

export function parseShareScheme(values: { threshold?: Buffer; shares?: Buffer }): ShareScheme | undefined {
  if (!values.threshold || !values.shares) return undefined;
  return { threshold: Number(values.threshold.toString()), shares: Number(values.shares.toString()) };
}

/** A new root key and its shares; the caller zeroizes both. */
export async function newSplitRootKey(scheme: ShareScheme): Promise<{ rootKey: Buffer; shares: Buffer[] }> {
  validateShareScheme(scheme);
  const rootKey = randomBytes(ROOT_KEY_BYTES);
  try {
    return { rootKey, shares: await splitRootKey(rootKey, scheme) };
  } catch (error) {
    zeroize(rootKey);
    throw error;
  }
}

/** N shares of which any K rebuild the root key. A 1-of-1 scheme is the key itself. */
async function splitRootKey(rootKey: Uint8Array, scheme: ShareScheme): Promise<Buffer[]> {
  if (scheme.shares === 1) return [Buffer.from(rootKey)];
  // The library checks for a plain Uint8Array (a Buffer is refused); the copy is zeroed after.
  const plain = new Uint8Array(rootKey);
  try {
    const shares = await split(plain, scheme.shares, scheme.threshold);
    const encoded = shares.map((share) => Buffer.from(share));
    zeroize(...shares);
    return encoded;
  } finally {
    zeroize(plain);
  }
}

/**
 * Encrypts each share to its own holder's age public key (one recipient per share, in order), so
 * the init response shows no one every share. Returns ASCII-armored age files.
 */
export async function encryptSharesToRecipients(shares: string[], recipients: string[]): Promise<string[]> {
  if (recipients.length !== shares.length) {
    throw new UserError('ValidationException', `Give one recipient per share: ${shares.length} shares, ${recipients.length} recipients.`);
  }
  const encrypted: string[] = [];
  for (const [index, share] of shares.entries()) {
    const recipient = recipients[index] as string;
    const encrypter = new Encrypter();
    try {
      encrypter.addRecipient(recipient);
    } catch {
      throw new UserError('ValidationException', `Recipient ${index + 1} is not an age public key (age1...).`);
    }
    encrypted.push(armor.encode(await encrypter.encrypt(share)));
  }
  return encrypted;
}

export function encodeShare(share: Uint8Array): string {
  return Buffer.from(share).toString('base64');
}

/** Parses a share as typed or pasted (base64, surrounding spaces ignored). */
export function decodeShare(text: string, threshold: number): Buffer {
  const trimmed = text.trim();
  const expectedLength = threshold === 1 ? ROOT_KEY_BYTES : ROOT_KEY_BYTES + 1;
  const bytes = /^[A-Za-z0-9+/]+={0,2}$/.test(trimmed) ? Buffer.from(trimmed, 'base64') : Buffer.alloc(0);
  if (bytes.length !== expectedLength || bytes.toString('base64') !== trimmed) {
    zeroize(bytes);
    throw new UserError('InvalidShareException', 'The unseal share is malformed: expected the base64 text printed by operator init.');
  }
  return bytes;
}

type AddShareResult = { kind: 'duplicate' } | { kind: 'pending'; progress: number } | { kind: 'complete'; rootKey: Buffer };

/**
 * Shares submitted so far, from any number of terminals. Identical shares count once. When the
 * threshold is reached the shares are combined and forgotten, whether the result is right or not.
 */
export class UnsealProgress {
  #shares: Buffer[] = [];

  get progress(): number {
    return this.#shares.length;
  }

  async add(share: Buffer, threshold: number): Promise<AddShareResult> {
    if (this.#shares.some((held) => held.length === share.length && constantTimeEqual(held, share))) {
      zeroize(share);
      return { kind: 'duplicate' };
    }
    this.#shares.push(share);
    if (this.#shares.length < threshold) return { kind: 'pending', progress: this.#shares.length };
    const shares = this.#shares;
    this.#shares = [];
    try {
      if (threshold === 1) return { kind: 'complete', rootKey: Buffer.from(shares[0] as Buffer) };
      const plain = shares.map((share) => new Uint8Array(share));
      try {
        const combined = await combine(plain);
        const rootKey = Buffer.from(combined);
        zeroize(combined);
        return { kind: 'complete', rootKey };
      } finally {
        zeroize(...plain);
      }
    } catch {
      // Two different shares with the same x coordinate cannot both be right.
      return { kind: 'complete', rootKey: Buffer.alloc(0) };
    } finally {
      zeroize(...shares);
    }
  }

  reset(): void {
    zeroize(...this.#shares);
    this.#shares = [];
  }
}
