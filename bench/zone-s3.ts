// The S3 zone proxy's cost: PUT and GET throughput of 1 MiB objects (x N) and large objects (x 2) through
// `trustplane proxy s3` (verify SigV4, scan-free policy, encrypt, re-sign, s3rver) against the same @aws-sdk/client-s3
// code talking to the backing s3rver directly, in the same run; and the proxy process's peak RSS.
//
//   npm run bench:zone-s3 -- [--small-count N] [--large-mib M] [--skip-large]
//
// Loopback only; s3rver runs inside this process (for both paths alike). Exit status 1 when a figure is not a valid
// measurement (an error, a body that does not read back). Must never leave a process or a temporary directory behind.
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import * as nodeCrypto from 'node:crypto';
import {
  CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { bodyBytes, startZoneStack, type ZoneStack } from '../test/helpers/zone-proxy.ts';
import { errorText } from './lib/concurrency.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { peakResidentKib, residentKib } from './lib/process-memory.ts';
import { count, fixed, printProblemBanner, printTable } from './lib/report.ts';
import { positiveNumber } from './lib/settings.ts';

const MiB = 1024 * 1024;
const LARGE_COUNT = 2;

const { values: flags } = parseArgs({ options: {
  'small-count': { type: 'string', default: '50' },
  'large-mib': { type: 'string', default: '256' },
  'skip-large': { type: 'boolean', default: false },
} });
const settings = {
  smallCount: positiveNumber('small-count', flags['small-count'], true),
  largeMib: positiveNumber('large-mib', flags['large-mib'], true),
};
const problems: string[] = [];
const lifecycle = new BenchLifecycle();

interface Measurement {
  objects: string;
  path: 'direct' | 'proxy';
  op: 'PUT' | 'GET';
  count: number;
  bytes: number;
  seconds: number;
}


/**
 * The one piece of client code both paths run: PUT `count` objects of `body` one after another, then GET each back
 * (reading every byte); timed separately. The first GET's bytes are checked against the body outside the timing.
 */
async function putThenGet(client: S3Client, bucket: string, prefix: string, body: Buffer, objects: number,
  label: string, path: Measurement['path']): Promise<Measurement[]> {
  const keys = Array.from({ length: objects }, (_, index) => `${prefix}/${index}`);
  const putStarted = performance.now();
  for (const key of keys) await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const putSeconds = (performance.now() - putStarted) / 1000;
  let wrongLength = 0;
  const getStarted = performance.now();
  for (const key of keys) {
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    let length = 0;
    for await (const chunk of got.Body as AsyncIterable<Uint8Array>) length += chunk.length;
    if (length !== body.length) wrongLength += 1;
  }
  const getSeconds = (performance.now() - getStarted) / 1000;
  if (wrongLength) problems.push(`${label} ${path}: ${wrongLength} GET(s) returned a body of the wrong length`);
  const first = await bodyBytes((await client.send(new GetObjectCommand({ Bucket: bucket, Key: keys[0] }))).Body);
  if (!first.equals(body)) problems.push(`${label} ${path}: a GET returned other bytes than were put`);
  for (const key of keys) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  return [
    { objects: label, path, op: 'PUT', count: objects, bytes: objects * body.length, seconds: putSeconds },
    { objects: label, path, op: 'GET', count: objects, bytes: objects * body.length, seconds: getSeconds },
  ];
}

async function main(): Promise<void> {
  lifecycle.installSignalHandlers();
  console.log('trustplane bench: S3 zone proxy against its backing store (s3rver), @aws-sdk/client-s3, one request at a time');
  const stack: ZoneStack = await startZoneStack({ auditLog: false });
  const stackDirectory = dirname(stack.configPath);
  lifecycle.lastResort(() => {
    try { process.kill(stack.proxyPid(), 'SIGKILL'); } catch { /* gone */ }
    if (stack.keyService.isRunning()) stack.keyService.process.kill('SIGKILL');
    for (const directory of [stackDirectory, stack.keyService.home, stack.zones.eu.directory, stack.zones.us.directory]) {
      rmSync(directory, { recursive: true, force: true });
    }
  });
  lifecycle.defer(() => stack.dispose());
  console.log(`  proxy ${stack.endpoint} (pid ${stack.proxyPid()}), backing store ${stack.zones.eu.endpoint}`);

  const proxy = stack.s3();
  const direct = stack.directS3('eu');
  await proxy.send(new CreateBucketCommand({ Bucket: 'bench' }));
  await direct.send(new CreateBucketCommand({ Bucket: 'bench-direct' }));

  const classes: Array<{ label: string; size: number; objects: number }> = [{ label: '1 MiB', size: MiB, objects: settings.smallCount }];
  if (!flags['skip-large']) classes.push({ label: `${settings.largeMib} MiB`, size: settings.largeMib * MiB, objects: LARGE_COUNT });
  const results: Measurement[] = [];
  const rssBefore = residentKib(stack.proxyPid());
  for (const { label, size, objects } of classes) {
    const body = nodeCrypto.randomBytes(size);
    // One unmeasured round each first: connections, the key service's first data key, JIT.
    await putThenGet(direct, 'bench-direct', 'warm', body.subarray(0, Math.min(size, MiB)), 1, `${label} warm-up`, 'direct');
    await putThenGet(proxy, 'bench', 'warm', body.subarray(0, Math.min(size, MiB)), 1, `${label} warm-up`, 'proxy');
    console.log(`  ${label} x ${count(objects)}: direct ...`);
    results.push(...await putThenGet(direct, 'bench-direct', label.replace(' ', ''), body, objects, label, 'direct'));
    console.log(`  ${label} x ${count(objects)}: through the proxy ...`);
    results.push(...await putThenGet(proxy, 'bench', label.replace(' ', ''), body, objects, label, 'proxy'));
  }
  const peak = peakResidentKib(stack.proxyPid());

  console.log('');
  printTable(['objects', 'path', 'op', 'count', 'seconds', 'MiB/s', 'ops/s'], results.map((row) => [row.objects, row.path, row.op,
    count(row.count), fixed(row.seconds, 2), fixed(row.bytes / MiB / row.seconds, 1), fixed(row.count / row.seconds, 1)]), { leftColumns: 3 });
  console.log('');
  const ratios: string[][] = [];
  for (const { label } of classes) {
    for (const op of ['PUT', 'GET'] as const) {
      const find = (path: Measurement['path']) => results.find((row) => row.objects === label && row.op === op && row.path === path);
      const [viaDirect, viaProxy] = [find('direct'), find('proxy')];
      if (!viaDirect || !viaProxy) continue;
      const rate = (row: Measurement) => row.bytes / MiB / row.seconds;
      ratios.push([label, op, fixed(rate(viaProxy), 1), fixed(rate(viaDirect), 1), fixed(rate(viaProxy) / rate(viaDirect), 2)]);
    }
  }
  printTable(['objects', 'op', 'proxy MiB/s', 'direct MiB/s', 'proxy/direct'], ratios, { leftColumns: 2 });
  const mib = (kib: number | undefined) => (kib === undefined ? '-' : `${fixed(kib / 1024, 0)} MiB`);
  console.log(`\n  proxy peak RSS (VmHWM): ${mib(peak)} (resident before the measured rounds: ${mib(rssBefore)}); `
    + `largest object ${classes.at(-1)!.label}`);
}

try {
  await main();
} catch (error) {
  problems.push(errorText(error));
} finally {
  await lifecycle.shutdown();
}
printProblemBanner('These figures are not a valid measurement:', problems);
process.exitCode = problems.length ? 1 : 0;
