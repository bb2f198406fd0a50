// Attestation at scale: quote verifications per second for TPM evidence (real swtpm quotes, against one
// tpm2_checkquote process per quote), and one verifier serving many simulated agents in software mode
// (CPU share, time from evidence to verdict, detection time of a tampered host, RSS), with a smaller
// fleet in the same run as the baseline.
//
//   TRUSTPLANE_BENCH_AGENTS=1000 node --import tsx bench/attest.ts [--agents N] [--baseline-agents B] [--interval S]
//     [--seconds S] [--baseline-seconds S] [--fresh-seconds S] [--warmup S] [--ramp S] [--tamper-after S]
//     [--quotes N] [--verify-seconds S] [--skip-tpm] [--skip-fleet]
//
// Simulated agents enrol with a join token and attest over mutual TLS exactly as `trustplane agent` does in
// software mode (but on kept-alive connections). Exit status 1 when the figures are not a valid measurement;
// a verifier that does not keep up is a finding, printed in its own banner. Loopback only.
// Must never leave a server, swtpm or a temporary directory behind.
import os from 'node:os';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { makeTempDir, type TestServer } from '../test/helpers/server.ts';
import { cliEnv, trustplaneJson } from '../test/helpers/cli.ts';
import { AGENT_REQUEST_TIMEOUT_MS, AttestationDriver, AttestingHost, type AttestationRound } from './lib/attesting-host.ts';
import { errorText, forEachBounded, withDeadline } from './lib/concurrency.ts';
import { bootEvents, changedEvent, operationalReport, referencePolicy, TAMPERED_COMPONENT } from './lib/host-measurements.ts';
import { BenchLifecycle } from './lib/lifecycle.ts';
import { summarize } from './lib/percentiles.ts';
import { machineCpu, ownCpuSeconds, processCpuSeconds } from './lib/process-cpu.ts';
import { peakResidentKib, residentKib } from './lib/process-memory.ts';
import { benchQuoteVerification, printQuoteBench, type QuoteBenchOutcome } from './lib/quote-verification.ts';
import { count, fixed, printProblemBanner, printTable } from './lib/report.ts';
import { DISTURBED_OTHER_CPU_PERCENT, positiveNumber, serverLogProblems } from './lib/settings.ts';
import { enrollSimulatedHosts } from './lib/simulated-hosts.ts';

const DEFAULT_AGENTS = 1000;
/** Past this, one process runs out of descriptors long before the server does. */
const MAX_AGENTS = 5000;
const CLASS_NAME = 'bench-attest';
const SIMULATED_AGENT_VERSION = 'bench-sim';
const ENROLL_CONCURRENCY = 16;
/** Loopback source addresses enrolment is spread over (the server limits enrolment to 50/s per address). */
const ENROLL_SOURCE_ADDRESSES = 16;
/** Each wait between rounds is the interval ± this fraction. */
const JITTER = 0.05;
const ENROLL_TIMEOUT_MS = 5 * 60_000;
const CONNECT_CONCURRENCY = 32;
const CONNECT_TIMEOUT_MS = 3 * 60_000;
/** How long hosts joining get for their first verdict, past the ramp they start over (an overloaded verifier takes long). */
const FIRST_VERDICTS_TIMEOUT_MS = 120_000;
/** A window whose verdicts fall this far short of agents / interval means the verifier did not keep up. */
const KEEP_UP_FRACTION = 0.9;
/** How long after the change the tampered host's verdict is waited for at most: its next interval, then a round that may time out once. */
const detectionTimeoutMs = (intervalSeconds: number) => intervalSeconds * (1 + JITTER) * 1000 + 2 * AGENT_REQUEST_TIMEOUT_MS;
/** The server logs a verdict that changes at warn level: the tampered host's, by design (others are counted apart). */
const EXPECTED_SERVER_WARNINGS = ['attestation verdict changed'];

interface Settings {
  agents: number;
  baselineAgents: number;
  intervalSeconds: number;
  seconds: number;
  baselineSeconds: number;
  freshSeconds: number;
  warmupSeconds: number;
  rampSeconds: number;
  tamperAfterSeconds: number;
  quotes: number;
  verifySeconds: number;
  skipTpm: boolean;
  skipFleet: boolean;
}

/** A duration that may be 0 (the phase is left out). */
function secondsOrZero(name: string, text: string): number {
  return Number(text) === 0 ? 0 : positiveNumber(name, text, false);
}

