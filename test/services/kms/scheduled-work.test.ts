// Scheduled work with a controlled clock: automatic rotation when due, deletion when the
// waiting period ends. Runs the key service in-process on a real SQLite store.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { Keyring, randomBytes, SoftwareCryptoModule } from '../../../src/shared/crypto/index.ts';
import { SqliteStore } from '../../../src/shared/store/index.ts';
import { createLogger } from '../../../src/shared/log.ts';
import { KeyService } from '../../../src/services/kms/index.ts';
import { Authorizer, type Caller } from '../../../src/shared/auth/index.ts';
import { policyEngine } from '../../../src/shared/auth/policy-engine.ts';
import { makeTempDir } from '../../helpers/server.ts';

const DAY = 86_400_000;

describe('scheduled key work', () => {
  let home: string;
  let store: SqliteStore;
  let service: KeyService;
  let now = new Date('2026-01-01T00:00:00Z');
  const caller: Caller = { principalArn: 'arn:aws:iam::111122223333:root', identityArn: 'arn:aws:iam::111122223333:root',
    accountId: '111122223333', kind: 'root', accessKeyId: 'AKTPTEST', tags: {}, signingService: 'kms' };

  before(async () => {
    home = makeTempDir();
    store = SqliteStore.open(join(home, 'db.sqlite'));
    const module = new SoftwareCryptoModule(store);
    await module.load();
    await module.initialize(randomBytes(32));
    service = new KeyService({ store, keyring: new Keyring(module), region: 'us-east-1', authorizer: new Authorizer(store, policyEngine),
      logger: createLogger({ level: 'silent' }), now: () => now });
  });
  after(async () => {
    await store.close();
    rmSync(home, { recursive: true, force: true });
  });

  it('rotates a key when its period has passed, and again a period later', async () => {
    const key = await service.createKey(caller, {});
    const original = await service.encrypt(caller, { keyId: key.keyId, plaintext: Buffer.from('old') });
    await service.enableKeyRotation(caller, key.keyId, 90);
    now = new Date(now.getTime() + 89 * DAY);
    assert.deepEqual(await service.runDueWork(), { rotated: 0, deleted: 0 });
    now = new Date(now.getTime() + 1 * DAY + 1000);
    assert.deepEqual(await service.runDueWork(), { rotated: 1, deleted: 0 });
    assert.deepEqual(await service.runDueWork(), { rotated: 0, deleted: 0 }, 'not twice for one period');
    const status = await service.getKeyRotationStatus(caller, key.keyId);
    assert.equal(status.NextRotationDate?.getTime(), now.getTime() + 90 * DAY);
    const rotations = await service.listKeyRotations(caller, key.keyId, 10);
    assert.deepEqual(rotations.Rotations.map((rotation) => rotation.RotationType), ['AUTOMATIC']);
    const described = await service.describeKey(caller, key.keyId);
    assert.equal(described.currentVersion, 2);
    const decrypted = await service.decrypt(caller, { ciphertextBlob: original.CiphertextBlob });
    assert.equal(decrypted.Plaintext.toString(), 'old');
  });

  it('refuses versions below the minimum decryption version', async () => {
    const key = await service.createKey(caller, {});
    const old = await service.encrypt(caller, { keyId: key.keyId, plaintext: Buffer.from('v1') });
    await service.rotateKeyOnDemand(caller, key.keyId);
    await service.setMinimumDecryptionVersion(caller, key.keyId, 2);
    await assert.rejects(service.decrypt(caller, { ciphertextBlob: old.CiphertextBlob }),
      { code: 'InvalidCiphertextException', message: /below its minimum decryption version 2/ });
    await assert.rejects(service.setMinimumDecryptionVersion(caller, key.keyId, 3), { code: 'ValidationException' });
    await service.setMinimumDecryptionVersion(caller, key.keyId, 1);
    assert.equal((await service.decrypt(caller, { ciphertextBlob: old.CiphertextBlob })).Plaintext.toString(), 'v1');
  });

  it('deletes a key, its versions and aliases once the waiting period ends, not before', async () => {
    const key = await service.createKey(caller, {});
    await service.createAlias(caller, 'alias/doomed', key.keyId);
    await service.scheduleKeyDeletion(caller, key.keyId, 7);
    now = new Date(now.getTime() + 7 * DAY - 1000);
    assert.equal((await service.runDueWork()).deleted, 0);
    now = new Date(now.getTime() + 2000);
    assert.equal((await service.runDueWork()).deleted, 1);
    await assert.rejects(service.describeKey(caller, key.keyId), { code: 'NotFoundException' });
    await assert.rejects(service.describeKey(caller, 'alias/doomed'), { code: 'NotFoundException' });
    assert.equal(await store.getKeyVersion(key.keyId, 1), undefined);
  });

  it('never deletes a key whose deletion was cancelled after the due list was read', async () => {
    const key = await service.createKey(caller, {});
    await service.scheduleKeyDeletion(caller, key.keyId, 7);
    now = new Date(now.getTime() + 8 * DAY);
    const due = await store.listKeysDueForDeletion(now);
    assert.ok(due.some((entry) => entry.keyId === key.keyId));
    await service.cancelKeyDeletion(caller, key.keyId);
    assert.equal(await store.deleteKeyIfDue(key.keyId, now), false);
    assert.equal((await service.describeKey(caller, key.keyId)).keyState, 'Disabled');
  });
});
