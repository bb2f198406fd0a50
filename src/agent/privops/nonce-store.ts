// Single use of privileged-operation requests: every accepted nonce is remembered in the state directory
// until its request expires. Must never accept a nonce it has seen, across restarts; a store it cannot read refuses everything.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../../shared/errors.ts';
import { writeFileDurably } from '../../shared/fs.ts';

const NONCES_FILE = 'privop-nonces.json';
const FORMAT_VERSION = 1;

export class PrivopNonceStore {
  readonly #path: string;
  readonly #skewMs: number;
  /** Nonce → when it may be forgotten (epoch ms): its request's NotAfter plus the skew. */
  readonly #seen = new Map<string, number>();

  constructor(stateDir: string, skewMs: number) {
    this.#path = join(stateDir, NONCES_FILE);
    this.#skewMs = skewMs;
    if (!existsSync(this.#path)) return;
    let parsed: { Version?: number; Nonces?: Record<string, number> };
    try {
      parsed = JSON.parse(readFileSync(this.#path, 'utf8')) as typeof parsed;
    } catch {
      throw new UserError('BrokenState', `${this.#path} is unreadable; privileged operations refuse to start without their replay record.`);
    }
    if (parsed.Version !== FORMAT_VERSION || typeof parsed.Nonces !== 'object' || parsed.Nonces === null) {
      throw new UserError('BrokenState', `${this.#path} is not a nonce record this agent wrote.`);
    }
    for (const [nonce, forgetAt] of Object.entries(parsed.Nonces)) if (typeof forgetAt === 'number') this.#seen.set(nonce, forgetAt);
  }

  /**
   * Records `nonce` as used, durably, before the operation runs; false when it was used already. Synchronous,
   * so two requests with one nonce cannot both pass between the check and the record.
   */
  use(nonce: string, notAfter: Date, now: Date): boolean {
    for (const [seen, forgetAt] of this.#seen) if (forgetAt < now.getTime()) this.#seen.delete(seen);
    if (this.#seen.has(nonce)) return false;
    this.#seen.set(nonce, notAfter.getTime() + this.#skewMs);
    writeFileDurably(this.#path, `${JSON.stringify({ Version: FORMAT_VERSION, Nonces: Object.fromEntries(this.#seen) })}\n`);
    return true;
  }
}
