// The policy engine trustplane authorises with: the IAM policy evaluator in ./policy behind the
// Authorizer's PolicyEngine interface, with compiled policies cached by document.
// Must never allow what no policy allows, nor evaluate a document it has not validated.
import {
  compilePolicyDocument, decideAccess, kmsConditionKeys, simulate, type CompiledPolicy, type ConditionKeyValue,
  type DecideAccessInput, type DecisionRef, type SimulationResult,
} from './policy/index.ts';
import type { AccessDecision, AccessRequest, PolicyDocumentKind, PolicyEngine, SimulatedDecision } from './authorizer.ts';
import type { Caller } from './credentials.ts';

const MAX_CACHED_POLICIES = 5_000;
/** Per kind, document → its compiled form under each name it is used with; validation warms what requests use. */
const compiled: Record<PolicyDocumentKind, Map<string, Map<string, CompiledPolicy>>> = {
  resource: new Map(), trust: new Map(), identity: new Map(),
};

/** Compiles (or takes from cache) a policy document; throws PolicyDocumentError when malformed. */
function compile(document: string, kind: PolicyDocumentKind, policyId: string): CompiledPolicy {
  const cache = compiled[kind];
  let byName = cache.get(document);
  if (!byName) {
    // A role's trust policy is a resource policy whose resource is the role itself: AWS refuses a Resource there.
    const policy = compilePolicyDocument(document, kind === 'trust' ? { kind: 'resource', resource: 'forbidden', policyId } : { kind, policyId });
    if (cache.size >= MAX_CACHED_POLICIES) cache.delete(cache.keys().next().value as string);
    byName = new Map([[policyId, policy]]);
    cache.set(document, byName);
  }
  let policy = byName.get(policyId);
  if (!policy) {
    // Same text attached elsewhere: reuse the compiled statements, only the name decisions report differs.
    policy = { ...(byName.values().next().value as CompiledPolicy), policyId };
    byName.set(policyId, policy);
  }
  return policy;
}

export function describeDecisionRef(ref: DecisionRef | undefined): string | undefined {
  if (!ref) return undefined;
  if (ref.source === 'grant') return ref.grantId ? `grant:${ref.grantId}` : 'grant';
  return `${ref.source}${ref.policyId ? `:${ref.policyId}` : ''}#${ref.sid ?? ref.index}`;
}

function decideInput(input: { caller: Caller; request: AccessRequest; identityPolicies: Array<{ name: string; document: string }>;
  now: Date }): DecideAccessInput {
  const { caller, request } = input;
  const principal = { arn: caller.principalArn, accountId: caller.accountId, kind: caller.kind, tags: caller.tags };
  const conditionKeys: Record<string, ConditionKeyValue> = {
    ...kmsConditionKeys({ principal, now: input.now, sourceIp: caller.sourceIp,
      roleArn: caller.kind === 'assumed-role' ? caller.identityArn : undefined,
      encryptionContext: request.kms?.encryptionContext, requestAlias: request.kms?.requestAlias,
      keySpec: request.kms?.keySpec, keyUsage: request.kms?.keyUsage }),
    ...(request.conditionKeys as Record<string, ConditionKeyValue> | undefined),
  };
  return {
    resourcePolicy: request.resourcePolicy === undefined ? undefined
      : compile(request.resourcePolicy, request.resourcePolicyKind ?? 'resource', request.resourcePolicyKind === 'trust' ? 'trust-policy' : 'key-policy'),
    identityPolicies: input.identityPolicies.map((policy) => compile(policy.document, 'identity', policy.name)),
    grantsAllow: request.grantAllows === true,
    resourceAccountId: request.resourceAccountId,
    context: { principal, action: request.action, resource: request.resource, conditionKeys },
  };
}

export const policyEngine: PolicyEngine = {
  validate(document: string, kind: PolicyDocumentKind): void {
    compile(document, kind, 'validation');
  },
  decide(input): AccessDecision {
    const decision = decideAccess(decideInput(input));
    return { allowed: decision.decision === 'Allow', decision: decision.decision,
      decidedBy: describeDecisionRef(decision.decidedBy), reason: decision.reason };
  },
  simulate(input): SimulatedDecision {
    const result: SimulationResult = simulate(decideInput(input));
    return { allowed: result.decision === 'Allow', decision: result.decision, decidedBy: describeDecisionRef(result.decidedBy),
      enabledBy: describeDecisionRef(result.enabledBy), reason: result.reason, evaluatedStatements: result.statements.length,
      matchedStatements: result.matchedStatements.map((trace) => ({ source: trace.source, policyId: trace.policyId, sid: trace.sid,
        index: trace.index, effect: trace.effect })) };
  },
};
