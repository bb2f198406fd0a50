// Requests per second of the key service's hot operations (Encrypt, Decrypt, GenerateDataKey) over
// real SigV4-signed HTTP, against a bare node:http server driven the same way. Loopback only.
//
//   node --import tsx bench/kms.ts [--seconds N] [--concurrency C] [--warmup S] [--rounds R] [--json]
//                                  [--no-sdk]
//
// Every request is serialised and signed on the client as a real SDK does; the servers run in their
// own processes. Must never leave a server running or a temporary home behind, even on Ctrl-C.
import os from 'node:os';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import type { TestServer } from '../test/helpers/server.ts';
import { startBareHttpServer, type BareHttpServer } from './lib/bare-http.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { mergeReasons, type LoadOptions, type LoadResult, type Outcome } from './lib/load-generator.ts';
import { runLoadWithCpu } from './lib/process-cpu.ts';
import { fixed, printProblemBanner, printTable } from './lib/report.ts';
import { createSymmetricKey, judgeReply, keepAliveAgent, SignedJsonClient } from './lib/signed-json-client.ts';
import {
  concurrencyFlag, DISTURBED_OTHER_CPU_PERCENT, MAX_REQUESTS_PER_MEASUREMENT, positiveNumber, REQUEST_TIMEOUT_MS, serverLogProblems, warmupFlag,
} from './lib/settings.ts';

const BARE_LABEL = 'bare node http';

interface Settings {
  seconds: number;
  warmupSeconds: number;
  concurrency: number;
  rounds: number;
  json: boolean;
  sdk: boolean;
}

interface Measurement {
  operation: string;
  note: string;
  result: LoadResult;
  serverCpuPercent?: number;
  serverCpuMicrosPerRequest?: number;
  clientCpuPercent: number;
  clientCpuMicrosPerRequest?: number;
  /** How many rounds this figure is the fastest of; errors are the sum over all of them. */
  rounds: number;
  /** CPU used by everything else on the machine (other processes, steal), as % of one core. */
  otherCpuPercent?: number;
}

/** A load generator this busy (% of one core; it is single-threaded) is the bottleneck, not the server. */
const CLIENT_BOUND_CPU_PERCENT = 90;

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
    'no-sdk': { type: 'boolean', default: false },
  } });
  return {
    seconds: positiveNumber('seconds', values.seconds, false),
    warmupSeconds: warmupFlag(values.warmup),
    concurrency: concurrencyFlag(values.concurrency), rounds: Math.min(20, positiveNumber('rounds', values.rounds, true)), json: values.json, sdk: !values['no-sdk'],
  };
}

// Everything started is stopped by the lifecycle, on success, error, SIGINT or SIGTERM.

async function startBaseline(lifecycle: BenchLifecycle): Promise<BareHttpServer> {
  const bare = await startBareHttpServer();
  lifecycle.lastResort(() => bare.killNow());
  lifecycle.defer(() => bare.stop());
  return bare;
}

// ---- measurement -----------------------------------------------------------------------------------

interface Scenario {
  operation: string;
  note: string;
  /** The process serving these requests, for its CPU time. */
  pid: number | undefined;
  issue(): Promise<Outcome>;
}

async function measure(scenario: Scenario, loadOptions: LoadOptions): Promise<Measurement> {
  // CPU is sampled around the whole call (warm-up included), per request of that whole call.
  const sampled = await runLoadWithCpu(scenario.issue, loadOptions, scenario.pid);
  return { operation: scenario.operation, note: scenario.note, rounds: 1, ...sampled };
}

/** The fastest round (the least disturbed by the machine), with every round's errors added in. */
function keepFastest(rounds: Measurement[]): Measurement {
  const fastest = rounds.reduce((best, entry) => (entry.result.requestsPerSecond > best.result.requestsPerSecond ? entry : best));
  const errors = rounds.reduce((sum, entry) => sum + entry.result.errors, 0);
  return { ...fastest, rounds: rounds.length, result: { ...fastest.result, errors,
    errorReasons: mergeReasons(rounds.map((entry) => entry.result.errorReasons)) } };
}

