// What auditing costs KMS Encrypt: two dev servers, one with TRUSTPLANE_AUDIT=off, driven in turn with
// the same SigV4-signed Encrypt requests. Must never load both at once, nor report a figure it has not checked.
import { randomBytes } from 'node:crypto';
import { openAuditLogReadOnly } from '../../src/shared/store/sqlite-audit.ts';
import type { TestServer } from '../../test/helpers/server.ts';
import type { BenchLifecycle } from './lifecycle.ts';
import { mergeReasons, runLoad, type ErrorReasons, type LoadResult, type Outcome } from './load-generator.ts';
import { runLoadWithCpu } from './process-cpu.ts';
import { createSymmetricKey, judgeReply, keepAliveAgent, SignedJsonClient } from './signed-json-client.ts';
import { AUDIT_OFF_NOTICE, MAX_REQUESTS_PER_MEASUREMENT, REQUEST_TIMEOUT_MS, serverLogProblems } from './settings.ts';

export type Side = 'audited' | 'unaudited';

export interface AuditCostOptions {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  rounds: number;
  /** Progress lines (stderr). */
  progress(line: string): void;
}

export interface SideRound {
  round: number;
  side: Side;
  result: LoadResult;
  /** Requests (ok or not) and errors of the unrecorded warm-up before it. */
  warmupRequests: number;
  warmupErrors: number;
  /** Server CPU time over the measured phase only, per request completed in it. */
  serverCpuMicrosPerRequest?: number;
  /** As % of one core. */
  serverCpuPercent?: number;
  clientCpuPercent: number;
  /** Every other process on the machine (and steal), % of one core. */
  otherCpuPercent?: number;
  /** Audit records the server's log grew by over warm-up + measurement (undefined if unreadable). */
  auditRecords?: number;
}

export interface SideSummary {
  side: Side;
  /** Median over the rounds (the figure compared). */
  requestsPerSecond: number;
  bestRequestsPerSecond: number;
  serverCpuMicrosPerRequest?: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  errorReasons: ErrorReasons;
  auditRecords?: number;
}

export interface AuditCostResult {
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  rounds: SideRound[];
  audited: SideSummary;
  unaudited: SideSummary;
  /** audited / unaudited requests per second (medians). */
  throughputRatio: number;
  /** 100 × (1 − throughputRatio). */
  throughputCostPercent: number;
  /** audited / unaudited server CPU per request (medians). */
  serverCpuRatio?: number;
  /** What that CPU ratio costs a server-bound machine in throughput: 100 × (1 − 1/ratio). */
  serverCpuCostPercent?: number;
  /** Errors, failed sanity checks, server warnings: any entry makes the figures invalid. */
  problems: string[];
}

