// Appraises one piece of evidence: the challenge, the quote (signature by the enrolled attestation
// key, qualifying data, PCR digest replayed from the event list), then the measurements against
// the boot values and the class's reference values, then the operational report.
// Must never do I/O, and never affirm evidence it could not check: what is unverifiable is a failure.
import {
  computePcrDigest, parseQuote, replayPcrExtends, sha256Hex, TpmFormatError, verifyQuoteSignature, type TpmPublic,
} from '../../../shared/crypto/index.ts';
import { evidenceBinding, type MeasurementEvent } from '../../../shared/attest-wire.ts';
import type { AttestationMode, AttestationStatus } from '../../../shared/store/index.ts';
import { compareOperational, type AttestationFailure, type ReportedOperational } from './operational.ts';
import type { ReferencePolicyDocument } from './reference-policy.ts';

const PCR_BANK = 'sha256';
const PCR_SIZE = 32;
const REFERENCE_MISSING = 'reference-missing';

export interface QuoteClock {
  clock: number;
  resetCount: number;
  restartCount: number;
}

/** What is kept of a boot's accepted event list, to hold later evidence of the same boot to it. */
export interface EventLogMark {
  resetCount: number;
  restartCount: number;
  /** How many events were accepted, and the SHA-256 (hex) of exactly those. */
  count: number;
  digest: string;
}

/** The events' digest as EventLogMark keeps it. */
export function eventLogDigest(events: readonly MeasurementEvent[]): string {
  return sha256Hex(JSON.stringify(events.map((event) => [event.Pcr, event.Component, event.Digest])));
}

export interface AppraisalInput {
  mode: AttestationMode;
  nonce: Buffer;
  nonceValid: boolean;
  events: readonly MeasurementEvent[];
  operationalJson?: string;
  operational?: ReportedOperational;
  quote?: { attest: Buffer; signature: Buffer };
  /** TPM mode: the attestation key enrolled for the host, and whether credential activation proved it. */
  ak?: TpmPublic;
  akTrusted: boolean;
  /** The last quote's clock, to notice a TPM clock running backwards without a reset. */
  previousClock?: QuoteClock;
  /** The event list accepted last (TPM mode): within one TPM boot, new evidence must extend it, never rewrite it. */
  previousLog?: EventLogMark;
  reference?: ReferencePolicyDocument;
}

export interface Appraisal {
  status: Exclude<AttestationStatus, 'silent'>;
  failures: AttestationFailure[];
  /** Whether the evidence itself checked out (challenge, quote): only then are its measurements believed and kept. */
  trustworthy: boolean;
  /** Per component, the first digest of this boot and the latest one. */
  boot: Record<string, string>;
  current: Record<string, string>;
  clock?: QuoteClock;
  /** TPM mode, trustworthy evidence: the mark to hold the next evidence of this boot to. */
  eventLog?: EventLogMark;
}

const failure = (Id: string, Severity: AttestationFailure['Severity'], Component: string, details: Partial<AttestationFailure> = {}): AttestationFailure =>
  ({ Id, Severity, Component, ...details });

/**
 * High and critical failures contraindicate; anything less warns. Without reference values nothing
 * was appraised against the class: the host stays pending (no keys, no corrective actions) until set.
 */
export function statusOf(failures: readonly AttestationFailure[]): Appraisal['status'] {
  if (failures.some((entry) => entry.Severity === 'high' || entry.Severity === 'critical')) return 'contraindicated';
  if (failures.some((entry) => entry.Id === REFERENCE_MISSING)) return 'pending';
  return failures.length > 0 ? 'warning' : 'affirming';
}

/** Component names are the host's text (`__proto__` included): kept in maps, returned as plain records. */
function measurementsOf(events: readonly MeasurementEvent[]): { boot: Record<string, string>; current: Record<string, string> } {
  const boot = new Map<string, string>();
  const current = new Map<string, string>();
  for (const event of events) {
    if (!boot.has(event.Component)) boot.set(event.Component, event.Digest);
    current.set(event.Component, event.Digest);
  }
  return { boot: Object.fromEntries(boot), current: Object.fromEntries(current) };
}

