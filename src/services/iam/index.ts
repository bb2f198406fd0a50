// The identity service's public interface: accounts, principals, policies, credentials.
// Must never expose stored secrets.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { IdentityService } from './service.ts';
import { principalOperations } from './routes/accounts-and-principals.ts';
import { credentialOperations } from './routes/credentials.ts';

export { IdentityService, newAccountId, type IdentityServiceOptions } from './service.ts';

export function iamOperations(service: IdentityService): AwsJsonOperation[] {
  return [...principalOperations(service), ...credentialOperations(service)] as AwsJsonOperation[];
}
