// Software crypto module: domain keys in process memory, persisted only wrapped under a
// root key that arrives by unseal. Must never write the root key or a domain key to disk.
import { CiphertextError, SealedError } from '../../errors.ts';
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH, GCM_TAG_LENGTH } from './aead.ts';
import { collectGarbageSoon, randomBytes, randomUuid, zeroize } from './bytes.ts';
import type { CryptoModule, CryptoModuleStatus, DomainKeyRecord, DomainKeyStore, WrappedSecret } from './crypto-module.ts';

const WRAP_FORMAT_VERSION = 1;
const DOMAIN_KEY_LENGTH = 32;
/** The module value holding the root key's check value (a known plaintext sealed under it). */
export const ROOT_CHECK_NAME = 'root-check';
const ROOT_CHECK_PLAINTEXT = Buffer.from('trustplane root key check v1');

function domainKeyAad(id: string): Buffer {
  return Buffer.from(`trustplane/domain-key/v1/${id}`);
}

/** version byte || nonce || ciphertext || tag */
function sealUnder(key: Uint8Array, secret: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const sealed = aesGcmEncrypt(key, nonce, secret, aad);
  return Buffer.concat([Buffer.of(WRAP_FORMAT_VERSION), nonce, sealed.ciphertext, sealed.tag]);
}

function openUnder(key: Uint8Array, wrapped: Buffer, aad: Uint8Array): Buffer {
  if (wrapped.length < 1 + GCM_NONCE_LENGTH + GCM_TAG_LENGTH || wrapped[0] !== WRAP_FORMAT_VERSION) {
    throw new CiphertextError();
  }
  const nonce = wrapped.subarray(1, 1 + GCM_NONCE_LENGTH);
  const tag = wrapped.subarray(wrapped.length - GCM_TAG_LENGTH);
  return aesGcmDecrypt(key, nonce, wrapped.subarray(1 + GCM_NONCE_LENGTH, wrapped.length - GCM_TAG_LENGTH), tag, aad);
}

function rootCheckValue(rootKey: Uint8Array): Buffer {
  return sealUnder(rootKey, ROOT_CHECK_PLAINTEXT, Buffer.alloc(0));
}

/** A fresh domain key and its record, wrapped under the root key. The caller owns (and zeroizes) `bytes`. */
function newDomainKey(rootKey: Uint8Array): { record: DomainKeyRecord; bytes: Buffer } {
  const id = randomUuid();
  const bytes = randomBytes(DOMAIN_KEY_LENGTH);
  try {
    return { record: { id, module: 'software', wrapped: sealUnder(rootKey, bytes, domainKeyAad(id)), createdAt: new Date(), state: 'active' },
      bytes };
  } catch (error) {
    zeroize(bytes);
    throw error;
  }
}

export class WrongRootKeyError extends Error {
  constructor() { super('The unseal key does not match this crypto module.'); this.name = 'WrongRootKeyError'; }
}

/** The store's domain keys belong to another kind of module than the server was started with. */
export class ForeignModuleError extends Error {
  readonly module: string;
  constructor(module: string) {
    super(`This home is sealed with the ${module} module: start the server with --seal ${module}, or run trustplane operator migrate-seal.`);
    this.name = 'ForeignModuleError';
    this.module = module;
  }
}

export class SoftwareCryptoModule implements CryptoModule {
  readonly kind = 'software' as const;
  readonly #store: DomainKeyStore;
  #initialized = false;
  // Plain buffers we own, not KeyObjects: seal() can overwrite them at once instead of waiting for GC.
  #domainKeys = new Map<string, Buffer>();
  #activeDomainKeyId: string | undefined;
  /** Held only while unsealed, to wrap new domain keys on rotation; dropped on seal. */
  #rootKey: Buffer | undefined;
  #sealedReason: string | undefined;
  #sealListeners: Array<() => void> = [];

  constructor(store: DomainKeyStore) {
    this.#store = store;
  }

  /** Reads whether the module was ever initialised (a root check value exists). */
  async load(): Promise<void> {
    const keys = await this.#store.listDomainKeys();
    // Any live domain key counts: a home sealed with another module is initialised, not new.
    this.#initialized = keys.some((key) => key.state !== 'retired');
    const foreign = keys.find((key) => key.state === 'active' && key.module !== 'software');
    this.#sealedReason = foreign ? new ForeignModuleError(foreign.module).message : undefined;
  }

