// PKCS#11 crypto module: domain keys are AES-256 objects generated inside an HSM token and used
// through one logged-in session. Must never make a domain key extractable, nor log or persist the PIN.
import pkcs11js from 'pkcs11js';
import type { GcmParams, Handle, Mechanism, PKCS11 } from 'pkcs11js';
import { CiphertextError, InternalError, SealedError } from '../../errors.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH } from './aead.ts';
import { collectGarbageSoon, randomBytes, randomUuid, zeroize } from './bytes.ts';
import type { CryptoModule, CryptoModuleStatus, DomainKeyRecord, DomainKeyStore, WrappedSecret } from './crypto-module.ts';

// 1 is the software module's format; a distinct byte keeps the two from being confused.
const WRAP_FORMAT_VERSION = 2;
const DOMAIN_KEY_LENGTH = 32;
const DOMAIN_KEY_LABEL_PREFIX = 'trustplane-domain-key-';

/** Codes after which the session, the login or the token itself may be gone. */
const TOKEN_GONE_CODES = new Set([
  pkcs11js.CKR_TOKEN_NOT_PRESENT, pkcs11js.CKR_DEVICE_REMOVED, pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_SESSION_HANDLE_INVALID, pkcs11js.CKR_SESSION_CLOSED, pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_OBJECT_HANDLE_INVALID, pkcs11js.CKR_KEY_HANDLE_INVALID, pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
]);

/**
 * Codes a decryption answers for wrapped bytes, AAD or a key that do not match, once the token has
 * been shown to be reachable. SoftHSM2 2.6 reports a failed GCM tag as CKR_GENERAL_ERROR, which is
 * why that code is only read as "token gone" after a probe fails.
 */
const CIPHERTEXT_CODES = new Set([
  pkcs11js.CKR_ENCRYPTED_DATA_INVALID, pkcs11js.CKR_ENCRYPTED_DATA_LEN_RANGE, pkcs11js.CKR_DATA_INVALID,
  pkcs11js.CKR_DATA_LEN_RANGE, pkcs11js.CKR_GENERAL_ERROR,
]);

const MISSING_KEY_CODES = new Set([pkcs11js.CKR_OBJECT_HANDLE_INVALID, pkcs11js.CKR_KEY_HANDLE_INVALID]);

const LOGIN_REFUSED_CODES = new Set([
  pkcs11js.CKR_PIN_INCORRECT, pkcs11js.CKR_PIN_INVALID, pkcs11js.CKR_PIN_LEN_RANGE, pkcs11js.CKR_PIN_LOCKED,
  pkcs11js.CKR_PIN_EXPIRED, pkcs11js.CKR_USER_PIN_NOT_INITIALIZED,
]);

export interface Pkcs11CryptoModuleOptions {
  store: DomainKeyStore;
  /** Path of the vendor's PKCS#11 shared library. */
  libraryPath: string;
  tokenLabel: string;
  /** The token's user PIN. */
  pin: string;
}

/** The token refused the PIN. Never carries the PIN; retrying could lock the token, so reopen() does not. */
export class Pkcs11LoginError extends Error {
  readonly code = 'Pkcs11LoginError';
  constructor(tokenLabel: string, reason: string) {
    super(`The PKCS#11 token "${tokenLabel}" refused the login (${reason}); check the configured PIN.`);
    this.name = 'Pkcs11LoginError';
  }
}

/** The token is missing, ambiguous, or not the one this trustplane's domain keys live in. */
export class Pkcs11TokenError extends Error {
  readonly code = 'Pkcs11TokenError';
  constructor(message: string) {
    super(message);
    this.name = 'Pkcs11TokenError';
  }
}

type Pkcs11Failure = Error & { code: number };

function pkcs11Failure(error: unknown): Pkcs11Failure | undefined {
  return error instanceof pkcs11js.Pkcs11Error ? error : undefined;
}

