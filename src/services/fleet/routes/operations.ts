// Fleet operations (TrustPlaneFleet.*, signed for the service "trustplane") and the unauthenticated
// enrolment routes (join token, or a TPM whose EK is allowed). Routes parse and delegate; the join
// token appears only in the answer that makes it.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import { certificateToPem } from '../../../shared/crypto/index.ts';
import type { AuditLog } from '../../../shared/audit/index.ts';
import type { RateLimiter } from '../../../shared/http/index.ts';
import { createPlainJsonHandler, plainJsonPost } from '../../../shared/http/index.ts';
import type { Logger } from '../../../shared/log.ts';
import type { AllowedEkRecord, HostClassRecord, HostRecord } from '../../../shared/store/index.ts';
import { MAX_JOIN_TOKEN_TTL_SECONDS, type FleetService } from '../service.ts';

export const FLEET = 'TrustPlaneFleet';
const FLEET_PATH_PREFIX = '/v1/fleet/';

/** What every enrolling host sends about itself: its identity key (and proof), its key ring key, its name. */
const hostIdentityFields = {
  PublicKey: fields.blob({ min: 1, max: 6144 }),
  HpkePublicKey: fields.blob({ min: 32, max: 32 }),
  Proof: fields.blob({ min: 1, max: 6144 }),
  Name: fields.text({ min: 1, max: 253, pattern: /^[\w.-]+$/ }),
  AgentVersion: fields.text({ min: 1, max: 64 }).optional(),
};

const enrollInput = z.object({ JoinToken: fields.text({ min: 1, max: 256 }), ...hostIdentityFields }).strict();

const enrollTpmStartInput = z.object({
  EkPublic: fields.blob({ min: 1, max: 4096 }),
  EkCertificate: fields.blob({ min: 1, max: 8192 }).optional(),
  AkPublic: fields.blob({ min: 1, max: 4096 }),
  ...hostIdentityFields,
}).strict();

const enrollTpmFinishInput = z.object({ EnrolmentId: fields.text({ min: 1, max: 64 }), Proof: fields.blob({ min: 32, max: 32 }) }).strict();

function describeEnrolled(enrolled: Awaited<ReturnType<FleetService['enroll']>>) {
  return { HostId: enrolled.host.hostId, AccountId: enrolled.host.accountId, Classes: enrolled.host.classes,
    Certificate: enrolled.certificatePem, CaCertificate: enrolled.caCertificatePem, CertificateExpiresAt: enrolled.host.certificateNotAfter,
    FleetPort: enrolled.fleetPort, ServerName: enrolled.serverName };
}

/**
 * POST /v1/fleet/enroll: a host with a join token and no credentials gets its identity.
 * POST /v1/fleet/enroll-tpm/start and /finish: a host with no token, whose TPM's endorsement key is
 * allowed in a class, gets a credential for its AK, activates it, and gets the same identity.
 */
export function createFleetHttpHandler(options: { service: FleetService; logger: Logger; audit?: AuditLog; rateLimiter?: RateLimiter }) {
  return createPlainJsonHandler({ prefix: FLEET_PATH_PREFIX, logger: options.logger, audit: options.audit, rateLimiter: options.rateLimiter, routes: {
    enroll: plainJsonPost('FleetEnrollHost', enrollInput, async (input) => describeEnrolled(await options.service.enroll({
      joinToken: input.JoinToken, publicKeyDer: input.PublicKey, hpkePublicKey: input.HpkePublicKey, proof: input.Proof, name: input.Name,
      agentVersion: input.AgentVersion }))),
    'enroll-tpm/start': plainJsonPost('FleetEnrollHostTpmStart', enrollTpmStartInput, async (input) => {
      const started = await options.service.startTpmEnrolment({ EkPublic: input.EkPublic, EkCertificate: input.EkCertificate, AkPublic: input.AkPublic,
        publicKeyDer: input.PublicKey, hpkePublicKey: input.HpkePublicKey, proof: input.Proof, name: input.Name, agentVersion: input.AgentVersion });
      return { EnrolmentId: started.enrolmentId, CredentialBlob: started.credentialBlob.toString('base64'),
        EncryptedSecret: started.encryptedSecret.toString('base64'), ExpiresAt: started.expiresAt };
    }),
    'enroll-tpm/finish': plainJsonPost('FleetEnrollHostTpmFinish', enrollTpmFinishInput, async (input) => {
      return describeEnrolled(await options.service.finishTpmEnrolment({ enrolmentId: input.EnrolmentId, proof: input.Proof }));
    }),
    // Where agents connect (the listener's port can change across restarts); no secrets, so no credentials.
    info: { method: 'GET', operation: 'FleetInfo', handle: async () => ({ FleetPort: options.service.fleetInfo().fleetPort }) },
  } });
}

