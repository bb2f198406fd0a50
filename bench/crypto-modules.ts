// What the crypto module costs: wraps and unwraps per second of the software module and of the PKCS#11 module
// over SoftHSM2, in this process; then KMS Decrypt requests per second through real servers with each module,
// with the customer-key cache on (the default, --key-cache-ttl 60) and off (--key-cache-ttl 0), over 1 key and
// over many keys in turn.
//
//   node --import tsx bench/crypto-modules.ts [--seconds N] [--module-seconds N] [--warmup S] [--rounds R]
//                                             [--concurrency C] [--keys 1,1000] [--no-audit] [--no-kms] [--no-pkcs11] [--json]
//
//   --seconds N         seconds per Decrypt measurement (default 4)
//   --module-seconds N  seconds per in-process wrap/unwrap figure (default 1)
//   --warmup S          unrecorded Decrypt seconds before each measurement (default 1)
//   --rounds R          rounds, interleaved across servers (order reversed each round); the fastest kept (default 2)
//   --concurrency C     Decrypt requests in flight (default 32, as bench/kms.ts)
//   --keys LIST         distinct keys decrypted round-robin, one measurement per count (default 1,1000)
//   --no-audit          servers with TRUSTPLANE_AUDIT=off (default: auditing on, as bench/kms.ts)
//   --no-kms            the in-process figures only, no servers;  --no-pkcs11  the software module only
//
// Must never leave a server, a SoftHSM2 token or a temporary home behind, even on Ctrl-C; any failed
// request or check fails the run (exit 1), a slow figure never does.
import os from 'node:os';
import { parseArgs } from 'node:util';
import {
  DEFAULT_KEY_CACHE_ENTRIES, DEFAULT_KEY_CACHE_TTL_MS, Pkcs11CryptoModule, randomBytes, SoftwareCryptoModule, type CryptoModule,
} from '../src/shared/crypto/index.ts';
import { createSoftHsmToken, locateSoftHsm, type SoftHsmToken } from '../test/helpers/softhsm.ts';
import type { TestServer } from '../test/helpers/server.ts';
import { MemoryDomainKeyStore } from '../test/helpers/memory-domain-key-store.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { mergeReasons, runLoad, type ErrorReasons, type LoadResult, type Outcome } from './lib/load-generator.ts';
import { runLoadWithCpu } from './lib/process-cpu.ts';
import { count, fixed, printProblemBanner, printTable } from './lib/report.ts';
import { createSymmetricKey, judgeReply, keepAliveAgent, SignedJsonClient } from './lib/signed-json-client.ts';
import {
  AUDIT_OFF_NOTICE, concurrencyFlag, DISTURBED_OTHER_CPU_PERCENT, MAX_REQUESTS_PER_MEASUREMENT, positiveNumber, REQUEST_TIMEOUT_MS,
  serverLogProblems, warmupFlag,
} from './lib/settings.ts';
/** Requests in flight while creating keys and ciphertexts (unmeasured set-up). */
const SETUP_CONCURRENCY = 16;
/** The server's default --key-cache-ttl and --key-cache-size, the "cache on" configuration. */
const DEFAULT_CACHE_TTL_SECONDS = DEFAULT_KEY_CACHE_TTL_MS / 1000;
const DEFAULT_CACHE_SIZE = DEFAULT_KEY_CACHE_ENTRIES;
/** Set-up creates up to 1000s of keys; the default 500/s management limit would throttle it (Decrypt is not affected). */
const SETUP_RATE_LIMIT = 'management=100000';
/** Warnings every bench server logs by design: dev mode, audit off, and a PKCS#11 server before and at its init. */
const EXPECTED_NOTICES = ['DEV MODE', AUDIT_OFF_NOTICE, 'crypto module is not initialised', 'crypto module initialised'];

type ModuleKind = 'software' | 'pkcs11';

