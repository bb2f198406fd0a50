// `trustplane key ...`: create, list, describe, rotate, list versions and manage aliases.
// Talks to the key service only through clients/; --json prints the service's own shapes.
import type { Command } from 'commander';
import {
  CreateAliasCommand, CreateKeyCommand, DeleteAliasCommand, DescribeKeyCommand, DisableKeyCommand, EnableKeyCommand,
  ListAliasesCommand, ListKeysCommand, RotateKeyOnDemandCommand, ScheduleKeyDeletionCommand, UpdateAliasCommand,
  type AliasListEntry, type KeyMetadata, type KeySpec, type KeyUsageType,
} from '@aws-sdk/client-kms';
import type { KeyServiceClient } from '../../clients/kms.ts';
import { collect, parseKeyValuePairs, withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { epochToIso, printResult } from '../output.ts';
import { readFileSync } from 'node:fs';
import { AgentClient } from '../../clients/agent.ts';
import { parseDurationSeconds } from '../../shared/config.ts';
import { UserError } from '../../shared/errors.ts';

interface KeyVersionsResult {
  KeyId: string;
  CurrentVersion: number;
  MinimumDecryptionVersion: number;
  Versions: Array<{ Version: number; CreationDate: number; RotationType?: string; Default: boolean; DecryptionAllowed: boolean }>;
  NextMarker?: string;
}

function parseTags(values: string[] | undefined) {
  return parseKeyValuePairs('tag', values ?? []).map(([TagKey, TagValue]) => ({ TagKey, TagValue }));
}

function describeLine(metadata: KeyMetadata, aliases: string[]): string {
  const alias = aliases.length ? `  ${aliases.join(',')}` : '';
  return `${metadata.KeyId}  ${metadata.KeyState}  ${metadata.KeySpec}/${metadata.KeyUsage}${alias}${metadata.Description ? `  "${metadata.Description}"` : ''}`;
}

async function allAliases(client: KeyServiceClient, keyId?: string): Promise<AliasListEntry[]> {
  const aliases: AliasListEntry[] = [];
  let marker: string | undefined;
  do {
    const page = await client.kms.send(new ListAliasesCommand({ KeyId: keyId, Marker: marker, Limit: 100 }));
    aliases.push(...(page.Aliases ?? []));
    marker = page.Truncated ? page.NextMarker : undefined;
  } while (marker);
  return aliases;
}


export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('manage keys of the key service');

  withClientFlags(key.command('create').description('create a key')
    .option('--description <text>', 'what the key is for')
    .option('--key-spec <spec>', 'SYMMETRIC_DEFAULT (default), RSA_2048|3072|4096, ECC_NIST_P256|P384|P521, ECC_SECG_P256K1, HMAC_224|256|384|512')
    .option('--key-usage <usage>', 'ENCRYPT_DECRYPT, SIGN_VERIFY or GENERATE_VERIFY_MAC (default: the spec\'s first)')
    .option('--alias <name>', 'also create this alias (alias/...) for the key')
    .option('--tag <key=value>', 'tag the key (repeatable)', collect))
    .action(async (flags: ClientFlags & { description?: string; keySpec?: string; keyUsage?: string; alias?: string; tag?: string[] }) => {
      await withClient(flags, async (client) => {
        const created = await client.kms.send(new CreateKeyCommand({ Description: flags.description,
          KeySpec: flags.keySpec as KeySpec | undefined, KeyUsage: flags.keyUsage as KeyUsageType | undefined, Tags: parseTags(flags.tag) }));
        const metadata = created.KeyMetadata!;
        if (flags.alias) await client.kms.send(new CreateAliasCommand({ AliasName: flags.alias, TargetKeyId: metadata.KeyId }));
        printResult(flags, { KeyMetadata: metadata, AliasName: flags.alias }, () => `${metadata.KeyId}${flags.alias ? `  ${flags.alias}` : ''}\n${metadata.Arn}`);
      });
    });

  withClientFlags(key.command('list').description('list keys with state, spec and aliases'))
    .action(async (flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const keyIds: string[] = [];
        let marker: string | undefined;
        do {
          const page = await client.kms.send(new ListKeysCommand({ Marker: marker, Limit: 1000 }));
          keyIds.push(...(page.Keys ?? []).map((entry) => entry.KeyId!));
          marker = page.Truncated ? page.NextMarker : undefined;
        } while (marker);
        const aliases = await allAliases(client);
        const keys: KeyMetadata[] = [];
        for (const keyId of keyIds) keys.push((await client.kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!);
        const aliasesOf = (keyId: string) => aliases.filter((alias) => alias.TargetKeyId === keyId).map((alias) => alias.AliasName!);
        printResult(flags, { Keys: keys.map((metadata) => ({ ...metadata, Aliases: aliasesOf(metadata.KeyId!) })) },
          () => (keys.length ? keys.map((metadata) => describeLine(metadata, aliasesOf(metadata.KeyId!))).join('\n') : '(no keys)'));
      });
    });

  withClientFlags(key.command('describe <key>').description('show a key (id, ARN, alias or alias ARN)'))
    .action(async (keyId: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const metadata = (await client.kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata!;
        const aliases = (await allAliases(client, metadata.KeyId)).map((alias) => alias.AliasName!);
        printResult(flags, { KeyMetadata: metadata, Aliases: aliases }, () => [
          `KeyId:        ${metadata.KeyId}`, `Arn:          ${metadata.Arn}`, `State:        ${metadata.KeyState}`,
          `Spec/Usage:   ${metadata.KeySpec} / ${metadata.KeyUsage}`, `Description:  ${metadata.Description ?? ''}`,
          `Created:      ${metadata.CreationDate?.toISOString()}`, `Aliases:      ${aliases.join(', ') || '-'}`,
          ...(metadata.DeletionDate ? [`Deletion:     ${metadata.DeletionDate.toISOString()}`] : []),
        ].join('\n'));
      });
    });

  withClientFlags(key.command('rotate <key>').description('rotate a symmetric key now: a new default version (or, --staged, a pending one)')
    .option('--staged', 'two-phase: push the new version to every entitled host; it becomes the default once all acknowledge')
    .option('--promote-after <duration>', 'with --staged: promote anyway after this long (e.g. 1h), leaving missing hosts behind'))
    .action(async (keyId: string, flags: ClientFlags & { staged?: boolean; promoteAfter?: string }) => {
      if (flags.promoteAfter !== undefined && !flags.staged) throw new UserError('ValidationException', '--promote-after goes with --staged.');
      if (flags.staged) {
        const status = await withClient(flags, (client) => client.fleet<RotationStatusView>('RotateKeyStaged', { KeyId: keyId,
          PromoteAfterSeconds: flags.promoteAfter === undefined ? undefined : parseDurationSeconds(flags.promoteAfter, '--promote-after') }));
        printResult(flags, rotationStatusJson(status), () => describeRotation(status));
        return;
      }
      await withClient(flags, async (client) => {
        await client.kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
        const versions = await client.extension<KeyVersionsResult>('ListKeyVersions', { KeyId: keyId, Limit: 1 });
        printResult(flags, { KeyId: versions.KeyId, CurrentVersion: versions.CurrentVersion },
          () => `${versions.KeyId} now at version ${versions.CurrentVersion}`);
      });
    });

  withClientFlags(key.command('versions <key>').description('list a key\'s versions'))
    .action(async (keyId: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const first = await client.extension<KeyVersionsResult>('ListKeyVersions', { KeyId: keyId, Limit: 1000 });
        const versions = [...first.Versions];
        let marker = first.NextMarker;
        while (marker) {
          const page = await client.extension<KeyVersionsResult>('ListKeyVersions', { KeyId: keyId, Limit: 1000, Marker: marker });
          versions.push(...page.Versions);
          marker = page.NextMarker;
        }
        printResult(flags, { ...first, Versions: versions, NextMarker: undefined }, () => versions.map((version) =>
          `v${version.Version}  ${epochToIso(version.CreationDate)}  ${version.RotationType ?? 'CREATED'}${version.Default ? '  default' : ''}${version.DecryptionAllowed ? '' : '  decryption refused'}`).join('\n'));
      });
    });

  withClientFlags(key.command('set-min-version <key> <version>').description('refuse decryption of ciphertexts older than VERSION'))
    .action(async (keyId: string, version: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const result = await client.extension<{ KeyId: string; MinimumDecryptionVersion: number }>('SetMinimumDecryptionVersion',
          { KeyId: keyId, MinimumDecryptionVersion: Number(version) });
        printResult(flags, result, () => `${result.KeyId} decrypts versions >= ${result.MinimumDecryptionVersion}`);
      });
    });

  for (const [name, description, run] of [
    ['enable', 'enable a disabled key', (client: KeyServiceClient, keyId: string) => client.kms.send(new EnableKeyCommand({ KeyId: keyId }))],
    ['disable', 'disable a key (it refuses every operation until enabled)', (client: KeyServiceClient, keyId: string) => client.kms.send(new DisableKeyCommand({ KeyId: keyId }))],
  ] as const) {
    withClientFlags(key.command(`${name} <key>`).description(description))
      .action(async (keyId: string, flags: ClientFlags) => {
        await withClient(flags, async (client) => {
          await run(client, keyId);
          printResult(flags, { KeyId: keyId }, () => `${keyId} ${name}d`);
        });
      });
  }

  withClientFlags(key.command('schedule-deletion <key>').description('delete a key after a waiting period (7-30 days)')
    .option('--days <n>', 'waiting period in days', '30'))
    .action(async (keyId: string, flags: ClientFlags & { days: string }) => {
      await withClient(flags, async (client) => {
        const result = await client.kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: Number(flags.days) }));
        printResult(flags, { KeyId: result.KeyId, DeletionDate: result.DeletionDate, KeyState: result.KeyState },
          () => `${result.KeyId} will be deleted on ${result.DeletionDate?.toISOString()}`);
      });
    });

  const alias = key.command('alias').description('manage aliases (alias/NAME)');
  withClientFlags(alias.command('create <alias> <key>').description('point a new alias at a key'))
    .action(async (aliasName: string, keyId: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        await client.kms.send(new CreateAliasCommand({ AliasName: aliasName, TargetKeyId: keyId }));
        printResult(flags, { AliasName: aliasName, TargetKeyId: keyId }, () => `${aliasName} -> ${keyId}`);
      });
    });
  withClientFlags(alias.command('update <alias> <key>').description('point an existing alias at another key'))
    .action(async (aliasName: string, keyId: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        await client.kms.send(new UpdateAliasCommand({ AliasName: aliasName, TargetKeyId: keyId }));
        printResult(flags, { AliasName: aliasName, TargetKeyId: keyId }, () => `${aliasName} -> ${keyId}`);
      });
    });
  withClientFlags(alias.command('delete <alias>').description('delete an alias (the key stays)'))
    .action(async (aliasName: string, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        await client.kms.send(new DeleteAliasCommand({ AliasName: aliasName }));
        printResult(flags, { AliasName: aliasName }, () => `${aliasName} deleted`);
      });
    });
  withClientFlags(alias.command('list [key]').description('list aliases, optionally of one key'))
    .action(async (keyId: string | undefined, flags: ClientFlags) => {
      await withClient(flags, async (client) => {
        const aliases = await allAliases(client, keyId);
        printResult(flags, { Aliases: aliases }, () => (aliases.length
          ? aliases.map((entry) => `${entry.AliasName} -> ${entry.TargetKeyId}`).join('\n') : '(no aliases)'));
      });
    });
}

