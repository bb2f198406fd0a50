// Signed checkpoints of the chain (number, record seq, chain head, time) and when one is due.
// Must never sign or accept a checkpoint whose message could be read as another kind of message.
import { canonicalJson } from './canonical-json.ts';
import type { SignatureScheme } from '../../crypto/index.ts';

export const AUDIT_CHECKPOINT_FORMAT_VERSION = 1;

/** Checkpoints are Ed25519 signatures: small, fast, deterministic, no parameters to get wrong. */
export const AUDIT_SIGNATURE_SCHEME: SignatureScheme = { kind: 'ed25519' };

/** Domain separation: this prefix makes a checkpoint signature useless as any other signature. */
const CHECKPOINT_CONTEXT = 'trustplane/audit-checkpoint/v1\n';

export interface AuditCheckpointBody {
  /** 1, 2, 3, ... without gaps, so a removed checkpoint shows. */
  number: number;
  /** The record the checkpoint vouches for, with every record before it. */
  seq: number;
  /** hash_seq: the chain head after that record. */
  chainHead: Buffer;
  /** When it was signed, in milliseconds since the epoch. */
  time: number;
  keyId: string;
  formatVersion: number;
}

export interface AuditCheckpoint extends AuditCheckpointBody {
  signature: Buffer;
}

/** The public half of an audit signing key, as stored in clear beside the log. */
export interface AuditSigningPublicKey {
  keyId: string;
  /** SubjectPublicKeyInfo, DER. */
  publicKeyDer: Buffer;
}

/** The exact bytes signed: context line, then the canonical JSON of the body (head in hex). */
export function checkpointMessage(body: AuditCheckpointBody): Buffer {
  return Buffer.from(CHECKPOINT_CONTEXT + canonicalJson({
    chainHead: body.chainHead.toString('hex'), formatVersion: body.formatVersion, keyId: body.keyId,
    number: body.number, seq: body.seq, time: body.time,
  }), 'utf8');
}

export interface CheckpointPolicy {
  /** Sign once this many records have been appended since the last checkpoint. */
  everyRecords: number;
  /** ... or once this long has passed since the last one, if any record is unsigned. */
  intervalMs: number;
}

export const DEFAULT_CHECKPOINT_POLICY: CheckpointPolicy = { everyRecords: 1000, intervalMs: 60_000 };

export interface CheckpointState {
  headSeq: number;
  checkpointSeq: number;
  /** When the last checkpoint was signed (or the log opened, before the first one). */
  lastCheckpointAt: number;
  now: number;
}

export function isCheckpointDue(policy: CheckpointPolicy, state: CheckpointState): boolean {
  const unsigned = state.headSeq - state.checkpointSeq;
  if (unsigned <= 0) return false;
  return unsigned >= policy.everyRecords || state.now - state.lastCheckpointAt >= policy.intervalMs;
}