function readSettings(): Settings {
  const { values } = parseArgs({ options: {
    agents: { type: 'string', default: process.env.TRUSTPLANE_BENCH_AGENTS ?? String(DEFAULT_AGENTS) },
    'baseline-agents': { type: 'string' },
    interval: { type: 'string', default: '2' },
    seconds: { type: 'string', default: '30' },
    'baseline-seconds': { type: 'string', default: '12' },
    'fresh-seconds': { type: 'string', default: '8' },
    warmup: { type: 'string', default: '3' },
    ramp: { type: 'string' },
    'tamper-after': { type: 'string', default: '10' },
    quotes: { type: 'string', default: '16' },
    'verify-seconds': { type: 'string', default: '3' },
    'skip-tpm': { type: 'boolean', default: false },
    'skip-fleet': { type: 'boolean', default: false },
  } });
  const agents = positiveNumber('agents (or TRUSTPLANE_BENCH_AGENTS)', values.agents, true);
  if (agents > MAX_AGENTS) throw new Error(`--agents is capped at ${MAX_AGENTS}`);
  const baselineAgents = values['baseline-agents'] === undefined ? Math.max(1, Math.min(100, Math.floor(agents / 10)))
    : positiveNumber('baseline-agents', values['baseline-agents'], true);
  if (baselineAgents >= agents) throw new Error('--baseline-agents must be fewer than --agents');
  const intervalSeconds = positiveNumber('interval', values.interval, true);
  const seconds = positiveNumber('seconds', values.seconds, false);
  const tamperAfterSeconds = positiveNumber('tamper-after', values['tamper-after'], false);
  if (tamperAfterSeconds >= seconds) throw new Error('--tamper-after must fall inside the measured --seconds');
  return { agents, baselineAgents, intervalSeconds, seconds, tamperAfterSeconds,
    baselineSeconds: positiveNumber('baseline-seconds', values['baseline-seconds'], false),
    freshSeconds: secondsOrZero('fresh-seconds', values['fresh-seconds']),
    warmupSeconds: positiveNumber('warmup', values.warmup, false),
    // Hosts joining the full fleet start at a random point of the first interval, as the baseline's did.
    rampSeconds: values.ramp === undefined ? intervalSeconds : positiveNumber('ramp', values.ramp, false),
    quotes: Math.min(256, positiveNumber('quotes', values.quotes, true)),
    verifySeconds: positiveNumber('verify-seconds', values['verify-seconds'], false),
    skipTpm: values['skip-tpm'] ?? false, skipFleet: values['skip-fleet'] ?? false };
}

/** A progress line on stderr at most once a second, and at the end. */
function progressLine(label: string, total: number): (done: number) => void {
  const started = performance.now();
  let printedAt = started;
  return (done) => {
    const now = performance.now();
    if (done < total && now - printedAt < 1000) return;
    printedAt = now;
    process.stderr.write(`${label}: ${done}/${total} (${((now - started) / 1000).toFixed(1)} s)\n`);
  };
}

// ---- measured windows ------------------------------------------------------------------------------

interface CpuMark {
  at: number;
  server?: number;
  own: number;
  machine?: ReturnType<typeof machineCpu>;
}

function markCpu(serverPid: number | undefined): CpuMark {
  return { at: performance.now(), server: processCpuSeconds(serverPid), own: ownCpuSeconds(), machine: machineCpu() };
}

interface WindowFigures {
  label: string;
  agents: number;
  seconds: number;
  rounds: AttestationRound[];
  errors: number;
  serverCpuSeconds?: number;
  ownCpuSeconds: number;
  otherCpuSeconds?: number;
  rssKib?: number;
}

function windowFigures(label: string, agents: number, driver: AttestationDriver, from: CpuMark, to: CpuMark, serverPid: number | undefined): WindowFigures {
  const rounds = driver.rounds.filter((round) => round.verdictAt >= from.at && round.verdictAt < to.at);
  const errors = driver.errors.filter((error) => error.at >= from.at && error.at < to.at).length;
  const serverCpuSeconds = from.server !== undefined && to.server !== undefined ? to.server - from.server : undefined;
  const ownSeconds = to.own - from.own;
  const otherCpuSeconds = from.machine && to.machine && serverCpuSeconds !== undefined
    ? Math.max(0, to.machine.busySeconds - from.machine.busySeconds - serverCpuSeconds - ownSeconds) + (to.machine.stealSeconds - from.machine.stealSeconds)
    : undefined;
  return { label, agents, seconds: (to.at - from.at) / 1000, rounds, errors, serverCpuSeconds, ownCpuSeconds: ownSeconds, otherCpuSeconds,
    rssKib: residentKib(serverPid) };
}

/** Lets the hosts run for `seconds` and returns what happened meanwhile. */
async function measureWindow(label: string, agents: number, seconds: number, driver: AttestationDriver, serverPid: number | undefined,
  during?: { afterSeconds: number; act: () => void }): Promise<WindowFigures> {
  process.stderr.write(`measuring ${label} (${agents} agents) for ${seconds} s ...\n`);
  const from = markCpu(serverPid);
  if (during) {
    await delay(during.afterSeconds * 1000);
    during.act();
  }
  await delay(Math.max(0, from.at + seconds * 1000 - performance.now()));
  return windowFigures(label, agents, driver, from, markCpu(serverPid), serverPid);
}

