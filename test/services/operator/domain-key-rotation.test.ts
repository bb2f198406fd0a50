// Domain key rotation: every stored record moves to the new domain key in the background while
// requests keep succeeding, the old key retires only when nothing references it, and a kill -9
// in the middle resumes cleanly on the next start.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateDataKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { operatorCall, rootCredentials } from '../../helpers/iam-client.ts';
import { health as healthOf } from '../../helpers/operator.ts';
import { readDomainKeys } from '../../helpers/domain-keys.ts';
import type { DomainKeyRotationProgress } from '../../../src/services/operator/index.ts';

interface StoreView {
  domainKeys: Array<{ id: string; state: string; wrappedLength: number }>;
  recordsByDomainKey: Map<string, number>;
}

function readStore(home: string): StoreView {
  const domainKeys = readDomainKeys(home).map((key) => ({ id: key.id, state: key.state, wrappedLength: key.wrapped.length }));
  const db = new Database(join(home, 'trustplane.db'), { readonly: true });
  try {
    const rows = db.prepare(`SELECT domain_key_id AS id, COUNT(*) AS n FROM (
      SELECT domain_key_id FROM key_versions UNION ALL SELECT domain_key_id FROM access_keys
      UNION ALL SELECT domain_key_id FROM audit_signing_keys) GROUP BY domain_key_id`).all() as Array<{ id: string; n: number }>;
    return { domainKeys, recordsByDomainKey: new Map(rows.map((row) => [row.id, row.n])) };
  } finally {
    db.close();
  }
}

async function rotation(server: TestServer): Promise<DomainKeyRotationProgress> {
  return (await operatorCall<{ DomainKeyRotation: DomainKeyRotationProgress }>(server, rootCredentials(server), 'GetDomainKeyRotation')).DomainKeyRotation;
}

/** Polls the rotation status (the server's own progress report) until `done` holds. */
async function waitForRotation(server: TestServer, done: (progress: DomainKeyRotationProgress) => boolean): Promise<DomainKeyRotationProgress> {
  for (;;) {
    const progress = await rotation(server);
    if (done(progress)) return progress;
    await delay(25);
  }
}

async function seedKeys(client: KMSClient, count: number): Promise<Array<{ keyId: string; ciphertext: Uint8Array; plaintext: string }>> {
  const seeded = [];
  for (let index = 0; index < count; index += 1) {
    const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    const plaintext = `record ${index}`;
    const ciphertext = (await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from(plaintext) }))).CiphertextBlob!;
    seeded.push({ keyId, ciphertext, plaintext });
  }
  return seeded;
}

async function decryptAll(client: KMSClient, seeded: Awaited<ReturnType<typeof seedKeys>>): Promise<void> {
  for (const item of seeded) {
    const result = await client.send(new DecryptCommand({ CiphertextBlob: item.ciphertext }));
    assert.equal(Buffer.from(result.Plaintext!).toString(), item.plaintext);
  }
}

describe('domain key rotation', () => {
  const servers: TestServer[] = [];
  after(async () => { for (const server of servers) await server.dispose(); });

  it('rewraps every record under concurrent load with no failed request, then retires the old key', async () => {
    // A small key cache TTL keeps requests unwrapping (so they really use the domain keys during the rewrap).
    const server = await startTestServer({ extraArgs: ['--rewrap-batch-size', '10', '--rewrap-pause', '10', '--key-cache-ttl', '0'] });
    servers.push(server);
    const client = kmsClient(server);
    const seeded = await seedKeys(client, 120);
    const before = readStore(server.home);
    const oldKey = before.domainKeys.find((key) => key.state === 'active')!.id;

    let stop = false;
    const failures: unknown[] = [];
    let requests = 0;
    const worker = async (offset: number) => {
      for (let index = offset; !stop; index += 4) {
        const item = seeded[index % seeded.length]!;
        try {
          const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: item.ciphertext }));
          assert.equal(Buffer.from(decrypted.Plaintext!).toString(), item.plaintext);
          await client.send(new GenerateDataKeyCommand({ KeyId: item.keyId, KeySpec: 'AES_256' }));
          if (index % 10 === 0) await client.send(new CreateKeyCommand({}));
          requests += 3;
        } catch (error) {
          failures.push(error);
        }
      }
    };
    const load = [0, 1, 2, 3].map(worker);
    const started = (await operatorCall<{ DomainKeyRotation: DomainKeyRotationProgress }>(server, rootCredentials(server), 'RotateDomainKey')).DomainKeyRotation;
    assert.notEqual(started.ActiveDomainKeyId, oldKey);
    assert.deepEqual(started.RetiringDomainKeyIds, [oldKey]);
    await assert.rejects(operatorCall(server, rootCredentials(server), 'RotateDomainKey'), { name: 'ConflictException' });
    const health = (await healthOf(server)).body;
    assert.ok(health.domainKeyRotation, 'health shows the rotation in progress');
    const finished = await waitForRotation(server, (progress) => progress.State === 'Idle');
    stop = true;
    await Promise.all(load);
    assert.deepEqual(failures, []);
    assert.ok(requests > 50, `the load ran throughout (${requests} requests)`);
    assert.equal(finished.ActiveDomainKeyId, started.ActiveDomainKeyId);

    const afterRotation = readStore(server.home);
    assert.deepEqual(afterRotation.domainKeys.map((key) => [key.id, key.state, key.wrappedLength]),
      [[oldKey, 'retired', 0], [started.ActiveDomainKeyId, 'active', afterRotation.domainKeys[1]!.wrappedLength]]);
    assert.deepEqual([...afterRotation.recordsByDomainKey.keys()], [started.ActiveDomainKeyId]);
    assert.ok(afterRotation.recordsByDomainKey.get(started.ActiveDomainKeyId!)! >= before.recordsByDomainKey.get(oldKey)!);
    await decryptAll(client, seeded);
    client.destroy();
  });

  it('resumes after kill -9 in the middle of the rewrap and finishes with nothing lost', async () => {
    const args = ['--rewrap-batch-size', '5', '--rewrap-pause', '40'];
    let server = await startTestServer({ extraArgs: args });
    servers.push(server);
    let client = kmsClient(server);
    const seeded = await seedKeys(client, 80);
    client.destroy();
    const oldKey = readStore(server.home).domainKeys[0]!.id;
    await operatorCall(server, rootCredentials(server), 'RotateDomainKey');
    const midway = await waitForRotation(server, (progress) => progress.Rewrapped >= 10);
    assert.ok(midway.Remaining > 0, 'killed while records remain under the old key');
    await server.kill();

    const crashed = readStore(server.home);
    assert.deepEqual(crashed.domainKeys.map((key) => key.state), ['retiring', 'active']);
    const newKey = crashed.domainKeys[1]!.id;
    assert.ok(crashed.recordsByDomainKey.get(oldKey)! > 0 && crashed.recordsByDomainKey.get(newKey)! > 0, 'the crash left records under both keys');

    server = await startTestServer({ home: server.home, extraArgs: ['--rewrap-batch-size', '50'] });
    servers.push(server);
    client = kmsClient({ ...server, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey });
    await decryptAll(client, seeded); // served while the resumed rewrap runs
    await waitForRotation(server, (progress) => progress.State === 'Idle');
    const resumed = readStore(server.home);
    assert.deepEqual(resumed.domainKeys.map((key) => [key.id, key.state]), [[oldKey, 'retired'], [newKey, 'active']]);
    assert.deepEqual([...resumed.recordsByDomainKey.keys()], [newKey]);
    await decryptAll(client, seeded);
    client.destroy();
  });
});
