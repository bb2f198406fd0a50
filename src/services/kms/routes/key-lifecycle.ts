// Key lifecycle operations: create, describe, list, describe/update, enable, disable, deletion.
// Routes parse and delegate; they never touch the store or key bytes.
import { z } from 'zod';
import { defineOperation, fields, pageMarkers } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { keyId, keySpec, keyUsage, limit, marker, tags, toTagRecords, TRENT } from './common.ts';

export function keyLifecycleOperations(service: KeyService) {
  return [
    defineOperation({
      target: `${TRENT}.CreateKey`, action: 'kms:CreateKey',
      input: z.object({
        Policy: fields.text({ min: 1, max: 32768 }).optional(),
        Description: fields.text({ min: 0, max: 8192 }).optional(),
        KeyUsage: keyUsage.optional(),
        KeySpec: keySpec.optional(),
        CustomerMasterKeySpec: keySpec.optional(),
        Origin: z.enum(['AWS_KMS', 'EXTERNAL', 'AWS_CLOUDHSM', 'EXTERNAL_KEY_STORE']).optional(),
        Tags: tags.optional(),
        BypassPolicyLockoutSafetyCheck: z.boolean().optional(),
        MultiRegion: z.boolean().optional(),
      }),
      handle: async (caller, input) => {
        const key = await service.createKey(caller, {
          description: input.Description, keySpec: input.KeySpec ?? input.CustomerMasterKeySpec, keyUsage: input.KeyUsage,
          policy: input.Policy, tags: toTagRecords(input.Tags), origin: input.Origin, multiRegion: input.MultiRegion,
          bypassLockoutCheck: input.BypassPolicyLockoutSafetyCheck,
        });
        return { KeyMetadata: service.metadata(key) };
      },
    }),
    defineOperation({
      target: `${TRENT}.DescribeKey`, action: 'kms:DescribeKey',
      input: z.object({ KeyId: keyId, GrantTokens: z.array(z.string()).optional() }),
      handle: async (caller, input) => ({ KeyMetadata: service.metadata(await service.describeKey(caller, input.KeyId)) }),
    }),
    defineOperation({
      target: `${TRENT}.ListKeys`, action: 'kms:ListKeys',
      input: z.object({ Limit: limit, Marker: marker }),
      handle: async (caller, input) => {
        const page = await service.listKeys(caller, input.Limit ?? 100, input.Marker);
        return { Keys: page.items.map((key) => ({ KeyId: key.keyId, KeyArn: key.arn })), ...pageMarkers(page.nextMarker) };
      },
    }),
    defineOperation({
      target: `${TRENT}.UpdateKeyDescription`, action: 'kms:UpdateKeyDescription',
      input: z.object({ KeyId: keyId, Description: fields.text({ min: 0, max: 8192 }) }),
      handle: async (caller, input) => { await service.updateKeyDescription(caller, input.KeyId, input.Description); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.EnableKey`, action: 'kms:EnableKey',
      input: z.object({ KeyId: keyId }),
      handle: async (caller, input) => { await service.enableKey(caller, input.KeyId); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.DisableKey`, action: 'kms:DisableKey',
      input: z.object({ KeyId: keyId }),
      handle: async (caller, input) => { await service.disableKey(caller, input.KeyId); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.ScheduleKeyDeletion`, action: 'kms:ScheduleKeyDeletion',
      input: z.object({ KeyId: keyId, PendingWindowInDays: fields.integer({ min: 7, max: 30 }).optional() }),
      handle: async (caller, input) => {
        const key = await service.scheduleKeyDeletion(caller, input.KeyId, input.PendingWindowInDays);
        return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: key.keyState, PendingWindowInDays: key.pendingWindowInDays };
      },
    }),
    defineOperation({
      target: `${TRENT}.CancelKeyDeletion`, action: 'kms:CancelKeyDeletion',
      input: z.object({ KeyId: keyId }),
      handle: async (caller, input) => ({ KeyId: (await service.cancelKeyDeletion(caller, input.KeyId)).arn }),
    }),
  ];
}
