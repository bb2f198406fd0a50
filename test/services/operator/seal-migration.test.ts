// `trustplane operator migrate-seal`: software module -> PKCS#11 token (SoftHSM2) -> software
// again, on a stopped server's home, with every customer key unchanged across the round trip.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateKeyCommand, DecryptCommand, EncryptCommand, GenerateMacCommand, GetPublicKeyCommand, VerifyMacCommand,
} from '@aws-sdk/client-kms';
import { makeTempDir, startTestServer, type TestServer } from '../../helpers/server.ts';
import { createSoftHsmToken, locateSoftHsm, type SoftHsmToken } from '../../helpers/softhsm.ts';
import { cliEnv, trustplane as runTrustplane } from '../../helpers/cli.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { readDomainKeys } from '../../helpers/domain-keys.ts';

const softHsm = await locateSoftHsm();

interface Status { Initialized: boolean; Sealed: boolean; Progress: number; Threshold: number }

function domainKeyModules(home: string): string[] {
  return readDomainKeys(home).filter((key) => key.state !== 'retired').map((key) => key.module);
}

describe('seal migration between the software module and a PKCS#11 token', { skip: softHsm.skip }, () => {
  let token: SoftHsmToken;
  let home: string;
  let server: TestServer | undefined;
  let credentials: { accessKeyId: string; secretAccessKey: string };
  let shares: string[];
  const pkcs11Flags = () => ['--pkcs11-module', token.libraryPath, '--pkcs11-token', token.label];

  // Every command (on the home or the server) gets the token's configuration and PIN.
  const trustplane = (args: string[], input?: string) =>
    runTrustplane(args, { env: { ...cliEnv(server!), ...token.env, TRUSTPLANE_PKCS11_PIN: token.pin }, input });
  const kms = () => kmsClient(server!, credentials);

  before(async () => {
    token = await createSoftHsmToken();
    home = makeTempDir();
  });
  after(async () => {
    await server?.dispose();
    token?.dispose();
  });

  let ciphertext: Uint8Array;
  let macKeyId: string;
  let mac: Uint8Array;
  let signingKeyId: string;
  let publicKey: Uint8Array;

  it('starts on the software module with shares and some keys of each kind', async () => {
    server = await startTestServer({ dev: false, home, env: token.env });
    const init = JSON.parse(await trustplane(['operator', 'init', '--shares', '3', '--threshold', '2', '--json', '--endpoint', server.url])) as
      { Shares: string[]; AccessKeyId: string; SecretAccessKey: string };
    shares = init.Shares;
    credentials = { accessKeyId: init.AccessKeyId, secretAccessKey: init.SecretAccessKey };
    const client = kms();
    const keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    ciphertext = (await client.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('survives two migrations') }))).CiphertextBlob!;
    macKeyId = (await client.send(new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' }))).KeyMetadata!.KeyId!;
    mac = (await client.send(new GenerateMacCommand({ KeyId: macKeyId, Message: Buffer.from('m'), MacAlgorithm: 'HMAC_SHA_256' }))).Mac!;
    signingKeyId = (await client.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'SIGN_VERIFY' }))).KeyMetadata!.KeyId!;
    publicKey = (await client.send(new GetPublicKeyCommand({ KeyId: signingKeyId }))).PublicKey!;
    client.destroy();
    assert.deepEqual(domainKeyModules(home), ['software']);
  });

  it('refuses to migrate under a running server', async () => {
    await assert.rejects(trustplane(['operator', 'migrate-seal', '--to', 'pkcs11', '--home', home, ...pkcs11Flags()], `${shares[0]}\n${shares[1]}\n`),
      (error: { stderr: string }) => /ServerRunning/.test(error.stderr));
    assert.deepEqual(domainKeyModules(home), ['software']);
  });

  const assertKeysUnchanged = async () => {
    const client = kms();
    const decrypted = await client.send(new DecryptCommand({ CiphertextBlob: ciphertext }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'survives two migrations');
    const verified = await client.send(new VerifyMacCommand({ KeyId: macKeyId, Message: Buffer.from('m'), MacAlgorithm: 'HMAC_SHA_256', Mac: mac }));
    assert.equal(verified.MacValid, true);
    assert.deepEqual((await client.send(new GetPublicKeyCommand({ KeyId: signingKeyId }))).PublicKey, publicKey);
    client.destroy();
  };

  it('moves to the PKCS#11 token with wrong shares refused, and the token server unseals itself', async () => {
    await server!.stop();
    const wrong = Buffer.from(shares[1]!, 'base64');
    wrong[3] = (wrong[3]! + 1) % 256;
    await assert.rejects(trustplane(['operator', 'migrate-seal', '--to', 'pkcs11', '--home', home, ...pkcs11Flags()], `${shares[0]}\n${wrong.toString('base64')}\n`),
      (error: { stderr: string }) => /InvalidShareException/.test(error.stderr));
    assert.deepEqual(domainKeyModules(home), ['software'], 'a refused migration changes nothing');

    const migrated = JSON.parse(await trustplane(['operator', 'migrate-seal', '--to', 'pkcs11', '--home', home, '--json', ...pkcs11Flags()],
      `${shares[2]}\n${shares[0]}\n`)) as { From: string; To: string; Rewrapped: number; Shares: string[] };
    assert.deepEqual({ ...migrated, Rewrapped: migrated.Rewrapped > 3 }, { From: 'software', To: 'pkcs11', Rewrapped: true, Shares: [] });
    assert.deepEqual(domainKeyModules(home), ['pkcs11']);

    server = await startTestServer({ dev: false, home, env: { ...token.env, TRUSTPLANE_PKCS11_PIN: token.pin },
      extraArgs: ['--seal', 'pkcs11', ...pkcs11Flags()] });
    const status = JSON.parse(await trustplane(['operator', 'status', '--json', '--endpoint', server.url])) as Status;
    assert.deepEqual(status, { Initialized: true, Sealed: false, Progress: 0, Threshold: 0 });
    await assertKeysUnchanged();
  });

  it('moves back to the software module under new shares; the old shares no longer unseal', async () => {
    await server!.stop();
    const migrated = JSON.parse(await trustplane(['operator', 'migrate-seal', '--to', 'software', '--home', home, '--shares', '3',
      '--threshold', '2', '--json', ...pkcs11Flags()])) as { From: string; To: string; Shares: string[] };
    assert.equal(migrated.From, 'pkcs11');
    assert.equal(migrated.Shares.length, 3);
    assert.deepEqual(domainKeyModules(home), ['software']);

    server = await startTestServer({ dev: false, home });
    const cli = (...args: string[]) => trustplane([...args, '--endpoint', server!.url]);
    await cli('operator', 'unseal', shares[0]!);
    await assert.rejects(cli('operator', 'unseal', shares[1]!), (error: { stderr: string }) => /InvalidShareException/.test(error.stderr));
    await cli('operator', 'unseal', migrated.Shares[2]!);
    const status = JSON.parse(await cli('operator', 'unseal', migrated.Shares[0]!, '--json')) as Status;
    assert.deepEqual(status, { Initialized: true, Sealed: false, Progress: 0, Threshold: 2 });
    await assertKeysUnchanged();
  });
});
