// Sealing and unsealing a production-style (non-dev) server: Shamir init and unseal through the
// CLI's scripted interface, sealed answers from every API, and seal proven by a memory search.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { combine } from 'shamir-secret-sharing';
import { DecryptCommand, EncryptCommand } from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient, rawKmsRequest } from '../../helpers/kms-client.ts';
import { processMemoryContains } from '../../helpers/memory.ts';
import { cliEnv, trustplane, trustplaneFails } from '../../helpers/cli.ts';
import { health as healthOf } from '../../helpers/operator.ts';
import { readDomainKeys } from '../../helpers/domain-keys.ts';
import { kmsOperations } from '../../../src/services/kms/index.ts';
import { iamOperations } from '../../../src/services/iam/index.ts';
import type { KeyService } from '../../../src/services/kms/index.ts';
import type { IdentityService } from '../../../src/services/iam/index.ts';
import { SqliteStore } from '../../../src/shared/store/index.ts';
import { aesGcmDecrypt, randomBytes, SoftwareCryptoModule } from '../../../src/shared/crypto/index.ts';

interface Status { Initialized: boolean; Sealed: boolean; Progress: number; Threshold: number }

describe('sealed root of trust (software module, Shamir shares)', () => {
  let server: TestServer;
  let home: string;
  let shares: string[];
  let credentials: { accessKeyId: string; secretAccessKey: string };

  // Operator commands run without credentials (the server has none to give) unless one needs them.
  const cli = (...args: string[]) => trustplane([...args, '--endpoint', server.url], { env: cliEnv(server) });
  const cliJson = async <T>(...args: string[]) => JSON.parse(await cli(...args, '--json')) as T;
  const cliFails = (...args: string[]) => trustplaneFails([...args, '--endpoint', server.url], { env: cliEnv(server) });
  const kms = () => kmsClient(server, credentials);
  const health = () => healthOf(server);

  before(async () => {
    server = await startTestServer({ dev: false });
    home = server.home;
  });
  after(async () => { await server?.dispose(); });

  it('starts sealed and uninitialised, and says so on health and status', async () => {
    const reported = await health();
    assert.equal(reported.status, 503);
    assert.equal(reported.body.status, 'uninitialized');
    assert.deepEqual(await cliJson<Status>('operator', 'status'), { Initialized: false, Sealed: true, Progress: 0, Threshold: 0 });
    assert.match(await cliFails('operator', 'unseal', 'AAAA'), /NotInitializedException/);
  });

  it('refuses share schemes that do not split trust', async () => {
    assert.match(await cliFails('operator', 'init', '--shares', '3', '--threshold', '4'), /ValidationException: Threshold/);
    assert.match(await cliFails('operator', 'init', '--shares', '3', '--threshold', '1'), /ValidationException/);
  });

  it('init prints N shares and the root credentials once, and writes none of it to disk', async () => {
    const result = await cliJson<{ Shares: string[]; AccessKeyId: string; SecretAccessKey: string }>(
      'operator', 'init', '--shares', '5', '--threshold', '3');
    assert.deepEqual(Object.keys(result).sort(), ['AccessKeyId', 'SecretAccessKey', 'Shares']);
    assert.equal(result.Shares.length, 5);
    assert.equal(new Set(result.Shares).size, 5);
    shares = result.Shares;
    credentials = { accessKeyId: result.AccessKeyId, secretAccessKey: result.SecretAccessKey };
    const secrets = [result.SecretAccessKey, ...shares, ...shares.map((share) => Buffer.from(share, 'base64').toString('hex'))];
    for (const name of readdirSync(home)) {
      const path = join(home, name);
      if (!statSync(path).isFile()) continue;
      const content = readFileSync(path);
      for (const secret of secrets) assert.equal(content.includes(secret), false, `${name} holds a secret from init`);
      for (const share of shares) assert.equal(content.includes(Buffer.from(share, 'base64')), false, `${name} holds a raw share`);
    }
    assert.match(await cliFails('operator', 'init', '--shares', '3', '--threshold', '2'), /AlreadyInitializedException/);
    assert.deepEqual(await cliJson<Status>('operator', 'status'), { Initialized: true, Sealed: false, Progress: 0, Threshold: 3 });
  });

  let ciphertext: Uint8Array;
  let keyId: string;

  it('serves keys once initialised, with the root credentials init returned', async () => {
    const client = kms();
    const created = await rawKmsRequest(server, { target: 'TrentService.CreateKey', credentials });
    keyId = String((created.json.KeyMetadata as { KeyId: string }).KeyId);
    ciphertext = (await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('before the restart') }))).CiphertextBlob!;
    client.destroy();
  });

  it('after a restart every API answers sealed: KMSInternalException on AWS KMS, 503 on trustplane APIs', async () => {
    assert.equal(await server.stop(), 0);
    server = await startTestServer({ dev: false, home });
    assert.deepEqual(await cliJson<Status>('operator', 'status'), { Initialized: true, Sealed: true, Progress: 0, Threshold: 3 });
    const reported = await health();
    assert.equal(reported.status, 503);
    assert.equal(reported.body.status, 'sealed');
    // Every registered operation: the registries are read, not copied.
    const targets = [...kmsOperations({} as KeyService), ...iamOperations({} as IdentityService)].map((operation) => operation.target);
    assert.ok(targets.length > 40);
    for (const target of [...targets, 'TrustPlaneOperator.Seal', 'TrustPlaneOperator.RotateDomainKey']) {
      const reply = await rawKmsRequest(server, { target, credentials, body: '{}' });
      if (target.startsWith('TrentService.')) {
        assert.equal(reply.status, 500, target);
        assert.equal(reply.json.__type, 'KMSInternalException', target);
      } else {
        assert.equal(reply.status, 503, target);
        assert.equal(reply.json.__type, 'ServiceSealedException', target);
      }
      assert.match(String(reply.json.message), /sealed/, target);
    }
    await assert.rejects(kms().send(new DecryptCommand({ CiphertextBlob: ciphertext })), { name: 'KMSInternalException', message: /sealed/ });
  });

  it('unseals with K distinct shares; duplicates do not count, malformed and wrong shares are refused without saying which', async () => {
    assert.match(await cliFails('operator', 'unseal', 'not a share'), /InvalidShareException: The unseal share is malformed/);
    assert.deepEqual(await cliJson<Status>('operator', 'unseal', shares[0]!), { Initialized: true, Sealed: true, Progress: 1, Threshold: 3 });
    assert.match(await cliFails('operator', 'unseal', shares[0]!), /DuplicateShareException/);
    assert.equal((await cliJson<Status>('operator', 'status')).Progress, 1);
    // A well-formed share that is wrong: one byte of a real share changed.
    const wrong = Buffer.from(shares[1]!, 'base64');
    wrong[5] = (wrong[5]! + 1) % 256;
    assert.equal((await cliJson<Status>('operator', 'unseal', wrong.toString('base64'))).Progress, 2);
    assert.match(await cliFails('operator', 'unseal', shares[2]!), /InvalidShareException: The 3 shares submitted do not rebuild the root key: at least one is wrong/);
    assert.deepEqual(await cliJson<Status>('operator', 'status'), { Initialized: true, Sealed: true, Progress: 0, Threshold: 3 });
    // The human form shows progress as K/N.
    assert.match(await cli('operator', 'unseal', shares[4]!), /progress 1\/3/);
    assert.match(await cli('operator', 'unseal', '--reset'), /progress 0\/3/);
    // Shares from standard input work the same; any 3 of the 5 unseal.
    for (const share of [shares[4]!, shares[1]!]) {
      await trustplane(['operator', 'unseal', '--endpoint', server.url, '--json'], { env: cliEnv(server), input: `${share}\n` });
    }
    const unsealed = await cliJson<Status>('operator', 'unseal', shares[3]!);
    assert.deepEqual(unsealed, { Initialized: true, Sealed: false, Progress: 0, Threshold: 3 });
    const client = kms();
    const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: ciphertext }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'before the restart');
    client.destroy();
    assert.equal((await health()).body.status, 'ok');
  });

  it('seal needs a management principal, and drops every domain key from memory', async () => {
    assert.match(await cliFails('operator', 'seal'), /MissingCredentials|UnrecognizedClientException|credentials/i);
    // Rebuild the domain key from the shares and the store, so the process memory can be searched for it.
    const rootKey = Buffer.from(await combine(shares.slice(0, 3).map((share) => new Uint8Array(Buffer.from(share, 'base64')))));
    const row = readDomainKeys(home).find((key) => key.state === 'active')!;
    // The stored layout, read here rather than through the module: version byte, 12-byte nonce, ciphertext, 16-byte tag.
    const domainKey = aesGcmDecrypt(rootKey, row.wrapped.subarray(1, 13), row.wrapped.subarray(13, row.wrapped.length - 16),
      row.wrapped.subarray(row.wrapped.length - 16), Buffer.from(`trustplane/domain-key/v1/${row.id}`));
    const pid = server.process.pid!;
    assert.equal(processMemoryContains(pid, domainKey), true, 'control: the unsealed server holds its domain key');
    const sealed = JSON.parse(await trustplane(['operator', 'seal', '--endpoint', server.url, '--json'], { env: cliEnv(server, credentials) })) as Status;
    assert.equal(sealed.Sealed, true);
    // The collection that cleanses cipher contexts runs a turn after the seal; a status call is a turn later still.
    assert.equal((await cliJson<Status>('operator', 'status')).Sealed, true);
    assert.equal(processMemoryContains(pid, domainKey), false, 'a domain key is still in memory after seal');
    assert.equal(processMemoryContains(pid, rootKey), false, 'the root key is still in memory after seal');
    domainKey.fill(0);
    rootKey.fill(0);
    await assert.rejects(kms().send(new DecryptCommand({ CiphertextBlob: ciphertext })), { name: 'KMSInternalException' });
  });
});

