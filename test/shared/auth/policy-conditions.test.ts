import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { evaluatePolicy, kmsConditionKeys } from '../../../src/shared/auth/policy/index.ts';
import { A, KEY_A, denies, holds, identityPolicy, principal, request } from './policy-helpers.ts';

// Each row: operator, policy value, a request value that makes it true, one that makes it false, and what a
// missing key gives (AWS: false for positive operators, true for negated ones).
const K = 'tp:Probe';
const OPERATOR_CASES: [string, unknown, unknown, unknown, boolean][] = [
  ['StringEquals', 'prod', 'prod', 'Prod', false],
  ['StringNotEquals', 'prod', 'dev', 'prod', true],
  ['StringEqualsIgnoreCase', 'PROD', 'prod', 'dev', false],
  ['StringNotEqualsIgnoreCase', 'PROD', 'dev', 'pRoD', true],
  ['StringLike', 'app-*-v?', 'app-x-v1', 'app-x-v10', false],
  ['StringNotLike', 'app-*', 'web-1', 'app-1', true],
  ['NumericEquals', '10', 10, 11, false],
  ['NumericNotEquals', '10', 11, '10', true],
  ['NumericLessThan', '10', 9.5, 10, false],
  ['NumericLessThanEquals', 10, '10', 11, false],
  ['NumericGreaterThan', '10', 11, 10, false],
  ['NumericGreaterThanEquals', '10', 10, 9, false],
  ['DateEquals', '2024-01-01T00:00:00Z', '2024-01-01T01:00:00+01:00', '2024-01-01T00:00:01Z', false],
  ['DateNotEquals', '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', 1704067200, true],
  ['DateLessThan', '2024-06-01T00:00:00Z', '2024-05-31T23:59:59Z', '2024-06-01T00:00:00Z', false],
  ['DateLessThanEquals', '2024-06-01T00:00:00Z', '2024-06-01T00:00:00Z', '2024-06-01T00:00:00.001Z', false],
  ['DateGreaterThan', '2024-06-01', '2024-06-01T00:00:01Z', '2024-06-01T00:00:00Z', false],
  ['DateGreaterThanEquals', 1717200000, '2024-06-01T00:00:00Z', '2024-05-31T23:59:59Z', false],
  ['Bool', 'true', true, false, false],
  ['BinaryEquals', 'QUJD', 'QUJD', 'QUJE', false],
  ['IpAddress', '203.0.113.0/24', '203.0.113.77', '203.0.114.1', false],
  ['NotIpAddress', '203.0.113.0/24', '198.51.100.1', '203.0.113.1', true],
  ['ArnEquals', `arn:aws:iam::${A}:user/alice`, `arn:aws:iam::${A}:user/alice`, `arn:aws:iam::${A}:user/alicia`, false],
  ['ArnLike', `arn:aws:iam::${A}:user/*`, `arn:aws:iam::${A}:user/bob`, 'arn:aws:iam::444455556666:user/bob', false],
  ['ArnNotEquals', `arn:aws:iam::${A}:user/alice`, `arn:aws:iam::${A}:user/bob`, `arn:aws:iam::${A}:user/alice`, true],
  ['ArnNotLike', `arn:aws:iam::${A}:role/*`, `arn:aws:iam::${A}:user/bob`, `arn:aws:iam::${A}:role/ops`, true],
];

describe('every condition operator: a true case, a false case and a missing key', () => {
  for (const [operator, policyValue, yes, no, missing] of OPERATOR_CASES) {
    test(operator, () => {
      const condition = { [operator]: { [K]: policyValue } };
      assert.equal(holds(condition, { [K]: yes as string }), true, `${operator} should hold for ${String(yes)}`);
      assert.equal(holds(condition, { [K]: no as string }), false, `${operator} should not hold for ${String(no)}`);
      assert.equal(holds(condition, {}), missing, `${operator} with the key missing`);
    });
    test(`${operator}IfExists is true when the key is missing and otherwise behaves as ${operator}`, () => {
      const condition = { [`${operator}IfExists`]: { [K]: policyValue } };
      assert.equal(holds(condition, {}), true);
      assert.equal(holds(condition, { [K]: yes as string }), true);
      assert.equal(holds(condition, { [K]: no as string }), false);
    });
  }
});

