// A real `trustplane server --seal pkcs11` against SoftHSM2 tokens: init, restart, two servers on
// one token, a token that goes away and comes back, a wrong PIN, and an operator seal that sticks.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, type KMSClient } from '@aws-sdk/client-kms';
import { makeTempDir, startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { operatorCall, type Credentials } from '../../helpers/iam-client.ts';
import { health, initializeOverApi, operatorPost } from '../../helpers/operator.ts';
import { cliEnv, trustplaneJson } from '../../helpers/cli.ts';
import { readDomainKeys } from '../../helpers/domain-keys.ts';
import { createSoftHsmToken, locateSoftHsm, type SoftHsmToken } from '../../helpers/softhsm.ts';

const located = await locateSoftHsm();

/** Seconds between the server's scheduled runs, which retry a token that went away. */
const SCHEDULE_INTERVAL_SECONDS = 1;
/** How long a test waits for the server's background recovery before it fails. */
const RECOVERY_BOUND_MS = 20_000;

interface OperatorStatus {
  Initialized: boolean;
  Sealed: boolean;
  Progress: number;
  Threshold: number;
  Shares: number;
  Module: string;
  SealedReason?: string;
}

async function operatorStatus(server: TestServer): Promise<OperatorStatus> {
  const response = await fetch(`${server.url}/v1/operator/status`);
  assert.equal(response.status, 200);
  return await response.json() as OperatorStatus;
}

/** Initialises a PKCS#11 server over the operator API and returns the root credentials it answers once. */
async function initialize(server: TestServer): Promise<Credentials> {
  const { credentials, json } = await initializeOverApi(server);
  assert.deepEqual(json.Shares, []);
  assert.equal(json.Threshold, 0);
  return credentials;
}

/** Polls the operator status until `done` holds; fails with the last status and the server's output after the bound. */
async function waitForStatus(server: TestServer, what: string, done: (status: OperatorStatus) => boolean): Promise<OperatorStatus> {
  const deadline = Date.now() + RECOVERY_BOUND_MS;
  for (;;) {
    const status = await operatorStatus(server);
    if (done(status)) return status;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not within ${RECOVERY_BOUND_MS} ms; last status ${JSON.stringify(status)}\nserver output:\n${server.output()}`);
    }
    await delay(100);
  }
}

/** Polls the operator status for `intervals` scheduled runs (and a little more), failing if `holds` ever stops holding. */
async function assertHoldsForIntervals(server: TestServer, intervals: number, what: string, holds: (status: OperatorStatus) => boolean): Promise<void> {
  const until = Date.now() + (intervals + 0.5) * SCHEDULE_INTERVAL_SECONDS * 1000;
  let polls = 0;
  while (Date.now() < until) {
    const status = await operatorStatus(server);
    assert.ok(holds(status), `${what}: ${JSON.stringify(status)} after ${polls} polls`);
    polls += 1;
    await delay(100);
  }
  assert.ok(polls >= intervals, `${what}: polled only ${polls} times`);
}

async function encrypt(client: KMSClient, keyId: string, plaintext: string): Promise<Uint8Array> {
  return (await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from(plaintext) }))).CiphertextBlob!;
}

async function decrypt(client: KMSClient, ciphertext: Uint8Array): Promise<string> {
  return Buffer.from((await client.send(new DecryptCommand({ CiphertextBlob: ciphertext }))).Plaintext!).toString();
}

async function createKey(client: KMSClient): Promise<string> {
  return (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
}

// Every test has its own token, home and servers, so they run at once: most of the time is spent
// watching scheduled intervals go by.
describe('trustplane server with the PKCS#11 crypto module on SoftHSM2', { skip: located.skip, concurrency: true }, () => {
  const servers: TestServer[] = [];
  const clients: KMSClient[] = [];
  const tokens: SoftHsmToken[] = [];
  const homes: string[] = [];

  after(async () => {
    for (const client of clients) client.destroy();
    for (const server of servers) await server.dispose();
    for (const token of tokens) token.dispose();
    for (const home of homes) rmSync(home, { recursive: true, force: true });
  });

  async function newToken(): Promise<SoftHsmToken> {
    const token = await createSoftHsmToken();
    tokens.push(token);
    return token;
  }

  function newHome(): string {
    const home = makeTempDir();
    homes.push(home);
    return home;
  }

  /** A production-style server on `token`; the PIN from TRUSTPLANE_PKCS11_PIN unless a PIN file is given. */
  async function startPkcs11Server(token: SoftHsmToken, home: string,
    options: { pinFile?: string; extraArgs?: string[] } = {}): Promise<TestServer> {
    const server = await startTestServer({ dev: false, home,
      extraArgs: ['--seal', 'pkcs11', '--pkcs11-module', token.libraryPath, '--pkcs11-token', token.label,
        '--schedule-interval', String(SCHEDULE_INTERVAL_SECONDS),
        ...(options.pinFile ? ['--pkcs11-pin-file', options.pinFile] : []), ...(options.extraArgs ?? [])],
      // An empty variable counts as unset, so the PIN file is what the server reads.
      env: { ...token.env, TRUSTPLANE_PKCS11_PIN: options.pinFile ? '' : token.pin } });
    servers.push(server);
    return server;
  }

  function client(server: TestServer, credentials: Credentials): KMSClient {
    const made = kmsClient(server, credentials);
    clients.push(made);
    return made;
  }

  it('initialises through the CLI, keeps its domain key in the token, and unseals itself after a restart', async () => {
    const token = await newToken();
    const home = newHome();
    let server = await startPkcs11Server(token, home);
    const cliJson = <T>(...args: string[]) => trustplaneJson<T>([...args, '--endpoint', server.url, '--json'], { env: cliEnv(server) });

    const fresh = await operatorStatus(server);
    assert.equal(fresh.Module, 'pkcs11');
    assert.equal(fresh.Initialized, false);
    assert.equal(fresh.Sealed, true);
    assert.deepEqual(await cliJson('operator', 'status'), { Initialized: false, Sealed: true, Progress: 0, Threshold: 0 });
    const refused = await operatorPost(server, 'init', { Shares: 3, Threshold: 2 });
    assert.equal(refused.code, 400);
    assert.equal(refused.json.__type, 'ValidationException');

    const initialized = await cliJson<{ Shares: string[]; AccessKeyId: string; SecretAccessKey: string }>('operator', 'init');
    assert.deepEqual(initialized.Shares, []);
    assert.ok(initialized.AccessKeyId && initialized.SecretAccessKey);
    const credentials = { accessKeyId: initialized.AccessKeyId, secretAccessKey: initialized.SecretAccessKey };
    assert.deepEqual(await cliJson('operator', 'status'), { Initialized: true, Sealed: false, Progress: 0, Threshold: 0 });

    const domainKeys = readDomainKeys(home);
    assert.equal(domainKeys.length, 1);
    assert.equal(domainKeys[0]!.module, 'pkcs11');
    assert.equal(domainKeys[0]!.state, 'active');
    assert.equal(domainKeys[0]!.wrapped.length, 0, 'a token-held domain key leaves nothing wrapped in the store');

    let kms = client(server, credentials);
    const keyId = await createKey(kms);
    const ciphertext = await encrypt(kms, keyId, 'sealed by the token');

    assert.equal(await server.stop(), 0);
    server = await startPkcs11Server(token, home);
    // No unseal call: the server logs in to its token at start.
    const restarted = await operatorStatus(server);
    assert.equal(restarted.Initialized, true);
    assert.equal(restarted.Sealed, false, JSON.stringify(restarted));
    assert.equal((await health(server)).body.status, 'ok');
    kms = client(server, credentials);
    assert.equal(await decrypt(kms, ciphertext), 'sealed by the token');
    assert.deepEqual(readDomainKeys(home).map((key) => [key.id, key.state]), [[domainKeys[0]!.id, 'active']]);
  });

  it('two servers on one home and one token serve each other\'s keys and ciphertexts', async () => {
    const token = await newToken();
    const home = newHome();
    const serverA = await startPkcs11Server(token, home);
    const credentials = await initialize(serverA);
    const serverB = await startPkcs11Server(token, home);
    assert.notEqual(serverA.url, serverB.url);
    assert.equal((await operatorStatus(serverB)).Sealed, false);
    const kmsA = client(serverA, credentials);
    const kmsB = client(serverB, credentials);

    const keyA = await createKey(kmsA);
    const fromA = await encrypt(kmsA, keyA, 'made through A');
    assert.equal(await decrypt(kmsB, fromA), 'made through A');

    const keyB = await createKey(kmsB);
    const fromB = await encrypt(kmsB, keyB, 'made through B');
    assert.equal(await decrypt(kmsA, fromB), 'made through B');
    // And a key made on one side encrypts on the other.
    assert.equal(await decrypt(kmsA, await encrypt(kmsB, keyA, 'key of A, through B')), 'key of A, through B');
  });

  it('seals when the token goes away, stays up and says why, and unseals by itself when it comes back', async () => {
    const token = await newToken();
    const server = await startPkcs11Server(token, newHome(), { extraArgs: ['--key-cache-ttl', '0'] });
    const kms = client(server, await initialize(server));
    const keyId = await createKey(kms);
    const ciphertext = await encrypt(kms, keyId, 'outlives the token');
    assert.equal(await decrypt(kms, ciphertext), 'outlives the token');

    token.remove();
    await assert.rejects(decrypt(kms, ciphertext), { name: 'KMSInternalException', message: /sealed/ });
    assert.ok(server.isRunning(), `the server exited when its token went away:\n${server.output()}`);
    const sealed = await health(server);
    assert.equal(sealed.status, 503);
    assert.equal(sealed.body.status, 'sealed');
    assert.match(sealed.body.sealedReason ?? '', /PKCS#11 token/);
    const status = await operatorStatus(server);
    assert.equal(status.Sealed, true);
    assert.match(status.SealedReason ?? '', /PKCS#11 token/);
    await assert.rejects(encrypt(kms, keyId, 'while the token is away'), { name: 'KMSInternalException', message: /sealed/ });

    token.restore();
    await waitForStatus(server, 'unsealed after the token came back', (current) => !current.Sealed);
    assert.equal((await health(server)).body.status, 'ok');
    assert.equal(await decrypt(kms, ciphertext), 'outlives the token');
    assert.equal(await decrypt(kms, await encrypt(kms, keyId, 'after the token came back')), 'after the token came back');
    assert.ok(server.isRunning());
  });

  it('with a wrong PIN starts sealed, says the login was refused, stays sealed, and prints no PIN', async () => {
    const token = await newToken();
    const home = newHome();
    const first = await startPkcs11Server(token, home);
    await initialize(first);
    assert.equal(await first.stop(), 0);

    const wrongPin = `${token.pin.slice(0, -1)}${token.pin.endsWith('0') ? '1' : '0'}`;
    const pinFile = join(newHome(), 'pin');
    writeFileSync(pinFile, `${wrongPin}\n`, { mode: 0o600 });
    const server = await startPkcs11Server(token, home, { pinFile });

    const status = await operatorStatus(server);
    assert.equal(status.Initialized, true);
    assert.equal(status.Sealed, true);
    assert.match(status.SealedReason ?? '', /refused the login/);
    const reported = await health(server);
    assert.equal(reported.status, 503);
    assert.equal(reported.body.status, 'sealed');
    assert.match(reported.body.sealedReason ?? '', /refused the login/);
    assert.match(server.output(), /refused the login/);
    // Neither the background reopen nor an unseal call gets past a refused PIN. (Whether they try the
    // PIN again cannot be seen from here: SoftHSM2 keeps no count of failed logins.)
    await assertHoldsForIntervals(server, 2, 'still sealed with a wrong PIN', (current) => current.Sealed);
    const unseal = await operatorPost(server, 'unseal', {});
    assert.equal(unseal.code, 503);
    assert.equal(unseal.json.__type, 'UnsealFailedException');
    assert.match(String(unseal.json.message), /refused the login/);

    for (const pin of [wrongPin, token.pin]) {
      assert.equal(server.output().includes(pin), false, 'the server printed a PIN');
      assert.equal(first.output().includes(pin), false, 'the server printed a PIN');
      assert.equal(JSON.stringify([status, reported.body, unseal.json]).includes(pin), false, 'an answer carries a PIN');
    }
  });

  it('an operator seal is undone neither by the background reopen nor by an anonymous unseal, only by a restart', async () => {
    const token = await newToken();
    const home = newHome();
    const server = await startPkcs11Server(token, home);
    const credentials = await initialize(server);
    const kms = client(server, credentials);
    const ciphertext = await encrypt(kms, await createKey(kms), 'kept through a seal');

    const sealed = await operatorCall<OperatorStatus>(server, credentials, 'Seal');
    assert.equal(sealed.Sealed, true);
    await assertHoldsForIntervals(server, 3, 'sealed by the operator', (current) => current.Sealed && current.Initialized);
    await assert.rejects(decrypt(kms, ciphertext), { name: 'KMSInternalException', message: /sealed/ });

    const unsealed = await operatorPost(server, 'unseal', {});
    assert.equal(unsealed.code, 409, JSON.stringify(unsealed.json));
    assert.equal(unsealed.json.__type, 'SealedByOperatorException');
    assert.equal((await operatorStatus(server)).Sealed, true);

    await server.stop();
    const restarted = await startPkcs11Server(token, home);
    assert.equal((await operatorStatus(restarted)).Sealed, false);
    const restartedKms = client(restarted, credentials);
    assert.equal(await decrypt(restartedKms, ciphertext), 'kept through a seal');
  });
});
