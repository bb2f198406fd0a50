// Where a two-phase rotation stands: which entitled hosts hold the staged version and which are
// still missing. Must never do I/O: it works on what the service has read.
import type { KeyRecord, RotationRecord } from '../../../shared/store/index.ts';

export interface RotationStatus {
  KeyId: string;
  PendingVersion?: number;
  DefaultVersion: number;
  State: 'pending' | 'promoted';
  /** Entitled hosts that hold the version (pending, or the default once promoted). */
  Acknowledged: string[];
  /** Entitled hosts that do not hold it yet. */
  Missing: string[];
  Reason?: string;
  StartedAt?: Date;
  PromoteAfter?: Date;
  PromotedAt?: Date;
  PromotedBy?: string;
  LeftBehind?: string[];
}

export function rotationStatus(input: { key: KeyRecord; rotation?: RotationRecord; version: number; entitled: string[]; holding: string[] }): RotationStatus {
  const holding = new Set(input.holding);
  const entitled = [...input.entitled].sort();
  const { key, rotation } = input;
  return {
    KeyId: key.keyId, PendingVersion: key.pendingVersion, DefaultVersion: key.currentVersion,
    State: key.pendingVersion === undefined ? 'promoted' : 'pending',
    Acknowledged: entitled.filter((hostId) => holding.has(hostId)), Missing: entitled.filter((hostId) => !holding.has(hostId)),
    Reason: rotation?.reason, StartedAt: rotation?.startedAt, PromoteAfter: rotation?.promoteAfter, PromotedAt: rotation?.promotedAt,
    PromotedBy: rotation?.promotedBy, LeftBehind: rotation?.leftBehind,
  };
}
