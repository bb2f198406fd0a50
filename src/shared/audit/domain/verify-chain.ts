// Verification of a stored audit log: records, the hash chain, signed checkpoints and the head.
// Must never hold more than one record at a time, and never call a log intact on unsigned evidence alone.
//
// What is detected, and what the first bad sequence number means:
// - a record modified, removed, moved (reordered) or inserted: the first record that does not fit
//   (hash mismatch, a gap, a record whose own seq differs from its place, or records beyond the head);
// - a checkpoint forged, altered, removed, or not matching the records: the first record after the
//   last checkpoint that did verify, i.e. the first record no longer vouched for by a signature.
//   (Someone able to write the database can recompute every hash after a change; only a signature
//   then shows it, and it cannot say which of the records it covers was changed.)
// - truncation: records missing before a checkpoint's seq are caught by that signed checkpoint;
//   records missing after the last checkpoint are caught only by the head row (seq, hash), written
//   in the same transaction as every append. The head row is not signed: someone able to write the
//   database can truncate to the last checkpoint and rewrite the head, or rewrite records after
//   the last checkpoint together with their hashes and the head. Signed guarantees end at the last
//   checkpoint; copying checkpoints (or `audit verify --json` output) off the host closes the rest.
import { importPublicKeyDer, verifyMessage } from '../../crypto/index.ts';
import { auditGenesisHash, chainHash, sameHash } from './chain.ts';
import {
  AUDIT_CHECKPOINT_FORMAT_VERSION, AUDIT_SIGNATURE_SCHEME, checkpointMessage, type AuditCheckpoint, type AuditSigningPublicKey,
} from './checkpoint.ts';
import { decodeAuditRecord } from './record.ts';

/** A record as stored: its place, its canonical text and the chain hash after it. */
export interface StoredAuditRecord {
  seq: number;
  text: string;
  hash: Buffer;
}

/** The head row: the last record appended and the last checkpoint written, moved in the same transactions. */
export interface AuditHead {
  seq: number;
  hash: Buffer;
  checkpointNumber: number;
  checkpointSeq: number;
}

interface VerificationCounts {
  /** Records that verified (all of them when intact). */
  records: number;
  /** Checkpoints whose signature and head verified. */
  checkpoints: number;
  /** The newest record vouched for by a verified checkpoint (0 when none). */
  lastCheckpointSeq: number;
}

export type AuditChainVerification =
  | (VerificationCounts & { ok: true; lastSeq: number; chainHead: Buffer })
  | (VerificationCounts & { ok: false; firstBadSeq: number; reason: string });

type PublicKey = ReturnType<typeof importPublicKeyDer>;

function importKeys(publicKeys: Iterable<AuditSigningPublicKey>): Map<string, PublicKey> {
  const keys = new Map<string, PublicKey>();
  for (const { keyId, publicKeyDer } of publicKeys) {
    try {
      const key = importPublicKeyDer(publicKeyDer);
      if (key.asymmetricKeyType === 'ed25519') keys.set(keyId, key);
    } catch {
      // An unreadable key verifies nothing; checkpoints signed with it fail as unknown-key.
    }
  }
  return keys;
}

function range(first: number, last: number, noun: string): string {
  return first === last ? `${noun} ${first} was` : `${noun}s ${first}..${last} were`;
}

/**
 * Walks the records in seq order and the checkpoints in number order, together, in constant
 * memory. `head`, when given, extends truncation and insertion checks past the last checkpoint.
 */
