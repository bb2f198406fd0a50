import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkLockout, decideAccess, kmsConditionKeys, PolicyInputError, simulate, type CompiledPolicy, type DecideAccessInput,
  type RequestPrincipal,
} from '../../../src/shared/auth/policy/index.ts';
import { A, B, KEY_A, defaultKeyPolicy, identityPolicy, keyPolicy, principal, request } from './policy-helpers.ts';

const alice = principal('user', 'alice', A);
const rootA = principal('root', '', A);
const bobB = principal('user', 'bob', B);
const rootB = principal('root', '', B);

const allowDecrypt = identityPolicy({ Sid: 'UseKeys', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:Encrypt'], Resource: `arn:aws:kms:*:${A}:key/*` }, 'alice-inline');
const allowPutPolicy = identityPolicy({ Sid: 'Admin', Effect: 'Allow', Action: 'kms:PutKeyPolicy', Resource: '*' }, 'admin');

function decide(who: RequestPrincipal, resourcePolicy: CompiledPolicy | undefined, identityPolicies: CompiledPolicy[] = [], extra: Partial<DecideAccessInput> = {}) {
  return decideAccess({ resourcePolicy, identityPolicies, resourceAccountId: A, context: request(who), ...extra });
}

describe('the default key policy delegates to the account', () => {
  test('the account root is allowed by the key policy alone', () => {
    const result = decide(rootA, defaultKeyPolicy());
    assert.equal(result.decision, 'Allow');
    assert.deepEqual(result.decidedBy, { source: 'resource-policy', policyId: 'key-policy', sid: 'Enable IAM User Permissions', index: 0 });
  });
  test('a user of the account is allowed when an identity policy allows, and the identity statement decides', () => {
    const result = decide(alice, defaultKeyPolicy(), [allowDecrypt]);
    assert.equal(result.decision, 'Allow');
    assert.deepEqual(result.decidedBy, { source: 'identity-policy', policyId: 'alice-inline', sid: 'UseKeys', index: 0 });
    assert.deepEqual(result.enabledBy, { source: 'resource-policy', policyId: 'key-policy', sid: 'Enable IAM User Permissions', index: 0 });
    assert.match(result.reason, /delegates to account 111122223333/);
  });
  test('without an identity policy allowing it, the user is implicitly denied', () => {
    const result = decide(alice, defaultKeyPolicy(), []);
    assert.equal(result.decision, 'ImplicitDeny');
    assert.equal(result.decidedBy, undefined);
    assert.match(result.reason, /no identity policy of arn:aws:iam::111122223333:user\/alice allows kms:Decrypt/);
  });
  test('an identity policy for another resource or action does not count', () => {
    const otherKey = identityPolicy({ Effect: 'Allow', Action: 'kms:Decrypt', Resource: `arn:aws:kms:*:${A}:key/other` });
    assert.equal(decide(alice, defaultKeyPolicy(), [otherKey]).decision, 'ImplicitDeny');
    const otherAction = identityPolicy({ Effect: 'Allow', Action: 'kms:Sign', Resource: '*' });
    assert.equal(decide(alice, defaultKeyPolicy(), [otherAction]).decision, 'ImplicitDeny');
  });
});

describe('a key policy that does not allow the account', () => {
  const aliceOnly = keyPolicy({ Sid: 'Alice', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: 'kms:Decrypt', Resource: '*' });
  test('names the user: allowed without any identity policy', () => {
    const result = decide(alice, aliceOnly);
    assert.equal(result.decision, 'Allow');
    assert.deepEqual(result.decidedBy, { source: 'resource-policy', policyId: 'key-policy', sid: 'Alice', index: 0 });
  });
  test('an identity policy alone cannot open a key whose policy does not delegate', () => {
    const bob = principal('user', 'bob', A);
    const result = decide(bob, aliceOnly, [allowDecrypt]);
    assert.equal(result.decision, 'ImplicitDeny');
    assert.match(result.reason, /the resource policy neither names .*user\/bob nor allows account 111122223333/);
  });
  test('even the account root is locked out', () => {
    assert.equal(decide(rootA, aliceOnly).decision, 'ImplicitDeny');
  });
});

describe('explicit deny wins', () => {
  test('in the same key policy', () => {
    const policy = keyPolicy([
      { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'NoDecryptOutsideVpn', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { NotIpAddress: { 'aws:SourceIp': '10.0.0.0/8' } } },
    ]);
    const context = request(rootA, 'kms:Decrypt', KEY_A, { 'aws:SourceIp': '203.0.113.9' });
    const result = decideAccess({ resourcePolicy: policy, identityPolicies: [], resourceAccountId: A, context });
    assert.equal(result.decision, 'ExplicitDeny');
    assert.deepEqual(result.decidedBy, { source: 'resource-policy', policyId: 'key-policy', sid: 'NoDecryptOutsideVpn', index: 1 });
    const inside = decideAccess({ resourcePolicy: policy, identityPolicies: [], resourceAccountId: A, context: request(rootA, 'kms:Decrypt', KEY_A, { 'aws:SourceIp': '10.1.1.1' }) });
    assert.equal(inside.decision, 'Allow');
  });
  test('a Deny in an identity policy beats an Allow in the key policy that names the user', () => {
    const policy = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: 'kms:*', Resource: '*' });
    const deny = identityPolicy({ Sid: 'NeverDecrypt', Effect: 'Deny', Action: 'kms:Decrypt', Resource: '*' }, 'guardrail');
    const result = decide(alice, policy, [allowDecrypt, deny]);
    assert.equal(result.decision, 'ExplicitDeny');
    assert.deepEqual(result.decidedBy, { source: 'identity-policy', policyId: 'guardrail', sid: 'NeverDecrypt', index: 0 });
  });
  test('a Deny in the key policy beats an Allow in an identity policy', () => {
    const policy = keyPolicy([
      { Effect: 'Allow', Principal: { AWS: A }, Action: 'kms:*', Resource: '*' },
      { Sid: 'NoAlice', Effect: 'Deny', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: '*', Resource: '*' },
    ]);
    const result = decide(alice, policy, [allowDecrypt]);
    assert.equal(result.decision, 'ExplicitDeny');
    assert.equal(result.decidedBy?.sid, 'NoAlice');
  });
  test('a Deny naming the account applies to every principal of it, the root included', () => {
    const policy = keyPolicy([
      { Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' },
      { Effect: 'Deny', Principal: { AWS: A }, Action: 'kms:Decrypt', Resource: '*' },
    ]);
    assert.equal(decide(alice, policy).decision, 'ExplicitDeny');
    assert.equal(decide(rootA, policy).decision, 'ExplicitDeny');
  });
  test('a Deny beats a grant, and the grant is then not even looked up', () => {
    const policy = keyPolicy({ Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*' });
    let lookedUp = false;
    const result = decide(alice, policy, [], { grantsAllow: () => { lookedUp = true; return true; } });
    assert.equal(result.decision, 'ExplicitDeny');
    assert.equal(lookedUp, false);
  });
});

describe('cross-account use (key in account A)', () => {
  const namesB = keyPolicy([
    { Sid: 'Owner', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:root` }, Action: 'kms:*', Resource: '*' },
    { Sid: 'PartnerAccount', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${B}:root` }, Action: ['kms:Decrypt', 'kms:DescribeKey'], Resource: '*' },
  ]);
  const namesBob = keyPolicy({ Sid: 'Bob', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${B}:user/bob` }, Action: 'kms:Decrypt', Resource: '*' });
  const bobMayUseAsKeys = identityPolicy({ Sid: 'UsePartnerKeys', Effect: 'Allow', Action: 'kms:Decrypt', Resource: `arn:aws:kms:*:${A}:key/*` }, 'bob-inline');

  test('the key policy names account B and B\'s identity policy allows: allowed, decided by B\'s policy', () => {
    const result = decide(bobB, namesB, [bobMayUseAsKeys]);
    assert.equal(result.decision, 'Allow');
    assert.deepEqual(result.decidedBy, { source: 'identity-policy', policyId: 'bob-inline', sid: 'UsePartnerKeys', index: 0 });
    assert.deepEqual(result.enabledBy, { source: 'resource-policy', policyId: 'key-policy', sid: 'PartnerAccount', index: 1 });
    assert.match(result.reason, /across accounts/);
  });
  test('the key policy names account B but B\'s identity policies do not allow: denied', () => {
    const result = decide(bobB, namesB, []);
    assert.equal(result.decision, 'ImplicitDeny');
    assert.match(result.reason, /cross-account use also needs an identity policy/);
  });
  test('the root of account B needs only the key policy naming its account', () => {
    assert.equal(decide(rootB, namesB).decision, 'Allow');
  });
  test('the key policy names bob himself: his identity policy must still allow', () => {
    assert.equal(decide(bobB, namesBob, []).decision, 'ImplicitDeny');
    assert.equal(decide(bobB, namesBob, [bobMayUseAsKeys]).decision, 'Allow');
  });
  test('the key policy does not name B: B\'s identity policy is not enough', () => {
    const result = decide(bobB, defaultKeyPolicy(A), [bobMayUseAsKeys]);
    assert.equal(result.decision, 'ImplicitDeny');
    assert.equal(decide(rootB, defaultKeyPolicy(A)).decision, 'ImplicitDeny');
  });
  test('Principal "*": enough within the account, not across accounts without an identity policy', () => {
    const open = keyPolicy({ Effect: 'Allow', Principal: '*', Action: 'kms:Decrypt', Resource: '*' });
    assert.equal(decide(alice, open).decision, 'Allow');
    assert.equal(decide(bobB, open).decision, 'ImplicitDeny');
    assert.equal(decide(bobB, open, [bobMayUseAsKeys]).decision, 'Allow');
  });
  test('an action the key policy does not grant to B stays denied whatever B\'s policies say', () => {
    const everything = identityPolicy({ Effect: 'Allow', Action: 'kms:*', Resource: '*' });
    const result = decideAccess({ resourcePolicy: namesB, identityPolicies: [everything], resourceAccountId: A, context: request(bobB, 'kms:ScheduleKeyDeletion') });
    assert.equal(result.decision, 'ImplicitDeny');
  });
  test('a session of a role in B named by the key policy, with its role\'s identity policy', () => {
    const session = principal('assumed-role', 'reader', B);
    const namesRole = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${B}:role/reader` }, Action: 'kms:Decrypt', Resource: '*' });
    assert.equal(decide(session, namesRole, [bobMayUseAsKeys]).decision, 'Allow');
    assert.equal(decide(session, namesRole, []).decision, 'ImplicitDeny');
  });
});

describe('without a resource policy (account-level actions such as CreateKey)', () => {
  const context = (who: RequestPrincipal) => request(who, 'kms:CreateKey', '*');
  test('the root may act in its own account', () => {
    const result = decideAccess({ identityPolicies: [], resourceAccountId: A, context: context(rootA) });
    assert.equal(result.decision, 'Allow');
    assert.equal(result.decidedBy, undefined);
  });
  test('a user needs an identity policy', () => {
    const create = identityPolicy({ Sid: 'Create', Effect: 'Allow', Action: 'kms:CreateKey', Resource: '*' });
    assert.equal(decideAccess({ identityPolicies: [], resourceAccountId: A, context: context(alice) }).decision, 'ImplicitDeny');
    const result = decideAccess({ identityPolicies: [create], resourceAccountId: A, context: context(alice) });
    assert.equal(result.decision, 'Allow');
    assert.equal(result.decidedBy?.sid, 'Create');
  });
  test('neither a user nor the root of another account may act here', () => {
    const everything = identityPolicy({ Effect: 'Allow', Action: '*', Resource: '*' });
    assert.equal(decideAccess({ identityPolicies: [everything], resourceAccountId: A, context: context(bobB) }).decision, 'ImplicitDeny');
    assert.equal(decideAccess({ identityPolicies: [], resourceAccountId: A, context: context(rootB) }).decision, 'ImplicitDeny');
  });
});

describe('grants', () => {
  const ownerOnly = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/owner` }, Action: 'kms:*', Resource: '*' });
  test('a grant allows what the policies do not', () => {
    const result = decide(alice, ownerOnly, [], { grantsAllow: true });
    assert.equal(result.decision, 'Allow');
    assert.deepEqual(result.decidedBy, { source: 'grant' });
  });
  test('a grant decider may name the grant; it is consulted only when no policy allows', () => {
    const byGrant = decide(alice, ownerOnly, [], { grantsAllow: () => ({ grantId: 'g-123' }) });
    assert.deepEqual(byGrant.decidedBy, { source: 'grant', grantId: 'g-123' });
    assert.match(byGrant.reason, /grant g-123/);
    let calls = 0;
    decide(principal('user', 'owner'), ownerOnly, [], { grantsAllow: () => { calls++; return true; } });
    assert.equal(calls, 0);
  });
  test('a grant for another account\'s principal works without its identity policy', () => {
    assert.equal(decide(bobB, ownerOnly, [], { grantsAllow: true }).decision, 'Allow');
  });
  test('no grant: implicit deny', () => {
    assert.equal(decide(alice, ownerOnly, [], { grantsAllow: () => false }).decision, 'ImplicitDeny');
  });
});

describe('misuse is refused', () => {
  test('an identity policy passed as the resource policy, or the other way round', () => {
    assert.throws(() => decide(alice, allowDecrypt as CompiledPolicy), PolicyInputError);
    assert.throws(() => decide(alice, defaultKeyPolicy(), [defaultKeyPolicy()]), PolicyInputError);
  });
});

describe('simulate', () => {
  test('reports the decision, the matching statements and why the others did not match', () => {
    const policy = keyPolicy([
      { Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: A }, Action: 'kms:*', Resource: '*' },
      { Sid: 'AdminsOnly', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:role/admin` }, Action: '*', Resource: '*' },
      { Sid: 'DenyOtherApps', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*', Condition: { StringNotEquals: { 'kms:EncryptionContext:app': 'billing' } } },
      { Sid: 'Signing', Effect: 'Allow', Principal: '*', Action: 'kms:Sign', Resource: '*' },
    ]);
    const conditionKeys = kmsConditionKeys({ principal: alice, now: new Date('2024-06-01T00:00:00Z'), encryptionContext: { app: 'billing' } });
    const result = simulate({ resourcePolicy: policy, identityPolicies: [allowDecrypt], resourceAccountId: A, context: request(alice, 'kms:Decrypt', KEY_A, conditionKeys) });
    assert.equal(result.decision, 'Allow');
    assert.equal(result.decidedBy?.sid, 'UseKeys');
    assert.deepEqual(result.matchedStatements.map((s) => [s.source, s.sid, s.principalMatch]), [
      ['resource-policy', 'Enable IAM User Permissions', 'account'],
      ['identity-policy', 'UseKeys', undefined],
    ]);
    assert.deepEqual(result.statements.filter((s) => !s.matched).map((s) => [s.sid, s.mismatch, s.failedCondition]), [
      ['AdminsOnly', 'principal', undefined],
      ['DenyOtherApps', 'condition', { operator: 'StringNotEquals', key: 'kms:EncryptionContext:app' }],
      ['Signing', 'action', undefined],
    ]);
  });
  test('gives the same decision as decideAccess', () => {
    const input: DecideAccessInput = { resourcePolicy: defaultKeyPolicy(), identityPolicies: [], resourceAccountId: A, context: request(alice) };
    const { matchedStatements: _m, statements: _s, ...decision } = simulate(input);
    assert.deepEqual(decision, decideAccess(input));
  });
});

describe('lockout safety check', () => {
  const input = (who: RequestPrincipal, identityPolicies: CompiledPolicy[] = []): DecideAccessInput =>
    ({ resourcePolicy: defaultKeyPolicy(), identityPolicies, resourceAccountId: A, context: request(who, 'kms:PutKeyPolicy') });

  test('a new policy that names neither the caller nor its account locks the caller out', () => {
    const newPolicy = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/someone-else` }, Action: 'kms:*', Resource: '*' });
    assert.equal(checkLockout(newPolicy, input(alice, [allowPutPolicy])), false);
    assert.equal(checkLockout(newPolicy, input(rootA)), false);
  });
  test('a new policy delegating to the account keeps a caller whose identity policy allows PutKeyPolicy', () => {
    assert.equal(checkLockout(defaultKeyPolicy(), input(alice, [allowPutPolicy])), true);
    assert.equal(checkLockout(defaultKeyPolicy(), input(alice, [allowDecrypt])), false, 'but not one whose identity policy does not');
    assert.equal(checkLockout(defaultKeyPolicy(), input(rootA)), true, 'and the root needs nothing more');
  });
  test('a new policy naming the caller for PutKeyPolicy keeps it', () => {
    const newPolicy = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: ['kms:PutKeyPolicy', 'kms:GetKeyPolicy'], Resource: '*' });
    assert.equal(checkLockout(newPolicy, input(alice)), true);
  });
  test('a new policy that denies PutKeyPolicy locks everyone out', () => {
    const newPolicy = keyPolicy([
      { Effect: 'Allow', Principal: { AWS: A }, Action: 'kms:*', Resource: '*' },
      { Effect: 'Deny', Principal: '*', Action: 'kms:PutKeyPolicy', Resource: '*' },
    ]);
    assert.equal(checkLockout(newPolicy, input(rootA)), false);
  });
  test('the check is about PutKeyPolicy whatever action the context names, and grants do not count', () => {
    const onlyDecrypt = keyPolicy({ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: 'kms:Decrypt', Resource: '*' });
    const context = request(alice, 'kms:Decrypt');
    assert.equal(checkLockout(onlyDecrypt, { identityPolicies: [], resourceAccountId: A, context, grantsAllow: true }), false);
  });
});

describe('kmsConditionKeys', () => {
  test('builds every key the issue lists', () => {
    const who = principal('user', 'alice', A, { team: 'payments' });
    const keys = kmsConditionKeys({
      principal: who, now: new Date('2024-06-01T12:00:00.000Z'), encryptionContext: { AppName: 'billing', Stage: 'prod' },
      viaService: 'tp-proxy', requestAlias: 'alias/billing', keySpec: 'SYMMETRIC_DEFAULT', keyUsage: 'ENCRYPT_DECRYPT',
      sourceIp: '10.1.2.3', hostClasses: ['db', 'db/prod'], attested: true,
    });
    assert.deepEqual(keys, {
      'kms:EncryptionContext:AppName': 'billing',
      'kms:EncryptionContext:Stage': 'prod',
      'kms:EncryptionContextKeys': ['AppName', 'Stage'],
      'kms:CallerAccount': A,
      'kms:ViaService': 'tp-proxy',
      'kms:RequestAlias': 'alias/billing',
      'kms:KeySpec': 'SYMMETRIC_DEFAULT',
      'kms:KeyUsage': 'ENCRYPT_DECRYPT',
      'aws:SourceIp': '10.1.2.3',
      'aws:CurrentTime': '2024-06-01T12:00:00.000Z',
      'aws:EpochTime': 1717243200,
      'aws:PrincipalArn': who.arn,
      'aws:PrincipalAccount': A,
      'aws:PrincipalType': 'User',
      'aws:username': 'alice',
      'aws:PrincipalTag/team': 'payments',
      'tp:HostClass': ['db', 'db/prod'],
      'tp:Attested': true,
    });
  });
  test('an assumed-role session\'s aws:PrincipalArn is its role\'s ARN, as in AWS', () => {
    const keys = kmsConditionKeys({ principal: principal('assumed-role', 'ops', B), now: new Date(0) });
    assert.equal(keys['aws:PrincipalArn'], `arn:aws:iam::${B}:role/ops`);
    assert.equal(keys['aws:PrincipalType'], 'AssumedRole');
    assert.equal(keys['kms:EncryptionContextKeys'], undefined, 'no encryption context, no key');
  });
  test('the keys drive real decisions: a key policy restricted to one app from one network', () => {
    const policy = keyPolicy({
      Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: 'kms:Decrypt', Resource: '*',
      Condition: { StringEquals: { 'kms:EncryptionContext:AppName': 'billing' }, IpAddress: { 'aws:SourceIp': '10.0.0.0/8' }, Bool: { 'tp:Attested': 'true' } },
    });
    const run = (sourceIp: string, app: string, attested: boolean) => decideAccess({
      resourcePolicy: policy, identityPolicies: [], resourceAccountId: A,
      context: request(alice, 'kms:Decrypt', KEY_A, kmsConditionKeys({ principal: alice, now: new Date(), sourceIp, encryptionContext: { AppName: app }, attested })),
    }).decision;
    assert.equal(run('10.0.0.5', 'billing', true), 'Allow');
    assert.equal(run('192.0.2.5', 'billing', true), 'ImplicitDeny');
    assert.equal(run('10.0.0.5', 'reports', true), 'ImplicitDeny');
    assert.equal(run('10.0.0.5', 'billing', false), 'ImplicitDeny');
  });
});
