// The audit log's errors, each with a stable code (user errors for what the CLI reports).
// Must never put record contents beyond seq numbers and field names into a message.
import { UserError } from '../errors.ts';

export const auditErrors = {
  chainBroken: (reason: string) => new UserError('AuditChainBroken', reason, 409),
  homeNotFound: (message: string) => new UserError('HomeNotFound', message, 404),
  unavailable: (message: string) => new UserError('AuditLogUnavailable', message, 404),
  invalidArgument: (message: string) => new UserError('InvalidArgument', message),
};

/** record() after close(): a bug in shutdown order, never a caller's mistake. */
export class AuditLogClosedError extends Error {
  readonly code = 'AuditLogClosed';
  constructor() { super('the audit log is closed'); this.name = 'AuditLogClosedError'; }
}

/** The stored public key does not verify what the wrapped private key signs: it was replaced. */
export class AuditSigningKeyMismatchError extends Error {
  readonly code = 'AuditSigningKeyMismatch';
  constructor(keyId: string) {
    super(`the stored public half of audit signing key ${keyId} does not match its private half; refusing to sign`);
    this.name = 'AuditSigningKeyMismatchError';
  }
}