interface Settings {
  seconds: number;
  moduleSeconds: number;
  warmupSeconds: number;
  rounds: number;
  concurrency: number;
  keyCounts: number[];
  audit: boolean;
  kms: boolean;
  pkcs11: boolean;
  json: boolean;
}

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '4' }, 'module-seconds': { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' }, rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '32' }, keys: { type: 'string', default: '1,1000' },
    'no-audit': { type: 'boolean', default: false }, 'no-kms': { type: 'boolean', default: false },
    'no-pkcs11': { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
  } });
  const concurrency = concurrencyFlag(values.concurrency);
  const keyCounts = [...new Set(values.keys.split(',').map((text) => positiveNumber('keys', text.trim(), true)))].sort((a, b) => a - b);
  if (keyCounts.length === 0 || keyCounts.at(-1)! > 20_000) throw new Error('--keys takes 1 to 20000 keys per measurement');
  return {
    seconds: positiveNumber('seconds', values.seconds, false),
    moduleSeconds: positiveNumber('module-seconds', values['module-seconds'], false),
    warmupSeconds: warmupFlag(values.warmup),
    rounds: Math.min(20, positiveNumber('rounds', values.rounds, true)),
    concurrency, keyCounts, audit: !values['no-audit'], kms: !values['no-kms'], pkcs11: !values['no-pkcs11'], json: values.json,
  };
}

