// The verifier: class attestation settings and reference values, TPM enrolment by credential
// activation (after joining, or vouching for the TPM of a host enrolling without a token), challenges and evidence (push mode), verdicts with corrective actions, silence
// detection, sealing to a measurement, EAR tokens for relying parties, key release gating, attested
// host certificates (with their CRL and status) and app keys kept for attested hosts of a class.
// Must never affirm what it could not check, nor keep a host's security attributes outside its vault.
import type { AuditLog } from '../../shared/audit/index.ts';
import type { Authorizer, Caller, ConditionValue } from '../../shared/auth/index.ts';
import {
  checkEndorsementCertificate, constantTimeEqual, endorsementKeyFingerprint, generateAsymmetricPair, hkdf, makeCredential, parseTpmPublic, publicJwk, randomBytes, randomUuid, sha256, sha256Hex,
  signDetached, signJwt, TpmFormatError, verifyDetached, zeroize, type Keyring, type TpmPublic,
  certificateToPem, CertificateRequestError, normalizeHexSerial, parseCertificateRequest,
  type ParsedCertificateRequest, type RevocationListInput,
} from '../../shared/crypto/index.ts';
import { attestedHostUri, hostUri } from '../../shared/fleet-wire.ts';
import { AGENT_MEASUREMENT_PCR, type EvidenceMessage } from '../../shared/attest-wire.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  HOST_REMOVED_REASON, SECRET_PURPOSES, type AttestationStatus, type AttestStore, type ClassAttestationSettings, type CorrectiveAction, type FleetStore,
  type HostAttestationRecord, type HostClassRecord, type HostRecord, type HostVaultRecord, type VerdictWrite, type VerifierKeyRecord,
} from '../../shared/store/index.ts';
import { classArn, classesByName, hostArn, lineage, parseClassName, type AccountCertificateIssuer } from '../fleet/index.ts';
import { appraise, type Appraisal } from './domain/appraisal.ts';
import { parseOperationalReport, expectedFromReport, type AttestationFailure, type ReportedOperational } from './domain/operational.ts';
import {
  canonicalReferencePolicy, parseReferencePolicy, referenceFromMeasurements, type ReferencePolicyDocument,
} from './domain/reference-policy.ts';
import {
  ACTION_TRIGGERS, actionsFor, CORRECTIVE_ACTIONS, DEFAULT_ACTIONS, DEFAULT_INTERVAL_SECONDS, DEFAULT_SILENT_AFTER, effectiveSettings,
  MAX_INTERVAL_SECONDS, mayHoldKeys, MIN_INTERVAL_SECONDS, referenceClass,
} from './domain/settings.ts';
import { openVault, sealVault, VAULT_FORMAT, type HostVault } from './domain/vault.ts';
import { checkChallenge, issueChallenge, UsedChallenges } from './domain/challenges.ts';
import { earClaims, EAR_TOKEN_TYPE } from './domain/ear.ts';
import { openSealed, sealToMeasurement, measurementDigest } from './domain/sealing.ts';

const NONCE_TTL_MS = 30_000;
const CREDENTIAL_TTL_MS = 5 * 60_000;
/** Slack on the silence window for the batched last-seen times (written once a second). */
const SILENCE_GRACE_MS = 2_000;
const EAR_LIFETIME_SECONDS = 300;
const SILENT_BATCH = 500;
const ALERT_BATCH = 50;
const ALERT_MAX_ATTEMPTS = 10;
const ALERT_TIMEOUT_MS = 5_000;
const ALERT_MAX_BACKOFF_MS = 5 * 60_000;
const MAX_SEAL_BYTES = 64 * 1024;
const VERIFIER_ID = { developer: 'trustplane', build: 'trustplane 0.1.0' };
const DAY_MS = 86_400_000;
const DEFAULT_ATTESTED_CERTIFICATE_LIFETIME_MS = DAY_MS;
const MAX_CERTIFICATE_DNS_NAMES = 20;
/** A CRL is valid for an hour and re-signed at half-life, or at once when the revoked set changes. */
const CRL_VALIDITY_MS = 3600_000;
const CRL_REFRESH_MS = CRL_VALIDITY_MS / 2;

const notFound = (message: string) => new UserError('NotFoundException', message, 404);

export interface ClassAttestationInput {
  Mode?: 'tpm' | 'software' | 'none';
  IntervalSeconds?: number;
  SilentAfter?: number;
  Actions?: Partial<Record<'contraindicated' | 'warning' | 'silent', CorrectiveAction[]>>;
  WebhookUrl?: string;
  /** false: hosts enrol only with a TPM whose EK is allowed in the class (no join tokens). */
  JoinTokens?: boolean;
}

/** The keys a TPM enrols with (token-less) or registers after joining: TPM2B_PUBLIC areas, the EK certificate in DER. */
export interface TpmKeys {
  EkPublic: Buffer;
  EkCertificate?: Buffer;
  AkPublic: Buffer;
}

export interface HostAttestationView {
  Status: AttestationStatus;
  Mode: string;
  Failures: AttestationFailure[];
  LastVerified?: string;
  LastEvidence?: string;
  Measurements?: Record<string, string>;
  AttestationKeyActivated?: boolean;
}

/** What the fleet push asks before it gives a host keys. */
export interface KeyReleaseContext {
  mayHoldKeys: boolean;
  conditionKeys: Record<string, ConditionValue>;
}

export interface AttestationServiceOptions {
  store: AttestStore;
  fleet: FleetStore;
  keyring: Keyring;
  authorizer: Authorizer;
  region: string;
  logger: Logger;
  audit?: AuditLog;
  /** The public base URL relying parties reach this server at (EAR issuer, discovery). */
  issuer: () => string;
  /** EK CA certificates (DER): when set, TPM enrolment needs an EK certificate chained to one of them. */
  ekCaCertificates?: Buffer[];
  /** Signs with the account's fleet CA (the fleet service holds it); absent: no attested certificates nor CRLs. */
  authority?: AccountAuthority;
  /** Lifetime of attested host certificates (default 24 h). */
  attestedCertificateLifetimeMs?: number;
  now?: () => Date;
}

/** What the verifier needs of the account's fleet CA: signing, never the key. */
export interface AccountAuthority extends AccountCertificateIssuer {
  /** Undefined when the account has no CA yet. */
  signRevocationList(accountId: string, input: Omit<RevocationListInput, 'authority'>): Promise<Buffer | undefined>;
}

/** What the status endpoint says of one attested certificate. */
export interface CertificateStatusView {
  Serial: string;
  Status: 'good' | 'revoked' | 'unknown';
  RevokedAt?: string;
  Reason?: string;
  NotAfter?: string;
}

interface HostContext {
  host: HostRecord;
  settings: ClassAttestationSettings | undefined;
  referenceClassName: string | undefined;
  classLineage: string[];
}

/** A TPM public area a host sent; malformed is the caller's mistake. */
function parseTpmArea(bytes: Buffer): TpmPublic {
  try {
    return parseTpmPublic(bytes);
  } catch (error) {
    if (error instanceof TpmFormatError) throw new UserError('ValidationException', `A TPM public area is malformed: ${error.message}`);
    throw error;
  }
}

/** The verdict of a host nothing was appraised for yet (a TPM host's AK is not trusted until activation). */
function pendingVerdict(host: HostRecord, context: HostContext): HostAttestationRecord {
  return { hostId: host.hostId, accountId: host.accountId, status: 'pending', mode: context.settings?.mode ?? 'software',
    akTrusted: context.settings?.mode !== 'tpm', failureCount: 0 };
}

