import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_POLICY_BYTES, MAX_STATEMENTS, PolicyDocumentError, parsePolicy, type PolicyKind,
} from '../../../src/shared/auth/policy/index.ts';
import { A } from './policy-helpers.ts';

const ROOT = { AWS: `arn:aws:iam::${A}:root` };
const ok = { Effect: 'Allow', Principal: ROOT, Action: 'kms:*', Resource: '*' };

/** Asserts that the document is refused with exactly this reason. */
function refuses(document: unknown, reason: string | RegExp, kind: PolicyKind = 'resource'): void {
  const text = typeof document === 'string' ? document : JSON.stringify(document);
  assert.throws(() => parsePolicy(text, { kind }), (error: unknown) => {
    assert.ok(error instanceof PolicyDocumentError, `expected PolicyDocumentError, got ${String(error)}`);
    assert.equal(error.code, 'MalformedPolicyDocumentException');
    assert.equal(error.httpStatus, 400);
    if (typeof reason === 'string') assert.equal(error.message, reason);
    else assert.match(error.message, reason);
    return true;
  });
}

const policy = (statement: unknown, top: Record<string, unknown> = {}) => ({ Version: '2012-10-17', ...top, Statement: statement });

describe('accepted documents', () => {
  test('the AWS KMS default key policy', () => {
    const parsed = parsePolicy(JSON.stringify(policy([{ Sid: 'Enable IAM User Permissions', ...ok }], { Id: 'key-default-1' })), { kind: 'resource' });
    assert.equal(parsed.id, 'key-default-1');
    assert.equal(parsed.version, '2012-10-17');
    assert.deepEqual(parsed.statements[0], {
      index: 0, sid: 'Enable IAM User Permissions', effect: 'Allow', principal: { any: false, aws: [ROOT.AWS], service: [] },
      notPrincipal: undefined, action: ['kms:*'], resource: ['*'], conditions: [],
    });
  });
  test('a single statement object, no Version, NotAction/NotResource, Service principals', () => {
    const parsed = parsePolicy(JSON.stringify({ Statement: { Effect: 'Deny', Principal: { Service: 'logs.amazonaws.com', AWS: '*' }, NotAction: 'kms:Decrypt', NotResource: 'arn:aws:kms:*:*:key/x' } }), { kind: 'resource' });
    assert.equal(parsed.version, undefined);
    assert.deepEqual(parsed.statements[0]!.notAction, ['kms:Decrypt']);
    assert.deepEqual(parsed.statements[0]!.principal, { any: true, aws: ['*'], service: ['logs.amazonaws.com'] });
  });
  test('condition values may be numbers and booleans; they are kept as text', () => {
    const parsed = parsePolicy(JSON.stringify(policy({ ...ok, Condition: { NumericLessThan: { 'tp:N': 5 }, Bool: { 'tp:Attested': true }, 'ForAnyValue:StringLikeIfExists': { 'kms:EncryptionContextKeys': ['a*', 'b'] } } })), { kind: 'resource' });
    assert.deepEqual(parsed.statements[0]!.conditions.map((c) => [c.operator, c.base, c.qualifier, c.ifExists, c.values]), [
      ['NumericLessThan', 'NumericLessThan', undefined, false, ['5']],
      ['Bool', 'Bool', undefined, false, ['true']],
      ['ForAnyValue:StringLikeIfExists', 'StringLike', 'ForAnyValue', true, ['a*', 'b']],
    ]);
  });
  test('an identity policy needs no Principal', () => {
    const parsed = parsePolicy(JSON.stringify(policy({ Effect: 'Allow', Action: ['kms:Encrypt', 'kms:Decrypt'], Resource: `arn:aws:kms:*:${A}:key/*` })), { kind: 'identity' });
    assert.equal(parsed.kind, 'identity');
    assert.deepEqual(parsed.statements[0]!.action, ['kms:Encrypt', 'kms:Decrypt']);
  });
  test('a trust policy (resource: forbidden) has no Resource, and applies to whatever it is attached to', () => {
    const trust = { Version: '2012-10-17', Statement: { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${A}:user/alice` }, Action: 'sts:AssumeRole' } };
    const parsed = parsePolicy(JSON.stringify(trust), { kind: 'resource', resource: 'forbidden' });
    assert.deepEqual(parsed.statements[0]!.resource, ['*']);
    refuses(trust, 'Statement 1: Resource is required');
    assert.throws(() => parsePolicy(JSON.stringify(policy(ok)), { kind: 'resource', resource: 'forbidden' }),
      { message: 'Statement 1: Resource is not allowed in this kind of policy (its resource is the one it is attached to)' });
  });
  test('every principal form we support', () => {
    const AWS = ['*', A, `arn:aws:iam::${A}:root`, `arn:aws:iam::${A}:user/alice`, `arn:aws:iam::${A}:user/division/bob`,
      `arn:aws:iam::${A}:role/ops`, `arn:aws:sts::${A}:assumed-role/ops/session-1`, `arn:aws:iam::${A}:host/web-1`];
    assert.deepEqual(parsePolicy(JSON.stringify(policy({ ...ok, Principal: { AWS } })), { kind: 'resource' }).statements[0]!.principal!.aws, AWS);
  });
});

describe('malformed documents: each reason', () => {
  test('too large', () => {
    const big = JSON.stringify(policy({ ...ok, Sid: 'x'.repeat(MAX_POLICY_BYTES) }));
    refuses(big, `the policy document is ${Buffer.byteLength(big)} bytes; the limit is ${MAX_POLICY_BYTES}`);
  });
  test('too many statements', () => {
    const statements = Array.from({ length: MAX_STATEMENTS + 1 }, () => ({ Effect: 'Allow', Principal: '*', Action: '*', Resource: '*' }));
    refuses(policy(statements), `the policy has ${MAX_STATEMENTS + 1} statements; the limit is ${MAX_STATEMENTS}`);
  });
  test('not JSON', () => refuses('{"Statement": [', /^the policy document is not valid JSON: /));
  test('not an object', () => refuses([ok], 'the policy document must be a JSON object'));
  test('a duplicated field, which JSON.parse would silently resolve to the last', () => {
    refuses('{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*"},' +
      '{"Effect":"Deny","Principal":"*","Action":"*","Resource":"*","Effect":"Allow"}]}', 'duplicate field "Effect" in Statement 2');
    refuses('{"Version":"2012-10-17","Version":"2012-10-17","Statement":[]}', 'duplicate field "Version" at the top level');
  });
  test('unknown top-level field, with a hint for a mis-cased one', () => {
    refuses({ ...policy(ok), Extra: 1 }, 'unknown field "Extra" at the top level');
    refuses({ version: '2012-10-17', Statement: ok }, 'unknown field "version" (did you mean Version?) at the top level');
  });
  test('unsupported Version', () => refuses(policy(ok, { Version: '2012-10-18' }), 'unsupported Version "2012-10-18"; use "2012-10-17"'));
  test('Id not a string', () => refuses(policy(ok, { Id: 7 }), 'Id must be a non-empty string'));
  test('no Statement, or an empty one', () => {
    refuses({ Version: '2012-10-17' }, 'the policy has no Statement');
    refuses(policy([]), 'Statement must contain at least one statement');
  });
  test('a statement that is not an object', () => refuses(policy([ok, 'Allow']), 'Statement 2: must be an object'));
  test('unknown statement field', () => {
    refuses(policy({ ...ok, Sid: 'S', Effects: 'Allow' }), 'Statement 1 (Sid S): unknown field "Effects"');
    refuses(policy({ ...ok, condition: {} }), 'Statement 1: unknown field "condition" (did you mean Condition?)');
  });
  test('Sid: not a string, empty, or duplicated', () => {
    refuses(policy({ ...ok, Sid: 5 }), 'Statement 1: Sid must be a non-empty string');
    refuses(policy({ ...ok, Sid: '' }), 'Statement 1: Sid must be a non-empty string');
    refuses(policy([{ ...ok, Sid: 'Same' }, ok, { ...ok, Sid: 'Same' }]), 'Statement 3 (Sid Same): duplicate Sid (statement 1 has it too)');
    refuses(policy({ ...ok, Sid: 'a\nStatement 9: forged' }), 'Statement 1: Sid must not contain control characters');
    refuses(policy(ok, { Id: 'key\u0007' }), 'Id must not contain control characters');
  });
  test('Effect: missing or not Allow/Deny', () => {
    refuses(policy({ Principal: '*', Action: '*', Resource: '*' }), 'Statement 1: Effect is required');
    refuses(policy({ ...ok, Sid: 'AllowUse', Effect: 'allow' }), 'Statement 1 (Sid AllowUse): Effect must be "Allow" or "Deny", not "allow"');
  });
  test('Principal rules for key policies', () => {
    refuses(policy({ Effect: 'Allow', Action: '*', Resource: '*' }), 'Statement 1: Principal is required in a key policy');
    refuses(policy({ ...ok, NotPrincipal: ROOT }), 'Statement 1: use either Principal or NotPrincipal, not both');
    refuses(policy({ Effect: 'Allow', NotPrincipal: ROOT, Action: '*', Resource: '*' }), 'Statement 1: NotPrincipal can only be used with "Effect": "Deny"');
  });
  test('no Principal in identity policies', () => {
    refuses(policy(ok), 'Statement 1: Principal is not allowed in an identity policy (it applies to the principal it is attached to)', 'identity');
    refuses(policy({ Effect: 'Deny', NotPrincipal: ROOT, Action: '*', Resource: '*' }), /^Statement 1: NotPrincipal is not allowed in an identity policy/, 'identity');
  });
  test('Principal shapes', () => {
    refuses(policy({ ...ok, Principal: A }), 'Statement 1: Principal must be "*" or an object such as {"AWS": "arn:aws:iam::111122223333:root"}');
    refuses(policy({ ...ok, Principal: {} }), 'Statement 1: Principal must name at least one principal');
    refuses(policy({ ...ok, Principal: { Federated: 'cognito-identity.amazonaws.com' } }), 'Statement 1: Principal type "Federated" is not supported (use AWS or Service)');
    refuses(policy({ ...ok, Principal: { AWS: [] } }), 'Statement 1: Principal AWS must be a string or a non-empty array of strings');
  });
  test('Principal entries', () => {
    refuses(policy({ ...ok, Principal: { AWS: `arn:aws:iam::${A}:user/*` } }),
      `Statement 1: Principal: wildcards are not allowed in principal "arn:aws:iam::${A}:user/*"; use ArnLike on aws:PrincipalArn instead`);
    refuses(policy({ ...ok, Principal: { AWS: '11112222333' } }), 'Statement 1: Principal: principal "11112222333" is not "*", a 12-digit account id or an IAM principal ARN');
    refuses(policy({ ...ok, Principal: { AWS: `arn:aws:iam::${A}:group/admins` } }), /unsupported IAM resource type "group"/);
    refuses(policy({ ...ok, Principal: { AWS: `arn:aws:sts::${A}:assumed-role/ops` } }), /is not an assumed-role session ARN/);
    refuses(policy({ ...ok, Principal: { AWS: `arn:aws:iam::${A}:user/` } }), /has an invalid name/);
  });
  test('Action rules', () => {
    refuses(policy({ Effect: 'Allow', Principal: '*', Resource: '*' }), 'Statement 1: Action is required');
    refuses(policy({ ...ok, NotAction: 'kms:Decrypt' }), 'Statement 1: use either Action or NotAction, not both');
    refuses(policy({ ...ok, Action: 5 }), 'Statement 1: Action must be a string or a non-empty array of strings');
    refuses(policy({ ...ok, Action: ['kms:Decrypt', ''] }), 'Statement 1: Action must contain only non-empty strings, not ""');
    refuses(policy({ ...ok, Action: 'Decrypt' }), 'Statement 1: Action entry "Decrypt" is not "*" or service:action (e.g. "kms:Decrypt", "kms:Get*")');
  });
  test('Resource rules (AWS KMS requires Resource in key policies too)', () => {
    refuses(policy({ Effect: 'Allow', Principal: '*', Action: '*' }), 'Statement 1: Resource is required');
    refuses(policy({ ...ok, NotResource: '*' }), 'Statement 1: use either Resource or NotResource, not both');
    refuses(policy({ ...ok, Resource: 'key/1234' }), 'Statement 1: Resource entry "key/1234" is not "*" or an ARN');
    refuses(policy({ ...ok, Resource: 'arn:aws:kms:*:${aws:PrincipalAccount:key/*' }), /^Statement 1: Resource: unterminated policy variable/);
  });
  test('Condition structure', () => {
    refuses(policy({ ...ok, Condition: [] }), 'Statement 1: Condition must be an object mapping operators to {"key": value} objects');
    refuses(policy({ ...ok, Sid: 'AllowUse', Condition: { StringEqualz: { 'kms:ViaService': 'x' } } }), 'Statement 1 (Sid AllowUse): unknown condition operator StringEqualz');
    refuses(policy({ ...ok, Condition: { 'ForSomeValues:StringEquals': { 'tp:X': 'x' } } }), 'Statement 1: unknown condition set qualifier ForSomeValues');
    refuses(policy({ ...ok, Condition: { NullIfExists: { 'tp:X': 'true' } } }), 'Statement 1: the Null operator cannot take the IfExists suffix');
    refuses(policy({ ...ok, Condition: { 'ForAllValues:Null': { 'tp:X': 'true' } } }), 'Statement 1: the Null operator cannot take the ForAllValues qualifier');
    refuses(policy({ ...ok, Condition: { stringequals: { 'tp:X': 'x' } } }), 'Statement 1: unknown condition operator stringequals');
    refuses(policy({ ...ok, Condition: { StringEquals: 'x' } }), 'Statement 1: condition operator StringEquals must map condition keys to values');
    refuses(policy({ ...ok, Condition: { StringEquals: {} } }), 'Statement 1: condition operator StringEquals has no condition keys');
    refuses(policy({ ...ok, Condition: { StringEquals: { ViaService: 'x' } } }), 'Statement 1: condition key "ViaService" under StringEquals is not of the form prefix:name');
  });
  test('Condition value types', () => {
    refuses(policy({ ...ok, Condition: { StringEquals: { 'tp:X': null } } }), 'Statement 1: condition StringEquals on tp:X: values must be strings, numbers or booleans, not null');
    refuses(policy({ ...ok, Condition: { StringEquals: { 'tp:X': [['a']] } } }), 'Statement 1: condition StringEquals on tp:X: values must be strings, numbers or booleans, not a nested array');
    refuses(policy({ ...ok, Condition: { StringEquals: { 'tp:X': { a: 1 } } } }), 'Statement 1: condition StringEquals on tp:X: values must be strings, numbers or booleans, not an object');
    refuses(policy({ ...ok, Condition: { StringEquals: { 'tp:X': [] } } }), 'Statement 1: condition StringEquals on tp:X has an empty list of values');
  });
  test('Condition values each operator family cannot read', () => {
    const value = (operator: string, v: unknown) => policy({ ...ok, Condition: { [operator]: { 'tp:X': v } } });
    refuses(value('NumericEquals', 'ten'), 'Statement 1: condition NumericEquals on tp:X: "ten" is not a number');
    refuses(value('NumericLessThan', true), 'Statement 1: condition NumericLessThan on tp:X: true is not a number');
    refuses(value('DateLessThan', '2024-13-01T00:00:00Z'), 'Statement 1: condition DateLessThan on tp:X: "2024-13-01T00:00:00Z" is not an ISO 8601 date-time or epoch seconds');
    refuses(value('DateGreaterThan', 'tomorrow'), /"tomorrow" is not an ISO 8601 date-time or epoch seconds/);
    refuses(value('DateEquals', '2023-02-29'), /"2023-02-29" is not an ISO 8601 date-time/);
    refuses(value('DateEquals', '2024-06-01T24:00:00Z'), /is not an ISO 8601 date-time/);
    refuses(value('Bool', 'yes'), 'Statement 1: condition Bool on tp:X: "yes" is not true or false');
    refuses(value('Null', 1), 'Statement 1: condition Null on tp:X: 1 is not true or false');
    refuses(value('IpAddress', '10.0.0.0/33'), 'Statement 1: condition IpAddress on tp:X: "10.0.0.0/33" is not an IPv4 or IPv6 address or CIDR block');
    refuses(value('NotIpAddress', 'localhost'), /"localhost" is not an IPv4 or IPv6 address or CIDR block/);
    refuses(value('ArnLike', 'user/alice'), 'Statement 1: condition ArnLike on tp:X: "user/alice" is not an ARN (arn:partition:service:region:account:resource)');
    refuses(value('BinaryEquals', 'not base64!'), 'Statement 1: condition BinaryEquals on tp:X: "not base64!" is not base64');
    refuses(value('StringEquals', '${aws:username'), /^Statement 1: condition StringEquals on tp:X: unterminated policy variable/);
    refuses(value('StringEquals', "${aws:username, bob}"), /must be in single quotes/);
  });
  test('a malformed variable is plain text in a 2008-10-17 policy', () => {
    assert.doesNotThrow(() => parsePolicy(JSON.stringify({ Version: '2008-10-17', Statement: { ...ok, Condition: { StringEquals: { 'tp:X': '${aws:username' } } } }), { kind: 'resource' }));
  });
});
