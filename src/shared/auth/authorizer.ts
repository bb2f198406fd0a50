// Authorisation for every service: resource policies (key policies, role trust policies),
// identity policies of the caller, and grants, evaluated as AWS documents it.
// Must never allow by default: no matching Allow is a deny, and an explicit Deny always wins.
import { UserError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { Caller } from './credentials.ts';

export type ConditionValue = string | string[] | number | boolean | undefined;

export interface KmsRequestFacts {
  /** When absent, the request has no kms:EncryptionContext* keys at all (as in AWS). */
  encryptionContext?: Readonly<Record<string, string>>;
  /** The alias the request named the key by, e.g. `alias/app`. */
  requestAlias?: string;
  keySpec?: string;
  keyUsage?: string;
}

export interface AccessRequest {
  action: string;
  resource: string;
  resourceAccountId: string;
  /** A resource policy document (key policy, trust policy); absent for resources without one. */
  resourcePolicy?: string;
  /** 'trust' for a role's trust policy (no Resource element); default 'resource'. */
  resourcePolicyKind?: 'resource' | 'trust';
  /** The KMS request's facts the policy engine turns into kms:* condition keys (kms:KeySpec, kms:EncryptionContext:…). */
  kms?: KmsRequestFacts;
  /** Further condition keys of this request (CreateGrant's kms:GrantOperations, say); they win over built ones. */
  conditionKeys?: Record<string, ConditionValue>;
  /** Whether a grant on the resource allows this request; asked only when no policy allows. */
  grantAllows?: boolean | (() => Promise<boolean>);
}

export type DecisionKind = 'Allow' | 'ExplicitDeny' | 'ImplicitDeny';

export interface AccessDecision {
  allowed: boolean;
  decision: DecisionKind;
  /** What decided, e.g. "resource-policy#AllowUse" or "identity-policy:app#0" or "grant:ID". */
  decidedBy?: string;
  reason: string;
}

/** resource: key policies; trust: role trust policies (no Resource); identity: attached to principals. */
export type PolicyDocumentKind = 'resource' | 'trust' | 'identity';

export interface PolicyEngineInput {
  caller: Caller;
  request: AccessRequest;
  identityPolicies: Array<{ name: string; document: string }>;
  now: Date;
}

/** A decision with every statement that matched, for "which statement decided it" questions. */
export interface SimulatedDecision extends AccessDecision {
  enabledBy?: string;
  matchedStatements: Array<{ source: string; policyId?: string; sid?: string; index: number; effect: string }>;
  evaluatedStatements: number;
}

export interface PolicyEngine {
  /** Throws a MalformedPolicyDocumentException UserError with the reason when a document is invalid. */
  validate(document: string, kind: PolicyDocumentKind): void;
  decide(input: PolicyEngineInput): AccessDecision;
  simulate(input: PolicyEngineInput): SimulatedDecision;
}

export class Authorizer {
  readonly #store: Store;
  readonly #engine: PolicyEngine;
  readonly #identityPolicies = new Map<string, Array<{ name: string; document: string }>>();
  readonly #now: () => Date;

  constructor(store: Store, engine: PolicyEngine, options: { now?: () => Date } = {}) {
    this.#store = store;
    this.#engine = engine;
    this.#now = options.now ?? (() => new Date());
  }

  get engine(): PolicyEngine {
    return this.#engine;
  }

  async #policiesOf(identityArn: string) {
    let policies = this.#identityPolicies.get(identityArn);
    if (!policies) {
      policies = (await this.#store.listPrincipalPolicies(identityArn)).map((policy) => ({ name: policy.policyName, document: policy.document }));
      if (this.#identityPolicies.size > 10_000) this.#identityPolicies.clear();
      this.#identityPolicies.set(identityArn, policies);
    }
    return policies;
  }

  /** Identity policies changed (or the principal went away): forget what was cached. */
  forgetIdentity(identityArn: string): void {
    this.#identityPolicies.delete(identityArn);
  }

  async decide(caller: Caller, request: AccessRequest): Promise<AccessDecision> {
    const decision = await this.evaluate(caller, request);
    caller.decisions?.push({ decision: decision.decision, decidedBy: decision.decidedBy, action: request.action, resource: request.resource });
    return decision;
  }

  /** Decides without recording the decision for the request (what-if checks: lockout, simulation). */
  async evaluate(caller: Caller, request: AccessRequest): Promise<AccessDecision> {
    const identityPolicies = caller.kind === 'root' ? [] : await this.#policiesOf(caller.identityArn);
    const { grantAllows } = request;
    const first = this.#engine.decide({ caller, request: { ...request, grantAllows: grantAllows === true }, identityPolicies, now: this.#now() });
    // Grants are looked up only when no policy allows: most requests never touch them. An implicit
    // deny holds no explicit Deny, so a grant that allows decides without evaluating again.
    if (first.decision !== 'ImplicitDeny' || typeof grantAllows !== 'function' || !(await grantAllows())) return first;
    return { allowed: true, decision: 'Allow', decidedBy: 'grant', reason: `${caller.principalArn} is allowed ${request.action} by a grant` };
  }

  /** Answers "may this principal do this", with the statements that matched; records nothing. */
  async simulate(principal: Caller, request: AccessRequest): Promise<SimulatedDecision> {
    const identityPolicies = principal.kind === 'root' ? [] : await this.#policiesOf(principal.identityArn);
    const grantAllows = typeof request.grantAllows === 'function' ? await request.grantAllows() : request.grantAllows;
    return this.#engine.simulate({ caller: principal, request: { ...request, grantAllows }, identityPolicies, now: this.#now() });
  }

  /** Decides and throws AccessDeniedException (AWS wording) unless allowed. */
  async require(caller: Caller, request: AccessRequest): Promise<AccessDecision> {
    const decision = await this.decide(caller, request);
    if (!decision.allowed) {
      const why = decision.decision === 'ExplicitDeny'
        ? `with an explicit deny in ${decision.decidedBy ?? 'a policy'}`
        : request.resourcePolicy !== undefined ? `because no resource-based policy allows the ${request.action} action`
          : `because no identity-based policy allows the ${request.action} action`;
      throw new UserError('AccessDeniedException', `User: ${caller.principalArn} is not authorized to perform: ${request.action} on resource: ${request.resource} ${why}`);
    }
    return decision;
  }
}