describe('shares encrypted to their holders (age)', () => {
  let server: TestServer;
  let dir: string;
  before(async () => {
    server = await startTestServer({ dev: false });
    dir = server.home;
  });
  after(async () => { await server?.dispose(); });

  it('returns each share encrypted to its own recipient, and unseals from the encrypted shares', async () => {
    const age = await import('age-encryption');
    const identities = await Promise.all([1, 2, 3].map(() => age.generateIdentity()));
    const recipients = await Promise.all(identities.map((identity) => age.identityToRecipient(identity)));
    const cli = (args: string[], input?: string) => trustplane([...args, '--endpoint', server.url], { env: cliEnv(server), input });
    await assert.rejects(cli(['operator', 'init', '--shares', '3', '--threshold', '2', '--recipient', recipients[0]!]),
      (error: { stderr: string }) => /ValidationException: Give one recipient per share/.test(error.stderr));
    await assert.rejects(cli(['operator', 'init', '--shares', '2', '--threshold', '2', '--recipient', 'age1nonsense', '--recipient', recipients[1]!]),
      (error: { stderr: string }) => /ValidationException: Recipient 1 is not an age public key/.test(error.stderr));
    assert.equal((JSON.parse(await cli(['operator', 'status', '--json'])) as Status).Initialized, false, 'refused inits store nothing');

    const init = JSON.parse(await cli(['operator', 'init', '--threshold', '2', '--json', ...recipients.flatMap((r) => ['--recipient', r])])) as { Shares: string[] };
    assert.equal(init.Shares.length, 3);
    const plainShares: string[] = [];
    for (const [index, armored] of init.Shares.entries()) {
      assert.match(armored, /^-----BEGIN AGE ENCRYPTED FILE-----/);
      const decrypter = new age.Decrypter();
      decrypter.addIdentity(identities[index]!);
      plainShares.push(await decrypter.decrypt(age.armor.decode(armored), 'text'));
      // Only its own holder can open it.
      const other = new age.Decrypter();
      other.addIdentity(identities[(index + 1) % 3]!);
      await assert.rejects(other.decrypt(age.armor.decode(armored), 'text'));
    }
    for (const share of plainShares) assert.equal(Buffer.from(share, 'base64').length, 33);

    await server.stop();
    server = await startTestServer({ dev: false, home: dir });
    for (const index of [2, 0]) {
      const identityFile = join(dir, `holder-${index}.key`);
      (await import('node:fs')).writeFileSync(identityFile, `# holder ${index}\n${identities[index]}\n`, { mode: 0o600 });
      await cli(['operator', 'unseal', '--identity', identityFile, '--json'], init.Shares[index]);
    }
    assert.deepEqual(JSON.parse(await cli(['operator', 'status', '--json'])), { Initialized: true, Sealed: false, Progress: 0, Threshold: 2 });
  });

  it('limits calls without credentials per source address', async () => {
    const replies = await Promise.all(Array.from({ length: 80 }, () => fetch(`${server.url}/v1/operator/status`)
      .then(async (response) => ({ status: response.status, type: (await response.json() as { __type?: string }).__type }))));
    const throttled = replies.filter((reply) => reply.type === 'ThrottlingException');
    assert.ok(throttled.length >= 20, `${throttled.length} of 80 throttled`);
    assert.ok(replies.filter((reply) => reply.status === 200).length >= 40);
  });
});

