// The privileged-operation relay: couriers hand the server request files for hosts of their account, the server
// announces them on the host's push stream, the host fetches, judges, runs and uploads the sealed result in chunks,
// and the courier downloads it. Server-side audit of every step. Campaigns (one request per host of a class) build on it.
// Must never hold or hand out anything of a result but its ciphertext, nor let a host touch another host's relay.
import type { AuditLog } from '../../shared/audit/index.ts';
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import { randomUuid, zeroize, type Keyring } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { hostUri } from '../../shared/fleet-wire.ts';
import type { Logger } from '../../shared/log.ts';
import {
  SECRET_PURPOSES, type FleetStore, type HostRecord, type NewRelay, type PrivopStore, type RelayRecord,
} from '../../shared/store/index.ts';
import { hostArn } from '../fleet/index.ts';
import { describeRelay, readSubmission, type RelayView } from './domain/relay.ts';

/** Largest slice of a result one GetResult answers, and one upload call carries. */
export const MAX_RESULT_SLICE_BYTES = 4 * 1024 * 1024;
export const MAX_UPLOAD_CHUNK_BYTES = 1024 * 1024;
export const DEFAULT_MAX_RESULT_BYTES = 1024 * 1024 * 1024;
/** Finished relays (and their results) are kept this long for the courier to collect. */
const FINISHED_RETENTION_MS = 7 * 86_400_000;
const EXPIRY_BATCH = 500;
const TAIL_BATCH = 1000;

const notFound = (relayId: string) => new UserError('NotFoundException', `No relayed request ${relayId} in this account.`, 404);

/** How the relay reaches a connected host: the fleet push hub's non-key-ring event. */
export interface HostNotifier {
  notify(hostId: string, data: { RelayId: string }): boolean;
}

export interface PrivopServiceOptions {
  store: PrivopStore;
  fleet: FleetStore;
  keyring: Keyring;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  audit?: AuditLog;
  notifier: HostNotifier;
  maxResultBytes?: number;
  now?: () => Date;
}

export class PrivopService {
  readonly #options: PrivopServiceOptions;
  readonly #now: () => Date;
  readonly #maxResultBytes: number;
  #tailSeq = 0;
  /** Relays this process announced itself: the tail (for other replicas' submissions) skips them. */
  readonly #announced = new Set<string>();

  constructor(options: PrivopServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#maxResultBytes = options.maxResultBytes ?? DEFAULT_MAX_RESULT_BYTES;
  }

  async start(): Promise<void> {
    this.#tailSeq = await this.#options.store.latestRelaySeq();
  }