/** A secret's value from --value-file (or - for stdin), never from a flag `ps` would show. */
function readSecretValue(path: string): Buffer {
  const value = path === '-' ? readFileSync(0) : readFileSync(path);
  if (value.length === 0 || value.length > 65_536) throw new UserError('ValidationException', 'A secret value is 1 to 65536 bytes.');
  return value;
}

export function registerSecretCommands(program: Command): void {
  const secret = program.command('secret').description('secret keys: opaque values (passwords, API tokens) hosts fetch whole, versioned and rotated like keys');

  withClientFlags(secret.command('create').description('create a secret key from a value')
    .requiredOption('--value-file <file>', 'file holding the value (- for stdin)')
    .option('--description <text>', 'what the secret is for')
    .option('--alias <name>', 'also create this alias (alias/...)'))
    .action(async (flags: ClientFlags & { valueFile: string; description?: string; alias?: string }) => {
      const value = readSecretValue(flags.valueFile);
      const result = await withClient(flags, async (client) => {
        const created = await client.extension<{ KeyMetadata: { KeyId: string; Arn: string } }>('CreateSecret',
          { Description: flags.description, SecretValue: value.toString('base64') });
        if (flags.alias) await client.kms.send(new CreateAliasCommand({ AliasName: flags.alias, TargetKeyId: created.KeyMetadata.KeyId }));
        return created;
      });
      value.fill(0);
      printResult(flags, result.KeyMetadata, () => `${result.KeyMetadata.KeyId}${flags.alias ? ` (${flags.alias})` : ''}`);
    });

  withClientFlags(secret.command('put <key>').description('a new value: a new version (staged through the hosts when the secret is distributed)')
    .requiredOption('--value-file <file>', 'file holding the value (- for stdin)'))
    .action(async (key: string, flags: ClientFlags & { valueFile: string }) => {
      const value = readSecretValue(flags.valueFile);
      const result = await withClient(flags, (client) => client.extension<{ KeyId: string; Version: number; PendingVersion?: number }>('PutSecretValue',
        { KeyId: key, SecretValue: value.toString('base64') }));
      value.fill(0);
      printResult(flags, result, () => `${result.KeyId}: version ${result.Version}${result.PendingVersion ? ' pending until every host holds it' : ' is the default'}`);
    });

  withClientFlags(secret.command('get <key>').description('print a secret\'s value (from the key service, or --agent from this host\'s agent)')
    .option('--at-version <n>', 'a given version (default: the default version)')
    .option('--agent <socket>', 'ask the host agent on this socket instead of the key service'))
    .action(async (key: string, flags: ClientFlags & { atVersion?: string; agent?: string }) => {
      const request = { KeyId: key, Version: flags.atVersion === undefined ? undefined : Number(flags.atVersion) };
      const result = flags.agent
        ? await new AgentClient(flags.agent).call<{ SecretValue: string; Version: number; KeyId: string }>('GetSecret', request)
        : await withClient(flags, (client) => client.extension<{ SecretValue: string; Version: number; KeyId: string }>('GetSecretValue', request));
      if (flags.json) printResult(flags, result, () => '');
      else process.stdout.write(Buffer.from(result.SecretValue, 'base64'));
    });
}

