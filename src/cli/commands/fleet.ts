// `trustplane class ...` and `trustplane host join-token`: the fleet's classes, the keys each may
// hold, and the tokens hosts enrol with. Must never print a join token except the one just made.
import type { Command } from 'commander';
import { parseDurationSeconds } from '../../shared/config.ts';
import { UserError } from '../../shared/errors.ts';
import { writeFileDurably } from '../../shared/fs.ts';
import { withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { epochToIso, printResult } from '../output.ts';
import { describeRotation, rotationStatusJson, type RotationStatusView } from './key.ts';
import { registerHostRequestKeyCommand } from './privop-encryption.ts';
import {
  attestationInput, describeAttestation, describeClassAttestation, withAttestationFlags, type AttestationFlags, type ClassAttestationView,
} from './attest.ts';

interface ClassView {
  Name: string;
  Parent?: string;
  KeyIds: string[];
  EntitledKeyIds?: string[];
  Attestation?: ClassAttestationView;
}

interface HostView {
  HostId: string;
  Name: string;
  Classes: string[];
  Status: string;
  LastSeen?: number;
  AgentVersion?: string;
  CertificateExpiresAt: number;
  Keys: Record<string, number[]>;
  EntitledKeyIds?: string[];
  Attestation?: { Status: string; Mode: string; Failures: Array<Record<string, string>>; LastVerified?: string };
}

/** `web, db` → ['web', 'db']. */
function classList(text: string): string[] {
  return text.split(',').map((name) => name.trim()).filter(Boolean);
}


export function registerFleetCommands(program: Command): void {
  const hostClass = program.command('class').description('host classes: a tree per account; a class holds its keys and its ancestors\'');

  withAttestationFlags(withClientFlags(hostClass.command('create').argument('<name>', 'class name, e.g. web or web/jp')
    .option('--parent <class>', 'parent class (the name becomes PARENT/NAME)')))
    .action(async (name: string, flags: ClientFlags & AttestationFlags & { parent?: string }) => {
      const result = await withClient(flags, async (client) => {
        const created = await client.fleet<{ Class: ClassView }>('CreateClass', { Name: name, Parent: flags.parent });
        const settings = attestationInput(flags);
        if (!settings) return created;
        const configured = await client.fleet<{ Attestation?: unknown }>('SetClassAttestation', { Name: created.Class.Name, ...settings });
        return { Class: { ...created.Class, Attestation: configured.Attestation } };
      });
      printResult(flags, result, () => `class ${result.Class.Name} created${result.Class.Parent ? ` under ${result.Class.Parent}` : ''}`
        + (flags.attestation ? `, attesting (${flags.attestation})` : '') + (flags.joinTokens === 'deny' ? ', no join tokens' : ''));
    });

  withClientFlags(hostClass.command('list'))
    .action(async (flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Classes: ClassView[] }>('ListClasses'));
      printResult(flags, result, () => (result.Classes.length === 0 ? '(no classes)' : result.Classes.map((record) => {
        const inherited = (record.EntitledKeyIds ?? []).filter((keyId) => !record.KeyIds.includes(keyId));
        return `${record.Name}  keys: ${record.KeyIds.join(',') || '-'}${inherited.length ? `  inherited: ${inherited.join(',')}` : ''}`
          + `  ${record.Attestation ? `attests: ${record.Attestation.Mode}` : 'attests: no'}`
          + `${record.Attestation?.JoinTokens === false ? '  join tokens: denied' : ''}`;
      }).join('\n')));
    });

  withClientFlags(hostClass.command('describe').argument('<name>').description('one class: parent, keys, attestation, whether it takes join tokens'))
    .action(async (name: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Classes: ClassView[] }>('ListClasses'));
      const found = result.Classes.find((record) => record.Name === name);
      if (!found) throw new UserError('NotFoundException', `Class ${name} does not exist.`);
      const inherited = (found.EntitledKeyIds ?? []).filter((keyId) => !found.KeyIds.includes(keyId));
      printResult(flags, { Class: found }, () => [`class ${found.Name}${found.Parent ? ` (under ${found.Parent})` : ''}`,
        `keys: ${found.KeyIds.join(', ') || '-'}${inherited.length ? `; inherited: ${inherited.join(', ')}` : ''}`,
        describeClassAttestation(found.Attestation)].join('\n'));
    });

  withClientFlags(hostClass.command('delete').argument('<name>'))
    .action(async (name: string, flags: ClientFlags) => {
      await withClient(flags, (client) => client.fleet('DeleteClass', { Name: name }));
      printResult(flags, {}, () => `class ${name} deleted`);
    });

  withClientFlags(hostClass.command('grant-key').argument('<class>').argument('<key>', 'key id, ARN or alias'))
    .action(async (className: string, key: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ KeyId: string; Changed: boolean }>('GrantKey', { Class: className, KeyId: key }));
      printResult(flags, result, () => (result.Changed ? `class ${className} may now hold key ${result.KeyId}` : `class ${className} already held key ${result.KeyId}`));
    });

  withClientFlags(hostClass.command('revoke-key').argument('<class>').argument('<key>', 'key id, ARN or alias'))
    .action(async (className: string, key: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ KeyId: string }>('RevokeKey', { Class: className, KeyId: key }));
      printResult(flags, result, () => `class ${className} no longer holds key ${result.KeyId}`);
    });

  const host = program.command('host').description('hosts of the fleet');
  registerHostRequestKeyCommand(host);

  withClientFlags(host.command('ca').description('print the account\'s fleet CA certificate (PEM): what host certificates, and so sealed results, chain to')
    .option('--out <file>', 'write the PEM to this file instead of printing it'))
    .action(async (flags: ClientFlags & { out?: string }) => {
      const { Certificate } = await withClient(flags, (client) => client.fleet<{ Certificate: string }>('GetAccountCa', {}));
      if (flags.out) writeFileDurably(flags.out, Certificate, 0o644);
      printResult(flags, { Certificate, ...(flags.out ? { File: flags.out } : {}) },
        () => (flags.out ? `wrote the account CA certificate to ${flags.out}` : Certificate.trimEnd()));
    });

  withClientFlags(host.command('list'))
    .action(async (flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Hosts: HostView[] }>('ListHosts'));
      // The interface scripts read: an array of {HostId, Classes, LastSeen, Keys}.
      printResult(flags, result.Hosts.map((entry) => ({ HostId: entry.HostId, Classes: entry.Classes, LastSeen: entry.LastSeen, Keys: entry.Keys })),
        () => (result.Hosts.length === 0 ? '(no hosts)' : result.Hosts.map((entry) =>
          `${entry.HostId}  ${entry.Name}  classes: ${entry.Classes.join(',')}  last seen: ${epochToIso(entry.LastSeen) || 'never'}`).join('\n')));
    });

  withClientFlags(host.command('show').argument('<host-id>'))
    .action(async (hostId: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Host: HostView }>('GetHost', { HostId: hostId }));
      const view = result.Host;
      // Attestation at the top as well: scripts read `.Attestation.Status`.
      printResult(flags, { ...result, Attestation: view.Attestation }, () => [`host ${view.HostId} (${view.Name}), ${view.Status}`,
        `classes: ${view.Classes.join(', ')}`, `may hold: ${(view.EntitledKeyIds ?? []).join(', ') || '-'}`, `agent: ${view.AgentVersion ?? 'unknown'}`,
        `certificate expires: ${epochToIso(view.CertificateExpiresAt)}`, ...describeAttestation(view.Attestation)].join('\n'));
    });

  withClientFlags(host.command('set-classes').argument('<host-id>').argument('<classes>', 'comma-separated classes'))
    .action(async (hostId: string, classes: string, flags: ClientFlags) => {
      await withClient(flags, (client) => client.fleet('SetHostClasses', { HostId: hostId, Classes: classList(classes) }));
      printResult(flags, {}, () => `host ${hostId} is now in ${classes}`);
    });

  withClientFlags(host.command('remove').argument('<host-id>'))
    .action(async (hostId: string, flags: ClientFlags) => {
      await withClient(flags, (client) => client.fleet('RemoveHost', { HostId: hostId }));
      printResult(flags, {}, () => `host ${hostId} removed`);
    });
  withClientFlags(host.command('join-token').description('make a token a host enrols with (shown once)')
    .requiredOption('--classes <a,b>', 'classes the host joins')
    .option('--uses <n>', 'how many hosts may enrol with it (default 1)')
    .option('--ttl <duration>', 'how long it is valid: seconds, or 15m, 2h, 7d (default 1h)'))
    .action(async (flags: ClientFlags & { classes: string; uses?: string; ttl?: string }) => {
      const classes = classList(flags.classes);
      const result = await withClient(flags, (client) => client.fleet<{ Token: string; ExpiresAt: string; Uses: number }>('CreateJoinToken', {
        Classes: classes, Uses: flags.uses === undefined ? undefined : Number(flags.uses),
        TtlSeconds: flags.ttl === undefined ? undefined : parseDurationSeconds(flags.ttl, '--ttl') }));
      printResult(flags, { Token: result.Token, ExpiresAt: result.ExpiresAt },
        () => `${result.Token}\n(valid until ${result.ExpiresAt} for ${result.Uses} host(s); shown once)`);
    });

  withClientFlags(host.command('export').description('the whole fleet\'s inventory: hosts, classes, last seen, agent version, key versions held')
    .option('--format <format>', 'json (default) or csv (one row per host, key and version)', 'json'))
    .action(async (flags: ClientFlags & { format: string }) => {
      if (flags.format !== 'json' && flags.format !== 'csv') throw new UserError('ValidationException', `--format must be json or csv, got '${flags.format}'.`);
      const result = await withClient(flags, (client) => client.fleet<{ Hosts: HostView[] }>('ListHosts'));
      if (flags.format === 'json') {
        process.stdout.write(`${JSON.stringify(result.Hosts.map((entry) => ({ ...entry, LastSeen: epochToIso(entry.LastSeen) || null,
          CertificateExpiresAt: epochToIso(entry.CertificateExpiresAt) })), null, 2)}\n`);
        return;
      }
      const quote = (value: string) => (/[",\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value);
      const rows = [['host_id', 'name', 'status', 'classes', 'last_seen', 'agent_version', 'key_id', 'version']];
      for (const entry of result.Hosts) {
        const base = [entry.HostId, entry.Name, entry.Status, entry.Classes.join(' '), epochToIso(entry.LastSeen), entry.AgentVersion ?? ''];
        const held = Object.entries(entry.Keys ?? {}).flatMap(([keyId, versions]) => versions.map((version) => [keyId, String(version)]));
        for (const pair of held.length > 0 ? held : [['', '']]) rows.push([...base, ...pair]);
      }
      process.stdout.write(rows.map((row) => row.map(quote).join(',')).join('\n') + '\n');
    });

  const rotation = program.command('rotation').description('two-phase key rotations: staged versions waiting for hosts');

  withClientFlags(rotation.command('status').argument('<key>', 'key id, ARN or alias'))
    .action(async (key: string, flags: ClientFlags) => {
      const status = await withClient(flags, (client) => client.fleet<RotationStatusView>('GetRotationStatus', { KeyId: key }));
      printResult(flags, rotationStatusJson(status), () => describeRotation(status));
    });

  withClientFlags(rotation.command('promote').argument('<key>', 'key id, ARN or alias')
    .description('make the staged version the default now (only when every host has it, unless --force)')
    .option('--force', 'promote even though some hosts have not acknowledged; they are named in the answer and the audit log'))
    .action(async (key: string, flags: ClientFlags & { force?: boolean }) => {
      const status = await withClient(flags, (client) => client.fleet<RotationStatusView & { LeftBehind: string[] }>('PromoteRotation',
        { KeyId: key, Force: flags.force ?? false }));
      printResult(flags, { ...rotationStatusJson(status), LeftBehind: status.LeftBehind }, () => `${describeRotation(status)}`
        + (status.LeftBehind.length > 0 ? `\nleft behind (recorded in the audit log): ${status.LeftBehind.join(', ')}` : ''));
    });
}