export function verifyAuditChain(records: Iterable<StoredAuditRecord>, checkpoints: Iterable<AuditCheckpoint>,
  publicKeys: Iterable<AuditSigningPublicKey>, options: { head?: AuditHead } = {}): AuditChainVerification {
  const keys = importKeys(publicKeys);
  const checkpointIterator = checkpoints[Symbol.iterator]();
  const nextCheckpoint = (): AuditCheckpoint | undefined => {
    const step = checkpointIterator.next();
    return step.done ? undefined : step.value;
  };

  let pending = nextCheckpoint();
  let expectedNumber = 1;
  let lastCheckpointSeq = 0;
  let verifiedCheckpoints = 0;
  let expectedSeq = 1;
  let previous = auditGenesisHash();
  let beforePrevious = previous;

  const counts = (): VerificationCounts => ({ records: expectedSeq - 1, checkpoints: verifiedCheckpoints, lastCheckpointSeq });
  const fail = (firstBadSeq: number, reason: string): AuditChainVerification => ({ ok: false, firstBadSeq, reason, ...counts() });

  /** Why a checkpoint is bad, or undefined; `headThere` is the recomputed hash at its seq, when the records reach it. */
  const checkpointProblem = (checkpoint: AuditCheckpoint, headThere: Buffer | undefined): string | undefined => {
    const at = `checkpoint ${checkpoint.number} (at record ${checkpoint.seq})`;
    if (checkpoint.number > expectedNumber) return `${range(expectedNumber, checkpoint.number - 1, 'checkpoint')} removed`;
    if (checkpoint.number < expectedNumber) return `checkpoint ${checkpoint.number} appears out of order`;
    if (checkpoint.formatVersion !== AUDIT_CHECKPOINT_FORMAT_VERSION) return `${at} has unknown format version ${checkpoint.formatVersion}`;
    if (checkpoint.seq <= lastCheckpointSeq) return `${at} does not come after checkpoint ${checkpoint.number - 1} (at record ${lastCheckpointSeq})`;
    const key = keys.get(checkpoint.keyId);
    if (!key) return `${at} is signed with an unknown audit signing key '${checkpoint.keyId}'`;
    if (!verifyMessage(AUDIT_SIGNATURE_SCHEME, key, checkpointMessage(checkpoint), checkpoint.signature)) {
      return `${at} has an invalid signature (forged or altered)`;
    }
    if (headThere && !sameHash(headThere, checkpoint.chainHead)) {
      return `${at} does not match the records: ${range(lastCheckpointSeq + 1, checkpoint.seq, 'record')} rewritten`;
    }
    return undefined;
  };

  for (const row of records) {
    if (row.seq !== expectedSeq) {
      if (row.seq > expectedSeq) {
        return fail(expectedSeq, `${range(expectedSeq, row.seq - 1, 'record')} removed (the log jumps from ${expectedSeq - 1} to ${row.seq})`);
      }
      return fail(row.seq, `record ${row.seq} appears twice or out of order`);
    }
    let claimedSeq: number;
    try {
      claimedSeq = decodeAuditRecord(row.text).seq;
    } catch (error) {
      return fail(row.seq, `record ${row.seq} was modified (${(error as Error).message})`);
    }
    if (claimedSeq !== row.seq) {
      // The original record N-1, still chained onto record N-2: so the record before it was slipped in.
      if (claimedSeq === row.seq - 1 && sameHash(chainHash(beforePrevious, row.text), row.hash)) {
        return fail(row.seq - 1, `record ${row.seq - 1} was inserted (the original record ${row.seq - 1} now sits at ${row.seq})`);
      }
      return fail(row.seq, `record ${row.seq} is out of place: its place holds record ${claimedSeq} (records were reordered, removed or inserted)`);
    }
    const hash = chainHash(previous, row.text);
    if (!sameHash(hash, row.hash)) return fail(row.seq, `record ${row.seq} was modified (hash mismatch)`);
    beforePrevious = previous;
    previous = hash;
    expectedSeq += 1;
    while (pending && pending.seq <= row.seq) {
      // A checkpoint behind the current record was skipped over: its seq is out of order.
      const problem = pending.seq === row.seq ? checkpointProblem(pending, hash)
        : checkpointProblem(pending, undefined) ?? `checkpoint ${pending.number} (at record ${pending.seq}) is out of order`;
      if (problem) return fail(lastCheckpointSeq + 1, problem);
      lastCheckpointSeq = pending.seq;
      verifiedCheckpoints += 1;
      expectedNumber += 1;
      pending = nextCheckpoint();
    }
  }

  const lastSeq = expectedSeq - 1;
  if (pending) {
    const problem = checkpointProblem(pending, undefined);
    if (problem) return fail(lastCheckpointSeq + 1, problem);
    return fail(lastSeq + 1, `the log is truncated: checkpoint ${pending.number} vouches for records up to ${pending.seq} but the log ends at ${lastSeq}`);
  }
  const { head } = options;
  if (head) {
    if (head.seq > lastSeq) {
      return fail(lastSeq + 1, `the log is truncated: ${range(lastSeq + 1, head.seq, 'record')} removed after the last checkpoint`);
    }
    if (head.seq < lastSeq) {
      return fail(head.seq + 1, `${range(head.seq + 1, lastSeq, 'record')} inserted after the log's head (${head.seq})`);
    }
    if (!sameHash(head.hash, previous)) {
      return fail(lastCheckpointSeq + 1, `the chain does not end at the recorded head: ${range(lastCheckpointSeq + 1, lastSeq, 'record')} rewritten`);
    }
    if (head.checkpointNumber > verifiedCheckpoints) {
      return fail(lastCheckpointSeq + 1, `${range(verifiedCheckpoints + 1, head.checkpointNumber, 'checkpoint')} removed (the last was at record ${head.checkpointSeq})`);
    }
    if (head.checkpointNumber < verifiedCheckpoints || head.checkpointSeq !== lastCheckpointSeq) {
      return fail(lastCheckpointSeq + 1, `the recorded head names checkpoint ${head.checkpointNumber} at record ${head.checkpointSeq}, which the checkpoints do not match`);
    }
  }
  return { ok: true, lastSeq, chainHead: previous, ...counts() };
}
