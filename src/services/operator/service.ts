// The operator service: initialise the crypto module, unseal it with Shamir shares (or the
// token), seal it, rotate the domain key. Init, unseal and status need no credentials (there are
// none while sealed: every secret is wrapped); seal and rotation need a management principal.
// Must never store, log or return a share or the root key except the one init response.
import { zeroize, type Pkcs11CryptoModule, type SoftwareCryptoModule } from '../../shared/crypto/index.ts';
import { accountArn, type Authorizer, type Caller } from '../../shared/auth/index.ts';
import { UserError } from '../../shared/errors.ts';
import { StoreConflictError } from '../../shared/store/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { Store } from '../../shared/store/index.ts';
import type { IdentityService } from '../iam/index.ts';
import type { DomainKeyRotation, DomainKeyRotationProgress } from './domain-key-rotation.ts';
import {
  decodeShare, encodeShare, encryptSharesToRecipients, newSplitRootKey, parseShareScheme, shareSchemeValues, UnsealProgress,
  SHAMIR_SHARES_VALUE, SHAMIR_THRESHOLD_VALUE, type ShareScheme,
} from './domain/shares.ts';
import { unsealWithRootKey } from './root-key.ts';

export type SealBackend =
  | { kind: 'software'; module: SoftwareCryptoModule }
  | { kind: 'pkcs11'; module: Pkcs11CryptoModule };

export interface SealStatus {
  Initialized: boolean;
  Sealed: boolean;
  /** Distinct shares submitted toward the current unseal. */
  Progress: number;
  /** Shares needed to unseal (0 when the module unseals itself, as a PKCS#11 token does). */
  Threshold: number;
  Shares: number;
  Module: 'software' | 'pkcs11';
  SealedReason?: string;
  DomainKeyRotation: DomainKeyRotationProgress;
}

export interface InitResult {
  Shares: string[];
  Threshold: number;
  AccessKeyId: string;
  SecretAccessKey: string;
}

export interface OperatorServiceOptions {
  seal: SealBackend;
  store: Store;
  identity: IdentityService;
  authorizer: Authorizer;
  accountId: string;
  rotation: DomainKeyRotation;
  logger: Logger;
  /** Work that needs keys: runs after every unseal (scheduled work, resuming a rotation). */
  onUnsealed(): Promise<void>;
}

