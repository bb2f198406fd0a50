// Key policy documents: the default key policy and the one policy name keys have.
// Must never do I/O. Validation and evaluation live in the policy engine (shared/auth/policy).
import { rootArn } from '../../../shared/auth/index.ts';

export const DEFAULT_POLICY_NAME = 'default';

export function defaultKeyPolicy(accountId: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Id: 'key-default-1',
    Statement: [{
      Sid: 'Enable IAM User Permissions',
      Effect: 'Allow',
      Principal: { AWS: rootArn(accountId) },
      Action: 'kms:*',
      Resource: '*',
    }],
  }, null, 2);
}
