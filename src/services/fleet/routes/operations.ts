// Fleet operations (TrustPlaneFleet.*, signed for the service "trustplane"). Routes parse and
// delegate; the join token appears only in the answer that makes it.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import type { HostClassRecord } from '../../../shared/store/sqlite-fleet.ts';
import { DEFAULT_JOIN_TOKEN_TTL_SECONDS, MAX_JOIN_TOKEN_TTL_SECONDS, type FleetService } from '../service.ts';

export const FLEET = 'TrustPlaneFleet';

const className = fields.text({ min: 1, max: 512 });
const keyRef = fields.text({ min: 1, max: 2048 });

function describeClass(record: HostClassRecord & { entitledKeyIds?: string[] }) {
  return { Name: record.name, Parent: record.parent, CreateDate: record.createdAt, KeyIds: record.keyIds,
    EntitledKeyIds: record.entitledKeyIds };
}

export function fleetOperations(service: FleetService) {
  return [
    defineOperation({
      target: `${FLEET}.CreateClass`, action: 'fleet:CreateClass',
      input: z.object({ Name: className, Parent: className.optional() }),
      handle: async (caller, input) => ({ Class: describeClass(await service.createClass(caller, input.Name, input.Parent)) }),
    }),
    defineOperation({
      target: `${FLEET}.ListClasses`, action: 'fleet:ListClasses', input: z.object({}),
      handle: async (caller) => ({ Classes: (await service.listClasses(caller)).map(describeClass) }),
    }),
    defineOperation({
      target: `${FLEET}.DeleteClass`, action: 'fleet:DeleteClass', input: z.object({ Name: className }),
      handle: async (caller, input) => { await service.deleteClass(caller, input.Name); return {}; },
    }),
    defineOperation({
      target: `${FLEET}.GrantKey`, action: 'fleet:GrantKey', input: z.object({ Class: className, KeyId: keyRef }),
      handle: async (caller, input) => {
        const result = await service.grantKey(caller, input.Class, input.KeyId);
        return { Class: input.Class, KeyId: result.keyId, Changed: result.changed };
      },
    }),
    defineOperation({
      target: `${FLEET}.RevokeKey`, action: 'fleet:RevokeKey', input: z.object({ Class: className, KeyId: keyRef }),
      handle: async (caller, input) => {
        const result = await service.revokeKey(caller, input.Class, input.KeyId);
        return { Class: input.Class, KeyId: result.keyId };
      },
    }),
    defineOperation({
      target: `${FLEET}.CreateJoinToken`, action: 'fleet:CreateJoinToken', refuseReplays: true,
      input: z.object({ Classes: z.array(className).min(1).max(64), Uses: fields.integer({ min: 1, max: 100_000 }).optional(),
        TtlSeconds: fields.integer({ min: 60, max: MAX_JOIN_TOKEN_TTL_SECONDS }).optional() }),
      handle: async (caller, input) => {
        const made = await service.createJoinToken(caller, input.Classes, input.Uses ?? 1, input.TtlSeconds ?? DEFAULT_JOIN_TOKEN_TTL_SECONDS);
        return { Token: made.token, ExpiresAt: made.expiresAt, Classes: made.classes, Uses: made.uses };
      },
    }),
    defineOperation({
      target: `${FLEET}.ListChanges`, action: 'fleet:ListChanges',
      input: z.object({ SinceRevision: fields.integer({ min: 0 }).optional(), Limit: fields.integer({ min: 1, max: 1000 }).optional() }),
      handle: async (caller, input) => {
        const changes = await service.changesSince(caller, input.SinceRevision ?? 0, input.Limit ?? 1000);
        return { Changes: changes.map((change) => ({ Revision: change.revision, Kind: change.kind, Class: change.className,
          KeyId: change.keyId, Time: change.at })), Revision: changes.at(-1)?.revision ?? input.SinceRevision ?? 0 };
      },
    }),
  ];
}