/** The quote's checks; failures here mean nothing in the event list can be believed. */
function appraiseQuote(input: AppraisalInput, failures: AttestationFailure[]): QuoteClock | undefined {
  if (!input.quote) {
    failures.push(failure('quote-missing', 'high', 'quote', { Detail: 'the class attests with a TPM but the evidence carries no quote' }));
    return undefined;
  }
  if (!input.ak) {
    failures.push(failure('ak-unknown', 'high', 'attestation-key', { Detail: 'no attestation key is enrolled for this host' }));
    return undefined;
  }
  if (!input.akTrusted) {
    failures.push(failure('ak-unproven', 'high', 'attestation-key', { Detail: 'the attestation key was never proven by credential activation' }));
  }
  let signed: boolean;
  let quote: ReturnType<typeof parseQuote>;
  try {
    signed = verifyQuoteSignature(input.ak, input.quote.attest, input.quote.signature);
    quote = parseQuote(input.quote.attest);
  } catch (error) {
    // Malformed after a valid challenge is evidence too: a host must not dodge a verdict by garbling its quote.
    if (!(error instanceof TpmFormatError)) throw error;
    failures.push(failure('quote-malformed', 'critical', 'quote', { Detail: `the quote cannot be read: ${error.message}` }));
    return undefined;
  }
  if (!signed) {
    failures.push(failure('quote-signature', 'critical', 'quote', { Detail: 'the quote is not signed by the attestation key enrolled for this host' }));
    return undefined;
  }
  const binding = evidenceBinding(input.nonce, input.operationalJson);
  if (!quote.extraData.equals(binding)) {
    failures.push(failure('quote-nonce', 'critical', 'quote', { Detail: 'the quote does not cover this challenge and report',
      Expected: binding.toString('hex'), Found: quote.extraData.toString('hex') }));
  }
  const selection = quote.pcrSelections.filter((entry) => entry.hash === PCR_BANK).flatMap((entry) => entry.pcrs);
  const extended = [...new Set(input.events.map((event) => event.Pcr))];
  const unquoted = extended.filter((pcr) => !selection.includes(pcr));
  if (unquoted.length > 0) {
    failures.push(failure('event-log-unquoted', 'high', 'event-log', { Detail: `events extend PCRs the quote does not cover: ${unquoted.join(', ')}` }));
  }
  const values = selection.map((pcr) => replayPcrExtends(Buffer.alloc(PCR_SIZE),
    input.events.filter((event) => event.Pcr === pcr).map((event) => Buffer.from(event.Digest, 'hex')), PCR_BANK));
  const replayed = computePcrDigest(values, PCR_BANK);
  if (!replayed.equals(quote.pcrDigest)) {
    failures.push(failure('event-log-mismatch', 'critical', 'event-log', { Detail: 'the event list does not replay to the quoted PCR values',
      Expected: quote.pcrDigest.toString('hex'), Found: replayed.toString('hex') }));
  }
  const clock = { clock: Number(quote.clock), resetCount: quote.resetCount, restartCount: quote.restartCount };
  const previous = input.previousClock;
  if (previous && clock.resetCount === previous.resetCount && clock.restartCount === previous.restartCount && clock.clock < previous.clock) {
    failures.push(failure('quote-clock', 'high', 'quote', { Detail: 'the TPM clock ran backwards without a reset (a replayed quote?)',
      Expected: `>= ${previous.clock}`, Found: String(clock.clock) }));
  }
  const log = input.previousLog;
  if (log && log.resetCount === clock.resetCount && log.restartCount === clock.restartCount
    && (input.events.length < log.count || eventLogDigest(input.events.slice(0, log.count)) !== log.digest)) {
    // The PCR was reset and re-extended (PCR 23 is resettable) without the TPM being reset: history rewritten.
    failures.push(failure('event-log-rewritten', 'critical', 'event-log', {
      Detail: 'within one TPM boot the event list no longer extends the one accepted before (was the PCR reset?)',
      Expected: `the ${log.count} events accepted before, then more`, Found: `${input.events.length} events` }));
  }
  return clock;
}

export function appraise(input: AppraisalInput): Appraisal {
  const failures: AttestationFailure[] = [];
  if (!input.nonceValid) {
    failures.push(failure('nonce-invalid', 'critical', 'challenge', { Detail: 'the challenge is unknown, expired, used already or another host\'s' }));
  }
  let clock: QuoteClock | undefined;
  let trustworthy = input.nonceValid;
  if (input.mode === 'tpm') {
    const before = failures.length;
    clock = appraiseQuote(input, failures);
    trustworthy &&= failures.length === before;
  }
  const { boot, current } = measurementsOf(input.events);
  if (trustworthy) {
    for (const [component, digest] of Object.entries(current)) {
      if (!Object.hasOwn(boot, component) || boot[component] !== digest) {
        failures.push(failure('measurement-changed', 'high', component, { Detail: 'changed since boot', Expected: boot[component], Found: digest }));
      }
    }
    if (!input.reference) {
      failures.push(failure(REFERENCE_MISSING, 'medium', 'reference-values',
        { Detail: 'the class has no reference values yet: trustplane class set-reference CLASS --from-host HOST' }));
    } else {
      for (const [component, accepted] of Object.entries(input.reference.Components)) {
        const found = Object.hasOwn(current, component) ? current[component] : undefined;
        if (found === undefined) {
          failures.push(failure('measurement-missing', 'high', component, { Detail: 'a component of the reference values was not measured',
            Expected: accepted.length === 1 ? accepted[0] : `one of ${accepted.length} accepted values` }));
        } else if (!accepted.includes(found)) {
          failures.push(failure('measurement-unexpected', 'high', component, { Detail: 'not among the reference values',
            Expected: accepted.length === 1 ? accepted[0] : `one of ${accepted.length} accepted values`, Found: found }));
        }
      }
      for (const component of Object.keys(current)) {
        if (!Object.hasOwn(input.reference.Components, component)) {
          failures.push(failure('measurement-unlisted', 'low', component, { Detail: 'measured but not in the reference values', Found: current[component] }));
        }
      }
    }
    if (input.operational) failures.push(...compareOperational(input.operational, input.reference?.Operational));
  }
  const eventLog = trustworthy && clock ? { resetCount: clock.resetCount, restartCount: clock.restartCount, count: input.events.length,
    digest: eventLogDigest(input.events) } : undefined;
  return { status: statusOf(failures), failures, trustworthy, boot, current, clock, eventLog };
}
