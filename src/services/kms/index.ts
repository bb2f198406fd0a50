// The key service's public interface for the server and other services.
// Must never expose the store or unwrapped keys.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { Caller } from '../../shared/auth/index.ts';
import { KeyService } from './service.ts';
import { keyLifecycleOperations } from './routes/key-lifecycle.ts';
import { aliasOperations } from './routes/aliases.ts';
import { encryptionOperations } from './routes/encryption.ts';
import { signingOperations } from './routes/signing.ts';
import { rotationOperations } from './routes/rotation.ts';
import { policyAndTagOperations } from './routes/policies-and-tags.ts';
import { extensionOperations } from './routes/extensions.ts';
import { grantOperations } from './routes/grants.ts';

export { KeyService, type KeyServiceOptions, type KeyMetadata } from './service.ts';

/** Every operation the key service answers on the AWS JSON 1.1 protocol. */
export function kmsOperations(service: KeyService): AwsJsonOperation[] {
  return withGrantTokens(service, [
    ...keyLifecycleOperations(service), ...aliasOperations(service), ...encryptionOperations(service),
    ...signingOperations(service), ...rotationOperations(service), ...policyAndTagOperations(service),
    ...grantOperations(service), ...extensionOperations(service),
  ] as AwsJsonOperation[]);
}

const CRYPTOGRAPHIC = /^kms:(Encrypt|Decrypt|ReEncrypt|Generate|Sign|Verify)/;

/** Grant tokens, where an operation takes them, must name existing grants (checked before the handler). */
function withGrantTokens(service: KeyService, operations: AwsJsonOperation[]): AwsJsonOperation[] {
  return operations.map((operation) => ({
    ...operation,
    // Cryptographic operations share AWS's higher request quota; the rest count as management.
    rateClass: CRYPTOGRAPHIC.test(operation.action) ? 'cryptographic' as const : 'management' as const,
    async handle(caller, input) {
      const tokens = (input as { GrantTokens?: string[] } | undefined)?.GrantTokens;
      if (tokens?.length) await service.checkGrantTokens(tokens);
      return operation.handle(caller, input);
    },
  }));
}

/** Lets the identity service simulate access to keys: answers for key ARNs (and aliases) only. */
export function keyResourceQuestion(service: KeyService) {
  return async (principal: Caller, action: string, resource: string, context?: Record<string, string>) => {
    if (!action.toLowerCase().startsWith('kms:') || !/^(arn:aws:kms:|alias\/|[0-9a-f]{8}-)/.test(resource)) return undefined;
    return service.simulationRequest(principal, action, resource, context);
  };
}