describe('Null', () => {
  test('"true" holds only when the key is missing', () => {
    assert.equal(holds({ Null: { [K]: 'true' } }, {}), true);
    assert.equal(holds({ Null: { [K]: 'true' } }, { [K]: 'x' }), false);
  });
  test('"false" holds only when the key is present', () => {
    assert.equal(holds({ Null: { [K]: false } }, { [K]: 'x' }), true);
    assert.equal(holds({ Null: { [K]: false } }, {}), false);
  });
  test('an empty multi-valued key counts as missing', () => {
    assert.equal(holds({ Null: { [K]: 'true' } }, { [K]: [] }), true);
  });
});

describe('operator details', () => {
  test('Bool reads "true"/"false" strings from the request as well as booleans', () => {
    assert.equal(holds({ Bool: { 'aws:SecureTransport': 'false' } }, { 'aws:SecureTransport': 'false' }), true);
    assert.equal(holds({ Bool: { 'aws:SecureTransport': 'false' } }, { 'aws:SecureTransport': 'yes' }), false);
  });
  test('numeric and date operators do not match values they cannot read', () => {
    assert.equal(holds({ NumericGreaterThan: { [K]: '1' } }, { [K]: 'lots' }), false);
    assert.equal(holds({ DateLessThan: { [K]: '2030-01-01T00:00:00Z' } }, { [K]: 'yesterday' }), false);
  });
  test('dates compare by instant: epoch seconds against ISO, offsets honoured', () => {
    assert.equal(holds({ DateLessThan: { 'aws:EpochTime': '2024-01-01T00:00:00Z' } }, { 'aws:EpochTime': 1704067199 }), true);
    assert.equal(holds({ DateLessThan: { 'aws:EpochTime': '2024-01-01T00:00:00Z' } }, { 'aws:EpochTime': 1704067200 }), false);
    assert.equal(holds({ DateEquals: { [K]: '2024-01-01T00:00:00-05:00' } }, { [K]: '2024-01-01T05:00:00Z' }), true);
    assert.equal(holds({ DateEquals: { [K]: '2024-02-29' } }, { [K]: '2024-02-29T00:00:00.000Z' }), true, 'a date alone is midnight UTC');
    assert.equal(holds({ DateLessThan: { [K]: '0100-01-01T00:00:00Z' } }, { [K]: '0050-06-01T00:00:00Z' }), true, 'years before 100 stay themselves');
  });
  test('IpAddress: IPv6 blocks, single addresses, and IPv4 peers reported as IPv4-mapped IPv6', () => {
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '2001:db8::/32' } }, { 'aws:SourceIp': '2001:db8:1::5' }), true);
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '2001:db8::/32' } }, { 'aws:SourceIp': '2001:db9::5' }), false);
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '192.0.2.7' } }, { 'aws:SourceIp': '192.0.2.7' }), true);
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '192.0.2.7' } }, { 'aws:SourceIp': '192.0.2.8' }), false);
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } }, { 'aws:SourceIp': '::ffff:10.9.8.7' }), true);
    assert.equal(holds({ IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } }, { 'aws:SourceIp': 'not-an-ip' }), false);
  });
  test('ARN operators match each of the six components on its own: a wildcard never spans a colon', () => {
    const condition = { ArnLike: { 'aws:PrincipalArn': 'arn:aws:iam::*:user/x' } };
    assert.equal(holds(condition, { 'aws:PrincipalArn': `arn:aws:iam::${A}:user/x` }), true);
    assert.equal(holds(condition, { 'aws:PrincipalArn': `arn:aws:iam::${A}:extra:user/x` }), false);
    assert.equal(holds({ ArnEquals: { [K]: `arn:aws:kms:*:${A}:key/*` } }, { [K]: KEY_A }), true, 'ArnEquals takes wildcards too, as in AWS');
    assert.equal(holds({ ArnLike: { [K]: `arn:aws:kms:*:${A}:key/*` } }, { [K]: 'not-an-arn' }), false);
  });
  test('StringLike is case-sensitive, StringEquals does not expand wildcards', () => {
    assert.equal(holds({ StringLike: { [K]: 'App*' } }, { [K]: 'application' }), false);
    assert.equal(holds({ StringEquals: { [K]: 'a*' } }, { [K]: 'abc' }), false);
    assert.equal(holds({ StringEquals: { [K]: 'a*' } }, { [K]: 'a*' }), true);
  });
  test('numbers and booleans in the request compare as their text under string operators', () => {
    assert.equal(holds({ StringEquals: { [K]: '42' } }, { [K]: 42 }), true);
    assert.equal(holds({ StringEquals: { [K]: true } }, { [K]: 'true' }), true);
  });
});

