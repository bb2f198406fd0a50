// Attestation results as EAR claims (IETF RATS "EAT Attestation Results"): one submodule per
// host with its ear.status, the verifier's identity, and the relying party's nonce echoed.
// Must never do I/O, nor say `affirming` for a host that is not (pending and silent are not).
import type { AttestationStatus } from '../../../shared/store/index.ts';

export const EAR_PROFILE = 'tag:github.com,2023:veraison/ear';
export const EAR_TOKEN_TYPE = 'JWT';

export type EarStatus = 'affirming' | 'warning' | 'contraindicated' | 'none';

/** Silent hosts could be anything by now: a relying party must not trust them. Pending ones make no claim. */
export function earStatusOf(status: AttestationStatus | 'pending'): EarStatus {
  switch (status) {
    case 'affirming': return 'affirming';
    case 'warning': return 'warning';
    case 'contraindicated': case 'silent': return 'contraindicated';
    default: return 'none';
  }
}

export interface EarSubmodule {
  hostId: string;
  status: AttestationStatus;
  mode?: string;
  classes: string[];
  failures: string[];
  lastVerified?: Date;
  policyId?: string;
  quarantined: boolean;
}

export function earClaims(input: { issuer: string; now: Date; lifetimeSeconds: number; nonce?: string;
  verifierId: { developer: string; build: string }; submods: EarSubmodule[] }): Record<string, unknown> {
  const iat = Math.floor(input.now.getTime() / 1000);
  const submods = Object.fromEntries(input.submods.map((submod) => [submod.hostId, {
    'ear.status': earStatusOf(submod.status),
    ...(submod.policyId ? { 'ear.appraisal-policy-id': submod.policyId } : {}),
    'trustplane.status': submod.status,
    ...(submod.mode ? { 'trustplane.attestation-mode': submod.mode } : {}),
    'trustplane.classes': submod.classes,
    'trustplane.failures': submod.failures,
    'trustplane.quarantined': submod.quarantined,
    ...(submod.lastVerified ? { 'trustplane.last-verified': Math.floor(submod.lastVerified.getTime() / 1000) } : {}),
  }]));
  return { iss: input.issuer, iat, exp: iat + input.lifetimeSeconds, eat_profile: EAR_PROFILE, 'ear.verifier-id': input.verifierId,
    ...(input.nonce === undefined ? {} : { eat_nonce: input.nonce }), submods };
}