  status(): CryptoModuleStatus {
    const sealed = this.#activeDomainKeyId === undefined;
    return { kind: this.kind, initialized: this.#initialized, sealed, activeDomainKeyId: this.#activeDomainKeyId,
      ...(sealed && this.#sealedReason ? { sealedReason: this.#sealedReason } : {}) };
  }

  /** First-time set-up under a new root key: records a check value and the first domain key. */
  async initialize(rootKeyBytes: Uint8Array, values: Record<string, Buffer> = {}): Promise<void> {
    if (this.#initialized) throw new Error('crypto module is already initialised');
    const rootKey = Buffer.from(rootKeyBytes);
    try {
      const domainKey = newDomainKey(rootKey);
      // Not kept: the unseal below unwraps it from the store like any other.
      zeroize(domainKey.bytes);
      // One transaction: a crash leaves either nothing or a complete, unsealable module.
      await this.#store.initializeModule(domainKey.record, { ...values, [ROOT_CHECK_NAME]: rootCheckValue(rootKey) });
      this.#initialized = true;
    } finally {
      zeroize(rootKey);
    }
    await this.unseal(rootKeyBytes);
  }

  /** Loads every domain key under the root key; throws WrongRootKeyError for another key. */
  async unseal(rootKeyBytes: Uint8Array): Promise<void> {
    const matches = await this.#opensRootCheck(rootKeyBytes);
    if (matches === undefined) throw new Error('crypto module is not initialised');
    if (!matches) throw new WrongRootKeyError();
    const records = await this.#store.listDomainKeys();
    const rootKey = Buffer.from(rootKeyBytes);
    const keys = new Map<string, Buffer>();
    let active: string | undefined;
    try {
      active = this.#followDomainKeys(rootKey, records, keys, { refuseForeign: true });
      if (!active) throw new Error('crypto module has no active domain key');
    } catch (error) {
      zeroize(rootKey, ...keys.values());
      throw error;
    }
    this.#domainKeys = keys;
    this.#activeDomainKeyId = active;
    this.#rootKey = rootKey;
  }

  /** Whether a root key opens the stored check value; undefined when there is none (never initialised). */
  async #opensRootCheck(rootKey: Uint8Array): Promise<boolean | undefined> {
    const check = await this.#store.getModuleValue(ROOT_CHECK_NAME);
    if (!check) return undefined;
    try {
      zeroize(openUnder(rootKey, check, Buffer.alloc(0)));
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Brings `keys` in line with the store's software domain keys: unwraps the live ones it lacks and
   * zeroizes the retired ones. Returns the active key's id, if one is listed. A live key of another
   * module is skipped, or refused (ForeignModuleError) with `refuseForeign`: this home is sealed with that module.
   */
  #followDomainKeys(rootKey: Uint8Array, records: DomainKeyRecord[], keys: Map<string, Buffer>,
    options: { refuseForeign?: boolean } = {}): string | undefined {
    let active: string | undefined;
    for (const record of records) {
      if (record.module !== 'software') {
        if (options.refuseForeign && record.state !== 'retired') throw new ForeignModuleError(record.module);
        continue;
      }
      if (record.state === 'retired') {
        zeroize(keys.get(record.id));
        keys.delete(record.id);
      } else if (!keys.has(record.id)) {
        keys.set(record.id, openUnder(rootKey, record.wrapped, domainKeyAad(record.id)));
      }
      if (record.state === 'active') active = record.id;
    }
    return active;
  }

  /**
   * Seal migration to this module: a new root key's check value and a new domain key, active in
   * memory only. The caller records both, with every rewrapped row, in one transaction.
   */
  prepareMigrationTarget(rootKeyBytes: Uint8Array): { domainKey: DomainKeyRecord; values: Record<string, Buffer> } {
    const rootKey = Buffer.from(rootKeyBytes);
    const { record, bytes } = newDomainKey(rootKey);
    this.#domainKeys = new Map([[record.id, bytes]]);
    this.#activeDomainKeyId = record.id;
    this.#rootKey = rootKey;
    this.#initialized = true;
    return { domainKey: record, values: { [ROOT_CHECK_NAME]: rootCheckValue(rootKey) } };
  }

  holdsDomainKey(domainKeyId: string): boolean {
    return this.#domainKeys.has(domainKeyId);
  }

  async rotateDomainKey(): Promise<string> {
    const rootKey = this.#rootKey;
    if (!rootKey || this.#activeDomainKeyId === undefined) throw new SealedError();
    const { record, bytes } = newDomainKey(rootKey);
    try {
      await this.#store.insertDomainKey(record);
      this.#domainKeys.set(record.id, bytes);
    } catch (error) {
      zeroize(bytes);
      throw error;
    }
    this.#activeDomainKeyId = record.id;
    return record.id;
  }

  async retireDomainKey(domainKeyId: string): Promise<void> {
    if (domainKeyId === this.#activeDomainKeyId) throw new Error('the active domain key cannot be retired');
    await this.#store.retireDomainKey(domainKeyId);
    zeroize(this.#domainKeys.get(domainKeyId));
    this.#domainKeys.delete(domainKeyId);
  }

  /** Another process (a second server on this store) may have rotated: picks up domain keys it does not hold yet. */
  async refresh(): Promise<void> {
    const rootKey = this.#rootKey;
    if (!rootKey) return;
    const active = this.#followDomainKeys(rootKey, await this.#store.listDomainKeys(), this.#domainKeys);
    if (active !== undefined) this.#activeDomainKeyId = active;
  }

  async wrap(secret: Uint8Array, aad: Uint8Array): Promise<WrappedSecret> {
    const domainKeyId = this.#activeDomainKeyId;
    const key = domainKeyId ? this.#domainKeys.get(domainKeyId) : undefined;
    if (!domainKeyId || !key) throw new SealedError();
    return { domainKeyId, wrapped: sealUnder(key, secret, aad) };
  }

  async unwrap(wrapped: WrappedSecret, aad: Uint8Array): Promise<Buffer> {
    if (this.#activeDomainKeyId === undefined) throw new SealedError();
    let key = this.#domainKeys.get(wrapped.domainKeyId);
    if (!key) {
      await this.refresh();
      key = this.#domainKeys.get(wrapped.domainKeyId);
    }
    if (!key) throw new CiphertextError('The wrapped key names a domain key this module does not hold.');
    return openUnder(key, wrapped.wrapped, aad);
  }

  seal(): void {
    // Overwrite, then drop: a memory dump taken after seal() finds no domain key or root key.
    zeroize(this.#rootKey, ...this.#domainKeys.values());
    this.#domainKeys = new Map();
    this.#activeDomainKeyId = undefined;
    this.#rootKey = undefined;
    for (const listener of this.#sealListeners) listener();
    // Cipher contexts of recent wraps hold key schedules until they are collected (OpenSSL cleanses them then).
    collectGarbageSoon();
  }

  onSeal(listener: () => void): void {
    this.#sealListeners.push(listener);
  }
}
