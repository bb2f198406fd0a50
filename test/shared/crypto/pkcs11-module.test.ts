// The PKCS#11 crypto module against a real SoftHSM2 token: key generation inside the token,
// AES-GCM wrapping, rotation, sealing, login and token failures, and a token that goes away.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11, Template } from 'pkcs11js';
import { Pkcs11CryptoModule, Pkcs11LoginError, Pkcs11TokenError } from '../../../src/shared/crypto/lib/pkcs11-module.ts';
import type { DomainKeyStore } from '../../../src/shared/crypto/index.ts';
import { CiphertextError, SealedError } from '../../../src/shared/errors.ts';
import { createSoftHsmToken, locateSoftHsm, type SoftHsmToken } from '../../helpers/softhsm.ts';
import { MemoryDomainKeyStore } from '../../helpers/memory-domain-key-store.ts';

const located = await locateSoftHsm();
/** PKCS#11 session state (pkcs11js does not export the CKS_ constants). */
const CKS_RW_PUBLIC_SESSION = 2;

function pkcs11Code(error: unknown): number | undefined {
  return error instanceof pkcs11js.Pkcs11Error ? error.code : undefined;
}

/** A session of the test's own on the token, to look at what the module left there. */
interface TokenInspector {
  library: PKCS11;
  session: Handle;
  find(template: Template): Handle[];
  domainKeyObjects(id: string): Handle[];
  countSecretKeys(): number;
  close(): void;
}

