// The privileged-operation service's public interface: the relay (and campaigns) for couriers, hosts' request keys
// (registration, publication), and the routes for host agents. server.ts wires against these names only.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { PrivopService } from './service.ts';
import type { CampaignService } from './campaigns.ts';
import type { HostRequestKeyService } from './request-key-service.ts';
import { privopOperations } from './routes/operations.ts';
import { requestKeyOperations } from './routes/request-key.ts';

export { PrivopService, DEFAULT_MAX_RESULT_BYTES, type HostNotifier } from './service.ts';
export { CampaignService } from './campaigns.ts';
export { PRIVOP as PRIVOP_TARGET_PREFIX, privopAgentRoutes } from './routes/operations.ts';
export { HostRequestKeyService, type HostRequestKeyView } from './request-key-service.ts';
export { requestKeyAgentRoutes } from './routes/request-key.ts';

export function privopApiOperations(service: PrivopService, campaigns: CampaignService): AwsJsonOperation[] {
  return privopOperations(service, campaigns) as AwsJsonOperation[];
}

export function requestKeyApiOperations(service: HostRequestKeyService): AwsJsonOperation[] {
  return requestKeyOperations(service) as AwsJsonOperation[];
}
