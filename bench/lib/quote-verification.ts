// Quote verification for TPM evidence: real quotes made once on a software TPM (swtpm, through the
// agent's Tpm over tpm2-tools), then the verifier's check of one piece of evidence timed in a loop,
// against one tpm2_checkquote process per quote (what a shell-based verifier pays).
// Must never leave swtpm running or its directory behind, nor count a check that did not affirm.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Attestor } from '../../src/agent/attestation.ts';
import { Tpm, type AkAlgorithm } from '../../src/agent/tpm.ts';
import { AGENT_MEASUREMENT_PCR, evidenceBinding, type MeasurementEvent } from '../../src/shared/attest-wire.ts';
import { parseTpmPublic, replayPcrExtends, verifyQuoteSignature } from '../../src/shared/crypto/index.ts';
import { createLogger } from '../../src/shared/log.ts';
import { appraise } from '../../src/services/attest/domain/appraisal.ts';
import { parseOperationalReport } from '../../src/services/attest/domain/operational.ts';
import { locateTpmTools, startSwtpm } from '../../test/helpers/swtpm.ts';
import { operationalReport, referencePolicy } from './host-measurements.ts';
import type { BenchLifecycle } from './lifecycle.ts';
import { count, fixed, printTable } from './report.ts';
import { timeAsyncLoop, timeSyncLoop, type TimedLoopResult } from './timed-loop.ts';

/** The second AK lives next to the agent's (0x81010002), in the same TPM. */
const ECC_AK_HANDLE = 0x81010003;
const CHECKQUOTE = 'tpm2_checkquote';
const SIGNATURE_ONLY_SECONDS = 1;

export interface QuoteBenchOptions {
  quotes: number;
  seconds: number;
  /** A directory of the bench's own, removed by the caller. */
  workDir: string;
}

interface MadeQuote {
  nonce: Buffer;
  attest: Buffer;
  signature: Buffer;
}

interface AkRows {
  label: string;
  quoteMs: number;
  full: TimedLoopResult;
  signatureOnly: TimedLoopResult;
  checkquote: TimedLoopResult;
}

export interface QuoteBenchResult {
  tools: string;
  quotes: number;
  components: number;
  operationalBytes: number;
  aks: AkRows[];
  /** The same appraisal without a quote (software mode), for what the quote adds. */
  software: TimedLoopResult;
  problems: string[];
}

export type QuoteBenchOutcome = QuoteBenchResult | { skip: string };

function checkquote(args: string[]): Promise<number> {
  return new Promise((resolve) => {
    execFile(CHECKQUOTE, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', TSS2_LOG: 'all+none' }, timeout: 30_000 },
      (error) => resolve(error ? (typeof error.code === 'number' ? error.code : -1) : 0));
  });
}

/** Quotes made on swtpm once, then each check timed for `seconds`. */
export async function benchQuoteVerification(lifecycle: BenchLifecycle, options: QuoteBenchOptions): Promise<QuoteBenchOutcome> {
  const located = await locateTpmTools({ swtpm: true });
  if (located.skip !== undefined) return { skip: located.skip };
  lifecycle.installSignalHandlers();
  const swtpm = await startSwtpm();
  lifecycle.lastResort(() => rmSync(swtpm.dir, { recursive: true, force: true }));
  lifecycle.defer(() => swtpm.stop());
  try {
    return await measure(swtpm.tcti, `tpm2-tools ${located.version}, ${located.swtpmVersion.split('\n')[0].split(',')[0]}`, options);
  } finally {
    await swtpm.stop();
  }
}

