// The zone proxy's policy audit trail: one JSON line per policy decision, appended and flushed before the answer.
// Must never write matched text, object content, metadata values or credentials: types, offsets and names only.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from 'node:fs';
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
  readonly #fd: number | undefined;

  constructor(path: string | undefined) {
    if (!path) return;
    mkdirSync(dirname(path), { recursive: true });
    this.#fd = openSync(path, 'a', 0o600);
  }

  /** Appends one record; with `durable` the line is on disk before this returns (the log action's promise). */
  record(record: PolicyAuditRecord, durable: boolean): void {
    if (this.#fd === undefined) return;
    writeSync(this.#fd, `${JSON.stringify(record)}\n`);
    if (durable) fsyncSync(this.#fd);
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
  }
}

/** Match positions without the matched text. */
export function describeMatches(matches: readonly DetectorMatch[]): { matches: PolicyAuditRecord['matches']; counts: Record<string, number> } {
  const counts: Record<string, number> = {};
  for (const match of matches) counts[match.type] = (counts[match.type] ?? 0) + 1;
  return { matches: matches.map((match) => ({ type: match.type, confidence: match.confidence, offset: match.offset, length: match.length })), counts };
}
