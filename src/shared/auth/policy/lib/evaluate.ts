// Evaluates one compiled policy against a request: which statement, if any, allows or denies it.
// Must never combine policies (that is decide.ts) nor let a Deny be outranked by an Allow within a policy.
import { PolicyInputError } from '../errors.ts';
import { matchAction, matchResource, type CompiledPolicy, type CompiledStatement } from './compile.ts';
import { keyView, type KeyView } from './context.ts';
import { describeCaller, excludedByNotPrincipal, matchPrincipal, type Caller } from './principals.ts';
import type { PolicyEvaluation, PrincipalMatch, RequestContext, StatementRef, StatementTrace } from './types.ts';
import { splitArn } from './wildcard.ts';

/** A request prepared once for all the policies of one decision. */
export interface PreparedRequest {
  readonly context: RequestContext;
  readonly caller: Caller;
  readonly actionLower: string;
  readonly resource: string;
  readonly resourceParts: readonly string[] | undefined;
  readonly keys: KeyView;
}

export function prepareRequest(context: RequestContext): PreparedRequest {
  if (typeof context.action !== 'string' || typeof context.resource !== 'string') {
    throw new PolicyInputError('a request context needs an action and a resource');
  }
  return {
    context,
    caller: describeCaller(context.principal),
    actionLower: context.action.toLowerCase(),
    resource: context.resource,
    resourceParts: splitArn(context.resource),
    keys: keyView(context.conditionKeys ?? {}),
  };
}

// Outcome codes keep the hot path free of allocations: positive = matched (and how), negative = why not.
const MATCH_EXPLICIT = 1;
const MATCH_ACCOUNT = 2;
const MATCH_NO_PRINCIPAL = 3;
const MISS_ACTION = -1;
const MISS_RESOURCE = -2;
const MISS_PRINCIPAL = -3;
const MISS_CONDITION = -4;

/** Cheapest checks first: action, resource, principal, then conditions in document order. */
function matchStatement(statement: CompiledStatement, request: PreparedRequest): number {
  if (matchAction(statement.actions, request.actionLower) === statement.notAction) return MISS_ACTION;
  if (matchResource(statement.resources, request.resource, request.resourceParts, request.keys) === statement.notResource) return MISS_RESOURCE;
  let outcome = MATCH_NO_PRINCIPAL;
  if (statement.principal !== undefined) {
    const match = matchPrincipal(statement.principal, request.caller.self);
    if (match === undefined) return MISS_PRINCIPAL;
    outcome = match === 'explicit' ? MATCH_EXPLICIT : MATCH_ACCOUNT;
  } else if (statement.notPrincipal !== undefined) {
    if (excludedByNotPrincipal(statement.notPrincipal, request.caller)) return MISS_PRINCIPAL;
    outcome = MATCH_EXPLICIT;
  }
  for (const condition of statement.conditions) if (!condition.test(request.keys)) return MISS_CONDITION;
  return outcome;
}

const principalMatchOf = (code: number): PrincipalMatch | undefined =>
  code === MATCH_EXPLICIT ? 'explicit' : code === MATCH_ACCOUNT ? 'account' : undefined;

/** Leaves out absent fields, so a reference serialises (and compares) the same however it was built. */
export function statementRef(policy: CompiledPolicy, statement: CompiledStatement): StatementRef {
  if (policy.policyId === undefined) return statement.sid === undefined ? { index: statement.index } : { sid: statement.sid, index: statement.index };
  return statement.sid === undefined
    ? { policyId: policy.policyId, index: statement.index }
    : { policyId: policy.policyId, sid: statement.sid, index: statement.index };
}

/**
 * The first matching Deny decides. Otherwise the first Allow that names the caller explicitly, else the first
 * Allow that names the caller's account: a combiner needs to know whether delegation was involved.
 */
export function evaluatePrepared(policy: CompiledPolicy, request: PreparedRequest): PolicyEvaluation {
  let allow: CompiledStatement | undefined;
  let allowCode = 0;
  for (const statement of policy.statements) {
    const code = matchStatement(statement, request);
    if (code < 0) continue;
    if (statement.effect === 'Deny') {
      return { effect: 'Deny', statement: statementRef(policy, statement), principalMatch: principalMatchOf(code) };
    }
    if (allow === undefined || (allowCode === MATCH_ACCOUNT && code === MATCH_EXPLICIT)) {
      allow = statement;
      allowCode = code;
    }
  }
  if (allow === undefined) return { effect: 'NoMatch' };
  return { effect: 'Allow', statement: statementRef(policy, allow), principalMatch: principalMatchOf(allowCode) };
}

export function evaluatePolicy(policy: CompiledPolicy, context: RequestContext): PolicyEvaluation {
  return evaluatePrepared(policy, prepareRequest(context));
}

const MISMATCH: Record<number, StatementTrace['mismatch']> = {
  [MISS_ACTION]: 'action',
  [MISS_RESOURCE]: 'resource',
  [MISS_PRINCIPAL]: 'principal',
  [MISS_CONDITION]: 'condition',
};

/** Every statement's outcome, for simulation: slower than evaluation, and says why each did not match. */
export function traceStatements(policy: CompiledPolicy, request: PreparedRequest, source: StatementTrace['source']): StatementTrace[] {
  return policy.statements.map((statement) => {
    const code = matchStatement(statement, request);
    const base = { source, ...statementRef(policy, statement), effect: statement.effect };
    if (code > 0) return { ...base, matched: true, principalMatch: principalMatchOf(code) };
    const trace: StatementTrace = { ...base, matched: false, mismatch: MISMATCH[code] };
    if (code !== MISS_CONDITION) return trace;
    const failed = statement.conditions.find((condition) => !condition.test(request.keys))!;
    return { ...trace, failedCondition: { operator: failed.operator, key: failed.key } };
  });
}