async function measure(tcti: string, tools: string, options: QuoteBenchOptions): Promise<QuoteBenchResult> {
  const problems: string[] = [];
  // The agent's own measuring: four boot files and its configuration, extended into PCR 23 of the TPM.
  const bootDir = join(options.workDir, 'boot');
  mkdirSync(bootDir, { recursive: true });
  const files = ['shimx64.efi', 'vmlinuz-6.1.0-18-amd64', 'initrd.img-6.1.0-18-amd64', 'trustplane'].map((name) => {
    const path = join(bootDir, name);
    writeFileSync(path, `${name} release 1\n`.repeat(64));
    return path;
  });
  const akKinds: Array<{ label: string; algorithm: AkAlgorithm; handle?: number }> = [
    { label: 'RSA-2048 AK (RSASSA)', algorithm: 'rsa2048-rsassa-sha256' },
    { label: 'ECC P-256 AK (ECDSA)', algorithm: 'ecc-p256-ecdsa-sha256', handle: ECC_AK_HANDLE },
  ];
  const tpms = akKinds.map((kind) => new Tpm({ tcti, akAlgorithm: kind.algorithm, akHandle: kind.handle, timeoutMs: 30_000 }));
  const provisioned = [];
  for (const tpm of tpms) provisioned.push(await tpm.provision());
  const attestor = new Attestor({ tpm: tpms[0], logger: createLogger({ level: 'warn' }), call: async () => ({}), measure: files, operational: false,
    selfMeasurements: { 'agent:config': createHash('sha256').update('{"server":"https://trustplane.example"}').digest('hex') } });
  await attestor.measureBoot();
  const events: MeasurementEvent[] = [...attestor.events];
  const report = operationalReport();
  const operationalJson = JSON.stringify(report);
  const reference = referencePolicy(events, report);
  const pcrValue = replayPcrExtends(Buffer.alloc(32), events.map((event) => Buffer.from(event.Digest, 'hex')), 'sha256');

  const appraiseTpm = (akPublic: Buffer, quote: MadeQuote) => appraise({ mode: 'tpm', nonce: quote.nonce, nonceValid: true, events,
    operationalJson, operational: parseOperationalReport(JSON.parse(operationalJson)), ak: parseTpmPublic(akPublic), akTrusted: true, reference,
    quote: { attest: quote.attest, signature: quote.signature } });

  const aks: AkRows[] = [];
  for (const [position, kind] of akKinds.entries()) {
    const tpm = tpms[position];
    const akPublic = provisioned[position].akPublic;
    const quotes: MadeQuote[] = [];
    const quoteStarted = performance.now();
    for (let index = 0; index < options.quotes; index += 1) {
      const nonce = randomBytes(32);
      const made = await tpm.quote(evidenceBinding(nonce, operationalJson), [AGENT_MEASUREMENT_PCR]);
      quotes.push({ nonce, attest: made.attest, signature: made.signature });
    }
    const quoteMs = (performance.now() - quoteStarted) / options.quotes;

    // Every quote must affirm, and a forged one must not, or the loop times nothing worth knowing.
    for (const quote of quotes) {
      const verdict = appraiseTpm(akPublic, quote);
      if (verdict.status !== 'affirming') problems.push(`${kind.label}: a fresh quote was ${verdict.status}: ${verdict.failures.map((f) => f.Id).join(', ')}`);
    }
    const forged = { ...quotes[0], signature: Buffer.from(quotes[0].signature) };
    forged.signature[forged.signature.length - 1] ^= 1;
    if (!appraiseTpm(akPublic, forged).failures.some((failure) => failure.Id === 'quote-signature')) {
      problems.push(`${kind.label}: a quote with a corrupted signature was not refused`);
    }
    const otherNonce = { ...quotes[0], nonce: randomBytes(32) };
    if (!appraiseTpm(akPublic, otherNonce).failures.some((failure) => failure.Id === 'quote-nonce')) {
      problems.push(`${kind.label}: a quote over another nonce was not refused`);
    }

    let refused = 0;
    process.stderr.write(`timing the verifier's check, ${kind.label} ...\n`);
    const full = await timeSyncLoop((iteration) => {
      if (appraiseTpm(akPublic, quotes[iteration % quotes.length]).status !== 'affirming') refused += 1;
    }, options.seconds);
    if (refused > 0) problems.push(`${kind.label}: ${refused} timed checks did not affirm`);
    const ak = parseTpmPublic(akPublic);
    let badSignatures = 0;
    const signatureOnly = await timeSyncLoop((iteration) => {
      const quote = quotes[iteration % quotes.length];
      if (!verifyQuoteSignature(ak, quote.attest, quote.signature)) badSignatures += 1;
    }, SIGNATURE_ONLY_SECONDS);
    if (badSignatures > 0) problems.push(`${kind.label}: ${badSignatures} signature checks failed`);

    // The shell-based baseline: the same files a script would hand over (the AK as PEM, the quote,
    // its signature, the PCR values replayed from the event list), one process per quote.
    const dir = join(options.workDir, `checkquote-${position}`);
    mkdirSync(dir, { recursive: true });
    const akPem = join(dir, 'ak.pem');
    writeFileSync(akPem, ak.publicKey.export({ type: 'spki', format: 'pem' }));
    const pcrs = join(dir, 'pcrs');
    writeFileSync(pcrs, pcrValue);
    const argsFor = quotes.map((quote, index) => {
      writeFileSync(join(dir, `attest-${index}`), quote.attest);
      writeFileSync(join(dir, `signature-${index}`), quote.signature);
      return ['-u', akPem, '-m', join(dir, `attest-${index}`), '-s', join(dir, `signature-${index}`), '-g', 'sha256',
        '-q', evidenceBinding(quote.nonce, operationalJson).toString('hex'), '-f', pcrs, '-l', `sha256:${AGENT_MEASUREMENT_PCR}`];
    });
    if (await checkquote(argsFor[0]) !== 0) problems.push(`${kind.label}: ${CHECKQUOTE} refused a good quote`);
    const wrongNonce = [...argsFor[0]];
    wrongNonce[wrongNonce.indexOf('-q') + 1] = randomBytes(32).toString('hex');
    if (await checkquote(wrongNonce) === 0) problems.push(`${kind.label}: ${CHECKQUOTE} accepted a quote over another nonce`);
    process.stderr.write(`timing ${CHECKQUOTE}, ${kind.label} ...\n`);
    let checkquoteFailures = 0;
    const checkquoteLoop = await timeAsyncLoop(async (iteration) => {
      if (await checkquote(argsFor[iteration % argsFor.length]) !== 0) checkquoteFailures += 1;
    }, options.seconds);
    if (checkquoteFailures > 0) problems.push(`${kind.label}: ${checkquoteFailures} ${CHECKQUOTE} runs failed`);
    aks.push({ label: kind.label, quoteMs, full, signatureOnly, checkquote: checkquoteLoop });
  }

  process.stderr.write('timing the same appraisal without a quote (software mode) ...\n');
  const software = await timeSyncLoop(() => {
    appraise({ mode: 'software', nonce: Buffer.alloc(32), nonceValid: true, events, operationalJson,
      operational: parseOperationalReport(JSON.parse(operationalJson)), akTrusted: true, reference });
  }, SIGNATURE_ONLY_SECONDS);
  return { tools, quotes: options.quotes, components: events.length, operationalBytes: Buffer.byteLength(operationalJson), aks, software, problems };
}

