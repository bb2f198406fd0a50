// Policy-evaluation decisions per second: a realistic 20-statement key policy plus an identity policy, decided
// through decideAccess, and the cost of parsing and compiling a policy. Pure CPU, in this process.
// Then what auditing costs KMS Encrypt end to end: requests per second and server CPU per request of a dev
// server with auditing against one started with TRUSTPLANE_AUDIT=off, loaded one at a time over 127.0.0.1.
//
//   node --import tsx bench/policy.ts [--seconds N] [--rounds R] [--concurrency C] [--warmup S] [--no-kms] [--json]
//
//   --seconds N     seconds per measurement (default: 1 for each policy figure, 5 for each Encrypt measurement)
//   --rounds R      policy: best of R; Encrypt: R interleaved rounds of audited and unaudited, median kept (default 3)
//   --concurrency C Encrypt requests in flight (default 32); --warmup S unrecorded seconds before each (default 1)
//   --no-kms        the in-process policy figures only, no servers
//
// Must never measure a decision it has not first checked: each scenario asserts its expected outcome.
// Must never leave a server or a temporary home behind, even on Ctrl-C; any failed request fails the run.
import assert from 'node:assert/strict';
import os from 'node:os';
import { parseArgs } from 'node:util';
import {
  compilePolicy, decideAccess, kmsConditionKeys, parsePolicy, type CompiledPolicy, type DecideAccessInput, type RequestPrincipal,
} from '../src/shared/auth/policy/index.ts';
import { measureEncryptAuditCost, type AuditCostResult, type SideRound } from './lib/audit-cost.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { fixed, printProblemBanner, printTable } from './lib/report.ts';
import { concurrencyFlag, DISTURBED_OTHER_CPU_PERCENT, positiveNumber, warmupFlag } from './lib/settings.ts';

