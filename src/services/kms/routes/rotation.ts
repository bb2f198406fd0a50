// Rotation operations: enable/disable automatic rotation, status, on-demand rotation, history.
// Routes parse and delegate.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { keyId, limit, marker, TRENT } from './common.ts';

export function rotationOperations(service: KeyService) {
  return [
    defineOperation({
      target: `${TRENT}.EnableKeyRotation`, action: 'kms:EnableKeyRotation',
      input: z.object({ KeyId: keyId, RotationPeriodInDays: fields.integer({ min: 90, max: 2560 }).optional() }),
      handle: async (caller, input) => { await service.enableKeyRotation(caller, input.KeyId, input.RotationPeriodInDays); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.DisableKeyRotation`, action: 'kms:DisableKeyRotation',
      input: z.object({ KeyId: keyId }),
      handle: async (caller, input) => { await service.disableKeyRotation(caller, input.KeyId); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.GetKeyRotationStatus`, action: 'kms:GetKeyRotationStatus',
      input: z.object({ KeyId: keyId }),
      handle: (caller, input) => service.getKeyRotationStatus(caller, input.KeyId),
    }),
    defineOperation({
      target: `${TRENT}.RotateKeyOnDemand`, action: 'kms:RotateKeyOnDemand',
      input: z.object({ KeyId: keyId }),
      handle: async (caller, input) => ({ KeyId: (await service.rotateKeyOnDemand(caller, input.KeyId)).keyId }),
    }),
    defineOperation({
      target: `${TRENT}.ListKeyRotations`, action: 'kms:ListKeyRotations',
      input: z.object({ KeyId: keyId, Limit: limit, Marker: marker }),
      handle: (caller, input) => service.listKeyRotations(caller, input.KeyId, input.Limit ?? 100, input.Marker),
    }),
  ];
}