export function printQuoteBench(outcome: QuoteBenchOutcome): void {
  console.log('1. quote verifications per second (TPM evidence)');
  if ('skip' in outcome) {
    console.log(`  SKIPPED: ${outcome.skip}`);
    return;
  }
  console.log(`  ${outcome.tools}; ${outcome.quotes} real quotes per AK over PCR ${AGENT_MEASUREMENT_PCR}, made once through src/agent/tpm.ts;`);
  console.log(`  evidence: ${outcome.components} boot events and a ${count(outcome.operationalBytes)}-byte operational report, reference values for both.`);
  const rows: string[][] = [];
  for (const ak of outcome.aks) {
    const ratio = (row: TimedLoopResult) => `${(row.perSecond / ak.checkquote.perSecond).toFixed(0)}x`;
    rows.push([`${ak.label}: verifier check (appraise)`, count(ak.full.perSecond), fixed(ak.full.microsEach, 1), fixed(ak.full.cpuMicrosEach, 1), ratio(ak.full)]);
    rows.push([`${ak.label}: signature only`, count(ak.signatureOnly.perSecond), fixed(ak.signatureOnly.microsEach, 1),
      fixed(ak.signatureOnly.cpuMicrosEach, 1), ratio(ak.signatureOnly)]);
    rows.push([`${ak.label}: one ${CHECKQUOTE} per quote`, count(ak.checkquote.perSecond), fixed(ak.checkquote.microsEach, 0),
      fixed(ak.checkquote.cpuMicrosEach, 0), 'baseline']);
  }
  rows.push(['software evidence: same appraisal, no quote', count(outcome.software.perSecond), fixed(outcome.software.microsEach, 1),
    fixed(outcome.software.cpuMicrosEach, 1), '-']);
  printTable(['check (one piece of evidence)', 'per s', 'us each', 'CPU us', 'vs checkquote'], rows, { indent: '  ' });
  console.log('');
  console.log('  verifier check: parseTpmPublic(AK) + JSON.parse and validation of the report + appraise() (quote signature, parseQuote,');
  console.log('  nonce binding, PCR replay of the event list, reference values, operational sets), one thread, in this process;');
  console.log('  CPU us counts all of this process\'s threads (the garbage collector\'s too).');
  console.log(`  ${CHECKQUOTE}: signature, nonce and PCR digest only (the PCR values handed over already replayed), one process per quote,`);
  console.log('  one at a time; its CPU is the whole machine\'s (fork/exec, the tool, this process waiting).');
  for (const ak of outcome.aks) console.log(`  quoting on swtpm (${ak.label}): ${fixed(ak.quoteMs, 1)} ms per quote (tpm2_quote process + swtpm).`);
}