export class AttestationService {
  readonly #options: AttestationServiceOptions;
  readonly #now: () => Date;
  readonly #classCache = new Map<string, { revision: number; classes: Map<string, HostClassRecord> }>();
  readonly #referenceCache = new Map<string, { version: number; signature: string; document: ReferencePolicyDocument }>();
  #verifierKey?: Promise<VerifierKeyRecord>;
  #challengeKeyBytes?: Promise<Buffer>;
  readonly #usedChallenges = new UsedChallenges();
  readonly #attestationKeys = new Map<string, TpmPublic>();
  /** Hosts whose evidence changed nothing but the time since the last flush. */
  readonly #seen = new Map<string, { hostId: string; at: Date; silentAt: Date }>();
  #alertsRunning = false;
  readonly #revocationLists = new Map<string, { der: Buffer; fingerprint: string; refreshAt: number }>();

  constructor(options: AttestationServiceOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  async #require(caller: Caller, action: string, resource: string): Promise<void> {
    await this.#options.authorizer.require(caller, { action, resource, resourceAccountId: caller.accountId });
  }

  /** The account's classes, reused while the change feed (which every class change writes) stands still. */
  async #classes(accountId: string): Promise<Map<string, HostClassRecord>> {
    const revision = await this.#options.fleet.latestRevision();
    const cached = this.#classCache.get(accountId);
    if (cached && cached.revision === revision) return cached.classes;
    const classes = classesByName(await this.#options.fleet.listClasses(accountId));
    this.#classCache.set(accountId, { revision, classes });
    return classes;
  }