export interface RotationStatusView {
  KeyId: string; PendingVersion?: number; DefaultVersion: number; State: 'pending' | 'promoted';
  Acknowledged: string[]; Missing: string[]; PromoteAfter?: number; LeftBehind?: string[];
}

/** The interface scripts read: exactly these fields. */
export function rotationStatusJson(status: RotationStatusView) {
  return { KeyId: status.KeyId, PendingVersion: status.PendingVersion ?? null, DefaultVersion: status.DefaultVersion, State: status.State,
    Acknowledged: status.Acknowledged, Missing: status.Missing };
}

export function describeRotation(status: RotationStatusView): string {
  if (status.State === 'promoted') {
    return `${status.KeyId}: version ${status.DefaultVersion} is the default; held by ${status.Acknowledged.length} host(s)`
      + (status.Missing.length > 0 ? `, missing on ${status.Missing.length}: ${status.Missing.join(', ')}` : '');
  }
  return [`${status.KeyId}: version ${status.PendingVersion} is pending (default stays ${status.DefaultVersion})`,
    `acknowledged: ${status.Acknowledged.length} host(s)${status.Acknowledged.length > 0 ? ` (${status.Acknowledged.join(', ')})` : ''}`,
    `missing: ${status.Missing.length} host(s)${status.Missing.length > 0 ? ` (${status.Missing.join(', ')})` : ''}`,
    ...(status.PromoteAfter ? [`promoted anyway at ${epochToIso(status.PromoteAfter)}`] : [])].join('\n');
}