describe('several values, keys and operators', () => {
  test('several values for one key are ORed', () => {
    assert.equal(holds({ StringEquals: { [K]: ['a', 'b'] } }, { [K]: 'b' }), true);
    assert.equal(holds({ StringEquals: { [K]: ['a', 'b'] } }, { [K]: 'c' }), false);
  });
  test('several values under a negated operator are NORed', () => {
    assert.equal(holds({ StringNotEquals: { [K]: ['a', 'b'] } }, { [K]: 'b' }), false);
    assert.equal(holds({ StringNotEquals: { [K]: ['a', 'b'] } }, { [K]: 'c' }), true);
    assert.equal(holds({ NotIpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '192.168.0.0/16'] } }, { 'aws:SourceIp': '192.168.1.1' }), false);
  });
  test('several keys under one operator are ANDed', () => {
    const condition = { StringEquals: { 'tp:A': 'x', 'tp:B': 'y' } };
    assert.equal(holds(condition, { 'tp:A': 'x', 'tp:B': 'y' }), true);
    assert.equal(holds(condition, { 'tp:A': 'x', 'tp:B': 'z' }), false);
  });
  test('several operators are ANDed', () => {
    const condition = { StringEquals: { 'tp:A': 'x' }, NumericLessThan: { 'tp:N': '5' } };
    assert.equal(holds(condition, { 'tp:A': 'x', 'tp:N': 4 }), true);
    assert.equal(holds(condition, { 'tp:A': 'x', 'tp:N': 6 }), false);
  });
  test('condition key names ignore case; values do not', () => {
    assert.equal(holds({ StringEquals: { 'KMS:VIASERVICE': 'ec2.us-east-1.amazonaws.com' } }, { 'kms:ViaService': 'ec2.us-east-1.amazonaws.com' }), true);
    assert.equal(holds({ StringEquals: { 'kms:viaservice': 'ec2.us-east-1.amazonaws.com' } }, { 'KMS:ViaService': 'EC2.us-east-1.amazonaws.com' }), false);
  });
});

describe('set qualifiers on multi-valued keys', () => {
  const T = 'aws:TagKeys';
  test('ForAllValues: every request value must match one policy value', () => {
    const c = { 'ForAllValues:StringEquals': { [T]: ['a', 'b'] } };
    assert.equal(holds(c, { [T]: ['a'] }), true);
    assert.equal(holds(c, { [T]: ['a', 'b'] }), true);
    assert.equal(holds(c, { [T]: ['a', 'c'] }), false);
  });
  test('ForAllValues is true when the key is missing or empty', () => {
    const c = { 'ForAllValues:StringEquals': { [T]: ['a'] } };
    assert.equal(holds(c, {}), true);
    assert.equal(holds(c, { [T]: [] }), true);
  });
  test('ForAnyValue: at least one request value must match', () => {
    const c = { 'ForAnyValue:StringEquals': { [T]: ['a'] } };
    assert.equal(holds(c, { [T]: ['c', 'a'] }), true);
    assert.equal(holds(c, { [T]: ['c'] }), false);
  });
  test('ForAnyValue is false when the key is missing or empty, even for a negated operator', () => {
    assert.equal(holds({ 'ForAnyValue:StringEquals': { [T]: 'a' } }, {}), false);
    assert.equal(holds({ 'ForAnyValue:StringEquals': { [T]: 'a' } }, { [T]: [] }), false);
    assert.equal(holds({ 'ForAnyValue:StringNotEquals': { [T]: 'a' } }, {}), false);
  });
  test('AWS example: Deny with ForAllValues:StringNotLike {"aws:TagKeys": "key1*"}', () => {
    const c = { 'ForAllValues:StringNotLike': { [T]: 'key1*' } };
    assert.equal(holds(c, { [T]: ['key1:legal'] }), false);
    assert.equal(holds(c, { [T]: ['key1:hr', 'key1:personnel'] }), false);
    assert.equal(holds(c, { [T]: ['key2:audit'] }), true);
    assert.equal(holds(c, {}), true, 'missing key: ForAllValues matches');
  });
  test('ForAllValues with a negated operator: no request value may match any policy value', () => {
    const c = { 'ForAllValues:StringNotEquals': { [T]: ['a', 'b'] } };
    assert.equal(holds(c, { [T]: ['c', 'd'] }), true);
    assert.equal(holds(c, { [T]: ['c', 'a'] }), false);
  });
  test('ForAnyValue with a negated operator: some request value matches none of the policy values', () => {
    const c = { 'ForAnyValue:StringNotEquals': { [T]: ['a', 'b'] } };
    assert.equal(holds(c, { [T]: ['a', 'c'] }), true);
    assert.equal(holds(c, { [T]: ['a', 'b'] }), false);
  });
  test('ForAnyValue…IfExists is true when the key is missing', () => {
    assert.equal(holds({ 'ForAnyValue:StringLikeIfExists': { [T]: 'a*' } }, {}), true);
  });
  test('qualifiers apply to other operator families too', () => {
    assert.equal(holds({ 'ForAllValues:NumericLessThan': { 'tp:Sizes': '10' } }, { 'tp:Sizes': ['1', '9'] }), true);
    assert.equal(holds({ 'ForAllValues:NumericLessThan': { 'tp:Sizes': '10' } }, { 'tp:Sizes': ['1', '10'] }), false);
  });
  test('an unqualified operator on a multi-valued key: any value for positive operators, none for negated', () => {
    assert.equal(holds({ StringEquals: { 'tp:HostClass': 'db' } }, { 'tp:HostClass': ['web', 'db'] }), true);
    assert.equal(holds({ StringEquals: { 'tp:HostClass': 'db' } }, { 'tp:HostClass': ['web'] }), false);
    assert.equal(holds({ StringNotEquals: { 'tp:HostClass': 'db' } }, { 'tp:HostClass': ['web', 'db'] }), false);
    assert.equal(holds({ StringNotEquals: { 'tp:HostClass': 'db' } }, { 'tp:HostClass': ['web'] }), true);
  });
});

