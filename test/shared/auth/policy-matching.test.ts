import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { evaluatePolicy, PolicyInputError, type RequestPrincipal } from '../../../src/shared/auth/policy/index.ts';
import { A, B, KEY_A, KEY_B, identityPolicy, keyPolicy, principal, request } from './policy-helpers.ts';

const allowsAction = (action: string | string[], requested: string) =>
  evaluatePolicy(identityPolicy({ Effect: 'Allow', Action: action, Resource: '*' }), request(principal('user'), requested)).effect === 'Allow';

const allowsResource = (resource: string | string[], requested: string) =>
  evaluatePolicy(identityPolicy({ Effect: 'Allow', Action: '*', Resource: resource }), request(principal('user'), 'kms:Decrypt', requested)).effect === 'Allow';

describe('Action', () => {
  test('kms:* matches every kms action and nothing else', () => {
    assert.equal(allowsAction('kms:*', 'kms:Decrypt'), true);
    assert.equal(allowsAction('kms:*', 's3:GetObject'), false);
  });
  test('a prefix wildcard: kms:Get* matches GetPublicKey and GetKeyPolicy, not Decrypt', () => {
    assert.equal(allowsAction('kms:Get*', 'kms:GetPublicKey'), true);
    assert.equal(allowsAction('kms:Get*', 'kms:GetKeyPolicy'), true);
    assert.equal(allowsAction('kms:Get*', 'kms:Decrypt'), false);
  });
  test('action names ignore case, in the policy and in the request', () => {
    assert.equal(allowsAction('KMS:get*', 'kms:GetPublicKey'), true);
    assert.equal(allowsAction('kms:Decrypt', 'KMS:DECRYPT'), true);
  });
  test('? matches exactly one character; * alone matches everything', () => {
    assert.equal(allowsAction('kms:?ncrypt', 'kms:Encrypt'), true);
    assert.equal(allowsAction('kms:?ncrypt', 'kms:ReEncrypt'), false);
    assert.equal(allowsAction('*', 'tp:AnythingAtAll'), true);
  });
  test('a list of actions matches any of them', () => {
    assert.equal(allowsAction(['kms:Encrypt', 'kms:Decrypt'], 'kms:Decrypt'), true);
    assert.equal(allowsAction(['kms:Encrypt', 'kms:Decrypt'], 'kms:Sign'), false);
  });
  test('NotAction applies to every action except those listed', () => {
    const policy = identityPolicy({ Effect: 'Allow', NotAction: ['kms:Schedule*', 'kms:Delete*'], Resource: '*' });
    assert.equal(evaluatePolicy(policy, request(principal('user'), 'kms:Encrypt')).effect, 'Allow');
    assert.equal(evaluatePolicy(policy, request(principal('user'), 'kms:ScheduleKeyDeletion')).effect, 'NoMatch');
  });
});

describe('Resource', () => {
  test('* matches any resource; an exact ARN only itself', () => {
    assert.equal(allowsResource('*', KEY_B), true);
    assert.equal(allowsResource(KEY_A, KEY_A), true);
    assert.equal(allowsResource(KEY_A, KEY_B), false);
  });
  test('wildcards in ARN components: any region, one account\'s keys', () => {
    assert.equal(allowsResource(`arn:aws:kms:*:${A}:key/*`, KEY_A), true);
    assert.equal(allowsResource(`arn:aws:kms:*:${A}:key/*`, KEY_B), false);
    assert.equal(allowsResource(`arn:aws:kms:*:${A}:alias/*`, KEY_A), false);
  });
  test('resource matching is case-sensitive', () => {
    assert.equal(allowsResource(KEY_A.toUpperCase().replace('ARN:AWS:KMS', 'arn:aws:kms'), KEY_A), false);
  });
  test('? in a resource and a wildcard that would need to span a colon', () => {
    assert.equal(allowsResource(`arn:aws:kms:us-east-?:${A}:key/*`, KEY_A), true);
    assert.equal(allowsResource(`arn:aws:kms:*:key/*`, KEY_A), true, 'fewer than six components: matched as one pattern');
    assert.equal(allowsResource(`arn:aws:kms:*:*:*:key/*`, KEY_A), false, 'six components, each matched on its own: the last one here would need a colon');
  });
  test('NotResource applies to every resource except those listed', () => {
    const policy = identityPolicy({ Effect: 'Deny', Action: '*', NotResource: `arn:aws:kms:*:${A}:key/*` });
    assert.equal(evaluatePolicy(policy, request(principal('user'), 'kms:Decrypt', KEY_B)).effect, 'Deny');
    assert.equal(evaluatePolicy(policy, request(principal('user'), 'kms:Decrypt', KEY_A)).effect, 'NoMatch');
  });
});

