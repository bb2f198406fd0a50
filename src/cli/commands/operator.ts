// `trustplane operator init|unseal|seal|status|rotate-domain-key`: the crypto module's lifecycle.
// Must never write a share or the root credentials anywhere but this process's stdout.
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import type { DomainKeyRotationProgress, InitResult, SealStatus } from '../../services/operator/index.ts';
import { UserError } from '../../shared/errors.ts';
import { collect, withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { printResult } from '../output.ts';
import { readFileSync } from 'node:fs';
import { readPkcs11Pin, resolveHome } from '../../shared/config.ts';

interface MigrateFlags {
  home?: string; to: string; share?: string[]; shares?: string; threshold?: string; json?: boolean;
  pkcs11Module?: string; pkcs11Token?: string; pkcs11PinFile?: string;
}

async function readAll(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Decrypts, in this process only, a share init encrypted to the holder's age key. */
async function decryptAgeShare(armored: string, identityFile: string): Promise<string> {
  const identities = identityFile.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('AGE-SECRET-KEY-'));
  if (identities.length === 0) throw new UserError('ValidationException', 'The identity file holds no AGE-SECRET-KEY- line.');
  const { armor, Decrypter } = await import('age-encryption');
  const decrypter = new Decrypter();
  for (const identity of identities) decrypter.addIdentity(identity);
  try {
    return (await decrypter.decrypt(armor.decode(armored.trim()), 'text')).trim();
  } catch {
    throw new UserError('InvalidShareException', 'The encrypted share could not be decrypted with this identity.');
  }
}

async function readLines(): Promise<string[]> {
  if (process.stdin.isTTY) return [];
  const lines: string[] = [];
  for await (const line of createInterface({ input: process.stdin })) if (line.trim()) lines.push(line.trim());
  return lines;
}

/** What scripts read: exactly these four fields, as the interface promises. */
function statusJson(status: SealStatus) {
  return { Initialized: status.Initialized, Sealed: status.Sealed, Progress: status.Progress, Threshold: status.Threshold };
}

function describeRotation(rotation: DomainKeyRotationProgress): string {
  if (rotation.State === 'Idle') return `domain key: ${rotation.ActiveDomainKeyId ?? '(sealed)'}`;
  const done = rotation.Total - rotation.Remaining;
  return `domain key rotation: ${rotation.State.toLowerCase()} ${done}/${rotation.Total} records rewrapped`
    + `${rotation.Unreadable ? `, ${rotation.Unreadable} unreadable` : ''}${rotation.Message ? ` (${rotation.Message})` : ''}`;
}

function describeStatus(status: SealStatus): string {
  const lines = [`module: ${status.Module}`, `initialized: ${status.Initialized}`,
    `sealed: ${status.Sealed}${status.SealedReason ? ` (${status.SealedReason})` : ''}`];
  if (status.Module === 'software' && status.Initialized) lines.push(`unseal progress: ${status.Progress}/${status.Threshold}`);
  lines.push(describeRotation(status.DomainKeyRotation));
  return lines.join('\n');
}

/** Reads a share without echoing it when a person types it; from a pipe, reads the first line. */
async function readShare(): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) {
    const [first] = await readLines();
    if (first === undefined) throw new UserError('ValidationException', 'No unseal share on standard input.');
    return first;
  }
  process.stderr.write('Unseal share (input is hidden): ');
  input.setRawMode(true);
  input.resume();
  let share = '';
  try {
    for await (const chunk of input) {
      for (const char of String(chunk)) {
        if (char === '\r' || char === '\n') return share;
        if (char === '\u0003') throw new UserError('Interrupted', 'unseal cancelled');
        if (char === '\u007f') share = share.slice(0, -1);
        else share += char;
      }
    }
    return share;
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}

