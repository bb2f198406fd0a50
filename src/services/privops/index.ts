// The privileged-operation service's public interface: the relay (and campaigns) for couriers, the routes for host agents.
import type { AwsJsonOperation } from '../../shared/http/index.ts';
import type { PrivopService } from './service.ts';
import type { CampaignService } from './campaigns.ts';
import { privopOperations } from './routes/operations.ts';

export { PrivopService, DEFAULT_MAX_RESULT_BYTES, type HostNotifier } from './service.ts';
export { CampaignService, type CampaignAuthority } from './campaigns.ts';
export { CAMPAIGN_SIGNER_SUBJECT } from './domain/campaign.ts';
export { PRIVOP as PRIVOP_TARGET_PREFIX, privopAgentRoutes } from './routes/operations.ts';

export function privopApiOperations(service: PrivopService, campaigns: CampaignService): AwsJsonOperation[] {
  return privopOperations(service, campaigns) as AwsJsonOperation[];
}
