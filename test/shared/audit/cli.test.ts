// `trustplane audit verify|query|tail` as an operator runs them on a stopped server's home:
// exit status, --json shapes, the one-line error naming the first bad record.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, trustplaneBin } from '../../helpers/server.ts';
import { trustplane as runTrustplane, trustplaneFailure } from '../../helpers/cli.ts';
import { SqliteAuditStore } from '../../../src/shared/store/sqlite-audit.ts';
import {
  ALICE, BOB, copyHome, createAuditHome, draft, KEY_ID, makeTempHome, openConnection, tamper, type AuditHome,
} from './fixture.ts';

// Both resolve to the same shape, as a failed command reports its output too.
const trustplane = async (...args: string[]) => ({ stdout: await runTrustplane(args) });
const failing = (...args: string[]) => trustplaneFailure(args);

describe('trustplane audit', () => {
  let home: AuditHome;
  const removable: string[] = [];

  before(async () => {
    home = await createAuditHome();
    const log = await home.openLog();
    for (let n = 1; n <= 30; n += 1) {
      await log.record(draft(n, n % 10 === 0 ? { principalArn: BOB, outcome: 'AccessDeniedException', decision: 'ExplicitDeny' } : {}));
      if (n === 20) await log.checkpointNow();
    }
    await log.close();
    await home.close(); // a stopped server
  });

  after(() => {
    for (const dir of [home.home, ...removable]) rmSync(dir, { recursive: true, force: true });
  });

  it('verify: exit 0 and the report on an intact home', async () => {
    const { stdout } = await trustplane('audit', 'verify', '--home', home.home, '--json');
    const report = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(report.Intact, true);
    assert.equal(report.Records, 30);
    assert.equal(report.LastSequence, 30);
    assert.equal(report.Checkpoints, 2);
    assert.equal(report.FirstBadSequence, undefined);
    const human = await trustplane('audit', 'verify', '--home', home.home);
    assert.match(human.stdout, /audit log intact: 30 records \(last 30\), 2 signed checkpoints \(last at record 30\)/);
  });

  it('verify: exit 1 naming the first bad record, on a tampered copy', async () => {
    const copy = copyHome(home.home);
    removable.push(copy);
    tamper(copy, `UPDATE audit_records SET record = replace(record, '"outcome":"AccessDeniedException"', '"outcome":"Success"') WHERE seq = 10`);
    const human = await failing('audit', 'verify', '--home', copy);
    assert.equal(human.code, 1);
    assert.equal(human.stderr, 'trustplane: AuditChainBroken: record 10 was modified (hash mismatch)\n');
    const json = await failing('audit', 'verify', '--home', copy, '--json');
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.deepEqual([report.Intact, report.FirstBadSequence, report.Reason], [false, 10, 'record 10 was modified (hash mismatch)']);
  });

  it('verify: a clear one-line error for a missing home', async () => {
    const missing = join(makeTempHome(), 'nowhere');
    removable.push(join(missing, '..'));
    const result = await failing('audit', 'verify', '--home', missing);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^trustplane: HomeNotFound: \S+nowhere does not exist; pass --home DIR or set TRUSTPLANE_HOME\.\n$/);
    const empty = makeTempHome();
    removable.push(empty);
    assert.match((await failing('audit', 'query', '--home', empty)).stderr, /^trustplane: HomeNotFound: .* is not a trustplane home/);
  });

  it('query --json: JSON lines, exactly the hashed records, filtered', async () => {
    const { stdout } = await trustplane('audit', 'query', '--home', home.home, '--principal', BOB, '--json');
    const lines = stdout.trimEnd().split('\n');
    assert.deepEqual(lines.map((line) => (JSON.parse(line) as { seq: number }).seq), [10, 20, 30]);
    const denied = await trustplane('audit', 'query', '--home', home.home, '--resource', KEY_ID, '--outcome', 'AccessDeniedException',
      '--since', '2025-03-01T00:00:15Z', '--limit', '1', '--json');
    assert.deepEqual(denied.stdout.trimEnd().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq), [20]);
    const human = await trustplane('audit', 'query', '--home', home.home, '--principal', ALICE, '--operation', 'Encrypt', '--limit', '2');
    assert.equal(human.stdout, [
      `2025-03-01T00:00:01.000Z  #1  Allow  Success  kms:Encrypt  ${ALICE}  arn:aws:kms:us-east-1:111122223333:key/${KEY_ID}  0.25ms  req-1`,
      `2025-03-01T00:00:02.000Z  #2  Allow  Success  kms:Encrypt  ${ALICE}  arn:aws:kms:us-east-1:111122223333:key/${KEY_ID}  0.25ms  req-2`,
      ''].join('\n'));
    assert.match((await failing('audit', 'query', '--home', home.home, '--since', 'yesterday')).stderr, /^trustplane: InvalidArgument: --since expects an ISO 8601 time/);
  });

  it('tail: the newest records, and --follow prints new ones as they commit', async () => {
    const { stdout } = await trustplane('audit', 'tail', '--home', home.home, '-n', '3', '--json');
    assert.deepEqual(stdout.trimEnd().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq), [28, 29, 30]);

    const live = copyHome(home.home);
    removable.push(live);
    const follower = spawn(process.execPath, [trustplaneBin, 'audit', 'tail', '--home', live, '-n', '1', '--follow', '--interval', '50', '--json'],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    follower.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); });
    const seen = async (count: number) => {
      while (output.trimEnd().split('\n').filter(Boolean).length < count) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    await seen(1);
    const db = openConnection(join(live, 'trustplane.db'));
    new SqliteAuditStore(db).appendBatch([draft(31), draft(32)]);
    db.close();
    await seen(3);
    const exited = new Promise((resolve) => follower.once('exit', resolve));
    follower.kill('SIGINT');
    assert.equal(await exited, 0, 'interrupting --follow is a normal end');
    assert.deepEqual(output.trimEnd().split('\n').map((line) => (JSON.parse(line) as { seq: number }).seq), [30, 31, 32]);
  });
});
