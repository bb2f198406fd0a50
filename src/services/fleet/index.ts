// The fleet service's public interface: host classes, class key grants, join tokens, change feed.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { FleetService } from './service.ts';
import { fleetOperations } from './routes/operations.ts';

export { FleetService, joinTokenHash, type AccountCertificateIssuer } from './service.ts';
export { FleetPushHub } from './push.ts';
export { KeyRingDistributor, type KeyReleaseGate } from './distribution.ts';
export { startAgentListener, defineAgentRoute, type AgentRoute, type RunningAgentListener } from './routes/agent-listener.ts';
export { FLEET as FLEET_TARGET_PREFIX, createFleetHttpHandler } from './routes/operations.ts';

export function fleetApiOperations(service: FleetService): AwsJsonOperation[] {
  return fleetOperations(service) as AwsJsonOperation[];
}
export { hostArn, classArn } from './domain/names.ts';
export { classesByName, lineage } from './domain/classes.ts';
export { parseClassName } from './domain/names.ts';
