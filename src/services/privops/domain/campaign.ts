// What a campaign is made of: the hosts of a class (and its nested classes) it reaches, a fair random sample of
// them when asked, and the request each host gets. Pure: no I/O, randomness passed in.
// Must never reach a host outside the class's subtree, nor one that is not active.
import { UserError } from '../../../shared/errors.ts';
import { MAX_PRIVOP_WINDOW_SECONDS, PRIVOP_CAMPAIGN_SIGNER_SUBJECT, privopRequestSchema, PRIVOP_REQUEST_VERSION, type PrivopParameters, type PrivopRequest } from '../../../shared/privop-wire.ts';
import type { HostClassRecord, HostRecord } from '../../../shared/store/index.ts';
import { lineage } from '../../fleet/index.ts';

/** The campaign signer's certificate subject: hosts narrow their "server" trust entry to it. */
export const CAMPAIGN_SIGNER_COMMON_NAME = PRIVOP_CAMPAIGN_SIGNER_SUBJECT.replace(/^CN=/, '');
export const MAX_CAMPAIGN_HOSTS = 10_000;

/** Active hosts of `className` or a class nested in it, by host id; a sample of `sample` of them when given. */
export function campaignHosts(hosts: readonly HostRecord[], classes: ReadonlyMap<string, HostClassRecord>, className: string,
  sample: number | undefined, randomBelow: (bound: number) => number): HostRecord[] {
  const reached = hosts.filter((host) => host.status === 'active' && lineage(classes, host.classes).has(className))
    .sort((a, b) => a.hostId.localeCompare(b.hostId));
  if (sample === undefined || sample >= reached.length) return reached;
  // Fisher–Yates over the first `sample` places: every subset of that size is as likely.
  const chosen = [...reached];
  for (let index = 0; index < sample; index += 1) {
    const pick = index + randomBelow(chosen.length - index);
    [chosen[index], chosen[pick]] = [chosen[pick] as HostRecord, chosen[index] as HostRecord];
  }
  return chosen.slice(0, sample).sort((a, b) => a.hostId.localeCompare(b.hostId));
}

export interface CampaignRequestInput {
  hostId: string;
  operation: string;
  parameters: PrivopParameters;
  resultKey: string;
  ttlSeconds: number;
  nonce: string;
  requester: string;
  now: Date;
}

/** The request one host of a campaign gets, checked as any request is (a bad operation or parameter is the caller's mistake). */
export function campaignRequest(input: CampaignRequestInput): PrivopRequest {
  if (input.ttlSeconds < 1 || input.ttlSeconds > MAX_PRIVOP_WINDOW_SECONDS) {
    throw new UserError('ValidationException', `TtlSeconds must be from 1 to ${MAX_PRIVOP_WINDOW_SECONDS}.`);
  }
  const candidate = { Version: PRIVOP_REQUEST_VERSION, Operation: input.operation, Parameters: input.parameters, Target: { HostId: input.hostId },
    NotBefore: input.now.toISOString(), NotAfter: new Date(input.now.getTime() + input.ttlSeconds * 1000).toISOString(), Nonce: input.nonce,
    Requester: input.requester.slice(0, 256), ResultKey: input.resultKey };
  const checked = privopRequestSchema.safeParse(candidate);
  if (!checked.success) {
    throw new UserError('ValidationException', checked.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; '));
  }
  return checked.data;
}
