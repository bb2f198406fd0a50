// The policy engine trustplane authorises with, behind the Authorizer's PolicyEngine interface.
// Must never allow what no policy allows.
import { UserError } from '../errors.ts';
import type { AccessDecision, PolicyEngine } from './authorizer.ts';

/** Provisional engine until the IAM policy evaluator lands: account roots own their account. */
export const policyEngine: PolicyEngine = {
  validate(document: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(document);
    } catch {
      throw new UserError('MalformedPolicyDocumentException', 'The policy is not valid JSON.');
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new UserError('MalformedPolicyDocumentException', 'The policy must be a JSON object.');
    }
  },
  decide({ caller, request }): AccessDecision {
    if (caller.kind === 'root' && caller.accountId === request.resourceAccountId) {
      return { allowed: true, decision: 'Allow', decidedBy: 'account-root', reason: 'the account root' };
    }
    if (request.grantAllows) return { allowed: true, decision: 'Allow', decidedBy: 'grant', reason: 'a grant allows it' };
    return { allowed: false, decision: 'ImplicitDeny', reason: 'no policy allows it' };
  },
};