function describeHost(host: HostRecord & { entitledKeyIds?: string[]; holdings?: Record<string, number[]>; attestation?: unknown }) {
  // Keys: what the host holds, per key id, as its agent acknowledged it.
  return { HostId: host.hostId, Name: host.name, Classes: host.classes, Status: host.status, LastSeen: host.lastSeen,
    AgentVersion: host.agentVersion, CertificateExpiresAt: host.certificateNotAfter, Revision: host.revision, Keys: host.holdings ?? {},
    EntitledKeyIds: host.entitledKeyIds, Attestation: host.attestation };
}

const className = fields.text({ min: 1, max: 512 });
const keyRef = fields.text({ min: 1, max: 2048 });
const hostId = fields.text({ min: 3, max: 64, pattern: /^h-[0-9a-f]+$/ });

function describeClass(record: HostClassRecord & { entitledKeyIds?: string[] }) {
  const attestation = record.attestation;
  return { Name: record.name, Parent: record.parent, CreateDate: record.createdAt, KeyIds: record.keyIds,
    EntitledKeyIds: record.entitledKeyIds, Attestation: attestation && { Mode: attestation.mode, IntervalSeconds: attestation.intervalSeconds,
      SilentAfter: attestation.silentAfter, Actions: attestation.actions, WebhookUrl: attestation.webhookUrl, JoinTokens: attestation.joinTokens } };
}

function describeAllowedEk(record: AllowedEkRecord) {
  return { Fingerprint: record.fingerprint, AddedBy: record.addedBy, AddedAt: record.addedAt, EnrolledHostId: record.enrolledHostId };
}

