// Customer keys and other stored secrets, wrapped and unwrapped through the crypto module,
// with a cache of unwrapped versions. Must never cache anything after the module seals.
import type { CryptoModule, WrappedSecret } from './crypto-module.ts';
import { CustomerKey, generateKeyMaterial, type KeySpec } from './customer-key.ts';
import { zeroize } from './bytes.ts';

export interface StoredKeyMaterial {
  keyId: string;
  version: number;
  spec: KeySpec;
  material: WrappedSecret;
}

export interface NewKeyMaterial {
  material: WrappedSecret;
  publicKeyDer?: Buffer;
}

/** Binds id, version and spec: a stored row whose spec was edited no longer unwraps. */
function customerKeyAad(keyId: string, version: number, spec: KeySpec): Buffer {
  return Buffer.from(`trustplane/customer-key/v1/${keyId}/${version}/${spec}`);
}

function secretAad(purpose: string, name: string): Buffer {
  return Buffer.from(`trustplane/secret/v1/${purpose}/${name}`);
}

const DEFAULT_CACHE_ENTRIES = 10_000;

export class Keyring {
  readonly #module: CryptoModule;
  readonly #cache = new Map<string, CustomerKey>();
  readonly #maxEntries: number;

  constructor(module: CryptoModule, options: { maxCachedKeys?: number } = {}) {
    this.#module = module;
    this.#maxEntries = options.maxCachedKeys ?? DEFAULT_CACHE_ENTRIES;
    module.onSeal(() => this.#cache.clear());
  }

  get module(): CryptoModule {
    return this.#module;
  }

  /** Generates material for a new key version and returns it wrapped (plus its public key). */
  async createKeyMaterial(keyId: string, version: number, spec: KeySpec): Promise<NewKeyMaterial> {
    const generated = await generateKeyMaterial(spec);
    try {
      const material = await this.#module.wrap(generated.secret, customerKeyAad(keyId, version, spec));
      return { material, publicKeyDer: generated.publicKeyDer };
    } finally {
      zeroize(generated.secret);
    }
  }

  /** The unwrapped key version if it is cached, so callers can skip reading the wrapped copy. */
  cachedKey(keyId: string, version: number): CustomerKey | undefined {
    return this.#cache.get(`${keyId}/${version}`);
  }

  /** Unwraps (or takes from cache) one version of a customer key. */
  async openKey(stored: StoredKeyMaterial): Promise<CustomerKey> {
    const cacheKey = `${stored.keyId}/${stored.version}`;
    const cached = this.#cache.get(cacheKey);
    if (cached) return cached;
    const bytes = await this.#module.unwrap(stored.material, customerKeyAad(stored.keyId, stored.version, stored.spec));
    const key = new CustomerKey(stored.keyId, stored.version, stored.spec, bytes);
    if (this.#module.status().sealed) throw new Error('sealed while unwrapping');
    if (this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(cacheKey, key);
    return key;
  }

  /** Drops a cached key version (key deleted). */
  forgetKey(keyId: string): void {
    for (const cacheKey of this.#cache.keys()) if (cacheKey.startsWith(`${keyId}/`)) this.#cache.delete(cacheKey);
  }

  /** Wraps a non-key secret (an access key's secret, say) bound to its purpose and name. */
  async wrapSecret(purpose: string, name: string, secret: Uint8Array): Promise<WrappedSecret> {
    return this.#module.wrap(secret, secretAad(purpose, name));
  }

  /** Unwraps a secret made by wrapSecret; the caller zeroizes the result when done. */
  async unsafeUnwrapSecret(purpose: string, name: string, wrapped: WrappedSecret): Promise<Buffer> {
    return this.#module.unwrap(wrapped, secretAad(purpose, name));
  }
}
