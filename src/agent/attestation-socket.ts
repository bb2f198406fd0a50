// Attestation on the agent's socket: an EAR token about this host for a local workload's relying
// party, data sealed to this host's measurement (released by the verifier), and TPM-native sealing.
// Must never return sealed data the verifier (or the TPM) did not release for this measurement.
import { z } from 'zod';
import { UserError } from '../shared/errors.ts';
import { fields, parseInput } from '../shared/http/index.ts';
import type { JsonCall } from './attestation.ts';
import type { SocketOperation } from './socket-api.ts';
import type { Tpm } from './tpm.ts';

const schemas = {
  AttestationToken: z.object({ Nonce: fields.text({ min: 8, max: 512 }).optional() }).strict(),
  Unseal: z.object({ Sealed: fields.text({ min: 1, max: 100_000 }) }).strict(),
  TpmSeal: z.object({ Plaintext: fields.blob({ min: 1, max: 128 }), Pcrs: z.array(fields.integer({ min: 0, max: 23 })).min(1).max(24).optional() }).strict(),
  TpmUnseal: z.object({ Sealed: fields.blob({ min: 1, max: 16_384 }) }).strict(),
};

/** PCRs host-local secrets are sealed to by default: the agent's measurement PCR. */
const DEFAULT_SEAL_PCRS = [23];

export function attestationOperations(options: { call: JsonCall; tpm?: Tpm }): Record<string, SocketOperation> {
  const requireTpm = (): Tpm => {
    if (!options.tpm) throw new UserError('TpmRequired', 'This agent has no TPM (start it with --tpm TCTI).', 400);
    return options.tpm;
  };
  return {
    AttestationToken: async (body) => {
      const input = parseInput(schemas.AttestationToken, body);
      return options.call('/v1/agent/attest/token', input);
    },
    Unseal: async (body) => {
      const input = parseInput(schemas.Unseal, body);
      const reply = await options.call('/v1/agent/attest/unseal', { Sealed: input.Sealed });
      return { Plaintext: Buffer.from(String(reply.Plaintext), 'base64') };
    },
    TpmSeal: async (body) => {
      const input = parseInput(schemas.TpmSeal, body);
      return { Sealed: (await requireTpm().seal(input.Plaintext, input.Pcrs ?? DEFAULT_SEAL_PCRS)).toString('base64') };
    },
    TpmUnseal: async (body) => {
      const input = parseInput(schemas.TpmUnseal, body);
      try {
        return { Plaintext: await requireTpm().unseal(input.Sealed) };
      } catch (error) {
        if (error instanceof UserError) throw error;
        throw new UserError('AccessDeniedException', 'The TPM refused to unseal: the sealed PCR values no longer match this host\'s.', 403);
      }
    },
  };
}
