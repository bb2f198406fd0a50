// Fleet campaigns: the server, as the account's trusted central requester, signs one request per host of a class (or
// a random sample) with its campaign signer (Ed25519, certified by the account's fleet CA for privop signing) and
// relays them; results are sealed to the caller's result key, which the server never holds.
// Must never sign for a host outside the caller's account and class, nor keep the signer key unwrapped.
import type { AuditLog } from '../../shared/audit/index.ts';
import type { Authorizer, Caller } from '../../shared/auth/index.ts';
import {
  canonicalJson, certificatesFromPem, certificateToPem, generateSignerKeyPair, publicKeyPemToDer, randomBytes, randomUuid, signDetachedJws, zeroize,
  type Keyring,
} from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { privopRequestDigest, PRIVOP_JWS_TYPE, type PrivopParameters, type PrivopRequestFile } from '../../shared/privop-wire.ts';
import { SECRET_PURPOSES, type CampaignSignerRecord, type FleetStore, type PrivopStore } from '../../shared/store/index.ts';
import { classArn, classesByName, parseClassName, type AccountCertificateIssuer } from '../fleet/index.ts';
import { describeRelay } from './domain/relay.ts';
import { CAMPAIGN_SIGNER_COMMON_NAME, campaignHosts, campaignRequest, MAX_CAMPAIGN_HOSTS } from './domain/campaign.ts';
import { RESULT_UPLOAD_GRACE_MS } from './domain/relay.ts';
import type { PrivopService } from './service.ts';

const SIGNER_VALIDITY_DAYS = 397;
/** A signer certificate this close to its end is replaced before it signs again. */
const SIGNER_RENEW_BEFORE_MS = 30 * 86_400_000;

export interface CampaignInput {
  Class: string;
  Sample?: number;
  Operation: string;
  Parameters: PrivopParameters;
  /** base64url of the raw X25519 result public key. */
  ResultKey: string;
  TtlSeconds: number;
}

/** A uniform integer in [0, bound) from the crypto module's randomness (rejection sampling, no modulo bias). */
function randomBelow(bound: number): number {
  const limit = Math.floor(0x1_0000_0000 / bound) * bound;
  for (;;) {
    const value = randomBytes(4).readUInt32BE(0);
    if (value < limit) return value % bound;
  }
}

export class CampaignService {
  readonly #relay: PrivopService;
  readonly #store: PrivopStore;
  readonly #fleet: FleetStore;
  readonly #keyring: Keyring;
  readonly #authorizer: Authorizer;
  readonly #authority: AccountCertificateIssuer;
  readonly #region: string;
  readonly #audit?: AuditLog;
  readonly #logger: Logger;
  readonly #now: () => Date;

