// Authentication: SigV4 verification and the directory of principals' access keys.
// Must never let a request reach a service without an authenticated Caller.
export { verifySigV4, deriveSigningKey, formatAmzDate, rfc3986Encode, type SignedHttpRequest, type SigV4Scope } from './sigv4.ts';
export { CredentialDirectory, assumedRoleArn, accountArn, rootArn, userArn, roleArn, MAX_ACTIVE_ACCESS_KEYS, type Caller, type CallerKind, type IssuedAccessKey, type IssuedSession } from './credentials.ts';
export { Authorizer, type AccessRequest, type AccessDecision, type ConditionValue, type DecisionKind, type PolicyEngine, type SimulatedDecision } from './authorizer.ts';
