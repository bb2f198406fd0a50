// `trustplane reencrypt` as a user runs it: files under old key versions move to the default
// version and still decrypt; foreign files, stale temporary files and tampered files are handled.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCiphertextBlob, readFileHeader, type ChunkedFileHeader } from '../../src/shared/crypto/index.ts';
import { makeTempDir, startTestServer, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFailure, trustplaneJson } from '../helpers/cli.ts';

interface ReencryptReport {
  Reencrypted: string[];
  Current: string[];
  Skipped: Array<{ Path: string; Reason: string }>;
  Failed: Array<{ Path: string; Error: string }>;
  StaleTemporaryFiles: string[];
  WouldReencrypt?: string[];
  DryRun?: boolean;
}

function headerOf(path: string): ChunkedFileHeader {
  const read = readFileHeader(readFileSync(path));
  assert.ok(read.complete, `${path} has a whole header`);
  return read.header;
}

function keyVersionOf(path: string): number {
  return parseCiphertextBlob(headerOf(path).wrappedDataKey).keyVersion;
}

describe('trustplane reencrypt', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let work: string;

  before(async () => {
    server = await startTestServer({ dev: true });
    env = cliEnv(server);
    work = makeTempDir('trustplane-reencrypt-');
  });
  after(async () => {
    await server?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const reencrypt = (...args: string[]) => trustplaneJson<ReencryptReport>(['reencrypt', '--json', ...args], { env });
  /** A fresh key and directory per test, so one test's rotations do not move another's default version. */
  const setUp = async (name: string) => {
    const directory = join(work, name);
    mkdirSync(directory);
    await trustplane('key', 'create', '--alias', `alias/${name}`);
    return directory;
  };
  const encryptFile = async (alias: string, plain: string, encrypted: string, data: Buffer, ...options: string[]) => {
    writeFileSync(plain, data);
    await trustplane('encrypt', '--key', `alias/${alias}`, ...options, plain, encrypted);
  };
  const decryptsTo = async (encrypted: string, expected: Buffer) => {
    const out = `${encrypted}.out`;
    await trustplane('decrypt', '--force', encrypted, out);
    assert.deepEqual(readFileSync(out), expected, `${encrypted} decrypts to the original bytes`);
    rmSync(out);
  };

  it('re-encrypts files made under version 1 to the default version; they still decrypt, and a second run finds them current', async () => {
    const directory = await setUp('rotated');
    mkdirSync(join(directory, 'nested'));
    const big = randomBytes(700_000); // several 256 KiB chunks
    const small = randomBytes(1_000);
    const bigPath = join(directory, 'big.tpenc');
    const smallPath = join(directory, 'nested', 'small.tpenc');
    await encryptFile('rotated', join(work, 'big.plain'), bigPath, big);
    await encryptFile('rotated', join(work, 'small.plain'), smallPath, small);
    chmodSync(bigPath, 0o640);
    assert.equal(keyVersionOf(bigPath), 1);

    const rotated = await trustplaneJson<{ CurrentVersion: number }>(['key', 'rotate', 'alias/rotated', '--json'], { env });
    assert.equal(rotated.CurrentVersion, 2);
    const saltBefore = headerOf(bigPath).salt;

    const report = await reencrypt('--recursive', directory);
    assert.deepEqual(report.Reencrypted, [bigPath, smallPath]);
    assert.deepEqual(report.Current, []);
    assert.deepEqual(report.Failed, []);
    assert.equal(keyVersionOf(bigPath), 2);
    assert.equal(keyVersionOf(smallPath), 2);
    assert.notDeepEqual(headerOf(bigPath).salt, saltBefore, 'the body is encrypted afresh, with a new salt');
    assert.equal(statSync(bigPath).mode & 0o777, 0o640, 'the original mode is kept');
    await decryptsTo(bigPath, big);
    await decryptsTo(smallPath, small);
    assert.deepEqual(readdirSync(directory).filter((name) => name.startsWith('.')), [], 'no temporary files left');

    const again = await reencrypt('--recursive', directory);
    assert.deepEqual(again.Reencrypted, []);
    assert.deepEqual(again.Current, [bigPath, smallPath]);
    const human = await trustplane('reencrypt', '--recursive', directory);
    assert.match(human, /^re-encrypted 0, already current 2, skipped 0, failed 0$/m);
  });

  it('skips files that are not trustplane files, and directories without --recursive, leaving them untouched', async () => {
    const directory = await setUp('foreign');
    const notes = join(directory, 'notes.txt');
    const lookalike = join(directory, 'short');
    writeFileSync(notes, 'plain text, not ours\n');
    writeFileSync(lookalike, 'TPE');
    const before = { notes: statSync(notes), lookalike: statSync(lookalike) };

    const report = await reencrypt(notes, lookalike, directory);
    assert.deepEqual(report.Reencrypted, []);
    assert.deepEqual(report.Failed, []);
    assert.deepEqual(report.Skipped.map((entry) => entry.Path).sort(), [directory, lookalike, notes].sort());
    assert.match(report.Skipped.find((entry) => entry.Path === notes)!.Reason, /not a trustplane encrypted file/);
    assert.match(report.Skipped.find((entry) => entry.Path === directory)!.Reason, /--recursive/);
    assert.equal(readFileSync(notes, 'utf8'), 'plain text, not ours\n');
    assert.equal(statSync(notes).mtimeMs, before.notes.mtimeMs);
    assert.equal(statSync(lookalike).mtimeMs, before.lookalike.mtimeMs);

    const human = await trustplane('reencrypt', notes);
    assert.match(human, /skipped\s+.*notes\.txt: not a trustplane encrypted file/);
    assert.match(human, /re-encrypted 0, already current 0, skipped 1, failed 0/);
  });

  it('resumes after an interrupted run: removes the stale temporary files it made and re-encrypts what is left', async () => {
    const directory = await setUp('interrupted');
    const data = randomBytes(300_000);
    const done = join(directory, 'done.tpenc');
    const pending = join(directory, 'pending.tpenc');
    await encryptFile('interrupted', join(work, 'done.plain'), done, data);
    await encryptFile('interrupted', join(work, 'pending.plain'), pending, data);
    await trustplane('key', 'rotate', 'alias/interrupted');
    // The interrupted run had finished one file and was writing the other's temporary copy.
    await reencrypt(done);
    const stale = join(directory, '.pending.tpenc.0123456789ab.tp-reencrypt');
    writeFileSync(stale, readFileSync(pending).subarray(0, 100_000));
    const unrelated = join(directory, '.pending.tpenc.0123456789ab.partial');
    writeFileSync(unrelated, 'not made by reencrypt');

    const dryRun = await reencrypt('--dry-run', '--recursive', directory);
    assert.equal(dryRun.DryRun, true);
    assert.deepEqual(dryRun.WouldReencrypt, [pending]);
    assert.deepEqual(dryRun.StaleTemporaryFiles, [stale]);
    assert.ok(existsSync(stale), '--dry-run removes nothing');
    assert.equal(keyVersionOf(pending), 1, '--dry-run re-encrypts nothing');

    const report = await reencrypt('--recursive', directory);
    assert.deepEqual(report.StaleTemporaryFiles, [stale]);
    assert.deepEqual(report.Reencrypted, [pending]);
    assert.deepEqual(report.Current, [done]);
    assert.equal(existsSync(stale), false, 'the stale temporary file is gone');
    assert.ok(existsSync(unrelated), 'files it did not make are left alone');
    assert.equal(keyVersionOf(pending), 2);
    await decryptsTo(done, data);
    await decryptsTo(pending, data);
  });

  it('keeps a file\'s encryption context, which decrypt still needs and finds', async () => {
    const directory = await setUp('context');
    const data = randomBytes(50_000);
    const path = join(directory, 'with-context.tpenc');
    await encryptFile('context', join(work, 'context.plain'), path, data, '--context', 'tenant=acme', '--context', 'purpose=backup');
    await trustplane('key', 'rotate', 'alias/context');

    const report = await reencrypt(path);
    assert.deepEqual(report.Reencrypted, [path]);
    assert.deepEqual(headerOf(path).context, { purpose: 'backup', tenant: 'acme' });
    assert.equal(keyVersionOf(path), 2);
    const decrypted = await trustplaneJson<{ EncryptionContext: Record<string, string> }>(
      ['decrypt', '--json', path, `${path}.out`], { env });
    assert.deepEqual(decrypted.EncryptionContext, { purpose: 'backup', tenant: 'acme' });
    assert.deepEqual(readFileSync(`${path}.out`), data);
  });

  it('reports a tampered file as failed, leaves it as it was, and exits non-zero with a one-line error', async () => {
    const directory = await setUp('tampered');
    const good = join(directory, 'good.tpenc');
    const bad = join(directory, 'bad.tpenc');
    const data = randomBytes(300_000);
    await encryptFile('tampered', join(work, 'tampered.plain'), good, data);
    const bytes = readFileSync(good);
    bytes[bytes.length - 100] ^= 1;
    writeFileSync(bad, bytes);
    await trustplane('key', 'rotate', 'alias/tampered');

    const result = await trustplaneFailure(['reencrypt', '--json', good, bad], { env });
    assert.equal(result.code, 1);
    const report = JSON.parse(result.stdout) as ReencryptReport;
    assert.deepEqual(report.Reencrypted, [good]);
    assert.equal(report.Failed.length, 1);
    assert.equal(report.Failed[0].Path, bad);
    assert.match(report.Failed[0].Error, /^InvalidCiphertextException: /);
    assert.match(result.stderr, /^trustplane: ReencryptFailed: 1 path\(s\) failed[^\n]*\n$/);
    assert.deepEqual(readFileSync(bad), bytes, 'the tampered file is unchanged');
    assert.deepEqual(readdirSync(directory).sort(), ['bad.tpenc', 'good.tpenc'], 'no temporary files left');
    await decryptsTo(good, data);

    const missing = await trustplaneFailure(['reencrypt', join(directory, 'nope.tpenc')], { env });
    assert.match(missing.stdout, /failed\s+.*nope\.tpenc: does not exist/);
    assert.doesNotMatch(missing.stderr, /\n\s+at /, 'no stack trace');
  });
});
