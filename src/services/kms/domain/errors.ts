// The key service's user errors, worded as AWS KMS words them (tools match these messages).
// Must never include key material or plaintext in a message.
import { UserError } from '../../../shared/errors.ts';

export const kmsErrors = {
  keyNotFound: (arn: string) => new UserError('NotFoundException', `Key '${arn}' does not exist`),
  invalidKeyId: (raw: string) => new UserError('NotFoundException', `Invalid keyId '${raw}'`),
  aliasNotFound: (aliasArn: string) => new UserError('NotFoundException', `Alias ${aliasArn} is not found.`),
  disabled: (arn: string) => new UserError('DisabledException', `${arn} is disabled.`),
  pendingDeletion: (arn: string) => new UserError('KMSInvalidStateException', `${arn} is pending deletion.`),
  notPendingDeletion: (arn: string) => new UserError('KMSInvalidStateException', `${arn} is not pending deletion.`),
  wrongUsage: (arn: string, usage: string, operation: string) =>
    new UserError('InvalidKeyUsageException', `${arn} key usage is ${usage} which is not valid for ${operation}.`),
  wrongSpec: (arn: string, spec: string, operation: string) =>
    new UserError('InvalidKeyUsageException', `${arn} key spec is ${spec} which is not valid for ${operation}.`),
  algorithmIncompatible: (algorithm: string, spec: string) =>
    new UserError('InvalidKeyUsageException', `Algorithm ${algorithm} is incompatible with key spec ${spec}.`),
  incorrectKey: () => new UserError('IncorrectKeyException',
    'The key ID in the request does not identify a CMK that can perform this operation.'),
  unsupported: (message: string) => new UserError('UnsupportedOperationException', message),
  validation: (message: string) => new UserError('ValidationException', message),
  aliasExists: (aliasArn: string) => new UserError('AlreadyExistsException', `An alias with the name ${aliasArn} already exists`),
  invalidAliasName: (message: string) => new UserError('InvalidAliasNameException', message),
  invalidSignature: () => new UserError('KMSInvalidSignatureException', 'The signature is not valid for this message, key and signing algorithm.'),
  invalidMac: () => new UserError('KMSInvalidMacException', 'The MAC is not valid for this message, key and MAC algorithm.'),
  malformedPolicy: (reason: string) => new UserError('MalformedPolicyDocumentException', reason),
  tagError: (message: string) => new UserError('TagException', message),
  limitExceeded: (message: string) => new UserError('LimitExceededException', message),
  accessDenied: (principalArn: string, action: string, resource: string) => new UserError('AccessDeniedException',
    `User: ${principalArn} is not authorized to perform: ${action} on resource: ${resource} because no resource-based policy allows the ${action} action`),
  dryRun: () => new UserError('DryRunOperationException', 'The request would have succeeded, but the DryRun option is set.', 412),
};