describe('Principal', () => {
  const match = (p: unknown, who: RequestPrincipal) => {
    const result = evaluatePolicy(keyPolicy({ Effect: 'Allow', Principal: p, Action: '*', Resource: '*' }), request(who));
    return result.effect === 'Allow' ? result.principalMatch : undefined;
  };

  test('"*" and {"AWS": "*"} name everyone, explicitly', () => {
    assert.equal(match('*', principal('user', 'x', B)), 'explicit');
    assert.equal(match({ AWS: '*' }, principal('host', 'web-1')), 'explicit');
  });
  test('the account root ARN and the bare account id name the account: a distinct, delegating match', () => {
    for (const p of [{ AWS: `arn:aws:iam::${A}:root` }, { AWS: A }]) {
      assert.equal(match(p, principal('user')), 'account');
      assert.equal(match(p, principal('assumed-role', 'ops')), 'account');
      assert.equal(match(p, principal('root', '', A)), 'account');
      assert.equal(match(p, principal('user', 'alice', B)), undefined, 'another account');
    }
  });
  test('a user ARN names that user only', () => {
    const p = { AWS: `arn:aws:iam::${A}:user/alice` };
    assert.equal(match(p, principal('user', 'alice')), 'explicit');
    assert.equal(match(p, principal('user', 'bob')), undefined);
    assert.equal(match(p, principal('user', 'alice', B)), undefined);
  });
  test('a role ARN names the role and every session of it, but not other roles or accounts', () => {
    const p = { AWS: `arn:aws:iam::${A}:role/ops` };
    assert.equal(match(p, principal('role', 'ops')), 'explicit');
    assert.equal(match(p, principal('assumed-role', 'ops')), 'explicit');
    assert.equal(match(p, principal('assumed-role', 'ops-admin')), undefined);
    assert.equal(match(p, principal('assumed-role', 'ops', B)), undefined);
  });
  test('a role ARN with a path still names the role\'s sessions (their ARN carries no path)', () => {
    assert.equal(match({ AWS: `arn:aws:iam::${A}:role/team/ops` }, principal('assumed-role', 'ops')), 'explicit');
  });
  test('a session ARN names that session only', () => {
    const p = { AWS: `arn:aws:sts::${A}:assumed-role/ops/session-1` };
    assert.equal(match(p, principal('assumed-role', 'ops')), 'explicit');
    const other: RequestPrincipal = { arn: `arn:aws:sts::${A}:assumed-role/ops/session-2`, accountId: A, kind: 'assumed-role' };
    assert.equal(match(p, other), undefined);
  });
  test('a host ARN (our extension) names that host', () => {
    assert.equal(match({ AWS: `arn:aws:iam::${A}:host/web-1` }, principal('host', 'web-1')), 'explicit');
    assert.equal(match({ AWS: `arn:aws:iam::${A}:host/web-1` }, principal('host', 'web-2')), undefined);
  });
  test('Service principals are accepted and never match', () => {
    assert.equal(match({ Service: 'kms.amazonaws.com' }, principal('user')), undefined);
    assert.equal(match({ Service: 'kms.amazonaws.com' }, principal('root', '', A)), undefined);
  });
  test('an explicit match is reported over an account match when both statements allow', () => {
    const policy = keyPolicy([
      { Sid: 'Account', Effect: 'Allow', Principal: { AWS: A }, Action: '*', Resource: '*' },
      { Sid: 'Alice', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: '*', Resource: '*' },
    ]);
    assert.deepEqual(evaluatePolicy(policy, request(principal('user'))), {
      effect: 'Allow', statement: { policyId: 'key-policy', sid: 'Alice', index: 1 }, principalMatch: 'explicit',
    });
  });

  describe('NotPrincipal (Deny only): AWS checks the account, the role, then the caller', () => {
    const denied = (notPrincipal: string[], who: RequestPrincipal) =>
      evaluatePolicy(keyPolicy({ Effect: 'Deny', NotPrincipal: { AWS: notPrincipal }, Action: '*', Resource: '*' }), request(who)).effect === 'Deny';

    test('listing only the user still denies it: its account is not listed', () => {
      assert.equal(denied([`arn:aws:iam::${A}:user/alice`], principal('user')), true);
    });
    test('listing the user and its account excludes the user, and only it', () => {
      const list = [`arn:aws:iam::${A}:user/alice`, `arn:aws:iam::${A}:root`];
      assert.equal(denied(list, principal('user', 'alice')), false);
      assert.equal(denied(list, principal('user', 'bob')), false, 'the account ARN covers every principal of it');
      assert.equal(denied(list, principal('user', 'alice', B)), true);
    });
    test('a session is excluded when its role and account are listed', () => {
      assert.equal(denied([`arn:aws:iam::${A}:role/ops`, A], principal('assumed-role', 'ops')), false);
      assert.equal(denied([`arn:aws:iam::${A}:role/ops`], principal('assumed-role', 'ops')), true);
    });
  });
});

describe('request principals are checked', () => {
  test('a principal whose ARN names another account is refused as a programming error', () => {
    const wrong: RequestPrincipal = { arn: `arn:aws:iam::${B}:user/alice`, accountId: A, kind: 'user' };
    assert.throws(() => evaluatePolicy(keyPolicy({ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }), request(wrong)), PolicyInputError);
  });
  test('a principal whose ARN disagrees with its kind is refused', () => {
    const wrong: RequestPrincipal = { arn: `arn:aws:iam::${A}:user/alice`, accountId: A, kind: 'root' };
    assert.throws(() => evaluatePolicy(keyPolicy({ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }), request(wrong)), PolicyInputError);
  });
});

describe('within one policy', () => {
  test('an explicit Deny beats an Allow, whatever their order', () => {
    const allow = { Sid: 'Allow', Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*' };
    const deny = { Sid: 'Deny', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*' };
    for (const statements of [[allow, deny], [deny, allow]]) {
      const result = evaluatePolicy(keyPolicy(statements), request(principal('user')));
      assert.equal(result.effect, 'Deny');
      assert.equal(result.statement!.sid, 'Deny');
    }
  });
  test('no matching statement is NoMatch', () => {
    assert.deepEqual(evaluatePolicy(keyPolicy({ Effect: 'Allow', Principal: '*', Action: 'kms:Encrypt', Resource: '*' }), request(principal('user'))), { effect: 'NoMatch' });
  });
});
