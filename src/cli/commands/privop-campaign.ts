// `trustplane privop campaign`: the server signs one request per host of a class (or a sample) and relays them; this
// command follows the campaign with a progress bar, saves each host's sealed result as it completes, and ends with a summary.
// Must never hold a result in clear: results are sealed to the caller's result key, opened later with `privop open`.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { resultPublicKeyFromPem } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { writeFileDurably } from '../../shared/fs.ts';
import type { KeyServiceClient } from '../../clients/kms.ts';
import { collect, withClient, withClientFlags, type ClientFlags } from '../client.ts';
import { parameterRecord, readKeyFile } from '../files.ts';
import { downloadResult, waitMs, type RelayView } from './privop-relay.ts';
import { parseDurationSeconds } from '../../shared/config.ts';

const POLL_MS = 500;
/** Progress lines when stderr is not a terminal: at most this often. */
const PLAIN_PROGRESS_MS = 5000;

interface CampaignFlags extends ClientFlags {
  class: string;
  op: string;
  param: string[];
  sample?: string;
  resultKey: string;
  out: string;
  wait?: string;
  ttl: string;
}

interface CampaignView { CampaignId: string; HostCount: number; Counts: Record<string, number>; Hosts: RelayView[] }

/** The summary written to DIR/summary.json and printed: what completed, what was refused (by code), what never ran. */
export interface CampaignSummary {
  CampaignId: string;
  Class: string;
  Operation: string;
  Hosts: number;
  Completed: string[];
  Refused: Record<string, string[]>;
  NotRun: Array<{ HostId: string; Status: string }>;
}

/** --sample N: a positive whole number, or undefined when not given. */
export function parseSample(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const sample = Number(text);
  if (!Number.isInteger(sample) || sample < 1) throw new UserError('ValidationException', '--sample must be a positive whole number.');
  return sample;
}

function summarise(run: CampaignRun, campaign: CampaignView): CampaignSummary {
  const summary: CampaignSummary = { CampaignId: campaign.CampaignId, Class: run.className, Operation: run.operation, Hosts: campaign.Hosts.length,
    Completed: [], Refused: {}, NotRun: [] };
  for (const host of campaign.Hosts) {
    if (host.Status === 'completed') summary.Completed.push(host.HostId);
    else if (host.Status === 'refused') (summary.Refused[host.Refusal?.Code ?? 'PrivopRefused'] ??= []).push(host.HostId);
    else summary.NotRun.push({ HostId: host.HostId, Status: host.Status === 'expired' ? 'expired (offline?)' : `${host.Status} (still waiting)` });
  }
  return summary;
}

export interface CampaignRun {
  className: string;
  operation: string;
  parameters: Record<string, string>;
  /** The raw X25519 result public key: only its private half opens the results. */
  resultKey: Buffer;
  sample?: number;
  ttlSeconds: number;
  /** Where <host-id>.sealed files go (made if missing). */
  out: string;
  /** When to stop following (hosts not finished by then are in NotRun). */
  deadline: number;
}

/**
 * Starts a campaign and follows it to its end or the deadline: a progress bar on stderr (plain lines when it is not a
 * terminal), each completed host's sealed result saved as it completes. Returns the summary (not yet written anywhere).
 */
