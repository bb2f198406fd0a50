// Combines a resource (key) policy, the caller's identity policies and grants into one decision, as AWS KMS does.
// Must never let anything outrank an explicit Deny, nor let an identity policy count unless the resource policy lets it.
import { PolicyInputError } from '../errors.ts';
import type { CompiledPolicy } from './compile.ts';
import { evaluatePrepared, prepareRequest, traceStatements, type PreparedRequest } from './evaluate.ts';
import type {
  AccessDecision, DecisionRef, GrantDecider, PolicyEvaluation, RequestContext, SimulationResult, StatementRef, StatementTrace,
} from './types.ts';

export interface DecideAccessInput {
  /** The resource's own policy (a key policy). Absent for actions on no particular resource (CreateKey, ListKeys). */
  readonly resourcePolicy?: CompiledPolicy;
  /** The caller's identity policies, which live in the caller's account. */
  readonly identityPolicies: readonly CompiledPolicy[];
  /** Whether a grant allows this request; a function is called only when no policy allows it. */
  readonly grantsAllow?: boolean | GrantDecider;
  /** The account that owns the resource. */
  readonly resourceAccountId: string;
  readonly context: RequestContext;
}

/**
 * The decision, following AWS KMS:
 * 1. an explicit Deny in the resource policy or any identity policy wins;
 * 2. a resource-policy Allow naming the caller (or `*`) suffices within the resource's account;
 * 3. a resource-policy Allow naming the caller's account delegates to the caller's identity policies, which must
 *    then allow too; the account root needs no identity policy (it holds every permission of its account);
 * 4. across accounts, an Allow naming the caller or its account is necessary but, except for that account's root,
 *    not sufficient: the caller's own identity policies must allow as well;
 * 5. with no resource policy, identity policies (or being the root) decide within the caller's own account only;
 * 6. a grant allows;
 * 7. otherwise the request is implicitly denied.
 */
export function decideAccess(input: DecideAccessInput): AccessDecision {
  checkKinds(input);
  return decidePrepared(input, prepareRequest(input.context));
}

function checkKinds(input: DecideAccessInput): void {
  if (input.resourcePolicy !== undefined && input.resourcePolicy.kind !== 'resource') {
    throw new PolicyInputError('the resource policy was compiled as an identity policy');
  }
  for (const policy of input.identityPolicies) {
    if (policy.kind !== 'identity') throw new PolicyInputError('an identity policy was compiled as a resource policy');
  }
}

const ref = (source: DecisionRef['source'], statement: StatementRef): DecisionRef => ({ source, ...statement });

function describe(decision: DecisionRef): string {
  if (decision.source === 'grant') return decision.grantId ? `grant ${decision.grantId}` : 'a grant';
  const statement = `statement ${decision.index! + 1}${decision.sid ? ` (Sid ${decision.sid})` : ''}`;
  const policy = decision.source === 'resource-policy' ? 'the resource policy' : 'identity policy';
  return `${statement} of ${policy}${decision.policyId ? ` ${decision.policyId}` : ''}`;
}

