// Customer keys and other stored secrets, wrapped and unwrapped through the crypto module,
// with a cache of unwrapped versions. Must never cache anything after the module seals.
import type { CryptoModule, WrappedSecret } from './crypto-module.ts';
import { CustomerKey, generateKeyMaterial, type KeySpec } from './customer-key.ts';
import { zeroize } from './bytes.ts';
import { SealedError } from '../../errors.ts';

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
export function customerKeyAad(keyId: string, version: number, spec: KeySpec): Buffer {
  return Buffer.from(`trustplane/customer-key/v1/${keyId}/${version}/${spec}`);
}

export function secretAad(purpose: string, name: string): Buffer {
  return Buffer.from(`trustplane/secret/v1/${purpose}/${name}`);
}

/** Most unwrapped key versions cached at once, unless configured otherwise (--key-cache-size). */
export const DEFAULT_KEY_CACHE_ENTRIES = 10_000;
/** How long an unwrapped key version stays cached, unless configured otherwise (--key-cache-ttl). */
export const DEFAULT_KEY_CACHE_TTL_MS = 60_000;

export interface KeyCacheOptions {
  /** Most unwrapped key versions held at once (least recently used go first). */
  maxCachedKeys?: number;
  /** How long an unwrapped key version may stay in memory unused and used; 0 disables caching. */
  cacheTtlMs?: number;
}

interface CacheEntry {
  key: CustomerKey;
  expiresAt: number;
}

export class Keyring {
  readonly #module: CryptoModule;
  readonly #cache = new Map<string, CacheEntry>();
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  #sweeper: NodeJS.Timeout | undefined;

  constructor(module: CryptoModule, options: KeyCacheOptions = {}) {
    this.#module = module;
    this.#maxEntries = options.maxCachedKeys ?? DEFAULT_KEY_CACHE_ENTRIES;
    this.#ttlMs = options.cacheTtlMs ?? DEFAULT_KEY_CACHE_TTL_MS;
    module.onSeal(() => this.clearCache());
  }

  get module(): CryptoModule {
    return this.#module;
  }

  /** Destroys every cached key version at once (seal, shutdown). */
  clearCache(): void {
    for (const entry of this.#cache.values()) entry.key.destroy();
    this.#cache.clear();
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  /**
   * Keys are used synchronously right after they are handed out, in the same turn of the event
   * loop; zeroing one on the next turn can never pull material from under a request using it.
   */
  #evict(cacheKey: string, entry: CacheEntry): void {
    this.#cache.delete(cacheKey);
    setImmediate(() => entry.key.destroy());
  }

  #sweep(): void {
    const now = Date.now();
    for (const [cacheKey, entry] of this.#cache) if (entry.expiresAt <= now) this.#evict(cacheKey, entry);
    if (this.#cache.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Only called with caching on (a positive TTL). */
  #remember(cacheKey: string, key: CustomerKey): void {
    while (this.#cache.size >= this.#maxEntries) {
      const [oldestKey, oldest] = this.#cache.entries().next().value as [string, CacheEntry];
      this.#evict(oldestKey, oldest);
    }
    this.#cache.set(cacheKey, { key, expiresAt: Date.now() + this.#ttlMs });
    if (!this.#sweeper) {
      this.#sweeper = setInterval(() => this.#sweep(), Math.max(1000, Math.floor(this.#ttlMs / 2)));
      this.#sweeper.unref();
    }
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

  /** Wraps material the caller supplies (a secret key's value); the caller zeroes its copy. */
  async wrapKeyMaterial(keyId: string, version: number, spec: KeySpec, secret: Uint8Array): Promise<NewKeyMaterial> {
    return { material: await this.#module.wrap(secret, customerKeyAad(keyId, version, spec)) };
  }

  /** The unwrapped key version if it is cached, so callers can skip reading the wrapped copy. */
  cachedKey(keyId: string, version: number): CustomerKey | undefined {
    const cacheKey = `${keyId}/${version}`;
    const entry = this.#cache.get(cacheKey);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.#evict(cacheKey, entry);
      return undefined;
    }
    return entry.key;
  }

  /** Unwraps (or takes from cache) one version of a customer key. */
  async openKey(stored: StoredKeyMaterial): Promise<CustomerKey> {
    const cached = this.cachedKey(stored.keyId, stored.version);
    if (cached) return cached;
    const bytes = await this.#module.unwrap(stored.material, customerKeyAad(stored.keyId, stored.version, stored.spec));
    const key = new CustomerKey(stored.keyId, stored.version, stored.spec, bytes);
    if (this.#module.status().sealed) {
      key.destroy();
      throw new SealedError();
    }
    if (this.#ttlMs > 0) {
      this.#remember(`${stored.keyId}/${stored.version}`, key);
    } else {
      // Not cached: this request is its only user, so zero it on the next turn.
      setImmediate(() => key.destroy());
    }
    return key;
  }

  /** Drops a cached key version (key deleted). */
  forgetKey(keyId: string): void {
    for (const [cacheKey, entry] of this.#cache) if (cacheKey.startsWith(`${keyId}/`)) this.#evict(cacheKey, entry);
  }

  /** Wraps a non-key secret (an access key's secret, say) bound to its purpose and name. */
  async wrapSecret(purpose: string, name: string, secret: Uint8Array): Promise<WrappedSecret> {
    return this.#module.wrap(secret, secretAad(purpose, name));
  }

  /** Unwraps a secret made by wrapSecret; the caller zeroizes the result when done. */
  /**
   * The raw material of one customer key version, for sealing to a host that may hold it (the
   * fleet push). The caller zeroizes it as soon as it is sealed.
   */
  async unsafeExportKeyMaterial(stored: StoredKeyMaterial): Promise<Buffer> {
    return this.#module.unwrap(stored.material, customerKeyAad(stored.keyId, stored.version, stored.spec));
  }

  async unsafeUnwrapSecret(purpose: string, name: string, wrapped: WrappedSecret): Promise<Buffer> {
    return this.#module.unwrap(wrapped, secretAad(purpose, name));
  }
}
