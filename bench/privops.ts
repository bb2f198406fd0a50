// Sealed privileged operations on one host: (a) sealed system.snapshot round trips per second through a real agent's
// socket (requests signed ahead of time), against the socket's plain status call in the same run; (b) the sealing
// throughput of a streamed 1 GiB process.dump (a child process holding 1 GiB) delivered through the socket to a file,
// against plain AES-256-GCM and the bare HPKE stream over the same amount of bytes in the same run, with the agent's peak RSS.
//
// (c) a campaign over N simulated hosts (default 200; the agent's own fleet client, executor and relay worker, in this
// process) end to end: the CLI starts it, the server signs and relays, every host seals its snapshot, the CLI collects
// them; then every result opened; against the one-host socket round trips of (a).
//
//   npm run bench:privops -- [--requests N] [--concurrency C] [--dump-mib M] [--skip-dump] [--campaign-hosts N] [--skip-campaign]
//
// Loopback only. Exit status 1 when a figure is not a valid measurement (an error, a result that does not open).
// Must never leave a server, an agent, the memory-holding child or a temporary directory behind.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { makeTempDir, repoRoot, trustplaneBin, type TestServer } from '../test/helpers/server.ts';
import { run } from '../test/helpers/exec.ts';
import { loadPrivopTrust } from '../src/agent/privops/trust.ts';
import { openSealedResultFile } from '../src/cli/sealed-results.ts';
import { createLogger } from '../src/shared/log.ts';
import { startCampaignHosts } from './lib/campaign-hosts.ts';
import { cliEnv, trustplane, trustplaneJson } from '../test/helpers/cli.ts';
import { startTestAgent } from '../test/helpers/agent.ts';
import { AgentClient } from '../src/clients/agent.ts';
import {
  aesGcmEncrypt, canonicalJson, HpkeStreamSealer, randomBytes, resultPrivateKeyFromPem, resultPublicKeyFromPem, signDetachedJws,
} from '../src/shared/crypto/index.ts';
import { PRIVOP_JWS_TYPE, type PrivopRequest, type PrivopRequestFile } from '../src/shared/privop-wire.ts';
import { openSealedPrivopResult, verifySealedPrivopResult } from '../src/shared/privop-result-stream.ts';
import { errorText, forEachBounded } from './lib/concurrency.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { summarize } from './lib/percentiles.ts';
import { ownCpuSeconds, processCpuSeconds } from './lib/process-cpu.ts';
import { peakResidentKib } from './lib/process-memory.ts';
import { count, fixed, printProblemBanner, printTable } from './lib/report.ts';
import { positiveNumber } from './lib/settings.ts';

const MiB = 1024 * 1024;
const CHUNK = MiB;

const { values: flags } = parseArgs({ options: {
  requests: { type: 'string', default: '1000' },
  concurrency: { type: 'string', default: '4' },
  'dump-mib': { type: 'string', default: '1024' },
  'skip-dump': { type: 'boolean', default: false },
  'campaign-hosts': { type: 'string', default: '200' },
  'skip-campaign': { type: 'boolean', default: false },
} });
const settings = {
  requests: positiveNumber('requests', flags.requests, true),
  concurrency: positiveNumber('concurrency', flags.concurrency, true),
  dumpMib: positiveNumber('dump-mib', flags['dump-mib'], true),
  campaignHosts: positiveNumber('campaign-hosts', flags['campaign-hosts'], true),
};
const problems: string[] = [];
const lifecycle = new BenchLifecycle();

/** A Writable that keeps only the byte count (or the bytes, when asked). */
function sink(keep = false): Writable & { bytes: number; kept: Buffer[] } {
  const received = { bytes: 0, kept: [] as Buffer[] };
  const writable = new Writable({ write(chunk: Buffer, _encoding, done) { received.bytes += chunk.length; if (keep) received.kept.push(chunk); done(); } });
  return Object.defineProperties(writable, { bytes: { get: () => received.bytes }, kept: { get: () => received.kept } }) as Writable & typeof received;
}