const A = '111122223333';
const B = '444455556666';
const KEY = `arn:aws:kms:eu-west-1:${A}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

/** Twenty statements in the shape real key policies take: administrators, users, guard-rail denies, a partner. */
const KEY_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Id: 'billing-key-policy',
  Statement: [
    { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:root` }, Action: 'kms:*', Resource: '*' },
    { Sid: 'KeyAdministrators', Effect: 'Allow', Principal: { AWS: [`arn:aws:iam::${A}:role/KeyAdmin`, `arn:aws:iam::${A}:user/security-lead`] },
      Action: ['kms:Create*', 'kms:Describe*', 'kms:Enable*', 'kms:List*', 'kms:Put*', 'kms:Update*', 'kms:Revoke*', 'kms:Disable*',
        'kms:Get*', 'kms:Delete*', 'kms:TagResource', 'kms:UntagResource', 'kms:ScheduleKeyDeletion', 'kms:CancelKeyDeletion'], Resource: '*' },
    { Sid: 'BillingAppUse', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/billing-app` },
      Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'], Resource: '*',
      Condition: { StringEquals: { 'kms:EncryptionContext:AppName': 'billing' } } },
    { Sid: 'AllowGrantsForResources', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/billing-app` },
      Action: ['kms:CreateGrant', 'kms:ListGrants', 'kms:RevokeGrant'], Resource: '*', Condition: { Bool: { 'kms:GrantIsForAWSResource': 'true' } } },
    { Sid: 'DenyOutsideCorporateNetwork', Effect: 'Deny', Principal: '*', Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Resource: '*',
      Condition: { NotIpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '192.168.0.0/16', '2001:db8::/32'] } } },
    { Sid: 'DenyUnexpectedContextKeys', Effect: 'Deny', Principal: '*', Action: ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey*'], Resource: '*',
      Condition: { 'ForAnyValue:StringNotLike': { 'kms:EncryptionContextKeys': ['AppName', 'Stage', 'Tenant*', 'aws:*'] } } },
    { Sid: 'PartnerDecryptViaProxy', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${B}:root` }, Action: ['kms:Decrypt', 'kms:DescribeKey'],
      Resource: '*', Condition: { StringLike: { 'kms:ViaService': 'tp-proxy.*.example.com' } } },
    { Sid: 'DenyDeletionWithoutMfa', Effect: 'Deny', Principal: '*', Action: ['kms:ScheduleKeyDeletion', 'kms:DisableKey'], Resource: '*',
      Condition: { BoolIfExists: { 'aws:MultiFactorAuthPresent': 'false' } } },
    { Sid: 'AttestedDatabaseHosts', Effect: 'Allow', Principal: { AWS: A }, Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: '*',
      Condition: { 'ForAnyValue:StringEquals': { 'tp:HostClass': ['db', 'db/billing'] }, Bool: { 'tp:Attested': 'true' } } },
    { Sid: 'DenyAfterDecommission', Effect: 'Deny', Principal: '*', Action: 'kms:*', Resource: '*',
      Condition: { DateGreaterThan: { 'aws:CurrentTime': '2099-12-31T23:59:59Z' }, StringNotEquals: { 'aws:PrincipalType': 'Account' } } },
    { Sid: 'TenantScopedDataKeys', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/tenant-worker` }, Action: 'kms:GenerateDataKey*',
      Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:Tenant': '${aws:PrincipalTag/tenant}' } } },
    { Sid: 'ReEncryptWithinAccount', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/rotation` }, Action: 'kms:ReEncrypt*', Resource: '*',
      Condition: { StringEquals: { 'kms:CallerAccount': A } } },
    { Sid: 'OnlyAdminsChangePolicy', Effect: 'Deny', NotPrincipal: { AWS: [`arn:aws:iam::${A}:role/KeyAdmin`, `arn:aws:iam::${A}:root`] },
      Action: ['kms:PutKeyPolicy', 'kms:CreateGrant'], Resource: '*', Condition: { StringNotEquals: { 'aws:PrincipalType': 'AssumedRole' } } },
    { Sid: 'SigningService', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/signer` }, Action: ['kms:Sign', 'kms:Verify', 'kms:GetPublicKey'],
      Resource: '*', Condition: { StringEquals: { 'kms:KeySpec': ['ECC_NIST_P256', 'RSA_2048'] }, StringEqualsIgnoreCase: { 'kms:KeyUsage': 'sign_verify' } } },
    { Sid: 'Auditors', Effect: 'Allow', Principal: { AWS: [`arn:aws:iam::${A}:role/auditor`, `arn:aws:iam::${B}:role/auditor`] },
      Action: ['kms:Describe*', 'kms:Get*', 'kms:List*'], Resource: '*' },
    { Sid: 'DescribeForKnownAccounts', Effect: 'Allow', Principal: '*', Action: 'kms:DescribeKey', Resource: '*',
      Condition: { StringEquals: { 'kms:CallerAccount': [A, B] } } },
    { Sid: 'DenyDecryptByWrongAlias', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*',
      Condition: { StringNotLikeIfExists: { 'kms:RequestAlias': ['alias/billing-*', 'alias/shared/*'] } } },
    { Sid: 'TimeBoxedMigration', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/migration` }, Action: 'kms:Encrypt', Resource: '*',
      Condition: { NumericLessThan: { 'aws:EpochTime': 4102444800 }, DateGreaterThanEquals: { 'aws:CurrentTime': '2024-01-01T00:00:00Z' } } },
    { Sid: 'AppRoleSessions', Effect: 'Allow', Principal: { AWS: A }, Action: ['kms:Encrypt', 'kms:Decrypt'], Resource: '*',
      Condition: { ArnLike: { 'aws:PrincipalArn': `arn:aws:iam::${A}:role/app-*` }, StringEquals: { 'kms:EncryptionContext:Stage': 'prod' } } },
    { Sid: 'DenyMallory', Effect: 'Deny', Principal: { AWS: `arn:aws:iam::${A}:user/mallory` }, Action: '*', Resource: '*' },
  ],
});

const IDENTITY_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    { Sid: 'UseBillingKeys', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey*'], Resource: `arn:aws:kms:*:${A}:key/*`,
      Condition: { StringEquals: { 'kms:EncryptionContext:AppName': 'billing' } } },
    { Sid: 'ReadMetadata', Effect: 'Allow', Action: ['kms:DescribeKey', 'kms:List*'], Resource: '*' },
    { Sid: 'NoDeletion', Effect: 'Deny', Action: ['kms:ScheduleKeyDeletion', 'kms:DeleteAlias'], Resource: '*' },
  ],
});

interface Settings {
  /** Seconds per policy figure. */
  seconds: number;
  rounds: number;
  json: boolean;
  kms: boolean;
  kmsSeconds: number;
  warmupSeconds: number;
  concurrency: number;
}

