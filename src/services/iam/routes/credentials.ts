// Identity operations on credentials: access keys and role sessions.
// Routes parse and delegate; secrets appear only in the responses that issue them.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import type { AccessKeyRecord, PrincipalRecord } from '../../../shared/store/index.ts';
import type { IdentityService } from '../service.ts';
import { MAX_SESSION_SECONDS, MIN_SESSION_SECONDS } from '../domain/names.ts';
import { IAM, name } from './common.ts';

function keyMetadata(owner: PrincipalRecord, key: AccessKeyRecord) {
  return { AccessKeyId: key.accessKeyId, Status: key.status, CreateDate: key.createdAt,
    UserName: owner.kind === 'user' ? owner.name : undefined, PrincipalArn: owner.arn };
}

export function credentialOperations(service: IdentityService) {
  const accessKeyId = fields.text({ min: 16, max: 128, pattern: /^[\w]+$/ });
  return [
    defineOperation({
      target: `${IAM}.CreateAccessKey`, refuseReplays: true, action: 'iam:CreateAccessKey',
      input: z.object({ UserName: name.optional() }),
      handle: async (caller, input) => {
        const { owner, record, issued } = await service.createAccessKey(caller, input.UserName);
        return { AccessKey: { ...keyMetadata(owner, record), SecretAccessKey: issued.secretAccessKey } };
      },
    }),
    defineOperation({
      target: `${IAM}.ListAccessKeys`, action: 'iam:ListAccessKeys',
      input: z.object({ UserName: name.optional() }),
      handle: async (caller, input) => {
        const { owner, keys } = await service.listAccessKeys(caller, input.UserName);
        return { AccessKeyMetadata: keys.map((key) => keyMetadata(owner, key)) };
      },
    }),
    defineOperation({
      target: `${IAM}.UpdateAccessKey`, action: 'iam:UpdateAccessKey',
      input: z.object({ AccessKeyId: accessKeyId, Status: z.enum(['Active', 'Inactive']), UserName: name.optional() }),
      handle: async (caller, input) => { await service.updateAccessKey(caller, input.AccessKeyId, input.Status, input.UserName); return {}; },
    }),
    defineOperation({
      target: `${IAM}.DeleteAccessKey`, action: 'iam:DeleteAccessKey',
      input: z.object({ AccessKeyId: accessKeyId, UserName: name.optional() }),
      handle: async (caller, input) => { await service.deleteAccessKey(caller, input.AccessKeyId, input.UserName); return {}; },
    }),
    defineOperation({
      // Like STS GetCallerIdentity: needs no permission, tells a caller who it is.
      target: `${IAM}.GetCallerIdentity`, action: 'sts:GetCallerIdentity',
      input: z.object({}),
      handle: async (caller) => ({ Account: caller.accountId, Arn: caller.principalArn, UserId: caller.accessKeyId,
        Type: caller.kind, SessionExpiration: caller.sessionExpiresAt }),
    }),
    defineOperation({
      target: `${IAM}.AssumeRole`, refuseReplays: true, action: 'sts:AssumeRole',
      input: z.object({ RoleArn: fields.text({ min: 20, max: 2048 }), RoleSessionName: fields.text({ min: 2, max: 64 }),
        DurationSeconds: fields.integer({ min: MIN_SESSION_SECONDS, max: MAX_SESSION_SECONDS }).optional() }),
      handle: async (caller, input) => {
        const result = await service.assumeRole(caller, { roleArn: input.RoleArn, sessionName: input.RoleSessionName,
          durationSeconds: input.DurationSeconds });
        return {
          Credentials: { AccessKeyId: result.session.accessKeyId, SecretAccessKey: result.session.secretAccessKey,
            SessionToken: result.session.sessionToken, Expiration: result.session.expiresAt },
          AssumedRoleUser: { Arn: result.sessionArn, AssumedRoleId: `${result.session.accessKeyId}:${input.RoleSessionName}` },
        };
      },
    }),
  ];
}
