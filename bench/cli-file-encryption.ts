// Throughput of the real `trustplane encrypt` / `decrypt` commands (a key service call, then the
// chunked format, file in, stdout out) against raw AES-256-GCM over the same file in this process.
//
//   node --import tsx bench/cli-file-encryption.ts [--mib N] [--repeat N]
//
// The CLI figure includes process start-up and the GenerateDataKey/Decrypt round trip; a run on an
// empty file measures that fixed cost, and the "steady" figure subtracts it. Must never leave the server
// or the temporary files behind, even on Ctrl-C.
import * as nodeCrypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { compareWithRaw, formatThroughput, generateData, measureThroughput, type Throughput } from './file-encryption.ts';
import { makeTempDir, trustplaneBin } from '../test/helpers/server.ts';
import { cliEnv } from '../test/helpers/cli.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { positiveNumber } from './lib/settings.ts';

const MIB = 1 << 20;
/** Wide enough for the longest label here. */
const LABEL_WIDTH = 40;

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [trustplaneBin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => { errors += chunk.toString(); });
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`trustplane ${args[0]} failed: ${errors}`))));
  });
}

/** Raw AES-256-GCM over the file as read from disk, one cipher, output discarded. */
async function rawGcmOverFile(path: string): Promise<void> {
  const cipher = nodeCrypto.createCipheriv('aes-256-gcm', nodeCrypto.randomBytes(32), nodeCrypto.randomBytes(12));
  const sink = new Writable({ highWaterMark: MIB, write(_chunk, _encoding, callback) { callback(); } });
  await pipeline(createReadStream(path, { highWaterMark: MIB }), cipher, sink);
}

function line(result: Throughput, raw?: Throughput): string {
  return raw ? compareWithRaw(result, raw, LABEL_WIDTH, 'cli') : formatThroughput(result, LABEL_WIDTH);
}

async function main(lifecycle: BenchLifecycle): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, repeat: { type: 'string', default: '3' } } });
  const mib = positiveNumber('mib', values.mib, true);
  const repeat = positiveNumber('repeat', values.repeat, true);
  lifecycle.installSignalHandlers();
  const work = makeTempDir('trustplane-bench-');
  const removeWork = () => rmSync(work, { recursive: true, force: true });
  lifecycle.lastResort(removeWork);
  lifecycle.defer(removeWork);
  const server = await lifecycle.startTrustplane('trustplane-bench-', {});
  const env = cliEnv(server);
  await runCli(['key', 'create', '--alias', 'alias/bench'], env);
  const plain = join(work, 'plain.bin');
  const empty = join(work, 'empty.bin');
  writeFileSync(empty, '');
  await pipeline(generateData(mib), createWriteStream(plain, { highWaterMark: MIB }));
  const encrypted = join(work, 'plain.tpenc');
  await runCli(['encrypt', '--key', 'alias/bench', '--no-progress', plain, encrypted], env);
  const emptyEncrypted = join(work, 'empty.tpenc');
  await runCli(['encrypt', '--key', 'alias/bench', '--no-progress', empty, emptyEncrypted], env);

  console.log(`cli file-encryption bench: ${mib} MiB file, best of ${repeat}, node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
  const bytes = mib * MIB;
  const raw = await measureThroughput('raw AES-256-GCM over the file (in-process)', bytes, () => rawGcmOverFile(plain), repeat);
  const fixedEncrypt = await measureThroughput('cli encrypt, empty file (fixed cost)', 0, () =>
    runCli(['encrypt', '--key', 'alias/bench', '--no-progress', empty, '-'], env), repeat);
  const fixedDecrypt = await measureThroughput('cli decrypt, empty file (fixed cost)', 0, () =>
    runCli(['decrypt', '--no-progress', emptyEncrypted, '-'], env), repeat);
  const cliEncrypt = await measureThroughput('cli encrypt FILE - (end to end)', bytes, () =>
    runCli(['encrypt', '--key', 'alias/bench', '--no-progress', plain, '-'], env), repeat);
  const cliDecrypt = await measureThroughput('cli decrypt FILE - (end to end)', bytes, () =>
    runCli(['decrypt', '--no-progress', encrypted, '-'], env), repeat);
  const steady = (result: Throughput, fixed: Throughput, label: string): Throughput => {
    const seconds = Math.max(result.seconds - fixed.seconds, 1e-6);
    return { label, bytes: result.bytes, seconds, mibPerSecond: result.bytes / MIB / seconds };
  };
  console.log(line(raw));
  console.log(`${fixedEncrypt.label.padEnd(LABEL_WIDTH)} ${(fixedEncrypt.seconds * 1000).toFixed(0).padStart(6)} ms`);
  console.log(`${fixedDecrypt.label.padEnd(LABEL_WIDTH)} ${(fixedDecrypt.seconds * 1000).toFixed(0).padStart(6)} ms`);
  console.log(line(cliEncrypt, raw));
  console.log(line(steady(cliEncrypt, fixedEncrypt, 'cli encrypt, steady (minus fixed cost)'), raw));
  console.log(line(cliDecrypt, raw));
  console.log(line(steady(cliDecrypt, fixedDecrypt, 'cli decrypt, steady (minus fixed cost)'), raw));
}

const lifecycle = new BenchLifecycle();
try {
  await main(lifecycle);
} catch (error: unknown) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await lifecycle.shutdown();
}
