// `trustplane account|user|role|access-key ...`: accounts, principals, their policies and keys.
// Talks to the identity service only through clients/; secrets are printed only when issued.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../../shared/errors.ts';
import { printResult } from '../output.ts';
import { collect, parseKeyValuePairs, withClient, withClientFlags, type ClientFlags } from '../client.ts';

interface PrincipalView {
  Name: string;
  Arn: string;
  AccountId: string;
  CreateDate: number;
  Tags: Array<{ Key: string; Value: string }>;
}

/** A policy argument is a file path or the JSON itself. */
function readPolicy(value: string): string {
  const text = !value.trimStart().startsWith('{') && existsSync(value) ? readFileSync(value, 'utf8') : value;
  try {
    JSON.parse(text);
  } catch {
    throw new UserError('MalformedPolicyDocumentException', `The policy ${value.length < 80 ? `'${value}' ` : ''}is neither a JSON document nor a file holding one.`);
  }
  return text;
}

function parseTags(values: string[] | undefined) {
  return values && parseKeyValuePairs('tag', values).map(([Key, Value]) => ({ Key, Value }));
}


function principalArnFor(kind: 'user' | 'role', accountOrArn: string, name: string): string {
  return `arn:aws:iam::${accountOrArn}:${kind}/${name}`;
}

async function callerAccount(client: Parameters<Parameters<typeof withClient>[1]>[0]): Promise<string> {
  return (await client.iam<{ Account: string }>('GetCallerIdentity', {})).Account;
}

