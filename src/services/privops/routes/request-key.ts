// The request-key endpoints: the agent route a host registers its key on (mutual TLS) and the operator action
// TrustPlaneFleet.GetHostRequestKey that publishes its certificate. Parse and delegate.
// Must never answer anything about a host's request key but its public certificate.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import { PRIVOP_REQUEST_KEY_PATH } from '../../../shared/privop-encrypted-request.ts';
import { defineAgentRoute, FLEET_TARGET_PREFIX, type AgentRoute } from '../../fleet/index.ts';
import type { HostRequestKeyService } from '../request-key-service.ts';

const hostId = fields.text({ min: 3, max: 64, pattern: /^h-[0-9a-f]+$/ });

export function requestKeyAgentRoutes(service: HostRequestKeyService): AgentRoute[] {
  return [
    defineAgentRoute({
      path: PRIVOP_REQUEST_KEY_PATH,
      input: z.object({ PublicKey: fields.blob({ min: 32, max: 32 }), Proof: fields.blob({ min: 1, max: 256 }) }).strict(),
      handle: (host, input) => service.register(host, input.PublicKey, input.Proof),
    }),
  ];
}

export function requestKeyOperations(service: HostRequestKeyService) {
  return [
    defineOperation({
      target: `${FLEET_TARGET_PREFIX}.GetHostRequestKey`, action: 'fleet:GetHostRequestKey', input: z.object({ HostId: hostId }).strict(),
      handle: (caller, input) => service.describe(caller, input.HostId),
    }),
  ];
}
