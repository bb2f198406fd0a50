// Identity names and ARNs: users, roles, accounts, sessions, as AWS IAM spells them.
// Must never do I/O.
import { UserError } from '../../../shared/errors.ts';

// Principal ARNs are shared with every service that names principals (key policies, grants).
export { accountArn, rootArn, userArn, roleArn } from '../../../shared/auth/index.ts';

export const PRINCIPAL_NAME = /^[\w+=,.@-]{1,64}$/;
export const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
export const POLICY_NAME = /^[\w+=,.@-]{1,128}$/;
export const MIN_SESSION_SECONDS = 900;
export const MAX_SESSION_SECONDS = 43_200;
export const DEFAULT_ROLE_MAX_SESSION_SECONDS = 3_600;

export function parseRoleArn(arn: string): { accountId: string; name: string } {
  const match = /^arn:aws:iam::(\d{12}):role\/([\w+=,.@-]{1,64})$/.exec(arn);
  if (!match) throw new UserError('ValidationException', `RoleArn '${arn}' is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME).`);
  return { accountId: match[1], name: match[2] };
}

export function checkName(value: string, pattern: RegExp, field: string): void {
  if (!pattern.test(value)) {
    throw new UserError('ValidationException', `1 validation error detected: Value '${value}' at '${field}' failed to satisfy constraint: Member must satisfy regular expression pattern: ${pattern.source}`);
  }
}
