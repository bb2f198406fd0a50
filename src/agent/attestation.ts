// The measuring side of attestation: measures the configured boot components at start (extending
// each into the agent's PCR), re-measures every interval (extending what changed), and sends
// evidence in push mode: ask for a challenge, quote over it (TPM) and send the event list.
// Must never send evidence for a challenge it did not just receive, nor hide a changed measurement.
import { resolve } from 'node:path';
import { replayPcrExtends, sha256, sha256Hex } from '../shared/crypto/index.ts';
import { AGENT_MEASUREMENT_PCR, evidenceBinding, type EvidenceMessage, type MeasurementEvent } from '../shared/attest-wire.ts';
import { UserError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { collectOperational, measureFile } from './operational.ts';
import type { Tpm } from './tpm.ts';

/** The digest a component that cannot be read is measured as: it then matches no reference value. */
const UNREADABLE_DIGEST = sha256Hex('trustplane:unreadable-component');
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;
const NOT_ATTESTING_RETRY_MS = 30_000;

export type JsonCall = (path: string, body: unknown) => Promise<Record<string, unknown>>;

export interface MeasurementJournal {
  load(): MeasurementEvent[] | undefined;
  save(events: MeasurementEvent[]): void;
}

const PCR_SIZE = 32;

export interface Verdict {
  Status: string;
  Failures: unknown[];
  VerifiedAt?: string;
  /** The host is quarantined (its attested certificates are revoked) until an operator clears it. */
  Quarantined?: boolean;
}

export interface AttestorOptions {
  /** Files measured as boot components (firmware image, kernel, initrd...); their absolute paths name them. */
  measure: string[];
  /** Named measurements of the agent itself (its program and configuration). */
  selfMeasurements: Record<string, string>;
  tpm?: Tpm;
  logger: Logger;
  call: JsonCall;
  /** Where the event list is kept across agent restarts (TPM mode resumes it within one TPM boot). */
  journal?: MeasurementJournal;
  /** Whether to report operational parameters (ports, modules, executables, users) with each evidence. */
  operational?: boolean;
  /** Told every verdict (attested host certificates follow it). */
  onVerdict?: (verdict: Verdict) => void;
}

export class Attestor {
  readonly #options: AttestorOptions;
  readonly #events: MeasurementEvent[] = [];
  readonly #latest = new Map<string, string>();
  #booted = false;
  #registered = false;
  #stopped = false;
  #wake?: () => void;
  verdict?: Verdict;

  constructor(options: AttestorOptions) {
    this.#options = options;
  }

  get events(): readonly MeasurementEvent[] {
    return this.#events;
  }

  async #digestOf(component: string): Promise<string> {
    const self = this.#options.selfMeasurements[component];
    if (self !== undefined) return self;
    try {
      return (await measureFile(component)).Sha256;
    } catch (error) {
      this.#options.logger.warn({ component, err: error instanceof Error ? error.message : String(error) }, 'a measured component cannot be read');
      return UNREADABLE_DIGEST;
    }
  }

  #components(): string[] {
    return [...Object.keys(this.#options.selfMeasurements), ...this.#options.measure.map((path) => resolve(path))];
  }

  /** Journal first, then the TPM: a crash in between leaves at most one journalled event the PCR lacks. */
  async #extend(component: string, digest: string): Promise<void> {
    const event = { Pcr: AGENT_MEASUREMENT_PCR, Component: component, Digest: digest };
    this.#options.journal?.save([...this.#events, event]);
    await this.#options.tpm?.extendPcr(AGENT_MEASUREMENT_PCR, Buffer.from(digest, 'hex'));
    this.#events.push(event);
    this.#latest.set(component, digest);
  }

  /**
   * The boot measurement. With a TPM, an agent restarted within one TPM boot carries on from its
   * journal when the PCR still replays it: resetting the PCR then would rewrite the history the
   * verifier accepted (which it refuses). Otherwise a fresh PCR, every component extended once.
   */
  async measureBoot(): Promise<void> {
    this.#events.length = 0;
    this.#latest.clear();
    if (await this.#resume()) {
      this.#booted = true;
      return;
    }
    await this.#options.tpm?.resetPcr(AGENT_MEASUREMENT_PCR);
    this.#options.journal?.save([]);
    for (const component of this.#components()) await this.#extend(component, await this.#digestOf(component));
    this.#booted = true;
  }

  async #resume(): Promise<boolean> {
    const tpm = this.#options.tpm;
    const saved = tpm ? this.#options.journal?.load() : undefined;
    if (!tpm || !saved || saved.length === 0) return false;
    const [pcr] = await tpm.readPcrs([AGENT_MEASUREMENT_PCR]);
    for (const events of [saved, saved.slice(0, -1)]) {
      const replayed = replayPcrExtends(Buffer.alloc(PCR_SIZE), events.map((event) => Buffer.from(event.Digest, 'hex')), 'sha256');
      if (events.length === 0 || !replayed.equals(pcr)) continue;
      for (const event of events) {
        this.#events.push(event);
        this.#latest.set(event.Component, event.Digest);
      }
      this.#options.journal?.save(events);
      this.#options.logger.info({ events: events.length }, 'carrying on the measurements of this TPM boot');
      return true;
    }
    return false;
  }

  /** Re-measures every component; a changed one is extended again (so the PCR and event list record it). */
  async remeasure(): Promise<string[]> {
    if (!this.#booted) await this.measureBoot();
    const changed: string[] = [];
    for (const component of this.#components()) {
      const digest = await this.#digestOf(component);
      if (this.#latest.get(component) === digest) continue;
      changed.push(component);
      await this.#extend(component, digest);
    }
    if (changed.length > 0) this.#options.logger.warn({ changed }, 'measured components changed since the last measurement');
    return changed;
  }

  /**
   * TPM enrolment: sends the EK and AK; the server answers with a credential only this TPM can
   * activate, and only if the AK lives in it; the recovered secret proves it.
   */
  async registerTpm(): Promise<void> {
    const tpm = this.#options.tpm;
    if (!tpm || this.#registered) return;
    const keys = await tpm.provision();
    const reply = await this.#options.call('/v1/agent/attest/register', { EkPublic: keys.ekPublic.toString('base64'),
      EkCertificate: keys.ekCertificate?.toString('base64'), AkPublic: keys.akPublic.toString('base64') });
    if (reply.AlreadyActivated) {
      this.#registered = true;
      return;
    }
    const secret = await tpm.activateCredential(Buffer.from(String(reply.CredentialBlob), 'base64'),
      Buffer.from(String(reply.EncryptedSecret), 'base64'));
    await this.#options.call('/v1/agent/attest/activate', { Secret: secret.toString('base64') });
    this.#registered = true;
    this.#options.logger.info('TPM attestation key activated with the verifier');
  }

  /** Builds evidence for a challenge: current event list, operational report, and a quote binding both (TPM). */
  async evidenceFor(nonce: Buffer): Promise<EvidenceMessage> {
    const operationalJson = this.#options.operational === false ? undefined : JSON.stringify(await collectOperational());
    const evidence: EvidenceMessage = { Nonce: nonce.toString('base64'), Events: [...this.#events], OperationalJson: operationalJson };
    if (this.#options.tpm) {
      const quote = await this.#options.tpm.quote(evidenceBinding(nonce, operationalJson), [AGENT_MEASUREMENT_PCR]);
      evidence.Quote = { Attest: quote.attest.toString('base64'), Signature: quote.signature.toString('base64') };
    }
    return evidence;
  }

  /** One round: challenge, re-measure, evidence, verdict. Returns the interval the class asks for. */
  async attestOnce(): Promise<{ verdict: Verdict; intervalSeconds: number }> {
    const challenge = await this.#options.call('/v1/agent/attest/challenge', {});
    if (challenge.Mode === 'tpm') {
      if (!this.#options.tpm) throw new UserError('TpmRequired', 'The host\'s class attests with a TPM: run the agent with --tpm TCTI.');
      await this.registerTpm();
    }
    await this.remeasure();
    const evidence = await this.evidenceFor(Buffer.from(String(challenge.Nonce), 'base64'));
    const verdict = await this.#options.call('/v1/agent/attest/evidence', evidence) as unknown as Verdict & { IntervalSeconds: number };
    if (verdict.Status !== this.verdict?.Status) {
      this.#options.logger[verdict.Status === 'affirming' ? 'info' : 'warn']({ status: verdict.Status,
        failures: (verdict.Failures as Array<{ Id: string }>).map((failure) => failure.Id) }, 'attestation verdict');
    }
    this.verdict = { Status: verdict.Status, Failures: verdict.Failures, VerifiedAt: verdict.VerifiedAt, Quarantined: verdict.Quarantined === true };
    this.#options.onVerdict?.(this.verdict);
    return { verdict: this.verdict, intervalSeconds: Number(challenge.IntervalSeconds ?? verdict.IntervalSeconds) };
  }

  /** Attests every interval until stopped; a class that does not attest is asked again every 30 s. */
  async run(): Promise<void> {
    let failures = 0;
    while (!this.#stopped) {
      let waitMs: number;
      try {
        const { intervalSeconds } = await this.attestOnce();
        failures = 0;
        waitMs = intervalSeconds * 1000;
      } catch (error) {
        if (this.#stopped) break;
        if (error instanceof UserError && error.code === 'ValidationException' && /attests/.test(error.message)) {
          waitMs = NOT_ATTESTING_RETRY_MS;
        } else {
          failures += 1;
          waitMs = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2);
          this.#options.logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'attestation round failed');
        }
      }
      await new Promise<void>((done) => {
        const timer = setTimeout(done, waitMs);
        this.#wake = () => { clearTimeout(timer); done(); };
      });
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#wake?.();
  }
}

/** The agent's configuration as a measurement (its program is measured as a file, like the boot components). */
export function configurationMeasurement(configuration: unknown): Record<string, string> {
  return { 'agent:config': sha256(JSON.stringify(configuration)).toString('hex') };
}