export async function runCampaign(client: KeyServiceClient, run: CampaignRun): Promise<CampaignSummary> {
  mkdirSync(run.out, { recursive: true, mode: 0o700 });
  const started = await client.privop<{ CampaignId: string; Hosts: Array<{ HostId: string }> }>('StartCampaign', {
    Class: run.className, Operation: run.operation, Parameters: run.parameters, ResultKey: run.resultKey.toString('base64url'),
    TtlSeconds: run.ttlSeconds, ...(run.sample === undefined ? {} : { Sample: run.sample }) });
  process.stderr.write(`trustplane: campaign ${started.CampaignId} on ${started.Hosts.length} host(s)\n`);
  const bar = process.stderr.isTTY ? new SingleBar({ stream: process.stderr, format: '{bar} {value}/{total} hosts | {completed} done, {refused} refused',
    hideCursor: true }, undefined) : undefined;
  bar?.start(started.Hosts.length, 0, { completed: 0, refused: 0 });
  const saved = new Set<string>();
  let lastLine = 0;
  try {
    for (;;) {
      const campaign = await client.privop<CampaignView>('DescribeCampaign', { CampaignId: started.CampaignId });
      for (const host of campaign.Hosts) {
        if (host.Status !== 'completed' || saved.has(host.HostId)) continue;
        await downloadResult(client, host.RelayId, join(run.out, `${host.HostId}.sealed`));
        saved.add(host.HostId);
      }
      const finished = campaign.Hosts.filter((host) => ['completed', 'refused', 'expired'].includes(host.Status)).length;
      const counts = { completed: campaign.Counts.completed ?? 0, refused: campaign.Counts.refused ?? 0 };
      bar?.update(finished, counts);
      if (!bar && (Date.now() - lastLine >= PLAIN_PROGRESS_MS || finished === campaign.Hosts.length)) {
        process.stderr.write(`trustplane: campaign ${campaign.CampaignId}: ${finished}/${campaign.Hosts.length} finished, `
          + `${counts.completed} completed, ${counts.refused} refused\n`);
        lastLine = Date.now();
      }
      if (finished === campaign.Hosts.length || Date.now() >= run.deadline) return summarise(run, campaign);
      await delay(POLL_MS);
    }
  } finally {
    bar?.stop();
  }
}

/** One line: how many completed, which were refused and why, which did not run. */
export function describeCampaignSummary(summary: CampaignSummary): string {
  const refused = Object.entries(summary.Refused);
  return `campaign ${summary.CampaignId}: ${summary.Completed.length}/${summary.Hosts} completed`
    + `${refused.map(([code, hosts]) => `, ${hosts.length} refused (${code}: ${hosts.join(' ')})`).join('')}`
    + `${summary.NotRun.length ? `, ${summary.NotRun.length} did not run (${summary.NotRun.map((host) => `${host.HostId} ${host.Status}`).join(', ')})` : ''}`;
}

export function registerPrivopCampaign(privop: Command): void {
  withClientFlags(privop.command('campaign').description('have the server sign and relay one request per host of a class; collect the sealed results'))
    .requiredOption('--class <name>', 'the host class (nested classes included)')
    .requiredOption('--op <operation>', 'the operation, e.g. system.snapshot')
    .option('--param <name=value>', 'a parameter (repeatable)', collect, [])
    .option('--sample <n>', 'a random sample of N hosts of the class')
    .requiredOption('--result-key <file>', 'the result public key (result.pub): only its private half opens the results')
    .requiredOption('--out <dir>', 'where <host-id>.sealed and summary.json go')
    .option('--ttl <duration>', 'how long the requests stay valid (at least 60s, at most 7d)', '10m')
    .option('--wait <duration>', 'how long to follow the campaign', '10m')
    .action(async (flags: CampaignFlags) => {
      const sample = parseSample(flags.sample);
      const resultKey = readKeyFile(flags.resultKey, resultPublicKeyFromPem);
      const summary = await withClient(flags, (client) => runCampaign(client, { className: flags.class, operation: flags.op,
        parameters: parameterRecord('param', flags.param), resultKey, sample, ttlSeconds: parseDurationSeconds(flags.ttl, '--ttl'), out: flags.out,
        deadline: Date.now() + waitMs(flags.wait) }));
      writeFileDurably(join(flags.out, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
      process.stderr.write(`trustplane: ${describeCampaignSummary(summary)}\n`);
      if (flags.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
      if (summary.Completed.length !== summary.Hosts) {
        throw new UserError('PrivopCampaignIncomplete', `${summary.Hosts - summary.Completed.length} of ${summary.Hosts} host(s) did not complete; see ${join(flags.out, 'summary.json')}.`);
      }
    });
}