function progress(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ---- part 1: the modules themselves, in this process ------------------------------------------------

interface ModuleFigure {
  module: ModuleKind;
  operation: 'wrap' | 'unwrap';
  opsPerSecond: number;
  microsPerOp: number;
  ops: number;
}

/** Operations between yields to the event loop, so Ctrl-C is seen during a measurement. */
const MODULE_BATCH = 256;

/** Calls `operation` one at a time until the time is up; the best of `rounds`, since noise only ever slows things down. */
async function measureModule(module: ModuleKind, operation: ModuleFigure['operation'], seconds: number, rounds: number,
  run: () => Promise<void>): Promise<ModuleFigure> {
  for (let i = 0; i < 2_000; i += 1) await run(); // warm-up: let the JIT settle before timing
  let best: ModuleFigure | undefined;
  for (let round = 0; round < rounds; round += 1) {
    const budget = BigInt(Math.round(seconds * 1e9));
    const start = process.hrtime.bigint();
    let ops = 0;
    let elapsed = 0n;
    do {
      for (let i = 0; i < MODULE_BATCH; i += 1) await run();
      ops += MODULE_BATCH;
      elapsed = process.hrtime.bigint() - start;
      await new Promise((resolve) => setImmediate(resolve));
    } while (elapsed < budget);
    const ns = Number(elapsed);
    const figure = { module, operation, opsPerSecond: ops / (ns / 1e9), microsPerOp: ns / 1000 / ops, ops };
    if (best === undefined || figure.microsPerOp < best.microsPerOp) best = figure;
  }
  return best!;
}

/** Wraps and unwraps a 32-byte secret (a customer key's size) with a customer-key-like AAD; checks the round trip first. */
async function measureWrapUnwrap(kind: ModuleKind, module: CryptoModule, settings: Settings): Promise<ModuleFigure[]> {
  const secret = randomBytes(32);
  const aad = Buffer.from('trustplane/customer-key/v1/1234abcd-12ab-34cd-56ef-1234567890ab/1/SYMMETRIC_DEFAULT');
  const wrapped = await module.wrap(secret, aad);
  const opened = await module.unwrap(wrapped, aad);
  if (!opened.equals(secret)) throw new Error(`${kind}: unwrap did not return the wrapped secret`);
  opened.fill(0);
  progress(`${kind} module: wrap ...`);
  const wrap = await measureModule(kind, 'wrap', settings.moduleSeconds, settings.rounds, async () => { await module.wrap(secret, aad); });
  progress(`${kind} module: unwrap ...`);
  const unwrap = await measureModule(kind, 'unwrap', settings.moduleSeconds, settings.rounds, async () => {
    (await module.unwrap(wrapped, aad)).fill(0);
  });
  secret.fill(0);
  return [wrap, unwrap];
}

async function measureModules(settings: Settings, lifecycle: BenchLifecycle, softHsmVersion: string | undefined): Promise<ModuleFigure[]> {
  const software = new SoftwareCryptoModule(new MemoryDomainKeyStore());
  const rootKey = randomBytes(32);
  await software.initialize(rootKey);
  rootKey.fill(0);
  const figures = await measureWrapUnwrap('software', software, settings);
  software.seal();

  if (softHsmVersion !== undefined) {
    const token = await startToken(lifecycle);
    // The library reads SOFTHSM2_CONF at C_Initialize, once per process: this process only ever uses this token.
    process.env.SOFTHSM2_CONF = token.conf;
    const pkcs11 = new Pkcs11CryptoModule({ store: new MemoryDomainKeyStore(), libraryPath: token.libraryPath, tokenLabel: token.label,
      pin: token.pin });
    lifecycle.defer(() => pkcs11.dispose());
    await pkcs11.open();
    await pkcs11.initialize();
    figures.push(...await measureWrapUnwrap('pkcs11', pkcs11, settings));
    pkcs11.dispose();
  }
  return figures;
}

function printModuleFigures(figures: ModuleFigure[], softHsmVersion: string | undefined): void {
  console.log('\nin-process crypto module, one call at a time: 32-byte secret, AES-256-GCM with a 74-byte AAD' +
    `${softHsmVersion ? `; SoftHSM2 ${softHsmVersion} (file object store)` : ''}`);
  const software = (operation: string) => figures.find((entry) => entry.module === 'software' && entry.operation === operation);
  printTable(['module', 'operation', 'ops/s', 'µs/op', 'vs software'], figures.map((entry) => {
    const base = software(entry.operation);
    return [entry.module, entry.operation, count(entry.opsPerSecond), fixed(entry.microsPerOp, 2),
      entry.module === 'software' || !base ? 'baseline' : `${(entry.opsPerSecond / base.opsPerSecond).toFixed(2)}x`];
  }), { leftColumns: 2 });
}

// ---- part 2: KMS Decrypt through real servers ---------------------------------------------------------

interface ServerConfig {
  label: string;
  module: ModuleKind;
  cache: boolean;
}

interface Sample {
  ciphertext: string;
  plaintext: string;
  context: Record<string, string>;
}

interface KmsTarget extends ServerConfig {
  server: TestServer;
  client: SignedJsonClient;
  samples: Sample[];
}

interface DecryptRound {
  round: number;
  label: string;
  keys: number;
  result: LoadResult;
  /** Requests (ok or not) and errors of the unmeasured priming pass and warm-up before it. */
  warmupRequests: number;
  warmupErrors: number;
  errorReasons: ErrorReasons;
  serverCpuMicrosPerRequest?: number;
  serverCpuPercent?: number;
  clientCpuPercent: number;
  otherCpuPercent?: number;
}

interface DecryptFigure extends DecryptRound {
  module: ModuleKind;
  cache: boolean;
  /** Errors over every round, warm-ups included. */
  totalErrors: number;
  totalRequests: number;
}

function configurations(settings: Settings, softHsm: boolean): ServerConfig[] {
  const all: ServerConfig[] = [
    { label: 'software, cache on', module: 'software', cache: true },
    { label: 'software, cache off', module: 'software', cache: false },
    { label: 'pkcs11, cache on', module: 'pkcs11', cache: true },
    { label: 'pkcs11, cache off', module: 'pkcs11', cache: false },
  ];
  return all.filter((config) => config.module === 'software' || (settings.pkcs11 && softHsm));
}

async function startToken(lifecycle: BenchLifecycle): Promise<SoftHsmToken> {
  lifecycle.installSignalHandlers();
  const token = await createSoftHsmToken({ label: `trustplane-bench-${randomBytes(4).toString('hex')}` });
  lifecycle.lastResort(() => token.dispose());
  lifecycle.defer(() => token.dispose());
  return token;
}

async function postJson(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

/** Starts the server for one configuration; a PKCS#11 one gets its own token and is initialised over the operator API. */
async function startServer(config: ServerConfig, settings: Settings, lifecycle: BenchLifecycle): Promise<{ server: TestServer;
  credentials: { accessKeyId: string; secretAccessKey: string } }> {
  // Explicit both ways, so a TRUSTPLANE_AUDIT inherited from the caller's shell cannot change what the output says.
  const env: Record<string, string> = { TRUSTPLANE_AUDIT: settings.audit ? 'on' : 'off' };
  const args = ['--key-cache-ttl', String(config.cache ? DEFAULT_CACHE_TTL_SECONDS : 0), '--rate-limit', SETUP_RATE_LIMIT];
  const prefix = `trustplane-bench-${config.module}-${config.cache ? 'cached' : 'uncached'}-`;
  if (config.module === 'software') {
    const server = await lifecycle.startTrustplane(prefix, env, { extraArgs: args });
    return { server, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } };
  }
  const token = await startToken(lifecycle);
  const server = await lifecycle.startTrustplane(prefix, { ...env, ...token.env, TRUSTPLANE_PKCS11_PIN: token.pin }, { dev: false,
    extraArgs: [...args, '--seal', 'pkcs11', '--pkcs11-module', token.libraryPath, '--pkcs11-token', token.label] });
  const init = await postJson(`${server.url}/v1/operator/init`, {});
  const { AccessKeyId: accessKeyId, SecretAccessKey: secretAccessKey } = init.body;
  if (init.status !== 200 || typeof accessKeyId !== 'string' || typeof secretAccessKey !== 'string') {
    throw new Error(`${config.label}: operator init failed: ${init.status} ${String(init.body.__type ?? '')}`);
  }
  const health = await fetch(`${server.url}/health`);
  await health.arrayBuffer();
  if (health.status !== 200) throw new Error(`${config.label}: /health answered ${health.status} after init`);
  return { server, credentials: { accessKeyId, secretAccessKey } };
}

/** Runs `task(0..total-1)` with `concurrency` in flight; the first failure stops the rest. */
async function forEachConcurrently(total: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}

/** One symmetric key per sample and one ciphertext under each, with its own encryption context. */
async function prepareTarget(config: ServerConfig, settings: Settings, lifecycle: BenchLifecycle): Promise<KmsTarget> {
  progress(`starting the ${config.label} server ...`);
  const { server, credentials } = await startServer(config, settings, lifecycle);
  const agent = keepAliveAgent(Math.max(settings.concurrency, SETUP_CONCURRENCY));
  lifecycle.defer(() => agent.destroy());
  const client = new SignedJsonClient({ endpoint: server.url, region: server.region, service: 'kms', credentials, agent,
    timeoutMs: REQUEST_TIMEOUT_MS });
  const keys = settings.keyCounts.at(-1)!;
  progress(`  creating ${keys} key(s) and a ciphertext under each ...`);
  const samples: Sample[] = new Array(keys);
  await forEachConcurrently(keys, SETUP_CONCURRENCY, async (index) => {
    const keyId = await createSymmetricKey(client, `bench/crypto-modules.ts ${index}`, config.label);
    const plaintext = randomBytes(32).toString('base64');
    const context = { purpose: 'bench', object: `object-${index}` };
    const made = await client.call('TrentService.Encrypt', { KeyId: keyId, Plaintext: plaintext, EncryptionContext: context });
    if (made.status !== 200 || typeof made.body.CiphertextBlob !== 'string') {
      throw new Error(`${config.label}: Encrypt failed: ${made.status} ${JSON.stringify(made.body)}`);
    }
    samples[index] = { ciphertext: made.body.CiphertextBlob, plaintext, context };
  });
  return { ...config, server, client, samples };
}

function decryptIssuer(target: KmsTarget, keys: number): () => Promise<Outcome> {
  let next = 0;
  return async () => {
    const sample = target.samples[next++ % keys];
    return judgeReply(await target.client.call('TrentService.Decrypt', { CiphertextBlob: sample.ciphertext, EncryptionContext: sample.context }),
      (body) => body.Plaintext === sample.plaintext);
  };
}

async function measureDecrypt(target: KmsTarget, keys: number, round: number, settings: Settings): Promise<DecryptRound> {
  const issue = decryptIssuer(target, keys);
  const limits = { concurrency: settings.concurrency, warmupMs: 0, maxRequests: MAX_REQUESTS_PER_MEASUREMENT };
  // One pass over every key first, so with the cache on the measured phase sees the steady state whatever the warm-up.
  const priming = await runLoad(issue, { ...limits, durationMs: 3_600_000, maxRequests: keys });
  const warmup = settings.warmupSeconds > 0 ? await runLoad(issue, { ...limits, durationMs: settings.warmupSeconds * 1000 }) : undefined;
  const { result, serverCpuMicrosPerRequest, serverCpuPercent, clientCpuPercent, otherCpuPercent } =
    await runLoadWithCpu(issue, { ...limits, durationMs: settings.seconds * 1000 }, target.server.process.pid);
  return {
    round, label: target.label, keys, result,
    warmupRequests: priming.completed + (warmup?.completed ?? 0), warmupErrors: priming.errors + (warmup?.errors ?? 0),
    errorReasons: mergeReasons([priming, warmup, result].flatMap((phase) => (phase ? [phase.errorReasons] : []))),
    serverCpuMicrosPerRequest, serverCpuPercent, clientCpuPercent, otherCpuPercent,
  };
}

/** The fastest round of one configuration and key count, with every round's requests and errors added in. */
function keepFastest(config: ServerConfig, rounds: DecryptRound[]): DecryptFigure {
  const fastest = rounds.reduce((best, entry) => (entry.result.requestsPerSecond > best.result.requestsPerSecond ? entry : best));
  return {
    ...fastest, module: config.module, cache: config.cache, errorReasons: mergeReasons(rounds.map((entry) => entry.errorReasons)),
    totalErrors: rounds.reduce((sum, entry) => sum + entry.result.errors + entry.warmupErrors, 0),
    totalRequests: rounds.reduce((sum, entry) => sum + entry.result.completed + entry.warmupRequests, 0),
  };
}

function printDecryptRounds(rounds: DecryptRound[], settings: Settings): void {
  const cpus = os.cpus();
  console.log(`\nKMS Decrypt over 127.0.0.1, SigV4-signed (bench/lib/signed-json-client), 32-byte plaintexts, 2-pair encryption context;`);
  console.log(`  concurrency ${settings.concurrency}, ${settings.seconds} s per measurement after one pass over the keys and ${settings.warmupSeconds} s ` +
    `warm-up, ${settings.rounds} interleaved round(s), one server under load at a time; ${cpus.length} CPUs ` +
    `(${cpus[0]?.model.trim() ?? 'unknown'}) shared by this load generator and the server`);
  console.log(`  auditing ${settings.audit ? 'ON (TRUSTPLANE_AUDIT=on: every Decrypt writes an audit record, as in bench/kms.ts)' : 'OFF (TRUSTPLANE_AUDIT=off)'}; ` +
    `cache on = --key-cache-ttl ${DEFAULT_CACHE_TTL_SECONDS} --key-cache-size ${DEFAULT_CACHE_SIZE} (the defaults), cache off = --key-cache-ttl 0; ` +
    `every server started with --rate-limit ${SETUP_RATE_LIMIT} for the key set-up`);
  printTable(['round', 'configuration', 'keys', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU/req', 'server CPU', 'client CPU', 'other'],
    rounds.map((entry) => {
      const errors = entry.result.errors + entry.warmupErrors;
      return [String(entry.round), entry.label, String(entry.keys), count(entry.result.requestsPerSecond), fixed(entry.result.p50Ms, 2),
        fixed(entry.result.p99Ms, 2), errors === 0 ? '0' : `${errors} !!!`, `${fixed(entry.serverCpuMicrosPerRequest, 0)} µs`,
        `${fixed(entry.serverCpuPercent, 0)}%`, `${fixed(entry.clientCpuPercent, 0)}%`,
        `${fixed(entry.otherCpuPercent, 0)}%${(entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`];
    }), { leftColumns: 2 });
  console.log('  server CPU/req: CPU time of the server process over the measured phase / requests in it; % columns are of one core;');
  console.log('  other: every other process on the machine (and steal). Errors include the priming pass and warm-up.');
}

interface CacheGain {
  module: ModuleKind;
  keys: number;
  on: DecryptFigure;
  off: DecryptFigure;
  /** cache-on / cache-off requests per second. */
  throughputRatio: number;
  /** cache-off / cache-on server CPU per request. */
  serverCpuRatio?: number;
}

function cacheGains(figures: DecryptFigure[]): CacheGain[] {
  const gains: CacheGain[] = [];
  for (const on of figures.filter((entry) => entry.cache)) {
    const off = figures.find((entry) => !entry.cache && entry.module === on.module && entry.keys === on.keys);
    if (!off) continue;
    gains.push({ module: on.module, keys: on.keys, on, off, throughputRatio: on.result.requestsPerSecond / off.result.requestsPerSecond,
      serverCpuRatio: on.serverCpuMicrosPerRequest && off.serverCpuMicrosPerRequest !== undefined
        ? off.serverCpuMicrosPerRequest / on.serverCpuMicrosPerRequest : undefined });
  }
  return gains;
}

function printSummary(modules: ModuleFigure[], figures: DecryptFigure[], gains: CacheGain[], settings: Settings): void {
  console.log('\nsummary');
  const unwrap = (kind: ModuleKind) => modules.find((entry) => entry.module === kind && entry.operation === 'unwrap');
  const wrap = (kind: ModuleKind) => modules.find((entry) => entry.module === kind && entry.operation === 'wrap');
  const kinds = (['software', 'pkcs11'] as const).filter((kind) => unwrap(kind) || figures.some((entry) => entry.module === kind));
  const header = ['module', 'wrap ops/s', 'unwrap ops/s', 'µs/unwrap'];
  const keyCounts = figures.length > 0 ? settings.keyCounts : [];
  for (const keys of keyCounts) header.push(`Decrypt ${keys} key${keys === 1 ? '' : 's'}: on`, 'off', 'on/off');
  const rows = kinds.map((kind) => {
    const row = [kind, wrap(kind) ? count(wrap(kind)!.opsPerSecond) : '-', unwrap(kind) ? count(unwrap(kind)!.opsPerSecond) : '-',
      fixed(unwrap(kind)?.microsPerOp, 2)];
    for (const keys of keyCounts) {
      const gain = gains.find((entry) => entry.module === kind && entry.keys === keys);
      const rate = (cache: boolean) => figures.find((entry) => entry.module === kind && entry.keys === keys && entry.cache === cache);
      row.push(rate(true) ? count(rate(true)!.result.requestsPerSecond) : '-', rate(false) ? count(rate(false)!.result.requestsPerSecond) : '-',
        gain ? `${gain.throughputRatio.toFixed(2)}x` : '-');
    }
    return row;
  });
  printTable(header, rows);
  if (keyCounts.length > 0) console.log('  Decrypt columns: req/s (fastest round) with N keys decrypted round-robin, cache on and off, and their ratio.');
  if (gains.length > 0) {
    console.log('\nwhat the customer-key cache buys (same module, same keys, cache on vs off)');
    printTable(['module', 'keys', 'req/s on', 'req/s off', 'throughput on/off', 'p50 on', 'p50 off', 'p99 on', 'p99 off', 'server CPU/req on', 'off', 'off/on'],
      gains.map((gain) => [gain.module, String(gain.keys), count(gain.on.result.requestsPerSecond), count(gain.off.result.requestsPerSecond),
        `${gain.throughputRatio.toFixed(2)}x`, fixed(gain.on.result.p50Ms, 2), fixed(gain.off.result.p50Ms, 2), fixed(gain.on.result.p99Ms, 2),
        fixed(gain.off.result.p99Ms, 2), `${fixed(gain.on.serverCpuMicrosPerRequest, 0)} µs`, `${fixed(gain.off.serverCpuMicrosPerRequest, 0)} µs`,
        gain.serverCpuRatio === undefined ? '-' : `${gain.serverCpuRatio.toFixed(2)}x`]));
    console.log('  cache off: every Decrypt reads the wrapped key version from the store and unwraps it through the module, and the');
    console.log(`  unwrapped key is zeroed on the next turn. cache on: ${settings.keyCounts.at(-1)} keys < ${DEFAULT_CACHE_SIZE} entries and a ${DEFAULT_CACHE_TTL_SECONDS} s TTL`);
    console.log('  longer than a measurement, so after the priming pass every request is a hit (a working set larger than the cache,');
    console.log('  or keys idle for longer than the TTL, fall back to the cache-off figures).');
    console.log(`  On ${os.cpus().length} cores the load generator competes with the server: the server-CPU-per-request ratio is the fairer measure`);
    console.log('  of what the cache saves the server; the throughput ratio is what a client saw here.');
  }
}

async function main(lifecycle: BenchLifecycle): Promise<number> {
  const settings = readSettings();
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const cpus = os.cpus();
  const located = settings.pkcs11 ? await locateSoftHsm() : { skip: '--no-pkcs11' };
  const softHsmVersion = located.skip === undefined ? located.version : undefined;
  const problems: string[] = [];

  console.log(`trustplane crypto-module bench: node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} CPUs ` +
    `(${cpus[0]?.model.trim() ?? 'unknown'})`);
  if (located.skip !== undefined) console.log(`NOTE: PKCS#11 figures skipped: ${located.skip}`);

  // In-process figures first, on a machine without servers.
  const modules = await measureModules(settings, lifecycle, softHsmVersion);
  printModuleFigures(modules, softHsmVersion);

  let figures: DecryptFigure[] = [];
  let rounds: DecryptRound[] = [];
  if (settings.kms) {
    const configs = configurations(settings, softHsmVersion !== undefined);
    const targets: KmsTarget[] = [];
    for (const config of configs) targets.push(await prepareTarget(config, settings, lifecycle));
    for (let round = 1; round <= settings.rounds; round += 1) {
      // Reversed every other round, so drift in machine load hits every configuration alike.
      const order = round % 2 === 1 ? targets : targets.slice().reverse();
      for (const keys of settings.keyCounts) {
        for (const target of order) {
          progress(`Decrypt round ${round}/${settings.rounds}: ${target.label}, ${keys} key(s) ...`);
          const measured = await measureDecrypt(target, keys, round, settings);
          rounds.push(measured);
          progress(`  ${count(measured.result.requestsPerSecond)} req/s, ${fixed(measured.serverCpuMicrosPerRequest, 0)} µs server CPU/req, ` +
            `${measured.result.errors + measured.warmupErrors} errors`);
        }
      }
    }
    rounds = rounds.sort((a, b) => a.keys - b.keys || a.round - b.round);
    printDecryptRounds(rounds, settings);
    for (const keys of settings.keyCounts) {
      for (const config of configs) {
        figures.push(keepFastest(config, rounds.filter((entry) => entry.label === config.label && entry.keys === keys)));
      }
    }
    for (const figure of figures) {
      if (figure.totalErrors > 0) {
        problems.push(`${figure.totalErrors} of ${figure.totalRequests} Decrypt requests FAILED (${figure.label}, ${figure.keys} keys): ` +
          figure.errorReasons.slice(0, 5).map(({ reason, count: times }) => `${times} x ${reason}`).join('; '));
      }
    }
    for (const target of targets) {
      if (!target.server.isRunning()) problems.push(`the ${target.label} server exited during the bench`);
      const logged = serverLogProblems(target.server.output(), EXPECTED_NOTICES);
      if (logged.length > 0) problems.push(`the ${target.label} server logged ${logged.length} warning/error line(s), first: ${logged[0].slice(0, 300)}`);
      if (!settings.audit && !target.server.output().includes(AUDIT_OFF_NOTICE)) problems.push(`the ${target.label} server never logged its ${AUDIT_OFF_NOTICE} notice`);
    }
    const disturbed = rounds.filter((entry) => (entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT);
    if (disturbed.length > 0) {
      console.log(`!!! other load above ${DISTURBED_OTHER_CPU_PERCENT}% of a core during ${disturbed.length} of ${rounds.length} measurements (marked !): ` +
        'their req/s are disturbed; rerun on a quiet machine.');
    }
  }

  const gains = cacheGains(figures);
  printSummary(modules, figures, gains, settings);
  printProblemBanner('THESE FIGURES ARE NOT A VALID MEASUREMENT:', problems);

  if (settings.json) {
    console.log('');
    console.log(JSON.stringify({
      node: process.version, cpus: cpus.length, softHsm: softHsmVersion ?? null, concurrency: settings.concurrency, seconds: settings.seconds,
      moduleSeconds: settings.moduleSeconds, warmupSeconds: settings.warmupSeconds, rounds: settings.rounds, audit: settings.audit,
      cache: { on: { ttlSeconds: DEFAULT_CACHE_TTL_SECONDS, maxEntries: DEFAULT_CACHE_SIZE }, off: { ttlSeconds: 0 } },
      modules: modules.map((entry) => ({ ...entry, opsPerSecond: Math.round(entry.opsPerSecond) })),
      decrypt: figures.map((entry) => ({
        configuration: entry.label, module: entry.module, cache: entry.cache, keys: entry.keys,
        requestsPerSecond: Math.round(entry.result.requestsPerSecond), p50Ms: entry.result.p50Ms, p99Ms: entry.result.p99Ms,
        completed: entry.result.completed, errors: entry.totalErrors, errorReasons: entry.errorReasons,
        serverCpuMicrosPerRequest: entry.serverCpuMicrosPerRequest, serverCpuPercent: entry.serverCpuPercent,
        clientCpuPercent: entry.clientCpuPercent, otherCpuPercent: entry.otherCpuPercent,
      })),
      cacheGain: gains.map((gain) => ({ module: gain.module, keys: gain.keys, throughputRatio: gain.throughputRatio,
        serverCpuRatio: gain.serverCpuRatio })),
      problems,
    }));
  }
  return problems.length > 0 ? 1 : 0;
}

const lifecycle = new BenchLifecycle();
let exitCode = 1;
try {
  exitCode = await main(lifecycle);
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
} finally {
  await lifecycle.shutdown();
}
process.exit(exitCode);
