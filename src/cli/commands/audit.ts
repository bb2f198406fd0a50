// `trustplane audit verify|query|tail`: reads a home's audit log directly, read-only, so it works
// on a stopped server. Must never write to the database or print anything a record does not hold.
import { once } from 'node:events';
import type { Command } from 'commander';
import {
  auditErrors, readAuditRecord, verifyAuditLog, type AuditQuery, type StoredAuditRecord,
} from '../../shared/audit/index.ts';
import { resolveHome } from '../../shared/config.ts';
import { openAuditLogReadOnly, type SqliteAuditStore } from '../../shared/store/sqlite-audit.ts';

interface HomeFlags {
  home?: string;
  json?: boolean;
}

interface QueryFlags extends HomeFlags {
  principal?: string;
  resource?: string;
  operation?: string;
  outcome?: string;
  since?: string;
  until?: string;
  limit?: string;
}

interface TailFlags extends HomeFlags {
  lines?: string;
  follow?: boolean;
  interval?: string;
}

function withHome(command: Command): Command {
  return command.option('--home <dir>', 'server home (default $TRUSTPLANE_HOME or ./.trustplane)');
}

async function withStore<T>(flags: HomeFlags, work: (store: SqliteAuditStore) => T | Promise<T>): Promise<T> {
  const store = openAuditLogReadOnly(resolveHome(flags.home));
  try {
    return await work(store);
  } finally {
    store.close();
  }
}

function parseInstant(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const time = Date.parse(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(time)) {
    throw auditErrors.invalidArgument(`${flag} expects an ISO 8601 time such as 2025-01-31T12:00:00Z, got '${value}'.`);
  }
  return time;
}

function parseCount(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw auditErrors.invalidArgument(`${flag} expects a positive whole number, got '${value}'.`);
  return Number(value);
}

/** One line per record: time, seq, decision, outcome, service:operation, principal, resource, latency, request id. */
export function describeRecord(text: string): string {
  const record = readAuditRecord(text);
  return [new Date(record.time).toISOString(), `#${record.seq}`, record.decision, record.outcome,
    `${record.service}:${record.operation}`, record.principalArn ?? '-', record.resource ?? '-', `${record.latencyMs}ms`,
    record.requestId].join('  ');
}

// --json prints the stored canonical text: exactly the bytes the chain hashes, one record per line.
// Waits when stdout is full, so exporting a long log to a slow reader stays in constant memory.
async function printRecord(flags: HomeFlags, row: StoredAuditRecord): Promise<void> {
  if (!process.stdout.write(`${flags.json ? row.text : describeRecord(row.text)}\n`)) await once(process.stdout, 'drain');
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('verify, query and follow the tamper-evident audit log');

  withHome(audit.command('verify').description('check every record, the hash chain and the signed checkpoints; exit 1 naming the first bad record'))
    .option('--key-fingerprint <sha256-hex>', 'require checkpoints signed by this audit signing key (from an earlier verify)')
    .option('--json', 'machine-readable output')
    .action(async (flags: HomeFlags & { keyFingerprint?: string }) => {
      const report = await withStore(flags, (store) => verifyAuditLog(store, { expectedKeyFingerprint: flags.keyFingerprint }));
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({
          Intact: report.intact, Records: report.records, LastSequence: report.lastSequence, Checkpoints: report.checkpoints,
          LastCheckpointSequence: report.lastCheckpointSequence, ChainHead: report.chainHead,
          SigningKeys: report.signingKeys.map((key) => ({ KeyId: key.keyId, Fingerprint: key.fingerprint })),
          FirstBadSequence: report.firstBadSequence, Reason: report.reason,
        }, null, 2)}\n`);
      } else if (report.intact) {
        const keys = report.signingKeys.map((key) => `${key.keyId} sha256:${key.fingerprint}`).join(', ') || 'none yet';
        process.stdout.write(`audit log intact: ${report.records} records (last ${report.lastSequence}), `
          + `${report.checkpoints} signed checkpoints (last at record ${report.lastCheckpointSequence})\n`
          + `chain head: ${report.chainHead}\nsigning key: ${keys}\n`);
        if (report.lastCheckpointSequence < report.lastSequence) {
          process.stdout.write(`note: records ${report.lastCheckpointSequence + 1}..${report.lastSequence} are not yet covered by a signed checkpoint\n`);
        }
      }
      if (!report.intact) throw auditErrors.chainBroken(report.reason ?? `record ${report.firstBadSequence} is bad`);
    });

  withHome(audit.command('query').description('records matching every filter given, oldest first'))
    .option('--principal <arn>', 'caller principal ARN')
    .option('--resource <arn|id>', 'resource ARN, or a key id or alias name')
    .option('--operation <name>', 'operation, e.g. Encrypt')
    .option('--outcome <code>', "'Success' or an error code, e.g. AccessDeniedException")
    .option('--since <iso-time>', 'records at or after this time')
    .option('--until <iso-time>', 'records before this time')
    .option('--limit <n>', 'at most this many records')
    .option('--json', 'JSON lines: one record per line, exactly as hashed')
    .action(async (flags: QueryFlags) => {
      const filter: AuditQuery = { principalArn: flags.principal, resource: flags.resource, operation: flags.operation,
        outcome: flags.outcome, since: parseInstant('--since', flags.since), until: parseInstant('--until', flags.until),
        limit: parseCount('--limit', flags.limit) };
      // Pages are read between writes (no cursor stays open); the log only grows, so no snapshot is needed.
      await withStore(flags, async (store) => {
        for (const row of store.query(filter)) await printRecord(flags, row);
      });
    });

  withHome(audit.command('tail').description('the newest records; --follow keeps printing new ones'))
    .option('-n, --lines <n>', 'how many records to start with (default 20)')
    .option('--follow', 'keep polling for new records until interrupted')
    .option('--interval <ms>', 'how often --follow polls (default 1000)')
    .option('--json', 'JSON lines: one record per line, exactly as hashed')
    .action(async (flags: TailFlags) => {
      const lines = parseCount('-n', flags.lines) ?? 20;
      const interval = parseCount('--interval', flags.interval) ?? 1000;
      await withStore(flags, async (store) => {
        const newest = [...store.query({ newestFirst: true, limit: lines })].reverse();
        for (const row of newest) await printRecord(flags, row);
        if (!flags.follow) return;
        let after = newest.length > 0 ? newest[newest.length - 1].seq : store.readHead().seq;
        const stopped = new Promise<'stop'>((resolve) => {
          process.once('SIGINT', () => resolve('stop'));
          process.once('SIGTERM', () => resolve('stop'));
        });
        const pause = () => new Promise<'poll'>((resolve) => { setTimeout(() => resolve('poll'), interval); });
        while (await Promise.race([stopped, pause()]) === 'poll') {
          for (const row of store.query({ afterSeq: after })) {
            await printRecord(flags, row);
            after = row.seq;
          }
        }
      });
    });
}