async function main(): Promise<void> {
  const server = await lifecycle.startTrustplane('trustplane-bench-privops-', {});
  const env = cliEnv(server);
  const dir = makeTempDir('trustplane-bench-privops-files-');
  lifecycle.lastResort(() => rmSync(dir, { recursive: true, force: true }));
  lifecycle.defer(() => rmSync(dir, { recursive: true, force: true }));
  await trustplane(['class', 'create', 'bench-privops'], { env });
  const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'bench-privops', '--uses', '1', '--json'], { env })).Token;
  const keys = join(dir, 'keys');
  await trustplane(['privop', 'keygen', '--out', keys], { env });
  writeFileSync(join(dir, 'trust.json'), JSON.stringify({ signers: [{ publicKeyFile: 'keys/signer.pub', operations: ['*'], name: 'bench' }] }));
  const agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'bench-privops-host', extraArgs: ['--privop-trust', join(dir, 'trust.json')] });
  lifecycle.lastResort(() => agent.process.kill('SIGKILL'));
  lifecycle.defer(async () => { await agent.stop(); });
  const client = new AgentClient(agent.socketPath);
  const signerPem = readFileSync(join(keys, 'signer.key'), 'utf8');
  const resultKey = resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8'));
  const sign = async (operation: string, parameters: PrivopRequest['Parameters']): Promise<PrivopRequestFile> => {
    const now = Date.now();
    const request: PrivopRequest = { Version: 1, Operation: operation, Parameters: parameters, Target: { HostId: agent.hostId },
      NotBefore: new Date(now - 60_000).toISOString(), NotAfter: new Date(now + 3_600_000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
      Requester: 'bench', ResultKey: resultKey.toString('base64url') };
    return { Request: request, Signature: await signDetachedJws(signerPem, canonicalJson(request), PRIVOP_JWS_TYPE) };
  };

  // (a) Round trips: every request signed before the clock starts.
  console.log(`trustplane bench: privileged operations on one host (agent pid ${agent.process.pid})`);
  const requests = await Promise.all(Array.from({ length: settings.requests }, () => sign('system.snapshot', {})));
  const roundTrips: Array<{ what: string; latencies: number[]; seconds: number; errors: number }> = [];
  const measure = async (what: string, items: number, call: (index: number) => Promise<void>) => {
    const latencies: number[] = [];
    let errors = 0;
    const started = performance.now();
    await forEachBounded(Array.from({ length: items }, (_, index) => index), settings.concurrency, async (index) => {
      const begun = performance.now();
      try {
        await call(index);
        latencies.push(performance.now() - begun);
      } catch (error) {
        errors += 1;
        if (errors === 1) problems.push(`${what}: ${errorText(error)}`);
      }
    });
    roundTrips.push({ what, latencies, seconds: (performance.now() - started) / 1000, errors });
  };
  await measure('socket status call (baseline)', settings.requests, async () => { await client.call('status'); });
  const sealedSizes: number[] = [];
  await measure('sealed system.snapshot', settings.requests, async (index) => {
    const received = sink(index === 0);
    await client.callToStream('PrivilegedOperation', { Request: requests[index] }, received);
    sealedSizes.push(received.bytes);
    if (index === 0) await checkOpens(Buffer.concat(received.kept), keys);
  });
  console.log(`\n(a) round trips through the agent socket, concurrency ${settings.concurrency}, ${count(settings.requests)} requests each`);
  printTable(['call', 'req/s', 'p50 ms', 'p99 ms', 'errors'], roundTrips.map((row) => {
    const summary = summarize(row.latencies);
    return [row.what, fixed(row.latencies.length / row.seconds, 0), fixed(summary.p50, 2), fixed(summary.p99, 2), String(row.errors)];
  }));
  const [baseline, sealed] = roundTrips;
  console.log(`  sealed round trip / status call: ${fixed((baseline!.latencies.length / baseline!.seconds) / (sealed!.latencies.length / sealed!.seconds), 1)}x slower; `
    + `sealed result ${count(summarize(sealedSizes).p50)} bytes`);

  if (!flags['skip-dump']) await dumpBench(client, sign, agent.process.pid!, dir);
  if (!flags['skip-campaign']) await campaignBench(server, env, dir, keys, sealed!.latencies.length / sealed!.seconds);
}

