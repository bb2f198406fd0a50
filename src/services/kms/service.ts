// Key service use cases: resolve and authorise keys, run key operations, keep versions and
// rotation. Must never return key material other than data keys the API defines as returned.
import type { AccessRequest, Authorizer, Caller, ConditionValue } from '../../shared/auth/index.ts';
import { rootArn } from '../../shared/auth/index.ts';
import {
  CustomerKey, SECRET_KEY_SPEC, generateAsymmetricPair, hashLength, isAsymmetricSpec, Keyring,
  parseCiphertextBlob, randomBytes, randomUuid, sha256, UnsupportedDigestSigningError, zeroize,
  type DataKeyPairSpec, type EncryptionContext, type KeySpec, type MacAlgorithm, type ParsedCiphertext,
} from '../../shared/crypto/index.ts';
import { CiphertextError, UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import {
  StoreConflictError, StoreDuplicateError, type KeyPatch, type KeyRecord, type KeyUsage,
  type GrantConstraints, type GrantRecord, type KeyVersionRecord, type Page, type RotationRecord, type Store, type TagRecord,
} from '../../shared/store/index.ts';
import { kmsErrors } from './domain/errors.ts';
import { grantConstraintsHold } from './domain/grants.ts';
import {
  aliasArn, ALIAS_NAME_PATTERN, keyArn, parseKeyReference, RESERVED_ALIAS_PREFIX,
} from './domain/identifiers.ts';
import { DEFAULT_POLICY_NAME, defaultKeyPolicy } from './domain/key-policy.ts';
import {
  allowedUsages, defaultUsage, encryptionAlgorithmsFor, macAlgorithmsFor, oaepHash, signatureSchemeFor,
  signingAlgorithmsFor, signingHash, type EncryptionAlgorithm, type SigningAlgorithm,
} from './domain/key-specs.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
const DEFAULT_ROTATION_PERIOD_DAYS = 365;
const MAX_TAGS_PER_KEY = 50;

export interface KeyServiceOptions {
  store: Store;
  authorizer: Authorizer;
  keyring: Keyring;
  region: string;
  logger: Logger;
  now?: () => Date;
  /** Two-phase rotation of keys hosts hold (the fleet); without it every rotation takes effect at once. */
  stagedRotations?: StagedRotationHooks;
}

/** How the key service hands a staged version to the fleet, in the transaction that adds it. */
export interface StagedRotationHooks {
  isDistributed(keyId: string): boolean;
  recordInTransaction(record: RotationRecord): void;
}

export interface StagedRotationInput {
  /** `staged` (asked for), `scheduled`, or the event that caused it (`host-removed`, `class-revoked`). */
  reason: string;
  startedBy: string;
  promoteAfter?: Date;
  /** Replaces a pending version instead of refusing (an event that exposed it). */
  supersede?: boolean;
}

export interface KeyMetadata {
  AWSAccountId: string;
  KeyId: string;
  Arn: string;
  CreationDate: Date;
  Enabled: boolean;
  Description: string;
  KeyUsage: KeyUsage;
  KeyState: string;
  DeletionDate?: Date;
  PendingDeletionWindowInDays?: number;
  Origin: string;
  KeyManager: 'CUSTOMER';
  CustomerMasterKeySpec: string;
  KeySpec: string;
  EncryptionAlgorithms?: string[];
  SigningAlgorithms?: string[];
  MacAlgorithms?: string[];
  MultiRegion: false;
  /** trustplane extension: the default (newest) version of the key. */
  CurrentKeyVersion: number;
}

export interface CreateKeyInput {
  description?: string;
  keySpec?: KeySpec;
  keyUsage?: KeyUsage;
  policy?: string;
  tags?: TagRecord[];
  origin?: string;
  multiRegion?: boolean;
  bypassLockoutCheck?: boolean;
  /** Makes a secret key (spec SECRET, usage SECRET_VALUE) whose first version is this value. */
  secretValue?: Buffer;
}

interface AuthorizationExtras {
  context?: EncryptionContext;
  requestAlias?: string;
  /** Further condition keys of this request (CreateGrant's kms:GrantOperations, say). */
  conditionKeys?: Record<string, ConditionValue>;
  /** Whether grants may allow this request (CreateGrant checks its grants itself). */
  grantsApply?: boolean;
}

/** A key as the caller named it: by id or ARN, or by an alias (kms:RequestAlias). */
interface ResolvedKey {
  key: KeyRecord;
  requestAlias?: string;
}

interface ResolveOptions {
  /** Refuse a key pending deletion (KMSInvalidStateException), right after authorisation. */
  refusePendingDeletion?: boolean;
}

interface OpenedKey {
  record: KeyRecord;
  key: CustomerKey;
}

type KeyOperation = 'Encrypt' | 'Decrypt' | 'ReEncrypt' | 'GenerateDataKey' | 'GenerateDataKeyWithoutPlaintext'
  | 'GenerateDataKeyPair' | 'GenerateDataKeyPairWithoutPlaintext' | 'Sign' | 'Verify' | 'GetPublicKey'
  | 'GenerateMac' | 'VerifyMac';

const REQUIRED_USAGE: Record<KeyOperation, KeyUsage> = {
  Encrypt: 'ENCRYPT_DECRYPT', Decrypt: 'ENCRYPT_DECRYPT', ReEncrypt: 'ENCRYPT_DECRYPT', GenerateDataKey: 'ENCRYPT_DECRYPT',
  GenerateDataKeyWithoutPlaintext: 'ENCRYPT_DECRYPT', GenerateDataKeyPair: 'ENCRYPT_DECRYPT',
  GenerateDataKeyPairWithoutPlaintext: 'ENCRYPT_DECRYPT', Sign: 'SIGN_VERIFY', Verify: 'SIGN_VERIFY',
  GetPublicKey: 'SIGN_VERIFY', GenerateMac: 'GENERATE_VERIFY_MAC', VerifyMac: 'GENERATE_VERIFY_MAC',
};

/**
 * Whether a key policy has a condition on a tp:* key, however written (condition keys match case-
 * insensitively, and JSON escapes hide text): one that cannot be read is asked, never skipped.
 */
function policyAsksAboutHosts(policy: string): boolean {
  let document: unknown;
  try {
    document = JSON.parse(policy);
  } catch {
    return true;
  }
  const statements = (document as { Statement?: unknown }).Statement;
  for (const statement of Array.isArray(statements) ? statements : [statements]) {
    const condition = (statement as { Condition?: unknown } | undefined)?.Condition;
    if (!condition || typeof condition !== 'object') continue;
    for (const keys of Object.values(condition as Record<string, unknown>)) {
      if (keys && typeof keys === 'object' && Object.keys(keys).some((key) => key.toLowerCase().startsWith('tp:'))) return true;
    }
  }
  return false;
}

/** Distinct policy texts whose tp:* answer is kept: a fleet push asks per host and key, and policies are few. */
const HOST_POLICY_CACHE_ENTRIES = 1024;

export class KeyService {
  readonly #hostPolicies = new Map<string, boolean>();
  readonly #store: Store;
  readonly #authorizer: Authorizer;
  readonly #keyring: Keyring;
  readonly #region: string;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #stagedRotations?: StagedRotationHooks;

  constructor(options: KeyServiceOptions) {
    this.#stagedRotations = options.stagedRotations;
    this.#store = options.store;
    this.#authorizer = options.authorizer;
    this.#keyring = options.keyring;
    this.#region = options.region;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
  }

  // ---- resolution and authorisation -------------------------------------------------------

  /**
   * Authorises a caller for an action on a key: the key policy, the caller's identity policies
   * and the key's grants decide, with the KMS condition keys of this request.
   */
  async #authorize(caller: Caller, action: string, key: KeyRecord, request: AuthorizationExtras = {}): Promise<void> {
    await this.#authorizer.require(caller, this.#accessRequest(caller, action, key, request));
  }

  /** The authorisation question for an action on a key: its policy, condition keys and grants. */
  #accessRequest(caller: Caller, action: string, key: KeyRecord, request: AuthorizationExtras): AccessRequest {
    // The policy engine builds the kms:* condition keys (kms:CallerAccount is the caller's account) from these facts.
    return { action, resource: key.arn, resourceAccountId: key.accountId, resourcePolicy: key.policy,
      kms: { encryptionContext: request.context, requestAlias: request.requestAlias, keySpec: key.keySpec, keyUsage: key.keyUsage },
      conditionKeys: request.conditionKeys,
      grantAllows: request.grantsApply === false ? false : () => this.#grantAllows(caller, action, key, request.context) };
  }

  /**
   * For simulation: the authorisation question a principal would face for an action on a key,
   * without asking it. The caller of the simulation must already be allowed to simulate.
   */
  async simulationRequest(principal: Caller, action: string, keyId: string, context?: EncryptionContext): Promise<AccessRequest> {
    const { key, requestAlias } = await this.#resolve(principal, keyId);
    if (key.accountId !== principal.accountId) throw kmsErrors.keyNotFound(key.arn);
    return this.#accessRequest(principal, action, key, { context, requestAlias });
  }

  /**
   * Whether a key's policy lets a host hold it (the fleet push asks before sending material). Only
   * a policy that speaks of hosts (a tp:* condition key) is asked; other keys follow class grants alone.
   */
  async releasableToHost(keyId: string, host: { hostId: string; accountId: string }, conditionKeys: Record<string, ConditionValue>): Promise<boolean> {
    const key = await this.#store.getKey(keyId);
    if (!key) return false;
    let asks = this.#hostPolicies.get(key.policy);
    if (asks === undefined) {
      asks = policyAsksAboutHosts(key.policy);
      if (this.#hostPolicies.size >= HOST_POLICY_CACHE_ENTRIES) this.#hostPolicies.clear();
      this.#hostPolicies.set(key.policy, asks);
    }
    if (!asks) return true;
    // Hosts are principals of their account, as policies name them: arn:aws:iam::ACCOUNT:host/ID.
    const arn = `arn:aws:iam::${host.accountId}:host/${host.hostId}`;
    const caller: Caller = { principalArn: arn, identityArn: arn, accountId: host.accountId, kind: 'host', accessKeyId: '',
      tags: {}, signingService: 'trustplane' };
    const decision = await this.#authorizer.evaluate(caller, { action: 'kms:Decrypt', resource: key.arn, resourceAccountId: key.accountId,
      resourcePolicy: key.policy, conditionKeys, grantAllows: false });
    return decision.allowed;
  }

  /** Account-level actions (CreateKey, ListKeys, ListAliases) and aliases: identity policies decide. */
  async #authorizeInAccount(caller: Caller, action: string, resource = '*'): Promise<void> {
    await this.#authorizer.require(caller, { action, resource, resourceAccountId: caller.accountId });
  }

  /** The caller's grants on the key, then (for a role session) its role's; read only as far as they are asked for. */
  async *#grantsHeldBy(caller: Caller, key: KeyRecord): AsyncGenerator<GrantRecord> {
    for (const grantee of new Set([caller.principalArn, caller.identityArn])) {
      yield* await this.#store.grantsFor(key.keyId, grantee);
    }
  }

  /** A grant on the key for the caller (or the role behind its session) covering this operation and context. */
  async #grantAllows(caller: Caller, action: string, key: KeyRecord, context: EncryptionContext | undefined): Promise<boolean> {
    const operation = action.slice('kms:'.length);
    for await (const grant of this.#grantsHeldBy(caller, key)) {
      if (grant.operations.includes(operation) && grantConstraintsHold(grant.constraints, context)) return true;
    }
    return false;
  }

  /** Resolves a KeyId (id, ARN, alias, alias ARN) to a key; other accounts' keys only by ARN. */
  async #resolve(caller: Caller, raw: string, options: { allowAlias?: boolean } = {}): Promise<ResolvedKey> {
    const reference = parseKeyReference(raw);
    if (reference.kind === 'invalid') throw kmsErrors.invalidKeyId(raw);
    const accountId = reference.accountId ?? caller.accountId;
    if (reference.kind === 'alias') {
      if (options.allowAlias === false) throw kmsErrors.invalidKeyId(raw);
      const sameRegion = reference.region === undefined || reference.region === this.#region;
      const alias = sameRegion ? await this.#store.getAlias(accountId, reference.aliasName) : undefined;
      if (!alias) throw kmsErrors.aliasNotFound(aliasArn(this.#region, accountId, reference.aliasName));
      const key = await this.#store.getKey(alias.keyId);
      if (!key) throw kmsErrors.aliasNotFound(aliasArn(this.#region, accountId, reference.aliasName));
      return { key, requestAlias: reference.aliasName };
    }
    const key = await this.#store.getKey(reference.keyId);
    const arn = keyArn(reference.region ?? this.#region, accountId, reference.keyId);
    if (!key || key.accountId !== accountId || (reference.region !== undefined && reference.region !== this.#region)) {
      throw kmsErrors.keyNotFound(arn);
    }
    return { key };
  }

  async #resolveAuthorized(caller: Caller, raw: string, action: string,
    options: ResolveOptions & { context?: EncryptionContext } = {}): Promise<KeyRecord> {
    const { key, requestAlias } = await this.#resolve(caller, raw);
    await this.#authorize(caller, action, key, { context: options.context, requestAlias });
    if (options.refusePendingDeletion && key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
    return key;
  }

  /** Checks state and usage for a cryptographic operation. */
  #checkUsable(key: KeyRecord, operation: KeyOperation): void {
    if (key.keyState === 'Disabled') throw kmsErrors.disabled(key.arn);
    if (key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
    const usage = REQUIRED_USAGE[operation];
    if (key.keyUsage !== usage) throw kmsErrors.wrongUsage(key.arn, key.keyUsage, operation);
  }

  #checkSymmetric(key: KeyRecord, operation: KeyOperation): void {
    if (key.keySpec !== 'SYMMETRIC_DEFAULT') throw kmsErrors.wrongSpec(key.arn, key.keySpec, operation);
  }

  async #openVersion(key: KeyRecord, version: number): Promise<CustomerKey> {
    const cached = this.#keyring.cachedKey(key.keyId, version);
    if (cached) return cached;
    const stored = await this.#store.getKeyVersion(key.keyId, version);
    if (!stored) throw new CiphertextError();
    return this.#keyring.openKey({ keyId: key.keyId, version, spec: key.keySpec as KeySpec, material: stored.material });
  }

  async #openCurrent(key: KeyRecord): Promise<OpenedKey> {
    return { record: key, key: await this.#openVersion(key, key.currentVersion) };
  }

  /** Runs a read-modify-write again when a concurrent change won the race (optimistic concurrency). */
  async #retryOnConflict<T>(attempt: () => Promise<T>): Promise<T> {
    for (let tries = 0; ; tries += 1) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof StoreConflictError) || tries >= 5) throw error;
      }
    }
  }

  /** Read-modify-write of a key with optimistic concurrency. */
  async #mutateKey(caller: Caller, raw: string, action: string,
    change: (key: KeyRecord) => KeyPatch | Promise<KeyPatch>, options: ResolveOptions = {}): Promise<KeyRecord> {
    return this.#retryOnConflict(async () => {
      const key = await this.#resolveAuthorized(caller, raw, action, options);
      return this.#store.updateKey(key.keyId, key.revision, await change(key));
    });
  }

  metadata(key: KeyRecord): KeyMetadata {
    const spec = key.keySpec as KeySpec;
    return {
      AWSAccountId: key.accountId, KeyId: key.keyId, Arn: key.arn, CreationDate: key.createdAt,
      Enabled: key.keyState === 'Enabled', Description: key.description, KeyUsage: key.keyUsage, KeyState: key.keyState,
      DeletionDate: key.deletionDate, PendingDeletionWindowInDays: key.pendingWindowInDays, Origin: key.origin,
      KeyManager: 'CUSTOMER', CustomerMasterKeySpec: key.keySpec, KeySpec: key.keySpec,
      EncryptionAlgorithms: encryptionAlgorithmsFor(spec, key.keyUsage), SigningAlgorithms: signingAlgorithmsFor(spec, key.keyUsage),
      MacAlgorithms: key.keyUsage === 'GENERATE_VERIFY_MAC' ? macAlgorithmsFor(spec) : undefined,
      MultiRegion: false, CurrentKeyVersion: key.currentVersion,
    };
  }

  // ---- key lifecycle ------------------------------------------------------------------------

  async createKey(caller: Caller, input: CreateKeyInput): Promise<KeyRecord> {
    await this.#authorizeInAccount(caller, 'kms:CreateKey');
    const spec: KeySpec = input.secretValue ? SECRET_KEY_SPEC : input.keySpec ?? 'SYMMETRIC_DEFAULT';
    const usage: KeyUsage = input.secretValue ? 'SECRET_VALUE' : input.keyUsage ?? defaultUsage(spec);
    if (!input.secretValue && !allowedUsages(spec).includes(usage)) {
      throw kmsErrors.validation(`KeyUsage ${usage} is not compatible with KeySpec ${spec}.`);
    }
    if (input.origin && input.origin !== 'AWS_KMS') {
      throw kmsErrors.unsupported(`Origin ${input.origin} is not supported by trustplane; use AWS_KMS.`);
    }
    if (input.multiRegion) throw kmsErrors.unsupported('Multi-Region keys are not supported by trustplane.');
    if (input.policy !== undefined) this.#authorizer.engine.validate(input.policy, 'resource');
    const tags = input.tags ?? [];
    this.#checkTags(tags);
    if (new Set(tags.map((tag) => tag.tagKey)).size > MAX_TAGS_PER_KEY) {
      throw kmsErrors.limitExceeded(`A key can have at most ${MAX_TAGS_PER_KEY} tags.`);
    }
    const keyId = randomUuid();
    const arn = keyArn(this.#region, caller.accountId, keyId);
    const now = this.#now();
    if (input.policy !== undefined && !input.bypassLockoutCheck) await this.#checkLockout(caller, arn, caller.accountId, input.policy);
    const material = input.secretValue ? await this.#keyring.wrapKeyMaterial(keyId, 1, spec, input.secretValue)
      : await this.#keyring.createKeyMaterial(keyId, 1, spec);
    const key: KeyRecord = {
      keyId, accountId: caller.accountId, arn,
      description: input.description ?? '', keySpec: spec, keyUsage: usage, keyState: 'Enabled', origin: 'AWS_KMS',
      createdAt: now, currentVersion: 1, minDecryptVersion: 1, rotateOnHostLoss: true, rotationEnabled: false,
      policy: input.policy ?? defaultKeyPolicy(caller.accountId), revision: 1,
    };
    await this.#store.createKey(key, { keyId, version: 1, material: material.material, publicKeyDer: material.publicKeyDer,
      createdAt: now }, tags);
    this.#logger.info({ keyId, spec, usage, principal: caller.principalArn }, 'key created');
    return key;
  }

  /** A key by id, without authorisation: for services that decided access themselves (the fleet). */
  async findKey(keyId: string): Promise<KeyRecord | undefined> {
    return this.#store.getKey(keyId);
  }

  /** Resolves a key (id, ARN or alias) and authorises `action` on it. */
  async authorizeKey(caller: Caller, raw: string, action: string): Promise<KeyRecord> {
    return this.#resolveAuthorized(caller, raw, action);
  }

  async describeKey(caller: Caller, raw: string): Promise<KeyRecord> {
    return this.#resolveAuthorized(caller, raw, 'kms:DescribeKey');
  }

  async listKeys(caller: Caller, limit: number, marker?: string): Promise<Page<KeyRecord>> {
    await this.#authorizeInAccount(caller, 'kms:ListKeys');
    return this.#store.listKeys(caller.accountId, limit, marker);
  }

  async updateKeyDescription(caller: Caller, raw: string, description: string): Promise<void> {
    await this.#mutateKey(caller, raw, 'kms:UpdateKeyDescription', () => ({ description }),
      { refusePendingDeletion: true });
  }

  async enableKey(caller: Caller, raw: string): Promise<void> {
    await this.#mutateKey(caller, raw, 'kms:EnableKey', () => ({ keyState: 'Enabled' }),
      { refusePendingDeletion: true });
  }

  async disableKey(caller: Caller, raw: string): Promise<void> {
    await this.#mutateKey(caller, raw, 'kms:DisableKey', () => ({ keyState: 'Disabled' }),
      { refusePendingDeletion: true });
  }

  async scheduleKeyDeletion(caller: Caller, raw: string, pendingWindowInDays = 30): Promise<KeyRecord> {
    return this.#mutateKey(caller, raw, 'kms:ScheduleKeyDeletion', () => ({ keyState: 'PendingDeletion', pendingWindowInDays,
      deletionDate: new Date(this.#now().getTime() + pendingWindowInDays * DAY_MS) }), { refusePendingDeletion: true });
  }

  async cancelKeyDeletion(caller: Caller, raw: string): Promise<KeyRecord> {
    // AWS leaves a key whose deletion was cancelled disabled, so nobody uses it by surprise.
    return this.#mutateKey(caller, raw, 'kms:CancelKeyDeletion', (key) => {
      if (key.keyState !== 'PendingDeletion') throw kmsErrors.notPendingDeletion(key.arn);
      return { keyState: 'Disabled', pendingWindowInDays: null, deletionDate: null };
    });
  }

  // ---- aliases ------------------------------------------------------------------------------

  #checkAliasName(aliasName: string): void {
    if (!aliasName.startsWith('alias/')) {
      throw kmsErrors.invalidAliasName('Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html');
    }
    if (aliasName.startsWith(RESERVED_ALIAS_PREFIX)) {
      throw kmsErrors.invalidAliasName(`Alias ${aliasName} begins with the reserved prefix ${RESERVED_ALIAS_PREFIX}.`);
    }
    if (!ALIAS_NAME_PATTERN.test(aliasName) || aliasName.length > 256) {
      throw kmsErrors.validation(`1 validation error detected: Value '${aliasName}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$`);
    }
  }

  /**
   * As AWS: an alias operation needs the action on the alias (identity policy) and on every key
   * involved (key policy), and an alias names only keys of its own account.
   */
  async #aliasTarget(caller: Caller, targetKeyId: string, action: string): Promise<KeyRecord> {
    const reference = parseKeyReference(targetKeyId);
    if (reference.kind === 'alias') throw kmsErrors.validation('TargetKeyId must be a key ID or key ARN, not an alias.');
    const { key } = await this.#resolve(caller, targetKeyId);
    if (key.accountId !== caller.accountId) throw kmsErrors.keyNotFound(key.arn);
    await this.#authorize(caller, action, key);
    if (key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
    return key;
  }

  async createAlias(caller: Caller, aliasName: string, targetKeyId: string): Promise<void> {
    this.#checkAliasName(aliasName);
    await this.#authorizeInAccount(caller, 'kms:CreateAlias', aliasArn(this.#region, caller.accountId, aliasName));
    const key = await this.#aliasTarget(caller, targetKeyId, 'kms:CreateAlias');
    const now = this.#now();
    try {
      await this.#store.createAlias({ accountId: caller.accountId, aliasName, keyId: key.keyId, createdAt: now, updatedAt: now });
    } catch (error) {
      if (error instanceof StoreDuplicateError) throw kmsErrors.aliasExists(aliasArn(this.#region, caller.accountId, aliasName));
      throw error;
    }
  }

  async updateAlias(caller: Caller, aliasName: string, targetKeyId: string): Promise<void> {
    this.#checkAliasName(aliasName);
    await this.#authorizeInAccount(caller, 'kms:UpdateAlias', aliasArn(this.#region, caller.accountId, aliasName));
    const existing = await this.#store.getAlias(caller.accountId, aliasName);
    if (!existing) throw kmsErrors.aliasNotFound(aliasArn(this.#region, caller.accountId, aliasName));
    const current = await this.#store.getKey(existing.keyId);
    // Moving an alias away from a key is an action on that key too: nobody may hijack another's alias.
    if (current) await this.#authorize(caller, 'kms:UpdateAlias', current);
    const key = await this.#aliasTarget(caller, targetKeyId, 'kms:UpdateAlias');
    if (current && (current.keySpec !== key.keySpec || current.keyUsage !== key.keyUsage)) {
      throw kmsErrors.validation(`Alias ${aliasName} points to a ${current.keySpec} ${current.keyUsage} key; the new target must have the same key spec and key usage.`);
    }
    await this.#store.updateAlias(caller.accountId, aliasName, key.keyId, this.#now());
  }

  async deleteAlias(caller: Caller, aliasName: string): Promise<void> {
    this.#checkAliasName(aliasName);
    await this.#authorizeInAccount(caller, 'kms:DeleteAlias', aliasArn(this.#region, caller.accountId, aliasName));
    const existing = await this.#store.getAlias(caller.accountId, aliasName);
    if (!existing) throw kmsErrors.aliasNotFound(aliasArn(this.#region, caller.accountId, aliasName));
    const key = await this.#store.getKey(existing.keyId);
    if (key) await this.#authorize(caller, 'kms:DeleteAlias', key);
    await this.#store.deleteAlias(caller.accountId, aliasName);
  }

  async listAliases(caller: Caller, keyIdFilter: string | undefined, limit: number, marker?: string) {
    await this.#authorizeInAccount(caller, 'kms:ListAliases');
    const keyId = keyIdFilter ? (await this.#resolve(caller, keyIdFilter, { allowAlias: false })).key.keyId : undefined;
    const page = await this.#store.listAliases(caller.accountId, keyId, limit, marker);
    return { ...page, items: page.items.map((alias) => ({
      AliasName: alias.aliasName, AliasArn: aliasArn(this.#region, alias.accountId, alias.aliasName),
      TargetKeyId: alias.keyId, CreationDate: alias.createdAt, LastUpdatedDate: alias.updatedAt })) };
  }

  // ---- symmetric encryption -------------------------------------------------------------------

  #checkEncryptionAlgorithm(key: KeyRecord, algorithm: EncryptionAlgorithm | undefined): EncryptionAlgorithm {
    const allowed = encryptionAlgorithmsFor(key.keySpec as KeySpec, key.keyUsage) ?? [];
    const chosen = algorithm ?? 'SYMMETRIC_DEFAULT';
    if (!allowed.includes(chosen)) {
      throw new UserError('InvalidKeyUsageException', `The encryption algorithm ${chosen} is not valid for key ${key.arn}; use one of: ${allowed.join(', ')}.`);
    }
    return chosen;
  }

  async encrypt(caller: Caller, input: { keyId: string; plaintext: Buffer; context?: EncryptionContext;
    algorithm?: EncryptionAlgorithm; dryRun?: boolean }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:Encrypt', { context: input.context });
    this.#checkUsable(key, 'Encrypt');
    return this.#encryptWith(key, input);
  }

  /** Encrypts under an already authorised, usable key. */
  async #encryptWith(key: KeyRecord, input: { plaintext: Buffer; context?: EncryptionContext; algorithm?: EncryptionAlgorithm; dryRun?: boolean }) {
    const algorithm = this.#checkEncryptionAlgorithm(key, input.algorithm);
    if (algorithm !== 'SYMMETRIC_DEFAULT') {
      if (input.context && Object.keys(input.context).length > 0) {
        throw kmsErrors.validation('EncryptionContext is not supported with asymmetric keys.');
      }
      const modulusBytes = { RSA_2048: 256, RSA_3072: 384, RSA_4096: 512 }[key.keySpec as 'RSA_2048'] ?? 256;
      const maximum = modulusBytes - 2 * hashLength(oaepHash(algorithm)) - 2;
      if (input.plaintext.length > maximum) {
        throw kmsErrors.validation(`Plaintext is too long for ${key.keySpec} with ${algorithm}: at most ${maximum} bytes.`);
      }
      const opened = await this.#openCurrent(key);
      if (input.dryRun) throw kmsErrors.dryRun();
      return { CiphertextBlob: opened.key.rsaEncrypt(oaepHash(algorithm), input.plaintext), KeyId: key.arn, EncryptionAlgorithm: algorithm };
    }
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    return { CiphertextBlob: opened.key.encrypt(input.plaintext, input.context), KeyId: key.arn, EncryptionAlgorithm: algorithm };
  }

  /** Opens the key a symmetric blob names, after every state, version and policy check. */
  async #keyForBlob(caller: Caller, parsed: ParsedCiphertext, requestedKeyId: string | undefined, action: string,
    context: EncryptionContext | undefined): Promise<OpenedKey> {
    const requested = requestedKeyId === undefined ? undefined : (await this.#resolve(caller, requestedKeyId)).key;
    if (requested && requested.keyId !== parsed.keyId) throw kmsErrors.incorrectKey();
    // The key the caller named is the blob's key: no second read. A blob naming an unknown key is
    // indistinguishable from a corrupted one.
    const key = requested ?? await this.#store.getKey(parsed.keyId);
    if (!key) throw new CiphertextError();
    await this.#authorize(caller, action, key, { context });
    this.#checkUsable(key, 'Decrypt');
    if (key.keySpec !== 'SYMMETRIC_DEFAULT') throw new CiphertextError();
    // A staged version decrypts already (as on hosts); nothing encrypts under it until it is promoted.
    if (parsed.keyVersion > (key.pendingVersion ?? key.currentVersion)) throw new CiphertextError();
    if (parsed.keyVersion < key.minDecryptVersion) {
      throw new CiphertextError(`The ciphertext was made with version ${parsed.keyVersion} of the key, below its minimum decryption version ${key.minDecryptVersion}.`);
    }
    return { record: key, key: await this.#openVersion(key, parsed.keyVersion) };
  }

  async #decryptBlob(caller: Caller, blob: Buffer, context: EncryptionContext | undefined, keyId: string | undefined,
    algorithm: EncryptionAlgorithm | undefined, action: string): Promise<{ plaintext: Buffer; key: KeyRecord; algorithm: EncryptionAlgorithm }> {
    if (algorithm !== undefined && algorithm !== 'SYMMETRIC_DEFAULT') {
      if (keyId === undefined) throw kmsErrors.validation('KeyId is required to decrypt with an asymmetric encryption algorithm.');
      const key = await this.#resolveAuthorized(caller, keyId, action, { context });
      this.#checkUsable(key, 'Decrypt');
      this.#checkEncryptionAlgorithm(key, algorithm);
      const opened = await this.#openCurrent(key);
      return { plaintext: opened.key.rsaDecrypt(oaepHash(algorithm), blob), key, algorithm };
    }
    const parsed = parseCiphertextBlob(blob);
    const opened = await this.#keyForBlob(caller, parsed, keyId, action, context);
    return { plaintext: opened.key.decrypt(parsed, context), key: opened.record, algorithm: 'SYMMETRIC_DEFAULT' };
  }

  async decrypt(caller: Caller, input: { ciphertextBlob: Buffer; context?: EncryptionContext; keyId?: string;
    algorithm?: EncryptionAlgorithm; dryRun?: boolean }) {
    const result = await this.#decryptBlob(caller, input.ciphertextBlob, input.context, input.keyId, input.algorithm, 'kms:Decrypt');
    if (input.dryRun) {
      zeroize(result.plaintext);
      throw kmsErrors.dryRun();
    }
    return { KeyId: result.key.arn, Plaintext: result.plaintext, EncryptionAlgorithm: result.algorithm };
  }

  async reEncrypt(caller: Caller, input: { ciphertextBlob: Buffer; sourceContext?: EncryptionContext; sourceKeyId?: string;
    destinationKeyId: string; destinationContext?: EncryptionContext; sourceAlgorithm?: EncryptionAlgorithm;
    destinationAlgorithm?: EncryptionAlgorithm; dryRun?: boolean }) {
    const destination = await this.#resolveAuthorized(caller, input.destinationKeyId, 'kms:ReEncryptTo',
      { context: input.destinationContext });
    this.#checkUsable(destination, 'ReEncrypt');
    const source = await this.#decryptBlob(caller, input.ciphertextBlob, input.sourceContext, input.sourceKeyId,
      input.sourceAlgorithm, 'kms:ReEncryptFrom');
    try {
      const encrypted = await this.#encryptWith(destination, { plaintext: source.plaintext,
        context: input.destinationContext, algorithm: input.destinationAlgorithm, dryRun: input.dryRun });
      return { CiphertextBlob: encrypted.CiphertextBlob, SourceKeyId: source.key.arn, KeyId: destination.arn,
        SourceEncryptionAlgorithm: source.algorithm, DestinationEncryptionAlgorithm: encrypted.EncryptionAlgorithm };
    } finally {
      zeroize(source.plaintext);
    }
  }

  async generateDataKey(caller: Caller, input: { keyId: string; context?: EncryptionContext; numberOfBytes?: number;
    keySpec?: 'AES_256' | 'AES_128'; withPlaintext: boolean; dryRun?: boolean }) {
    const operation = input.withPlaintext ? 'GenerateDataKey' : 'GenerateDataKeyWithoutPlaintext';
    if (input.numberOfBytes === undefined && input.keySpec === undefined) {
      throw kmsErrors.validation('Please specify either number of bytes or key spec.');
    }
    if (input.numberOfBytes !== undefined && input.keySpec !== undefined) {
      throw kmsErrors.validation('Please specify either number of bytes or key spec, not both.');
    }
    const key = await this.#resolveAuthorized(caller, input.keyId, `kms:${operation}`, { context: input.context });
    this.#checkUsable(key, operation);
    this.#checkSymmetric(key, operation);
    const length = input.numberOfBytes ?? (input.keySpec === 'AES_128' ? 16 : 32);
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    const plaintext = randomBytes(length);
    const ciphertext = opened.key.encrypt(plaintext, input.context);
    if (!input.withPlaintext) {
      zeroize(plaintext);
      return { CiphertextBlob: ciphertext, KeyId: key.arn };
    }
    return { CiphertextBlob: ciphertext, Plaintext: plaintext, KeyId: key.arn };
  }

  async generateDataKeyPair(caller: Caller, input: { keyId: string; context?: EncryptionContext;
    keyPairSpec: DataKeyPairSpec; withPlaintext: boolean; dryRun?: boolean }) {
    const operation = input.withPlaintext ? 'GenerateDataKeyPair' : 'GenerateDataKeyPairWithoutPlaintext';
    const key = await this.#resolveAuthorized(caller, input.keyId, `kms:${operation}`, { context: input.context });
    this.#checkUsable(key, operation);
    this.#checkSymmetric(key, operation);
    if (input.dryRun) {
      await this.#openCurrent(key);
      throw kmsErrors.dryRun();
    }
    // The pair first: key generation runs off the event loop, and an opened key is used in the turn it is opened.
    const pair = await generateAsymmetricPair(input.keyPairSpec);
    const opened = await this.#openCurrent(key);
    const privateKeyCiphertext = opened.key.encrypt(pair.privateKeyDer, input.context);
    const result = { PrivateKeyCiphertextBlob: privateKeyCiphertext, PublicKey: pair.publicKeyDer, KeyId: key.arn,
      KeyPairSpec: input.keyPairSpec, PrivateKeyPlaintext: input.withPlaintext ? pair.privateKeyDer : undefined };
    if (!input.withPlaintext) zeroize(pair.privateKeyDer);
    return result;
  }

  generateRandom(numberOfBytes: number): { Plaintext: Buffer } {
    return { Plaintext: randomBytes(numberOfBytes) };
  }

  // ---- signing and MACs ----------------------------------------------------------------------

  #checkSigningAlgorithm(key: KeyRecord, algorithm: SigningAlgorithm): void {
    const allowed = signingAlgorithmsFor(key.keySpec as KeySpec, key.keyUsage) ?? [];
    if (!allowed.includes(algorithm)) throw kmsErrors.algorithmIncompatible(algorithm, key.keySpec);
  }

  #checkDigest(algorithm: SigningAlgorithm, message: Buffer, messageType: 'RAW' | 'DIGEST'): void {
    if (messageType !== 'DIGEST') return;
    const expected = hashLength(signingHash(algorithm));
    if (message.length !== expected) throw kmsErrors.validation(`Digest is invalid length for algorithm ${algorithm}.`);
  }

  async sign(caller: Caller, input: { keyId: string; message: Buffer; messageType: 'RAW' | 'DIGEST';
    signingAlgorithm: SigningAlgorithm; dryRun?: boolean }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:Sign');
    this.#checkUsable(key, 'Sign');
    this.#checkSigningAlgorithm(key, input.signingAlgorithm);
    this.#checkDigest(input.signingAlgorithm, input.message, input.messageType);
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    try {
      const signature = opened.key.sign(signatureSchemeFor(input.signingAlgorithm), input.message, input.messageType === 'DIGEST');
      return { KeyId: key.arn, Signature: signature, SigningAlgorithm: input.signingAlgorithm };
    } catch (error) {
      if (error instanceof UnsupportedDigestSigningError) throw kmsErrors.unsupported(error.message);
      throw error;
    }
  }

  async verify(caller: Caller, input: { keyId: string; message: Buffer; messageType: 'RAW' | 'DIGEST';
    signingAlgorithm: SigningAlgorithm; signature: Buffer; dryRun?: boolean }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:Verify');
    this.#checkUsable(key, 'Verify');
    this.#checkSigningAlgorithm(key, input.signingAlgorithm);
    this.#checkDigest(input.signingAlgorithm, input.message, input.messageType);
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    let valid: boolean;
    try {
      valid = opened.key.verify(signatureSchemeFor(input.signingAlgorithm), input.message, input.messageType === 'DIGEST', input.signature);
    } catch (error) {
      if (error instanceof UnsupportedDigestSigningError) throw kmsErrors.unsupported(error.message);
      throw error;
    }
    if (!valid) throw kmsErrors.invalidSignature();
    return { KeyId: key.arn, SignatureValid: true, SigningAlgorithm: input.signingAlgorithm };
  }

  async getPublicKey(caller: Caller, raw: string) {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:GetPublicKey');
    if (!isAsymmetricSpec(key.keySpec as KeySpec)) {
      throw kmsErrors.unsupported(`${key.arn} key spec is ${key.keySpec}, which has no public key.`);
    }
    if (key.keyState === 'Disabled') throw kmsErrors.disabled(key.arn);
    if (key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
    const version = await this.#store.getKeyVersion(key.keyId, key.currentVersion);
    const spec = key.keySpec as KeySpec;
    return { KeyId: key.arn, PublicKey: version?.publicKeyDer, CustomerMasterKeySpec: key.keySpec, KeySpec: key.keySpec,
      KeyUsage: key.keyUsage, EncryptionAlgorithms: encryptionAlgorithmsFor(spec, key.keyUsage),
      SigningAlgorithms: signingAlgorithmsFor(spec, key.keyUsage) };
  }

  #checkMacAlgorithm(key: KeyRecord, algorithm: MacAlgorithm): void {
    if (!(macAlgorithmsFor(key.keySpec as KeySpec) ?? []).includes(algorithm)) {
      throw kmsErrors.algorithmIncompatible(algorithm, key.keySpec);
    }
  }

  async generateMac(caller: Caller, input: { keyId: string; message: Buffer; macAlgorithm: MacAlgorithm; dryRun?: boolean }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:GenerateMac');
    this.#checkUsable(key, 'GenerateMac');
    this.#checkMacAlgorithm(key, input.macAlgorithm);
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    return { Mac: opened.key.generateMac(input.macAlgorithm, input.message), MacAlgorithm: input.macAlgorithm, KeyId: key.arn };
  }

  async verifyMac(caller: Caller, input: { keyId: string; message: Buffer; macAlgorithm: MacAlgorithm; mac: Buffer; dryRun?: boolean }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:VerifyMac');
    this.#checkUsable(key, 'VerifyMac');
    this.#checkMacAlgorithm(key, input.macAlgorithm);
    const opened = await this.#openCurrent(key);
    if (input.dryRun) throw kmsErrors.dryRun();
    if (!opened.key.verifyMac(input.macAlgorithm, input.message, input.mac)) throw kmsErrors.invalidMac();
    return { KeyId: key.arn, MacValid: true, MacAlgorithm: input.macAlgorithm };
  }

  // ---- versions and rotation -----------------------------------------------------------------

  #checkRotatable(key: KeyRecord): void {
    if (key.keySpec !== 'SYMMETRIC_DEFAULT') {
      throw kmsErrors.unsupported(`${key.arn} key spec is ${key.keySpec}; only symmetric encryption keys can be rotated.`);
    }
    if (key.keyState === 'Disabled') throw kmsErrors.disabled(key.arn);
    if (key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
  }

  async #lastRotationOrCreation(key: KeyRecord): Promise<Date> {
    if (key.currentVersion === 1) return key.createdAt;
    const version = await this.#store.getKeyVersion(key.keyId, key.currentVersion);
    return version?.createdAt ?? key.createdAt;
  }

  async enableKeyRotation(caller: Caller, raw: string, periodInDays = DEFAULT_ROTATION_PERIOD_DAYS): Promise<void> {
    await this.#mutateKey(caller, raw, 'kms:EnableKeyRotation', async (key) => {
      this.#checkRotatable(key);
      // A newly enabled schedule counts from now; changing the period counts from the last rotation.
      const from = key.rotationEnabled ? await this.#lastRotationOrCreation(key) : this.#now();
      return { rotationEnabled: true, rotationPeriodInDays: periodInDays,
        nextRotationAt: new Date(from.getTime() + periodInDays * DAY_MS) };
    });
  }

  async disableKeyRotation(caller: Caller, raw: string): Promise<void> {
    await this.#mutateKey(caller, raw, 'kms:DisableKeyRotation', (key) => {
      this.#checkRotatable(key);
      return { rotationEnabled: false, rotationPeriodInDays: null, nextRotationAt: null };
    });
  }

  async getKeyRotationStatus(caller: Caller, raw: string) {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:GetKeyRotationStatus');
    // As in AWS, a key pending deletion reports rotation off; the stored schedule returns on cancel.
    if (key.keyState === 'PendingDeletion') return { KeyId: key.arn, KeyRotationEnabled: false };
    return { KeyId: key.arn, KeyRotationEnabled: key.rotationEnabled, RotationPeriodInDays: key.rotationPeriodInDays,
      NextRotationDate: key.nextRotationAt };
  }

  /** Makes a new version the default (or, staged, the pending version). Old versions keep decrypting. */
  async #rotate(key: KeyRecord, rotationType: 'AUTOMATIC' | 'ON_DEMAND', staged?: StagedRotationInput, secretValue?: Buffer): Promise<KeyRecord> {
    if (key.pendingVersion !== undefined && !staged?.supersede) {
      throw new UserError('ConflictException', `Version ${key.pendingVersion} of ${key.arn} is staged and waiting for hosts; `
        + 'promote it first (trustplane rotation promote, --force to leave missing hosts behind).', 409);
    }
    const version = Math.max(key.currentVersion, key.pendingVersion ?? 0) + 1;
    const material = secretValue ? await this.#keyring.wrapKeyMaterial(key.keyId, version, key.keySpec as KeySpec, secretValue)
      : await this.#keyring.createKeyMaterial(key.keyId, version, key.keySpec as KeySpec);
    const now = this.#now();
    const patch: KeyPatch = rotationType === 'AUTOMATIC' && key.rotationPeriodInDays
      ? { nextRotationAt: new Date(now.getTime() + key.rotationPeriodInDays * DAY_MS) } : {};
    const record: KeyVersionRecord = { keyId: key.keyId, version, material: material.material,
      publicKeyDer: material.publicKeyDer, createdAt: now, rotationType };
    const hooks = this.#stagedRotations;
    const updated = staged && hooks
      ? await this.#store.addKeyVersion(key.keyId, key.revision, record, patch, { staged: true,
        alsoInTransaction: () => hooks.recordInTransaction({ keyId: key.keyId, version, accountId: key.accountId, state: 'pending',
          reason: staged.reason, startedAt: now, startedBy: staged.startedBy, promoteAfter: staged.promoteAfter }) })
      : await this.#store.addKeyVersion(key.keyId, key.revision, record, patch);
    this.#logger.info({ keyId: key.keyId, version, rotationType, staged: staged?.reason }, staged ? 'key version staged' : 'key rotated');
    return updated;
  }

  async rotateKeyOnDemand(caller: Caller, raw: string): Promise<KeyRecord> {
    return this.#retryOnConflict(async () => {
      const key = await this.#resolveAuthorized(caller, raw, 'kms:RotateKeyOnDemand');
      this.#checkRotatable(key);
      return this.#rotate(key, 'ON_DEMAND');
    });
  }

  /**
   * Two-phase rotation, phase one: a new version hosts receive and decrypt with, promoted to the
   * default once every entitled host acknowledged it (the fleet decides when).
   */
  async rotateKeyStaged(caller: Caller, raw: string, input: Omit<StagedRotationInput, 'startedBy' | 'reason'>): Promise<KeyRecord> {
    if (!this.#stagedRotations) throw kmsErrors.unsupported('Staged rotation needs the fleet service.');
    return this.#retryOnConflict(async () => {
      const key = await this.#resolveAuthorized(caller, raw, 'kms:RotateKeyOnDemand');
      this.#checkRotatable(key);
      return this.#rotate(key, 'ON_DEMAND', { ...input, reason: 'staged', startedBy: caller.principalArn });
    });
  }

  /**
   * A new value for a secret key: a new version, staged through the hosts like any rotation when
   * the key is distributed, else the default at once.
   */
  async putSecretValue(caller: Caller, raw: string, value: Buffer): Promise<KeyRecord> {
    return this.#retryOnConflict(async () => {
      const key = await this.#resolveAuthorized(caller, raw, 'kms:RotateKeyOnDemand');
      if (key.keyUsage !== 'SECRET_VALUE') throw kmsErrors.validation(`${key.arn} is not a secret key; rotate it instead.`);
      if (key.keyState !== 'Enabled') throw kmsErrors.disabled(key.arn);
      const staged = this.#stagedRotations?.isDistributed(key.keyId)
        ? { reason: 'staged', startedBy: caller.principalArn } : undefined;
      return this.#rotate(key, 'ON_DEMAND', staged, value);
    });
  }

  /** A secret key's value (default version unless one is named): for callers allowed kms:Decrypt on it. */
  async getSecretValue(caller: Caller, raw: string, version?: number): Promise<{ key: KeyRecord; version: number; value: Buffer }> {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:Decrypt');
    if (key.keyUsage !== 'SECRET_VALUE') throw kmsErrors.validation(`${key.arn} is not a secret key.`);
    if (key.keyState !== 'Enabled') throw kmsErrors.disabled(key.arn);
    const chosen = version ?? key.currentVersion;
    if (chosen < key.minDecryptVersion || chosen > (key.pendingVersion ?? key.currentVersion)) {
      throw kmsErrors.validation(`Version ${chosen} of ${key.arn} is not available.`);
    }
    return { key, version: chosen, value: (await this.#openVersion(key, chosen)).secretValue() };
  }

  /** An event-triggered staged rotation (a host that held the key is gone); no caller authorisation: the fleet decided. */
  async rotateKeyForEvent(keyId: string, reason: string, startedBy: string): Promise<KeyRecord | undefined> {
    return this.#retryOnConflict(async () => {
      const key = await this.#store.getKey(keyId);
      if (!key || key.keyState !== 'Enabled' || key.keySpec !== 'SYMMETRIC_DEFAULT' || !key.rotateOnHostLoss) return undefined;
      return this.#rotate(key, 'ON_DEMAND', { reason, startedBy, supersede: true });
    });
  }

  async setRotateOnHostLoss(caller: Caller, raw: string, enabled: boolean): Promise<KeyRecord> {
    return this.#mutateKey(caller, raw, 'kms:EnableKeyRotation', () => ({ rotateOnHostLoss: enabled }), { refusePendingDeletion: true });
  }

  async listKeyRotations(caller: Caller, raw: string, limit: number, marker?: string) {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:ListKeyRotations');
    if (key.keySpec !== 'SYMMETRIC_DEFAULT') {
      throw kmsErrors.unsupported(`${key.arn} key spec is ${key.keySpec}; only symmetric encryption keys have rotations.`);
    }
    const page = await this.#store.listKeyVersions(key.keyId, limit, marker, { rotationsOnly: true });
    return {
      Rotations: page.items.map((version) => ({ KeyId: key.arn, RotationDate: version.createdAt, RotationType: version.rotationType })),
      Truncated: page.nextMarker !== undefined,
      NextMarker: page.nextMarker,
    };
  }

  async listKeyVersions(caller: Caller, raw: string, limit: number, marker?: string) {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:DescribeKey');
    const page = await this.#store.listKeyVersions(key.keyId, limit, marker);
    return { key, versions: page.items, nextMarker: page.nextMarker };
  }

  async setMinimumDecryptionVersion(caller: Caller, raw: string, minimum: number): Promise<KeyRecord> {
    return this.#mutateKey(caller, raw, 'kms:PutKeyPolicy', (key) => {
      if (minimum > key.currentVersion) {
        throw kmsErrors.validation(`MinimumDecryptionVersion ${minimum} is above the key's current version ${key.currentVersion}.`);
      }
      return { minDecryptVersion: minimum };
    }, { refusePendingDeletion: true });
  }

  // ---- policies and tags ---------------------------------------------------------------------

  #checkPolicyName(policyName: string | undefined): void {
    if (policyName !== undefined && policyName !== DEFAULT_POLICY_NAME) {
      throw new UserError('NotFoundException', `Policy name ${policyName} not found; keys have one policy, named "default".`);
    }
  }

  async getKeyPolicy(caller: Caller, raw: string, policyName?: string) {
    this.#checkPolicyName(policyName);
    const key = await this.#resolveAuthorized(caller, raw, 'kms:GetKeyPolicy');
    return { Policy: key.policy, PolicyName: DEFAULT_POLICY_NAME };
  }

  async putKeyPolicy(caller: Caller, raw: string, policy: string, options: { policyName?: string; bypassLockoutCheck?: boolean } = {}): Promise<void> {
    this.#checkPolicyName(options.policyName);
    this.#authorizer.engine.validate(policy, 'resource');
    await this.#mutateKey(caller, raw, 'kms:PutKeyPolicy', async (key) => {
      if (!options.bypassLockoutCheck) await this.#checkLockout(caller, key.arn, key.accountId, policy);
      return { policy };
    }, { refusePendingDeletion: true });
  }

  /** AWS's lockout safety check: under the new policy the caller must still be allowed to change the policy. */
  async #checkLockout(caller: Caller, resource: string, resourceAccountId: string, policy: string): Promise<void> {
    const after = await this.#authorizer.evaluate(caller, { action: 'kms:PutKeyPolicy', resource,
      resourceAccountId, resourcePolicy: policy });
    if (!after.allowed) {
      throw kmsErrors.malformedPolicy('The new key policy will not allow you to update the key policy in the future (kms:PutKeyPolicy). Set BypassPolicyLockoutSafetyCheck to apply it anyway.');
    }
  }

  async listKeyPolicies(caller: Caller, raw: string) {
    await this.#resolveAuthorized(caller, raw, 'kms:ListKeyPolicies');
    return { PolicyNames: [DEFAULT_POLICY_NAME], Truncated: false };
  }

  #checkTags(tags: TagRecord[]): void {
    for (const tag of tags) {
      if (tag.tagKey.startsWith('aws:')) throw kmsErrors.tagError(`Tag key ${tag.tagKey} uses the reserved prefix aws:.`);
    }
  }

  async tagResource(caller: Caller, raw: string, tags: TagRecord[]): Promise<void> {
    this.#checkTags(tags);
    const key = await this.#resolveAuthorized(caller, raw, 'kms:TagResource', { refusePendingDeletion: true });
    const existing = await this.#store.listTags(key.keyId, MAX_TAGS_PER_KEY + 1);
    const keys = new Set([...existing.items.map((tag) => tag.tagKey), ...tags.map((tag) => tag.tagKey)]);
    if (keys.size > MAX_TAGS_PER_KEY) throw kmsErrors.limitExceeded(`A key can have at most ${MAX_TAGS_PER_KEY} tags.`);
    await this.#store.putTags(key.keyId, tags);
  }

  async untagResource(caller: Caller, raw: string, tagKeys: string[]): Promise<void> {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:UntagResource', { refusePendingDeletion: true });
    await this.#store.removeTags(key.keyId, tagKeys);
  }

  async listResourceTags(caller: Caller, raw: string, limit: number, marker?: string): Promise<Page<TagRecord>> {
    const key = await this.#resolveAuthorized(caller, raw, 'kms:ListResourceTags');
    return this.#store.listTags(key.keyId, limit, marker);
  }

  // ---- grants -------------------------------------------------------------------------------

  /** Grant tokens must name grants that exist; an unknown or garbled token is refused. */
  async checkGrantTokens(tokens: string[] | undefined): Promise<void> {
    for (const token of tokens ?? []) {
      if (!token.startsWith('TPGT') || !(await this.#store.findGrantByTokenHash(sha256(token)))) {
        throw new UserError('InvalidGrantTokenException', 'The grant token is not valid.');
      }
    }
  }

  async createGrant(caller: Caller, input: { keyId: string; granteePrincipal: string; retiringPrincipal?: string;
    operations: string[]; constraints?: GrantConstraints; name?: string; dryRun?: boolean }) {
    const reference = parseKeyReference(input.keyId);
    if (reference.kind !== 'key') throw kmsErrors.validation('CreateGrant needs a key ID or key ARN, not an alias.');
    if (input.constraints?.encryptionContextEquals && input.constraints.encryptionContextSubset) {
      throw kmsErrors.validation('Specify EncryptionContextEquals or EncryptionContextSubset, not both.');
    }
    const operations = [...new Set(input.operations)];
    const { key } = await this.#resolve(caller, input.keyId);
    const conditionKeys: Record<string, ConditionValue> = { 'kms:GrantOperations': operations,
      'kms:GranteePrincipal': input.granteePrincipal, 'kms:RetiringPrincipal': input.retiringPrincipal,
      'kms:GrantIsForAWSResource': false };
    const request = this.#accessRequest(caller, 'kms:CreateGrant', key, { conditionKeys, grantsApply: false });
    const decision = await this.#authorizer.decide(caller, request);
    if (!decision.allowed) {
      // A grant that includes CreateGrant may only hand on what it holds itself, no looser.
      const parent = decision.decision === 'ImplicitDeny' ? await this.#delegatingGrant(caller, key, operations, input.constraints) : undefined;
      if (!parent) await this.#authorizer.require(caller, request);
      else caller.decisions?.push({ decision: 'Allow', decidedBy: `grant:${parent.grantId}`, action: 'kms:CreateGrant', resource: key.arn });
    }
    if (key.keyState === 'PendingDeletion') throw kmsErrors.pendingDeletion(key.arn);
    if (input.dryRun) throw kmsErrors.dryRun();
    const grantToken = `TPGT${randomBytes(48).toString('base64url')}`;
    const grant: GrantRecord = {
      grantId: randomBytes(32).toString('hex'), keyId: key.keyId, accountId: key.accountId, name: input.name,
      granteePrincipal: input.granteePrincipal, retiringPrincipal: input.retiringPrincipal,
      operations, constraints: input.constraints, issuingAccount: rootArn(caller.accountId),
      createdAt: this.#now(), tokenHash: sha256(grantToken),
    };
    await this.#store.createGrant(grant);
    return { GrantToken: grantToken, GrantId: grant.grantId };
  }

  /** A grant of the caller's with CreateGrant whose operations cover these and whose constraints the new ones keep. */
  async #delegatingGrant(caller: Caller, key: KeyRecord, operations: string[], constraints: GrantConstraints | undefined) {
    for await (const grant of this.#grantsHeldBy(caller, key)) {
      if (!grant.operations.includes('CreateGrant') || !operations.every((operation) => grant.operations.includes(operation))) continue;
      if (JSON.stringify(grant.constraints ?? null) !== JSON.stringify(constraints ?? null) && grant.constraints !== undefined) continue;
      return grant;
    }
    return undefined;
  }

  describeGrant(grant: GrantRecord) {
    const constraints = grant.constraints ? { EncryptionContextEquals: grant.constraints.encryptionContextEquals,
      EncryptionContextSubset: grant.constraints.encryptionContextSubset } : undefined;
    return { KeyId: keyArn(this.#region, grant.accountId, grant.keyId), GrantId: grant.grantId, Name: grant.name,
      CreationDate: grant.createdAt, GranteePrincipal: grant.granteePrincipal, RetiringPrincipal: grant.retiringPrincipal,
      IssuingAccount: grant.issuingAccount, Operations: grant.operations, Constraints: constraints };
  }

  async listGrants(caller: Caller, input: { keyId: string; grantId?: string; granteePrincipal?: string; limit: number; marker?: string }) {
    const key = await this.#resolveAuthorized(caller, input.keyId, 'kms:ListGrants');
    return this.#store.listGrants({ keyId: key.keyId, grantId: input.grantId, grantee: input.granteePrincipal },
      input.limit, input.marker);
  }

  async listRetirableGrants(caller: Caller, retiringPrincipal: string, limit: number, marker?: string) {
    const account = /^arn:aws:(?:iam|sts)::(\d{12}):/.exec(retiringPrincipal)?.[1];
    if (!account) throw kmsErrors.validation('RetiringPrincipal must be the ARN of a principal in your account.');
    if (account !== caller.accountId) {
      throw kmsErrors.accessDenied(caller.principalArn, 'kms:ListRetirableGrants', retiringPrincipal);
    }
    await this.#authorizer.require(caller, { action: 'kms:ListRetirableGrants', resource: retiringPrincipal, resourceAccountId: account });
    return this.#store.listGrants({ retiringPrincipal }, limit, marker);
  }

  /** Retiring is for the retiring principal, a grantee allowed RetireGrant, or the key's account root. */
  async retireGrant(caller: Caller, input: { grantToken?: string; keyId?: string; grantId?: string; dryRun?: boolean }) {
    let grant: GrantRecord | undefined;
    if (input.grantToken) grant = input.grantToken.startsWith('TPGT') ? await this.#store.findGrantByTokenHash(sha256(input.grantToken)) : undefined;
    else if (input.keyId && input.grantId) {
      const { key } = await this.#resolve(caller, input.keyId);
      grant = await this.#store.getGrant(input.grantId);
      if (grant && grant.keyId !== key.keyId) grant = undefined;
    } else {
      throw kmsErrors.validation('Specify GrantToken, or KeyId and GrantId.');
    }
    if (!grant) {
      if (input.grantToken) throw new UserError('InvalidGrantTokenException', 'The grant token is not valid.');
      throw new UserError('NotFoundException', `Grant ID ${input.grantId} not found.`);
    }
    const callers = [caller.principalArn, caller.identityArn];
    const allowed = (grant.retiringPrincipal !== undefined && callers.includes(grant.retiringPrincipal))
      || (callers.includes(grant.granteePrincipal) && grant.operations.includes('RetireGrant'))
      || (caller.kind === 'root' && caller.accountId === grant.accountId);
    if (!allowed) {
      throw new UserError('AccessDeniedException', `User: ${caller.principalArn} is not authorized to perform: kms:RetireGrant on grant ${grant.grantId}`);
    }
    caller.decisions?.push({ decision: 'Allow', decidedBy: 'grant-retirement-rules', action: 'kms:RetireGrant',
      resource: keyArn(this.#region, grant.accountId, grant.keyId) });
    if (input.dryRun) throw kmsErrors.dryRun();
    await this.#store.deleteGrant(grant.grantId);
  }

  async revokeGrant(caller: Caller, keyId: string, grantId: string, dryRun?: boolean): Promise<void> {
    const key = await this.#resolveAuthorized(caller, keyId, 'kms:RevokeGrant');
    const grant = await this.#store.getGrant(grantId);
    if (!grant || grant.keyId !== key.keyId) throw new UserError('NotFoundException', `Grant ID ${grantId} not found.`);
    if (dryRun) throw kmsErrors.dryRun();
    await this.#store.deleteGrant(grantId);
  }

  // ---- scheduled work --------------------------------------------------------------------------

  /** Rotates keys whose rotation is due and deletes keys whose waiting period has ended. */
  async runDueWork(): Promise<{ rotated: number; deleted: number }> {
    const now = this.#now();
    let rotated = 0;
    let deleted = 0;
    for (const key of await this.#store.listKeysDueForRotation(now)) {
      // A key hosts hold rotates in two phases, like an asked-for staged rotation; one still waiting for hosts waits on.
      const staged = this.#stagedRotations?.isDistributed(key.keyId);
      if (staged && key.pendingVersion !== undefined) continue;
      try {
        await this.#rotate(key, 'AUTOMATIC', staged ? { reason: 'scheduled', startedBy: 'trustplane:scheduler' } : undefined);
        rotated += 1;
      } catch (error) {
        // A concurrent change wins; the key is picked up again on the next pass.
        if (!(error instanceof StoreConflictError)) this.#logger.error({ err: error, keyId: key.keyId }, 'scheduled rotation failed');
      }
    }
    for (const key of await this.#store.listKeysDueForDeletion(now)) {
      if (!(await this.#store.deleteKeyIfDue(key.keyId, now))) continue;
      this.#keyring.forgetKey(key.keyId);
      this.#logger.info({ keyId: key.keyId }, 'key deleted after its waiting period');
      deleted += 1;
    }
    return { rotated, deleted };
  }
}
