// The crypto module interface: the only holder of domain keys. A software module (root key
// from an unseal) and a PKCS#11 module (keys inside an HSM token) both implement it.
// Must never expose a domain key, in clear, to anything outside the module.

export type CryptoModuleKind = 'software' | 'pkcs11';

export interface CryptoModuleStatus {
  kind: CryptoModuleKind;
  initialized: boolean;
  sealed: boolean;
  /** Id of the domain key new material is wrapped under, when unsealed. */
  activeDomainKeyId?: string;
}

/** Secret bytes wrapped under a named domain key; safe to store. */
export interface WrappedSecret {
  domainKeyId: string;
  wrapped: Buffer;
}

export interface CryptoModule {
  readonly kind: CryptoModuleKind;
  status(): CryptoModuleStatus;
  /** Wraps under the active domain key, binding `aad`. The caller still owns (and zeroizes) `secret`. */
  wrap(secret: Uint8Array, aad: Uint8Array): Promise<WrappedSecret>;
  /** Unwraps; throws CiphertextError if the wrapped bytes or `aad` were altered. */
  unwrap(wrapped: WrappedSecret, aad: Uint8Array): Promise<Buffer>;
  /** Forgets every domain key at once (tamper response, shutdown). */
  seal(): void;
  /** Called after seal(), so holders of derived material (caches) drop it too. */
  onSeal(listener: () => void): void;
}

/** Persistence of wrapped domain keys and module metadata, provided by the store. */
export interface DomainKeyRecord {
  id: string;
  /** Format version byte, nonce, ciphertext and tag under the root key. */
  wrapped: Buffer;
  createdAt: Date;
  state: 'active' | 'retired';
}

export interface DomainKeyStore {
  listDomainKeys(): Promise<DomainKeyRecord[]>;
  insertDomainKey(record: DomainKeyRecord): Promise<void>;
  getModuleValue(name: string): Promise<Buffer | undefined>;
  /** First-time set-up in one transaction: the first domain key and the module values together. */
  initializeModule(firstDomainKey: DomainKeyRecord, values: Record<string, Buffer>): Promise<void>;
}
