// The zone proxy's policy audit trail: one JSON line per policy decision, appended and flushed before the answer.
// Must never write matched text, object content, metadata values or credentials: types, offsets and names only.
import { mkdirSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DetectorMatch } from '../../../shared/data-policy/index.ts';

export interface PolicyAuditRecord {
  time: string;
  zone: string;
  accessKeyId: string;
  operation: string;
  bucket: string;
  key: string;
  outcome: 'stored' | 'denied' | 'quarantined' | 'passed';
  backingZone?: string;
  rules: string[];
  /** Rules whose action includes log: their records carry every match's type, confidence and position. */
  logRules: string[];
  matches?: Array<{ type: string; confidence: number; offset: number; length: number }>;
  matchCounts: Record<string, number>;
  bytes: number;
}

export class PolicyAudit {
  readonly #file: Promise<FileHandle> | undefined;

  constructor(path: string | undefined) {
    if (!path) return;
    mkdirSync(dirname(path), { recursive: true });
    this.#file = open(path, 'a', 0o600);
    // A file that cannot be opened fails the first record (and so that request), not the process.
    this.#file.catch(() => undefined);
  }

  /**
   * Appends one record; with `durable` the line is on disk before the promise settles (the log action's promise).
   * Asynchronous, so a flush for one request does not stall every other connection.
   */
  async record(record: PolicyAuditRecord, durable: boolean): Promise<void> {
    if (!this.#file) return;
    const file = await this.#file;
    await file.appendFile(`${JSON.stringify(record)}\n`);
    if (durable) await file.datasync();
  }

  async close(): Promise<void> {
    if (this.#file) await (await this.#file).close().catch(() => undefined);
  }
}

/** Match positions without the matched text. */
export function describeMatches(matches: readonly DetectorMatch[]): { matches: PolicyAuditRecord['matches']; counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  for (const match of matches) counts[match.type] = (counts[match.type] ?? 0) + 1;
  return { matches: matches.map((match) => ({ type: match.type, confidence: match.confidence, offset: match.offset, length: match.length })), counts };
}
