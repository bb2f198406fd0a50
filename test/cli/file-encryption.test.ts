// `trustplane encrypt` / `decrypt` as a user runs them: files and pipes, tampering, refusal to
// clobber, and a multi-GB round trip through stdin/stdout with flat memory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, startTestServer, trustplaneBin, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFailure } from '../helpers/cli.ts';
const GIB = 1024 ** 3;

describe('trustplane encrypt / decrypt', () => {
  let server: TestServer;
  let work: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    server = await startTestServer();
    work = makeTempDir('trustplane-files-');
    env = cliEnv(server);
    await runTrustplane(['key', 'create', '--alias', 'alias/files'], { env });
  });
  after(async () => {
    await server?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const failing = (...args: string[]) => trustplaneFailure(args, { env });

  it('round-trips a file with its encryption context, and reports in JSON', async () => {
    const plain = join(work, 'plain.bin');
    const data = randomBytes(300_000);
    writeFileSync(plain, data);
    const encrypted = await trustplane('encrypt', '--key', 'alias/files', '--context', 'purpose=test', '--json', plain, join(work, 'plain.tpenc'));
    const summary = JSON.parse(encrypted) as { KeyId: string; BytesIn: number; BytesOut: number; EncryptionContext: Record<string, string> };
    assert.equal(summary.BytesIn, data.length);
    assert.ok(summary.BytesOut > data.length);
    assert.deepEqual(summary.EncryptionContext, { purpose: 'test' });
    assert.match(summary.KeyId, /^arn:aws:kms:/);
    const onDisk = readFileSync(join(work, 'plain.tpenc'));
    assert.equal(onDisk.indexOf(data.subarray(0, 64)), -1, 'no plaintext on disk');
    await trustplane('decrypt', join(work, 'plain.tpenc'), join(work, 'plain.out'));
    assert.deepEqual(readFileSync(join(work, 'plain.out')), data);
  });

  it('refuses a tampered file with InvalidCiphertextException and leaves no output behind', async () => {
    const data = randomBytes(200_000);
    writeFileSync(join(work, 't.bin'), data);
    await trustplane('encrypt', '--key', 'alias/files', join(work, 't.bin'), join(work, 't.tpenc'));
    const encrypted = readFileSync(join(work, 't.tpenc'));
    const cases: Array<[string, Buffer]> = [
      ['flipped body byte', Buffer.concat([encrypted.subarray(0, 150_000), Buffer.from([encrypted[150_000] ^ 1]), encrypted.subarray(150_001)])],
      ['truncated', encrypted.subarray(0, encrypted.length - 70_000)],
      ['appended', Buffer.concat([encrypted, Buffer.from('x')])],
    ];
    for (const [name, bytes] of cases) {
      writeFileSync(join(work, 'bad.tpenc'), bytes);
      const result = await failing('decrypt', join(work, 'bad.tpenc'), join(work, 'bad.out'));
      assert.equal(result.code, 1, name);
      assert.match(result.stderr, /^trustplane: InvalidCiphertextException: /, name);
      assert.equal(existsSync(join(work, 'bad.out')), false, `${name}: no output file`);
    }
    assert.deepEqual(readdirSync(work).filter((file) => file.endsWith('.partial')), [], 'no temporary files left');
  });

  it('refuses to replace an existing output without --force, and errors are one line with a code', async () => {
    writeFileSync(join(work, 'exists.bin'), 'data');
    const clobber = await failing('encrypt', '--key', 'alias/files', join(work, 'exists.bin'), join(work, 'exists.bin'));
    assert.match(clobber.stderr, /^trustplane: FileExists: .* exists; pass --force to replace it\.\n$/);
    const missingKey = await failing('encrypt', '--key', 'alias/none', join(work, 'exists.bin'), join(work, 'n.tpenc'));
    assert.match(missingKey.stderr, /^trustplane: NotFoundException: Alias .*alias\/none is not found\.\n$/);
    const missingFile = await failing('decrypt', join(work, 'nope'), join(work, 'n.out'));
    assert.match(missingFile.stderr, /^trustplane: NoSuchFile: /);
  });

  it('streams a multi-GB file through stdin and stdout in flat memory', { timeout: 600_000 }, async (t) => {
    const size = Number(process.env.TRUSTPLANE_BIG_FILE_GIB ?? 2) * GIB;
    const encryptedPath = join(work, 'big.tpenc');
    const block = randomBytes(1024 * 1024);
    const inputHash = createHash('sha256');
    const encrypt = spawn(process.execPath, [trustplaneBin, 'encrypt', '--key', 'alias/files', '--no-progress', '-', encryptedPath],
      { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const encryptPeak = watchPeakRss(encrypt.pid!);
    let encryptErrors = '';
    encrypt.stderr.on('data', (chunk: Buffer) => { encryptErrors += chunk.toString(); });
    for (let offset = 0, counter = 0; offset < size; offset += block.length, counter += 1) {
      block.writeUInt32BE(counter, 0);
      inputHash.update(block);
      if (!encrypt.stdin.write(block)) await new Promise((resolve) => encrypt.stdin.once('drain', resolve));
    }
    encrypt.stdin.end();
    const encryptCode = await new Promise((resolve) => encrypt.once('exit', resolve));
    assert.equal(encryptCode, 0, encryptErrors);

    const decrypt = spawn(process.execPath, [trustplaneBin, 'decrypt', '--no-progress', encryptedPath, '-'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const decryptPeak = watchPeakRss(decrypt.pid!);
    const outputHash = createHash('sha256');
    let outputBytes = 0;
    decrypt.stdout.on('data', (chunk: Buffer) => { outputHash.update(chunk); outputBytes += chunk.length; });
    const decryptCode = await new Promise((resolve) => decrypt.once('exit', resolve));
    assert.equal(decryptCode, 0);
    assert.equal(outputBytes, size);
    assert.equal(outputHash.digest('hex'), inputHash.digest('hex'));
    const peaks = { encrypt: encryptPeak(), decrypt: decryptPeak() };
    t.diagnostic(`peak RSS for ${size / GIB} GiB: encrypt ${Math.round(peaks.encrypt / 1048576)} MiB, decrypt ${Math.round(peaks.decrypt / 1048576)} MiB`);
    for (const [name, peak] of Object.entries(peaks)) {
      assert.ok(peak > 0, `${name}: peak RSS was sampled`);
      assert.ok(peak < 256 * 1024 * 1024, `${name}: peak RSS ${Math.round(peak / 1048576)} MiB for ${size / GIB} GiB`);
    }
    rmSync(encryptedPath);
  });
});

/** Samples a process's VmHWM (its peak resident set) until it exits; returns the last reading. */
function watchPeakRss(pid: number): () => number {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) peak = Math.max(peak, Number(match[1]) * 1024);
    } catch {
      clearInterval(timer);
    }
  }, 50);
  return () => {
    clearInterval(timer);
    return peak;
  };
}