const AUDIT_COST_TARGET_PERCENT = 15;

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string' }, rounds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '32' }, warmup: { type: 'string', default: '1' }, 'no-kms': { type: 'boolean', default: false },
  } });
  const seconds = values.seconds === undefined ? undefined : positiveNumber('seconds', values.seconds, false);
  const rounds = positiveNumber('rounds', values.rounds, true);
  const concurrency = concurrencyFlag(values.concurrency);
  const warmupSeconds = warmupFlag(values.warmup);
  return { seconds: seconds ?? 1, rounds, json: values.json, kms: !values['no-kms'], kmsSeconds: seconds ?? 5, warmupSeconds, concurrency };
}

interface Figure { label: string; opsPerSecond: number; nsPerOp: number; ops: number }

/** Runs fn in batches until the time is up; the best of several rounds, since noise only ever slows things down. */
function measure(label: string, settings: Settings, fn: () => void): Figure {
  const batch = 256;
  for (let i = 0; i < 20_000; i++) fn(); // warm-up: let the JIT settle before timing
  let best: Figure | undefined;
  for (let round = 0; round < settings.rounds; round++) {
    const budget = BigInt(Math.round(settings.seconds * 1e9));
    const start = process.hrtime.bigint();
    let ops = 0;
    let elapsed = 0n;
    do {
      for (let i = 0; i < batch; i++) fn();
      ops += batch;
      elapsed = process.hrtime.bigint() - start;
    } while (elapsed < budget);
    const ns = Number(elapsed);
    const figure = { label, opsPerSecond: ops / (ns / 1e9), nsPerOp: ns / ops, ops };
    if (best === undefined || figure.nsPerOp < best.nsPerOp) best = figure;
  }
  return best!;
}