/** A view, not a copy: pkcs11js wants Buffers, and a copy of a secret would be one more to zero. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function gcmMechanism(iv: Buffer, aad: Uint8Array): Mechanism {
  const parameter: GcmParams = { type: pkcs11js.CK_PARAMS_AES_GCM, iv, ivBits: GCM_NONCE_LENGTH * 8, aad: asBuffer(aad),
    tagBits: GCM_TAG_LENGTH * 8 };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

function describeFailure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function initializedTokenLabel(library: PKCS11, slot: Handle): string | undefined {
  try {
    const info = library.C_GetTokenInfo(slot);
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) return undefined;
    // Labels are fixed 32-byte fields padded with blanks.
    return info.label.replace(/[ \0]+$/, '');
  } catch {
    // SoftHSM2 answers CKR_GENERAL_ERROR for a slot whose token vanished; no token of ours is there now.
    return undefined;
  }
}

function isPkcs11Record(record: DomainKeyRecord): boolean {
  return record.module === 'pkcs11';
}

export class Pkcs11CryptoModule implements CryptoModule {
  readonly kind = 'pkcs11' as const;
  readonly #store: DomainKeyStore;
  readonly #libraryPath: string;
  readonly #tokenLabel: string;
  // Kept for reopen(); a Buffer so dispose() can zero it, though pkcs11js needs a string at each login.
  readonly #pin: Buffer;
  #library: PKCS11 | undefined;
  #session: Handle | undefined;
  /** Bumped whenever the session changes, so an operation that awaited the store sees it lost the session. */
  #epoch = 0;
  #initialized = false;
  #domainKeys = new Map<string, Handle>();
  #activeDomainKeyId: string | undefined;
  #sealedReason: string | undefined;
  /** Set once the token refuses the PIN: the PIN cannot change, and every retry brings a lockout nearer. */
  #loginRefused: Pkcs11LoginError | undefined;
  #disposed = false;
  #sealListeners: Array<() => void> = [];
  #exclusiveTail: Promise<unknown> = Promise.resolve();

  constructor(options: Pkcs11CryptoModuleOptions) {
    this.#store = options.store;
    this.#libraryPath = options.libraryPath;
    this.#tokenLabel = options.tokenLabel;
    this.#pin = Buffer.from(options.pin, 'utf8');
  }

  /** Reads whether the module was ever initialised (the store holds a PKCS#11 domain key). */
  async load(): Promise<void> {
    this.#initialized = (await this.#store.listDomainKeys()).some(isPkcs11Record);
  }

  status(): CryptoModuleStatus {
    const sealed = this.#activeDomainKeyId === undefined;
    return { kind: this.kind, initialized: this.#initialized, sealed, activeDomainKeyId: this.#activeDomainKeyId,
      ...(sealed && this.#sealedReason !== undefined ? { sealedReason: this.#sealedReason } : {}) };
  }

  /**
   * Logs in to the token and finds the domain keys the store names. Unseals when an active PKCS#11
   * domain key exists; otherwise leaves a logged-in session for initialize(). Does nothing when unsealed.
   */
  async open(): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#activeDomainKeyId !== undefined) return;
      try {
        await this.#open();
      } catch (error) {
        // Not a seal on request, so reopen() may try again (unless the PIN was refused).
        this.#sealedReason = describeFailure(error);
        throw error;
      }
    });
  }

  /**
   * open() for recovery loops and operators: never throws, and re-initialises the library when the
   * first attempt fails. Returns whether it unsealed; status().sealedReason says why not. Whether a
   * seal on request may be undone is the caller's decision. A refused PIN is never tried again.
   */
  async reopen(): Promise<boolean> {
    return this.#exclusive(async () => {
      if (this.#activeDomainKeyId !== undefined) return true;
      if (this.#loginRefused || this.#disposed) return false;
      try {
        await this.#open();
      } catch (error) {
        if (!(error instanceof Pkcs11TokenError) && !pkcs11Failure(error)) {
          this.#sealedReason = describeFailure(error);
          return false;
        }
        // A library that saw its token vanish may treat that slot as dead until it is initialised
        // again (SoftHSM2 does). C_Finalize ends every session this process has with the library.
        try {
          this.#finalizeLibrary();
          await this.#open();
        } catch (retryError) {
          this.#sealedReason = describeFailure(retryError);
          return false;
        }
      }
      return this.#activeDomainKeyId !== undefined;
    });
  }

  /** First-time set-up: generates the first domain key inside the token and records it. */
  async initialize(): Promise<void> {
    await this.#exclusive(async () => {
      if (!this.#session) await this.#open();
      if (this.#initialized) throw new Error('crypto module is already initialised');
      const { library, session } = this.#openSession();
      const epoch = this.#epoch;
      const id = randomUuid();
      const handle = this.#guard(() => this.#generateDomainKey(library, session, id));
      try {
        await this.#store.initializeModule({ id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' }, {});
      } catch (error) {
        this.#destroyQuietly(epoch, handle);
        throw error;
      }
      this.#initialized = true;
      // Sealed while the store was writing: the key is recorded and in the token, and the next open() finds it.
      this.#assertSameSession(epoch);
      this.#domainKeys = new Map([[id, handle]]);
      this.#activeDomainKeyId = id;
      this.#sealedReason = undefined;
    });
  }

  async wrap(secret: Uint8Array, aad: Uint8Array): Promise<WrappedSecret> {
    const { library, session, domainKeyId, handle } = this.#unsealed();
    const iv = randomBytes(GCM_NONCE_LENGTH);
    const output = Buffer.alloc(secret.length + GCM_TAG_LENGTH);
    let sealed: Buffer;
    try {
      sealed = this.#guard(() => {
        library.C_EncryptInit(session, gcmMechanism(iv, aad), handle);
        // C_Encrypt refuses empty input (CKR_ARGUMENTS_BAD); the multi-part finish yields the tag alone.
        return secret.length === 0 ? library.C_EncryptFinal(session, output) : library.C_Encrypt(session, asBuffer(secret), output);
      });
    } catch (error) {
      if (error instanceof SealedError) throw error;
      throw new InternalError(`PKCS#11 encryption failed (${describeFailure(error)})`, { cause: error });
    }
    if (sealed.length !== output.length) throw new InternalError('PKCS#11 encryption returned an unexpected length');
    return { domainKeyId, wrapped: Buffer.concat([Buffer.of(WRAP_FORMAT_VERSION), iv, sealed]) };
  }

  /**
   * Another server on this store and token may have rotated: finds the token objects of domain keys
   * the store lists but this instance does not hold, and follows the store's active key.
   */
  async refresh(): Promise<void> {
    await this.#exclusive(async () => {
      if (this.#activeDomainKeyId === undefined) return;
      const epoch = this.#epoch;
      const records = (await this.#store.listDomainKeys()).filter(isPkcs11Record);
      this.#assertSameSession(epoch);
      const { library, session } = this.#unsealed();
      for (const record of records) {
        if (record.state === 'retired') {
          this.#domainKeys.delete(record.id);
          continue;
        }
        if (!this.#domainKeys.has(record.id)) {
          const handle = this.#guard(() => this.#findDomainKey(library, session, record.id));
          if (handle === undefined) continue;
          this.#domainKeys.set(record.id, handle);
        }
        if (record.state === 'active') this.#activeDomainKeyId = record.id;
      }
    });
  }

  async unwrap(wrapped: WrappedSecret, aad: Uint8Array): Promise<Buffer> {
    if (!this.#domainKeys.has(wrapped.domainKeyId) && this.#activeDomainKeyId !== undefined) await this.refresh();
    const { library, session } = this.#unsealed();
    const handle = this.#domainKeys.get(wrapped.domainKeyId);
    if (!handle) throw new CiphertextError('The wrapped key names a domain key this module does not hold.');
    const bytes = wrapped.wrapped;
    if (bytes.length < 1 + GCM_NONCE_LENGTH + GCM_TAG_LENGTH || bytes[0] !== WRAP_FORMAT_VERSION) throw new CiphertextError();
    const iv = bytes.subarray(1, 1 + GCM_NONCE_LENGTH);
    const sealed = bytes.subarray(1 + GCM_NONCE_LENGTH);
    const output = Buffer.alloc(sealed.length);
    try {
      const plaintext = this.#guard(() => {
        library.C_DecryptInit(session, gcmMechanism(iv, aad), handle);
        return library.C_Decrypt(session, sealed, output);
      });
      return Buffer.from(plaintext);
    } catch (error) {
      if (error instanceof SealedError) throw error;
      const failure = pkcs11Failure(error);
      if (failure && MISSING_KEY_CODES.has(failure.code)) {
        // The token is reachable (the probe passed) but this key object is gone: destroyed elsewhere.
        this.#domainKeys.delete(wrapped.domainKeyId);
        throw new CiphertextError('The wrapped key names a domain key this module does not hold.');
      }
      if (failure && CIPHERTEXT_CODES.has(failure.code)) throw new CiphertextError();
      throw new InternalError(`PKCS#11 decryption failed (${describeFailure(error)})`, { cause: error });
    } finally {
      zeroize(output);
    }
  }

  holdsDomainKey(domainKeyId: string): boolean {
    return this.#domainKeys.has(domainKeyId);
  }

  async rotateDomainKey(): Promise<string> {
    return this.#exclusive(async () => {
      const { library, session } = this.#unsealed();
      const epoch = this.#epoch;
      const id = randomUuid();
      const handle = this.#guard(() => this.#generateDomainKey(library, session, id));
      try {
        await this.#store.insertDomainKey({ id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' });
      } catch (error) {
        this.#destroyQuietly(epoch, handle);
        throw error;
      }
      // Sealed while the store was writing: the new key is recorded, and the next open() finds it.
      this.#assertSameSession(epoch);
      this.#domainKeys.set(id, handle);
      this.#activeDomainKeyId = id;
      return id;
    });
  }

  async retireDomainKey(domainKeyId: string): Promise<void> {
    await this.#exclusive(async () => {
      this.#unsealed();
      if (domainKeyId === this.#activeDomainKeyId) throw new Error('The active domain key cannot be retired; rotate first.');
      const epoch = this.#epoch;
      const record = (await this.#store.listDomainKeys()).find((candidate) => candidate.id === domainKeyId);
      if (!record || !isPkcs11Record(record) || record.state === 'active') {
        throw new Error(`Domain key ${domainKeyId} is not a retiring PKCS#11 domain key.`);
      }
      // The store first (it refuses while any row still references the key), the token object after:
      // a crash in between leaves an orphan object in the token, never a row nothing can unwrap.
      await this.#store.retireDomainKey(domainKeyId);
      this.#assertSameSession(epoch);
      const { library, session } = this.#unsealed();
      // A session that lost its login sees no private objects, and finding none would look like success.
      if (!this.#tokenReachable()) this.#sealAsUnreachable('the active domain key cannot be reached');
      // Found afresh rather than by the remembered handle, so an object destroyed by another instance still completes.
      this.#guard(() => this.#destroyObjects(library, session, domainKeyId));
      this.#domainKeys.delete(domainKeyId);
    });
  }

  /**
   * Seal migration to this module: a new token key, active in memory only. The caller records it,
   * with every rewrapped row, in one transaction, and calls destroyDomainKeyObject() if that fails.
   */
  async prepareMigrationTarget(): Promise<DomainKeyRecord> {
    return this.#exclusive(async () => {
      if (!this.#session) await this.#open();
      const { library, session } = this.#openSession();
      const id = randomUuid();
      const handle = this.#guard(() => this.#generateDomainKey(library, session, id));
      this.#domainKeys.set(id, handle);
      this.#activeDomainKeyId = id;
      this.#initialized = true;
      this.#sealedReason = undefined;
      return { id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' };
    });
  }

  /** Destroys a token key the store no longer needs (migrated away from, or a migration that failed). */
  async destroyDomainKeyObject(domainKeyId: string): Promise<void> {
    await this.#exclusive(async () => {
      const { library, session } = this.#openSession();
      if (!this.#tokenReachable()) this.#sealAsUnreachable('the token cannot be reached');
      this.#guard(() => this.#destroyObjects(library, session, domainKeyId));
      this.#domainKeys.delete(domainKeyId);
      if (this.#activeDomainKeyId === domainKeyId) this.#activeDomainKeyId = undefined;
    });
  }

  seal(): void {
    this.#seal(undefined);
  }

  onSeal(listener: () => void): void {
    this.#sealListeners.push(listener);
  }

  /** Seals for good (shutdown): zeroes the PIN copy, so neither open() nor reopen() can log in again. */
  dispose(): void {
    this.#disposed = true;
    this.#seal(undefined);
    zeroize(this.#pin);
  }

  #seal(reason: string | undefined): void {
    this.#dropSession();
    this.#domainKeys = new Map();
    this.#activeDomainKeyId = undefined;
    this.#sealedReason = reason;
    for (const listener of this.#sealListeners) listener();
    // Customer keys the listeners dropped live in KeyObjects too: collect them now, not by chance.
    collectGarbageSoon();
  }

  async #open(): Promise<void> {
    if (this.#disposed) throw new Error('The PKCS#11 crypto module was disposed.');
    if (this.#loginRefused) throw this.#loginRefused;
    this.#dropSession();
    this.#domainKeys = new Map();
    this.#activeDomainKeyId = undefined;
    const epoch = this.#epoch;
    // The store first, so status() tells "initialised" even while the token is missing.
    const records = (await this.#store.listDomainKeys()).filter(isPkcs11Record);
    this.#initialized = records.length > 0;
    // A seal() that came while the store answered wins over this open.
    this.#assertSameSession(epoch);
    // From here on nothing awaits, so no other call can see a half-opened session.
    const library = this.#loadLibrary();
    const slot = this.#findSlot(library);
    const session = library.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
    try {
      this.#login(library, session);
    } catch (error) {
      try { library.C_CloseSession(session); } catch { /* the session is being abandoned either way */ }
      throw error;
    }
    this.#session = session;
    this.#epoch += 1;
    try {
      const domainKeys = new Map<string, Handle>();
      let active: string | undefined;
      for (const record of records) {
        if (record.state === 'retired') continue;
        const handle = this.#findDomainKey(library, session, record.id);
        if (handle === undefined) {
          if (record.state === 'active') {
            throw new Pkcs11TokenError(`The PKCS#11 token "${this.#tokenLabel}" does not hold the active domain key ${record.id}; `
              + 'is this the token trustplane was initialised with?');
          }
          // A retiring key whose object is gone: material under it fails to unwrap, nothing else does.
          continue;
        }
        domainKeys.set(record.id, handle);
        if (record.state === 'active') active = record.id;
      }
      this.#domainKeys = domainKeys;
      this.#activeDomainKeyId = active;
      this.#sealedReason = undefined;
    } catch (error) {
      this.#dropSession();
      throw error;
    }
  }

  #loadLibrary(): PKCS11 {
    if (!this.#library) {
      const library = new pkcs11js.PKCS11();
      try {
        library.load(this.#libraryPath);
      } catch (error) {
        throw new Error(`Cannot load the PKCS#11 library ${this.#libraryPath}: ${describeFailure(error)}`);
      }
      this.#library = library;
    }
    try {
      // OS locking because the library is shared process-wide and pkcs11js's async calls use threads.
      this.#library.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (error) {
      // Another user of the same library in this process got there first; its state is ours too.
      if (pkcs11Failure(error)?.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
    }
    return this.#library;
  }

  #finalizeLibrary(): void {
    this.#dropSession();
    try { this.#library?.C_Finalize(); } catch { /* already finalised is as good */ }
  }

  #findSlot(library: PKCS11): Handle {
    const tokens: Array<{ slot: Handle; label: string }> = [];
    for (const slot of library.C_GetSlotList(true)) {
      const label = initializedTokenLabel(library, slot);
      if (label !== undefined) tokens.push({ slot, label });
    }
    const matches = tokens.filter((token) => token.label === this.#tokenLabel);
    const found = tokens.length ? tokens.map((token) => JSON.stringify(token.label)).join(', ') : 'none';
    if (matches.length === 0) {
      throw new Pkcs11TokenError(`No PKCS#11 token labelled "${this.#tokenLabel}" in ${this.#libraryPath} (tokens found: ${found}).`);
    }
    if (matches.length > 1) throw new Pkcs11TokenError(`More than one PKCS#11 token is labelled "${this.#tokenLabel}".`);
    return matches[0].slot;
  }

  #login(library: PKCS11, session: Handle): void {
    try {
      library.C_Login(session, pkcs11js.CKU_USER, this.#pin.toString('utf8'));
    } catch (error) {
      const code = pkcs11Failure(error)?.code;
      // Login state is per process and token: another session here already logged in.
      if (code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN) return;
      if (code !== undefined && LOGIN_REFUSED_CODES.has(code)) {
        this.#loginRefused = new Pkcs11LoginError(this.#tokenLabel, describeFailure(error));
        throw this.#loginRefused;
      }
      throw error;
    }
  }

  #findDomainKeyObjects(library: PKCS11, session: Handle, id: string): Handle[] {
    // CKA_TOKEN true, so a session object another caller made with the same id cannot stand in.
    library.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_ID, value: Buffer.from(id) },
    ]);
    try {
      const handles: Handle[] = [];
      for (;;) {
        const batch = library.C_FindObjects(session, 16);
        handles.push(...batch);
        if (batch.length < 16) return handles;
      }
    } finally {
      library.C_FindObjectsFinal(session);
    }
  }

  #findDomainKey(library: PKCS11, session: Handle, id: string): Handle | undefined {
    const handles = this.#findDomainKeyObjects(library, session, id);
    if (handles.length === 0) return undefined;
    if (handles.length > 1) throw new Pkcs11TokenError(`The PKCS#11 token holds more than one key with the id of domain key ${id}.`);
    const [sensitive, extractable] = library.C_GetAttributeValue(session, handles[0],
      [{ type: pkcs11js.CKA_SENSITIVE }, { type: pkcs11js.CKA_EXTRACTABLE }]);
    // A look-alike object someone imported in clear would let its value be read back; refuse it.
    if (sensitive.value[0] !== 1 || extractable.value[0] !== 0) {
      throw new Pkcs11TokenError(`Domain key ${id} in the PKCS#11 token is extractable or not sensitive; refusing to use it.`);
    }
    return handles[0];
  }

  /** Destroys every token object carrying the domain key's id (none is fine: another instance got there first). */
  #destroyObjects(library: PKCS11, session: Handle, id: string): void {
    for (const handle of this.#findDomainKeyObjects(library, session, id)) library.C_DestroyObject(session, handle);
  }

  #generateDomainKey(library: PKCS11, session: Handle, id: string): Handle {
    return library.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true },
      { type: pkcs11js.CKA_WRAP, value: false }, { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: DOMAIN_KEY_LENGTH }, { type: pkcs11js.CKA_ID, value: Buffer.from(id) },
      { type: pkcs11js.CKA_LABEL, value: `${DOMAIN_KEY_LABEL_PREFIX}${id}` },
    ]);
  }

  /** Removes a key the store never recorded. If the session went meanwhile it stays as an unused orphan. */
  #destroyQuietly(epoch: number, handle: Handle): void {
    if (epoch !== this.#epoch || !this.#library || !this.#session) return;
    try { this.#library.C_DestroyObject(this.#session, handle); } catch { /* the store error is the one to report */ }
  }

  /**
   * Runs PKCS#11 calls; a failure that may mean the token is gone seals the module when a probe
   * confirms it, and becomes a SealedError. Everything else is rethrown for the caller to judge.
   */
  #guard<T>(calls: () => T): T {
    try {
      return calls();
    } catch (error) {
      const failure = pkcs11Failure(error);
      if (!failure || !TOKEN_GONE_CODES.has(failure.code) || this.#tokenReachable()) throw error;
      this.#sealAsUnreachable(failure.message);
    }
  }

  #sealAsUnreachable(detail: string): never {
    this.#seal(`the PKCS#11 token is no longer reachable (${detail})`);
    // The reason is for operators (status()); callers of the key service get the usual message.
    throw new SealedError();
  }

  /** Whether the session can still see the active key: the one thing every wrap needs. */
  #tokenReachable(): boolean {
    const handle = this.#activeDomainKeyId === undefined ? undefined : this.#domainKeys.get(this.#activeDomainKeyId);
    if (!this.#library || !this.#session || !handle) return false;
    try {
      this.#library.C_GetAttributeValue(this.#session, handle, [{ type: pkcs11js.CKA_CLASS }]);
      return true;
    } catch {
      return false;
    }
  }

  #unsealed(): { library: PKCS11; session: Handle; domainKeyId: string; handle: Handle } {
    const domainKeyId = this.#activeDomainKeyId;
    const handle = domainKeyId === undefined ? undefined : this.#domainKeys.get(domainKeyId);
    if (!this.#library || !this.#session || domainKeyId === undefined || !handle) throw new SealedError();
    return { library: this.#library, session: this.#session, domainKeyId, handle };
  }

  #openSession(): { library: PKCS11; session: Handle } {
    if (!this.#library || !this.#session) throw new Error('open() the PKCS#11 crypto module first');
    return { library: this.#library, session: this.#session };
  }

  #assertSameSession(epoch: number): void {
    if (epoch !== this.#epoch) throw new SealedError();
  }

  #dropSession(): void {
    const library = this.#library;
    const session = this.#session;
    this.#session = undefined;
    this.#epoch += 1;
    if (!library || !session) return;
    // No C_Logout: login state belongs to the whole process, so it would also log out any other
    // module on this token. The token ends the login when the process closes its last session.
    try { library.C_CloseSession(session); } catch { /* the token may be gone already; nothing is left to undo */ }
  }

  /** Runs set-up and key-management steps one at a time: each spans awaits on the store. */
  #exclusive<T>(step: () => Promise<T>): Promise<T> {
    const result = this.#exclusiveTail.then(step, step);
    this.#exclusiveTail = result.catch(() => undefined);
    return result;
  }
}