async function campaignBench(server: TestServer, env: NodeJS.ProcessEnv, dir: string, keys: string, directPerSecond: number): Promise<void> {
  const hostCount = settings.campaignHosts;
  await trustplane(['class', 'create', 'bench-campaign'], { env });
  const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'bench-campaign', '--uses', String(hostCount), '--json'],
    { env })).Token;
  writeFileSync(join(dir, 'campaign-trust.json'), JSON.stringify({ server: { operations: ['system.snapshot'] } }));
  const trust = await loadPrivopTrust(join(dir, 'campaign-trust.json'));
  console.log(`\n(c) a campaign over ${count(hostCount)} simulated hosts: enrolling them`);
  const enrolStarted = performance.now();
  let lastLine = 0;
  const hosts = await startCampaignHosts({ serverUrl: server.url, joinToken, count: hostCount, dir: join(dir, 'hosts'), trust,
    logger: createLogger({ level: 'silent' }), onEnrolled: (done) => {
      if (performance.now() - lastLine > 5000 || done === hostCount) {
        console.log(`  ${count(done)}/${count(hostCount)} enrolled`);
        lastLine = performance.now();
      }
    } });
  lifecycle.defer(() => { for (const host of hosts) host.stop(); });
  const connectedBy = Date.now() + 120_000;
  while (hosts.some((host) => !host.connected())) {
    if (Date.now() > connectedBy) throw new Error(`${hosts.filter((host) => !host.connected()).length} simulated host(s) did not connect within 2 minutes`);
    await delay(100);
  }
  const enrolSeconds = (performance.now() - enrolStarted) / 1000;

  const out = join(dir, 'campaign');
  const serverCpuBefore = processCpuSeconds(server.process.pid);
  const hostsCpuBefore = ownCpuSeconds();
  const started = performance.now();
  const ran = await run(process.execPath, [trustplaneBin, 'privop', 'campaign', '--class', 'bench-campaign', '--op', 'system.snapshot',
    '--result-key', join(keys, 'result.pub'), '--out', out, '--wait', '5m'], { env, cwd: repoRoot });
  const campaignSeconds = (performance.now() - started) / 1000;
  const serverCpu = (processCpuSeconds(server.process.pid) ?? NaN) - (serverCpuBefore ?? NaN);
  const hostsCpu = ownCpuSeconds() - hostsCpuBefore;
  if (ran.code !== 0) problems.push(`the campaign did not complete on every host: ${ran.stderr.trim().split('\n').pop() ?? ''}`);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { Completed: string[] };

  const pair = resultPrivateKeyFromPem(readFileSync(join(keys, 'result.key'), 'utf8'));
  const openStarted = performance.now();
  let opened = 0;
  for (const hostId of summary.Completed) {
    const plaintext = await openSealedResultFile(join(out, `${hostId}.sealed`), { privateKey: pair.privateKey, publicKey: pair.publicKey });
    if (plaintext.HostId === hostId && plaintext.Operation === 'system.snapshot' && !plaintext.Error) opened += 1;
  }
  const openSeconds = (performance.now() - openStarted) / 1000;
  if (opened !== hostCount) problems.push(`${opened} of ${hostCount} campaign results opened to their host's snapshot`);
  printTable(['step', 'hosts', 'seconds', 'hosts/s'], [
    ['enrol and connect the simulated hosts (not timed below)', count(hostCount), fixed(enrolSeconds, 1), fixed(hostCount / enrolSeconds, 0)],
    ['campaign end to end (CLI start -> sign -> relay -> seal -> upload -> download)', count(summary.Completed.length), fixed(campaignSeconds, 2),
      fixed(summary.Completed.length / campaignSeconds, 0)],
    ['open every result (verify host signature, decrypt)', count(opened), fixed(openSeconds, 2), fixed(opened / openSeconds, 0)],
  ]);
  console.log(`  campaign throughput / one host's sealed socket round trips (a): ${fixed((summary.Completed.length / campaignSeconds) / directPerSecond, 2)}x `
    + `(${fixed(directPerSecond, 0)}/s direct)`);
  console.log(`  CPU during the campaign: server ${fixed(serverCpu, 1)} s, simulated hosts (this process) ${fixed(hostsCpu, 1)} s, over ${fixed(campaignSeconds, 1)} s`);
}

/** Opens one sealed result in process, as `privop open` does, so the figures are of results that open. */
async function checkOpens(sealed: Buffer, keys: string): Promise<void> {
  const pair = resultPrivateKeyFromPem(readFileSync(join(keys, 'result.key'), 'utf8'));
  const source = async function* () { yield sealed; };
  const verified = await verifySealedPrivopResult(source(), { publicKey: pair.publicKey });
  const opened = await openSealedPrivopResult(source(), { verified, privateKey: pair.privateKey, onContent: async () => {} });
  if (opened.Operation !== 'system.snapshot' || opened.Error) problems.push('a sealed system.snapshot did not open to its result');
}

