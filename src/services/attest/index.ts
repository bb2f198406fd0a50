// The attestation service's public interface: the verifier, its operations and agent routes.
// Must never expose the domain's internals: other services and server.ts wire against these names only.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { AttestationService } from './service.ts';
import { attestOperations } from './routes/operations.ts';

export { AttestationService, type KeyReleaseContext, type HostAttestationView, type AccountAuthority } from './service.ts';
export { attestAgentRoutes, createVerifierDiscoveryHandler, createCertificateStatusHandler } from './routes/operations.ts';

export function attestApiOperations(service: AttestationService): AwsJsonOperation[] {
  return attestOperations(service) as AwsJsonOperation[];
}