async function main(): Promise<number> {
  const settings = readSettings();
  const keyPolicy = compilePolicy(parsePolicy(KEY_POLICY, { kind: 'resource' }), { policyId: 'key-policy' });
  const identity = compilePolicy(parsePolicy(IDENTITY_POLICY, { kind: 'identity' }), { policyId: 'app-inline' });
  assert.equal(keyPolicy.statements.length, 20);

  const app: RequestPrincipal = { arn: `arn:aws:iam::${A}:user/billing-batch`, accountId: A, kind: 'user', tags: { tenant: 't-42' } };
  const now = new Date('2025-03-01T12:00:00Z');
  const conditionInput = {
    principal: app, now, sourceIp: '10.20.30.40', encryptionContext: { AppName: 'billing', Stage: 'prod', TenantId: 't-42' },
    requestAlias: 'alias/billing-main', keySpec: 'SYMMETRIC_DEFAULT', keyUsage: 'ENCRYPT_DECRYPT',
  };
  const input = (action: string, keys = kmsConditionKeys(conditionInput)): DecideAccessInput => ({
    resourcePolicy: keyPolicy, identityPolicies: [identity], resourceAccountId: A,
    context: { principal: app, action, resource: KEY, conditionKeys: keys },
  });

  // Allow through delegation is the slowest path: no Deny may match, so every statement of both policies is tried.
  const allowInput = input('kms:Decrypt');
  const allowed = decideAccess(allowInput);
  assert.equal(allowed.decision, 'Allow', allowed.reason);
  assert.equal(allowed.decidedBy?.sid, 'UseBillingKeys');
  assert.equal(allowed.enabledBy?.sid, 'Enable IAM User Permissions');

  const outsideInput = input('kms:Decrypt', kmsConditionKeys({ ...conditionInput, sourceIp: '203.0.113.7' }));
  const denied = decideAccess(outsideInput);
  assert.equal(denied.decision, 'ExplicitDeny', denied.reason);
  assert.equal(denied.decidedBy?.sid, 'DenyOutsideCorporateNetwork');

  const signInput = input('kms:Sign');
  assert.equal(decideAccess(signInput).decision, 'ImplicitDeny');

  const figures: Figure[] = [];
  figures.push(measure('decideAccess, Allow via key policy + identity policy (context prebuilt)', settings, () => decideAccess(allowInput)));
  figures.push(measure('kmsConditionKeys + decideAccess, Allow (context built per request)', settings, () => {
    decideAccess(input('kms:Decrypt', kmsConditionKeys(conditionInput)));
  }));
  figures.push(measure('decideAccess, ExplicitDeny (source IP outside the network)', settings, () => decideAccess(outsideInput)));
  figures.push(measure('decideAccess, ImplicitDeny (kms:Sign, nothing allows)', settings, () => decideAccess(signInput)));
  figures.push(measure('kmsConditionKeys alone (building the request context)', settings, () => kmsConditionKeys(conditionInput)));

  let sink: CompiledPolicy | undefined;
  const parseFigure = measure('parsePolicy, 20-statement key policy', settings, () => { parsePolicy(KEY_POLICY, { kind: 'resource' }); });
  const parsed = parsePolicy(KEY_POLICY, { kind: 'resource' });
  const compileFigure = measure('compilePolicy, 20-statement key policy', settings, () => { sink = compilePolicy(parsed); });
  const bothFigure = measure('parsePolicy + compilePolicy, 20-statement key policy', settings, () => { sink = compilePolicy(parsePolicy(KEY_POLICY, { kind: 'resource' })); });
  assert.ok(sink);

  const policy = { node: process.version, policyBytes: Buffer.byteLength(KEY_POLICY), decisions: figures, setup: [parseFigure, compileFigure, bothFigure] };
  if (!settings.json) {
    console.log(`policy bench: node ${process.version}, key policy of 20 statements (${Buffer.byteLength(KEY_POLICY)} bytes) + identity policy of 3; ` +
      `best of ${settings.rounds} × ${settings.seconds} s`);
    console.log('\ndecisions');
    for (const f of figures) console.log(`  ${f.label.padEnd(76)} ${Math.round(f.opsPerSecond).toLocaleString('en-US').padStart(11)} decisions/s ${f.nsPerOp.toFixed(0).padStart(7)} ns/decision`);
    console.log('\nsetup, per policy');
    for (const f of [parseFigure, compileFigure, bothFigure]) {
      console.log(`  ${f.label.padEnd(76)} ${Math.round(f.opsPerSecond).toLocaleString('en-US').padStart(11)} policies/s ${(f.nsPerOp / 1000).toFixed(1).padStart(7)} µs/policy`);
    }
    const evalNs = figures[0]!.nsPerOp;
    console.log(`\nnote: compiling once costs as much as ~${Math.round(bothFigure.nsPerOp / evalNs)} decisions; compiled policies should be cached with the key.`);
  }
  if (!settings.kms) {
    if (settings.json) console.log(JSON.stringify(policy, null, 2));
    return 0;
  }

  // Servers start only now, so the in-process figures above ran on a machine without them.
  const lifecycle = new BenchLifecycle();
  try {
    const cost = await measureEncryptAuditCost({ concurrency: settings.concurrency, seconds: settings.kmsSeconds,
      warmupSeconds: settings.warmupSeconds, rounds: settings.rounds, progress: (line) => process.stderr.write(`${line}\n`) }, lifecycle);
    if (settings.json) {
      console.log(JSON.stringify({ ...policy, encryptAuditCost: auditCostJson(cost) }, null, 2));
      for (const problem of cost.problems) process.stderr.write(`!!! INVALID ENCRYPT MEASUREMENT: ${problem}\n`);
    } else {
      printAuditCost(cost);
    }
    return cost.problems.length > 0 ? 1 : 0;
  } finally {
    await lifecycle.shutdown();
  }
}

