// `trustplane privop watch`: the health watch, run by the holder of the watch key: every interval a system.snapshot
// campaign over a class, each sealed result opened here, judged against that host's baseline, departures reported.
// Must never fold a result it could not verify (signature, host, freshness) into a baseline, nor send a snapshot anywhere.
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Command } from 'commander';
import type { KeyServiceClient } from '../../clients/kms.ts';
import { parseDurationSeconds } from '../../shared/config.ts';
import { resultPrivateKeyFromPem, zeroize } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { writeFileDurably } from '../../shared/fs.ts';
import {
  assessHealth, DEFAULT_HEALTH_SETTINGS, readHealthSnapshot, readHostBaseline, type HealthDeparture, type HealthSettings, type HostBaseline,
} from '../../shared/privop-health.ts';
import { withClient, withClientFlags } from '../client.ts';
import { hostCertificateCheck, openSealedResultFile, type HostTrustFlags } from '../sealed-results.ts';
import { describeCampaignSummary, parseSample, runCampaign } from './privop-campaign.ts';
import { waitMs } from './privop-relay.ts';
import { readKeyFile } from '../files.ts';

/** A result must have been made after the round started (less this much clock difference): an old result replayed is refused. */
const FRESHNESS_SKEW_MS = 60_000;

interface WatchFlags extends HostTrustFlags {
  class: string;
  key: string;
  state: string;
  interval: string;
  once?: boolean;
  sample?: string;
  ttl: string;
  wait: string;
  learning: string;
  deviations: string;
}

/** A host whose snapshot this round could not be judged, and why. */
interface UnjudgedHost { HostId: string; Code: string; Message: string }

interface WatchRound { CampaignId: string; Judged: string[]; Departures: HealthDeparture[]; Unjudged: UnjudgedHost[] }

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const value = /^\d{1,6}(\.\d{1,3})?$/.test(text) ? Number(text) : Number.NaN;
  if (!(value >= min && value <= max)) throw new UserError('ValidationException', `--${flag} must be a number from ${min} to ${max}.`);
  return value;
}

function readBaseline(path: string): HostBaseline | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const baseline = readHostBaseline(JSON.parse(text));
    if (baseline) return baseline;
  } catch {
    // Not JSON: treated like any unreadable baseline below.
  }
  process.stderr.write(`trustplane: warning: ${path} is not a baseline this version reads; learning that host afresh\n`);
  return undefined;
}

/** One round: the campaign, then every completed host's result opened, checked and judged. */
/** What every round asks of the campaign, parsed once from the flags. */
interface RoundSettings { sample?: number; ttlSeconds: number; waitMs: number; health: HealthSettings }

async function watchRound(client: KeyServiceClient, flags: WatchFlags, keys: { privateKey: Buffer; publicKey: Buffer },
  settings: RoundSettings, checkCertificate: ((der: Buffer) => string | undefined) | undefined): Promise<WatchRound> {
  const startedAt = Date.now();
  const roundDir = join(flags.state, 'round');
  // Only the latest round's sealed results are kept: the baselines are what lasts.
  rmSync(roundDir, { recursive: true, force: true });
  const summary = await runCampaign(client, { className: flags.class, operation: 'system.snapshot', parameters: {}, resultKey: keys.publicKey,
    sample: settings.sample, ttlSeconds: settings.ttlSeconds, out: roundDir, deadline: startedAt + settings.waitMs });
  process.stderr.write(`trustplane: ${describeCampaignSummary(summary)}\n`);
  const round: WatchRound = { CampaignId: summary.CampaignId, Judged: [], Departures: [], Unjudged: [] };
  // A host that refused or was not reached is not judged either: a watch says so rather than keep quiet about it.
  for (const [code, hosts] of Object.entries(summary.Refused)) {
    for (const hostId of hosts) round.Unjudged.push({ HostId: hostId, Code: code, Message: 'the host refused the snapshot request' });
  }
  for (const host of summary.NotRun) round.Unjudged.push({ HostId: host.HostId, Code: 'PrivopHostNotReached', Message: host.Status });
  const baselines = join(flags.state, 'baselines');
  mkdirSync(baselines, { recursive: true, mode: 0o700 });
  for (const hostId of summary.Completed) {
    const unjudged = (code: string, message: string) => round.Unjudged.push({ HostId: hostId, Code: code, Message: message });
    let plaintext: Awaited<ReturnType<typeof openSealedResultFile>>;
    try {
      plaintext = await openSealedResultFile(join(roundDir, `${hostId}.sealed`), { ...keys, checkCertificate });
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      unjudged(error.code, error.message);
      continue;
    }
    if (plaintext.HostId !== hostId) { unjudged('PrivopRequestMismatch', `the result was made by ${plaintext.HostId}`); continue; }
    if (plaintext.Operation !== 'system.snapshot') { unjudged('PrivopRequestMismatch', `the result answers ${plaintext.Operation}`); continue; }
    if (!(Date.parse(plaintext.CompletedAt) >= startedAt - FRESHNESS_SKEW_MS)) {
      unjudged('PrivopStaleResult', `the result was made at ${plaintext.CompletedAt}, before this round started: an old result replayed`);
      continue;
    }
    if (plaintext.Error) { unjudged(plaintext.Error.Code, plaintext.Error.Message); continue; }
    const snapshot = readHealthSnapshot(plaintext.Result);
    if (!snapshot) { unjudged('PrivopMalformedResult', 'the result is not a system snapshot'); continue; }
    const path = join(baselines, `${hostId}.json`);
    const assessed = assessHealth(readBaseline(path), hostId, snapshot, new Date(), settings.health);
    writeFileDurably(path, `${JSON.stringify(assessed.baseline, null, 2)}\n`, 0o600);
    round.Judged.push(hostId);
    round.Departures.push(...assessed.departures);
  }
  const time = new Date().toISOString();
  if (round.Departures.length > 0) {
    appendFileSync(join(flags.state, 'departures.jsonl'), round.Departures.map((departure) => `${JSON.stringify({ Time: time,
      CampaignId: round.CampaignId, ...departure })}\n`).join(''), { mode: 0o600 });
  }
  for (const departure of round.Departures) process.stdout.write(`${JSON.stringify({ Time: time, ...departure })}\n`);
  for (const host of round.Unjudged) process.stderr.write(`trustplane: ${host.HostId} not judged: ${host.Code}: ${host.Message}\n`);
  process.stderr.write(`trustplane: watch round ${round.CampaignId}: ${round.Judged.length} host(s) judged, ${round.Departures.length} departure(s), `
    + `${round.Unjudged.length} result(s) not judged\n`);
  return round;
}

