// Attestation on the agent's socket: an EAR token about this host for a local workload's relying
// party, data sealed to this host's measurement (released by the verifier), TPM-native sealing,
// attested certificates (this host's, and for local workloads' CSRs), certificate path validation,
// and app keys kept by the verifier for attested hosts of a class.
// Must never return sealed data the verifier (or the TPM) did not release for this measurement, nor a private key.
import { z } from 'zod';
import { UserError } from '../shared/errors.ts';
import { fields, parseInput } from '../shared/http/index.ts';
import { zeroize } from '../shared/crypto/index.ts';
import type { JsonCall } from './attestation.ts';
import type { CertificateVerifier } from './certificate-verifier.ts';
import type { HostCertificates } from './host-certificate.ts';
import type { SocketOperation } from './socket-api.ts';
import type { Tpm } from './tpm.ts';

const schemas = {
  AttestationToken: z.object({ Nonce: fields.text({ min: 8, max: 64 }).optional() }).strict(),
  Unseal: z.object({ Sealed: fields.text({ min: 1, max: 100_000 }) }).strict(),
  TpmSeal: z.object({ Plaintext: fields.blob({ min: 1, max: 128 }), Pcrs: z.array(fields.integer({ min: 0, max: 23 })).min(1).max(24).optional() }).strict(),
  TpmUnseal: z.object({ Sealed: fields.blob({ min: 1, max: 16_384 }) }).strict(),
  HostCertificate: z.object({}).strict(),
  IssueCertificate: z.object({ Csr: fields.text({ min: 1, max: 16_384 }), LifetimeSeconds: fields.integer({ min: 1, max: 30 * 86_400 }).optional() }).strict(),
  VerifyCertificate: z.object({ Certificate: fields.text({ min: 1, max: 65_536 }), Chain: z.array(fields.text({ min: 1, max: 65_536 })).max(8).optional(),
    Purpose: z.enum(['server', 'client']).optional() }).strict(),
  StoreKey: z.object({ Name: fields.text({ min: 1, max: 128 }), Key: fields.blob({ min: 1, max: 1024 }), Class: fields.text({ min: 1, max: 512 }).optional() }).strict(),
  GetKey: z.object({ Name: fields.text({ min: 1, max: 128 }), Class: fields.text({ min: 1, max: 512 }).optional() }).strict(),
};

/**
 * PCRs host-local secrets are sealed to by default: firmware, boot loader and Secure Boot state
 * (0, 2, 4, 7: nothing on the host can reset them) and the agent's measurement PCR (23: what it measured).
 */
const DEFAULT_SEAL_PCRS = [0, 2, 4, 7, 23];

export function attestationOperations(options: { call: JsonCall; tpm?: Tpm; certificates: HostCertificates; verifier: CertificateVerifier }):
  Record<string, SocketOperation> {
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
    HostCertificate: async (body) => {
      parseInput(schemas.HostCertificate, body);
      return { ...options.certificates.describe() };
    },
    IssueCertificate: async (body) => {
      const input = parseInput(schemas.IssueCertificate, body);
      const reply = await options.call('/v1/agent/attest/certificate', input);
      return { Certificate: reply.Certificate, Chain: reply.Chain, Serial: reply.Serial, NotAfter: reply.NotAfter };
    },
    VerifyCertificate: async (body) => {
      const input = parseInput(schemas.VerifyCertificate, body);
      const result = await options.verifier.verify({ certificatePem: input.Certificate, chainPem: input.Chain, purpose: input.Purpose });
      return { Valid: result.valid, Reason: result.reason, Subject: result.subject, Serial: result.serial, NotAfter: result.notAfter.toISOString() };
    },
    StoreKey: async (body) => {
      const input = parseInput(schemas.StoreKey, body);
      try {
        return await options.call('/v1/agent/attest/key/store', { Name: input.Name, Key: input.Key.toString('base64'), Class: input.Class });
      } finally {
        zeroize(input.Key);
      }
    },
    GetKey: async (body) => {
      const input = parseInput(schemas.GetKey, body);
      const reply = await options.call('/v1/agent/attest/key/get', input);
      // A Buffer: the socket answers it in base64 and zeroizes it.
      return { Name: reply.Name, Class: reply.Class, Key: Buffer.from(String(reply.Key), 'base64') };
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
