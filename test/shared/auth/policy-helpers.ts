// Builders shared by the policy engine's tests: accounts, principals, policies and request contexts.
// Must never hide what a test checks: helpers build inputs, assertions stay in the tests.
import {
  compilePolicyDocument, evaluatePolicy, type CompiledPolicy, type ConditionKeyValue, type RequestContext,
  type RequestPrincipal, type RequestPrincipalKind,
} from '../../../src/shared/auth/policy/index.ts';

export const A = '111122223333';
export const B = '444455556666';
export const KEY_A = `arn:aws:kms:us-east-1:${A}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
export const KEY_B = `arn:aws:kms:us-east-1:${B}:key/0987dcba-09fe-87dc-65ba-ab0987654321`;

type Json = Record<string, unknown>;

export function principal(kind: RequestPrincipalKind, name = 'alice', account = A, tags?: Record<string, string>): RequestPrincipal {
  const arn = {
    root: `arn:aws:iam::${account}:root`,
    user: `arn:aws:iam::${account}:user/${name}`,
    role: `arn:aws:iam::${account}:role/${name}`,
    'assumed-role': `arn:aws:sts::${account}:assumed-role/${name}/session-1`,
    host: `arn:aws:iam::${account}:host/${name}`,
  }[kind];
  return { arn, accountId: account, kind, ...(tags ? { tags } : {}) };
}

export function document(statements: Json | Json[], extra: Json = {}): string {
  return JSON.stringify({ Version: '2012-10-17', ...extra, Statement: statements });
}

export function keyPolicy(statements: Json | Json[], policyId = 'key-policy', extra: Json = {}): CompiledPolicy {
  return compilePolicyDocument(document(statements, extra), { kind: 'resource', policyId });
}

export function identityPolicy(statements: Json | Json[], policyId = 'inline', extra: Json = {}): CompiledPolicy {
  return compilePolicyDocument(document(statements, extra), { kind: 'identity', policyId });
}

/** The key policy AWS KMS gives a new key: the account root may do everything, i.e. delegation to IAM. */
export function defaultKeyPolicy(account = A): CompiledPolicy {
  return keyPolicy({
    Sid: 'Enable IAM User Permissions', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${account}:root` }, Action: 'kms:*', Resource: '*',
  });
}

export function request(who: RequestPrincipal, action = 'kms:Decrypt', resource = KEY_A, conditionKeys: Record<string, ConditionKeyValue> = {}): RequestContext {
  return { principal: who, action, resource, conditionKeys };
}

/**
 * Whether a condition block holds for the given keys: wraps it in an identity policy allowing everything
 * under that condition, so the statement matches exactly when the condition is true.
 */
export function holds(condition: Json, keys: Record<string, ConditionKeyValue>, extra: Json = {}): boolean {
  const policy = identityPolicy({ Effect: 'Allow', Action: '*', Resource: '*', Condition: condition }, 'probe', extra);
  return evaluatePolicy(policy, request(principal('user'), 'kms:Decrypt', KEY_A, keys)).effect === 'Allow';
}

/** Whether a Deny statement with this condition applies to the given keys. */
export function denies(condition: Json, keys: Record<string, ConditionKeyValue>): boolean {
  const policy = identityPolicy({ Effect: 'Deny', Action: '*', Resource: '*', Condition: condition }, 'probe');
  return evaluatePolicy(policy, request(principal('user'), 'kms:Decrypt', KEY_A, keys)).effect === 'Deny';
}