export class OperatorService {
  readonly #options: OperatorServiceOptions;
  readonly #progress = new UnsealProgress();
  #scheme: ShareScheme | undefined;
  #sealedByOperator = false;
  // Init and unseal each change module state across awaits; one at a time keeps them whole.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: OperatorServiceOptions) {
    this.#options = options;
  }

  #serialize<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(work);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #shareScheme(): Promise<ShareScheme | undefined> {
    const { store } = this.#options;
    this.#scheme ??= parseShareScheme({ threshold: await store.getModuleValue(SHAMIR_THRESHOLD_VALUE),
      shares: await store.getModuleValue(SHAMIR_SHARES_VALUE) });
    return this.#scheme;
  }

  async status(): Promise<SealStatus> {
    const { seal, rotation } = this.#options;
    const moduleStatus = seal.module.status();
    const scheme = seal.kind === 'software' ? await this.#shareScheme() : undefined;
    return {
      Initialized: moduleStatus.initialized, Sealed: moduleStatus.sealed, Progress: this.#progress.progress,
      Threshold: scheme?.threshold ?? 0, Shares: scheme?.shares ?? 0, Module: seal.kind,
      SealedReason: moduleStatus.sealed ? moduleStatus.sealedReason ?? (moduleStatus.initialized ? undefined : 'not initialised') : undefined,
      DomainKeyRotation: rotation.progress(),
    };
  }

  /** First-time set-up: root key (split into shares) or token key, and the root principal's credentials. */
  init(scheme: Partial<ShareScheme>, recipients?: string[]): Promise<InitResult> {
    return this.#serialize(async () => {
      const { seal, identity, accountId, logger } = this.#options;
      await this.#recoverUnfinishedInit();
      const live = (await this.#options.store.listDomainKeys()).find((key) => key.state !== 'retired');
      if (seal.module.status().initialized || live) {
        throw new UserError('AlreadyInitializedException', live && live.module !== seal.kind
          ? `This home is already initialised with the ${live.module} module; start the server with --seal ${live.module}.`
          : 'The crypto module is already initialised.', 409);
      }
      let shares: string[] = [];
      let threshold = 0;
      if (seal.kind === 'software') {
        const wanted = { shares: scheme.shares ?? recipients?.length ?? 5, threshold: scheme.threshold ?? 3 };
        const { rootKey, shares: split } = await newSplitRootKey(wanted);
        try {
          // Encrypted before they leave the server (and before anything is stored, so a bad recipient changes nothing).
          shares = recipients ? await encryptSharesToRecipients(split.map(encodeShare), recipients) : split.map(encodeShare);
          await seal.module.initialize(rootKey, shareSchemeValues(wanted));
          threshold = wanted.threshold;
          this.#scheme = wanted;
        } finally {
          zeroize(rootKey, ...split);
        }
      } else {
        if (scheme.shares !== undefined || scheme.threshold !== undefined || recipients !== undefined) {
          throw new UserError('ValidationException', 'A PKCS#11 module is unsealed by its token: Shares and Threshold do not apply.');
        }
        await seal.module.initialize();
      }
      const credentials = await identity.ensureManagementAccount(accountId);
      if (!credentials) throw new UserError('AlreadyInitializedException', 'The management account already exists.', 409);
      logger.warn({ module: seal.kind, shares: shares.length, threshold }, 'crypto module initialised; the shares and root credentials were returned once and are not stored');
      await this.#options.onUnsealed();
      return { Shares: shares, Threshold: threshold, AccessKeyId: credentials.accessKeyId, SecretAccessKey: credentials.secretAccessKey };
    });
  }

  /**
   * An init that crashed after the module committed but before the root account did left a home
   * nobody can use (its shares were never shown) and nothing in it: start the module over.
   */
  async #recoverUnfinishedInit(): Promise<void> {
    const { seal, store, identity, accountId, logger } = this.#options;
    if (!seal.module.status().initialized || (await identity.isManagementAccount(accountId))) return;
    try {
      await store.abandonUnusedModule();
    } catch (error) {
      if (error instanceof StoreConflictError) return; // something is wrapped under it: never discard
      throw error;
    }
    seal.module.seal();
    await seal.module.load();
    this.#scheme = undefined;
    logger.warn('an earlier init did not finish (no root account was made): initialising again');
  }

  /** Adds one share; unseals when the threshold is reached with shares that rebuild the root key. */
  unseal(shareText: string | undefined, reset = false): Promise<SealStatus> {
    return this.#serialize(async () => {
      const { seal, logger } = this.#options;
      const moduleStatus = seal.module.status();
      if (!moduleStatus.initialized) throw new UserError('NotInitializedException', 'The crypto module is not initialised; run trustplane operator init first.', 409);
      if (reset) {
        this.#progress.reset();
        if (shareText === undefined) return this.status();
      }
      if (!moduleStatus.sealed) return this.status();
      if (seal.kind === 'pkcs11') {
        // The token unseals with no secret from the caller: after an operator's seal (a tamper
        // response) an anonymous request must not undo it. Only a restart, by whoever runs the server, does.
        if (this.#sealedByOperator) {
          throw new UserError('SealedByOperatorException',
            'An operator sealed this server; a PKCS#11 module is unsealed again only by restarting the server.', 409);
        }
        if (!(await seal.module.reopen())) {
          throw new UserError('UnsealFailedException', `The PKCS#11 token could not be opened: ${seal.module.status().sealedReason ?? 'see the server log'}.`, 503);
        }
        await this.#afterUnseal();
        return this.status();
      }
      if (shareText === undefined) throw new UserError('ValidationException', 'An unseal share is required.');
      const scheme = await this.#shareScheme();
      if (!scheme) throw new UserError('NotInitializedException', 'This crypto module was not initialised with shares.', 409);
      const added = await this.#progress.add(decodeShare(shareText, scheme.threshold), scheme.threshold);
      if (added.kind === 'duplicate') {
        throw new UserError('DuplicateShareException', `This share was already submitted; ${this.#progress.progress}/${scheme.threshold} distinct shares so far.`);
      }
      if (added.kind === 'pending') return this.status();
      try {
        await unsealWithRootKey(seal.module, added.rootKey,
          `The ${scheme.threshold} shares submitted do not rebuild the root key: at least one is wrong. Progress was reset; submit ${scheme.threshold} shares again.`);
      } catch (error) {
        if (error instanceof UserError) logger.warn('unseal failed: the submitted shares do not rebuild the root key; progress reset');
        throw error;
      }
      await this.#afterUnseal();
      return this.status();
    });
  }

  async #afterUnseal(): Promise<void> {
    this.#sealedByOperator = false;
    this.#options.logger.warn({ module: this.#options.seal.kind }, 'crypto module unsealed');
    await this.#options.onUnsealed();
  }

  async #requireOperator(caller: Caller, action: string): Promise<void> {
    const { authorizer, identity, accountId } = this.#options;
    await authorizer.require(caller, { action, resource: accountArn(caller.accountId), resourceAccountId: caller.accountId });
    if (caller.accountId !== accountId || !(await identity.isManagementAccount(accountId))) {
      throw new UserError('AccessDeniedException', 'Only principals of the management account may operate the crypto module.');
    }
  }

  /** Forgets every domain key and every key derived from one, at once. */
  async seal(caller: Caller): Promise<SealStatus> {
    await this.#requireOperator(caller, 'tp:Seal');
    this.sealNow('sealed by operator request');
    this.#sealedByOperator = true;
    return this.status();
  }

  /**
   * Scheduled work: a PKCS#11 token that went away (or was absent at start) is tried again. A
   * module an operator sealed stays sealed: reopening it behind their back would undo the tamper response.
   */
  async retryLostToken(): Promise<void> {
    const { seal, logger, rotation } = this.#options;
    if (seal.kind !== 'pkcs11' || this.#sealedByOperator) return;
    const status = seal.module.status();
    if (!status.sealed || !status.initialized) return;
    if (await seal.module.reopen()) {
      logger.warn('PKCS#11 token reachable again: crypto module unsealed');
      rotation.resume();
    }
  }

  /** GET /health: 200 when keys can be used, 503 otherwise, with why and any rotation in progress. */
  async health(): Promise<{ httpStatus: number; body: Record<string, unknown> }> {
    const status = await this.status();
    return {
      httpStatus: status.Sealed ? 503 : 200,
      body: {
        status: !status.Initialized ? 'uninitialized' : status.Sealed ? 'sealed' : 'ok', initialized: status.Initialized,
        sealed: status.Sealed, module: status.Module, progress: status.Progress, threshold: status.Threshold,
        sealedReason: status.SealedReason, domainKeyRotation: status.DomainKeyRotation.State !== 'Idle' ? status.DomainKeyRotation : undefined,
      },
    };
  }

  /** The tamper response and the shutdown path: no authorisation, no awaiting. */
  sealNow(reason: string): void {
    this.#progress.reset();
    void this.#options.rotation.stop();
    this.#options.seal.module.seal();
    this.#options.logger.warn({ reason }, 'crypto module sealed: every domain key dropped from memory');
  }

  async rotateDomainKey(caller: Caller): Promise<DomainKeyRotationProgress> {
    await this.#requireOperator(caller, 'tp:RotateDomainKey');
    const { rotation } = this.#options;
    return rotation.rotate();
  }

  async domainKeyRotation(caller: Caller): Promise<DomainKeyRotationProgress> {
    await this.#requireOperator(caller, 'tp:GetDomainKeyRotation');
    return this.#options.rotation.progress();
  }
}