  constructor(options: { relay: PrivopService; store: PrivopStore; fleet: FleetStore; keyring: Keyring; authorizer: Authorizer; authority: AccountCertificateIssuer;
    region: string; logger: Logger; audit?: AuditLog; now?: () => Date }) {
    this.#relay = options.relay;
    this.#store = options.store;
    this.#fleet = options.fleet;
    this.#keyring = options.keyring;
    this.#authorizer = options.authorizer;
    this.#authority = options.authority;
    this.#region = options.region;
    this.#audit = options.audit;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  /** The account's campaign signer, made (key wrapped under the domain key) on first use and re-certified near its end. */
  async #signer(accountId: string): Promise<CampaignSignerRecord> {
    const existing = await this.#store.getCampaignSigner(accountId);
    if (existing && existing.notAfter.getTime() - this.#now().getTime() > SIGNER_RENEW_BEFORE_MS) return existing;
    const pair = generateSignerKeyPair();
    const issued = await this.#authority.issue(accountId, { subjectPublicKeyDer: publicKeyPemToDer(pair.publicKeyPem),
      commonName: CAMPAIGN_SIGNER_COMMON_NAME, usage: 'privop-signing', validityDays: SIGNER_VALIDITY_DAYS, now: this.#now() });
    const secret = Buffer.from(pair.privateKeyPem);
    try {
      const record: CampaignSignerRecord = { accountId, certificatePem: certificateToPem(issued.certificateDer), notAfter: issued.notAfter,
        privateKey: await this.#keyring.wrapSecret(SECRET_PURPOSES.privopCampaignSigner, accountId, secret), createdAt: this.#now() };
      return await this.#store.putCampaignSigner(record, existing !== undefined);
    } finally {
      zeroize(secret);
    }
  }

  /** One signed request file per host the campaign reaches. */
  async #signRequests(caller: Caller, campaignId: string, input: CampaignInput) {
    const { name } = parseClassName(input.Class);
    const classes = classesByName(await this.#fleet.listClasses(caller.accountId));
    if (!classes.has(name)) throw new UserError('NotFoundException', `Class ${name} does not exist.`, 404);
    const hosts = campaignHosts(await this.#fleet.listHosts(caller.accountId), classes, name, input.Sample, randomBelow);
    if (hosts.length === 0) throw new UserError('ValidationException', `Class ${name} has no active host.`);
    if (hosts.length > MAX_CAMPAIGN_HOSTS) throw new UserError('ValidationException', `A campaign reaches at most ${MAX_CAMPAIGN_HOSTS} hosts; use Sample.`);
    const signer = await this.#signer(caller.accountId);
    const keyBytes = await this.#keyring.unsafeUnwrapSecret(SECRET_PURPOSES.privopCampaignSigner, caller.accountId, signer.privateKey);
    const now = this.#now();
    try {
      const keyPem = keyBytes.toString('utf8');
      const [signerCertificateDer] = certificatesFromPem(signer.certificatePem);
      const files: Array<{ hostId: string; file: PrivopRequestFile; digest: string }> = [];
      for (const host of hosts) {
        const request = campaignRequest({ hostId: host.hostId, operation: input.Operation, parameters: input.Parameters, resultKey: input.ResultKey,
          ttlSeconds: input.TtlSeconds, nonce: randomBytes(24).toString('base64url'), requester: `campaign ${campaignId} by ${caller.principalArn}`, now });
        const signature = await signDetachedJws(keyPem, canonicalJson(request), PRIVOP_JWS_TYPE, signerCertificateDer);
        files.push({ hostId: host.hostId, file: { Request: request, Signature: signature, Certificates: [signer.certificatePem] },
          digest: privopRequestDigest(request).toString('base64url') });
      }
      return { className: name, files, expiresAt: new Date(now.getTime() + input.TtlSeconds * 1000 + RESULT_UPLOAD_GRACE_MS), now };
    } finally {
      zeroize(keyBytes);
    }
  }

  async startCampaign(caller: Caller, input: CampaignInput): Promise<{ CampaignId: string; Hosts: Array<{ HostId: string; RelayId: string }>; ExpiresAt: Date }> {
    await this.#authorizer.require(caller, { action: 'privop:StartCampaign', resource: classArn(this.#region, caller.accountId, input.Class),
      resourceAccountId: caller.accountId });
    const campaignId = `c-${randomUuid()}`;
    const signed = await this.#signRequests(caller, campaignId, input);
    const relays = signed.files.map((entry) => ({ relayId: `r-${randomUuid()}`, accountId: caller.accountId, hostId: entry.hostId, campaignId,
      submittedBy: caller.principalArn, requestDigest: entry.digest, operation: input.Operation, createdAt: signed.now, expiresAt: signed.expiresAt,
      bytes: Buffer.from(JSON.stringify(entry.file)) }));
    await this.#relay.recordRelays(relays, { campaignId, accountId: caller.accountId, className: signed.className, operation: input.Operation,
      startedBy: caller.principalArn, createdAt: signed.now, expiresAt: signed.expiresAt, hostCount: relays.length });
    await this.#audit?.record({ requestId: randomUuid(), accountId: caller.accountId, principalArn: caller.principalArn, service: 'trustplane',
      operation: 'PrivopCampaignStarted', resource: classArn(this.#region, caller.accountId, signed.className), decision: 'Allow', outcome: 'Success',
      decidingStatement: `campaign ${campaignId} ${input.Operation} on ${relays.length} host(s) of ${signed.className}`, latencyMs: 0 })
      .catch((error: unknown) => this.#logger.error({ err: error, campaignId }, 'campaign start could not be audited'));
    return { CampaignId: campaignId, Hosts: relays.map((relay) => ({ HostId: relay.hostId, RelayId: relay.relayId })), ExpiresAt: signed.expiresAt };
  }

  /** The signed request files of a campaign, for couriers to carry offline; nothing is relayed. */
  async signCampaignRequests(caller: Caller, input: CampaignInput): Promise<{ CampaignId: string; Requests: Array<{ HostId: string; Request: PrivopRequestFile }> }> {
    await this.#authorizer.require(caller, { action: 'privop:SignCampaignRequests', resource: classArn(this.#region, caller.accountId, input.Class),
      resourceAccountId: caller.accountId });
    const campaignId = `c-${randomUuid()}`;
    const signed = await this.#signRequests(caller, campaignId, input);
    return { CampaignId: campaignId, Requests: signed.files.map((entry) => ({ HostId: entry.hostId, Request: entry.file })) };
  }

  async describeCampaign(caller: Caller, campaignId: string) {
    await this.#authorizer.require(caller, { action: 'privop:DescribeCampaign',
      resource: `arn:aws:trustplane:${this.#region}:${caller.accountId}:privop-campaign/${campaignId}`, resourceAccountId: caller.accountId });
    const campaign = await this.#store.getCampaign(campaignId);
    if (!campaign || campaign.accountId !== caller.accountId) throw new UserError('NotFoundException', `No campaign ${campaignId} in this account.`, 404);
    const relays = (await this.#store.relaysOfCampaign(campaignId)).map(describeRelay);
    const counts: Record<string, number> = { pending: 0, delivered: 0, completed: 0, refused: 0, expired: 0 };
    for (const relay of relays) counts[relay.Status] = (counts[relay.Status] ?? 0) + 1;
    return { CampaignId: campaignId, Class: campaign.className, Operation: campaign.operation, StartedBy: campaign.startedBy,
      CreatedAt: campaign.createdAt, ExpiresAt: campaign.expiresAt, HostCount: campaign.hostCount, Counts: counts, Hosts: relays };
  }
}
