// Software crypto module: domain keys in process memory, persisted only wrapped under a
// root key that arrives by unseal. Must never write the root key or a domain key to disk.
import * as nodeCrypto from 'node:crypto';
import { CiphertextError, SealedError } from '../../errors.ts';
import { aesGcmDecrypt, aesGcmEncrypt, GCM_NONCE_LENGTH, GCM_TAG_LENGTH } from './aead.ts';
import { randomBytes, randomUuid, zeroize } from './bytes.ts';
import type { CryptoModule, CryptoModuleStatus, DomainKeyStore, WrappedSecret } from './crypto-module.ts';

const WRAP_FORMAT_VERSION = 1;
const ROOT_CHECK_NAME = 'root-check';
const ROOT_CHECK_PLAINTEXT = Buffer.from('trustplane root key check v1');

function domainKeyAad(id: string): Buffer {
  return Buffer.from(`trustplane/domain-key/v1/${id}`);
}

/** version byte || nonce || ciphertext || tag */
function sealUnder(key: nodeCrypto.KeyObject, secret: Uint8Array, aad: Uint8Array): Buffer {
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const sealed = aesGcmEncrypt(key, nonce, secret, aad);
  return Buffer.concat([Buffer.of(WRAP_FORMAT_VERSION), nonce, sealed.ciphertext, sealed.tag]);
}

function openUnder(key: nodeCrypto.KeyObject, wrapped: Buffer, aad: Uint8Array): Buffer {
  if (wrapped.length < 1 + GCM_NONCE_LENGTH + GCM_TAG_LENGTH || wrapped[0] !== WRAP_FORMAT_VERSION) {
    throw new CiphertextError();
  }
  const nonce = wrapped.subarray(1, 1 + GCM_NONCE_LENGTH);
  const tag = wrapped.subarray(wrapped.length - GCM_TAG_LENGTH);
  return aesGcmDecrypt(key, nonce, wrapped.subarray(1 + GCM_NONCE_LENGTH, wrapped.length - GCM_TAG_LENGTH), tag, aad);
}

export class WrongRootKeyError extends Error {
  constructor() { super('The unseal key does not match this crypto module.'); this.name = 'WrongRootKeyError'; }
}

export class SoftwareCryptoModule implements CryptoModule {
  readonly kind = 'software' as const;
  readonly #store: DomainKeyStore;
  #initialized = false;
  #domainKeys = new Map<string, nodeCrypto.KeyObject>();
  #activeDomainKeyId: string | undefined;
  #sealListeners: Array<() => void> = [];

  constructor(store: DomainKeyStore) {
    this.#store = store;
  }

  /** Reads whether the module was ever initialised (a root check value exists). */
  async load(): Promise<void> {
    this.#initialized = (await this.#store.getModuleValue(ROOT_CHECK_NAME)) !== undefined;
  }

  status(): CryptoModuleStatus {
    return { kind: this.kind, initialized: this.#initialized, sealed: this.#activeDomainKeyId === undefined,
      activeDomainKeyId: this.#activeDomainKeyId };
  }

  /** First-time set-up under a new root key: records a check value and the first domain key. */
  async initialize(rootKeyBytes: Uint8Array): Promise<void> {
    if (this.#initialized) throw new Error('crypto module is already initialised');
    const rootKey = nodeCrypto.createSecretKey(Buffer.from(rootKeyBytes));
    const domainKeyBytes = randomBytes(32);
    try {
      const id = randomUuid();
      // One transaction: a crash leaves either nothing or a complete, unsealable module.
      await this.#store.initializeModule({ id, wrapped: sealUnder(rootKey, domainKeyBytes, domainKeyAad(id)),
        createdAt: new Date(), state: 'active' }, { [ROOT_CHECK_NAME]: sealUnder(rootKey, ROOT_CHECK_PLAINTEXT, Buffer.alloc(0)) });
      this.#initialized = true;
    } finally {
      zeroize(domainKeyBytes);
    }
    await this.unseal(rootKeyBytes);
  }

  /** Loads every domain key under the root key; throws WrongRootKeyError for another key. */
  async unseal(rootKeyBytes: Uint8Array): Promise<void> {
    const check = await this.#store.getModuleValue(ROOT_CHECK_NAME);
    if (!check) throw new Error('crypto module is not initialised');
    const rootKey = nodeCrypto.createSecretKey(Buffer.from(rootKeyBytes));
    try {
      openUnder(rootKey, check, Buffer.alloc(0));
    } catch {
      throw new WrongRootKeyError();
    }
    const records = await this.#store.listDomainKeys();
    const keys = new Map<string, nodeCrypto.KeyObject>();
    let active: string | undefined;
    for (const record of records) {
      const bytes = openUnder(rootKey, record.wrapped, domainKeyAad(record.id));
      keys.set(record.id, nodeCrypto.createSecretKey(bytes));
      zeroize(bytes);
      if (record.state === 'active') active = record.id;
    }
    if (!active) throw new Error('crypto module has no active domain key');
    this.#domainKeys = keys;
    this.#activeDomainKeyId = active;
  }

  async wrap(secret: Uint8Array, aad: Uint8Array): Promise<WrappedSecret> {
    const domainKeyId = this.#activeDomainKeyId;
    const key = domainKeyId ? this.#domainKeys.get(domainKeyId) : undefined;
    if (!domainKeyId || !key) throw new SealedError();
    return { domainKeyId, wrapped: sealUnder(key, secret, aad) };
  }

  async unwrap(wrapped: WrappedSecret, aad: Uint8Array): Promise<Buffer> {
    if (this.#activeDomainKeyId === undefined) throw new SealedError();
    const key = this.#domainKeys.get(wrapped.domainKeyId);
    if (!key) throw new CiphertextError('The wrapped key names a domain key this module does not hold.');
    return openUnder(key, wrapped.wrapped, aad);
  }

  seal(): void {
    // KeyObjects live in OpenSSL memory; dropping every reference is what node allows.
    this.#domainKeys = new Map();
    this.#activeDomainKeyId = undefined;
    for (const listener of this.#sealListeners) listener();
  }

  onSeal(listener: () => void): void {
    this.#sealListeners.push(listener);
  }
}
