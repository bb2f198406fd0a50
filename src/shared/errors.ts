// Every error trustplane raises on purpose, each with a stable code.
// Never put key material, plaintext or credentials into a message.

/** An error the caller caused; its message is safe to show them. */
export class UserError extends Error {
  readonly code: string;
  readonly httpStatus: number;
  constructor(code: string, message: string, httpStatus = 400) {
    super(message);
    this.name = code;
    this.code = code;
    this.httpStatus = httpStatus;
  }
}

/** A fault of ours; callers get only a request id, the log gets the detail. */
export class InternalError extends Error {
  readonly code = 'KMSInternalException';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InternalError';
  }
}

/** The crypto module has no keys in memory (sealed or not yet unsealed). */
export class SealedError extends Error {
  readonly code = 'KMSInternalException';
  constructor(message = 'The trustplane crypto module is sealed; unseal it before using keys.') {
    super(message);
    this.name = 'SealedError';
  }
}

/** Anything wrong with a ciphertext: format, key, context or tag. Deliberately uninformative. */
export class CiphertextError extends Error {
  readonly code = 'InvalidCiphertextException';
  constructor(message = 'The ciphertext is invalid or was not made with this key and encryption context.') {
    super(message);
    this.name = 'CiphertextError';
  }
}
