// The privileged operations that reach into processes and change files, run by a real agent on real targets:
// process.memory.read and process.dump on a child process the test starts, logs.collect under a root the agent
// allows (--privop-log-root), patch.apply and patch.rollback with their hash conditions and backups.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent.ts';
import { canonicalJson, randomBytes, resultPublicKeyFromPem, signDetachedJws } from '../../src/shared/crypto/index.ts';
import { PRIVOP_JWS_TYPE, type PrivopRequest, type PrivopRequestFile, type PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

interface DumpRegion { Start: string; End: string; Perms: string; Path: string; Length: number }

/** The regions of a process.dump archive (format in src/agent/privops/process-dump.ts). */
function readDumpArchive(archive: Buffer): Array<{ header: DumpRegion; bytes: Buffer }> {
  assert.equal(archive.subarray(0, 8).toString(), 'TPDUMP1\n');
  const regions: Array<{ header: DumpRegion; bytes: Buffer }> = [];
  let at = 8;
  while (at < archive.length) {
    const headerLength = archive.readUInt32BE(at);
    const header = JSON.parse(archive.subarray(at + 4, at + 4 + headerLength).toString()) as DumpRegion;
    at += 4 + headerLength;
    regions.push({ header, bytes: archive.subarray(at, at + header.Length) });
    at += header.Length;
  }
  assert.equal(at, archive.length);
  return regions;
}

describe('privileged operations on processes, logs and files', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let agent: TestAgent;
  let child: ChildProcess;
  const dir = makeTempDir('trustplane-privops-ops-');
  const keys = join(dir, 'keys');
  const logs = join(dir, 'logs');
  const marker = `TRUSTPLANE-MARKER-${Date.now().toString(36)}-in-memory`;
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);

  /** `privop request` into a file. */
  const signed = async (op: string, params: string[]) => {
    const requestPath = file('req.json');
    writeFileSync(requestPath, await trustplane('privop', 'request', '--host', agent.hostId, '--op', op,
      ...params.flatMap((param) => ['--param', param]), '--sign-key', join(keys, 'signer.key'), '--result-key', join(keys, 'result.pub')));
    return { requestPath };
  };
  /** A request signed here, for parameters too large for `--param` on a command line. */
  const signedHere = async (op: string, parameters: PrivopRequest['Parameters']) => {
    const now = Date.now();
    const body: PrivopRequest = { Version: 1, Operation: op, Parameters: parameters, Target: { HostId: agent.hostId },
      NotBefore: new Date(now - 60_000).toISOString(), NotAfter: new Date(now + 600_000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
      Requester: 'test', ResultKey: resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url') };
    const requestFile: PrivopRequestFile = { Request: body, Signature: await signDetachedJws(readFileSync(join(keys, 'signer.key'), 'utf8'),
      canonicalJson(body), PRIVOP_JWS_TYPE) };
    const requestPath = file('req.json');
    writeFileSync(requestPath, JSON.stringify(requestFile));
    return requestPath;
  };
  /** Signs a request, delivers it to the agent and returns the sealed result's path with the request's. */
  const deliver = async (op: string, params: string[]) => {
    const { requestPath } = await signed(op, params);
    const sealedPath = file('sealed.bin');
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', sealedPath);
    return { requestPath, sealedPath };
  };
  /** Runs an operation and returns what `open` prints. */
  const opened = async (op: string, params: string[] = []): Promise<PrivopResultPlaintext> => {
    const { requestPath, sealedPath } = await deliver(op, params);
    return JSON.parse(await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath)) as PrivopResultPlaintext;
  };
  /** Runs an operation and returns its (opened) result. */
  const run = async <T>(op: string, params: string[] = []): Promise<T> => {
    return (await opened(op, params)).Result as T;
  };
  /** Runs an operation that must fail on the host; returns the message `open` gives. */
  const failure = async (op: string, params: string[]) => {
    const { sealedPath } = await deliver(op, params);
    return fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key'));
  };

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'ops');
    const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'ops', '--uses', '1', '--json'], { env })).Token;
    await trustplane('privop', 'keygen', '--out', keys);
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({ signers: [{ publicKeyFile: 'keys/signer.pub', operations: ['*'], name: 'ops-team' }] }));
    mkdirSync(logs);
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'privops-ops-host',
      extraArgs: ['--privop-trust', trustFile, '--privop-log-root', logs] });
    // A small process (a shell waiting on its stdin) holding the marker in its memory.
    child = spawn('/bin/sh', ['-c', `marker='${marker}'; read line; echo "$marker"`], { stdio: ['pipe', 'ignore', 'ignore'] });
    await new Promise<void>((resolve, reject) => { child.once('spawn', resolve); child.once('error', reject); });
  });
  after(async () => {
    child?.kill();
    await agent?.stop();
    await server?.dispose();
  });

  it('process.memory.read returns the bytes /proc/PID/mem holds, and refuses an unmapped address', async () => {
    const pid = child.pid!;
    const first = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').find((line) => line.split(' ')[1]?.startsWith('r'))!;
    const start = BigInt(`0x${first.split('-')[0]}`);
    const expected = Buffer.alloc(64);
    const fd = openSync(`/proc/${pid}/mem`, 'r');
    try { assert.equal(readSync(fd, expected, 0, 64, start), 64); } finally { closeSync(fd); }

    const read = await run<{ Content: string; Length: number; Region: { Start: string } }>('process.memory.read',
      [`pid=${pid}`, `address=0x${start.toString(16)}`, 'length=64']);
    assert.deepEqual(Buffer.from(read.Content, 'base64'), expected);
    assert.equal(read.Region.Start, `0x${start.toString(16)}`);
    // Decimal addresses too.
    const decimal = await run<{ Content: string }>('process.memory.read', [`pid=${pid}`, `address=${(start + 16n).toString()}`, 'length=16']);
    assert.deepEqual(Buffer.from(decimal.Content, 'base64'), expected.subarray(16, 32));

    assert.match(await failure('process.memory.read', [`pid=${pid}`, 'address=0x10', 'length=16']), /PrivopOperationFailed.*AddressNotMapped/);
    // Parameters are checked before anything runs: the request is refused, not run.
    const { requestPath } = await signed('process.memory.read', [`pid=${pid}`, 'address=0x1000', `length=${2 * 1024 * 1024}`]);
    assert.match(await fails('privop', 'deliver', requestPath, '--agent', agent.socketPath), /PrivopInvalidParameters.*length/);
  });

  it('process.dump archives every readable region, the marker among them, and stops at maxBytes', async () => {
    const pid = child.pid!;
    const whole = await opened('process.dump', [`pid=${pid}`]);
    const dump = whole.Result as { Format: string; Bytes: number; Truncated: boolean; Regions: DumpRegion[]; Skipped: Array<{ Reason: string }> };
    assert.equal(dump.Format, 'trustplane-process-dump-1');
    assert.equal(dump.Truncated, false);
    // Small content comes back in the JSON (larger needs --out: privops-streaming.test.ts).
    const archive = Buffer.from(whole.Content?.Base64 ?? '', 'base64');
    assert.equal(whole.Content?.Sha256, sha256(archive));
    const regions = readDumpArchive(archive);
    // The archive holds regions in pieces: each within a region listed, adding up to it.
    for (const listed of dump.Regions) {
      const pieces = regions.filter((piece) => BigInt(piece.header.Start) >= BigInt(listed.Start) && BigInt(piece.header.Start) < BigInt(listed.End));
      assert.ok(pieces.every((piece) => piece.header.Path === listed.Path && piece.header.Perms === listed.Perms));
      assert.equal(pieces.reduce((sum, piece) => sum + piece.header.Length, 0), listed.Length);
    }
    assert.equal(regions.reduce((sum, region) => sum + region.bytes.length, 0), dump.Bytes);
    assert.ok(regions.some((region) => region.header.Path === '[stack]'));
    const holding = regions.find((region) => region.bytes.includes(marker));
    assert.ok(holding, 'the marker is in the dump');

    // The same bytes through process.memory.read at the marker's address.
    const address = BigInt(holding.header.Start) + BigInt(holding.bytes.indexOf(marker));
    const read = await run<{ Content: string }>('process.memory.read', [`pid=${pid}`, `address=0x${address.toString(16)}`, `length=${marker.length}`]);
    assert.equal(Buffer.from(read.Content, 'base64').toString(), marker);

    const cutOpened = await opened('process.dump', [`pid=${pid}`, 'maxBytes=4096']);
    const cut = cutOpened.Result as { Bytes: number; Truncated: boolean };
    assert.equal(cut.Truncated, true);
    assert.equal(cut.Bytes, 4096);
    assert.equal(readDumpArchive(Buffer.from(cutOpened.Content?.Base64 ?? '', 'base64')).reduce((sum, region) => sum + region.bytes.length, 0), 4096);

    assert.match(await failure('process.dump', ['pid=4194304']), /PrivopOperationFailed.*ProcessNotFound/);
  });

  it('no operation touches the agent itself: its memory, its state directory, its trust file, even through a link or /proc', async () => {
    const refusal = async (op: string, params: string[]) => fails('privop', 'deliver', (await signed(op, params)).requestPath, '--agent', agent.socketPath);
    const agentPid = agent.process.pid as number;
    assert.match(await refusal('process.dump', [`pid=${agentPid}`]), /PrivopProtectedResource/);
    assert.match(await refusal('process.memory.read', [`pid=${agentPid}`, 'address=0x1000', 'length=16']), /PrivopProtectedResource/);
    assert.match(await refusal('file.read', [`path=${join(agent.stateDir, 'identity.key')}`]), /PrivopProtectedResource/);
    assert.match(await refusal('file.read', [`path=/proc/${agentPid}/environ`]), /PrivopProtectedResource/);
    assert.match(await refusal('file.hash', [`path=${join(dir, 'privop-trust.json')}`]), /PrivopProtectedResource/);
    assert.match(await refusal('file.hash', [`path=${join(dir, 'keys', 'signer.pub')}`]), /PrivopProtectedResource/);
    const link = join(dir, 'innocent-link');
    symlinkSync(agent.stateDir, link);
    assert.match(await refusal('file.read', [`path=${join(link, 'identity.key')}`]), /PrivopProtectedResource/);
    assert.match(await refusal('patch.apply', [`path=${join(dir, 'privop-trust.json')}`, `expectedSha256=${'0'.repeat(64)}`, 'contentBase64=e30=']),
      /PrivopProtectedResource/);
    // Other processes stay readable.
    assert.equal((await run<{ Pid: number }>('process.dump', [`pid=${child.pid}`, 'maxBytes=4096'])).Pid, child.pid);
  });

  it('logs.collect returns the last lines of a file or a directory under an allowed root, and nothing outside', async () => {
    const lines = Array.from({ length: 500 }, (_, index) => `line ${index + 1} of the service log`);
    writeFileSync(join(logs, 'service.log'), `${lines.join('\n')}\n`);
    writeFileSync(join(logs, 'other.log'), 'one\ntwo\nthree');
    writeFileSync(join(logs, 'old.log.1.gz'), 'compressed');
    symlinkSync(join(keys, 'result.key'), join(logs, 'escape.log'));

    const single = await run<{ Files: Array<{ Path: string; Lines: number; Text: string }> }>('logs.collect', [`path=${join(logs, 'service.log')}`, 'lines=10']);
    assert.equal(single.Files.length, 1);
    assert.equal(single.Files[0].Text, `${lines.slice(-10).join('\n')}\n`);
    assert.equal(single.Files[0].Lines, 10);

    const all = await run<{ Files: Array<{ Path: string; Text: string }>; Skipped: Array<{ Path: string; Reason: string }> }>('logs.collect',
      [`path=${logs}`, 'lines=2']);
    assert.deepEqual(all.Files.map((entry) => [entry.Path, entry.Text]), [[join(logs, 'other.log'), 'two\nthree'],
      [join(logs, 'service.log'), `${lines.slice(-2).join('\n')}\n`]]);
    assert.deepEqual(all.Skipped, [{ Path: join(logs, 'escape.log'), Reason: 'LogPathNotAllowed' }, { Path: join(logs, 'old.log.1.gz'), Reason: 'compressed' }]);

    // `since` skips files not modified since then.
    const future = await run<{ Files: unknown[] }>('logs.collect', [`path=${logs}`, `since=${new Date(Date.now() + 3_600_000).toISOString()}`]);
    assert.deepEqual(future.Files, []);

    assert.match(await failure('logs.collect', [`path=${join(keys, 'result.key')}`]), /PrivopOperationFailed.*LogPathNotAllowed/);
    assert.match(await failure('logs.collect', [`path=${join(logs, 'escape.log')}`]), /PrivopOperationFailed.*LogPathNotAllowed/);
  });

  it('patch.apply replaces a file atomically only at the expected hash, keeps a backup, and patch.rollback restores it', async () => {
    const patchDir = join(dir, 'etc');
    mkdirSync(patchDir);
    const target = join(patchDir, 'service.conf');
    const original = 'listen = 8080\nworkers = 4\n';
    const patched = 'listen = 8443\nworkers = 8\ntls = on\n';
    writeFileSync(target, original);
    chmodSync(target, 0o640);
    const inodeBefore = statSync(target).ino;

    // A wrong hash changes nothing.
    assert.match(await failure('patch.apply', [`path=${target}`, `expectedSha256=${sha256('something else')}`,
      `contentBase64=${Buffer.from(patched).toString('base64')}`]), /PrivopOperationFailed.*PatchHashMismatch/);
    assert.equal(readFileSync(target, 'utf8'), original);
    assert.equal(statSync(target).ino, inodeBefore);

    const applied = await run<{ Backup: string; PreviousSha256: string; NewSha256: string }>('patch.apply', [`path=${target}`,
      `expectedSha256=${sha256(original)}`, `contentBase64=${Buffer.from(patched).toString('base64')}`]);
    assert.equal(applied.PreviousSha256, sha256(original));
    assert.equal(applied.NewSha256, sha256(patched));
    assert.equal(readFileSync(target, 'utf8'), patched);
    // Replaced by a rename (a new inode), with the mode kept and no temp file left behind.
    assert.notEqual(statSync(target).ino, inodeBefore);
    assert.equal(statSync(target).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(patchDir), ['service.conf']);
    assert.equal(applied.Backup, join(agent.stateDir, 'privop-backups', sha256(original)));
    assert.equal(readFileSync(applied.Backup, 'utf8'), original);
    assert.equal(statSync(applied.Backup).mode & 0o077, 0);

    // Applying the same patch again: the file no longer has the expected hash.
    assert.match(await failure('patch.apply', [`path=${target}`, `expectedSha256=${sha256(original)}`,
      `contentBase64=${Buffer.from(patched).toString('base64')}`]), /PatchHashMismatch/);
    assert.equal(readFileSync(target, 'utf8'), patched);

    const rolledBack = await run<{ RestoredSha256: string; ReplacedSha256: string }>('patch.rollback', [`path=${target}`, `backupSha256=${applied.PreviousSha256}`]);
    assert.deepEqual(rolledBack, { Path: target, Backup: applied.Backup, RestoredSha256: sha256(original), ReplacedSha256: sha256(patched) });
    assert.equal(readFileSync(target, 'utf8'), original);
    assert.equal(statSync(target).mode & 0o777, 0o640);
    // A second rollback finds the file no longer patched and changes nothing.
    writeFileSync(target, 'edited by hand\n');
    assert.match(await failure('patch.rollback', [`path=${target}`, `backupSha256=${applied.PreviousSha256}`]), /PatchHashMismatch/);
    assert.equal(readFileSync(target, 'utf8'), 'edited by hand\n');
    assert.match(await failure('patch.rollback', [`path=${target}`, `backupSha256=${sha256('never backed up')}`]), /PatchBackupNotFound/);
  });

  it('patch.apply carries a large patch (12 MiB) in the signed request', async () => {
    const target = join(dir, 'large.bin');
    writeFileSync(target, 'small\n');
    const content = randomBytes(12 * 1024 * 1024);
    const requestPath = await signedHere('patch.apply', { path: target, expectedSha256: sha256('small\n'), contentBase64: content.toString('base64') });
    const sealedPath = file('sealed.bin');
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', sealedPath);
    const opened = JSON.parse(await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath)) as PrivopResultPlaintext;
    assert.equal((opened.Result as { NewSha256: string }).NewSha256, sha256(content));
    assert.equal(sha256(readFileSync(target)), sha256(content));
    // The CLI reads a large value from a file (--param-file NAME=PATH, base64-encoded for the request).
    const next = randomBytes(2 * 1024 * 1024);
    const nextFile = file('next.bin');
    writeFileSync(nextFile, next);
    const requestFromCli = file('req.json');
    writeFileSync(requestFromCli, await trustplane('privop', 'request', '--host', agent.hostId, '--op', 'patch.apply', '--param', `path=${target}`,
      '--param', `expectedSha256=${sha256(content)}`, '--param-file', `contentBase64=${nextFile}`, '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub')));
    const sealedFromCli = file('sealed.bin');
    await trustplane('privop', 'deliver', requestFromCli, '--agent', agent.socketPath, '--out', sealedFromCli);
    await trustplane('privop', 'open', sealedFromCli, '--key', join(keys, 'result.key'), '--request', requestFromCli);
    assert.equal(sha256(readFileSync(target)), sha256(next));
    // Only a …Base64 parameter may be that long.
    const tooLong = await signedHere('patch.apply', { path: `/${'a'.repeat(5000)}`, expectedSha256: sha256('small\n'), contentBase64: 'AAAA' });
    assert.match(await fails('privop', 'deliver', tooLong, '--agent', agent.socketPath), /4096 characters/);
  });
});
