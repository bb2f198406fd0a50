// The hash chain that makes the log tamper-evident: hash_n = SHA-256(hash_{n-1} || canonical(record_n)).
// Must never hash anything but the exact stored text of a record.
import { constantTimeEqual, sha256 } from '../../crypto/index.ts';

export const AUDIT_HASH_LENGTH = 32;

/** hash_0: the chain starts from 32 zero bytes, so two logs differ from their first record on. */
export function auditGenesisHash(): Buffer {
  return Buffer.alloc(AUDIT_HASH_LENGTH);
}

/** The next link: SHA-256 over the previous hash followed by the record's canonical UTF-8 text. */
export function chainHash(previous: Uint8Array, canonicalRecord: string): Buffer {
  return sha256(Buffer.concat([previous, Buffer.from(canonicalRecord, 'utf8')]));
}

export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && constantTimeEqual(a, b);
}
