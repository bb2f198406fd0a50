// Identity operations on accounts, users, roles and their policies.
// Routes parse and delegate; they never touch the store.
import { z } from 'zod';
import { defineOperation } from '../../../shared/http/index.ts';
import { describePrincipal, type IdentityService } from '../service.ts';
import { IAM, limit, marker, name, policyDocument, tagMap, tags } from './common.ts';
import { fields, pageMarkers } from '../../../shared/http/index.ts';

export function principalOperations(service: IdentityService) {
  const principalArn = fields.text({ min: 20, max: 2048 });
  return [
    defineOperation({
      target: `${IAM}.CreateAccount`, refuseReplays: true, action: 'tp:CreateAccount',
      input: z.object({ AccountName: name }),
      handle: (caller, input) => service.createAccount(caller, input.AccountName),
    }),
    defineOperation({
      target: `${IAM}.ListAccounts`, action: 'tp:ListAccounts',
      input: z.object({ Limit: limit, Marker: marker }),
      handle: async (caller, input) => {
        const page = await service.listAccounts(caller, input.Limit ?? 100, input.Marker);
        return { Accounts: page.items.map((account) => ({ AccountId: account.accountId, AccountName: account.name,
          CreationDate: account.createdAt, Management: account.management })), ...pageMarkers(page.nextMarker) };
      },
    }),
    ...(['user', 'role'] as const).flatMap((kind) => {
      const Kind = kind === 'user' ? 'User' : 'Role';
      const nameField = `${Kind}Name` as const;
      return [
        defineOperation({
          target: `${IAM}.Get${Kind}`, action: `iam:Get${Kind}`,
          input: z.object({ [nameField]: name }) as z.ZodType<Record<string, string>>,
          handle: async (caller, input) => ({ [Kind]: describePrincipal(await service.getPrincipal(caller, kind, input[nameField])) }),
        }),
        defineOperation({
          target: `${IAM}.List${Kind}s`, action: `iam:List${Kind}s`,
          input: z.object({ Limit: limit, Marker: marker }),
          handle: async (caller, input) => {
            const page = await service.listPrincipals(caller, kind, input.Limit ?? 100, input.Marker);
            return { [`${Kind}s`]: page.items.map(describePrincipal), ...pageMarkers(page.nextMarker) };
          },
        }),
        defineOperation({
          target: `${IAM}.Delete${Kind}`, action: `iam:Delete${Kind}`,
          input: z.object({ [nameField]: name }) as z.ZodType<Record<string, string>>,
          handle: async (caller, input) => { await service.deletePrincipal(caller, kind, input[nameField]); return {}; },
        }),
      ];
    }),
    defineOperation({
      target: `${IAM}.CreateUser`, action: 'iam:CreateUser',
      input: z.object({ UserName: name, Tags: tags }),
      handle: async (caller, input) => ({ User: describePrincipal(await service.createUser(caller, input.UserName, tagMap(input.Tags))) }),
    }),
    defineOperation({
      target: `${IAM}.CreateRole`, action: 'iam:CreateRole',
      input: z.object({ RoleName: name, AssumeRolePolicyDocument: policyDocument,
        MaxSessionDuration: fields.integer({ min: 3600, max: 43200 }).optional(), Tags: tags }),
      handle: async (caller, input) => ({ Role: describePrincipal(await service.createRole(caller, { name: input.RoleName,
        trustPolicy: input.AssumeRolePolicyDocument, maxSessionSeconds: input.MaxSessionDuration, tags: tagMap(input.Tags) })) }),
    }),
    defineOperation({
      target: `${IAM}.UpdateAssumeRolePolicy`, action: 'iam:UpdateAssumeRolePolicy',
      input: z.object({ RoleName: name, PolicyDocument: policyDocument }),
      handle: async (caller, input) => { await service.updateTrustPolicy(caller, input.RoleName, input.PolicyDocument); return {}; },
    }),
    defineOperation({
      target: `${IAM}.PutPrincipalPolicy`, action: 'iam:PutPrincipalPolicy',
      input: z.object({ PrincipalArn: principalArn, PolicyName: name, PolicyDocument: policyDocument }),
      handle: async (caller, input) => {
        await service.putPrincipalPolicy(caller, input.PrincipalArn, input.PolicyName, input.PolicyDocument);
        return {};
      },
    }),
    defineOperation({
      target: `${IAM}.GetPrincipalPolicy`, action: 'iam:GetPrincipalPolicy',
      input: z.object({ PrincipalArn: principalArn, PolicyName: name }),
      handle: async (caller, input) => {
        const policy = await service.getPrincipalPolicy(caller, input.PrincipalArn, input.PolicyName);
        return { PrincipalArn: policy.principalArn, PolicyName: policy.policyName, PolicyDocument: policy.document };
      },
    }),
    defineOperation({
      target: `${IAM}.ListPrincipalPolicies`, action: 'iam:ListPrincipalPolicies',
      input: z.object({ PrincipalArn: principalArn }),
      handle: async (caller, input) => ({ PolicyNames: (await service.listPrincipalPolicies(caller, input.PrincipalArn)).map((policy) => policy.policyName) }),
    }),
    defineOperation({
      target: `${IAM}.SimulatePrincipalPolicy`, action: 'iam:SimulatePrincipalPolicy',
      input: z.object({ PrincipalArn: principalArn, Action: fields.text({ min: 3, max: 128 }), Resource: fields.text({ min: 1, max: 2048 }),
        EncryptionContext: fields.encryptionContextField, SourceIp: fields.text({ min: 2, max: 64 }).optional() }),
      handle: async (caller, input) => {
        const result = await service.simulate(caller, { principalArn: input.PrincipalArn, action: input.Action, resource: input.Resource,
          encryptionContext: input.EncryptionContext, sourceIp: input.SourceIp });
        return { Decision: result.decision, Allowed: result.allowed, DecidedBy: result.decidedBy, EnabledBy: result.enabledBy,
          Reason: result.reason, EvaluatedStatements: result.evaluatedStatements,
          MatchedStatements: result.matchedStatements.map((entry) => ({ Source: entry.source, PolicyId: entry.policyId, Sid: entry.sid,
            Index: entry.index, Effect: entry.effect })) };
      },
    }),
    defineOperation({
      target: `${IAM}.DeletePrincipalPolicy`, action: 'iam:DeletePrincipalPolicy',
      input: z.object({ PrincipalArn: principalArn, PolicyName: name }),
      handle: async (caller, input) => { await service.deletePrincipalPolicy(caller, input.PrincipalArn, input.PolicyName); return {}; },
    }),
  ];
}
