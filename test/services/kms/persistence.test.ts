// Restarts and crashes: a restarted server reuses its store, credentials and keys; kill -9 in
// the middle of writes loses nothing that was acknowledged and leaves nothing half-written.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, EncryptCommand, ListKeysCommand,
  RotateKeyOnDemandCommand,
} from '@aws-sdk/client-kms';
import { makeTempDir, startTestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';

describe('persistence', () => {
  const homes: string[] = [];
  after(() => { for (const home of homes) rmSync(home, { recursive: true, force: true }); });

  it('a restarted server reuses everything: credentials, keys, aliases, versions', async () => {
    const home = makeTempDir();
    homes.push(home);
    const first = await startTestServer({ home });
    const kms = kmsClient(first);
    const key = (await kms.send(new CreateKeyCommand({ Description: 'survives' }))).KeyMetadata!;
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/survivor', TargetKeyId: key.KeyId }));
    const v1 = await kms.send(new EncryptCommand({ KeyId: 'alias/survivor', Plaintext: Buffer.from('one') }));
    await kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId }));
    const v2 = await kms.send(new EncryptCommand({ KeyId: 'alias/survivor', Plaintext: Buffer.from('two') }));
    kms.destroy();
    assert.equal(await first.stop(), 0, 'SIGTERM shuts down cleanly');
    const credentialsFile = readFileSync(join(home, 'credentials'), 'utf8');
    assert.match(credentialsFile, /^\[trustplane\]\naws_access_key_id = AKTP/);

    const second = await startTestServer({ home });
    try {
      assert.equal(second.accessKeyId, first.accessKeyId);
      assert.equal(second.accountId, first.accountId);
      const again = kmsClient(second);
      for (const [blob, expected] of [[v1.CiphertextBlob, 'one'], [v2.CiphertextBlob, 'two']] as const) {
        const decrypted = await again.send(new DecryptCommand({ CiphertextBlob: blob }));
        assert.equal(Buffer.from(decrypted.Plaintext!).toString(), expected);
      }
      const described = await again.send(new DescribeKeyCommand({ KeyId: 'alias/survivor' }));
      assert.equal(described.KeyMetadata!.Description, 'survives');
      again.destroy();
    } finally {
      await second.stop();
    }
  });

  it('kill -9 during a stream of writes loses no acknowledged key and leaves the store consistent', async () => {
    const home = makeTempDir();
    homes.push(home);
    const server = await startTestServer({ home });
    const kms = kmsClient(server);
    const acknowledged = new Map<string, Uint8Array>();
    let writing = true;
    const writers = Array.from({ length: 4 }, async () => {
      while (writing) {
        try {
          const key = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!;
          const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.from(key.KeyId!) }));
          await kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId }));
          acknowledged.set(key.KeyId!, CiphertextBlob!);
        } catch {
          return;
        }
      }
    });
    // Let the writers get going, then crash the server without warning.
    while (acknowledged.size < 20) await new Promise((resolve) => setImmediate(resolve));
    await server.kill();
    writing = false;
    await Promise.all(writers);
    kms.destroy();

    const db = new Database(join(home, 'trustplane.db'), { readonly: true });
    assert.equal((db.pragma('integrity_check') as Array<{ integrity_check: string }>)[0].integrity_check, 'ok');
    const orphans = db.prepare(`SELECT COUNT(*) AS n FROM keys k WHERE NOT EXISTS
      (SELECT 1 FROM key_versions v WHERE v.key_id = k.key_id AND v.version = k.current_version)`).get() as { n: number };
    assert.equal(orphans.n, 0, 'every key has its default version');
    db.close();

    const restarted = await startTestServer({ home });
    try {
      const again = kmsClient(restarted);
      const listed = new Set<string>();
      let marker: string | undefined;
      do {
        const page = await again.send(new ListKeysCommand({ Marker: marker, Limit: 1000 }));
        page.Keys!.forEach((key) => listed.add(key.KeyId!));
        marker = page.NextMarker;
      } while (marker);
      for (const [keyId, blob] of acknowledged) {
        assert.ok(listed.has(keyId), `acknowledged key ${keyId} survived`);
        const decrypted = await again.send(new DecryptCommand({ CiphertextBlob: blob }));
        assert.equal(Buffer.from(decrypted.Plaintext!).toString(), keyId);
        const described = await again.send(new DescribeKeyCommand({ KeyId: keyId }));
        assert.equal(described.KeyMetadata!.KeyState, 'Enabled');
      }
      again.destroy();
    } finally {
      await restarted.stop();
    }
  });
});
