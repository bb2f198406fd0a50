// Attestation commands: class attestation settings and reference values, the endorsement keys a
// class admits without join tokens, clearing a quarantine, EAR tokens, and sealing data to a host's
// measurement (`seal` here, `unseal` through the agent).
// Must never write unsealed data anywhere but the output the user named.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { AgentClient } from '../../clients/agent.ts';
import { parseDurationSeconds } from '../../shared/config.ts';
import { UserError } from '../../shared/errors.ts';
import { writeFileDurably } from '../../shared/fs.ts';
import { withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { epochToIso, printResult } from '../output.ts';

export interface AttestationFlags {
  attestation?: string;
  interval?: string;
  silentAfter?: string;
  onContraindicated?: string;
  onWarning?: string;
  onSilent?: string;
  webhook?: string;
  joinTokens?: string;
}

export function withAttestationFlags(command: Command): Command {
  return command
    .option('--attestation <mode>', 'hosts of this class attest: tpm, software (weaker: no hardware root), or none')
    .option('--interval <duration>', 'how often hosts re-measure and send evidence, e.g. 5s, 1m (default 30s)')
    .option('--silent-after <n>', 'intervals a host may miss before it is flagged silent (default 3)')
    .option('--on-contraindicated <actions>', 'corrective actions, comma-separated: flag, alert, revoke (default flag,alert)')
    .option('--on-warning <actions>', 'corrective actions on a warning (default flag)')
    .option('--on-silent <actions>', 'corrective actions when a host goes silent (default flag,alert)')
    .option('--webhook <url>', 'where alerts are POSTed, signed by the verifier (x-trustplane-signature); "" removes it')
    .option('--join-tokens <allow|deny>', 'whether hosts may enrol with a join token (default allow); deny: only TPMs whose EK is allowed (class allow-ek)');
}

const actions = (text: string | undefined) => (text === undefined ? undefined : text.split(',').map((entry) => entry.trim()).filter(Boolean));

/** The SetClassAttestation input the flags ask for; undefined when they ask for nothing. */
export function attestationInput(flags: AttestationFlags): Record<string, unknown> | undefined {
  const input: Record<string, unknown> = {};
  if (flags.attestation !== undefined) {
    if (!['tpm', 'software', 'none'].includes(flags.attestation)) throw new UserError('ValidationException', '--attestation must be tpm, software or none.');
    input.Mode = flags.attestation;
  }
  if (flags.interval !== undefined) input.IntervalSeconds = parseDurationSeconds(flags.interval, '--interval');
  if (flags.silentAfter !== undefined) input.SilentAfter = Number(flags.silentAfter);
  const given = { contraindicated: actions(flags.onContraindicated), warning: actions(flags.onWarning), silent: actions(flags.onSilent) };
  if (Object.values(given).some((value) => value !== undefined)) input.Actions = Object.fromEntries(Object.entries(given).filter(([, value]) => value));
  if (flags.webhook !== undefined) input.WebhookUrl = flags.webhook;
  if (flags.joinTokens !== undefined) {
    if (flags.joinTokens !== 'allow' && flags.joinTokens !== 'deny') throw new UserError('ValidationException', '--join-tokens must be allow or deny.');
    input.JoinTokens = flags.joinTokens === 'allow';
  }
  return Object.keys(input).length === 0 ? undefined : input;
}

interface AttestationView { Status: string; Mode: string; Failures: Array<Record<string, string>>; LastVerified?: string }

/** A class's own attestation settings, as ListClasses and SetClassAttestation answer them. */
export interface ClassAttestationView {
  Mode: string;
  IntervalSeconds: number;
  SilentAfter: number;
  Actions: Record<string, string[]>;
  WebhookUrl?: string;
  JoinTokens?: boolean;
}

/** One line: how a class's hosts attest and enrol. */
export function describeClassAttestation(view: ClassAttestationView | undefined): string {
  if (!view) return 'attestation: none; join tokens: allowed';
  return `attestation: ${view.Mode} every ${view.IntervalSeconds} s; join tokens: ${view.JoinTokens === false ? 'denied (TPMs with an allowed EK only)' : 'allowed'}`;
}

interface AllowedEkView { Fingerprint: string; AddedBy: string; AddedAt: number; EnrolledHostId?: string }

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/;

/** An EK certificate file as DER: PEM (the first certificate in it) or DER as it is. */
function certificateDer(file: Buffer): Buffer {
  const pem = PEM_CERTIFICATE.exec(file.toString('latin1'));
  return pem ? Buffer.from(pem[1].replace(/\s+/g, ''), 'base64') : file;
}

/** Human lines for a host's attestation. */
export function describeAttestation(view: AttestationView | undefined): string[] {
  if (!view) return ['attestation: none (no class of this host attests)'];
  return [`attestation: ${view.Status} (${view.Mode}${view.Mode === 'software' ? ', no hardware root' : ''}), last verified ${view.LastVerified ?? 'never'}`,
    ...view.Failures.map((failure) => `  ${failure.Severity} ${failure.Id} ${failure.Component}${failure.Expected ? ` expected ${failure.Expected}` : ''}`
      + `${failure.Found ? ` found ${failure.Found}` : ''}${failure.Detail ? ` (${failure.Detail})` : ''}`)];
}

function readInput(path: string): Buffer {
  try {
    return path === '-' ? readFileSync(0) : readFileSync(path);
  } catch {
    throw new UserError('NoSuchFile', `${path} cannot be read.`);
  }
}

function writeOutput(path: string, data: Buffer): void {
  if (path === '-') process.stdout.write(data);
  else writeFileDurably(path, data);
}

export function registerAttestCommands(program: Command): void {
  const hostClass = program.commands.find((command) => command.name() === 'class') as Command;
  const host = program.commands.find((command) => command.name() === 'host') as Command;

  withAttestationFlags(withClientFlags(hostClass.command('set-attestation').argument('<name>')
    .description('how hosts of a class attest: mode, interval, corrective actions, alert webhook')))
    .action(async (name: string, flags: ClientFlags & AttestationFlags) => {
      const input = attestationInput(flags);
      if (!input) throw new UserError('ValidationException', 'Say what to change: --attestation, --interval, --on-contraindicated, ...');
      const result = await withClient(flags, (client) => client.fleet<{ Attestation?: ClassAttestationView }>(
        'SetClassAttestation', { Name: name, ...input }));
      printResult(flags, result, () => (result.Attestation ? `class ${name} attests (${result.Attestation.Mode}) every ${result.Attestation.IntervalSeconds} s`
        + `${result.Attestation.JoinTokens === false ? '; no join tokens' : ''}` : `class ${name} no longer attests`));
    });

  withClientFlags(hostClass.command('allow-ek').argument('<class>')
    .description('let a TPM enrol into a class without a join token: its endorsement key (EK), by certificate, public area or fingerprint')
    .option('--ek-certificate <file>', 'the EK certificate (PEM or DER), e.g. read from NV index 0x01c00002')
    .option('--ek-public <file>', 'the EK public area (TPM2B_PUBLIC, as tpm2_createek -u writes it)')
    .option('--ek-sha256 <hex>', 'the EK fingerprint: SHA-256 of its SubjectPublicKeyInfo (DER)'))
    .action(async (className: string, flags: ClientFlags & { ekCertificate?: string; ekPublic?: string; ekSha256?: string }) => {
      const given = [flags.ekCertificate, flags.ekPublic, flags.ekSha256].filter((value) => value !== undefined);
      if (given.length !== 1) throw new UserError('ValidationException', 'Give exactly one of --ek-certificate, --ek-public and --ek-sha256.');
      const input = flags.ekCertificate !== undefined ? { EkCertificate: certificateDer(readInput(flags.ekCertificate)).toString('base64') }
        : flags.ekPublic !== undefined ? { EkPublic: readInput(flags.ekPublic).toString('base64') } : { EkSha256: flags.ekSha256 };
      const result = await withClient(flags, (client) => client.fleet<{ Class: string; Fingerprint: string; Added: boolean }>('AllowEk',
        { Class: className, ...input }));
      printResult(flags, result, () => `${result.Added ? 'allowed' : 'already allowed'} in class ${result.Class}: EK ${result.Fingerprint}`);
    });

  withClientFlags(hostClass.command('list-eks').argument('<class>').description('endorsement keys allowed in a class, and the hosts they enrolled'))
    .action(async (className: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Class: string; Eks: AllowedEkView[] }>('ListEks', { Class: className }));
      printResult(flags, result, () => (result.Eks.length === 0 ? '(no endorsement keys allowed)' : result.Eks.map((ek) =>
        `${ek.Fingerprint}  ${ek.EnrolledHostId ? `enrolled ${ek.EnrolledHostId}` : 'not enrolled'}  added ${epochToIso(ek.AddedAt)} by ${ek.AddedBy}`).join('\n')));
    });

  withClientFlags(hostClass.command('remove-ek').argument('<class>').argument('<fingerprint>', 'the EK fingerprint (class list-eks)')
    .description('take an endorsement key off a class: it enrols no host any more (a host it enrolled stays)'))
    .action(async (className: string, fingerprint: string, flags: ClientFlags) => {
      await withClient(flags, (client) => client.fleet('RemoveEk', { Class: className, Fingerprint: fingerprint }));
      printResult(flags, {}, () => `EK ${fingerprint} removed from class ${className}`);
    });

  withClientFlags(hostClass.command('set-reference').argument('<name>')
    .description('set a class\'s reference values: adopt a known-good host\'s current measurements, or give them in a file')
    .option('--from-host <host-id>', 'adopt this host\'s current measurements')
    .option('--file <policy.json>', '{"Components": {"/boot/vmlinuz": ["<sha256>", ...]}, "Operational": {...}}')
    .option('--with-operational', 'with --from-host: also adopt its listening ports, modules, executables and users as the expected sets'))
    .action(async (name: string, flags: ClientFlags & { fromHost?: string; file?: string; withOperational?: boolean }) => {
      if ((flags.fromHost === undefined) === (flags.file === undefined)) throw new UserError('ValidationException', 'Give exactly one of --from-host and --file.');
      let document: unknown;
      if (flags.file !== undefined) {
        try {
          document = JSON.parse(readInput(flags.file).toString('utf8'));
        } catch (error) {
          if (error instanceof UserError) throw error;
          throw new UserError('ValidationException', `${flags.file} is not JSON.`);
        }
      }
      const result = await withClient(flags, (client) => client.fleet<{ Version: number; Document: { Components: Record<string, string[]> } }>(
        'SetClassReference', { Name: name, FromHost: flags.fromHost, Document: document, WithOperational: flags.withOperational }));
      printResult(flags, result, () => `class ${name} reference values version ${result.Version}: ${Object.keys(result.Document.Components).length} component(s)`);
    });

  withClientFlags(hostClass.command('show-reference').argument('<name>'))
    .action(async (name: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet<{ Version: number; Document: unknown }>('GetClassReference', { Name: name }));
      printResult(flags, result, () => `version ${result.Version}\n${JSON.stringify(result.Document, null, 2)}`);
    });

  withClientFlags(host.command('clear').argument('<host-id>').description('lift a quarantine: the host gets keys again once it attests'))
    .action(async (hostId: string, flags: ClientFlags) => {
      const result = await withClient(flags, (client) => client.fleet('ClearHost', { HostId: hostId }));
      printResult(flags, result, () => `host ${hostId} cleared: keys flow again after its next affirming attestation`);
    });

  withClientFlags(host.command('attestation-token').argument('<host-ids...>')
    .description('an EAR attestation result (JWT) about hosts, for a relying party; verify it with the JWKS at /.well-known/jwks.json')
    .option('--nonce <nonce>', 'the relying party\'s nonce, echoed as eat_nonce'))
    .action(async (hostIds: string[], flags: ClientFlags & { nonce?: string }) => {
      const result = await withClient(flags, (client) => client.fleet<{ Token: string }>('GetAttestationToken', { HostIds: hostIds, Nonce: flags.nonce }));
      printResult(flags, result, () => result.Token);
    });

  withClientFlags(program.command('seal').description('seal data (up to 64 KiB) to a host\'s current measurement: only that host, measuring the same, can unseal it')
    .requiredOption('--host <host-id>', 'the host to seal to')
    .argument('<in>', 'file to seal (- for stdin)').argument('<out>', 'sealed output (- for stdout)'))
    .action(async (input: string, output: string, flags: ClientFlags & { host: string }) => {
      const result = await withClient(flags, (client) => client.fleet<{ Sealed: string; MeasurementDigest: string }>('SealToHost',
        { HostId: flags.host, Plaintext: readInput(input).toString('base64') }));
      writeOutput(output, Buffer.from(result.Sealed, 'base64'));
      if (output !== '-') printResult(flags, { MeasurementDigest: result.MeasurementDigest }, () => `sealed to ${flags.host} (measurement ${result.MeasurementDigest.slice(0, 16)}...)`);
    });

  program.command('unseal').description('unseal data sealed to this host (through its agent; released only while its measurement matches)')
    .requiredOption('--agent <socket>', 'the host agent\'s socket')
    .option('--tpm', 'the blob was sealed by the host\'s TPM (agent TpmSeal), not by the verifier')
    .argument('<in>', 'sealed file (- for stdin)').argument('<out>', 'output (- for stdout)')
    .action(async (input: string, output: string, flags: { agent: string; tpm?: boolean }) => {
      const sealed = readInput(input).toString('base64');
      const reply = await new AgentClient(flags.agent).call<{ Plaintext: string }>(flags.tpm ? 'TpmUnseal' : 'Unseal', { Sealed: sealed });
      writeOutput(output, Buffer.from(reply.Plaintext, 'base64'));
    });
}