  async #context(host: HostRecord): Promise<HostContext> {
    const classes = await this.#classes(host.accountId);
    return { host, settings: effectiveSettings(classes, host.classes), referenceClassName: referenceClass(classes, host.classes),
      classLineage: [...lineage(classes, host.classes)].sort() };
  }

  // ---- class settings and reference values -------------------------------------------------------

  async configureClass(caller: Caller, rawName: string, input: ClassAttestationInput): Promise<ClassAttestationSettings | undefined> {
    const { name } = parseClassName(rawName);
    await this.#require(caller, 'fleet:SetClassAttestation', classArn(this.#options.region, caller.accountId, name));
    const existing = (await this.#options.fleet.getClass(caller.accountId, name));
    if (!existing) throw notFound(`Class ${name} does not exist.`);
    let settings: ClassAttestationSettings | undefined;
    if (input.Mode === 'none') {
      if (input.JoinTokens === false) throw new UserError('ValidationException', 'Only an attesting class can refuse join tokens (its hosts enrol with their TPM).');
      settings = undefined;
    } else {
      const mode = input.Mode ?? existing.attestation?.mode;
      if (!mode) throw new UserError('ValidationException', `Class ${name} does not attest yet: say which mode (--attestation tpm|software).`);
      const interval = input.IntervalSeconds ?? existing.attestation?.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS;
      if (!Number.isInteger(interval) || interval < MIN_INTERVAL_SECONDS || interval > MAX_INTERVAL_SECONDS) {
        throw new UserError('ValidationException', `The interval must be ${MIN_INTERVAL_SECONDS} s to ${MAX_INTERVAL_SECONDS} s, in whole seconds.`);
      }
      const actions = { ...(existing.attestation?.actions ?? DEFAULT_ACTIONS) };
      for (const trigger of ACTION_TRIGGERS) {
        const given = input.Actions?.[trigger];
        if (given === undefined) continue;
        const unknown = given.filter((action) => !CORRECTIVE_ACTIONS.includes(action));
        if (unknown.length > 0) throw new UserError('ValidationException', `Unknown corrective action ${unknown.join(', ')}: use ${CORRECTIVE_ACTIONS.join(', ')}.`);
        actions[trigger] = [...new Set(given)].sort();
      }
      const webhookUrl = input.WebhookUrl === '' ? undefined : input.WebhookUrl ?? existing.attestation?.webhookUrl;
      if (webhookUrl !== undefined && !/^https?:\/\//.test(webhookUrl)) {
        throw new UserError('ValidationException', 'The alert webhook must be an http(s) URL.');
      }
      settings = { mode, intervalSeconds: interval, silentAfter: input.SilentAfter ?? existing.attestation?.silentAfter ?? DEFAULT_SILENT_AFTER,
        actions, webhookUrl, joinTokens: input.JoinTokens ?? existing.attestation?.joinTokens ?? true };
    }
    await this.#options.store.setClassAttestation(caller.accountId, name, settings, this.#now());
    return settings;
  }

  /** Sets a class's reference values: given explicitly, or adopted from a known-good host's current measurements. */
  async setReference(caller: Caller, rawName: string, input: { FromHost?: string; Document?: unknown; WithOperational?: boolean }) {
    const { name } = parseClassName(rawName);
    await this.#require(caller, 'fleet:SetClassReference', classArn(this.#options.region, caller.accountId, name));
    const found = await this.#options.fleet.getClass(caller.accountId, name);
    if (!found) throw notFound(`Class ${name} does not exist.`);
    if (!found.attestation) throw new UserError('ValidationException', `Class ${name} does not attest: set --attestation first.`);
    let document: ReferencePolicyDocument;
    if (input.FromHost !== undefined) {
      const host = await this.#options.fleet.getHost(caller.accountId, input.FromHost);
      if (!host) throw notFound(`Host ${input.FromHost} does not exist.`);
      const vault = await this.#readVault(host.hostId);
      if (!vault?.Current || Object.keys(vault.Current).length === 0) {
        throw new UserError('ConflictException', `Host ${host.hostId} has sent no measurements yet; wait for its first evidence.`, 409);
      }
      document = referenceFromMeasurements(vault.Current, input.WithOperational && vault.Operational ? expectedFromReport(vault.Operational) : undefined);
    } else if (input.Document !== undefined) {
      document = parseReferencePolicy(input.Document);
    } else {
      throw new UserError('ValidationException', 'Give the reference values (--file policy.json) or a host to adopt them from (--from-host).');
    }
    const canonical = canonicalReferencePolicy(document);
    const signature = await this.#signDetached(Buffer.from(canonical));
    const wrapped = await this.#options.keyring.wrapSecret(SECRET_PURPOSES.referencePolicy, `${caller.accountId}/${name}`, Buffer.from(canonical));
    const version = await this.#options.store.addReferencePolicy({ accountId: caller.accountId, className: name, document: wrapped, signature,
      createdAt: this.#now(), createdBy: caller.principalArn });
    this.#options.logger.info({ className: name, version, components: Object.keys(document.Components).length }, 'reference values set');
    return { Version: version, Document: JSON.parse(canonical) as ReferencePolicyDocument };
  }

  async getReference(caller: Caller, rawName: string) {
    const { name } = parseClassName(rawName);
    await this.#require(caller, 'fleet:GetClassReference', classArn(this.#options.region, caller.accountId, name));
    const loaded = await this.#reference(caller.accountId, name);
    if (!loaded) throw notFound(`Class ${name} has no reference values.`);
    return { Version: loaded.version, Document: loaded.document };
  }

  /** The latest reference values of a class, their signature checked (a tampered row is refused, loudly). */
  async #reference(accountId: string, className: string): Promise<{ version: number; document: ReferencePolicyDocument } | undefined> {
    const record = await this.#options.store.latestReferencePolicy(accountId, className);
    if (!record) return undefined;
    const cacheKey = `${accountId}/${className}`;
    const cached = this.#referenceCache.get(cacheKey);
    if (cached && cached.version === record.version && cached.signature === record.signature) return cached;
    const key = await this.#verifierSigningKey();
    const document = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.referencePolicy, cacheKey, record.document);
    if (!(await verifyDetached(key.publicKeyDer, record.signature, document))) {
      this.#options.logger.error({ className, version: record.version }, 'reference values fail their signature check: ignoring them');
      throw new Error(`the reference values of class ${className} (version ${record.version}) fail their signature check`);
    }
    const loaded = { version: record.version, signature: record.signature, document: parseReferencePolicy(JSON.parse(document.toString('utf8'))) };
    this.#referenceCache.set(cacheKey, loaded);
    return loaded;
  }

  // ---- the verifier's signing key ------------------------------------------------------------------

  #verifierSigningKey(): Promise<VerifierKeyRecord> {
    this.#verifierKey ??= this.#loadOrMakeVerifierKey();
    this.#verifierKey.catch(() => { this.#verifierKey = undefined; });
    return this.#verifierKey;
  }

  async #loadOrMakeVerifierKey(): Promise<VerifierKeyRecord> {
    const existing = await this.#options.store.listVerifierKeys();
    if (existing.length > 0) return existing[existing.length - 1];
    const pair = await generateAsymmetricPair('ECC_NIST_P256');
    try {
      const keyId = `tpv-${sha256Hex(pair.publicKeyDer).slice(0, 16)}`;
      const privateKey = await this.#options.keyring.wrapSecret(SECRET_PURPOSES.verifierSigningKey, keyId, pair.privateKeyDer);
      const keys = await this.#options.store.addVerifierKey({ keyId, publicKeyDer: pair.publicKeyDer, privateKey, createdAt: this.#now() });
      return keys[keys.length - 1];
    } finally {
      zeroize(pair.privateKeyDer);
    }
  }

  async #withSigningKey<T>(use: (privateKey: Buffer, keyId: string) => Promise<T>): Promise<T> {
    const key = await this.#verifierSigningKey();
    const privateKey = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.verifierSigningKey, key.keyId, key.privateKey);
    try {
      return await use(privateKey, key.keyId);
    } finally {
      zeroize(privateKey);
    }
  }

  /**
   * The key challenges are MACed with, derived from the verifier's signing key so every replica
   * sharing the store checks every other's challenges. Kept in memory for the process's life.
   */
  #challengeKey(): Promise<Buffer> {
    this.#challengeKeyBytes ??= this.#withSigningKey(async (privateKey) => hkdf('sha256', privateKey, Buffer.alloc(0),
      Buffer.from('trustplane-attestation-challenge-v1'), 32));
    this.#challengeKeyBytes.catch(() => { this.#challengeKeyBytes = undefined; });
    return this.#challengeKeyBytes;
  }

  #signDetached(payload: Buffer): Promise<string> {
    return this.#withSigningKey((privateKey, keyId) => signDetached(privateKey, keyId, payload));
  }

  async jwks(): Promise<{ keys: unknown[] }> {
    const keys = await this.#options.store.listVerifierKeys();
    if (keys.length === 0) keys.push(await this.#verifierSigningKey());
    return { keys: await Promise.all(keys.map((key) => publicJwk(key.publicKeyDer, key.keyId))) };
  }

  openidConfiguration(): Record<string, unknown> {
    const issuer = this.#options.issuer();
    return { issuer, jwks_uri: `${issuer}/.well-known/jwks.json`, id_token_signing_alg_values_supported: ['ES256'],
      response_types_supported: ['id_token'], subject_types_supported: ['public'], claims_supported: ['ear.verifier-id', 'submods', 'eat_nonce'] };
  }

  // ---- vaults --------------------------------------------------------------------------------------

  /** A host's vault for reading only: the unwrapped key never leaves this call. */
  async #readVault(hostId: string): Promise<HostVault | undefined> {
    const { vault, vaultKey } = await this.#openVaultOf(hostId);
    zeroize(vaultKey);
    return vault;
  }

  /** A host's vault and (a copy of) its key, for callers that write it back; they zeroize the key. */
  async #openVaultOf(hostId: string): Promise<{ record?: HostVaultRecord; vault?: HostVault; vaultKey?: Buffer }> {
    const record = await this.#options.store.getVault(hostId);
    if (!record) return {};
    const vaultKey = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.hostVaultKey, hostId, record.vaultKey);
    try {
      return { record, vault: openVault(vaultKey, hostId, record.format, record.ciphertext), vaultKey: Buffer.from(vaultKey) };
    } finally {
      zeroize(vaultKey);
    }
  }

  /** The host's vault, made (with a new vault key and a pending verdict) the first time it is needed. */
  async #vaultOf(context: HostContext): Promise<{ record: HostVaultRecord; vault: HostVault; vaultKey: Buffer }> {
    const opened = await this.#openVaultOf(context.host.hostId);
    if (opened.record && opened.vault && opened.vaultKey) return opened as { record: HostVaultRecord; vault: HostVault; vaultKey: Buffer };
    const { host } = context;
    const created = await this.#createVault(host, { Failures: [] }, pendingVerdict(host, context));
    if (!created) {
      const raced = await this.#openVaultOf(host.hostId);
      if (!raced.record || !raced.vault || !raced.vaultKey) throw new UserError('HostRevokedException', `Host ${host.hostId} was removed from the fleet.`, 403);
      return raced as { record: HostVaultRecord; vault: HostVault; vaultKey: Buffer };
    }
    return this.#vaultOf(context);
  }

  /** A new vault under a new vault key, with the host's first verdict; false when the host has one (or is gone). */
  async #createVault(host: HostRecord, vault: HostVault, attestation: HostAttestationRecord): Promise<boolean> {
    const vaultKey = randomBytes(32);
    try {
      const record: HostVaultRecord = { hostId: host.hostId, accountId: host.accountId, format: VAULT_FORMAT, revision: 1,
        vaultKey: await this.#options.keyring.wrapSecret(SECRET_PURPOSES.hostVaultKey, host.hostId, vaultKey),
        ciphertext: sealVault(vaultKey, host.hostId, vault) };
      return await this.#options.store.createVault(record, attestation);
    } finally {
      zeroize(vaultKey);
    }
  }

  #resealed(record: HostVaultRecord, vaultKey: Buffer, vault: HostVault): HostVaultRecord {
    return { ...record, format: VAULT_FORMAT, revision: record.revision + 1, ciphertext: sealVault(vaultKey, record.hostId, vault) };
  }

  // ---- TPM enrolment ---------------------------------------------------------------------------------

  /**
   * Registers a host's EK and AK and answers with a credential only that TPM can activate, and only
   * if the AK lives in it (MakeCredential binds the AK's name). An activated AK is never replaced.
   */
  async registerTpm(host: HostRecord, input: TpmKeys) {
    const context = await this.#context(host);
    if (context.settings?.mode !== 'tpm') {
      throw new UserError('ValidationException', 'No class of this host attests with a TPM; run the agent without --tpm or change the class.');
    }
    const { ek, ak } = this.#checkTpmKeys(input);
    const { record, vault, vaultKey } = await this.#vaultOf(context);
    try {
      const akName = ak.name.toString('base64');
      if (vault.Tpm?.ActivatedAt) {
        if (vault.Tpm.AkName === akName && vault.Tpm.EkPublic === input.EkPublic.toString('base64')) return { AlreadyActivated: true };
        throw new UserError('ConflictException', 'This host already has an activated attestation key; remove and re-enrol the host to change its TPM.', 409);
      }
      const secret = randomBytes(32);
      try {
        const credential = this.#credentialFor(ek, ak.name, secret);
        vault.Tpm = { EkPublic: input.EkPublic.toString('base64'), EkCertificate: input.EkCertificate?.toString('base64'),
          AkPublic: input.AkPublic.toString('base64'), AkName: akName,
          PendingCredential: { SecretDigest: sha256Hex(secret), ExpiresAt: new Date(this.#now().getTime() + CREDENTIAL_TTL_MS).toISOString() } };
        const written = await this.#options.store.recordVerdict({ attestation: await this.#attestationRecord(host, context),
          vault: { record: this.#resealed(record, vaultKey, vault), expectedRevision: record.revision }, entitlementChanged: false }, this.#now());
        if (!written) throw new UserError('ConflictException', 'The host\'s vault changed meanwhile; try again.', 409);
        return { CredentialBlob: credential.credentialBlob, EncryptedSecret: credential.encryptedSecret };
      } finally {
        zeroize(secret);
      }
    } finally {
      zeroize(vaultKey);
    }
  }

  /** An enrolling TPM's keys, parsed: an AK fit for quotes, an EK its certificate (and the EK CAs, when configured) vouch for. */
  #checkTpmKeys(input: TpmKeys): { ek: TpmPublic; ak: TpmPublic } {
    const ek = parseTpmArea(input.EkPublic);
    const ak = parseTpmArea(input.AkPublic);
    // An AK fit for quotes: restricted signing key that cannot leave its TPM.
    const FIXED_TPM = 1 << 1; const RESTRICTED = 1 << 16; const SIGN = 1 << 18;
    if ((ak.objectAttributes & (FIXED_TPM | RESTRICTED | SIGN)) !== (FIXED_TPM | RESTRICTED | SIGN)) {
      throw new UserError('ValidationException', 'The attestation key must be a restricted signing key fixed to its TPM.');
    }
    this.#checkEkCertificate(ek, input.EkCertificate);
    return { ek, ak };
  }

  #credentialFor(ek: TpmPublic, akName: Buffer, secret: Buffer) {
    try {
      return makeCredential(ek, akName, secret);
    } catch (error) {
      if (error instanceof TpmFormatError || error instanceof RangeError) {
        throw new UserError('ValidationException', `The EK cannot protect a credential: ${error.message}`);
      }
      throw error;
    }
  }

  // ---- token-less TPM enrolment (the fleet admits the host; the verifier vouches for its TPM) -------

  /**
   * Checks the keys of a TPM enrolling without a join token, before anything about the host is
   * known: the AK is fit for quotes, the EK certificate (required with --ek-ca) certifies the EK and
   * chains to an EK CA. Returns the EK's fingerprint (what operators allow) and the AK's name.
   */
  inspectEndorsement(input: TpmKeys): { fingerprint: string; akName: Buffer } {
    const { ek, ak } = this.#checkTpmKeys(input);
    return { fingerprint: endorsementKeyFingerprint({ tpmPublic: ek }), akName: ak.name };
  }

  /** Whether hosts of a class attest with a TPM (by its own settings or an ancestor's). */
  async attestsWithTpm(accountId: string, className: string): Promise<boolean> {
    return effectiveSettings(await this.#classes(accountId), [className])?.mode === 'tpm';
  }

  /** A credential for the AK of that name that only the TPM holding the EK can activate. */
  makeEnrolmentCredential(ekPublic: Buffer, akName: Buffer, secret: Buffer): { credentialBlob: Buffer; encryptedSecret: Buffer } {
    const ek = parseTpmArea(ekPublic);
    return this.#credentialFor(ek, akName, secret);
  }

  /**
   * The vault of a host the fleet just admitted by its TPM: the host activated the credential made
   * for its AK before it existed, so the AK is trusted from the start (registerTpm then says so).
   */
  async adoptEnrolledTpm(host: HostRecord, input: TpmKeys): Promise<void> {
    const context = await this.#context(host);
    if (context.settings?.mode !== 'tpm') {
      throw new UserError('ConflictException', `The classes of host ${host.hostId} stopped attesting with a TPM during its enrolment; enrol again.`, 409);
    }
    const { ak } = this.#checkTpmKeys(input);
    const vault: HostVault = { Failures: [], Tpm: { EkPublic: input.EkPublic.toString('base64'), EkCertificate: input.EkCertificate?.toString('base64'),
      AkPublic: input.AkPublic.toString('base64'), AkName: ak.name.toString('base64'), ActivatedAt: this.#now().toISOString() } };
    const created = await this.#createVault(host, vault, { hostId: host.hostId, accountId: host.accountId, status: 'pending', mode: 'tpm',
      akTrusted: true, failureCount: 0 });
    if (!created) throw new Error(`host ${host.hostId} already has a vault, or is gone, just after it enrolled`);
    await this.#auditHost(host, 'AttestationKeyActivation', 'Allow', 'credential activated at enrolment (endorsement key allowed in its class)', 'Success');
    this.#options.logger.info({ hostId: host.hostId }, 'attestation key proven by credential activation at enrolment');
  }

  #checkEkCertificate(ek: TpmPublic, certificateDer: Buffer | undefined): void {
    const authorities = this.#options.ekCaCertificates ?? [];
    if (authorities.length === 0 && certificateDer === undefined) return;
    if (!certificateDer) throw new UserError('ValidationException', 'This verifier requires an EK certificate (none was found in the TPM\'s NV storage).');
    const problem = checkEndorsementCertificate(certificateDer, ek.publicKey.export({ type: 'spki', format: 'der' }), authorities, this.#now());
    if (problem === 'unreadable') throw new UserError('ValidationException', 'The EK certificate is not a DER X.509 certificate.');
    const reasons: Record<Exclude<typeof problem, 'unreadable' | undefined>, string> = {
      'other-key': 'The EK certificate certifies another key than the EK sent.',
      'unknown-issuer': 'The EK certificate is not issued by a configured EK CA (--ek-ca).',
      'not-valid-now': 'The EK certificate is outside its validity period.',
    };
    if (problem) throw new UserError('InvalidEkCertificateException', reasons[problem], 400);
  }

  /** The host proves its TPM activated the credential: its AK is trusted from now on. */
  async activateTpm(host: HostRecord, secret: Buffer) {
    const context = await this.#context(host);
    const { record, vault, vaultKey } = await this.#vaultOf(context);
    try {
      const pending = vault.Tpm?.PendingCredential;
      if (!vault.Tpm || !pending) throw new UserError('ConflictException', 'No credential is waiting for activation; register the TPM first.', 409);
      if (Date.parse(pending.ExpiresAt) < this.#now().getTime()) {
        throw new UserError('ConflictException', 'The credential expired before activation; register the TPM again.', 409);
      }
      if (!constantTimeEqual(sha256(secret), Buffer.from(pending.SecretDigest, 'hex'))) {
        await this.#auditHost(host, 'AttestationKeyActivation', 'ExplicitDeny', 'credential secret mismatch', 'InvalidProofException');
        throw new UserError('InvalidProofException', 'The secret does not match the credential: the AK is not in the TPM that owns the EK.', 400);
      }
      vault.Tpm = { ...vault.Tpm, PendingCredential: undefined, ActivatedAt: this.#now().toISOString() };
      const attestation = { ...(await this.#attestationRecord(host, context)), akTrusted: true };
      const written = await this.#options.store.recordVerdict({ attestation, entitlementChanged: false,
        vault: { record: this.#resealed(record, vaultKey, vault), expectedRevision: record.revision } }, this.#now());
      if (!written) throw new UserError('ConflictException', 'The host\'s vault changed meanwhile; try again.', 409);
      await this.#auditHost(host, 'AttestationKeyActivation', 'Allow', 'credential activated', 'Success');
      this.#options.logger.info({ hostId: host.hostId }, 'attestation key proven by credential activation');
      return { Activated: true };
    } finally {
      zeroize(vaultKey);
    }
  }

  /** An enrolled AK, parsed once (public data: caching it keeps no secret in memory). */
  #attestationKey(akPublic: string): TpmPublic {
    let parsed = this.#attestationKeys.get(akPublic);
    if (!parsed) {
      parsed = parseTpmPublic(Buffer.from(akPublic, 'base64'));
      if (this.#attestationKeys.size >= 10_000) this.#attestationKeys.clear();
      this.#attestationKeys.set(akPublic, parsed);
    }
    return parsed;
  }

  async #attestationRecord(host: HostRecord, context: HostContext): Promise<HostAttestationRecord> {
    return (await this.#options.store.getAttestation(host.hostId)) ?? pendingVerdict(host, context);
  }

  // ---- challenges and evidence ---------------------------------------------------------------------

  async challenge(host: HostRecord) {
    const context = await this.#context(host);
    if (!context.settings) throw new UserError('ValidationException', 'No class of this host attests; nothing to measure.');
    // The vault (and the pending verdict) exists from the first challenge on: made once, not opened on every round.
    if (!(await this.#options.store.getAttestation(host.hostId))) await this.#vaultOf(context).then(({ vaultKey }) => zeroize(vaultKey));
    const expiresAt = new Date(this.#now().getTime() + NONCE_TTL_MS);
    const nonce = issueChallenge(await this.#challengeKey(), host.hostId, expiresAt);
    return { Nonce: nonce.toString('base64'), ExpiresAt: expiresAt.toISOString(), Mode: context.settings.mode,
      IntervalSeconds: context.settings.intervalSeconds, Pcr: AGENT_MEASUREMENT_PCR };
  }

  async submitEvidence(host: HostRecord, evidence: EvidenceMessage) {
    const started = this.#now();
    const context = await this.#context(host);
    const settings = context.settings;
    if (!settings) throw new UserError('ValidationException', 'No class of this host attests; nothing to appraise.');
    const nonce = Buffer.from(evidence.Nonce, 'base64');
    const expiresAt = checkChallenge(await this.#challengeKey(), host.hostId, nonce, started);
    const nonceValid = expiresAt !== undefined && this.#usedChallenges.use(nonce, expiresAt);
    let operational: ReportedOperational | undefined;
    if (evidence.OperationalJson !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(evidence.OperationalJson);
      } catch {
        throw new UserError('ValidationException', 'OperationalJson is not JSON.');
      }
      operational = parseOperationalReport(parsed);
    }
    const reference = context.referenceClassName ? await this.#reference(host.accountId, context.referenceClassName) : undefined;
    const { record, vault, vaultKey } = await this.#vaultOf(context);
    try {
      let ak: TpmPublic | undefined;
      if (settings.mode === 'tpm' && vault.Tpm) ak = this.#attestationKey(vault.Tpm.AkPublic);
      let appraisal: Appraisal;
      try {
        appraisal = appraise({ mode: settings.mode, nonce, nonceValid, events: evidence.Events, operationalJson: evidence.OperationalJson,
          operational, ak, akTrusted: Boolean(vault.Tpm?.ActivatedAt), previousClock: vault.Clock, previousLog: vault.EventLog, reference: reference?.document,
          quote: evidence.Quote ? { attest: Buffer.from(evidence.Quote.Attest, 'base64'), signature: Buffer.from(evidence.Quote.Signature, 'base64') }
            : undefined });
      } catch (error) {
        if (error instanceof TpmFormatError) throw new UserError('ValidationException', `The quote is malformed: ${error.message}`);
        throw error;
      }
      const previous = await this.#attestationRecord(host, context);
      const next: HostVault = { ...vault, Failures: appraisal.failures, ReferenceVersion: reference?.version };
      // A quote that failed its checks tells nothing about the host: keep the last believed measurements.
      if (appraisal.trustworthy) {
        next.Boot = appraisal.boot;
        next.Current = appraisal.current;
        if (appraisal.clock) next.Clock = appraisal.clock;
        if (appraisal.eventLog) next.EventLog = appraisal.eventLog;
      }
      if (operational && evidence.OperationalJson !== undefined) {
        const digest = sha256Hex(evidence.OperationalJson);
        if (digest !== vault.OperationalDigest) {
          next.Operational = operational;
          next.OperationalDigest = digest;
        }
      }
      const changed = JSON.stringify(next) !== JSON.stringify(vault);
      const now = this.#now();
      const attestation: HostAttestationRecord = { ...previous, status: appraisal.status, mode: settings.mode, lastEvidence: now,
        lastVerified: now, failureCount: appraisal.failures.length, akTrusted: settings.mode !== 'tpm' || Boolean(vault.Tpm?.ActivatedAt),
        silentAt: new Date(now.getTime() + settings.intervalSeconds * settings.silentAfter * 1000) };
      const actions = this.#transitionActions(settings, previous.status, appraisal.status, host.status);
      if (!changed && actions.length === 0 && previous.status === appraisal.status && previous.failureCount === attestation.failureCount
        && previous.akTrusted === attestation.akTrusted && previous.mode === attestation.mode) {
        // Nothing but the time changed: batched (one transaction a second for the whole fleet, not one per host per interval).
        this.#seen.set(host.hostId, { hostId: host.hostId, at: now, silentAt: attestation.silentAt as Date });
        return { Status: appraisal.status, Failures: appraisal.failures, IntervalSeconds: settings.intervalSeconds,
          VerifiedAt: now.toISOString(), LatencyMs: now.getTime() - started.getTime(), Quarantined: host.status === 'quarantined' };
      }
      this.#seen.delete(host.hostId);
      const written = await this.#options.store.recordVerdict({ attestation,
        vault: changed ? { record: this.#resealed(record, vaultKey, next), expectedRevision: record.revision } : undefined,
        // Any change of verdict or measurement may change what key policies (tp:Attested, tp:Measurement/...) release.
        entitlementChanged: previous.status !== appraisal.status || JSON.stringify(next.Current) !== JSON.stringify(vault.Current),
        quarantine: actions.includes('revoke') ? { reason: `attestation ${appraisal.status}` } : undefined,
        // Whatever the class's actions: a certificate issued on attestation does not outlive it.
        revokeCertificates: appraisal.status === 'contraindicated' ? { reason: 'attestation contraindicated' } : undefined,
        alert: actions.includes('alert') ? await this.#prepareAlert(host, context, previous.status, attestation, appraisal.failures, reference?.version)
          : undefined }, now);
      if (!written) throw new UserError('ConflictException', 'Another verdict for this host was recorded meanwhile; send fresh evidence.', 409);
      await this.#afterVerdict(host, previous.status, attestation, appraisal.failures, actions);
      // Quarantined: the agent knows its attested certificates are revoked, and asks again once cleared.
      return { Status: appraisal.status, Failures: appraisal.failures, IntervalSeconds: settings.intervalSeconds,
        VerifiedAt: now.toISOString(), LatencyMs: now.getTime() - started.getTime(),
        Quarantined: host.status === 'quarantined' || actions.includes('revoke') };
    } finally {
      zeroize(vaultKey);
    }
  }

  /** Actions fire when a host enters a status (not again on every interval it stays there). */
  #transitionActions(settings: ClassAttestationSettings, before: AttestationStatus, after: AttestationStatus, hostStatus: HostRecord['status']): CorrectiveAction[] {
    if (before === after) return [];
    const actions = actionsFor(settings, after);
    return hostStatus === 'quarantined' ? actions.filter((action) => action !== 'revoke') : actions;
  }

  /** After a verdict committed: the audit records, the log line, and the alert delivery it queued. */
  async #afterVerdict(host: HostRecord, before: AttestationStatus, attestation: HostAttestationRecord, failures: AttestationFailure[],
    actions: CorrectiveAction[]): Promise<void> {
    const after = attestation.status;
    if (before !== after || failures.length > 0) {
      const summary = failures.length === 0 ? after : `${after}: ${[...new Set(failures.map((failure) => failure.Id))].join(',')}`;
      await this.#auditHost(host, 'AttestationVerdict', after === 'affirming' ? 'Allow' : 'ExplicitDeny', summary, after === 'affirming' ? 'Success' : after);
    }
    if (before !== after) {
      const log = after === 'affirming' ? this.#options.logger.info.bind(this.#options.logger) : this.#options.logger.warn.bind(this.#options.logger);
      log({ hostId: host.hostId, before, after, failures: failures.map((failure) => failure.Id) }, 'attestation verdict changed');
    }
    for (const action of actions) {
      await this.#auditHost(host, 'AttestationCorrectiveAction', 'Allow', `${action} (${after})`, 'Success');
      if (action === 'alert') void this.deliverAlerts();
      if (action === 'revoke') this.#options.logger.error({ hostId: host.hostId, status: after }, 'host quarantined: certificates revoked, keys withdrawn');
    }
  }

  /**
   * The alert a verdict sets off, wrapped, for the verdict's own transaction (an outbox: a verdict
   * is never recorded without its alert, which the next round would not send again).
   */
  async #prepareAlert(host: HostRecord, context: HostContext, before: AttestationStatus, attestation: HostAttestationRecord,
    failures: AttestationFailure[], referenceVersion: number | undefined): Promise<VerdictWrite['alert']> {
    const url = context.settings?.webhookUrl;
    if (!url) {
      this.#options.logger.warn({ hostId: host.hostId, status: attestation.status }, 'alert asked for but the class has no webhook');
      return undefined;
    }
    const alertId = randomUuid();
    const body = Buffer.from(JSON.stringify({ Type: 'trustplane.attestation', Id: alertId, HostId: host.hostId, HostName: host.name,
      Classes: host.classes, Status: attestation.status, PreviousStatus: before, Failures: failures, ReferenceVersion: referenceVersion,
      At: (attestation.lastVerified ?? this.#now()).toISOString(), Verifier: this.#options.issuer() }));
    try {
      return { alertId, url, body: await this.#options.keyring.wrapSecret(SECRET_PURPOSES.attestationAlert, alertId, body) };
    } finally {
      zeroize(body);
    }
  }

  /** Sends due alerts, each signed (detached JWS in `x-trustplane-signature`); failures back off up to five minutes. */
  async deliverAlerts(): Promise<number> {
    if (this.#alertsRunning) return 0;
    this.#alertsRunning = true;
    let delivered = 0;
    try {
      for (const alert of await this.#options.store.dueAlerts(this.#now(), ALERT_BATCH)) {
        let error: string | undefined;
        try {
          const body = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.attestationAlert, alert.alertId, alert.body);
          const signature = await this.#signDetached(body);
          const response = await fetch(alert.url, { method: 'POST', body, redirect: 'error', signal: AbortSignal.timeout(ALERT_TIMEOUT_MS),
            headers: { 'content-type': 'application/json', 'x-trustplane-signature': signature } });
          await response.arrayBuffer().catch(() => undefined);
          if (!response.ok) error = `HTTP ${response.status}`;
        } catch (failure) {
          error = failure instanceof Error ? failure.message : String(failure);
        }
        const attempts = alert.attempts + 1;
        const retryAt = error && attempts < ALERT_MAX_ATTEMPTS
          ? new Date(this.#now().getTime() + Math.min(ALERT_MAX_BACKOFF_MS, 1000 * 2 ** attempts)) : undefined;
        await this.#options.store.settleAlert(alert.id, !error, retryAt, error, this.#now());
        if (error) this.#options.logger.warn({ alert: alert.id, attempts, error, givenUp: !retryAt }, 'alert webhook delivery failed');
        else delivered += 1;
      }
    } finally {
      this.#alertsRunning = false;
    }
    return delivered;
  }

  /** Writes the batched "evidence seen, nothing changed" times (each second, and at shutdown). */
  async flushSeen(): Promise<void> {
    if (this.#seen.size === 0) return;
    const batch = [...this.#seen.values()];
    this.#seen.clear();
    await this.#options.store.touchAttestations(batch);
  }

  /** Scheduled (every second): flags hosts silent past their deadline, forgets expired challenges, retries alerts. */
  async runDueWork(): Promise<{ silenced: number }> {
    const now = this.#now();
    await this.flushSeen();
    let silenced = 0;
    for (const due of await this.#options.store.dueSilent(now, SILENT_BATCH)) {
      const host = await this.#options.fleet.findHost(due.hostId);
      if (!host) continue;
      const context = await this.#context(host);
      if (!context.settings) {
        // Its classes stopped attesting: nothing to wait for any more.
        await this.#options.store.recordVerdict({ attestation: { ...due, silentAt: undefined }, entitlementChanged: false }, now);
        continue;
      }
      const actions = this.#transitionActions(context.settings, due.status, 'silent', host.status);
      const attestation: HostAttestationRecord = { ...due, status: 'silent', silentAt: undefined };
      const failure: AttestationFailure = { Id: 'silent', Severity: 'high', Component: 'evidence',
        Detail: `no evidence for ${context.settings.silentAfter} intervals of ${context.settings.intervalSeconds} s`,
        Expected: `evidence every ${context.settings.intervalSeconds} s`, Found: `last at ${due.lastEvidence?.toISOString() ?? 'never'}` };
      // Evidence may have arrived (here or at another replica) since the row was read: then it is not silent.
      const written = await this.#options.store.recordVerdict({ attestation, entitlementChanged: mayHoldKeys(due.status),
        expected: { status: due.status, lastEvidence: due.lastEvidence },
        quarantine: actions.includes('revoke') ? { reason: 'attestation silent' } : undefined,
        revokeCertificates: { reason: 'attestation silent' },
        alert: actions.includes('alert') ? await this.#prepareAlert(host, context, due.status, attestation, [failure], undefined) : undefined }, now);
      if (!written) continue;
      silenced += 1;
      await this.#afterVerdict(host, due.status, attestation, [failure], actions);
    }
    this.#usedChallenges.forgetExpired(now);
    await this.deliverAlerts();
    return { silenced };
  }

  // ---- what operators and relying parties see --------------------------------------------------------

  /**
   * The verdict to act on now: undefined when no class of the host attests; `silent` when the last
   * evidence is older than the class's silence window, even before the scheduler has flagged it (a
   * class that stopped attesting and started again must not release on a verdict nobody renewed).
   */
  async #currentStatus(host: HostRecord, context: HostContext): Promise<{ status: AttestationStatus; record?: HostAttestationRecord } | undefined> {
    if (!context.settings) return undefined;
    const record = await this.#options.store.getAttestation(host.hostId);
    if (!record) return { status: 'pending' };
    const window = context.settings.intervalSeconds * context.settings.silentAfter * 1000 + SILENCE_GRACE_MS;
    const stale = record.status !== 'pending' && (!record.lastEvidence || this.#now().getTime() - record.lastEvidence.getTime() > window);
    return { status: stale ? 'silent' : record.status, record };
  }

  async describeHost(host: HostRecord): Promise<HostAttestationView | undefined> {
    const context = await this.#context(host);
    if (!context.settings) return undefined;
    const current = await this.#currentStatus(host, context);
    const attestation = current?.record;
    if (!current || !attestation) return { Status: 'pending', Mode: context.settings.mode, Failures: [] };
    const vault = await this.#readVault(host.hostId);
    const failures = current.status === 'silent'
      ? [{ Id: 'silent', Severity: 'high' as const, Component: 'evidence', Found: `last at ${attestation.lastEvidence?.toISOString() ?? 'never'}` },
        ...(vault?.Failures ?? [])]
      : vault?.Failures ?? [];
    return { Status: current.status, Mode: attestation.mode, Failures: failures, LastVerified: attestation.lastVerified?.toISOString(),
      LastEvidence: attestation.lastEvidence?.toISOString(), Measurements: vault?.Current,
      AttestationKeyActivated: attestation.mode === 'tpm' ? Boolean(vault?.Tpm?.ActivatedAt) : undefined };
  }

  async clearHost(caller: Caller, hostId: string): Promise<{ Cleared: boolean }> {
    await this.#require(caller, 'fleet:ClearHost', hostArn(this.#options.region, caller.accountId, hostId));
    const host = await this.#options.fleet.getHost(caller.accountId, hostId);
    if (!host) throw notFound(`Host ${hostId} does not exist.`);
    const cleared = await this.#options.store.clearQuarantine(caller.accountId, hostId, this.#now());
    if (!cleared) throw new UserError('ConflictException', `Host ${hostId} is not quarantined.`, 409);
    this.#options.logger.info({ hostId, by: caller.principalArn }, 'quarantine lifted');
    return { Cleared: true };
  }

  /** An EAR (IETF RATS) token about hosts of the caller's account, for relying parties; nonce echoed. */
  async attestationToken(caller: Caller, hostIds: string[], nonce?: string): Promise<{ Token: string }> {
    const hosts: HostRecord[] = [];
    for (const hostId of hostIds) {
      // Per host: a policy can let a relying party ask about some hosts and not others.
      await this.#require(caller, 'fleet:GetAttestationToken', hostArn(this.#options.region, caller.accountId, hostId));
      const host = await this.#options.fleet.getHost(caller.accountId, hostId);
      if (!host) throw notFound(`Host ${hostId} does not exist.`);
      hosts.push(host);
    }
    return { Token: await this.#earFor(hosts, nonce) };
  }

  /** The same for the host itself (its agent asks on behalf of a local workload). */
  async attestationTokenForHost(host: HostRecord, nonce?: string): Promise<{ Token: string }> {
    return { Token: await this.#earFor([host], nonce) };
  }

  async #earFor(hosts: HostRecord[], nonce: string | undefined): Promise<string> {
    const now = this.#now();
    const submods = [];
    for (const host of hosts) {
      const context = await this.#context(host);
      const current = await this.#currentStatus(host, context);
      const attestation = current?.record;
      const vault = await this.#readVault(host.hostId);
      // A quarantined host is contraindicated for relying parties whatever its last evidence said.
      submods.push({ hostId: host.hostId, status: host.status === 'quarantined' ? 'contraindicated' as const : current?.status ?? 'pending',
        mode: attestation?.mode ?? context.settings?.mode, classes: context.classLineage,
      failures: (vault?.Failures ?? []).map((failure) => failure.Id), lastVerified: attestation?.lastVerified,
      policyId: context.referenceClassName && vault?.ReferenceVersion !== undefined
        ? `trustplane:class/${context.referenceClassName}/reference/${vault.ReferenceVersion}` : undefined, quarantined: host.status === 'quarantined' });
    }
    const claims = earClaims({ issuer: this.#options.issuer(), now, lifetimeSeconds: EAR_LIFETIME_SECONDS, nonce, verifierId: VERIFIER_ID, submods });
    return this.#withSigningKey((privateKey, keyId) => signJwt(privateKey, keyId, claims, EAR_TOKEN_TYPE));
  }

  // ---- key release and sealing ------------------------------------------------------------------

  /**
   * Whether a host may hold keys now, with the tp:* condition keys key policies see: never while
   * quarantined; in an attesting class only while its latest verdict affirms or warns.
   */
  async releaseContext(host: HostRecord): Promise<KeyReleaseContext> {
    const context = await this.#context(host);
    const status = (await this.#currentStatus(host, context))?.status;
    const attested = status === 'affirming';
    const conditionKeys: Record<string, ConditionValue> = { 'tp:HostClass': context.classLineage, 'tp:Attested': attested,
      'tp:AttestationStatus': context.settings ? status ?? 'pending' : 'none', 'tp:AttestationMode': context.settings?.mode ?? 'none' };
    const allowed = host.status === 'active' && (!context.settings || mayHoldKeys(status));
    if (allowed && context.settings) {
      // tp:Measurement/<component>: key policies may pin the measurement a host must have to hold a key.
      const vault = await this.#readVault(host.hostId);
      for (const [component, digest] of Object.entries(vault?.Current ?? {})) conditionKeys[`tp:Measurement/${component}`] = digest;
    }
    return { mayHoldKeys: allowed, conditionKeys };
  }

  /** Seals data to a host's current measurement: only that host, measuring the same, can unseal it. */
  async seal(caller: Caller, hostId: string, plaintext: Buffer): Promise<{ Sealed: Buffer; MeasurementDigest: string }> {
    await this.#require(caller, 'fleet:SealToHost', hostArn(this.#options.region, caller.accountId, hostId));
    if (plaintext.length > MAX_SEAL_BYTES) throw new UserError('ValidationException', `At most ${MAX_SEAL_BYTES} bytes can be sealed; seal a data key instead.`);
    const host = await this.#options.fleet.getHost(caller.accountId, hostId);
    if (!host) throw notFound(`Host ${hostId} does not exist.`);
    const { vault, vaultKey } = await this.#openVaultOf(hostId);
    try {
      if (!vault?.Current || !vaultKey || Object.keys(vault.Current).length === 0) {
        throw new UserError('ConflictException', `Host ${hostId} has no measurements yet to seal to.`, 409);
      }
      const digest = measurementDigest(vault.Current);
      return { Sealed: sealToMeasurement(vaultKey, hostId, digest, plaintext), MeasurementDigest: digest.toString('hex') };
    } finally {
      zeroize(vaultKey);
    }
  }

  async unseal(host: HostRecord, sealed: Buffer): Promise<{ Plaintext: Buffer }> {
    const status = (await this.#currentStatus(host, await this.#context(host)))?.status;
    if (host.status !== 'active' || !mayHoldKeys(status)) {
      throw new UserError('AccessDeniedException', `Host ${host.hostId} is ${host.status === 'active' ? status ?? 'in no attesting class' : host.status}: sealed data is released only to an attested host.`, 403);
    }
    const { vault, vaultKey } = await this.#openVaultOf(host.hostId);
    try {
      if (!vault?.Current || !vaultKey) throw new UserError('AccessDeniedException', 'This host has no current measurement.', 403);
      const opened = openSealed(vaultKey, host.hostId, measurementDigest(vault.Current), sealed);
      if (opened.kind === 'malformed') throw new UserError('ValidationException', 'The sealed blob is malformed or not sealed by this verifier.');
      if (opened.kind === 'other-host') throw new UserError('AccessDeniedException', 'The data was sealed to another host.', 403);
      if (opened.kind === 'measurement-mismatch') {
        await this.#auditHost(host, 'AttestationUnseal', 'ExplicitDeny', 'measurement mismatch', 'AccessDeniedException');
        throw new UserError('AccessDeniedException', 'The host\'s current measurement differs from the one the data was sealed to.', 403);
      }
      await this.#auditHost(host, 'AttestationUnseal', 'Allow', 'measurement matches', 'Success');
      return { Plaintext: opened.plaintext };
    } finally {
      zeroize(vaultKey);
    }
  }

  // ---- attested host certificates and app keys ---------------------------------------------------

  /**
   * What only attested hosts get (certificates, app keys): the host must be active (not quarantined)
   * and the latest verdict of an attesting class must affirm. A refusal is audited and names why.
   */
  async #requireAffirming(host: HostRecord, operation: string, what: string): Promise<HostContext> {
    const context = await this.#context(host);
    const status = (await this.#currentStatus(host, context))?.status;
    let refusal: string | undefined;
    if (host.status !== 'active') refusal = `Host ${host.hostId} is ${host.status}`;
    else if (status === undefined) refusal = `No class of host ${host.hostId} attests`;
    else if (status !== 'affirming') refusal = `The attestation status of host ${host.hostId} is ${status}`;
    if (refusal !== undefined) {
      await this.#auditHost(host, operation, 'ExplicitDeny', refusal, 'AccessDeniedException');
      throw new UserError('AccessDeniedException', `${refusal}: ${what} only to an active host whose attestation affirms.`, 403);
    }
    return context;
  }

  get #certificateLifetimeMs(): number {
    return this.#options.attestedCertificateLifetimeMs ?? DEFAULT_ATTESTED_CERTIFICATE_LIFETIME_MS;
  }

  /**
   * Issues a short-lived certificate from the account's fleet CA for a key the host (or a workload on
   * it) proved it holds: CN the host id, URI SAN the host's URI, DNS SANs as asked (nothing else of
   * the request is kept), serverAuth and clientAuth. Only while the host is active and affirming; a
   * verdict that changes while it is signed wins (the certificate is then never handed out).
   */
  async issueAttestedCertificate(host: HostRecord, input: { Csr: string; LifetimeSeconds?: number }) {
    const authority = this.#options.authority;
    if (!authority) throw new Error('attested certificates need the fleet CA, and none was wired in');
    const operation = 'AttestationIssueCertificate';
    await this.#requireAffirming(host, operation, 'certificates are issued');
    let request: ParsedCertificateRequest;
    try {
      request = await parseCertificateRequest(input.Csr, { maxDnsNames: MAX_CERTIFICATE_DNS_NAMES });
    } catch (error) {
      if (error instanceof CertificateRequestError) throw new UserError('ValidationException', error.message);
      throw error;
    }
    const lifetimeMs = Math.min(this.#certificateLifetimeMs, (input.LifetimeSeconds ?? Number.POSITIVE_INFINITY) * 1000);
    const now = this.#now();
    const issued = await authority.issue(host.accountId, { subjectPublicKeyDer: request.publicKeyDer, commonName: host.hostId, usage: 'both',
      uris: [hostUri(host.accountId, host.hostId), attestedHostUri(host.accountId, host.hostId)], dnsNames: request.dnsNames,
      validityDays: lifetimeMs / DAY_MS, now });
    const recorded = await this.#options.store.recordAttestedCertificate({ serial: normalizeHexSerial(issued.serialNumber), accountId: host.accountId,
      hostId: host.hostId, notAfter: issued.notAfter, issuedAt: now });
    if (!recorded) {
      await this.#auditHost(host, operation, 'ExplicitDeny', 'attestation changed while the certificate was signed', 'AccessDeniedException');
      throw new UserError('AccessDeniedException', `Host ${host.hostId} stopped being active and affirming while the certificate was signed; it was not issued.`, 403);
    }
    await this.#auditHost(host, operation, 'Allow', `serial ${issued.serialNumber} (${request.keyDescription}`
      + `${request.dnsNames.length > 0 ? `, ${request.dnsNames.join(' ')}` : ''})`, 'Success');
    return { Certificate: certificateToPem(issued.certificateDer), Chain: [certificateToPem(issued.authorityDer)],
      Serial: normalizeHexSerial(issued.serialNumber), NotAfter: issued.notAfter.toISOString() };
  }

  /**
   * The account's CRL (DER), signed by its fleet CA: every unexpired attested certificate revoked by a
   * quarantine or by its host's removal. Re-signed when that set changes or at half-life; undefined
   * when the account has no CA.
   */
  async revocationList(accountId: string): Promise<Buffer | undefined> {
    const authority = this.#options.authority;
    if (!authority) return undefined;
    const now = this.#now();
    const revoked = (await this.#options.store.revokedCertificates(accountId)).filter((record) => record.notAfter.getTime() > now.getTime());
    const fingerprint = revoked.map((record) => `${record.serial}@${record.revokedAt?.getTime() ?? 0}`).join(',');
    const cached = this.#revocationLists.get(accountId);
    if (cached && cached.fingerprint === fingerprint && cached.refreshAt > now.getTime()) return cached.der;
    const der = await authority.signRevocationList(accountId, { thisUpdate: now, nextUpdate: new Date(now.getTime() + CRL_VALIDITY_MS),
      number: BigInt(now.getTime()), entries: revoked.map((record) => ({ serial: record.serial, revokedAt: record.revokedAt ?? now,
        reason: record.revocationReason === HOST_REMOVED_REASON ? 'cessationOfOperation' as const : 'privilegeWithdrawn' as const })) });
    if (!der) return undefined;
    this.#revocationLists.set(accountId, { der, fingerprint, refreshAt: now.getTime() + CRL_REFRESH_MS });
    return der;
  }

  /** The CRL of a host's own account, for its agent (which checks certificates for local workloads). */
  async revocationListForHost(host: HostRecord): Promise<{ Crl: string }> {
    const der = await this.revocationList(host.accountId);
    if (!der) throw notFound('This account has no certificate authority yet.');
    return { Crl: der.toString('base64') };
  }

  /** Revocation status of an attested certificate by serial (hex): good, revoked (when and why) or unknown. */
  async certificateStatus(serialHex: string): Promise<CertificateStatusView> {
    if (!/^[0-9a-fA-F]{1,64}$/.test(serialHex)) throw new UserError('ValidationException', 'A serial number is 1 to 64 hexadecimal digits.');
    const serial = normalizeHexSerial(serialHex);
    const record = await this.#options.store.getAttestedCertificate(serial);
    if (!record) return { Serial: serial, Status: 'unknown' };
    return { Serial: serial, Status: record.revokedAt ? 'revoked' : 'good', RevokedAt: record.revokedAt?.toISOString(),
      Reason: record.revokedAt ? record.revocationReason : undefined, NotAfter: record.notAfter.toISOString() };
  }

  /** The class an app key belongs to: the one named (in the host's lineage) or the host's first. */
  async #appKeyClass(host: HostRecord, context: HostContext, operation: string, requested: string | undefined): Promise<string> {
    const className = requested === undefined ? host.classes[0] : parseClassName(requested).name;
    if (className === undefined || !context.classLineage.includes(className)) {
      await this.#auditHost(host, operation, 'ExplicitDeny', `class ${className ?? '(none)'} not in the host's lineage`, 'AccessDeniedException');
      throw new UserError('AccessDeniedException', `Class ${className ?? '(none)'} is not among the classes of host ${host.hostId} `
        + `(${context.classLineage.join(', ')}): app keys are kept per class, for its attested hosts.`, 403);
    }
    return className;
  }

  /**
   * Keeps an app key for a class of the host, wrapped under the domain key and bound to (account,
   * class, name): any attested host of that class can get it back, so nothing is copied host to host.
   */
  async storeAppKey(host: HostRecord, input: { Name: string; Key: Buffer; Class?: string }) {
    const operation = 'AttestationStoreKey';
    const context = await this.#requireAffirming(host, operation, 'app keys are kept');
    const className = await this.#appKeyClass(host, context, operation, input.Class);
    const key = await this.#options.keyring.wrapSecret(SECRET_PURPOSES.appKey, `${host.accountId}/${className}/${input.Name}`, input.Key);
    const now = this.#now();
    // A key other hosts of the class rely on is not replaced by whichever host asks next.
    const stored = await this.#options.store.putAppKey({ accountId: host.accountId, className, name: input.Name, key,
      storedBy: hostArn(this.#options.region, host.accountId, host.hostId), storedAt: now });
    if (!stored) {
      await this.#auditHost(host, operation, 'ExplicitDeny', `app key ${className}/${input.Name} belongs to another host`, 'ConflictException');
      throw new UserError('ConflictException', `App key ${input.Name} of class ${className} was stored by another host; only that host may replace it.`, 409);
    }
    await this.#auditHost(host, operation, 'Allow', `app key ${className}/${input.Name}`, 'Success');
    return { Name: input.Name, Class: className, StoredAt: now.toISOString() };
  }

  /** Releases an app key to an active, affirming host of its class; the caller zeroizes Key. */
  async getAppKey(host: HostRecord, input: { Name: string; Class?: string }): Promise<{ Name: string; Class: string; Key: Buffer }> {
    const operation = 'AttestationGetKey';
    const context = await this.#requireAffirming(host, operation, 'app keys are released');
    const className = await this.#appKeyClass(host, context, operation, input.Class);
    const record = await this.#options.store.getAppKey(host.accountId, className, input.Name);
    if (!record) throw notFound(`No app key ${input.Name} is kept for class ${className}.`);
    const key = await this.#options.keyring.unsafeUnwrapSecret(SECRET_PURPOSES.appKey, `${host.accountId}/${className}/${input.Name}`, record.key);
    await this.#auditHost(host, operation, 'Allow', `app key ${className}/${input.Name}`, 'Success');
    return { Name: input.Name, Class: className, Key: key };
  }

  async #auditHost(host: HostRecord, operation: string, decision: 'Allow' | 'ExplicitDeny', statement: string, outcome: string): Promise<void> {
    await this.#options.audit?.record({ requestId: randomUuid(), accountId: host.accountId, principalArn: 'trustplane:verifier', service: 'trustplane',
      operation, resource: hostArn(this.#options.region, host.accountId, host.hostId), decision, decidingStatement: statement, outcome, latencyMs: 0 })
      .catch((error: unknown) => this.#options.logger.error({ err: error, hostId: host.hostId, operation }, 'attestation event could not be audited'));
  }
}
