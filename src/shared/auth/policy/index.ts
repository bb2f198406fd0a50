// The policy engine: parse, compile and evaluate AWS IAM JSON policies, and combine them as AWS KMS does.
// Must never do I/O or read the clock; this file only re-exports, internals stay in lib/.
export { PolicyDocumentError, PolicyInputError } from './errors.ts';
export { parsePolicy, MAX_POLICY_BYTES, MAX_STATEMENTS, type ParsePolicyOptions } from './lib/parse.ts';
export { compilePolicy, compilePolicyDocument, type CompiledPolicy, type CompilePolicyOptions } from './lib/compile.ts';
export { evaluatePolicy } from './lib/evaluate.ts';
export { decideAccess, simulate, checkLockout, type DecideAccessInput } from './lib/decide.ts';
export { kmsConditionKeys, type KmsConditionInput } from './lib/context.ts';
export { BASE64_PATTERN } from './lib/conditions.ts';
export type {
  AccessDecision, BaseOperator, ConditionKeyValue, Decision, DecisionRef, DecisionSource, Effect, GrantDecider,
  ParsedCondition, ParsedPolicy, ParsedPrincipal, ParsedStatement, PolicyEvaluation, PolicyKind, PolicyVersion,
  PrincipalMatch, RequestContext, RequestPrincipal, RequestPrincipalKind, SetQualifier, SimulationResult,
  StatementRef, StatementTrace,
} from './lib/types.ts';