describe('AWS KMS examples with kms:EncryptionContextKeys', () => {
  const now = new Date('2024-06-01T12:00:00Z');
  const keys = (encryptionContext?: Record<string, string>) => kmsConditionKeys({ principal: principal('user'), now, encryptionContext });

  test('ForAnyValue:StringEquals "AppName": the context must include that key, possibly among others', () => {
    const c = { 'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': 'AppName' } };
    assert.equal(holds(c, keys({ AppName: 'ExampleApp', FilePath: '/var/x' })), true);
    assert.equal(holds(c, keys({ FilePath: '/var/x' })), false);
    assert.equal(holds(c, keys()), false, 'no encryption context');
    assert.equal(holds(c, keys({ appname: 'ExampleApp' })), false, 'the key names in the value are case-sensitive');
  });
  test('ForAllValues:StringEquals ["AppName", "FilePath"]: only those keys, and (as AWS warns) no context at all', () => {
    const c = { 'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['AppName', 'FilePath'] } };
    assert.equal(holds(c, keys({ AppName: 'x' })), true);
    assert.equal(holds(c, keys({ AppName: 'x', FilePath: 'y' })), true);
    assert.equal(holds(c, keys({ AppName: 'x', Purpose: 'z' })), false);
    assert.equal(holds(c, keys()), true, 'ForAllValues over a missing key is true');
    assert.equal(holds(c, keys({})), true, 'and over an empty context');
  });
  test('adding Null false on kms:EncryptionContextKeys refuses requests without an encryption context', () => {
    const c = { 'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['AppName', 'FilePath'] }, Null: { 'kms:EncryptionContextKeys': 'false' } };
    assert.equal(holds(c, keys()), false);
    assert.equal(holds(c, keys({ AppName: 'x' })), true);
  });
  test('ForAllValues and ForAnyValue together: exactly the required keys', () => {
    const c = {
      'ForAllValues:StringEquals': { 'kms:EncryptionContextKeys': ['AppName', 'FilePath'] },
      'ForAnyValue:StringEquals': { 'kms:EncryptionContextKeys': ['AppName'] },
    };
    assert.equal(holds(c, keys({ AppName: 'x', FilePath: 'y' })), true);
    assert.equal(holds(c, keys({ FilePath: 'y' })), false);
    assert.equal(holds(c, keys()), false);
  });
  test('kms:EncryptionContext:<key>: the key part of the name ignores case, the value does not', () => {
    assert.equal(holds({ StringEquals: { 'kms:EncryptionContext:AppName': 'ExampleApp' } }, keys({ appname: 'ExampleApp' })), true);
    assert.equal(holds({ StringEquals: { 'kms:EncryptionContext:AppName': 'ExampleApp' } }, keys({ AppName: 'exampleapp' })), false);
    assert.equal(holds({ StringEqualsIgnoreCase: { 'kms:EncryptionContext:AppName': 'ExampleApp' } }, keys({ AppName: 'exampleapp' })), true);
  });
  test('two context keys differing only in case are read to the caller\'s disadvantage', () => {
    const both = keys({ Stage: 'prod', stage: 'dev' });
    assert.equal(denies({ StringNotEquals: { 'kms:EncryptionContext:stage': 'prod' } }, both), true, 'a Deny holds if it holds for either value');
    assert.equal(denies({ StringEquals: { 'kms:EncryptionContext:stage': 'dev' } }, both), true);
    assert.equal(holds({ StringEquals: { 'kms:EncryptionContext:stage': 'prod' } }, both), false, 'an Allow only if it holds for both');
    assert.equal(holds({ StringNotEquals: { 'kms:EncryptionContext:stage': 'dev' } }, both), false);
    assert.equal(holds({ StringLike: { 'kms:EncryptionContext:stage': '*' } }, both), true);
  });
});

describe('policy variables (2012-10-17)', () => {
  const alice = principal('user', 'alice', A, { team: 'payments', odd: '*' });
  const evaluateWith = (statement: Record<string, unknown>, who = alice, extra: Record<string, unknown> = {}, keys?: Record<string, string>) =>
    evaluatePolicy(identityPolicy({ Effect: 'Allow', Action: 'kms:*', ...statement }, 'p', extra),
      request(who, 'kms:Decrypt', KEY_A, { ...kmsConditionKeys({ principal: who, now: new Date(0) }), ...keys })).effect;

  test('${aws:username} in a condition value', () => {
    const statement = { Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:owner': '${aws:username}' } } };
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:owner': 'alice' }), 'Allow');
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:owner': 'bob' }), 'NoMatch');
  });
  test('a variable without a value matches nothing (and so a negated operator holds)', () => {
    const root = principal('root', '', A);
    const positive = { Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:owner': '${aws:username}' } } };
    assert.equal(evaluateWith(positive, root, {}, { 'kms:EncryptionContext:owner': '' }), 'NoMatch');
    const negated = { Resource: '*', Condition: { StringNotEquals: { 'kms:EncryptionContext:owner': '${aws:username}' } } };
    assert.equal(evaluateWith(negated, root, {}, { 'kms:EncryptionContext:owner': 'x' }), 'Allow');
  });
  test('a default value stands in for a missing key', () => {
    const statement = { Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:team': "${aws:PrincipalTag/unit, 'none'}" } } };
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:team': 'none' }), 'Allow');
  });
  test('${aws:PrincipalTag/team} and ${aws:PrincipalAccount} in Resource', () => {
    assert.equal(evaluateWith({ Resource: 'arn:aws:kms:*:${aws:PrincipalAccount}:key/*' }), 'Allow');
    assert.equal(evaluateWith({ Resource: 'arn:aws:kms:*:${aws:PrincipalTag/team}:key/*' }), 'NoMatch');
  });
  test('a substituted value is literal even if it contains a wildcard', () => {
    const statement = { Resource: '*', Condition: { StringLike: { 'kms:EncryptionContext:x': '${aws:PrincipalTag/odd}' } } };
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:x': 'anything' }), 'NoMatch');
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:x': '*' }), 'Allow');
  });
  test('${*} is a literal asterisk', () => {
    const statement = { Resource: '*', Condition: { StringLike: { 'kms:EncryptionContext:x': 'a${*}' } } };
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:x': 'a*' }), 'Allow');
    assert.equal(evaluateWith(statement, alice, {}, { 'kms:EncryptionContext:x': 'ab' }), 'NoMatch');
  });
  test('without Version 2012-10-17, ${…} is plain text', () => {
    const statement = { Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:owner': '${aws:username}' } } };
    assert.equal(evaluateWith(statement, alice, { Version: '2008-10-17' }, { 'kms:EncryptionContext:owner': 'alice' }), 'NoMatch');
    assert.equal(evaluateWith(statement, alice, { Version: '2008-10-17' }, { 'kms:EncryptionContext:owner': '${aws:username}' }), 'Allow');
  });
});

test('a wildcard pattern built to backtrack does not stall evaluation', () => {
  const started = performance.now();
  const pattern = '*a*a*a*a*a*a*a*a*a*a*a*a*b';
  assert.equal(holds({ StringLike: { [K]: pattern } }, { [K]: 'a'.repeat(20_000) }), false);
  assert.ok(performance.now() - started < 500, 'linear-time matching');
});
