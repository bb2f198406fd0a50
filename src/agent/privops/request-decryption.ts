// Opens a request file encrypted to this host's request key before it is judged like any other; plain files pass through.
// Must never judge, run or audit the inner request differently from a plain one: it only unwraps, and marks the audit entry encrypted.
import { zeroize } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { decryptPrivopRequest, isEncryptedPrivopRequest, parseEncryptedPrivopRequest } from '../../shared/privop-encrypted-request.ts';
import type { PrivopAuditEntry } from './audit.ts';
import type { HostRequestKey } from './request-key.ts';

/**
 * The signed request file inside `input` when it is an encrypted envelope (the entry then records the request as encrypted and,
 * until it opens, the host the envelope names), else `input` as it is. Refusals: PrivopMalformedRequest, PrivopWrongHost, PrivopCannotDecrypt.
 */
export async function openRequestFile(input: unknown, host: { hostId?: string; requestKey?: HostRequestKey }, entry: PrivopAuditEntry): Promise<unknown> {
  let value = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      value = JSON.parse(input.toString());
    } catch {
      throw new UserError('PrivopMalformedRequest', 'The request file is not JSON.');
    }
  }
  if (!isEncryptedPrivopRequest(value)) return value;
  entry.Encrypted = true;
  const envelope = parseEncryptedPrivopRequest(value);
  entry.Target = { HostId: envelope.Encrypted.HostId };
  const keys = host.requestKey?.keyPair();
  let plaintext: Buffer | undefined;
  try {
    plaintext = await decryptPrivopRequest(envelope, { hostId: host.hostId ?? '(not enrolled)', requestKey: keys });
    let inner: unknown;
    try {
      inner = JSON.parse(plaintext.toString('utf8'));
    } catch {
      throw new UserError('PrivopMalformedRequest', 'The encrypted request does not hold a JSON request file.');
    }
    if (isEncryptedPrivopRequest(inner)) throw new UserError('PrivopMalformedRequest', 'An encrypted request may not hold another encrypted request.');
    return inner;
  } finally {
    if (keys) zeroize(keys.privateKey);
    if (plaintext) zeroize(plaintext);
  }
}