describe('PKCS#11 crypto module on SoftHSM2', { skip: located.skip }, () => {
  let token: SoftHsmToken;
  const opened: Pkcs11CryptoModule[] = [];

  before(async () => {
    token = await createSoftHsmToken();
    // The library reads SOFTHSM2_CONF when it is initialised, once per process (and again only after
    // C_Finalize): so this file shares one token, and every test makes its own store and keys.
    process.env.SOFTHSM2_CONF = token.conf;
  });
  afterEach(() => {
    // Seal everything: login state is per process, and the wrong-PIN test needs nobody logged in.
    for (const module of opened.splice(0)) module.seal();
  });
  after(() => {
    token?.dispose();
  });

  function makeModule(store: DomainKeyStore, overrides: { tokenLabel?: string; pin?: string } = {}): Pkcs11CryptoModule {
    const module = new Pkcs11CryptoModule({ store, libraryPath: token.libraryPath, tokenLabel: overrides.tokenLabel ?? token.label,
      pin: overrides.pin ?? token.pin });
    opened.push(module);
    return module;
  }

  async function initializedModule(): Promise<{ store: MemoryDomainKeyStore; module: Pkcs11CryptoModule; id: string }> {
    const store = new MemoryDomainKeyStore();
    const module = makeModule(store);
    await module.open();
    await module.initialize();
    const id = module.status().activeDomainKeyId;
    assert.ok(id);
    return { store, module, id };
  }

  function inspectToken(): TokenInspector {
    const library = new pkcs11js.PKCS11();
    library.load(token.libraryPath);
    try {
      library.C_Initialize();
    } catch (error) {
      if (pkcs11Code(error) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error;
    }
    const slot = library.C_GetSlotList(true).find((candidate) => library.C_GetTokenInfo(candidate).label.trim() === token.label);
    assert.ok(slot, 'the test token is present');
    const session = library.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
    try {
      library.C_Login(session, pkcs11js.CKU_USER, token.pin);
    } catch (error) {
      if (pkcs11Code(error) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) throw error;
    }
    const find = (template: Template) => {
      library.C_FindObjectsInit(session, template);
      try {
        return library.C_FindObjects(session, 1000);
      } finally {
        library.C_FindObjectsFinal(session);
      }
    };
    return {
      library, session, find,
      domainKeyObjects: (id) => find([{ type: pkcs11js.CKA_ID, value: Buffer.from(id) }]),
      countSecretKeys: () => find([{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_TOKEN, value: true }]).length,
      close: () => library.C_CloseSession(session),
    };
  }

  test('an uninitialised token opens sealed and refuses to wrap', async () => {
    const module = makeModule(new MemoryDomainKeyStore());
    await module.load();
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: false, sealed: true, activeDomainKeyId: undefined });
    await module.open();
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: false, sealed: true, activeDomainKeyId: undefined });
    await assert.rejects(module.wrap(Buffer.from('secret'), Buffer.alloc(0)), SealedError);
    await assert.rejects(module.unwrap({ domainKeyId: 'x', wrapped: Buffer.alloc(40) }, Buffer.alloc(0)), SealedError);
  });

  test('initialize generates a token key, records it, and wraps and unwraps under it', async () => {
    const { store, module, id } = await initializedModule();
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: true, sealed: false, activeDomainKeyId: id });
    assert.equal(store.records.length, 1);
    assert.equal(store.records[0].module, 'pkcs11');
    assert.equal(store.records[0].state, 'active');
    assert.equal(store.records[0].wrapped.length, 0, 'nothing about a PKCS#11 key but its id is stored');
    assert.ok(module.holdsDomainKey(id));

    const secret = nodeCrypto.randomBytes(32);
    const aad = Buffer.from('trustplane/test/aad');
    const first = await module.wrap(secret, aad);
    assert.equal(first.domainKeyId, id);
    assert.equal(first.wrapped[0], 2, 'format version 2');
    assert.equal(first.wrapped.length, 1 + 12 + secret.length + 16);
    assert.deepEqual(await module.unwrap(first, aad), secret);
    const second = await module.wrap(secret, aad);
    assert.notDeepEqual(second.wrapped, first.wrapped, 'every wrap takes a fresh IV');

    for (const size of [0, 1, 15, 16, 17, 4096]) {
      const bytes = nodeCrypto.randomBytes(size);
      const wrapped = await module.wrap(bytes, aad);
      assert.equal(wrapped.wrapped.length, 1 + 12 + size + 16);
      assert.deepEqual(await module.unwrap(wrapped, aad), bytes, `${size}-byte secret`);
    }
    // Views into larger buffers wrap only their own bytes.
    const backing = Buffer.from('xxxxthe secretyyyy');
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 4, 10);
    const aadBacking = Buffer.from('[aad]');
    const viewWrapped = await module.wrap(view, aadBacking.subarray(1, 4));
    assert.equal((await module.unwrap(viewWrapped, Buffer.from('aad'))).toString(), 'the secret');

    await assert.rejects(module.initialize(), /already initialised/);
    const loaded = makeModule(store);
    await loaded.load();
    assert.equal(loaded.status().initialized, true);
  });

  test('altered bytes, another AAD or an unknown domain key are CiphertextErrors, and the module stays unsealed', async () => {
    const { module } = await initializedModule();
    const secret = nodeCrypto.randomBytes(32);
    const aad = Buffer.from('context');
    const good = await module.wrap(secret, aad);

    for (let position = 0; position < good.wrapped.length; position += 1) {
      const altered = Buffer.from(good.wrapped);
      altered[position] ^= 0x01;
      await assert.rejects(module.unwrap({ ...good, wrapped: altered }, aad), CiphertextError, `byte ${position} altered`);
    }
    await assert.rejects(module.unwrap(good, Buffer.from('contexT')), CiphertextError);
    await assert.rejects(module.unwrap(good, Buffer.alloc(0)), CiphertextError);
    await assert.rejects(module.unwrap({ ...good, wrapped: good.wrapped.subarray(0, good.wrapped.length - 1) }, aad), CiphertextError);
    await assert.rejects(module.unwrap({ ...good, wrapped: Buffer.concat([good.wrapped, Buffer.of(0)]) }, aad), CiphertextError);
    await assert.rejects(module.unwrap({ ...good, wrapped: good.wrapped.subarray(0, 1 + 12 + 15) }, aad), CiphertextError);
    await assert.rejects(module.unwrap({ ...good, wrapped: Buffer.alloc(0) }, aad), CiphertextError);
    await assert.rejects(module.unwrap({ domainKeyId: nodeCrypto.randomUUID(), wrapped: good.wrapped }, aad),
      { name: 'CiphertextError', message: 'The wrapped key names a domain key this module does not hold.' });

    // SoftHSM2 reports a bad GCM tag as CKR_GENERAL_ERROR; that must not read as a vanished token.
    assert.equal(module.status().sealed, false);
    assert.deepEqual(await module.unwrap(good, aad), secret);
  });

  test('the domain key cannot leave the token', async () => {
    const { module, id } = await initializedModule();
    const inspector = inspectToken();
    try {
      const [handle, ...others] = inspector.domainKeyObjects(id);
      assert.ok(handle, 'the domain key is a token object with CKA_ID = its id');
      assert.equal(others.length, 0);
      const flag = (type: number) => inspector.library.C_GetAttributeValue(inspector.session, handle, [{ type }])[0].value[0];
      assert.equal(flag(pkcs11js.CKA_SENSITIVE), 1);
      assert.equal(flag(pkcs11js.CKA_EXTRACTABLE), 0);
      assert.equal(flag(pkcs11js.CKA_ALWAYS_SENSITIVE), 1);
      assert.equal(flag(pkcs11js.CKA_NEVER_EXTRACTABLE), 1);
      assert.equal(flag(pkcs11js.CKA_TOKEN), 1);
      assert.equal(flag(pkcs11js.CKA_PRIVATE), 1);
      assert.equal(flag(pkcs11js.CKA_WRAP), 0);
      assert.equal(flag(pkcs11js.CKA_UNWRAP), 0);
      const [keyType, valueLength, label] = inspector.library.C_GetAttributeValue(inspector.session, handle,
        [{ type: pkcs11js.CKA_KEY_TYPE }, { type: pkcs11js.CKA_VALUE_LEN }, { type: pkcs11js.CKA_LABEL }]);
      assert.equal(keyType.value.readUInt32LE(0), pkcs11js.CKK_AES);
      assert.equal(valueLength.value.readUInt32LE(0), 32);
      assert.equal(label.value.toString(), `trustplane-domain-key-${id}`);

      assert.throws(() => inspector.library.C_GetAttributeValue(inspector.session, handle, [{ type: pkcs11js.CKA_VALUE }]),
        (error: unknown) => pkcs11Code(error) === pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
      // Nor can it be wrapped out under a key the caller knows.
      const wrappingKey = inspector.library.C_CreateObject(inspector.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: false }, { type: pkcs11js.CKA_WRAP, value: true },
        { type: pkcs11js.CKA_VALUE, value: nodeCrypto.randomBytes(32) },
      ]);
      assert.throws(() => inspector.library.C_WrapKey(inspector.session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP }, wrappingKey, handle,
        Buffer.alloc(64)), (error: unknown) => pkcs11Code(error) === pkcs11js.CKR_KEY_UNEXTRACTABLE);
      // And it cannot be made extractable afterwards. (pkcs11js throws a plain Error from this call.)
      assert.throws(() => inspector.library.C_SetAttributeValue(inspector.session, handle, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]),
        /CKR_ATTRIBUTE_READ_ONLY/);
      assert.equal(flag(pkcs11js.CKA_EXTRACTABLE), 0);
    } finally {
      inspector.close();
    }
    assert.equal(module.status().sealed, false);
  });

  test('wraps are standard AES-256-GCM: version 2, then IV, ciphertext and tag', async () => {
    // A domain key whose value the test knows, imported the way an operator could (still sensitive).
    const keyValue = nodeCrypto.randomBytes(32);
    const id = nodeCrypto.randomUUID();
    const inspector = inspectToken();
    try {
      inspector.library.C_CreateObject(inspector.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true }, { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_ID, value: Buffer.from(id) }, { type: pkcs11js.CKA_VALUE, value: keyValue },
      ]);
    } finally {
      inspector.close();
    }
    const store = new MemoryDomainKeyStore();
    await store.initializeModule({ id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' }, {});
    const module = makeModule(store);
    await module.open();
    assert.equal(module.status().activeDomainKeyId, id);

    const secret = Buffer.from('a secret wrapped in the token');
    const aad = Buffer.from('bound context');
    const { wrapped } = await module.wrap(secret, aad);
    const decipher = nodeCrypto.createDecipheriv('aes-256-gcm', keyValue, wrapped.subarray(1, 13));
    decipher.setAAD(aad);
    decipher.setAuthTag(wrapped.subarray(wrapped.length - 16));
    assert.deepEqual(Buffer.concat([decipher.update(wrapped.subarray(13, wrapped.length - 16)), decipher.final()]), secret);

    const iv = nodeCrypto.randomBytes(12);
    const cipher = nodeCrypto.createCipheriv('aes-256-gcm', keyValue, iv);
    cipher.setAAD(aad);
    const sealed = Buffer.concat([cipher.update(secret), cipher.final(), cipher.getAuthTag()]);
    assert.deepEqual(await module.unwrap({ domainKeyId: id, wrapped: Buffer.concat([Buffer.of(2), iv, sealed]) }, aad), secret);
  });

  test('a token object that is extractable is refused as a domain key', async () => {
    const id = nodeCrypto.randomUUID();
    const inspector = inspectToken();
    try {
      inspector.library.C_CreateObject(inspector.session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
        { type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: false },
        { type: pkcs11js.CKA_EXTRACTABLE, value: true }, { type: pkcs11js.CKA_ENCRYPT, value: true }, { type: pkcs11js.CKA_DECRYPT, value: true },
        { type: pkcs11js.CKA_ID, value: Buffer.from(id) }, { type: pkcs11js.CKA_VALUE, value: nodeCrypto.randomBytes(32) },
      ]);
    } finally {
      inspector.close();
    }
    const store = new MemoryDomainKeyStore();
    await store.initializeModule({ id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' }, {});
    const module = makeModule(store);
    await assert.rejects(module.open(), (error: unknown) => error instanceof Pkcs11TokenError && /extractable/.test(error.message));
    assert.equal(module.status().sealed, true);
  });

  test('a second instance on the same token and store unwraps what the first wrapped, and the other way round', async () => {
    const { store, module: first, id } = await initializedModule();
    const second = makeModule(store);
    await second.open();
    assert.deepEqual(second.status(), { kind: 'pkcs11', initialized: true, sealed: false, activeDomainKeyId: id });
    const aad = Buffer.from('shared');
    const fromFirst = await first.wrap(Buffer.from('one'), aad);
    const fromSecond = await second.wrap(Buffer.from('two'), aad);
    assert.equal((await second.unwrap(fromFirst, aad)).toString(), 'one');
    assert.equal((await first.unwrap(fromSecond, aad)).toString(), 'two');
  });

  test('rotation wraps under the new key, old wraps still unwrap, and retirement destroys the old key', async () => {
    const { store, module, id: oldId } = await initializedModule();
    const aad = Buffer.from('rotation');
    const underOld = await module.wrap(Buffer.from('old'), aad);

    const newId = await module.rotateDomainKey();
    assert.notEqual(newId, oldId);
    assert.equal(module.status().activeDomainKeyId, newId);
    assert.equal(store.stateOf(oldId), 'retiring');
    assert.equal(store.stateOf(newId), 'active');
    assert.ok(module.holdsDomainKey(oldId) && module.holdsDomainKey(newId));
    const underNew = await module.wrap(Buffer.from('new'), aad);
    assert.equal(underNew.domainKeyId, newId);
    assert.equal((await module.unwrap(underOld, aad)).toString(), 'old');
    assert.equal((await module.unwrap(underNew, aad)).toString(), 'new');

    const reopened = makeModule(store);
    await reopened.open();
    assert.equal(reopened.status().activeDomainKeyId, newId);
    assert.ok(reopened.holdsDomainKey(oldId), 'a retiring key is found again on open');
    assert.equal((await reopened.unwrap(underOld, aad)).toString(), 'old');
    reopened.seal();

    await assert.rejects(module.retireDomainKey(newId), /active domain key cannot be retired/);
    await module.retireDomainKey(oldId);
    assert.equal(store.stateOf(oldId), 'retired');
    assert.equal(module.holdsDomainKey(oldId), false);
    const inspector = inspectToken();
    try {
      assert.equal(inspector.domainKeyObjects(oldId).length, 0, 'the retired key object is destroyed');
      assert.equal(inspector.domainKeyObjects(newId).length, 1);
    } finally {
      inspector.close();
    }
    await assert.rejects(module.unwrap(underOld, aad),
      { name: 'CiphertextError', message: 'The wrapped key names a domain key this module does not hold.' });
    assert.equal((await module.unwrap(underNew, aad)).toString(), 'new');
    await module.retireDomainKey(oldId); // again (another server did it first): nothing to do, no error

    const afterRetirement = makeModule(store);
    await afterRetirement.open();
    assert.equal(afterRetirement.holdsDomainKey(oldId), false);
    assert.equal((await afterRetirement.unwrap(underNew, aad)).toString(), 'new');
  });

  test('a failed store write leaves no new key behind in the token', async () => {
    const store = new MemoryDomainKeyStore();
    const module = makeModule(store);
    const countKeys = () => {
      const inspector = inspectToken();
      try {
        return inspector.countSecretKeys();
      } finally {
        inspector.close();
      }
    };
    const before = countKeys();
    store.failNextWrite = true;
    // Without open() first: initialize opens the token itself.
    await assert.rejects(module.initialize(), /simulated store failure/);
    assert.equal(countKeys(), before);
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: false, sealed: true, activeDomainKeyId: undefined });

    await module.initialize();
    const id = module.status().activeDomainKeyId;
    assert.equal(countKeys(), before + 1);
    store.failNextWrite = true;
    await assert.rejects(module.rotateDomainKey(), /simulated store failure/);
    assert.equal(countKeys(), before + 1);
    assert.equal(module.status().activeDomainKeyId, id);
    assert.equal(store.records.length, 1);
  });

  test('seal forgets the keys and tells listeners until the module is opened again', async () => {
    const { module, id } = await initializedModule();
    const aad = Buffer.from('seal');
    const wrapped = await module.wrap(Buffer.from('kept'), aad);
    let sealedCalls = 0;
    module.onSeal(() => { sealedCalls += 1; });

    module.seal();
    assert.equal(sealedCalls, 1);
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: true, sealed: true, activeDomainKeyId: undefined });
    assert.equal(module.holdsDomainKey(id), false);
    await assert.rejects(module.unwrap(wrapped, aad), SealedError);
    await assert.rejects(module.wrap(Buffer.from('x'), aad), SealedError);
    await assert.rejects(module.rotateDomainKey(), SealedError);
    await assert.rejects(module.retireDomainKey(id), SealedError);

    await module.open();
    assert.equal(module.status().sealed, false);
    assert.equal((await module.unwrap(wrapped, aad)).toString(), 'kept');
    module.seal();
    assert.equal(await module.reopen(), true, 'the caller, not the module, decides whether a seal on request may be undone');
    assert.equal((await module.unwrap(wrapped, aad)).toString(), 'kept');

    module.dispose();
    assert.equal(module.status().sealed, true);
    await assert.rejects(module.open(), /disposed/);
    assert.equal(await module.reopen(), false);
  });

  test('sealing one instance leaves another working, and sealing the last ends the login', async () => {
    const { store, module: first } = await initializedModule();
    const second = makeModule(store);
    await second.open();
    const aad = Buffer.from('siblings');
    const wrapped = await first.wrap(Buffer.from('both'), aad);
    first.seal();
    assert.equal((await second.unwrap(wrapped, aad)).toString(), 'both');
    assert.equal(second.status().sealed, false);
    second.seal();

    const library = new pkcs11js.PKCS11();
    library.load(token.libraryPath);
    const slot = library.C_GetSlotList(true).find((candidate) => library.C_GetTokenInfo(candidate).label.trim() === token.label);
    assert.ok(slot);
    const session = library.C_OpenSession(slot, pkcs11js.CKF_RW_SESSION | pkcs11js.CKF_SERIAL_SESSION);
    try {
      assert.equal(library.C_GetSessionInfo(session).state, CKS_RW_PUBLIC_SESSION, 'nobody in this process is logged in');
    } finally {
      library.C_CloseSession(session);
    }
  });

  test('a session that loses its login seals the module instead of acting on what it can no longer see', async () => {
    const { store, module, id: oldId } = await initializedModule();
    await module.rotateDomainKey();
    const aad = Buffer.from('logout');
    const wrapped = await module.wrap(Buffer.from('private'), aad);
    // Another user of the library in this process logs out: login state is shared by all its sessions.
    const inspector = inspectToken();
    inspector.library.C_Logout(inspector.session);
    inspector.close();

    // The store retires first (nothing references the key: `wrapped` is not stored), then the
    // module finds it cannot see the token: it seals, and the object stays behind, orphaned.
    await assert.rejects(module.retireDomainKey(oldId), SealedError);
    assert.match(module.status().sealedReason ?? '', /no longer reachable/);
    assert.equal(store.stateOf(oldId), 'retired');
    assert.equal(await module.reopen(), true);
    const check = inspectToken();
    try {
      assert.equal(check.domainKeyObjects(oldId).length, 1, 'the key object was not destroyed unseen');
    } finally {
      check.close();
    }
    assert.equal(module.holdsDomainKey(oldId), false, 'a retired key is not loaded again');
    assert.equal((await module.unwrap(wrapped, aad)).toString(), 'private', 'material under the active key is untouched');
    // Retiring again (the rotation's next pass) destroys the orphan.
    await module.retireDomainKey(oldId);
    const after = inspectToken();
    try {
      assert.equal(after.domainKeyObjects(oldId).length, 0);
    } finally {
      after.close();
    }
  });

  test('a seal while open() waits on the store wins', async () => {
    const { store, module } = await initializedModule();
    module.seal();
    const listing = store.listDomainKeys.bind(store);
    let release = () => {};
    store.listDomainKeys = async () => {
      await new Promise<void>((resolve) => { release = resolve; });
      return listing();
    };
    const opening = module.open();
    await new Promise((resolve) => setImmediate(resolve));
    module.seal();
    release();
    await assert.rejects(opening, SealedError);
    assert.equal(module.status().sealed, true);
  });

  test('a seal while the store is writing wins: the key is recorded, the module stays sealed until opened', async () => {
    const store = new MemoryDomainKeyStore();
    const module = makeModule(store);
    await module.open();
    let release = () => {};
    store.beforeWrite = () => new Promise<void>((resolve) => { release = resolve; });
    const initializing = module.initialize();
    await new Promise((resolve) => setImmediate(resolve));
    module.seal();
    release();
    await assert.rejects(initializing, SealedError);
    store.beforeWrite = undefined;
    assert.deepEqual(module.status(), { kind: 'pkcs11', initialized: true, sealed: true, activeDomainKeyId: undefined });
    await module.open();
    assert.equal(module.status().activeDomainKeyId, store.records[0].id);
  });

  test('a wrong PIN is a Pkcs11LoginError that does not reveal the PIN, and is not tried again', async () => {
    const { store, module } = await initializedModule();
    // Login state is per process and token: while another session is logged in, the token
    // answers CKR_USER_ALREADY_LOGGED_IN without checking a PIN at all.
    module.seal();
    const wrongPin = `wrong-${nodeCrypto.randomBytes(6).toString('hex')}`;
    const refused = makeModule(store, { pin: wrongPin });
    const isLoginError = (error: unknown) => {
      assert.ok(error instanceof Pkcs11LoginError);
      assert.equal(error.code, 'Pkcs11LoginError');
      assert.match(error.message, new RegExp(token.label));
      assert.ok(!error.message.includes(wrongPin) && !error.message.includes(token.pin), 'no PIN in the message');
      assert.ok(!String(error.stack).includes(wrongPin), 'no PIN in the stack');
      return true;
    };
    await assert.rejects(refused.open(), isLoginError);
    const status = refused.status();
    assert.equal(status.sealed, true);
    assert.ok(status.sealedReason && !status.sealedReason.includes(wrongPin));
    assert.equal(await refused.reopen(), false);
    await assert.rejects(refused.open(), isLoginError);
  });

  test('a wrong token label names the label asked for and the tokens found', async () => {
    const module = makeModule(new MemoryDomainKeyStore(), { tokenLabel: 'no-such-token' });
    await assert.rejects(module.open(), (error: unknown) => {
      assert.ok(error instanceof Pkcs11TokenError);
      assert.match(error.message, /"no-such-token"/);
      assert.ok(error.message.includes(`"${token.label}"`), error.message);
      return true;
    });
    assert.equal(module.status().sealed, true);
  });

  test('a token without the active domain key is refused as the wrong token', async () => {
    const store = new MemoryDomainKeyStore();
    const id = nodeCrypto.randomUUID();
    await store.initializeModule({ id, module: 'pkcs11', wrapped: Buffer.alloc(0), createdAt: new Date(), state: 'active' }, {});
    const module = makeModule(store);
    await assert.rejects(module.open(), (error: unknown) => {
      assert.ok(error instanceof Pkcs11TokenError);
      assert.match(error.message, /does not hold the active domain key/);
      assert.ok(error.message.includes(id));
      return true;
    });
    assert.deepEqual(module.status().sealed, true);
  });

  test('when the token goes away the module seals itself, and reopens once the token is back', async () => {
    const { store, module } = await initializedModule();
    const sibling = makeModule(store);
    await sibling.open();
    const aad = Buffer.from('removal');
    const wrapped = await module.wrap(Buffer.from('survives'), aad);
    let sealedCalls = 0;
    module.onSeal(() => { sealedCalls += 1; });

    // Noticed by a wrap.
    token.remove();
    try {
      await assert.rejects(module.wrap(Buffer.from('x'), aad), SealedError);
      const status = module.status();
      assert.equal(status.sealed, true);
      assert.match(status.sealedReason ?? '', /no longer reachable/);
      assert.equal(sealedCalls, 1);
      await assert.rejects(module.unwrap(wrapped, aad), SealedError);
      assert.equal(await module.reopen(), false, 'the token is still away');
      assert.match(module.status().sealedReason ?? '', /No PKCS#11 token labelled/);
    } finally {
      token.restore();
    }
    assert.equal(await module.reopen(), true);
    assert.equal(module.status().sealedReason, undefined);
    assert.equal((await module.unwrap(wrapped, aad)).toString(), 'survives');

    // Reopening re-initialised the library, which ended every other session in this process.
    await assert.rejects(sibling.wrap(Buffer.from('x'), aad), SealedError);
    assert.match(sibling.status().sealedReason ?? '', /no longer reachable/);
    assert.equal(await sibling.reopen(), true);
    assert.equal((await sibling.unwrap(wrapped, aad)).toString(), 'survives');

    // Noticed by an unwrap, whose failures are otherwise read as bad ciphertext.
    token.remove();
    try {
      await assert.rejects(module.unwrap(wrapped, aad), SealedError);
      assert.match(module.status().sealedReason ?? '', /no longer reachable/);
      assert.equal(sealedCalls, 2);
    } finally {
      token.restore();
    }
    assert.equal(await module.reopen(), true);
    assert.equal((await module.unwrap(wrapped, aad)).toString(), 'survives');
  });

  // Last: it deletes the file's token for good.
  test('a token deleted with softhsm2-util seals the module, and reopen reports it missing', async () => {
    const { module } = await initializedModule();
    const aad = Buffer.from('deletion');
    const wrapped = await module.wrap(Buffer.from('gone'), aad);
    await token.destroy();
    await assert.rejects(module.unwrap(wrapped, aad), SealedError);
    assert.match(module.status().sealedReason ?? '', /no longer reachable/);
    assert.equal(await module.reopen(), false);
    assert.match(module.status().sealedReason ?? '', /No PKCS#11 token labelled/);
    assert.equal(module.status().initialized, true, 'the store still says so while the token is missing');
  });
});