function decidePrepared(input: DecideAccessInput, request: PreparedRequest): AccessDecision {
  const { principal, action } = request.context;
  const who = principal.arn;
  const resourceEval: PolicyEvaluation | undefined = input.resourcePolicy && evaluatePrepared(input.resourcePolicy, request);
  if (resourceEval?.effect === 'Deny') {
    const decidedBy = ref('resource-policy', resourceEval.statement!);
    return { decision: 'ExplicitDeny', decidedBy, reason: `${action} is explicitly denied to ${who} by ${describe(decidedBy)}` };
  }
  let identityAllow: DecisionRef | undefined;
  for (const policy of input.identityPolicies) {
    const evaluation = evaluatePrepared(policy, request);
    if (evaluation.effect === 'Deny') {
      const decidedBy = ref('identity-policy', evaluation.statement!);
      return { decision: 'ExplicitDeny', decidedBy, reason: `${action} is explicitly denied to ${who} by ${describe(decidedBy)}` };
    }
    if (evaluation.effect === 'Allow' && identityAllow === undefined) identityAllow = ref('identity-policy', evaluation.statement!);
  }

  const sameAccount = principal.accountId === input.resourceAccountId;
  const isRoot = principal.kind === 'root';
  let denial: string;
  if (resourceEval !== undefined) {
    if (resourceEval.effect === 'Allow') {
      const enabledBy = ref('resource-policy', resourceEval.statement!);
      const named = resourceEval.principalMatch === 'explicit' ? 'names the caller' : `allows account ${principal.accountId}`;
      if (sameAccount && resourceEval.principalMatch === 'explicit') {
        return { decision: 'Allow', decidedBy: enabledBy, reason: `allowed: ${describe(enabledBy)} names ${who} for ${action}` };
      }
      if (isRoot) {
        return {
          decision: 'Allow', decidedBy: enabledBy,
          reason: `allowed: ${describe(enabledBy)} ${named}, and the caller is the root of account ${principal.accountId}`,
        };
      }
      if (identityAllow !== undefined) {
        const how = sameAccount ? `delegates to account ${principal.accountId} in ${describe(enabledBy)}` : `${named} across accounts in ${describe(enabledBy)}`;
        return {
          decision: 'Allow', decidedBy: identityAllow, enabledBy,
          reason: `allowed: ${describe(identityAllow)} allows ${action} and the resource policy ${how}`,
        };
      }
      denial = sameAccount
        ? `the resource policy delegates to account ${principal.accountId} (${describe(enabledBy)}), but no identity policy of ${who} allows ${action}`
        : `${describe(enabledBy)} ${named} from account ${principal.accountId}, but cross-account use also needs an identity policy of ${who} allowing ${action}`;
    } else {
      denial = identityAllow !== undefined
        ? `${describe(identityAllow)} allows ${action}, but the resource policy neither names ${who} nor allows account ${principal.accountId}`
        : `no statement of the resource policy allows ${who} to ${action}`;
    }
  } else if (!sameAccount) {
    denial = `${who} has no access to resources of account ${input.resourceAccountId} without a resource policy naming it`;
  } else if (isRoot) {
    return { decision: 'Allow', reason: `allowed: the root of account ${principal.accountId} needs no policy for its own account's ${action}` };
  } else if (identityAllow !== undefined) {
    return { decision: 'Allow', decidedBy: identityAllow, reason: `allowed: ${describe(identityAllow)} allows ${action}` };
  } else {
    denial = `no identity policy of ${who} allows ${action}`;
  }

  const grant = typeof input.grantsAllow === 'function' ? input.grantsAllow() : input.grantsAllow;
  if (grant) {
    const decidedBy: DecisionRef = typeof grant === 'object' ? { source: 'grant', grantId: grant.grantId } : { source: 'grant' };
    return { decision: 'Allow', decidedBy, reason: `allowed by ${describe(decidedBy)}` };
  }
  return { decision: 'ImplicitDeny', reason: `implicitly denied: ${denial}` };
}

/** The decision plus every statement's outcome, for `trustplane policy simulate`. */
export function simulate(input: DecideAccessInput): SimulationResult {
  checkKinds(input);
  const request = prepareRequest(input.context);
  const decision = decidePrepared(input, request);
  const statements: StatementTrace[] = [];
  if (input.resourcePolicy !== undefined) statements.push(...traceStatements(input.resourcePolicy, request, 'resource-policy'));
  for (const policy of input.identityPolicies) statements.push(...traceStatements(policy, request, 'identity-policy'));
  return { ...decision, matchedStatements: statements.filter((statement) => statement.matched), statements };
}

/**
 * AWS's lockout safety check for PutKeyPolicy: would the caller still be allowed kms:PutKeyPolicy once the new
 * policy is in place? Same inputs as decideAccess; the new policy stands in for input.resourcePolicy and the action
 * is kms:PutKeyPolicy whatever the context says. An
 * Allow that names the caller's account keeps a caller whose identity policy allows it; grants never count,
 * because no grant can carry PutKeyPolicy.
 */
export function checkLockout(newPolicy: CompiledPolicy, input: DecideAccessInput): boolean {
  if (newPolicy.kind !== 'resource') throw new PolicyInputError('the new key policy was compiled as an identity policy');
  const context: RequestContext = { ...input.context, action: 'kms:PutKeyPolicy' };
  return decideAccess({ ...input, resourcePolicy: newPolicy, grantsAllow: false, context }).decision === 'Allow';
}
