// Challenges that need no storage: random bytes, an expiry and a MAC binding both to the host, under a
// key every replica derives from the verifier's signing key. Whether one was used is kept in memory
// until it expires (a replay to another replica within its 30 s is the residual, and only the host can).
// Must never accept a challenge issued to another host, expired, or with a MAC that does not verify.
import { constantTimeEqual, hmac, randomBytes } from '../../../shared/crypto/index.ts';

const RANDOM_BYTES = 16;
const EXPIRY_BYTES = 8;
const MAC_BYTES = 24;
export const CHALLENGE_BYTES = RANDOM_BYTES + EXPIRY_BYTES + MAC_BYTES;

function mac(key: Buffer, hostId: string, body: Buffer): Buffer {
  return hmac('sha256', key, Buffer.concat([Buffer.from(`trustplane-challenge-v1\0${hostId}\0`), body])).subarray(0, MAC_BYTES);
}

export function issueChallenge(key: Buffer, hostId: string, expiresAt: Date): Buffer {
  const body = Buffer.alloc(RANDOM_BYTES + EXPIRY_BYTES);
  randomBytes(RANDOM_BYTES).copy(body);
  body.writeBigUInt64BE(BigInt(expiresAt.getTime()), RANDOM_BYTES);
  return Buffer.concat([body, mac(key, hostId, body)]);
}

/** The challenge's expiry if it is this host's, authentic and not expired; undefined otherwise. */
export function checkChallenge(key: Buffer, hostId: string, challenge: Buffer, now: Date): Date | undefined {
  if (challenge.length !== CHALLENGE_BYTES) return undefined;
  const body = challenge.subarray(0, RANDOM_BYTES + EXPIRY_BYTES);
  if (!constantTimeEqual(mac(key, hostId, body), challenge.subarray(RANDOM_BYTES + EXPIRY_BYTES))) return undefined;
  const expiresAt = Number(body.readBigUInt64BE(RANDOM_BYTES));
  return expiresAt > now.getTime() ? new Date(expiresAt) : undefined;
}

/** Challenges used once, remembered until they expire. */
export class UsedChallenges {
  readonly #used = new Map<string, number>();

  /** True the first time a challenge is presented; false after. */
  use(challenge: Buffer, expiresAt: Date): boolean {
    const id = challenge.toString('base64');
    if (this.#used.has(id)) return false;
    this.#used.set(id, expiresAt.getTime());
    return true;
  }

  forgetExpired(now: Date): void {
    for (const [id, expiresAt] of this.#used) if (expiresAt <= now.getTime()) this.#used.delete(id);
  }
}