function printMeasurements(measurements: Measurement[]): void {
  const bare = measurements.find((entry) => entry.operation === BARE_LABEL);
  const header = ['operation', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'server CPU', 'server cost', 'client CPU', 'other', 'vs bare'];
  const rows = measurements.map((entry) => {
    const { result } = entry;
    const ratio = bare && entry !== bare
      ? `${(result.requestsPerSecond / bare.result.requestsPerSecond).toFixed(2)}x of ${BARE_LABEL} (${Math.round(bare.result.requestsPerSecond)} req/s)`
      : entry === bare ? 'baseline' : '-';
    return [entry.operation, String(Math.round(result.requestsPerSecond)), fixed(result.p50Ms, 2),
      fixed(result.p99Ms, 2), result.errors === 0 ? '0' : `${result.errors} !!!`,
      `${fixed(entry.serverCpuMicrosPerRequest, 0)} us/req ${fixed(entry.serverCpuPercent, 0)}%`,
      bare?.serverCpuMicrosPerRequest && entry.serverCpuMicrosPerRequest !== undefined
        ? `${(entry.serverCpuMicrosPerRequest / bare.serverCpuMicrosPerRequest).toFixed(1)}x bare` : '-',
      `${fixed(entry.clientCpuMicrosPerRequest, 0)} us/req ${fixed(entry.clientCpuPercent, 0)}%`,
      `${fixed(entry.otherCpuPercent, 0)}%${(entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`, ratio];
  });
  printTable(header, rows, { leftLast: true, indent: '' });
  console.log('');
  for (const entry of measurements) console.log(`  ${entry.operation}: ${entry.note}`);
  console.log(`  server/client CPU: CPU time of the serving process / this load generator per request, and as % of one core` +
    ` (${os.cpus().length} cores in all).`);
  console.log('  server cost: server CPU per request relative to the bare server\'s, the ratio the load generator cannot cap.');
  console.log('  other: CPU used meanwhile by every other process on the machine (and hypervisor steal), % of one core.');
  if (bare && bare.clientCpuPercent >= CLIENT_BOUND_CPU_PERCENT) {
    console.log(`NOTE: the load generator used ${bare.clientCpuPercent.toFixed(0)}% of a core against the bare server: that baseline is` +
      ' bounded by the client, not the server,');
    console.log('      so "vs bare" understates what trustplane costs per request; "server cost" is the fairer ratio.');
  }
  const disturbed = measurements.filter((entry) => (entry.otherCpuPercent ?? 0) > DISTURBED_OTHER_CPU_PERCENT);
  if (disturbed.length > 0) {
    console.log(`!!! other load above ${DISTURBED_OTHER_CPU_PERCENT}% of a core during: ${disturbed.map((entry) => entry.operation).join(', ')}` +
      ' - those rows are disturbed; rerun on a quiet machine.');
  }
}

