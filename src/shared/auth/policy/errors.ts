// Every error the policy engine raises, each with a stable code.
// Must never put request values (encryption context values, tags) into a message shown to a caller.
import { InternalError, UserError } from '../../errors.ts';

/**
 * A submitted policy document is not acceptable. The message is the precise reason, prefixed with the
 * statement it concerns ("Statement 2 (Sid AllowUse): …"), because the author needs to know what to fix and
 * the document is theirs: nothing in it is secret from them.
 */
export class PolicyDocumentError extends UserError {
  readonly reason: string;
  constructor(reason: string) {
    super('MalformedPolicyDocumentException', reason, 400);
    this.reason = reason;
  }
}

/**
 * The engine was called with inputs no well-formed caller produces (a key policy passed as an identity policy,
 * a principal whose ARN names another account). A fault of ours, so callers see only a request id.
 */
export class PolicyInputError extends InternalError {
  constructor(message: string) {
    super(`policy engine: ${message}`);
    this.name = 'PolicyInputError';
  }
}