export function registerOperatorCommands(program: Command): void {
  const operator = program.command('operator').description('initialise, unseal, seal and rotate the crypto module');

  withClientFlags(operator.command('init')
    .description('make the root of trust on a new server and print the unseal shares and root credentials, once')
    .option('--shares <n>', 'unseal shares to make (software module; default 5)')
    .option('--threshold <k>', 'shares needed to unseal (default 3)')
    .option('--recipient <age-public-key>', 'encrypt share i to the i-th recipient (repeat once per share): no one sees every share',
      collect))
    .action(async (flags: ClientFlags & { shares?: string; threshold?: string; recipient?: string[] }) => {
      const input: Record<string, unknown> = {};
      if (flags.recipient) input.Recipients = flags.recipient;
      if (flags.shares !== undefined) input.Shares = Number(flags.shares);
      if (flags.threshold !== undefined) input.Threshold = Number(flags.threshold);
      const result = await withClient(flags, (client) => client.operatorUnsigned<InitResult>('init', input));
      printResult(flags, { Shares: result.Shares, AccessKeyId: result.AccessKeyId, SecretAccessKey: result.SecretAccessKey }, () => [
        ...(result.Shares.length > 0 ? [
          `Unseal shares (${result.Threshold} of ${result.Shares.length} unseal the server):`, '',
          ...result.Shares.map((share, index) => (share.includes('\n')
            ? `share ${index + 1} (encrypted to recipient ${index + 1}; decrypt with age -d -i KEY):\n${share}` : `  share ${index + 1}: ${share}`)), '',
          'Give each share to a different person. They are not stored anywhere: this is the only copy.'] : [
          'The PKCS#11 token holds the domain key; the server unseals itself by logging in to it.']),
        '', 'Root credentials (the only copy; store them safely, then make less powerful users):', '',
        `export AWS_ACCESS_KEY_ID=${result.AccessKeyId} AWS_SECRET_ACCESS_KEY=${result.SecretAccessKey}`,
      ].join('\n'));
    });

  withClientFlags(operator.command('unseal')
    .description('submit one unseal share (run once per share holder, from any terminal)')
    .argument('[share]', 'the share; omitted, it is read from standard input (hidden when typed)')
    .option('--reset', 'forget the shares submitted so far')
    .option('--identity <file>', 'age identity file: the share (argument or standard input) is an age-encrypted share from init --recipient'))
    .action(async (shareArgument: string | undefined, flags: ClientFlags & { reset?: boolean; identity?: string }) => {
      const status = await withClient(flags, async (client) => {
        const current = await client.operatorUnsigned<SealStatus>('status');
        const needsShare = current.Module === 'software' && current.Sealed && !(flags.reset && shareArgument === undefined);
        let share = shareArgument ?? (needsShare ? (flags.identity ? (await readAll()) : await readShare()) : undefined);
        if (share !== undefined && flags.identity) share = await decryptAgeShare(share, readFileSync(flags.identity, 'utf8'));
        return client.operatorUnsigned<SealStatus>('unseal', { Share: share, Reset: flags.reset || undefined });
      });
      printResult(flags, statusJson(status), () => (status.Sealed
        ? `Sealed: unseal progress ${status.Progress}/${status.Threshold}` : 'Unsealed: the key service is ready.'));
    });

  withClientFlags(operator.command('status').description('whether the crypto module is initialised and sealed, and unseal progress'))
    .action(async (flags: ClientFlags) => {
      const status = await withClient(flags, (client) => client.operatorUnsigned<SealStatus>('status'));
      printResult(flags, statusJson(status), () => describeStatus(status));
    });

  withClientFlags(operator.command('seal').description('drop every domain key from memory now (needs a management principal)'))
    .action(async (flags: ClientFlags) => {
      const status = await withClient(flags, (client) => client.operator<SealStatus>('Seal'));
      printResult(flags, statusJson(status), () => 'Sealed: every domain key was dropped from memory.');
    });

  operator.command('migrate-seal')
    .description('move a stopped server\'s home from the software module to a PKCS#11 token, or back; customer keys do not change')
    .requiredOption('--to <module>', 'software or pkcs11')
    .option('--home <dir>', 'server home (default $TRUSTPLANE_HOME or ./.trustplane)')
    .option('--share <share>', 'an unseal share of the software module (repeat; or one per line on standard input)', collect)
    .option('--shares <n>', 'shares of the new root key, migrating to software (default 5)')
    .option('--threshold <k>', 'shares needed to unseal, migrating to software (default 3)')
    .option('--pkcs11-module <path>', 'PKCS#11 library (or $TRUSTPLANE_PKCS11_MODULE)')
    .option('--pkcs11-token <label>', 'token label (or $TRUSTPLANE_PKCS11_TOKEN)')
    .option('--pkcs11-pin-file <file>', 'file holding the token PIN (or $TRUSTPLANE_PKCS11_PIN)')
    .option('--json', 'machine-readable output')
    .action(async (flags: MigrateFlags) => {
      if (flags.to !== 'software' && flags.to !== 'pkcs11') throw new UserError('ValidationException', '--to must be software or pkcs11.');
      const libraryPath = flags.pkcs11Module ?? process.env.TRUSTPLANE_PKCS11_MODULE;
      const tokenLabel = flags.pkcs11Token ?? process.env.TRUSTPLANE_PKCS11_TOKEN;
      const pin = readPkcs11Pin(flags.pkcs11PinFile ?? process.env.TRUSTPLANE_PKCS11_PIN_FILE);
      if (!libraryPath || !tokenLabel || !pin) {
        throw new UserError('InvalidConfiguration', 'migrate-seal needs the PKCS#11 side: --pkcs11-module, --pkcs11-token and the PIN ($TRUSTPLANE_PKCS11_PIN or --pkcs11-pin-file).');
      }
      const shares = flags.to === 'pkcs11' ? flags.share ?? await readLines() : undefined;
      const human = !flags.json;
      const { migrateSeal } = await import('../../services/operator/seal-migration.ts');
      const result = await migrateSeal({
        home: resolveHome(flags.home), to: flags.to, pkcs11: { libraryPath, tokenLabel, pin }, sourceShares: shares,
        targetScheme: flags.to === 'software' ? { shares: Number(flags.shares ?? 5), threshold: Number(flags.threshold ?? 3) } : undefined,
        onProgress: (done, total) => { if (human && process.stderr.isTTY) process.stderr.write(`\rrewrapped ${done}/${total}`); },
        onNewShares: (newShares, threshold) => {
          // Shown before the switch commits: once it has, these are the only way in.
          if (human) {
            process.stdout.write(`New unseal shares (${threshold} of ${newShares.length}); valid only if the migration reports success below:\n\n`);
            newShares.forEach((share, index) => process.stdout.write(`  share ${index + 1}: ${share}\n`));
            process.stdout.write('\n');
          }
        },
      });
      if (human && process.stderr.isTTY) process.stderr.write('\n');
      if (result.leftInToken.length > 0) {
        process.stderr.write(`trustplane: warning: ${result.leftInToken.length} old domain key object(s) could not be destroyed in the token (ids ${result.leftInToken.join(', ')}); they protect nothing now.\n`);
      }
      printResult(flags, { From: result.from, To: result.to, Rewrapped: result.rewrapped, Shares: result.newShares },
        () => `Migrated from ${result.from} to ${result.to}: ${result.rewrapped} stored records rewrapped; customer keys unchanged.\n`
          + `Start the server with ${result.to === 'pkcs11' ? `--seal pkcs11 --pkcs11-module ${libraryPath} --pkcs11-token ${tokenLabel}` : 'the software module (the default) and unseal it with the new shares'}.`);
    });

  withClientFlags(operator.command('rotate-domain-key')
    .description('make a new domain key and rewrap every stored key under it in the background')
    .option('--wait', 'show progress until the rewrap finishes'))
    .action(async (flags: ClientFlags & { wait?: boolean }) => {
      const final = await withClient(flags, async (client) => {
        let rotation = (await client.operator<{ DomainKeyRotation: DomainKeyRotationProgress }>('RotateDomainKey')).DomainKeyRotation;
        const interactive = !flags.json && process.stderr.isTTY;
        while (flags.wait && rotation.State !== 'Idle' && rotation.State !== 'Stuck') {
          if (interactive) process.stderr.write(`\r${describeRotation(rotation)}   `);
          await delay(500);
          rotation = (await client.operator<{ DomainKeyRotation: DomainKeyRotationProgress }>('GetDomainKeyRotation')).DomainKeyRotation;
        }
        if (interactive && flags.wait) process.stderr.write('\n');
        return rotation;
      });
      printResult(flags, { DomainKeyRotation: final }, () => describeRotation(final));
    });
}