async function main(lifecycle: BenchLifecycle): Promise<number> {
  const settings = readSettings();
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const cpus = os.cpus();
  const loadOptions: LoadOptions = { concurrency: settings.concurrency, durationMs: settings.seconds * 1000,
    warmupMs: settings.warmupSeconds * 1000, maxRequests: MAX_REQUESTS_PER_MEASUREMENT };

  const server = await lifecycle.startTrustplane('trustplane-bench-', {});
  const bare = await startBaseline(lifecycle);
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const clientFor = (endpoint: string, agent = keepAliveAgent(settings.concurrency)) => {
    lifecycle.defer(() => agent.destroy());
    return new SignedJsonClient({ endpoint, region: server.region, service: 'kms', credentials, agent, timeoutMs: REQUEST_TIMEOUT_MS });
  };

  // Set-up, unmeasured: a symmetric key and one ciphertext to decrypt over and over.
  const setup = clientFor(server.url, keepAliveAgent(1));
  const keyId = await createSymmetricKey(setup, 'bench/kms.ts');
  const plaintext = randomBytes(32);
  const plaintextBase64 = plaintext.toString('base64');
  const context = { purpose: 'bench', tenant: 'acme-corp', object: 'invoices/2024/0001.pdf' };
  const made = await setup.call('TrentService.Encrypt', { KeyId: keyId, Plaintext: plaintextBase64, EncryptionContext: context });
  const ciphertextBase64 = made.body.CiphertextBlob;
  if (made.status !== 200 || typeof ciphertextBase64 !== 'string') throw new Error(`Encrypt failed: ${made.status} ${JSON.stringify(made.body)}`);

  console.log(`trustplane KMS bench: node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} CPUs (${cpus[0]?.model.trim() ?? 'unknown'})`);
  console.log(`NOTE: the load generator, the trustplane server and the bare baseline share these ${cpus.length} CPUs;`);
  console.log('      with few cores the client competes with the server, so read the ratios more than the absolute figures.');
  console.log(`concurrency ${settings.concurrency} in flight over keep-alive sockets (maxSockets ${settings.concurrency}), ` +
    `${settings.seconds} s per measurement after ${settings.warmupSeconds} s warm-up` +
    `${settings.rounds > 1 ? `, fastest of ${settings.rounds} interleaved rounds` : ''}; every request serialised and SigV4-signed by the client.`);
  console.log('');

  // The baseline gets the very request Encrypt gets (same target, headers, body size, signing work).
  const encryptInput = () => ({ KeyId: keyId, Plaintext: plaintext.toString('base64'), EncryptionContext: context });
  const bareClient = clientFor(bare.url);
  const kms = clientFor(server.url);
  const scenarios: Scenario[] = [
    { operation: BARE_LABEL, note: 'node:http in its own process; reads the body, answers fixed JSON; sent signed Encrypt requests',
      pid: bare.pid, issue: async () => judgeReply(await bareClient.call('TrentService.Encrypt', encryptInput()),
        (body) => body.KeyId === 'bare') },
    { operation: 'Encrypt', note: '32-byte plaintext, 3-pair encryption context', pid: server.process.pid,
      issue: async () => judgeReply(await kms.call('TrentService.Encrypt', encryptInput()),
        (body) => typeof body.CiphertextBlob === 'string' && body.KeyId !== undefined) },
    { operation: 'Decrypt', note: 'one ciphertext made beforehand, same context; plaintext checked', pid: server.process.pid,
      issue: async () => judgeReply(await kms.call('TrentService.Decrypt', { CiphertextBlob: ciphertextBase64, EncryptionContext: context }),
        (body) => body.Plaintext === plaintextBase64) },
    { operation: 'GenerateDataKey', note: 'AES_256, same context', pid: server.process.pid,
      issue: async () => judgeReply(await kms.call('TrentService.GenerateDataKey', { KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }),
        (body) => typeof body.Plaintext === 'string' && typeof body.CiphertextBlob === 'string') },
  ];
  if (settings.sdk) scenarios.push(await sdkEncryptScenario(server, settings, keyId, plaintext, context, lifecycle));

  // Rounds interleave the operations, so a burst of outside load spoils one round of each, not all of one.
  const rounds: Measurement[][] = scenarios.map(() => []);
  for (let round = 1; round <= settings.rounds; round += 1) {
    for (const [index, scenario] of scenarios.entries()) {
      process.stderr.write(`round ${round}/${settings.rounds}: ${scenario.operation} ...\n`);
      rounds[index].push(await measure(scenario, loadOptions));
    }
  }
  const measurements = rounds.map(keepFastest);

  printMeasurements(measurements);

  const failed = measurements.filter((entry) => entry.result.errors > 0);
  const totalErrors = failed.reduce((sum, entry) => sum + entry.result.errors, 0);
  if (totalErrors > 0) {
    printProblemBanner(`${totalErrors} REQUESTS FAILED: these figures are NOT a valid measurement`, failed.flatMap((entry) =>
      entry.result.errorReasons.slice(0, 5).map(({ reason, count }) => `${entry.operation}: ${count} x ${reason}`)), 78);
  }
  const logProblems = serverLogProblems(server.output());
  if (logProblems.length > 0) {
    console.log('');
    console.log(`!!! the trustplane server logged ${logProblems.length} warning/error line(s); first ones:`);
    for (const line of logProblems.slice(0, 5)) console.log(`    ${line.slice(0, 300)}`);
  }

  if (settings.json) {
    const bareEntry = measurements.find((entry) => entry.operation === BARE_LABEL);
    const bareRate = bareEntry?.result.requestsPerSecond;
    const bareServerCost = bareEntry?.serverCpuMicrosPerRequest;
    console.log('');
    console.log(JSON.stringify({
      node: process.version, cpus: cpus.length, concurrency: settings.concurrency, seconds: settings.seconds,
      warmupSeconds: settings.warmupSeconds, rounds: settings.rounds, totalErrors, serverLogProblems: logProblems.length,
      results: measurements.map((entry) => ({
        operation: entry.operation, requestsPerSecond: Math.round(entry.result.requestsPerSecond),
        p50Ms: entry.result.p50Ms, p99Ms: entry.result.p99Ms, completed: entry.result.completed, errors: entry.result.errors,
        errorReasons: entry.result.errorReasons, ratioToBare: bareRate ? entry.result.requestsPerSecond / bareRate : undefined,
        serverCpuMicrosPerRequest: entry.serverCpuMicrosPerRequest, clientCpuMicrosPerRequest: entry.clientCpuMicrosPerRequest,
        serverCpuPercent: entry.serverCpuPercent, clientCpuPercent: entry.clientCpuPercent, otherCpuPercent: entry.otherCpuPercent,
        serverCostToBare: bareServerCost && entry.serverCpuMicrosPerRequest !== undefined
          ? entry.serverCpuMicrosPerRequest / bareServerCost : undefined,
      })),
    }));
  }
  return totalErrors > 0 || logProblems.length > 0 ? 1 : 0;
}

/** The AWS SDK's own client doing Encrypt: what a real application sees, client overhead included. */
async function sdkEncryptScenario(server: TestServer, settings: Settings, keyId: string, plaintext: Buffer,
  context: Record<string, string>, lifecycle: BenchLifecycle): Promise<Scenario> {
  const { KMSClient, EncryptCommand } = await import('@aws-sdk/client-kms');
  const agent = keepAliveAgent(settings.concurrency);
  const client = new KMSClient({
    endpoint: server.url, region: server.region, maxAttempts: 1,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestHandler: { httpAgent: agent, requestTimeout: REQUEST_TIMEOUT_MS },
  });
  lifecycle.defer(() => { client.destroy(); agent.destroy(); });
  return {
    operation: 'Encrypt (AWS SDK)', note: '@aws-sdk/client-kms KMSClient.send(EncryptCommand), same input and concurrency',
    pid: server.process.pid,
    issue: async () => {
      try {
        const output = await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }));
        return output.CiphertextBlob instanceof Uint8Array ? { ok: true } : { ok: false, reason: 'no CiphertextBlob' };
      } catch (error) {
        const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        return { ok: false, reason: `${status ? `HTTP ${status} ` : ''}${error instanceof Error ? error.name : String(error)}` };
      }
    },
  };
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
