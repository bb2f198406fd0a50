// `trustplane operator init|unseal|seal|status|rotate-domain-key`: the crypto module's lifecycle.
// Must never write a share or the root credentials anywhere but this process's stdout.
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import type { DomainKeyRotationProgress, InitResult, SealStatus } from '../../services/operator/index.ts';
import { UserError } from '../../shared/errors.ts';
import { withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { printResult } from '../output.ts';

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
    const lines = createInterface({ input });
    for await (const line of lines) return line.trim();
    throw new UserError('ValidationException', 'No unseal share on standard input.');
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
    .option('--threshold <k>', 'shares needed to unseal (default 3)'))
    .action(async (flags: ClientFlags & { shares?: string; threshold?: string }) => {
      const input: Record<string, unknown> = {};
      if (flags.shares !== undefined) input.Shares = Number(flags.shares);
      if (flags.threshold !== undefined) input.Threshold = Number(flags.threshold);
      const result = await withClient(flags, (client) => client.operatorUnsigned<InitResult>('init', input));
      printResult(flags, { Shares: result.Shares, AccessKeyId: result.AccessKeyId, SecretAccessKey: result.SecretAccessKey }, () => [
        ...(result.Shares.length > 0 ? [
          `Unseal shares (${result.Threshold} of ${result.Shares.length} unseal the server):`, '',
          ...result.Shares.map((share, index) => `  share ${index + 1}: ${share}`), '',
          'Give each share to a different person. They are not stored anywhere: this is the only copy.'] : [
          'The PKCS#11 token holds the domain key; the server unseals itself by logging in to it.']),
        '', 'Root credentials (the only copy; store them safely, then make less powerful users):', '',
        `export AWS_ACCESS_KEY_ID=${result.AccessKeyId} AWS_SECRET_ACCESS_KEY=${result.SecretAccessKey}`,
      ].join('\n'));
    });

  withClientFlags(operator.command('unseal')
    .description('submit one unseal share (run once per share holder, from any terminal)')
    .argument('[share]', 'the share; omitted, it is read from standard input (hidden when typed)')
    .option('--reset', 'forget the shares submitted so far'))
    .action(async (shareArgument: string | undefined, flags: ClientFlags & { reset?: boolean }) => {
      const status = await withClient(flags, async (client) => {
        const current = await client.operatorUnsigned<SealStatus>('status');
        const needsShare = current.Module === 'software' && current.Sealed && !(flags.reset && shareArgument === undefined);
        const share = shareArgument ?? (needsShare ? await readShare() : undefined);
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