async function dumpBench(client: AgentClient, sign: (operation: string, parameters: PrivopRequest['Parameters']) => Promise<PrivopRequestFile>,
  agentPid: number, dir: string): Promise<void> {
  const held = settings.dumpMib * MiB;
  // A child holding the bytes, every page touched, until its stdin closes.
  const holder = spawn(process.execPath, ['-e', `const held = Buffer.alloc(${held}, 0x5a); process.stdout.write('ready\\n');
    process.stdin.on('data', () => {}); process.stdin.on('end', () => { held[0] = 1; process.exit(0); });`], { stdio: ['pipe', 'pipe', 'inherit'] });
  lifecycle.lastResort(() => holder.kill('SIGKILL'));
  lifecycle.defer(() => { holder.kill(); });
  await once(holder.stdout!, 'data');
  const request = await sign('process.dump', { pid: holder.pid!, maxBytes: held + 256 * MiB });
  const peakBefore = peakResidentKib(agentPid);
  const out = join(dir, 'dump.sealed');
  const agentCpuBefore = processCpuSeconds(agentPid);
  const ownCpuBefore = ownCpuSeconds();
  const started = performance.now();
  await client.callToStream('PrivilegedOperation', { Request: request }, createWriteStream(out, { highWaterMark: 4 * MiB }));
  const dumpSeconds = (performance.now() - started) / 1000;
  const agentCpu = (processCpuSeconds(agentPid) ?? NaN) - (agentCpuBefore ?? NaN);
  const courierCpu = ownCpuSeconds() - ownCpuBefore;
  const sealedBytes = statSync(out).size;
  const peakAfter = peakResidentKib(agentPid);
  rmSync(out, { force: true });
  holder.stdin!.end();
  if (sealedBytes < held) problems.push(`the sealed dump holds ${sealedBytes} bytes, less than the ${held} held`);

  // The same amount of bytes through plain AES-256-GCM (node:crypto, 1 MiB messages), and through the bare HPKE stream.
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  const chunks = Math.ceil(held / CHUNK);
  const key = randomBytes(32);
  const gcmStarted = performance.now();
  for (let index = 0; index < chunks; index += 1) {
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(index, 8);
    aesGcmEncrypt(key, nonce, chunk);
  }
  const gcmSeconds = (performance.now() - gcmStarted) / 1000;
  const sealer = await HpkeStreamSealer.create(randomBytes(32), 'bench', Buffer.alloc(32));
  const hpkeStarted = performance.now();
  for (let index = 0; index < chunks; index += 1) await sealer.seal(chunk, index === chunks - 1);
  const hpkeSeconds = (performance.now() - hpkeStarted) / 1000;

  const mibps = (bytes: number, seconds: number) => bytes / MiB / seconds;
  const dumpRate = mibps(sealedBytes, dumpSeconds);
  console.log(`\n(b) a ${settings.dumpMib} MiB process.dump streamed through the socket to a file, against the same amount of bytes sealed in process`);
  printTable(['pipeline', 'MiB', 'seconds', 'MiB/s', 'vs AES-GCM'], [
    ['process.dump: /proc/PID/mem -> HPKE stream -> socket -> file', count(sealedBytes / MiB), fixed(dumpSeconds, 2), fixed(dumpRate, 0),
      fixed(dumpRate / mibps(held, gcmSeconds), 2)],
    ['HPKE stream seal alone (@hpke/core context, 1 MiB chunks)', count(held / MiB), fixed(hpkeSeconds, 2), fixed(mibps(held, hpkeSeconds), 0),
      fixed(mibps(held, hpkeSeconds) / mibps(held, gcmSeconds), 2)],
    ['plain AES-256-GCM (node:crypto, 1 MiB messages)', count(held / MiB), fixed(gcmSeconds, 2), fixed(mibps(held, gcmSeconds), 0), '1.00'],
  ]);
  const kib = (value: number | undefined) => (value === undefined ? '-' : `${count(value / 1024)} MiB`);
  console.log(`  CPU during the dump: agent ${fixed(agentCpu, 1)} s, courier (this process) ${fixed(courierCpu, 1)} s, over ${fixed(dumpSeconds, 1)} s`);
  console.log(`  agent peak RSS: ${kib(peakBefore)} before the dump, ${kib(peakAfter)} after (the dump: ${settings.dumpMib} MiB)`);
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