function median(values: number[]): number {
  const sorted = values.slice().sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function definedMedian(values: Array<number | undefined>): number | undefined {
  const known = values.filter((value): value is number => value !== undefined && Number.isFinite(value));
  return known.length === values.length && known.length > 0 ? median(known) : undefined;
}

/** Audit records in a home's log so far (read-only, beside the running server). */
function auditHeadSeq(home: string): number | undefined {
  try {
    const store = openAuditLogReadOnly(home);
    try {
      return store.readHead().seq;
    } finally {
      store.close();
    }
  } catch {
    return undefined;
  }
}

interface Target {
  side: Side;
  server: TestServer;
  pid: number | undefined;
  issue(): Promise<Outcome>;
}

async function prepare(side: Side, server: TestServer, concurrency: number, lifecycle: BenchLifecycle): Promise<Target> {
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const agent = keepAliveAgent(concurrency);
  lifecycle.defer(() => agent.destroy());
  const client = new SignedJsonClient({ endpoint: server.url, region: server.region, service: 'kms', credentials, agent,
    timeoutMs: REQUEST_TIMEOUT_MS });
  const keyId = await createSymmetricKey(client, `bench/policy.ts ${side}`, side);
  const plaintext = randomBytes(32).toString('base64');
  const context = { purpose: 'bench', tenant: 'acme' };
  const issue = async () => judgeReply(await client.call('TrentService.Encrypt', { KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }),
    (body) => typeof body.CiphertextBlob === 'string' && typeof body.KeyId === 'string');
  const first = await issue();
  if (!first.ok) throw new Error(`${side}: the first Encrypt failed: ${first.reason}`);
  return { side, server, pid: server.process.pid, issue };
}

async function measureRound(target: Target, round: number, options: AuditCostOptions): Promise<SideRound> {
  const limits = { concurrency: options.concurrency, warmupMs: 0, maxRequests: MAX_REQUESTS_PER_MEASUREMENT };
  const headBefore = auditHeadSeq(target.server.home);
  // Warm-up as its own unrecorded run, so CPU is sampled around the measured phase alone.
  const warmup = options.warmupSeconds > 0
    ? await runLoad(target.issue, { ...limits, durationMs: options.warmupSeconds * 1000 }) : undefined;
  const { result, serverCpuMicrosPerRequest, serverCpuPercent, clientCpuPercent, otherCpuPercent } =
    await runLoadWithCpu(target.issue, { ...limits, durationMs: options.seconds * 1000 }, target.pid);
  const headAfter = auditHeadSeq(target.server.home);
  return {
    round, side: target.side, result,
    warmupRequests: warmup?.completed ?? 0, warmupErrors: warmup?.errors ?? 0,
    serverCpuMicrosPerRequest, serverCpuPercent, clientCpuPercent, otherCpuPercent,
    auditRecords: headBefore !== undefined && headAfter !== undefined ? headAfter - headBefore : undefined,
  };
}

function summarise(side: Side, rounds: SideRound[]): SideSummary {
  const mine = rounds.filter((entry) => entry.side === side);
  const rates = mine.map((entry) => entry.result.requestsPerSecond);
  const records = mine.map((entry) => entry.auditRecords);
  return {
    side,
    requestsPerSecond: median(rates),
    bestRequestsPerSecond: Math.max(...rates),
    serverCpuMicrosPerRequest: definedMedian(mine.map((entry) => entry.serverCpuMicrosPerRequest)),
    p50Ms: median(mine.map((entry) => entry.result.p50Ms)),
    p99Ms: median(mine.map((entry) => entry.result.p99Ms)),
    requests: mine.reduce((sum, entry) => sum + entry.warmupRequests + entry.result.completed, 0),
    errors: mine.reduce((sum, entry) => sum + entry.warmupErrors + entry.result.errors, 0),
    errorReasons: mergeReasons(mine.map((entry) => entry.result.errorReasons)),
    auditRecords: records.every((value) => value !== undefined) ? records.reduce((sum, value) => sum! + value!, 0) : undefined,
  };
}

/**
 * Starts an unaudited and an audited server (own temporary homes, 127.0.0.1), and measures Encrypt on each
 * in interleaved rounds: the order swaps every round (A B, B A, ...) so drift in machine load hits both alike.
 */
export async function measureEncryptAuditCost(options: AuditCostOptions, lifecycle: BenchLifecycle): Promise<AuditCostResult> {
  options.progress('starting two trustplane dev servers (audit on, audit off) ...');
  // Explicit both ways, so a TRUSTPLANE_AUDIT inherited from the caller's shell cannot swap the sides.
  const auditedServer = await lifecycle.startTrustplane('trustplane-bench-audited-', { TRUSTPLANE_AUDIT: 'on' });
  const unauditedServer = await lifecycle.startTrustplane('trustplane-bench-unaudited-', { TRUSTPLANE_AUDIT: 'off' });
  const targets: Record<Side, Target> = {
    audited: await prepare('audited', auditedServer, options.concurrency, lifecycle),
    unaudited: await prepare('unaudited', unauditedServer, options.concurrency, lifecycle),
  };

  // The first measurement would otherwise be the only one on a cold (unoptimised) server.
  if (options.warmupSeconds > 0) {
    for (const side of ['audited', 'unaudited'] as const) {
      options.progress(`priming the ${side} server (${options.warmupSeconds} s, unrecorded) ...`);
      const primed = await runLoad(targets[side].issue, { concurrency: options.concurrency, warmupMs: 0,
        durationMs: options.warmupSeconds * 1000, maxRequests: MAX_REQUESTS_PER_MEASUREMENT });
      if (primed.errors > 0) throw new Error(`${side}: ${primed.errors} Encrypt requests failed while priming: ${JSON.stringify(primed.errorReasons.slice(0, 3))}`);
    }
  }

  const rounds: SideRound[] = [];
  for (let round = 1; round <= options.rounds; round += 1) {
    const order: Side[] = round % 2 === 1 ? ['audited', 'unaudited'] : ['unaudited', 'audited'];
    for (const side of order) {
      options.progress(`Encrypt round ${round}/${options.rounds}: ${side} ...`);
      const measured = await measureRound(targets[side], round, options);
      rounds.push(measured);
      options.progress(`  ${Math.round(measured.result.requestsPerSecond)} req/s, ${measured.serverCpuMicrosPerRequest?.toFixed(0) ?? '-'} µs server CPU/req,` +
        ` ${measured.result.errors + measured.warmupErrors} errors`);
    }
  }

  const audited = summarise('audited', rounds);
  const unaudited = summarise('unaudited', rounds);
  const problems: string[] = [];
  for (const summary of [audited, unaudited]) {
    if (summary.errors > 0) {
      problems.push(`${summary.errors} of ${summary.requests} ${summary.side} Encrypt requests FAILED: ` +
        summary.errorReasons.slice(0, 5).map(({ reason, count }) => `${count} x ${reason}`).join('; '));
    }
  }
  // The switch must have done what it says: every audited request left a record, no unaudited one did.
  const okAudited = rounds.filter((entry) => entry.side === 'audited')
    .reduce((sum, entry) => sum + entry.warmupRequests - entry.warmupErrors + entry.result.ok, 0);
  if (audited.auditRecords === undefined) problems.push('could not read the audited server\'s audit log to check it recorded the requests');
  else if (audited.auditRecords < okAudited) {
    problems.push(`the audited server recorded only ${audited.auditRecords} audit records for ${okAudited} successful Encrypt requests`);
  }
  if (unaudited.auditRecords === undefined) problems.push('could not read the unaudited server\'s audit log to check it stayed empty');
  else if (unaudited.auditRecords !== 0) problems.push(`the unaudited server wrote ${unaudited.auditRecords} audit records: TRUSTPLANE_AUDIT=off had no effect`);
  if (!unauditedServer.output().includes(AUDIT_OFF_NOTICE)) problems.push('the unaudited server never logged its TRUSTPLANE_AUDIT=off notice');
  if (auditedServer.output().includes(AUDIT_OFF_NOTICE)) problems.push('the audited server logged the TRUSTPLANE_AUDIT=off notice');
  for (const [side, server] of [['audited', auditedServer], ['unaudited', unauditedServer]] as const) {
    if (!server.isRunning()) problems.push(`the ${side} server exited during the bench`);
    const logged = serverLogProblems(server.output(), [AUDIT_OFF_NOTICE]);
    if (logged.length > 0) problems.push(`the ${side} server logged ${logged.length} warning/error line(s), first: ${logged[0].slice(0, 300)}`);
  }

  const throughputRatio = audited.requestsPerSecond / unaudited.requestsPerSecond;
  const serverCpuRatio = audited.serverCpuMicrosPerRequest !== undefined && unaudited.serverCpuMicrosPerRequest !== undefined
    ? audited.serverCpuMicrosPerRequest / unaudited.serverCpuMicrosPerRequest : undefined;
  return {
    concurrency: options.concurrency, seconds: options.seconds, warmupSeconds: options.warmupSeconds,
    rounds, audited, unaudited, throughputRatio, throughputCostPercent: 100 * (1 - throughputRatio),
    serverCpuRatio, serverCpuCostPercent: serverCpuRatio === undefined ? undefined : 100 * (1 - 1 / serverCpuRatio),
    problems,
  };
}
