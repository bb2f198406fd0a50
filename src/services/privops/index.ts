// The privileged-operation service's public interface: the relay (and campaigns) for couriers, the routes for host agents.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { PrivopService } from './service.ts';
import { privopOperations } from './routes/operations.ts';

export { PrivopService, DEFAULT_MAX_RESULT_BYTES, type HostNotifier } from './service.ts';
export { PRIVOP as PRIVOP_TARGET_PREFIX, privopAgentRoutes } from './routes/operations.ts';

export function privopApiOperations(service: PrivopService): AwsJsonOperation[] {
  return privopOperations(service) as AwsJsonOperation[];
}
