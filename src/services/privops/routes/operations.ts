// Privileged-operation relay and campaign operations (TrustPlanePrivop.*, signed for the service "trustplane"), and the
// routes host agents call on the mutual-TLS listener to fetch relayed requests and hand back refusals and sealed results.
// Routes parse and delegate; a result leaves only as the ciphertext the host sealed.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import { defineAgentRoute, type AgentRoute } from '../../fleet/index.ts';
import { MAX_PRIVOP_WINDOW_SECONDS, privopParameterValue } from '../../../shared/privop-wire.ts';
import { MAX_CAMPAIGN_HOSTS } from '../domain/campaign.ts';
import type { CampaignService } from '../campaigns.ts';
import { MAX_RESULT_SLICE_BYTES, MAX_UPLOAD_CHUNK_BYTES, type PrivopService } from '../service.ts';

export const PRIVOP = 'TrustPlanePrivop';

const relayId = fields.text({ min: 3, max: 64, pattern: /^r-[0-9a-f-]+$/ });

const campaignInput = z.object({
  Class: fields.text({ min: 1, max: 512 }),
  Sample: fields.integer({ min: 1, max: MAX_CAMPAIGN_HOSTS }).optional(),
  Operation: fields.text({ min: 1, max: 64 }),
  Parameters: z.record(privopParameterValue).default({}),
  ResultKey: fields.text({ min: 43, max: 43, pattern: /^[A-Za-z0-9_-]+$/ }),
  TtlSeconds: fields.integer({ min: 60, max: MAX_PRIVOP_WINDOW_SECONDS }),
}).strict();

export function privopOperations(service: PrivopService, campaigns: CampaignService) {
  return [
    defineOperation({
      target: `${PRIVOP}.StartCampaign`, action: 'privop:StartCampaign', input: campaignInput,
      handle: (caller, input) => campaigns.startCampaign(caller, input),
    }),
    defineOperation({
      target: `${PRIVOP}.SignCampaignRequests`, action: 'privop:SignCampaignRequests', input: campaignInput,
      handle: (caller, input) => campaigns.signCampaignRequests(caller, input),
    }),
    defineOperation({
      target: `${PRIVOP}.DescribeCampaign`, action: 'privop:DescribeCampaign',
      input: z.object({ CampaignId: fields.text({ min: 3, max: 64, pattern: /^c-[0-9a-f-]+$/ }) }).strict(),
      handle: (caller, input) => campaigns.describeCampaign(caller, input.CampaignId),
    }),
    defineOperation({
      target: `${PRIVOP}.SubmitRequest`, action: 'privop:SubmitRequest',
      // Checked for shape by the service: the host judges signature and trust.
      input: z.object({ Request: z.record(z.unknown()), TtlSeconds: fields.integer({ min: 60, max: MAX_PRIVOP_WINDOW_SECONDS }).optional() }).strict(),
      handle: (caller, input) => service.submit(caller, input.Request, input.TtlSeconds),
    }),
    defineOperation({
      target: `${PRIVOP}.DescribeRequest`, action: 'privop:DescribeRequest', input: z.object({ RelayId: relayId }).strict(),
      handle: (caller, input) => service.describe(caller, input.RelayId),
    }),
    defineOperation({
      target: `${PRIVOP}.GetResult`, action: 'privop:GetResult',
      input: z.object({ RelayId: relayId, Offset: fields.integer({ min: 0 }).optional(),
        Length: fields.integer({ min: 1, max: MAX_RESULT_SLICE_BYTES }).optional() }).strict(),
      handle: (caller, input) => service.getResult(caller, input.RelayId, input.Offset ?? 0, input.Length),
    }),
    defineOperation({
      target: `${PRIVOP}.DeleteRequest`, action: 'privop:DeleteRequest', input: z.object({ RelayId: relayId }).strict(),
      handle: async (caller, input) => { await service.deleteRelay(caller, input.RelayId); return {}; },
    }),
  ];
}

export function privopAgentRoutes(service: PrivopService): AgentRoute[] {
  return [
    defineAgentRoute({
      path: '/v1/agent/privop/fetch', input: z.object({ RelayId: relayId }).strict(),
      handle: (host, input) => service.fetchForHost(host, input.RelayId),
    }),
    defineAgentRoute({
      path: '/v1/agent/privop/refused',
      input: z.object({ RelayId: relayId, Code: fields.text({ min: 1, max: 64, pattern: /^[A-Za-z][A-Za-z0-9]*$/ }),
        Message: fields.text({ min: 0, max: 1024 }) }).strict(),
      handle: async (host, input) => { await service.refusedByHost(host, input.RelayId, input.Code, input.Message); return {}; },
    }),
    defineAgentRoute({
      path: '/v1/agent/privop/result',
      // A slice of base64 (4/3 of the bytes) and the envelope.
      maxBodyBytes: Math.ceil(MAX_UPLOAD_CHUNK_BYTES / 3) * 4 + 4096,
      input: z.object({ RelayId: relayId, Offset: fields.integer({ min: 0 }), Data: fields.blob({ min: 0, max: MAX_UPLOAD_CHUNK_BYTES }),
        Final: z.boolean().optional(), TotalBytes: fields.integer({ min: 1 }).optional() }).strict(),
      handle: (host, input) => service.resultFromHost(host, input),
    }),
  ];
}
