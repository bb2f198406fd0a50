// The privileged-operations service's public interface: hosts' request keys (registration, publication).
// Must never expose the service's internals: server.ts wires against these names only.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { HostRequestKeyService } from './request-key-service.ts';
import { requestKeyOperations } from './routes/request-key.ts';

export { HostRequestKeyService, type HostRequestKeyView } from './request-key-service.ts';
export { requestKeyAgentRoutes } from './routes/request-key.ts';

export function requestKeyApiOperations(service: HostRequestKeyService): AwsJsonOperation[] {
  return requestKeyOperations(service) as AwsJsonOperation[];
}
