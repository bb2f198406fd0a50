// The shapes the policy engine reads and returns: parsed documents, request contexts, results.
// Must never contain behaviour, so every other file can import it without creating a cycle.

export type PolicyKind = 'resource' | 'identity';
export type PolicyVersion = '2012-10-17' | '2008-10-17';
export type Effect = 'Allow' | 'Deny';

/** A Principal or NotPrincipal element, as written (entries validated, not yet resolved). */
export interface ParsedPrincipal {
  /** `"*"` or `{"AWS": "*"}`: every principal. */
  readonly any: boolean;
  /** Entries of the AWS key: account ids and iam/sts ARNs. */
  readonly aws: readonly string[];
  /** Entries of the Service key: accepted so AWS-shaped documents parse, never matched. */
  readonly service: readonly string[];
}

export type SetQualifier = 'ForAllValues' | 'ForAnyValue';

export type BaseOperator =
  | 'StringEquals' | 'StringNotEquals' | 'StringEqualsIgnoreCase' | 'StringNotEqualsIgnoreCase'
  | 'StringLike' | 'StringNotLike'
  | 'NumericEquals' | 'NumericNotEquals' | 'NumericLessThan' | 'NumericLessThanEquals'
  | 'NumericGreaterThan' | 'NumericGreaterThanEquals'
  | 'DateEquals' | 'DateNotEquals' | 'DateLessThan' | 'DateLessThanEquals'
  | 'DateGreaterThan' | 'DateGreaterThanEquals'
  | 'Bool' | 'BinaryEquals' | 'IpAddress' | 'NotIpAddress'
  | 'ArnEquals' | 'ArnLike' | 'ArnNotEquals' | 'ArnNotLike'
  | 'Null';

/** One condition key under one operator: `"StringEquals": {"kms:ViaService": ["a", "b"]}` → one of these. */
export interface ParsedCondition {
  /** The operator exactly as written, e.g. `ForAnyValue:StringLikeIfExists`. */
  readonly operator: string;
  readonly base: BaseOperator;
  readonly qualifier?: SetQualifier;
  readonly ifExists: boolean;
  /** The condition key as written; matching ignores its case. */
  readonly key: string;
  /** The policy values, normalised to strings (numbers and booleans as JSON writes them). */
  readonly values: readonly string[];
}

export interface ParsedStatement {
  /** Position in the Statement array, counting from 0 (messages for people count from 1). */
  readonly index: number;
  readonly sid?: string;
  readonly effect: Effect;
  readonly principal?: ParsedPrincipal;
  readonly notPrincipal?: ParsedPrincipal;
  readonly action?: readonly string[];
  readonly notAction?: readonly string[];
  readonly resource?: readonly string[];
  readonly notResource?: readonly string[];
  readonly conditions: readonly ParsedCondition[];
}

export interface ParsedPolicy {
  readonly kind: PolicyKind;
  /** Absent means the 2008-10-17 language, in which `${…}` is literal text. */
  readonly version?: PolicyVersion;
  readonly id?: string;
  readonly statements: readonly ParsedStatement[];
}

export type RequestPrincipalKind = 'root' | 'user' | 'role' | 'assumed-role' | 'host';

export interface RequestPrincipal {
  /** arn:aws:iam::A:root | user/N | role/N | host/N, or arn:aws:sts::A:assumed-role/ROLE/SESSION. */
  readonly arn: string;
  readonly accountId: string;
  readonly kind: RequestPrincipalKind;
  readonly tags?: Readonly<Record<string, string>>;
}

/** A condition key's value in a request; arrays are multi-valued keys (kms:EncryptionContextKeys). */
export type ConditionKeyValue = string | readonly string[] | number | boolean | undefined;

export interface RequestContext {
  readonly principal: RequestPrincipal;
  /** `service:Operation`, e.g. `kms:Decrypt`; matched without regard to case, as AWS does. */
  readonly action: string;
  /** The resource ARN, e.g. the key ARN; matched case-sensitively. */
  readonly resource: string;
  /** Key names are matched without regard to case; values are case-sensitive unless an operator says otherwise. */
  readonly conditionKeys: Readonly<Record<string, ConditionKeyValue>>;
}

export type PrincipalMatch = 'explicit' | 'account';

export interface StatementRef {
  readonly policyId?: string;
  readonly sid?: string;
  /** Position in the policy's Statement array, counting from 0. */
  readonly index: number;
}

export interface PolicyEvaluation {
  readonly effect: 'Allow' | 'Deny' | 'NoMatch';
  /** The deciding statement: the first matching Deny, else the strongest matching Allow. */
  readonly statement?: StatementRef;
  /**
   * Resource policies only: how the Principal element matched. `account` means the statement names the
   * caller's account (root ARN or bare account id), which AWS treats as delegation to that account's
   * identity policies; `explicit` means it names the caller (or everyone).
   */
  readonly principalMatch?: PrincipalMatch;
}

export type DecisionSource = 'resource-policy' | 'identity-policy' | 'grant';

export interface DecisionRef {
  readonly source: DecisionSource;
  readonly policyId?: string;
  readonly sid?: string;
  readonly index?: number;
  readonly grantId?: string;
}

export type Decision = 'Allow' | 'ExplicitDeny' | 'ImplicitDeny';

export interface AccessDecision {
  readonly decision: Decision;
  /** The statement (or grant) that decided; absent for implicit deny and for the account root acting without a resource policy. */
  readonly decidedBy?: DecisionRef;
  /**
   * When an identity policy decided, the resource-policy statement that made it count: the key policy
   * statement delegating to the caller's account, or naming the caller across accounts.
   */
  readonly enabledBy?: DecisionRef;
  /** One sentence for people and the audit log; names ARNs and actions, never condition values. */
  readonly reason: string;
}

/** Grants are looked up only when no policy allows; return a grant id to have it reported. */
export type GrantDecider = () => boolean | { readonly grantId: string };

export interface StatementTrace {
  readonly source: 'resource-policy' | 'identity-policy';
  readonly policyId?: string;
  readonly sid?: string;
  readonly index: number;
  readonly effect: Effect;
  readonly matched: boolean;
  readonly principalMatch?: PrincipalMatch;
  /** Why it did not match: the first element that failed, in evaluation order. */
  readonly mismatch?: 'action' | 'resource' | 'principal' | 'condition';
  /** For a condition mismatch: the operator and key that evaluated to false. */
  readonly failedCondition?: { readonly operator: string; readonly key: string };
}

export interface SimulationResult extends AccessDecision {
  /** Statements that matched the request (action, resource, principal and every condition). */
  readonly matchedStatements: readonly StatementTrace[];
  /** Every statement of every policy considered, matched or not, in evaluation order. */
  readonly statements: readonly StatementTrace[];
}
