// What a batch of change-feed entries means for one host: nothing, some keys, a full look at its
// ring, or revocation. Must never do I/O: it works on what the push hub has read.
import type { FleetChange, HostClassRecord, HostRecord } from '../../../shared/store/index.ts';
import { entitledKeyIds, lineage } from './classes.ts';

/** Which keys a batch of changes touches for one host: all of them, some, or the host is gone. */
export type RingScope = { kind: 'all' } | { kind: 'keys'; keyIds: Set<string> } | { kind: 'revoked' };

/**
 * What `changes` mean for `host` (which holds `heldKeyIds`): nothing (undefined), some keys, a
 * full look at its ring (its classes, quarantine or verdict changed), or revoked (removed).
 */
export function scopeOfChanges(changes: readonly FleetChange[], host: HostRecord | undefined, hostId: string,
  classes: ReadonlyMap<string, HostClassRecord>, heldKeyIds: ReadonlySet<string>): RingScope | undefined {
  if (!host) return { kind: 'revoked' };
  const mine = lineage(classes, host.classes);
  const entitled = new Set(entitledKeyIds(classes, host.classes));
  const keyIds = new Set<string>();
  for (const change of changes) {
    if (change.hostId === hostId) {
      if (change.kind === 'host-removed') return { kind: 'revoked' };
      return { kind: 'all' };
    }
    // A class's attestation settings or reference values changed: what its hosts may hold may have too.
    if (change.kind === 'attestation-changed' && change.className && mine.has(change.className)) return { kind: 'all' };
    if ((change.kind === 'key-granted' || change.kind === 'key-revoked') && change.className && mine.has(change.className) && change.keyId) {
      keyIds.add(change.keyId);
    } else if (change.kind === 'key-revoked' && change.keyId && heldKeyIds.has(change.keyId)) {
      keyIds.add(change.keyId);
    } else if (change.kind === 'key-changed' && change.keyId && (entitled.has(change.keyId) || heldKeyIds.has(change.keyId))) {
      keyIds.add(change.keyId);
    }
  }
  return keyIds.size > 0 ? { kind: 'keys', keyIds } : undefined;
}

/** Two scopes queued for one host, as one: revoked wins, then all, else the union of keys. */
export function mergeScopes(a: RingScope | undefined, b: RingScope): RingScope {
  if (!a) return b;
  if (a.kind === 'revoked' || b.kind === 'revoked') return { kind: 'revoked' };
  if (a.kind === 'all' || b.kind === 'all') return { kind: 'all' };
  return { kind: 'keys', keyIds: new Set([...a.keyIds, ...b.keyIds]) };
}
