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
  /** Why the module is sealed when it did not seal on request (a token that went away, say). */
  sealedReason?: string;
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
  /** Unwraps; throws CiphertextError if the wrapped bytes or `aad` were altered, SealedError when sealed. */
  unwrap(wrapped: WrappedSecret, aad: Uint8Array): Promise<Buffer>;
  /** Whether this module holds (or can reach) the named domain key. */
  holdsDomainKey(domainKeyId: string): boolean;
  /** Makes a new domain key, records it as active (the previous one becomes 'retiring') and returns its id. */
  rotateDomainKey(): Promise<string>;
  /** Destroys a 'retiring' domain key that nothing references any more and records it as 'retired'. */
  retireDomainKey(domainKeyId: string): Promise<void>;
  /** Forgets every domain key at once (tamper response, shutdown). */
  seal(): void;
  /** Called after seal(), so holders of derived material (caches) drop it too. */
  onSeal(listener: () => void): void;
}

export type DomainKeyState = 'active' | 'retiring' | 'retired';

/** Persistence of domain keys: wrapped under the root key (software) or a reference to a token object (pkcs11). */
export interface DomainKeyRecord {
  id: string;
  module: CryptoModuleKind;
  /** software: format version byte, nonce, ciphertext and tag under the root key. pkcs11: empty (the key is in the token, CKA_ID = id). Empty once retired. */
  wrapped: Buffer;
  createdAt: Date;
  state: DomainKeyState;
}

export interface DomainKeyStore {
  listDomainKeys(): Promise<DomainKeyRecord[]>;
  /** Inserts a domain key; an 'active' one demotes the previous active key to 'retiring' in the same transaction. */
  insertDomainKey(record: DomainKeyRecord): Promise<void>;
  /** Marks a key retired and drops its wrapped bytes. */
  retireDomainKey(id: string): Promise<void>;
  getModuleValue(name: string): Promise<Buffer | undefined>;
  /** First-time set-up in one transaction: the first domain key and the module values together. */
  initializeModule(firstDomainKey: DomainKeyRecord, values: Record<string, Buffer>): Promise<void>;
}
