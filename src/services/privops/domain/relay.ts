// What the relay makes of a submitted request file, and how a relay is described: pure, no I/O.
// Must never judge a request's signature or trust (the host does), only its shape and where it goes.
import { sha256 } from '../../../shared/crypto/index.ts';
import { UserError } from '../../../shared/errors.ts';
import { canonicalRequestJson, parsePrivopRequestFile, MAX_PRIVOP_WINDOW_SECONDS } from '../../../shared/privop-wire.ts';
import type { RelayRecord } from '../../../shared/store/index.ts';

/** The largest request file the relay keeps (a plain request with a 16 MiB bulk parameter does not fit the API body anyway). */
export const MAX_RELAYED_REQUEST_BYTES = 1024 * 1024;
/** A relayed result is uploaded after the host ran it: the request's window plus this, for the upload. */
export const RESULT_UPLOAD_GRACE_MS = 15 * 60_000;
/** An encrypted request hides its window: the relay keeps it this long unless the submitter says otherwise. */
export const DEFAULT_ENCRYPTED_TTL_SECONDS = 86_400;

const HOST_ID = /^h-[0-9a-f]{1,64}$/;

/** A submission the relay can route: to which host, under which digest, asking what (when the server may see it). */
export interface RelaySubmission {
  hostId: string;
  digest: string;
  operation?: string;
  encrypted: boolean;
  expiresAt: Date;
  /** The bytes kept (wrapped) and handed to the host as they came. */
  bytes: Buffer;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads a request file handed to the relay: a signed request for one host (its target and window read, its signature
 * left to the host), or a request encrypted to the host's request key (`{"Encrypted": {"HostId", …}}`, opaque but for
 * the host id). A request for a class is refused: a campaign reaches a class, one request per host.
 */
export function readSubmission(file: unknown, now: Date, ttlSeconds?: number): RelaySubmission {
  if (!isObject(file)) throw new UserError('PrivopMalformedRequest', 'The request file must be a JSON object.');
  const bytes = Buffer.from(JSON.stringify(file));
  if (bytes.length > MAX_RELAYED_REQUEST_BYTES) {
    throw new UserError('PrivopMalformedRequest', `The request file is larger than ${MAX_RELAYED_REQUEST_BYTES} bytes.`);
  }
  if ('Encrypted' in file) {
    const encrypted = file.Encrypted;
    if (!isObject(encrypted) || typeof encrypted.HostId !== 'string' || !HOST_ID.test(encrypted.HostId)) {
      throw new UserError('PrivopMalformedRequest', 'An encrypted request file must be {"Encrypted": {"HostId": "h-…", …}}.');
    }
    const ttl = ttlSeconds ?? DEFAULT_ENCRYPTED_TTL_SECONDS;
    return { hostId: encrypted.HostId, digest: sha256(canonicalRequestJson(file)).toString('base64url'), encrypted: true,
      expiresAt: new Date(now.getTime() + ttl * 1000), bytes };
  }
  const parsed = parsePrivopRequestFile(file);
  const target = parsed.request.Target;
  if (!('HostId' in target)) {
    throw new UserError('PrivopClassTargetUnsupported',
      `The relay delivers requests for one host; to reach class ${target.Class}, start a campaign (trustplane privop campaign).`);
  }
  const notAfter = Date.parse(parsed.request.NotAfter);
  if (notAfter <= now.getTime()) throw new UserError('PrivopExpired', `The request expired at ${parsed.request.NotAfter}.`);
  const ceiling = now.getTime() + MAX_PRIVOP_WINDOW_SECONDS * 1000;
  return { hostId: target.HostId, digest: parsed.digest.toString('base64url'), operation: parsed.request.Operation, encrypted: false,
    expiresAt: new Date(Math.min(notAfter, ceiling) + RESULT_UPLOAD_GRACE_MS), bytes };
}

/** A relay as DescribeRequest answers it. */
export function describeRelay(relay: RelayRecord) {
  return { RelayId: relay.relayId, HostId: relay.hostId, Status: relay.status, RequestDigest: relay.requestDigest, Operation: relay.operation,
    CampaignId: relay.campaignId, SubmittedBy: relay.submittedBy, CreatedAt: relay.createdAt, ExpiresAt: relay.expiresAt,
    DeliveredAt: relay.deliveredAt, FinishedAt: relay.finishedAt,
    Refusal: relay.refusal && { Code: relay.refusal.code, Message: relay.refusal.message },
    ResultBytes: relay.status === 'completed' ? relay.resultBytes : undefined };
}

export type RelayView = ReturnType<typeof describeRelay>;