const perRoundMicros = (figures: WindowFigures | undefined) => (figures?.serverCpuSeconds === undefined || figures.rounds.length === 0 ? undefined
  : (1e6 * figures.serverCpuSeconds) / figures.rounds.length);
const percentOfCore = (seconds: number | undefined, wall: number) => (seconds === undefined ? undefined : (100 * seconds) / wall);

/** Waits until every host has had a verdict and returns how long that took (s); throws unless every first verdict affirms. */
async function requireFirstVerdictsAffirming(hosts: readonly AttestingHost[], driver: AttestationDriver, timeoutMs: number): Promise<number> {
  const started = performance.now();
  const waiting = async () => {
    while (hosts.some((host) => host.firstStatus === undefined)) await delay(100);
  };
  await withDeadline(waiting(), timeoutMs, () => `first verdicts (${hosts.filter((host) => host.firstStatus !== undefined).length}/` +
    `${hosts.length} so far; ${driver.errors.length} failed rounds, first: ${driver.errors[0]?.reason ?? 'none'})`);
  const tally = new Map<string, number>();
  for (const host of hosts) tally.set(host.firstStatus!, (tally.get(host.firstStatus!) ?? 0) + 1);
  if (tally.size !== 1 || !tally.has('affirming')) {
    throw new Error(`every host must affirm before measuring; first verdicts: ${JSON.stringify(Object.fromEntries(tally))}`);
  }
  return (performance.now() - started) / 1000;
}

// ---- the fleet -------------------------------------------------------------------------------------

interface Detection {
  hostId: string;
  changedAt: number;
  /** The first contraindicated verdict for evidence carrying the change. */
  round?: AttestationRound;
  shown?: { Status: string; Failures: string[] };
}

interface VerdictChange {
  hostId: string;
  before: string;
  after: string;
}

/** The verdict changes a server logged (at warn level: every change to a non-affirming status). */
function loggedVerdictChanges(output: string): VerdictChange[] {
  const changes: VerdictChange[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{') || !line.includes('attestation verdict changed')) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; hostId?: string; before?: string; after?: string };
      if (entry.msg === 'attestation verdict changed') changes.push({ hostId: String(entry.hostId), before: String(entry.before), after: String(entry.after) });
    } catch {
      // Not a log entry.
    }
  }
  return changes;
}

interface FleetResult {
  settings: Settings;
  enrolSeconds: number;
  throttled: number;
  operationalBytes: number;
  evidenceBytes: number;
  baseline?: WindowFigures;
  baselineFresh?: WindowFigures;
  full?: WindowFigures;
  /** Why the run stopped early, if it did. */
  failure?: string;
  /** Every host's connection opened (and first challenge answered) before any attests, on an idle server. */
  connectSeconds: number;
  /** From the first of the rest starting to every host having had its first (affirming) verdict. */
  joinSeconds?: number;
  rssBeforeKib?: number;
  peakRssKib?: number;
  nonAffirming: number;
  nonAffirmingExamples: string[];
  /** Status changes away from affirming the server recorded (its log), the tampered host's left out: silence shows only here. */
  serverChanges: VerdictChange[];
  /** Rounds that got no answer in time (the agent's 30 s), and rounds that failed otherwise. */
  timeouts: number;
  errors: number;
  errorExamples: string[];
  detection?: Detection;
  goodHostShown?: string;
}

