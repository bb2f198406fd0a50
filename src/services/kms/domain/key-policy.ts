// Key policy documents: the default policy and structural validation of a submitted one.
// Must never do I/O. Evaluation of policies arrives with identity management (shared/auth).

export const DEFAULT_POLICY_NAME = 'default';

export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [{
      Sid: 'Enable IAM User Permissions',
      Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${accountId}:root` },
      Action: 'kms:*',
      Resource: '*',
    }],
  }, null, 2);
}

/** Returns the reason a policy document is malformed, or undefined when it is well formed. */
export function policyDocumentProblem(document: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch {
    return 'The policy is not valid JSON.';
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'The policy must be a JSON object.';
  const policy = parsed as Record<string, unknown>;
  if (policy.Version !== undefined && policy.Version !== '2012-10-17' && policy.Version !== '2008-10-17') {
    return `The policy Version '${String(policy.Version)}' is not supported.`;
  }
  const statements = Array.isArray(policy.Statement) ? policy.Statement : policy.Statement ? [policy.Statement] : [];
  if (statements.length === 0) return 'The policy must contain at least one Statement.';
  for (const [index, statement] of statements.entries()) {
    if (statement === null || typeof statement !== 'object') return `Statement ${index} must be an object.`;
    const fields = statement as Record<string, unknown>;
    if (fields.Effect !== 'Allow' && fields.Effect !== 'Deny') return `Statement ${index} has an invalid Effect; use Allow or Deny.`;
    if (fields.Action === undefined && fields.NotAction === undefined) return `Statement ${index} has no Action.`;
    if (fields.Principal === undefined && fields.NotPrincipal === undefined) return `Statement ${index} has no Principal.`;
  }
  return undefined;
}