function auditCostJson(cost: AuditCostResult) {
  const round = (entry: SideRound) => ({
    round: entry.round, side: entry.side, requestsPerSecond: entry.result.requestsPerSecond, completed: entry.result.completed,
    errors: entry.result.errors + entry.warmupErrors, errorReasons: entry.result.errorReasons, p50Ms: entry.result.p50Ms, p99Ms: entry.result.p99Ms,
    serverCpuMicrosPerRequest: entry.serverCpuMicrosPerRequest, serverCpuPercent: entry.serverCpuPercent,
    clientCpuPercent: entry.clientCpuPercent, otherCpuPercent: entry.otherCpuPercent, auditRecords: entry.auditRecords,
    disturbed: (entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT,
  });
  return {
    operation: 'Encrypt', plaintextBytes: 32, cpus: os.cpus().length, concurrency: cost.concurrency, seconds: cost.seconds,
    warmupSeconds: cost.warmupSeconds, rounds: cost.rounds.length / 2, kept: 'median per side',
    audited: cost.audited, unaudited: cost.unaudited,
    throughputRatio: cost.throughputRatio, throughputCostPercent: cost.throughputCostPercent,
    serverCpuRatio: cost.serverCpuRatio, serverCpuCostPercent: cost.serverCpuCostPercent,
    targetPercent: AUDIT_COST_TARGET_PERCENT, withinTarget: cost.throughputCostPercent < AUDIT_COST_TARGET_PERCENT,
    totalErrors: cost.audited.errors + cost.unaudited.errors, problems: cost.problems, perRound: cost.rounds.map(round),
  };
}

function printAuditCost(cost: AuditCostResult): void {
  const cpus = os.cpus();
  const { audited, unaudited } = cost;
  console.log(`\nKMS Encrypt, audited vs unaudited (TRUSTPLANE_AUDIT=off): 32-byte plaintext, 2-pair encryption context, SigV4-signed, 127.0.0.1`);
  console.log(`  concurrency ${cost.concurrency} over keep-alive sockets, ${cost.seconds} s per measurement after ${cost.warmupSeconds} s warm-up, ` +
    `${cost.rounds.length / 2} interleaved rounds (order swapped each round), one server under load at a time; median per side kept`);
  console.log(`  ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'}), shared by this load generator and the server under load`);
  const header = ['round', 'side', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU/req', 'server CPU', 'client CPU', 'other', 'audit records'];
  const rows = cost.rounds.map((entry) => [String(entry.round), entry.side, String(Math.round(entry.result.requestsPerSecond)),
    fixed(entry.result.p50Ms, 2), fixed(entry.result.p99Ms, 2),
    entry.result.errors + entry.warmupErrors === 0 ? '0' : `${entry.result.errors + entry.warmupErrors} !!!`,
    `${fixed(entry.serverCpuMicrosPerRequest, 0)} µs`, `${fixed(entry.serverCpuPercent, 0)}%`, `${fixed(entry.clientCpuPercent, 0)}%`,
    `${fixed(entry.otherCpuPercent, 0)}%${(entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`, entry.auditRecords === undefined ? '?' : String(entry.auditRecords)]);
  printTable(header, rows, { leftColumns: 2 });
  console.log('  server CPU/req: CPU time of the server process over the measured phase / requests in it; % columns are of one core;');
  console.log('  other: every other process on the machine (and steal); audit records: how much the server\'s log grew (warm-up included).');
  console.log('');
  for (const side of [audited, unaudited]) {
    console.log(`  ${side.side.padEnd(9)}  median ${Math.round(side.requestsPerSecond).toLocaleString('en-US').padStart(6)} req/s ` +
      `(best ${Math.round(side.bestRequestsPerSecond).toLocaleString('en-US')}), server CPU ${fixed(side.serverCpuMicrosPerRequest, 0)} µs/request, ` +
      `p50 ${fixed(side.p50Ms, 2)} ms, p99 ${fixed(side.p99Ms, 2)} ms, ${side.errors} errors in ${side.requests} requests`);
  }
  const verdict = cost.throughputCostPercent < AUDIT_COST_TARGET_PERCENT ? 'within target' : 'OVER TARGET';
  console.log(`  throughput ratio audited/unaudited: ${cost.throughputRatio.toFixed(3)} -> auditing costs ${cost.throughputCostPercent.toFixed(1)}% ` +
    `of Encrypt throughput; target < ${AUDIT_COST_TARGET_PERCENT}% (${verdict})`);
  if (cost.serverCpuRatio !== undefined) {
    console.log(`  server CPU per request ratio audited/unaudited: ${cost.serverCpuRatio.toFixed(3)} -> auditing adds ` +
      `${(100 * (cost.serverCpuRatio - 1)).toFixed(1)}% server CPU per request, i.e. it would cost ${fixed(cost.serverCpuCostPercent, 1)}% ` +
      'of throughput on a server-bound machine');
  } else {
    console.log('  server CPU per request: unavailable (no /proc), so no CPU ratio');
  }
  console.log(`  note: on ${cpus.length} cores the load generator competes with the server for CPU, so the throughput ratio is diluted by client work;`);
  console.log('        the server-CPU-per-request ratio is the fairer measure of what auditing costs the server.');
  const disturbed = cost.rounds.filter((entry) => (entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT);
  if (disturbed.length > 0) {
    console.log(`!!! other load above ${DISTURBED_OTHER_CPU_PERCENT}% of a core during ${disturbed.length} of ${cost.rounds.length} measurements ` +
      `(${disturbed.map((entry) => `round ${entry.round} ${entry.side}`).join(', ')}, marked !): their req/s are disturbed; rerun on a quiet machine.`);
    console.log('    Server CPU per request is much less sensitive to outside load than req/s.');
  }
  printProblemBanner('THESE ENCRYPT FIGURES ARE NOT A VALID MEASUREMENT:', cost.problems);
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
}
process.exit(exitCode);
