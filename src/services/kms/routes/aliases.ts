// Alias operations: create, update, delete, list.
// Routes parse and delegate; they never touch the store.
import { z } from 'zod';
import { defineOperation, fields, pageMarkers } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { aliasName, keyId, marker, TRENT } from './common.ts';

export function aliasOperations(service: KeyService) {
  return [
    defineOperation({
      target: `${TRENT}.CreateAlias`, action: 'kms:CreateAlias',
      input: z.object({ AliasName: aliasName, TargetKeyId: keyId }),
      handle: async (caller, input) => { await service.createAlias(caller, input.AliasName, input.TargetKeyId); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.UpdateAlias`, action: 'kms:UpdateAlias',
      input: z.object({ AliasName: aliasName, TargetKeyId: keyId }),
      handle: async (caller, input) => { await service.updateAlias(caller, input.AliasName, input.TargetKeyId); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.DeleteAlias`, action: 'kms:DeleteAlias',
      input: z.object({ AliasName: aliasName }),
      handle: async (caller, input) => { await service.deleteAlias(caller, input.AliasName); return {}; },
    }),
    defineOperation({
      target: `${TRENT}.ListAliases`, action: 'kms:ListAliases',
      input: z.object({ KeyId: keyId.optional(), Limit: fields.integer({ min: 1, max: 100 }).optional(), Marker: marker }),
      handle: async (caller, input) => {
        const page = await service.listAliases(caller, input.KeyId, input.Limit ?? 50, input.Marker);
        return { Aliases: page.items, ...pageMarkers(page.nextMarker) };
      },
    }),
  ];
}