async function benchFleet(lifecycle: BenchLifecycle, settings: Settings, workDir: string, started: { server?: TestServer }): Promise<FleetResult> {
  const server = await lifecycle.startTrustplane('trustplane-bench-attest-', {}, { extraArgs: ['--fleet-listen', '127.0.0.1:0'] });
  started.server = server;
  const serverPid = server.process.pid;
  const cli = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env: cliEnv(server) });

  // The class and its reference values, set from a file before any host attests, so every host affirms from its first evidence.
  // Flag only: an alert needs a webhook, and revoking would take the tampered host out of the measurement.
  await cli('class', 'create', CLASS_NAME, '--attestation', 'software', '--interval', `${settings.intervalSeconds}s`,
    '--on-contraindicated', 'flag', '--on-silent', 'flag');
  const events = bootEvents();
  const report = operationalReport();
  const operationalJson = JSON.stringify(report);
  const policyPath = join(workDir, 'policy.json');
  writeFileSync(policyPath, JSON.stringify(referencePolicy(events, report), null, 2));
  const reference = await cli<{ Version: number; Document: { Components: Record<string, string[]> } }>(
    'class', 'set-reference', CLASS_NAME, '--file', policyPath);
  if (Object.keys(reference.Document.Components).length !== events.length) throw new Error(`the reference values were not set: ${JSON.stringify(reference)}`);
  const joinToken = (await cli<{ Token: string }>('host', 'join-token', '--classes', CLASS_NAME, '--uses', String(settings.agents))).Token;
  const info = await (await fetch(new URL('/v1/fleet/info', server.url))).json() as { FleetPort?: number };
  const fleetPort = Number(info.FleetPort);
  if (!Number.isInteger(fleetPort) || fleetPort <= 0) throw new Error(`the server names no fleet port: ${JSON.stringify(info)}`);

  const enrolled = await withDeadline(enrollSimulatedHosts({ serverUrl: server.url, joinToken, count: settings.agents, namePrefix: 'bench-attest-',
    agentVersion: SIMULATED_AGENT_VERSION, concurrency: ENROLL_CONCURRENCY, sourceAddresses: ENROLL_SOURCE_ADDRESSES,
    onProgress: progressLine('enrolling', settings.agents) }), ENROLL_TIMEOUT_MS, 'enrolling');
  const hosts = enrolled.hosts.map((enrolment, index) => new AttestingHost(index, enrolment, fleetPort, events, operationalJson));
  const driver = new AttestationDriver({ intervalMs: settings.intervalSeconds * 1000, jitter: JITTER });
  lifecycle.defer(async () => {
    await driver.stop();
    for (const host of hosts) host.close();
  });
  await delay(1000);
  const rssBeforeKib = residentKib(serverPid);
  // Every connection is opened while the server is idle: a saturated server accepts about one connection per event-loop
  // turn, so hosts joining a loaded verifier wait in its accept queue (the run measures the fleet at work, not that storm).
  const connectProgress = progressLine('connecting', hosts.length);
  const connectStarted = performance.now();
  let connected = 0;
  await withDeadline(forEachBounded(hosts, CONNECT_CONCURRENCY, async (host) => {
    await host.connect();
    connected += 1;
    connectProgress(connected);
  }), CONNECT_TIMEOUT_MS, () => `connecting (${connected}/${hosts.length})`);
  const result: FleetResult = { settings, enrolSeconds: enrolled.seconds, throttled: enrolled.throttled, operationalBytes: Buffer.byteLength(operationalJson),
    connectSeconds: (performance.now() - connectStarted) / 1000,
    evidenceBytes: Buffer.byteLength(JSON.stringify({ Nonce: 'x'.repeat(44), Events: events, OperationalJson: operationalJson })),
    rssBeforeKib, nonAffirming: 0, nonAffirmingExamples: [], serverChanges: [], timeouts: 0, errors: 0, errorExamples: [] };
  const tampered = hosts[hosts.length - 1];

  try {
    // Baseline: a tenth of the fleet, on kept-alive connections, then on a new connection per call as the real agent makes them.
    const baselineHosts = hosts.slice(0, settings.baselineAgents);
    process.stderr.write(`baseline: ${baselineHosts.length} agents start attesting ...\n`);
    driver.start(baselineHosts);
    await requireFirstVerdictsAffirming(baselineHosts, driver, settings.intervalSeconds * 1000 + FIRST_VERDICTS_TIMEOUT_MS);
    await delay(settings.warmupSeconds * 1000);
    result.baseline = await measureWindow('baseline', baselineHosts.length, settings.baselineSeconds, driver, serverPid);
    if (settings.freshSeconds > 0) {
      for (const host of baselineHosts) host.freshConnections = true;
      await delay(settings.warmupSeconds * 1000);
      result.baselineFresh = await measureWindow('baseline, new conn.', baselineHosts.length, settings.freshSeconds, driver, serverPid);
      for (const host of baselineHosts) host.freshConnections = false;
    }

    // The whole fleet, the rest joining over the ramp, with one host tampered with part-way.
    process.stderr.write(`full fleet: ${hosts.length - baselineHosts.length} more agents start over ${settings.rampSeconds} s ...\n`);
    driver.start(hosts.slice(settings.baselineAgents), settings.rampSeconds * 1000);
    result.joinSeconds = await requireFirstVerdictsAffirming(hosts, driver, settings.rampSeconds * 1000 + FIRST_VERDICTS_TIMEOUT_MS);
    await delay(settings.warmupSeconds * 1000);
    const detection: Detection = { hostId: tampered.hostId, changedAt: NaN };
    result.detection = detection;
    result.full = await measureWindow('full fleet', hosts.length, settings.seconds, driver, serverPid, { afterSeconds: settings.tamperAfterSeconds,
      act: () => {
        detection.changedAt = performance.now();
        tampered.tamper(changedEvent(TAMPERED_COMPONENT));
        process.stderr.write(`host ${tampered.hostId} now reports a changed ${TAMPERED_COMPONENT} ...\n`);
      } });
    const findDetection = () => driver.rounds.find((round) => round.host === tampered.index && round.tampered && round.status === 'contraindicated');
    const detectionDeadline = detection.changedAt + detectionTimeoutMs(settings.intervalSeconds);
    while (!findDetection() && performance.now() < detectionDeadline) await delay(100);
    detection.round = findDetection();
  } catch (error) {
    result.failure = errorText(error);
  }
  result.peakRssKib = peakResidentKib(serverPid);
  process.stderr.write('stopping the simulated agents ...\n');
  await driver.stop();

  if (result.detection) {
    const shown = await cli<{ Attestation?: { Status: string; Failures: Array<{ Id: string }> } }>('host', 'show', tampered.hostId);
    if (shown.Attestation) result.detection.shown = { Status: shown.Attestation.Status, Failures: [...new Set(shown.Attestation.Failures.map((f) => f.Id))] };
    result.goodHostShown = (await cli<{ Attestation?: { Status: string } }>('host', 'show', hosts[0].hostId)).Attestation?.Status;
  }
  const notTamper = (round: AttestationRound) => !(round.host === tampered.index && round.tampered);
  const nonAffirming = driver.rounds.filter((round) => round.status !== 'affirming' && notTamper(round));
  result.nonAffirming = nonAffirming.length;
  result.nonAffirmingExamples = nonAffirming.slice(0, 3).map((round) => `${hosts[round.host].hostId} ${round.status} (${round.failureIds.join(',')})`);
  result.serverChanges = loggedVerdictChanges(server.output()).filter((change) => change.hostId !== tampered.hostId && change.after !== 'affirming');
  result.timeouts = driver.errors.filter((error) => error.reason.includes('unanswered within')).length;
  result.errors = driver.errors.length - result.timeouts;
  const reasons = new Map<string, number>();
  for (const error of driver.errors) reasons.set(error.reason, (reasons.get(error.reason) ?? 0) + 1);
  result.errorExamples = [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([reason, times]) => `${times} x ${reason}`);
  return result;
}

