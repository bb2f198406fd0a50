// What agents and the verifier exchange about attestation: the evidence message and the value a
// TPM quote's qualifying data must carry (challenge nonce bound to the operational report).
// Must never change a binding without a new label: old agents and new verifiers must disagree loudly.
import { sha256 } from './crypto/index.ts';

/** One measurement extended into a PCR, in the order it was extended. */
export interface MeasurementEvent {
  Pcr: number;
  /** What was measured: a file path, or a name such as `agent:config`. */
  Component: string;
  /** SHA-256, lower-case hex. */
  Digest: string;
}

/** Evidence as an agent sends it, after asking for a challenge. */
export interface EvidenceMessage {
  Nonce: string;
  Events: MeasurementEvent[];
  /** The operational report as the exact JSON text the quote binds. */
  OperationalJson?: string;
  /** TPM mode: the quote (TPMS_ATTEST) and its signature (TPMT_SIGNATURE), base64. */
  Quote?: { Attest: string; Signature: string };
}

/** The PCR agents extend their own measurements into (resettable at locality 0, unused by firmware). */
export const AGENT_MEASUREMENT_PCR = 23;

/** The qualifying data of a quote: the challenge and the operational report it comes with. */
export function evidenceBinding(nonce: Buffer, operationalJson: string | undefined): Buffer {
  return sha256(Buffer.concat([Buffer.from('trustplane-evidence-v1\0'), nonce, sha256(operationalJson ?? '')]));
}

/** The proof of credential activation: the secret the TPM recovered, bound to the host. */
export const CREDENTIAL_SECRET_BYTES = 32;
