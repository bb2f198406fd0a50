// The key service's public interface for the server and other services.
// Must never expose the store or unwrapped keys.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import { KeyService } from './service.ts';
import { keyLifecycleOperations } from './routes/key-lifecycle.ts';
import { aliasOperations } from './routes/aliases.ts';
import { encryptionOperations } from './routes/encryption.ts';
import { signingOperations } from './routes/signing.ts';
import { rotationOperations } from './routes/rotation.ts';
import { policyAndTagOperations } from './routes/policies-and-tags.ts';
import { extensionOperations } from './routes/extensions.ts';

export { KeyService, type KeyServiceOptions, type KeyMetadata } from './service.ts';
export { EXTENSIONS as KMS_EXTENSION_PREFIX } from './routes/common.ts';

/** Every operation the key service answers on the AWS JSON 1.1 protocol. */
export function kmsOperations(service: KeyService): AwsJsonOperation[] {
  return [
    ...keyLifecycleOperations(service), ...aliasOperations(service), ...encryptionOperations(service),
    ...signingOperations(service), ...rotationOperations(service), ...policyAndTagOperations(service),
    ...extensionOperations(service),
  ] as AwsJsonOperation[];
}