export function registerIdentityCommands(program: Command): void {
  withClientFlags(program.command('whoami').description('show the account and principal your credentials belong to'))
    .action(async (flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const identity = await client.iam<{ Account: string; Arn: string; Type: string }>('GetCallerIdentity', {});
        printResult(flags, identity, () => `${identity.Arn}  (account ${identity.Account}, ${identity.Type})`);
      });
    });

  const account = program.command('account').description('accounts (tenants): isolated sets of keys and principals');
  withClientFlags(account.command('create <name>').description('create an account; prints its root credentials once'))
    .action(async (name: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const created = await client.iam<{ AccountId: string; AccountName: string; AccessKeyId: string; SecretAccessKey: string }>(
          'CreateAccount', { AccountName: name });
        printResult(flags, { AccountId: created.AccountId, AccessKeyId: created.AccessKeyId, SecretAccessKey: created.SecretAccessKey },
          () => `account ${created.AccountName} (${created.AccountId}) created; its root credentials, shown only now:\n`
            + `export AWS_ACCESS_KEY_ID=${created.AccessKeyId} AWS_SECRET_ACCESS_KEY=${created.SecretAccessKey}`);
      });
    });
  withClientFlags(account.command('list').description('list accounts (all, from the management account)'))
    .action(async (flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const listed = await client.iam<{ Accounts: Array<{ AccountId: string; AccountName: string; Management: boolean }> }>('ListAccounts', {});
        printResult(flags, listed, () => listed.Accounts.map((entry) =>
          `${entry.AccountId}  ${entry.AccountName}${entry.Management ? '  (management)' : ''}`).join('\n'));
      });
    });

  for (const kind of ['user', 'role'] as const) {
    const Kind = kind === 'user' ? 'User' : 'Role';
    const group = program.command(kind).description(kind === 'user' ? 'users: long-term principals with access keys'
      : 'roles: principals assumed for temporary credentials');
    const create = withClientFlags(group.command('create <name>').description(`create a ${kind}`)
      .option('--tag <key=value>', 'tag (aws:PrincipalTag in policies; repeatable)', collect));
    if (kind === 'role') {
      create.requiredOption('--trust-policy <json|file>', 'who may assume the role (a policy with Principal)')
        .option('--max-session-duration <seconds>', 'longest session, 3600-43200 (default 3600)');
    }
    create.action(async (name: string, flags: ClientFlags & { tag?: string[]; trustPolicy?: string; maxSessionDuration?: string }) => {
      await withClient(flags, async (client) => {
        const input: Record<string, unknown> = { [`${Kind}Name`]: name, Tags: parseTags(flags.tag) };
        if (kind === 'role') {
          input.AssumeRolePolicyDocument = readPolicy(flags.trustPolicy ?? '');
          if (flags.maxSessionDuration) input.MaxSessionDuration = Number(flags.maxSessionDuration);
        }
        const created = await client.iam<Record<string, PrincipalView>>(`Create${Kind}`, input);
        printResult(flags, created, () => created[Kind].Arn);
      });
    });
    withClientFlags(group.command('list').description(`list ${kind}s of your account`))
      .action(async (flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const listed = await client.iam<Record<string, PrincipalView[]>>(`List${Kind}s`, {});
          printResult(flags, listed, () => listed[`${Kind}s`].map((entry) => entry.Arn).join('\n') || `(no ${kind}s)`);
        });
      });
    withClientFlags(group.command('show <name>').description(`show a ${kind}`))
      .action(async (name: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const shown = await client.iam<Record<string, PrincipalView>>(`Get${Kind}`, { [`${Kind}Name`]: name });
          printResult(flags, shown, () => JSON.stringify(shown[Kind], null, 2));
        });
      });
    withClientFlags(group.command('delete <name>').description(`delete a ${kind} with its keys and policies`))
      .action(async (name: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          await client.iam(`Delete${Kind}`, { [`${Kind}Name`]: name });
          printResult(flags, { [`${Kind}Name`]: name }, () => `${kind} ${name} deleted`);
        });
      });
    withClientFlags(group.command('put-policy <name> <policy-name> <json|file>').description(`attach (or replace) an identity policy of a ${kind}`))
      .action(async (name: string, policyName: string, document: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const arn = principalArnFor(kind, await callerAccount(client), name);
          await client.iam('PutPrincipalPolicy', { PrincipalArn: arn, PolicyName: policyName, PolicyDocument: readPolicy(document) });
          printResult(flags, { PrincipalArn: arn, PolicyName: policyName }, () => `policy ${policyName} attached to ${arn}`);
        });
      });
    withClientFlags(group.command('list-policies <name>').description(`list the identity policies of a ${kind}`))
      .action(async (name: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const arn = principalArnFor(kind, await callerAccount(client), name);
          const listed = await client.iam<{ PolicyNames: string[] }>('ListPrincipalPolicies', { PrincipalArn: arn });
          printResult(flags, listed, () => listed.PolicyNames.join('\n') || '(no policies)');
        });
      });
    withClientFlags(group.command('get-policy <name> <policy-name>').description('print an identity policy'))
      .action(async (name: string, policyName: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const arn = principalArnFor(kind, await callerAccount(client), name);
          const policy = await client.iam<{ PolicyDocument: string }>('GetPrincipalPolicy', { PrincipalArn: arn, PolicyName: policyName });
          printResult(flags, policy, () => policy.PolicyDocument);
        });
      });
    withClientFlags(group.command('delete-policy <name> <policy-name>').description('detach an identity policy'))
      .action(async (name: string, policyName: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          const arn = principalArnFor(kind, await callerAccount(client), name);
          await client.iam('DeletePrincipalPolicy', { PrincipalArn: arn, PolicyName: policyName });
          printResult(flags, { PrincipalArn: arn, PolicyName: policyName }, () => `policy ${policyName} deleted from ${arn}`);
        });
      });
  }

  withClientFlags(program.commands.find((command) => command.name() === 'role')!.command('assume <role-arn>')
    .description('get temporary credentials for a role (prints export lines)')
    .requiredOption('--session-name <name>', 'who is using the session (shows in the audit log)')
    .option('--duration <seconds>', 'session length, 900-43200 (default 3600, at most the role\'s maximum)'))
    .action(async (roleArn: string, flags: ClientFlags & { sessionName: string; duration?: string }) => {
      await withClient(flags, async (client) => {
        const session = await client.iam<{ Credentials: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: number };
          AssumedRoleUser: { Arn: string } }>('AssumeRole', { RoleArn: roleArn, RoleSessionName: flags.sessionName,
          DurationSeconds: flags.duration ? Number(flags.duration) : undefined });
        const credentials = session.Credentials;
        printResult(flags, session, () => `# ${session.AssumedRoleUser.Arn} until ${new Date(credentials.Expiration * 1000).toISOString()}\n`
          + `export AWS_ACCESS_KEY_ID=${credentials.AccessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.SecretAccessKey} AWS_SESSION_TOKEN=${credentials.SessionToken}`);
      });
    });

  const policy = program.command('policy').description('policy questions');
  withClientFlags(policy.command('simulate').description('may PRINCIPAL do ACTION on RESOURCE, and which statement decides?')
    .requiredOption('--principal <arn>', 'a user, role or root ARN of your account')
    .requiredOption('--action <action>', 'e.g. kms:Decrypt')
    .requiredOption('--resource <arn>', 'e.g. a key ARN, key id or alias/NAME')
    .option('--context <key=value>', 'encryption context of the request (repeatable)', collect)
    .option('--source-ip <address>', 'the request\'s source address'))
    .action(async (flags: ClientFlags & { principal: string; action: string; resource: string; context?: string[]; sourceIp?: string }) => {
      await withClient(flags, async (client) => {
        const context = flags.context ? Object.fromEntries(parseKeyValuePairs('context', flags.context)) : undefined;
        const result = await client.iam<{ Decision: string; DecidedBy?: string; EnabledBy?: string; Reason: string;
          MatchedStatements: Array<{ Source: string; PolicyId?: string; Sid?: string; Index: number; Effect: string }> }>('SimulatePrincipalPolicy', {
          PrincipalArn: flags.principal, Action: flags.action, Resource: flags.resource, EncryptionContext: context, SourceIp: flags.sourceIp });
        printResult(flags, result, () => [`${result.Decision}: ${result.Reason}`,
          ...(result.DecidedBy ? [`decided by: ${result.DecidedBy}`] : []), ...(result.EnabledBy ? [`enabled by: ${result.EnabledBy}`] : []),
          ...result.MatchedStatements.map((entry) => `matched: ${entry.Effect} ${entry.Source}${entry.PolicyId ? `:${entry.PolicyId}` : ''}#${entry.Sid ?? entry.Index}`)].join('\n'));
      });
    });

  const accessKey = program.command('access-key').description('long-term access keys (at most two active per principal)');
  withClientFlags(accessKey.command('create').description('create an access key; prints the secret once')
    .option('--user <name>', 'for this user (default: yourself)'))
    .action(async (flags: ClientFlags & { user?: string }) => {
      await withClient(flags, async (client) => {
        const created = await client.iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string; PrincipalArn: string } }>(
          'CreateAccessKey', { UserName: flags.user });
        printResult(flags, created, () => `export AWS_ACCESS_KEY_ID=${created.AccessKey.AccessKeyId} AWS_SECRET_ACCESS_KEY=${created.AccessKey.SecretAccessKey}`);
      });
    });
  withClientFlags(accessKey.command('list').description('list access keys').option('--user <name>', 'of this user (default: yourself)'))
    .action(async (flags: ClientFlags & { user?: string }) => {
      await withClient(flags, async (client) => {
        const listed = await client.iam<{ AccessKeyMetadata: Array<{ AccessKeyId: string; Status: string; CreateDate: number }> }>(
          'ListAccessKeys', { UserName: flags.user });
        printResult(flags, listed, () => listed.AccessKeyMetadata.map((key) =>
          `${key.AccessKeyId}  ${key.Status}  ${new Date(key.CreateDate * 1000).toISOString()}`).join('\n') || '(no access keys)');
      });
    });
  for (const [name, status] of [['activate', 'Active'], ['deactivate', 'Inactive']] as const) {
    withClientFlags(accessKey.command(`${name} <access-key-id>`).description(`${name} an access key`).option('--user <name>', 'owner (default: yourself)'))
      .action(async (accessKeyId: string, flags: ClientFlags & { user?: string }) => {
        await withClient(flags, async (client) => {
          await client.iam('UpdateAccessKey', { AccessKeyId: accessKeyId, Status: status, UserName: flags.user });
          printResult(flags, { AccessKeyId: accessKeyId, Status: status }, () => `${accessKeyId} ${status}`);
        });
      });
  }
  withClientFlags(accessKey.command('delete <access-key-id>').description('delete an access key').option('--user <name>', 'owner (default: yourself)'))
    .action(async (accessKeyId: string, flags: ClientFlags & { user?: string }) => {
      await withClient(flags, async (client) => {
        await client.iam('DeleteAccessKey', { AccessKeyId: accessKeyId, UserName: flags.user });
        printResult(flags, { AccessKeyId: accessKeyId }, () => `${accessKeyId} deleted`);
      });
    });
}
