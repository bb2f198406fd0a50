// Moves stored material from one domain key to another: domain key rotation (same module) and
// seal migration (software <-> PKCS#11). Must never change a customer key, only what wraps it,
// and must never leave an unwrapped secret in memory longer than one record.
import { CiphertextError } from '../../errors.ts';
import { zeroize } from './bytes.ts';
import type { CryptoModule, WrappedSecret } from './crypto-module.ts';
import type { KeySpec } from './customer-key.ts';
import { customerKeyAad, secretAad } from './keyring.ts';

/** Whose material a stored row holds: it decides the associated data the wrap was bound to. */
export type WrappedRecordOwner =
  | { kind: 'customer-key'; keyId: string; version: number; spec: string }
  | { kind: 'secret'; purpose: string; name: string };

export interface WrappedRecord {
  /** Which kind of stored row this is; named by the store, opaque here (a cursor orders by it). */
  source: string;
  rowId: number;
  owner: WrappedRecordOwner;
  material: WrappedSecret;
}

export type WrappedRecordCursor = Pick<WrappedRecord, 'source' | 'rowId'>;

export interface WrappedRecordReplacement {
  record: WrappedRecord;
  material: WrappedSecret;
}

export interface WrappedRecordStore {
  /** Rows wrapped under any of `domainKeyIds`, in a stable order, after `after`. */
  listWrappedRecords(domainKeyIds: string[], after: WrappedRecordCursor | undefined, limit: number): Promise<WrappedRecord[]>;
  /** Rows per domain key id. */
  countWrappedRecords(): Promise<Map<string, number>>;
  /** Replaces each row's material only if it still holds what was read; returns how many were replaced. */
  replaceWrappedRecords(replacements: WrappedRecordReplacement[]): Promise<number>;
}

export function aadForOwner(owner: WrappedRecordOwner): Buffer {
  return owner.kind === 'customer-key'
    ? customerKeyAad(owner.keyId, owner.version, owner.spec as KeySpec)
    : secretAad(owner.purpose, owner.name);
}

export interface RewrapBatchResult {
  rewrapped: number;
  /** Rows that changed under us (rewritten or deleted): they are no longer under the old key or no longer exist. */
  skipped: number;
  /** Rows whose material does not unwrap: corrupt or tampered. Left as they are and reported. */
  unreadable: WrappedRecord[];
  /** Where the next batch starts; undefined when there is nothing after this batch. */
  next: WrappedRecordCursor | undefined;
}

/**
 * Rewraps one batch: unwrap with `source`, wrap with `target`, write all replacements in one
 * transaction. A crash before the write loses nothing (the old rows stand); after it, the batch is done.
 */
export async function rewrapBatch(options: {
  store: WrappedRecordStore; source: CryptoModule; target: CryptoModule; fromDomainKeyIds: string[];
  after: WrappedRecordCursor | undefined; limit: number;
}): Promise<RewrapBatchResult> {
  const records = await options.store.listWrappedRecords(options.fromDomainKeyIds, options.after, options.limit);
  const replacements: WrappedRecordReplacement[] = [];
  const unreadable: WrappedRecord[] = [];
  for (const record of records) {
    const aad = aadForOwner(record.owner);
    let secret: Buffer | undefined;
    try {
      secret = await options.source.unwrap(record.material, aad);
      replacements.push({ record, material: await options.target.wrap(secret, aad) });
    } catch (error) {
      if (!(error instanceof CiphertextError)) throw error;
      unreadable.push(record);
    } finally {
      zeroize(secret);
    }
  }
  const rewrapped = replacements.length === 0 ? 0 : await options.store.replaceWrappedRecords(replacements);
  const last = records.at(-1);
  return { rewrapped, skipped: replacements.length - rewrapped, unreadable,
    next: records.length < options.limit || !last ? undefined : { source: last.source, rowId: last.rowId } };
}