// ---- report ----------------------------------------------------------------------------------------

/** Prints section 2; `problems` make the figures invalid, `shortfalls` are what the verifier did not keep up with. */
function printFleet(result: FleetResult, problems: string[], shortfalls: string[]): void {
  const { settings } = result;
  const interval = settings.intervalSeconds;
  console.log(`2. one verifier serving ${settings.agents} simulated agents in software mode, interval ${interval} s`);
  console.log(`  enrolled ${settings.agents} hosts in ${result.enrolSeconds.toFixed(1)} s (join token over HTTP from ${ENROLL_SOURCE_ADDRESSES} loopback ` +
    `addresses, ${result.throttled} throttled attempts retried); then opened each host's kept-alive mutual-TLS connection`);
  console.log(`  (its first challenge) in ${result.connectSeconds.toFixed(1)} s, ${CONNECT_CONCURRENCY} at a time, before any host attests.`);
  console.log(`  each round: challenge, then evidence (${result.evidenceBytes} bytes: ${bootEvents().length} events and a ` +
    `${result.operationalBytes}-byte operational report); every host's first verdict affirmed (reference values set with --file).`);
  console.log(`  baseline: the first ${settings.baselineAgents} hosts; full fleet: all ${settings.agents}, the rest starting over ${settings.rampSeconds} s;` +
    ` ${settings.warmupSeconds} s warm-up before each window.`);
  if (result.joinSeconds !== undefined) {
    console.log(`  every one of the ${settings.agents} hosts had its first verdict (affirming) ${result.joinSeconds.toFixed(1)} s after the rest began to start.`);
  }
  if (result.failure) {
    console.log(`  !!! the run stopped early: ${result.failure}`);
    problems.push(`the fleet run stopped early: ${result.failure}`);
  }
  console.log('');
  const windows = [result.baseline, result.baselineFresh, result.full].filter((figures): figures is WindowFigures => figures !== undefined);
  const rows = windows.map((figures) => {
    const evidence = summarize(figures.rounds.map((round) => round.evidenceMs));
    const serverSays = summarize(figures.rounds.flatMap((round) => (round.serverLatencyMs === undefined ? [] : [round.serverLatencyMs])));
    const challenge = summarize(figures.rounds.map((round) => round.challengeMs));
    const meanRoundSeconds = figures.rounds.reduce((sum, round) => sum + (round.verdictAt - round.startedAt), 0) / Math.max(1, figures.rounds.length) / 1000;
    const asked = figures.agents / (interval + meanRoundSeconds);
    const other = percentOfCore(figures.otherCpuSeconds, figures.seconds);
    return [figures.label, String(figures.agents), fixed(figures.rounds.length / figures.seconds, 0), fixed(figures.agents / interval, 0), fixed(asked, 0),
      `${fixed(evidence.p50, 1)} / ${fixed(evidence.p99, 1)}`, `${fixed(serverSays.p50, 0)} / ${fixed(serverSays.p99, 0)}`,
      `${fixed(challenge.p50, 1)} / ${fixed(challenge.p99, 1)}`,
      `${fixed(percentOfCore(figures.serverCpuSeconds, figures.seconds), 0)}%`, fixed(perRoundMicros(figures), 0),
      `${fixed(percentOfCore(figures.ownCpuSeconds, figures.seconds), 0)}%`, `${fixed(other, 0)}%${(other ?? 0) > DISTURBED_OTHER_CPU_PERCENT ? ' !' : ''}`,
      String(figures.errors)];
  });
  printTable(['window', 'agents', 'verdicts/s', 'ideal/s', 'asked/s', 'evidence->verdict ms p50/p99', 'LatencyMs p50/p99', 'challenge ms p50/p99',
    'server CPU', 'us/round', 'agents CPU', 'other', 'errors'], rows, { indent: '  ' });
  console.log('');
  for (const figures of windows) console.log(`  ${figures.label}: ${count(figures.rounds.length)} verdicts in ${figures.seconds.toFixed(1)} s.`);
  console.log('  verdicts/s: verdicts received; ideal/s: agents / interval; asked/s: agents / (interval + mean round time), what the agents');
  console.log('  asked for given how long rounds took (below ideal when the server makes them wait).');
  console.log('  evidence->verdict: evidence sent -> verdict read, at the simulated agent (includes this process\'s own event-loop delays);');
  console.log('  LatencyMs: the server\'s own figure in the verdict (its Date clock, whole ms); challenge: the round\'s first call.');
  console.log(`  server CPU: % of one core (the machine has ${os.cpus().length}); us/round: server CPU per challenge + evidence pair.`);
  console.log('  agents CPU: this process, which plays every agent; other: every other process and steal, % of one core; ! = disturbed.');
  console.log('  new conn.: the same hosts with a new mutual-TLS connection per call (what agents did before their calls kept connections alive).');
  console.log('');
  for (const figures of windows) {
    if ((percentOfCore(figures.otherCpuSeconds, figures.seconds) ?? 0) > DISTURBED_OTHER_CPU_PERCENT) {
      console.log(`!!! other load above ${DISTURBED_OTHER_CPU_PERCENT}% of a core during ${figures.label}: that row is disturbed.`);
    }
  }
  console.log(`  non-affirming verdicts returned to untampered hosts during the run: ${result.nonAffirming}` +
    `${result.nonAffirmingExamples.length > 0 ? ` e.g. ${result.nonAffirmingExamples.join('; ')}` : ''}`);
  const byStatus = new Map<string, number>();
  for (const change of result.serverChanges) byStatus.set(change.after, (byStatus.get(change.after) ?? 0) + 1);
  console.log('  changes of untampered hosts away from affirming recorded by the server (its log; silence shows only there): ' +
    `${result.serverChanges.length}${byStatus.size > 0 ? ` (${[...byStatus].map(([status, times]) => `${times} x ${status}`).join(', ')}, ` +
      `${new Set(result.serverChanges.map((change) => change.hostId)).size} hosts)` : ''}`);
  console.log(`  failed rounds during the run: ${result.timeouts + result.errors} (${result.timeouts} unanswered within the agent's 30 s)` +
    `${result.errorExamples.length > 0 ? `: ${result.errorExamples.join('; ')}` : ''}`);
  if (result.nonAffirming > 0) problems.push(`${result.nonAffirming} non-affirming verdicts returned to untampered hosts`);
  const silent = result.serverChanges.filter((change) => change.after === 'silent').length;
  if (silent > 0) shortfalls.push(`the server flagged untampered hosts silent ${silent} times (their rounds waited too long)`);
  if (result.serverChanges.length > silent) problems.push(`the server recorded ${result.serverChanges.length - silent} non-silent changes of untampered hosts away from affirming`);
  if (result.timeouts > 0) shortfalls.push(`${result.timeouts} rounds unanswered within the agent's 30 s`);
  if (result.errors > 0) problems.push(`${result.errors} rounds failed: ${result.errorExamples.join('; ')}`);
  for (const figures of windows) {
    const perSecond = figures.rounds.length / figures.seconds;
    if (perSecond < KEEP_UP_FRACTION * (figures.agents / interval)) {
      shortfalls.push(`${figures.label}: ${perSecond.toFixed(0)} verdicts/s where ${figures.agents} agents at ${interval} s ask for ${(figures.agents / interval).toFixed(0)}`);
    }
  }

  const { detection } = result;
  if (detection?.round) {
    const waited = detection.round.evidenceSentAt - detection.changedAt;
    console.log(`  tampered host ${detection.hostId}: ${TAMPERED_COMPONENT} changed ${settings.tamperAfterSeconds} s into the full-fleet window;` +
      ` contraindicated verdict ${fixed(detection.round.verdictAt - detection.changedAt, 0)} ms later`);
    console.log(`    (its evidence left ${fixed(waited, 0)} ms after the change, the challenge's round trip included; ${fixed(detection.round.evidenceMs, 1)} ms ` +
      'evidence -> verdict; ' +
      `bounded by the interval: <= ${fixed(interval * (1 + JITTER) * 1000, 0)} ms + one round). Failures: ${detection.round.failureIds.join(', ')}`);
  } else if (detection && Number.isFinite(detection.changedAt)) {
    console.log(`  tampered host ${detection.hostId}: NOT DETECTED within ${(detectionTimeoutMs(interval) / 1000).toFixed(0)} s of the change`);
    problems.push('the tampered host was not found contraindicated');
  }
  if (detection?.shown) {
    console.log(`    trustplane host show ${detection.hostId} --json: Attestation.Status ${detection.shown.Status}, failures ${detection.shown.Failures.join(', ')};` +
      ` an untampered host: ${result.goodHostShown ?? 'no attestation'}`);
    if (Number.isFinite(detection.changedAt) && detection.shown.Status !== 'contraindicated') {
      problems.push(`host show says the tampered host is ${detection.shown.Status}`);
    }
    if (result.goodHostShown === 'silent') shortfalls.push('host show says an untampered host is silent');
    else if (result.goodHostShown !== 'affirming') problems.push(`host show says an untampered host is ${result.goodHostShown}`);
  }
  const rss = (kib: number | undefined) => fixed((kib ?? NaN) / 1024, 1);
  if (result.rssBeforeKib !== undefined) {
    const attesting = result.full ?? result.baseline;
    console.log(`  server RSS: ${rss(result.rssBeforeKib)} MiB enrolled but idle, ${rss(result.baseline?.rssKib)} MiB with ${result.baseline?.agents ?? 0} ` +
      `attesting, ${rss(result.full?.rssKib)} MiB with ${result.full?.agents ?? '-'} (peak ${rss(result.peakRssKib)} MiB)` +
      (attesting?.rssKib !== undefined ? ` -> ${((attesting.rssKib - result.rssBeforeKib) / attesting.agents).toFixed(1)} KiB per attesting agent ` +
        '(RSS, garbage not yet collected included)' : ''));
  } else {
    console.log('  server RSS: unknown (no /proc)');
  }
}