export function registerPrivopWatch(privop: Command): void {
  withClientFlags(privop.command('watch').description('health watch: a system.snapshot campaign over a class every interval, judged against per-host baselines kept here'))
    .requiredOption('--class <name>', 'the host class (nested classes included)')
    .requiredOption('--key <file>', 'the watch key (a result.key from privop keygen): results are sealed to its public half and opened only here')
    .requiredOption('--state <dir>', 'where baselines/<host>.json, departures.jsonl and the latest round\'s sealed results are kept')
    .option('--ca <file>', 'the account CA certificate (PEM) every result\'s host certificate must be issued by (default $TRUSTPLANE_ACCOUNT_CA, else fetched from the server)')
    .option('--interval <duration>', 'time between rounds', '5m')
    .option('--once', 'one round, then exit: non-zero when a host departed from its baseline or a result could not be judged')
    .option('--sample <n>', 'a random sample of N hosts each round')
    .option('--ttl <duration>', 'how long each round\'s requests stay valid', '10m')
    .option('--wait <duration>', 'how long each round waits for hosts', '2m')
    .option('--learning <n>', 'snapshots a host\'s baseline takes in before its figures are judged', String(DEFAULT_HEALTH_SETTINGS.learningSamples))
    .option('--deviations <k>', 'how many standard deviations a figure may stray from its mean', String(DEFAULT_HEALTH_SETTINGS.deviations))
    .action(async (flags: WatchFlags) => {
      // Every flag is judged before anything runs (a bad one must not cost the last round's results).
      const settings: RoundSettings = { sample: parseSample(flags.sample), ttlSeconds: parseDurationSeconds(flags.ttl, '--ttl'), waitMs: waitMs(flags.wait),
        health: { learningSamples: wholeNumber('learning', flags.learning, 0, 1000), deviations: wholeNumber('deviations', flags.deviations, 1, 100) } };
      const interval = parseDurationSeconds(flags.interval, '--interval');
      if (interval < 1) throw new UserError('ValidationException', '--interval must be at least 1s.');
      const checkCertificate = await hostCertificateCheck(flags);
      const keys = readKeyFile(flags.key, resultPrivateKeyFromPem);
      mkdirSync(flags.state, { recursive: true, mode: 0o700 });
      try {
        await withClient(flags, async (client) => {
          for (;;) {
            const round = await watchRound(client, flags, keys, settings, checkCertificate);
            if (flags.once) {
              if (round.Departures.length > 0 || round.Unjudged.length > 0) {
                throw new UserError('PrivopHealthDepartures', `${round.Departures.length} departure(s) from baselines and ${round.Unjudged.length} result(s) `
                  + `not judged; see ${join(flags.state, 'departures.jsonl')}.`);
              }
              return;
            }
            await delay(interval * 1000);
          }
        });
      } finally {
        zeroize(keys.privateKey);
      }
    });
}