  async #require(caller: Caller, action: string, resource: string): Promise<void> {
    await this.#options.authorizer.require(caller, { action, resource, resourceAccountId: caller.accountId });
  }

  #relayArn(accountId: string, relayId: string): string {
    return `arn:aws:trustplane:${this.#options.region}:${accountId}:privop-relay/${relayId}`;
  }

  async #audit(entry: { accountId: string; principalArn: string; operation: string; resource: string; decision: 'Allow' | 'ExplicitDeny';
    statement: string; outcome: string }): Promise<void> {
    await this.#options.audit?.record({ requestId: randomUuid(), accountId: entry.accountId, principalArn: entry.principalArn, service: 'trustplane',
      operation: entry.operation, resource: entry.resource, decision: entry.decision, decidingStatement: entry.statement, outcome: entry.outcome,
      latencyMs: 0 }).catch((error: unknown) => this.#options.logger.error({ err: error, operation: entry.operation }, 'privop relay event could not be audited'));
  }

  /** A host of the caller's account, active; otherwise a 404 that says nothing of other accounts. */
  async #hostOfAccount(accountId: string, hostId: string): Promise<HostRecord> {
    const host = await this.#options.fleet.findHost(hostId);
    if (!host || host.accountId !== accountId) throw new UserError('NotFoundException', `No host ${hostId} in this account.`, 404);
    if (host.status !== 'active') throw new UserError('ConflictException', `Host ${hostId} is ${host.status}: it runs no privileged operations.`, 409);
    return host;
  }

  /** Wraps and records relays (and their campaign), then announces them to the hosts connected here. */
  async recordRelays(relays: Array<Omit<NewRelay, 'request'> & { bytes: Buffer }>, campaign?: Parameters<PrivopStore['createRelays']>[1]): Promise<void> {
    const records: NewRelay[] = [];
    for (const relay of relays) {
      const { bytes, ...rest } = relay;
      records.push({ ...rest, request: await this.#options.keyring.wrapSecret(SECRET_PURPOSES.privopRelayRequest, relay.relayId, bytes) });
    }
    await this.#options.store.createRelays(records, campaign);
    for (const relay of records) this.#announce(relay.hostId, relay.relayId);
  }

  #announce(hostId: string, relayId: string): void {
    this.#announced.add(relayId);
    this.#options.notifier.notify(hostId, { RelayId: relayId });
  }

  // ---- the courier's side (SigV4) --------------------------------------------------------------

  async submit(caller: Caller, file: unknown, ttlSeconds?: number): Promise<{ RelayId: string; HostId: string; ExpiresAt: Date }> {
    const now = this.#now();
    const submission = readSubmission(file, now, ttlSeconds);
    await this.#require(caller, 'privop:SubmitRequest', hostArn(this.#options.region, caller.accountId, submission.hostId));
    await this.#hostOfAccount(caller.accountId, submission.hostId);
    const relayId = `r-${randomUuid()}`;
    await this.recordRelays([{ relayId, accountId: caller.accountId, hostId: submission.hostId, submittedBy: caller.principalArn,
      requestDigest: submission.digest, operation: submission.operation, createdAt: now, expiresAt: submission.expiresAt, bytes: submission.bytes }]);
    await this.#audit({ accountId: caller.accountId, principalArn: caller.principalArn, operation: 'PrivopRelaySubmitted',
      resource: hostArn(this.#options.region, caller.accountId, submission.hostId), decision: 'Allow', outcome: 'Success',
      statement: `relay ${relayId} request ${submission.digest} ${submission.encrypted ? '(encrypted)' : `operation ${submission.operation}`}` });
    return { RelayId: relayId, HostId: submission.hostId, ExpiresAt: submission.expiresAt };
  }

  async #relayFor(caller: Caller, action: string, relayId: string): Promise<RelayRecord> {
    await this.#require(caller, action, this.#relayArn(caller.accountId, relayId));
    const relay = await this.#options.store.getRelay(relayId);
    if (!relay || relay.accountId !== caller.accountId) throw notFound(relayId);
    return relay;
  }

  async describe(caller: Caller, relayId: string): Promise<RelayView> {
    return describeRelay(await this.#relayFor(caller, 'privop:DescribeRequest', relayId));
  }

  /** A slice of a completed relay's sealed result; the last slice is audited as the result collected. */
  async getResult(caller: Caller, relayId: string, offset: number, length?: number): Promise<{ Data: Buffer; Offset: number; More: boolean; TotalBytes: number }> {
    const relay = await this.#relayFor(caller, 'privop:GetResult', relayId);
    if (relay.status !== 'completed') {
      throw new UserError('PrivopResultNotReady', `Relay ${relayId} is ${relay.status}${relay.refusal ? ` (${relay.refusal.code})` : ''}: no result to collect.`, 409);
    }
    if (offset > relay.resultBytes) throw new UserError('ValidationException', `Offset ${offset} is past the result's ${relay.resultBytes} bytes.`);
    const slice = Math.min(length ?? MAX_RESULT_SLICE_BYTES, MAX_RESULT_SLICE_BYTES);
    const data = await this.#options.store.readResult(relayId, offset, slice);
    const more = offset + data.length < relay.resultBytes;
    if (!more) {
      await this.#audit({ accountId: caller.accountId, principalArn: caller.principalArn, operation: 'PrivopRelayResultCollected',
        resource: this.#relayArn(caller.accountId, relayId), decision: 'Allow', outcome: 'Success',
        statement: `relay ${relayId} host ${relay.hostId} request ${relay.requestDigest} ${relay.resultBytes} bytes` });
    }
    return { Data: data, Offset: offset, More: more, TotalBytes: relay.resultBytes };
  }

  async deleteRelay(caller: Caller, relayId: string): Promise<void> {
    await this.#relayFor(caller, 'privop:DeleteRequest', relayId);
    await this.#options.store.deleteRelay(relayId);
  }

  // ---- the host's side (mutual TLS) ------------------------------------------------------------

  async #hostRelay(host: HostRecord, relayId: string): Promise<RelayRecord> {
    const relay = await this.#options.store.getRelay(relayId);
    if (!relay || relay.hostId !== host.hostId) throw notFound(relayId);
    return relay;
  }

  /** The request file for the host that is to run it; a finished relay is not handed out again. */
  async fetchForHost(host: HostRecord, relayId: string): Promise<{ Request: unknown }> {
    const relay = await this.#hostRelay(host, relayId);
    if (!(await this.#options.store.markDelivered(relayId, host.hostId, this.#now()))) {
      throw new UserError('PrivopRelayFinished', `Relay ${relayId} is ${relay.status}.`, 409);
    }
    const bytes = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.privopRelayRequest, relayId, relay.request);
    try {
      return { Request: JSON.parse(bytes.toString('utf8')) as unknown };
    } finally {
      zeroize(bytes);
    }
  }

  async refusedByHost(host: HostRecord, relayId: string, code: string, message: string): Promise<void> {
    const relay = await this.#hostRelay(host, relayId);
    const changed = await this.#options.store.markRefused(relayId, host.hostId, { code, message }, this.#now());
    if (!changed) return;
    await this.#audit({ accountId: host.accountId, principalArn: hostUri(host.accountId, host.hostId), operation: 'PrivopRelayRefused',
      resource: this.#relayArn(host.accountId, relayId), decision: 'ExplicitDeny', outcome: code,
      statement: `relay ${relayId} request ${relay.requestDigest} refused by the host: ${code}: ${message}` });
  }

  /** One slice of the sealed result, in order; `Final` with the total completes the relay. */
  async resultFromHost(host: HostRecord, input: { RelayId: string; Offset: number; Data: Buffer; Final?: boolean; TotalBytes?: number }):
    Promise<{ Stored: number; Completed: boolean }> {
    const relay = await this.#hostRelay(host, input.RelayId);
    if (input.Data.length > 0) {
      if (input.Offset === 0 && relay.status === 'delivered') {
        await this.#audit({ accountId: host.accountId, principalArn: hostUri(host.accountId, host.hostId), operation: 'PrivopRelayAccepted',
          resource: this.#relayArn(host.accountId, input.RelayId), decision: 'Allow', outcome: 'Success',
          statement: `relay ${input.RelayId} request ${relay.requestDigest} accepted by the host` });
      }
      const outcome = await this.#options.store.appendResultChunk(input.RelayId, host.hostId, input.Offset, input.Data, this.#maxResultBytes);
      if (outcome === 'not-delivering') throw new UserError('PrivopRelayFinished', `Relay ${input.RelayId} is not awaiting a result.`, 409);
      if (outcome === 'out-of-order') throw new UserError('PrivopResultOutOfOrder', `Relay ${input.RelayId}: the result does not continue at ${input.Offset}.`, 409);
      if (outcome === 'too-large') {
        await this.refusedByHost(host, input.RelayId, 'PrivopResultTooLarge', `The sealed result is larger than this server keeps (${this.#maxResultBytes} bytes).`);
        throw new UserError('PrivopResultTooLarge', `The sealed result is larger than this server keeps (${this.#maxResultBytes} bytes).`, 413);
      }
    }
    let completed = false;
    if (input.Final) {
      completed = await this.#options.store.completeResult(input.RelayId, host.hostId, input.TotalBytes ?? -1, this.#now());
      if (!completed) throw new UserError('PrivopResultIncomplete', `Relay ${input.RelayId}: the result is not complete at ${input.TotalBytes} bytes.`, 409);
    }
    return { Stored: input.Offset + input.Data.length, Completed: completed };
  }

  /** A host's stream opened: it is told of every relay still waiting for it (a restart mid-run meets its nonce record). */
  async announceTo(host: HostRecord): Promise<void> {
    for (const relay of await this.#options.store.openRelaysOf(host.hostId)) this.#options.notifier.notify(host.hostId, { RelayId: relay.relayId });
  }

  /** Every second: reaches hosts connected here with relays other replicas recorded; expires and forgets old relays. */
  async runDueWork(): Promise<void> {
    for (;;) {
      const { relays, lastSeq } = await this.#options.store.pendingAfter(this.#tailSeq, TAIL_BATCH);
      if (lastSeq === this.#tailSeq) break;
      this.#tailSeq = lastSeq;
      for (const relay of relays) {
        if (!this.#announced.delete(relay.relayId)) this.#options.notifier.notify(relay.hostId, { RelayId: relay.relayId });
      }
    }
    this.#announced.clear();
    const now = this.#now();
    const { expired } = await this.#options.store.expireRelays(now, new Date(now.getTime() - FINISHED_RETENTION_MS), EXPIRY_BATCH);
    for (const relay of expired) {
      await this.#audit({ accountId: relay.accountId, principalArn: 'trustplane:privop-relay', operation: 'PrivopRelayExpired',
        resource: this.#relayArn(relay.accountId, relay.relayId), decision: 'ExplicitDeny', outcome: 'Expired',
        statement: `relay ${relay.relayId} host ${relay.hostId} request ${relay.requestDigest} expired unfinished` });
    }
  }
}