describe('an init that crashed before its root account was made', () => {
  let server: TestServer | undefined;
  after(async () => { await server?.dispose(); });

  it('is started over by the next init, and a home with anything in it never is', async () => {
    // The state such a crash leaves: the module committed (domain key, shares' threshold), no account.
    const home = (await import('../../helpers/server.ts')).makeTempDir();
    const store = SqliteStore.open(join(home, 'trustplane.db'));
    await store.initMeta('region', 'us-east-1');
    await store.initMeta('account-id', '123456789012');
    const module = new SoftwareCryptoModule(store);
    await module.initialize(randomBytes(32), { 'shamir-threshold': Buffer.from('2'), 'shamir-shares': Buffer.from('3') });
    module.seal();
    await store.close();

    server = await startTestServer({ dev: false, home });
    const cli = (...args: string[]) => trustplane([...args, '--endpoint', server!.url, '--json'], { env: cliEnv(server!) });
    assert.deepEqual(JSON.parse(await cli('operator', 'status')), { Initialized: true, Sealed: true, Progress: 0, Threshold: 2 });
    const init = JSON.parse(await cli('operator', 'init', '--shares', '2', '--threshold', '2')) as { Shares: string[]; AccessKeyId: string };
    assert.equal(init.Shares.length, 2);
    assert.match(init.AccessKeyId, /^AKTP/);
    // Now it has an account and wrapped secrets: init refuses, whatever happens to the module.
    await assert.rejects(cli('operator', 'init', '--shares', '2', '--threshold', '2'),
      (error: { stderr: string }) => /AlreadyInitializedException/.test(error.stderr));
    await server.stop();
    server = await startTestServer({ dev: false, home });
    await cli('operator', 'unseal', init.Shares[1]!);
    assert.deepEqual(JSON.parse(await cli('operator', 'unseal', init.Shares[0]!)), { Initialized: true, Sealed: false, Progress: 0, Threshold: 2 });
  });
});

