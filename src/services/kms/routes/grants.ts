// Grant operations: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
// Routes parse and delegate; grant tokens appear only in CreateGrant's response.
import { z } from 'zod';
import { defineOperation, fields, pageMarkers } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { context, dryRun, grantTokens, keyId, marker, TRENT } from './common.ts';

export const GRANT_OPERATIONS = ['Decrypt', 'Encrypt', 'GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'ReEncryptFrom',
  'ReEncryptTo', 'Sign', 'Verify', 'GetPublicKey', 'CreateGrant', 'RetireGrant', 'DescribeKey', 'GenerateDataKeyPair',
  'GenerateDataKeyPairWithoutPlaintext', 'GenerateMac', 'VerifyMac'] as const;

const principal = fields.text({ min: 1, max: 256, pattern: /^[\w+=,.@:/-]+$/ });
const grantId = fields.text({ min: 1, max: 128 });

export function grantOperations(service: KeyService) {
  const listed = (page: { items: Parameters<KeyService['describeGrant']>[0][]; nextMarker?: string }) => ({
    Grants: page.items.map((grant) => service.describeGrant(grant)), ...pageMarkers(page.nextMarker),
  });
  return [
    defineOperation({
      target: `${TRENT}.CreateGrant`, action: 'kms:CreateGrant',
      input: z.object({ KeyId: keyId, GranteePrincipal: principal, RetiringPrincipal: principal.optional(),
        Operations: z.array(z.enum(GRANT_OPERATIONS)).min(1), Name: fields.text({ min: 1, max: 256 }).optional(),
        Constraints: z.object({ EncryptionContextEquals: context, EncryptionContextSubset: context }).optional(),
        GrantTokens: grantTokens, DryRun: dryRun }),
      // Its GrantTokens are checked before the handler, with every other operation's (see index.ts).
      handle: (caller, input) => service.createGrant(caller, { keyId: input.KeyId, granteePrincipal: input.GranteePrincipal,
        retiringPrincipal: input.RetiringPrincipal, operations: input.Operations, name: input.Name, dryRun: input.DryRun,
        constraints: input.Constraints ? { encryptionContextEquals: input.Constraints.EncryptionContextEquals,
          encryptionContextSubset: input.Constraints.EncryptionContextSubset } : undefined }),
    }),
    defineOperation({
      target: `${TRENT}.ListGrants`, action: 'kms:ListGrants',
      input: z.object({ KeyId: keyId, GrantId: grantId.optional(), GranteePrincipal: principal.optional(),
        Limit: fields.integer({ min: 1, max: 100 }).optional(), Marker: marker }),
      handle: async (caller, input) => listed(await service.listGrants(caller, { keyId: input.KeyId, grantId: input.GrantId,
        granteePrincipal: input.GranteePrincipal, limit: input.Limit ?? 50, marker: input.Marker })),
    }),
    defineOperation({
      target: `${TRENT}.ListRetirableGrants`, action: 'kms:ListRetirableGrants',
      input: z.object({ RetiringPrincipal: principal, Limit: fields.integer({ min: 1, max: 100 }).optional(), Marker: marker }),
      handle: async (caller, input) => listed(await service.listRetirableGrants(caller, input.RetiringPrincipal, input.Limit ?? 50, input.Marker)),
    }),
    defineOperation({
      target: `${TRENT}.RetireGrant`, action: 'kms:RetireGrant',
      input: z.object({ GrantToken: fields.text({ min: 1, max: 8192 }).optional(), KeyId: keyId.optional(), GrantId: grantId.optional(), DryRun: dryRun }),
      handle: async (caller, input) => {
        await service.retireGrant(caller, { grantToken: input.GrantToken, keyId: input.KeyId, grantId: input.GrantId, dryRun: input.DryRun });
        return {};
      },
    }),
    defineOperation({
      target: `${TRENT}.RevokeGrant`, action: 'kms:RevokeGrant',
      input: z.object({ KeyId: keyId, GrantId: grantId, DryRun: dryRun }),
      handle: async (caller, input) => { await service.revokeGrant(caller, input.KeyId, input.GrantId, input.DryRun); return {}; },
    }),
  ];
}
