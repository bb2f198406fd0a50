// Per-principal request rate limits (token buckets per operation class) and a guard against
// replayed credential-issuing requests. Must never grow without bound: idle entries are swept.
import { UserError } from '../errors.ts';

export type RateClass = 'cryptographic' | 'management';

export interface RateLimits {
  /** Requests per second per principal; the bucket holds one second's worth (the burst). */
  cryptographic: number;
  management: number;
}

export const DEFAULT_RATE_LIMITS: RateLimits = { cryptographic: 50_000, management: 500 };

/** Parses "cryptographic=1000,management=50" (either part optional) over the defaults. */
export function parseRateLimits(text: string | undefined, defaults: RateLimits = DEFAULT_RATE_LIMITS): RateLimits {
  const limits = { ...defaults };
  if (!text) return limits;
  for (const part of text.split(',').map((entry) => entry.trim()).filter(Boolean)) {
    const [name, value] = part.split('=');
    const rate = Number(value);
    if ((name !== 'cryptographic' && name !== 'management') || !Number.isFinite(rate) || rate <= 0) {
      throw new UserError('InvalidConfiguration', `--rate-limit takes cryptographic=N,management=N with N > 0, got '${part}'.`);
    }
    limits[name] = rate;
  }
  return limits;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

const SWEEP_EVERY = 10_000;

export class RateLimiter {
  readonly #limits: RateLimits;
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  #sinceSweep = 0;

  constructor(limits: RateLimits, now: () => number = () => performance.now()) {
    this.#limits = limits;
    this.#now = now;
  }

  /** Takes one token for this principal and class, or throws ThrottlingException. */
  take(principalArn: string, rateClass: RateClass): void {
    const rate = this.#limits[rateClass];
    const key = `${rateClass} ${principalArn}`;
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: rate, updatedAt: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.updatedAt) / 1000) * rate);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    if (++this.#sinceSweep >= SWEEP_EVERY) this.#sweep(now);
    if (bucket.tokens < 1) throw new UserError('ThrottlingException', 'Rate exceeded');
    bucket.tokens -= 1;
  }

  #sweep(now: number): void {
    this.#sinceSweep = 0;
    // A bucket idle for over a second is full again: forgetting it changes nothing.
    for (const [key, bucket] of this.#buckets) if (now - bucket.updatedAt > 1000) this.#buckets.delete(key);
  }
}

/**
 * Remembers signatures of credential-issuing requests for as long as SigV4 would accept them, so a
 * captured request replayed within the clock-skew window is refused instead of answered again.
 */
export class ReplayGuard {
  readonly #seen = new Map<string, number>();
  readonly #windowMs: number;

  constructor(windowMs = 15 * 60 * 1000) {
    this.#windowMs = windowMs;
  }

  check(signature: string, now = Date.now()): void {
    if (this.#seen.size > 100_000) {
      // Every entry lives windowMs and is (re)inserted at the end, so the map is in expiry order:
      // the expired ones are at its front.
      for (const [entry, expires] of this.#seen) {
        if (expires > now) break;
        this.#seen.delete(entry);
      }
    }
    const expires = this.#seen.get(signature);
    if (expires !== undefined && expires > now) {
      throw new UserError('InvalidSignatureException', 'This signed request was already received; a replayed credential-issuing request is refused. Sign a new request (add a unique amz-sdk-invocation-id header to repeat one within a second).');
    }
    // An expired entry for it is deleted first: set() would keep the entry's old place in the order.
    if (expires !== undefined) this.#seen.delete(signature);
    this.#seen.set(signature, now + this.#windowMs);
  }
}
