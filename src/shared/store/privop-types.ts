// Records of the privileged-operation relay and campaigns, shared by every store implementation.
// Request files appear here only wrapped; result chunks are ciphertext sealed to the requester's key.
import type { WrappedSecret } from '../crypto/index.ts';

export type RelayStatus = 'pending' | 'delivered' | 'completed' | 'refused' | 'expired';

export interface RelayRecord {
  relayId: string;
  accountId: string;
  hostId: string;
  campaignId?: string;
  submittedBy: string;
  /** base64url SHA-256 of the request's JCS; for an encrypted request, of the file as submitted. */
  requestDigest: string;
  /** Undefined when the request is encrypted to the host (the server cannot see it). */
  operation?: string;
  request: WrappedSecret;
  status: RelayStatus;
  createdAt: Date;
  expiresAt: Date;
  deliveredAt?: Date;
  finishedAt?: Date;
  refusal?: { code: string; message: string };
  resultBytes: number;
}

export type NewRelay = Omit<RelayRecord, 'status' | 'deliveredAt' | 'finishedAt' | 'refusal' | 'resultBytes'>;

export interface CampaignRecord {
  campaignId: string;
  accountId: string;
  className: string;
  operation: string;
  startedBy: string;
  createdAt: Date;
  expiresAt: Date;
  hostCount: number;
}

export interface CampaignSignerRecord {
  accountId: string;
  certificatePem: string;
  notAfter: Date;
  privateKey: WrappedSecret;
  createdAt: Date;
}

/** What appending a chunk found: stored, or why not (the relay is not awaiting a result, a gap, too large). */
export type AppendOutcome = 'stored' | 'not-delivering' | 'out-of-order' | 'too-large';

export interface PrivopStore {
  createRelays(relays: NewRelay[], campaign?: CampaignRecord): Promise<void>;
  getRelay(relayId: string): Promise<RelayRecord | undefined>;
  /** Relays of a host still to be run (pending, or delivered and not finished). */
  openRelaysOf(hostId: string): Promise<RelayRecord[]>;
  /** Pending relays made after `seq` (the tail other replicas' submissions reach connected hosts by), with the last seq seen. */
  pendingAfter(seq: number, limit: number): Promise<{ relays: RelayRecord[]; lastSeq: number }>;
  latestRelaySeq(): Promise<number>;
  /** pending → delivered; a delivered relay stays delivered. False when finished. */
  markDelivered(relayId: string, hostId: string, at: Date): Promise<boolean>;
  /** pending|delivered → refused (its partial result dropped). False when already finished. */
  markRefused(relayId: string, hostId: string, refusal: { code: string; message: string }, at: Date): Promise<boolean>;
  appendResultChunk(relayId: string, hostId: string, offset: number, data: Buffer, maxBytes: number): Promise<AppendOutcome>;
  /** delivered → completed when `totalBytes` are all stored. */
  completeResult(relayId: string, hostId: string, totalBytes: number, at: Date): Promise<boolean>;
  /** The stored result bytes from `offset`, at most `length`. */
  readResult(relayId: string, offset: number, length: number): Promise<Buffer>;
  deleteRelay(relayId: string): Promise<boolean>;
  /** Open relays past their expiry become expired (returned); finished relays older than `finishedBefore` are deleted. */
  expireRelays(now: Date, finishedBefore: Date, limit: number): Promise<{ expired: RelayRecord[]; deleted: number }>;
  getCampaign(campaignId: string): Promise<CampaignRecord | undefined>;
  relaysOfCampaign(campaignId: string): Promise<RelayRecord[]>;
  getCampaignSigner(accountId: string): Promise<CampaignSignerRecord | undefined>;
  /**
   * Stores an account's signer: the first one written wins two replicas racing; `replace` (a renewal) takes the place
   * of an older one only if it lasts longer. Returns the one stored.
   */
  putCampaignSigner(record: CampaignSignerRecord, replace: boolean): Promise<CampaignSignerRecord>;
}
