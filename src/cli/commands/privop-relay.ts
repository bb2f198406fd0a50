// `trustplane privop deliver --relay`: the courier hands a request file to the server, which relays it to the host,
// waits (progress on stderr) and downloads the sealed result in slices. Shared with `privop campaign` (the download).
// Must never hold a whole result in memory, nor present anything but the host's ciphertext as the result.
import { writeAll, writeFileAtomically } from '../../shared/fs.ts';
import { setTimeout as delay } from 'node:timers/promises';
import type { KeyServiceClient } from '../../clients/kms.ts';
import { parseDurationSeconds } from '../../shared/config.ts';
import { UserError } from '../../shared/errors.ts';
import { parsePrivopRequestFile } from '../../shared/privop-wire.ts';
import type { Command } from 'commander';
import { withClient, withClientFlags, type ClientFlags } from '../client.ts';

const POLL_MS = 500;
const DEFAULT_WAIT = '10m';

export interface RelayView {
  RelayId: string;
  HostId: string;
  Status: 'pending' | 'delivered' | 'completed' | 'refused' | 'expired';
  Refusal?: { Code: string; Message: string };
  ResultBytes?: number;
  CampaignId?: string;
}

/** Hands a completed relay's sealed result to `write`, slice by slice. */
async function downloadTo(client: KeyServiceClient, relayId: string, write: (bytes: Buffer) => Promise<void> | void): Promise<number> {
  let offset = 0;
  for (;;) {
    const slice = await client.privop<{ Data: string; More: boolean }>('GetResult', { RelayId: relayId, Offset: offset });
    const bytes = Buffer.from(slice.Data, 'base64');
    await write(bytes);
    offset += bytes.length;
    if (!slice.More) return offset;
    if (bytes.length === 0) throw new UserError('PrivopResultIncomplete', `The server sent no bytes of ${relayId} at ${offset}.`);
  }
}

/** Writes to stdout, waiting when the pipe is full (stdout may be non-blocking: no writeSync on it). */
function writeStdout(bytes: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(bytes, (error) => (error ? reject(error) : resolve()));
  });
}

/** Downloads a completed relay's sealed result to `path` (complete or not at all), or to stdout when no path. */
export async function downloadResult(client: KeyServiceClient, relayId: string, path?: string): Promise<number> {
  if (!path) return downloadTo(client, relayId, writeStdout);
  let bytes = 0;
  // Durably, and nothing is left at `path` if the download fails (the same writer `deliver --agent --out` uses).
  await writeFileAtomically(path, async (file) => {
    bytes = await downloadTo(client, relayId, (slice) => writeAll(file, slice));
  });
  return bytes;
}

/** The wait flag in milliseconds (default ten minutes). */
export function waitMs(text: string | undefined): number {
  const seconds = parseDurationSeconds(text ?? DEFAULT_WAIT, '--wait');
  if (seconds < 1) throw new UserError('ValidationException', '--wait must be at least 1s.');
  return seconds * 1000;
}

/** The error a relay that did not complete ends the command with. */
export function relayFailure(relay: RelayView): UserError {
  if (relay.Status === 'refused') {
    return new UserError(relay.Refusal?.Code ?? 'PrivopRefused', `Host ${relay.HostId} refused relay ${relay.RelayId}: ${relay.Refusal?.Message ?? 'no reason given'}`);
  }
  return new UserError('PrivopRelayExpired', `Relay ${relay.RelayId} expired before host ${relay.HostId} ran it (offline, or too slow).`);
}

export interface RelayDeliveryFlags extends ClientFlags {
  relay?: boolean;
  relayId?: string;
  wait?: string;
  out?: string;
}

/** The relay flags of `privop deliver` (with --endpoint and --json). */
export function withRelayDelivery(command: Command): Command {
  return withClientFlags(command)
    .option('--relay', 'deliver through the server relay (the server hands it to the host and keeps the sealed result)')
    .option('--relay-id <id>', 'resume waiting for a relay submitted before')
    .option('--wait <duration>', 'how long to wait for the host, e.g. 30s, 10m (relay only)', DEFAULT_WAIT)
    .option('--out <file>', 'write the sealed result here (durably; nothing is left there if delivery fails) instead of stdout');
}

/** `privop deliver REQUEST --relay` or `privop deliver --relay-id ID` (resume). */
export async function deliverThroughRelay(requestFile: string | undefined, readRequest: (path: string) => Buffer, flags: RelayDeliveryFlags): Promise<void> {
  const deadline = Date.now() + waitMs(flags.wait);
  await withClient(flags, async (client) => {
    let relayId = flags.relayId;
    if (!relayId) {
      if (!requestFile) throw new UserError('ValidationException', 'Give a request file, or --relay-id ID to resume.');
      let value: Record<string, unknown>;
      try {
        value = JSON.parse(readRequest(requestFile).toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new UserError('PrivopMalformedRequest', `${requestFile} is not JSON.`);
      }
      // Checked for shape only (an encrypted request is opaque here): the host judges the rest.
      if (!('Encrypted' in value)) parsePrivopRequestFile(value);
      const submitted = await client.privop<{ RelayId: string; HostId: string }>('SubmitRequest', { Request: value });
      relayId = submitted.RelayId;
      process.stderr.write(`trustplane: relay ${relayId} submitted for ${submitted.HostId}\n`);
    }
    let last = '';
    for (;;) {
      const relay = await client.privop<RelayView>('DescribeRequest', { RelayId: relayId });
      if (relay.Status !== last) {
        process.stderr.write(`trustplane: relay ${relayId}: ${relay.Status}\n`);
        last = relay.Status;
      }
      if (relay.Status === 'completed') {
        const bytes = await downloadResult(client, relayId, flags.out);
        process.stderr.write(`trustplane: sealed result of ${bytes} bytes${flags.out ? ` written to ${flags.out}` : ''}\n`);
        return;
      }
      if (relay.Status === 'refused' || relay.Status === 'expired') throw relayFailure(relay);
      if (Date.now() >= deadline) {
        throw new UserError('PrivopRelayTimeout', `Relay ${relayId} is still ${relay.Status} after --wait ${flags.wait ?? DEFAULT_WAIT}; `
          + `resume with: trustplane privop deliver --relay-id ${relayId}`);
      }
      await delay(POLL_MS);
    }
  });
}
