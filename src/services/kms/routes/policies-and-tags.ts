// Key policy and tag operations.
// Routes parse and delegate.
import { z } from 'zod';
import { defineOperation, fields, pageMarkers } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { keyId, limit, marker, tags, toTagRecords, TRENT } from './common.ts';

const policyName = fields.text({ min: 1, max: 128, pattern: /^[\w]+$/ }).optional();

export function policyAndTagOperations(service: KeyService) {
  return [
    defineOperation({
      target: `${TRENT}.GetKeyPolicy`, action: 'kms:GetKeyPolicy',
      input: z.object({ KeyId: keyId, PolicyName: policyName }),
      handle: (caller, input) => service.getKeyPolicy(caller, input.KeyId, input.PolicyName),
    }),
    defineOperation({
      target: `${TRENT}.PutKeyPolicy`, action: 'kms:PutKeyPolicy',
      input: z.object({ KeyId: keyId, PolicyName: policyName, Policy: fields.text({ min: 1, max: 32768 }),
        BypassPolicyLockoutSafetyCheck: z.boolean().optional() }),
      handle: async (caller, input) => {
        await service.putKeyPolicy(caller, input.KeyId, input.Policy, { policyName: input.PolicyName,
          bypassLockoutCheck: input.BypassPolicyLockoutSafetyCheck });
        return {};
      },
    }),
    defineOperation({
      target: `${TRENT}.ListKeyPolicies`, action: 'kms:ListKeyPolicies',
      input: z.object({ KeyId: keyId, Limit: limit, Marker: marker }),
      handle: (caller, input) => service.listKeyPolicies(caller, input.KeyId),
    }),
    defineOperation({
      target: `${TRENT}.TagResource`, action: 'kms:TagResource',
      input: z.object({ KeyId: keyId, Tags: tags }),
      handle: async (caller, input) => { await service.tagResource(caller, input.KeyId, toTagRecords(input.Tags)); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.UntagResource`, action: 'kms:UntagResource',
      input: z.object({ KeyId: keyId, TagKeys: z.array(fields.text({ min: 1, max: 128 })).max(50) }),
      handle: async (caller, input) => { await service.untagResource(caller, input.KeyId, input.TagKeys); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.ListResourceTags`, action: 'kms:ListResourceTags',
      input: z.object({ KeyId: keyId, Limit: fields.integer({ min: 1, max: 50 }).optional(), Marker: marker }),
      handle: async (caller, input) => {
        const page = await service.listResourceTags(caller, input.KeyId, input.Limit ?? 50, input.Marker);
        return { Tags: page.items.map((tag) => ({ TagKey: tag.tagKey, TagValue: tag.tagValue })), ...pageMarkers(page.nextMarker) };
      },
    }),
  ];
}