function printComparisons(fleet: FleetResult | undefined, quotes: QuoteBenchOutcome | undefined): void {
  console.log('3. baselines in the same run');
  const lines: string[][] = [];
  const haveQuotes = quotes !== undefined && !('skip' in quotes);
  if (haveQuotes) {
    for (const ak of quotes.aks) {
      lines.push([`quote check in-process vs one tpm2_checkquote per quote (${ak.label})`,
        `${fixed(ak.full.microsEach, 0)} vs ${fixed(ak.checkquote.microsEach, 0)} us`, `${(ak.full.perSecond / ak.checkquote.perSecond).toFixed(0)}x faster`]);
    }
  }
  const small = fleet?.baseline;
  const smallCost = perRoundMicros(small);
  if (fleet && small) {
    lines.push([`server CPU per round, ${small.agents} agents, kept-alive connections`, `${fixed(smallCost, 0)} us`, 'baseline']);
    const fresh = fleet.baselineFresh;
    const freshCost = perRoundMicros(fresh);
    if (fresh && freshCost !== undefined && smallCost !== undefined) {
      lines.push([`server CPU per round, ${fresh.agents} agents, a new connection per call`, `${fixed(freshCost, 0)} us`, `${(freshCost / smallCost).toFixed(2)}x`]);
    }
    const full = fleet.full;
    const fullCost = perRoundMicros(full);
    if (full && fullCost !== undefined && smallCost !== undefined) {
      lines.push([`server CPU per round, ${full.agents} agents, kept-alive connections`, `${fixed(fullCost, 0)} us`, `${(fullCost / smallCost).toFixed(2)}x`]);
      const smallP99 = summarize(small.rounds.map((round) => round.evidenceMs)).p99;
      const fullP99 = summarize(full.rounds.map((round) => round.evidenceMs)).p99;
      lines.push([`evidence -> verdict p99, ${small.agents} vs ${full.agents} agents`, `${fixed(smallP99, 1)} vs ${fixed(fullP99, 1)} ms`,
        `${(fullP99 / smallP99).toFixed(1)}x`]);
    }
    const reference = fullCost ?? smallCost;
    if (haveQuotes && reference !== undefined) {
      const appraisal = quotes.software.cpuMicrosEach ?? NaN;
      lines.push(['appraisal alone, software evidence (report parse + appraise, this process)', `${fixed(appraisal, 0)} us`,
        `${((100 * appraisal) / reference).toFixed(1)}% of the server's CPU per round`]);
      for (const ak of quotes.aks) {
        const extra = (ak.full.cpuMicrosEach ?? NaN) - appraisal;
        lines.push([`what TPM evidence would add per round (${ak.label})`, `${fixed(extra, 0)} us`, `+${((100 * extra) / reference).toFixed(1)}%`]);
      }
    }
    if (reference !== undefined) {
      lines.push([`extrapolated: agents one core of server CPU serves at ${fleet.settings.intervalSeconds} s (1e6 / us per round x interval)`,
        count((1e6 / reference) * fleet.settings.intervalSeconds), 'CPU only']);
    }
    if (full && full.rounds.length / full.seconds < KEEP_UP_FRACTION * (full.agents / fleet.settings.intervalSeconds)) {
      const capacity = full.rounds.length / full.seconds;
      lines.push([`measured at saturation: verdicts/s the server completed with ${full.agents} agents waiting`, fixed(capacity, 0),
        `sustains about ${count(capacity * fleet.settings.intervalSeconds)} agents at ${fleet.settings.intervalSeconds} s`]);
    }
  }
  if (lines.length === 0) {
    console.log('  nothing to compare (parts skipped)');
    return;
  }
  printTable(['figure', 'value', 'ratio'], lines, { indent: '  ', leftLast: true });
}

