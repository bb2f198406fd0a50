// Every request to the running server is audited: successes, denials, unauthenticated calls,
// state changes (recorded in their own transaction); verify catches tampering with a copy.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { makeTempDir, startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient, rawKmsRequest } from '../../helpers/kms-client.ts';
import { trustplane } from '../../helpers/cli.ts';

interface Record {
  seq: number; requestId: string; principalArn?: string; operation: string; resource?: string; decision: string;
  decidingStatement?: string; outcome: string; latencyMs: number; sourceIp?: string; service: string;
}

describe('audit of every request', () => {
  let server: TestServer;
  let kms: KMSClient;
  let work: string;
  let keyArn: string;

  before(async () => {
    server = await startTestServer();
    kms = kmsClient(server);
    work = makeTempDir('trustplane-audit-');
    keyArn = (await kms.send(new CreateKeyCommand({ Description: 'audited' }))).KeyMetadata!.Arn!;
    const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: keyArn, Plaintext: Buffer.from('audit-plaintext-marker') }));
    await kms.send(new DecryptCommand({ CiphertextBlob }));
    await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: '{}', credentials: { accessKeyId: 'AKTPNOBODY0000000000', secretAccessKey: 'x' } });
    await rawKmsRequest(server, { target: 'TrentService.DescribeKey', body: JSON.stringify({ KeyId: 'alias/missing' }) });
    kms.destroy();
    assert.equal(await server.stop(), 0);
  });
  after(async () => {
    await server?.dispose();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const query = async (home: string, ...args: string[]) => (await trustplane(['audit', 'query', '--home', home, '--json', ...args]))
    .trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record);

  it('records successes, state changes, errors and unauthenticated calls, and never plaintext', async () => {
    const records = await query(server.home);
    const operations = records.map((record) => `${record.operation}:${record.outcome}`);
    for (const expected of ['CreateKey:Success', 'Encrypt:Success', 'Decrypt:Success', 'Encrypt:UnrecognizedClientException',
      'DescribeKey:NotFoundException']) {
      assert.ok(operations.includes(expected), `${expected} in ${operations.join(', ')}`);
    }
    const createKey = records.filter((record) => record.operation === 'CreateKey');
    assert.equal(createKey.length, 1, 'a state change is recorded once (in its own transaction)');
    const decrypt = records.find((record) => record.operation === 'Decrypt')!;
    assert.equal(decrypt.resource, keyArn);
    assert.equal(decrypt.decision, 'Allow');
    assert.match(decrypt.principalArn!, /:root$/);
    assert.equal(decrypt.service, 'kms');
    assert.equal(decrypt.sourceIp, '127.0.0.1');
    assert.ok(decrypt.latencyMs >= 0);
    const unauthenticated = records.find((record) => record.outcome === 'UnrecognizedClientException')!;
    assert.equal(unauthenticated.decision, 'Unauthenticated');
    assert.equal(unauthenticated.principalArn, undefined);
    const seqs = records.map((record) => record.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
    const raw = await trustplane(['audit', 'query', '--home', server.home, '--json']);
    assert.ok(!raw.includes('audit-plaintext-marker') && !raw.includes(Buffer.from('audit-plaintext-marker').toString('base64')));
    assert.ok(!raw.includes(server.secretAccessKey));
    const byOperation = await query(server.home, '--operation', 'Decrypt');
    assert.deepEqual(byOperation.map((record) => record.operation), ['Decrypt']);
  });

  it('verifies an intact log, and names the first bad record of a tampered copy', async () => {
    const verified = JSON.parse(await trustplane(['audit', 'verify', '--home', server.home, '--json'])) as
      { Intact: boolean; Records: number; Checkpoints: number };
    assert.equal(verified.Intact, true);
    assert.ok(verified.Records >= 5);
    assert.ok(verified.Checkpoints >= 1, 'a final checkpoint is signed at shutdown');
    const copy = join(work, 'copy');
    mkdirSync(copy);
    copyFileSync(join(server.home, 'trustplane.db'), join(copy, 'trustplane.db'));
    const db = new Database(join(copy, 'trustplane.db'));
    db.prepare("UPDATE audit_records SET record = replace(record, '\"Success\"', '\"Denied\"') WHERE seq = 2").run();
    db.close();
    try {
      await trustplane(['audit', 'verify', '--home', copy]);
      assert.fail('verify must fail on a tampered copy');
    } catch (error) {
      const failure = error as { code: number; stderr: string };
      assert.equal(failure.code, 1);
      assert.match(failure.stderr, /^trustplane: AuditChainBroken: record 2 /);
    }
  });
});
