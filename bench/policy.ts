// Policy-evaluation decisions per second: a realistic 20-statement key policy plus an identity policy, decided
// through decideAccess, and the cost of parsing and compiling a policy. Pure CPU, in this process.
//
//   node --import tsx bench/policy.ts [--seconds N] [--rounds R] [--json]
//
// Must never measure a decision it has not first checked: each scenario asserts its expected outcome.
import assert from 'node:assert/strict';
import { parseArgs } from 'node:util';
import {
  compilePolicy, decideAccess, kmsConditionKeys, parsePolicy, type CompiledPolicy, type DecideAccessInput, type RequestPrincipal,
} from '../src/shared/auth/policy/index.ts';

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

interface Settings { seconds: number; rounds: number; json: boolean }

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '1' }, rounds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false },
  } });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (!(seconds > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--seconds must be positive and --rounds a positive integer');
  return { seconds, rounds, json: values.json };
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

function main(): void {
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

  if (settings.json) {
    console.log(JSON.stringify({ node: process.version, policyBytes: Buffer.byteLength(KEY_POLICY), decisions: figures, setup: [parseFigure, compileFigure, bothFigure] }, null, 2));
    return;
  }
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

main();