// ---- the run ---------------------------------------------------------------------------------------

function printServerLogProblems(server: TestServer): number {
  const logProblems = serverLogProblems(server.output(), EXPECTED_SERVER_WARNINGS);
  if (logProblems.length > 0) {
    console.log('');
    console.log(`!!! the trustplane server logged ${logProblems.length} warning/error line(s); first ones:`);
    for (const line of logProblems.slice(0, 5)) console.log(`    ${line.slice(0, 300)}`);
  }
  return logProblems.length;
}

async function main(lifecycle: BenchLifecycle, started: { server?: TestServer }): Promise<number> {
  const settings = readSettings();
  const cpus = os.cpus();
  const problems: string[] = [];
  const shortfalls: string[] = [];
  const wallStarted = performance.now();
  console.log(`trustplane attestation bench: node ${process.version}, ${os.platform()} ${os.arch()}, ${cpus.length} CPUs ` +
    `(${cpus[0]?.model.trim() ?? 'unknown'})`);
  console.log('');
  lifecycle.installSignalHandlers();
  const workDir = makeTempDir('trustplane-bench-attest-work-');
  const removeWorkDir = () => rmSync(workDir, { recursive: true, force: true });
  lifecycle.lastResort(removeWorkDir);
  lifecycle.defer(removeWorkDir);

  let quotes: QuoteBenchOutcome | undefined;
  if (!settings.skipTpm) {
    process.stderr.write('making quotes on swtpm ...\n');
    quotes = await benchQuoteVerification(lifecycle, { quotes: settings.quotes, seconds: settings.verifySeconds, workDir });
    printQuoteBench(quotes);
    if (!('skip' in quotes)) problems.push(...quotes.problems);
    console.log('');
  }

  let fleet: FleetResult | undefined;
  if (!settings.skipFleet) {
    fleet = await benchFleet(lifecycle, settings, workDir, started);
    printFleet(fleet, problems, shortfalls);
    console.log('');
  }
  printComparisons(fleet, quotes);
  console.log('');
  console.log(`total ${((performance.now() - wallStarted) / 1000).toFixed(0)} s`);
  const logProblems = started.server ? printServerLogProblems(started.server) : 0;
  printProblemBanner(`THE VERIFIER DID NOT KEEP UP WITH ${settings.agents} AGENTS AT ${settings.intervalSeconds} s (valid figures of an overload)`,
    shortfalls, 78);
  printProblemBanner('THESE FIGURES ARE NOT A VALID MEASUREMENT', problems, 78);
  return problems.length > 0 || logProblems > 0 ? 1 : 0;
}

const lifecycle = new BenchLifecycle();
const started: { server?: TestServer } = {};
let exitCode = 1;
try {
  exitCode = await main(lifecycle, started);
} catch (error) {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : errorText(error)}\n`);
  if (started.server) printServerLogProblems(started.server);
} finally {
  await lifecycle.shutdown();
}
process.exit(exitCode);