const ekFingerprint = fields.text({ min: 64, max: 64, pattern: /^[0-9a-fA-F]{64}$/ });

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
        const made = await service.createJoinToken(caller, input.Classes, input.Uses, input.TtlSeconds);
        return { Token: made.token, ExpiresAt: made.expiresAt, Classes: made.classes, Uses: made.uses };
      },
    }),
    defineOperation({
      target: `${FLEET}.AllowEk`, action: 'fleet:AllowEk',
      // One of: the EK certificate (DER), the EK's public area (TPM2B_PUBLIC), or its fingerprint.
      input: z.object({ Class: className, EkCertificate: fields.blob({ min: 1, max: 8192 }).optional(),
        EkPublic: fields.blob({ min: 1, max: 4096 }).optional(), EkSha256: ekFingerprint.optional() }).strict()
        .refine((input) => [input.EkCertificate, input.EkPublic, input.EkSha256].filter((given) => given !== undefined).length === 1,
          { message: 'Give exactly one of EkCertificate, EkPublic and EkSha256' }),
      handle: async (caller, input) => {
        const source = input.EkCertificate ? { certificateDer: input.EkCertificate } : input.EkPublic ? { ekPublic: input.EkPublic }
          : { fingerprint: input.EkSha256 ?? '' };
        const allowed = await service.allowEk(caller, input.Class, source);
        return { Class: allowed.className, Fingerprint: allowed.fingerprint, Added: allowed.added };
      },
    }),
    defineOperation({
      target: `${FLEET}.ListEks`, action: 'fleet:ListEks', input: z.object({ Class: className }).strict(),
      handle: async (caller, input) => ({ Class: input.Class, Eks: (await service.listEks(caller, input.Class)).map(describeAllowedEk) }),
    }),
    defineOperation({
      target: `${FLEET}.RemoveEk`, action: 'fleet:RemoveEk', input: z.object({ Class: className, Fingerprint: ekFingerprint }).strict(),
      handle: async (caller, input) => { await service.removeEk(caller, input.Class, input.Fingerprint); return {}; },
    }),
    defineOperation({
      target: `${FLEET}.GetAccountCa`, action: 'fleet:GetAccountCa', input: z.object({}).strict(),
      handle: async (caller) => ({ Certificate: certificateToPem(await service.accountCertificateAuthority(caller)) }),
    }),
    defineOperation({
      target: `${FLEET}.ListHosts`, action: 'fleet:ListHosts', input: z.object({}),
      handle: async (caller) => ({ Hosts: (await service.listHosts(caller)).map(describeHost) }),
    }),
    defineOperation({
      target: `${FLEET}.GetHost`, action: 'fleet:GetHost', input: z.object({ HostId: hostId }),
      handle: async (caller, input) => ({ Host: describeHost(await service.getHost(caller, input.HostId)) }),
    }),
    defineOperation({
      target: `${FLEET}.SetHostClasses`, action: 'fleet:SetHostClasses',
      input: z.object({ HostId: hostId, Classes: z.array(className).min(1).max(64) }),
      handle: async (caller, input) => { await service.setHostClasses(caller, input.HostId, input.Classes); return {}; },
    }),
    defineOperation({
      target: `${FLEET}.RemoveHost`, action: 'fleet:RemoveHost', input: z.object({ HostId: hostId }),
      handle: async (caller, input) => { await service.removeHost(caller, input.HostId); return {}; },
    }),
    defineOperation({
      target: `${FLEET}.RotateKeyStaged`, action: 'kms:RotateKeyOnDemand',
      input: z.object({ KeyId: keyRef, PromoteAfterSeconds: fields.integer({ min: 0, max: 366 * 86400 }).optional() }),
      handle: async (caller, input) => service.rotateStaged(caller, input.KeyId, input.PromoteAfterSeconds),
    }),
    defineOperation({
      target: `${FLEET}.GetRotationStatus`, action: 'fleet:GetRotationStatus', input: z.object({ KeyId: keyRef }),
      handle: async (caller, input) => service.rotationStatusOf(caller, input.KeyId),
    }),
    defineOperation({
      target: `${FLEET}.PromoteRotation`, action: 'fleet:PromoteRotation', input: z.object({ KeyId: keyRef, Force: z.boolean().optional() }),
      handle: async (caller, input) => service.promoteNow(caller, input.KeyId, input.Force ?? false),
    }),
    defineOperation({
      target: `${FLEET}.SetKeyFleetOptions`, action: 'kms:EnableKeyRotation',
      input: z.object({ KeyId: keyRef, RotateOnHostLoss: z.boolean() }),
      handle: async (caller, input) => {
        const key = await service.setRotateOnHostLoss(caller, input.KeyId, input.RotateOnHostLoss);
        return { KeyId: key.keyId, RotateOnHostLoss: key.rotateOnHostLoss };
      },
    }),
    defineOperation({
      target: `${FLEET}.ListChanges`, action: 'fleet:ListChanges',
      input: z.object({ SinceRevision: fields.integer({ min: 0 }).optional(), Limit: fields.integer({ min: 1, max: 1000 }).optional() }),
      handle: async (caller, input) => {
        const changes = await service.changesSince(caller, input.SinceRevision ?? 0, input.Limit ?? 1000);
        return { Changes: changes.map((change) => ({ Revision: change.revision, Kind: change.kind, Class: change.className,
          KeyId: change.keyId, HostId: change.hostId, Time: change.at })), Revision: changes.at(-1)?.revision ?? input.SinceRevision ?? 0 };
      },
    }),
  ];
}
