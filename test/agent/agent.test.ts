// Real agent processes against a real server: enrolment, socket crypto interoperating with the key
// service, pushed grants, two-phase rotation with a stopped agent, forced promotion, server and
// agent restarts, revocation wiping the cache, and refused certificates.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { generateKeyPairSync } from 'node:crypto';
import { CreateKeyCommand, DecryptCommand, EncryptCommand, VerifyMacCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { kmsClient } from '../helpers/kms-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { freePort, heldVersions, startTestAgent, type TestAgent } from '../helpers/agent.ts';
import { parseCiphertextBlob, createCertificateAuthority, issueCertificate, certificateToPem, privateKeyToPem } from '../../src/shared/crypto/index.ts';
import { fleetServerName, hostUri } from '../../src/shared/fleet-wire.ts';

interface RotationView { KeyId: string; PendingVersion: number | null; DefaultVersion: number; State: string; Acknowledged: string[]; Missing: string[]; LeftBehind?: string[] }

describe('host agent against a real server', () => {
  let server: TestServer;
  let port: number;
  const home = makeTempDir();
  let env: NodeJS.ProcessEnv;
  let kms: KMSClient;
  let appKey: string;
  let joinToken: string;
  const agents: TestAgent[] = [];
  let agentA: TestAgent;
  let agentB: TestAgent;
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const start = async () => {
    server = await startTestServer({ home, extraArgs: ['--listen', `127.0.0.1:${port}`, '--fleet-listen', '127.0.0.1:0'] });
    env = cliEnv(server);
    kms?.destroy();
    kms = kmsClient(server);
  };
  const agent = async (options: { joinToken?: string; stateDir?: string; name?: string }) => {
    const started = await startTestAgent({ serverUrl: server.url, ...options });
    agents.push(started);
    return started;
  };
  const rotation = (key: string) => json<RotationView>('rotation', 'status', key);

  before(async () => {
    port = await freePort();
    await start();
    appKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await trustplane('key', 'alias', 'create', 'alias/app', appKey);
    await trustplane('class', 'create', 'web');
    await trustplane('class', 'create', 'jp', '--parent', 'web');
    await trustplane('class', 'grant-key', 'web', appKey);
    joinToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'web/jp', '--uses', '2')).Token;
  });
  after(async () => {
    for (const running of agents) await running.stop();
    kms?.destroy();
    await server?.dispose();
  });

  it('enrols, and its socket crypto interoperates with the key service', async () => {
    agentA = await agent({ joinToken, name: 'web-a' });
    const status = await agentA.waitFor((view) => heldVersions(view, appKey).includes(1), 'the inherited key');
    assert.equal(status.HostId, agentA.hostId);
    assert.deepEqual(status.Keys.find((key) => key.KeyId === appKey)?.Aliases, ['alias/app']);

    // Agent encrypts (by alias), the server decrypts; the server encrypts, the agent decrypts.
    const context = { purpose: 'test' };
    const local = await agentA.client.call<{ CiphertextBlob: string }>('Encrypt', { KeyId: 'alias/app', Plaintext: Buffer.from('from the agent'), EncryptionContext: context });
    const opened = await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(local.CiphertextBlob, 'base64'), EncryptionContext: context }));
    assert.equal(Buffer.from(opened.Plaintext!).toString(), 'from the agent');
    const remote = await kms.send(new EncryptCommand({ KeyId: appKey, Plaintext: Buffer.from('from the server'), EncryptionContext: context }));
    const decrypted = await agentA.client.call<{ Plaintext: string }>('Decrypt', { CiphertextBlob: Buffer.from(remote.CiphertextBlob!), EncryptionContext: context });
    assert.equal(Buffer.from(decrypted.Plaintext, 'base64').toString(), 'from the server');
    const dataKey = await agentA.client.call<{ CiphertextBlob: string; Plaintext: string }>('GenerateDataKey', { KeyId: appKey, KeySpec: 'AES_256' });
    const unwrapped = await kms.send(new DecryptCommand({ CiphertextBlob: Buffer.from(dataKey.CiphertextBlob, 'base64') }));
    assert.deepEqual(Buffer.from(unwrapped.Plaintext!), Buffer.from(dataKey.Plaintext, 'base64'));

    // Wrong context, malformed and unknown requests: typed errors.
    await assert.rejects(agentA.client.call('Decrypt', { CiphertextBlob: Buffer.from(remote.CiphertextBlob!) }), { name: 'InvalidCiphertextException' });
    await assert.rejects(agentA.client.call('Encrypt', { KeyId: appKey }), { name: 'ValidationException' });
    await assert.rejects(agentA.client.call('Encrypt', { KeyId: 'alias/nope', Plaintext: Buffer.from('x') }), { name: 'NotFoundException' });
    await assert.rejects(agentA.client.call('Frobnicate', {}), { name: 'UnknownOperationException' });

    // The CLI's --agent path gives the same format: the server decrypts the file's data key.
    const dir = makeTempDir();
    await runTrustplane(['encrypt', '/etc/hostname', `${dir}/f.enc`, '--key', 'alias/app', '--agent', agentA.socketPath, '--no-progress'], { env });
    await trustplane('decrypt', `${dir}/f.enc`, `${dir}/f.out`, '--no-progress');
    assert.ok(existsSync(`${dir}/f.out`));
  });

  it('receives a newly granted key by push, on the connection it already has', async () => {
    const macKey = (await kms.send(new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' }))).KeyMetadata!.KeyId!;
    await trustplane('class', 'grant-key', 'web/jp', macKey);
    await agentA.waitFor((view) => heldVersions(view, macKey).length === 1, 'the pushed HMAC key');
    const mac = await agentA.client.call<{ Mac: string }>('GenerateMac', { KeyId: macKey, Message: Buffer.from('m'), MacAlgorithm: 'HMAC_SHA_256' });
    const verified = await kms.send(new VerifyMacCommand({ KeyId: macKey, Message: Buffer.from('m'), MacAlgorithm: 'HMAC_SHA_256', Mac: Buffer.from(mac.Mac, 'base64') }));
    assert.equal(verified.MacValid, true);
    // Pushed, not fetched on a new connection: the agent connected once.
    assert.equal(agentA.output().match(/connected to the server/g)?.length, 1);
    const hosts = await json<Array<{ HostId: string; Keys: Record<string, number[]> }>>('host', 'list');
    assert.deepEqual(hosts.find((host) => host.HostId === agentA.hostId)?.Keys[macKey], [1]);
  });

  it('holds secret keys: opaque values, fetched whole, rotated through the hosts', async () => {
    const dir = makeTempDir();
    writeFileSync(`${dir}/v1`, 'hunter2');
    const created = await json<{ KeyId: string }>('secret', 'create', '--value-file', `${dir}/v1`, '--alias', 'alias/db-password');
    await trustplane('class', 'grant-key', 'web', 'alias/db-password');
    await agentA.waitFor((view) => heldVersions(view, created.KeyId).includes(1), 'the secret');
    const first = await agentA.client.call<{ SecretValue: string; Version: number }>('GetSecret', { KeyId: 'alias/db-password' });
    assert.deepEqual([Buffer.from(first.SecretValue, 'base64').toString(), first.Version], ['hunter2', 1]);
    await assert.rejects(agentA.client.call('Encrypt', { KeyId: 'alias/db-password', Plaintext: Buffer.from('x') }), { name: 'InvalidKeyUsageException' });

    writeFileSync(`${dir}/v2`, 'correct horse');
    const put = await json<{ Version: number }>('secret', 'put', 'alias/db-password', '--value-file', `${dir}/v2`);
    assert.equal(put.Version, 2);
    // Staged: promoted once the one entitled host acknowledged it.
    await agentA.waitFor((view) => view.Keys.find((key) => key.KeyId === created.KeyId)?.DefaultVersion === 2, 'the new value as default');
    assert.equal(await runTrustplane(['secret', 'get', 'alias/db-password', '--agent', agentA.socketPath], { env }), 'correct horse');
    assert.equal(await trustplane('secret', 'get', 'alias/db-password', '--at-version', '1'), 'hunter2');
  });

  it('rotates in two phases: promotion waits for a stopped agent, which acknowledges when it comes back', async () => {
    agentB = await agent({ joinToken, name: 'web-b' });
    await agentB.waitFor((view) => heldVersions(view, appKey).includes(1), 'the key on the second host');
    await agentB.stop();

    const staged = await json<RotationView>('key', 'rotate', appKey, '--staged');
    assert.deepEqual([staged.State, staged.PendingVersion, staged.DefaultVersion], ['pending', 2, 1]);
    await agentA.waitFor((view) => heldVersions(view, appKey).includes(2), 'the pending version');
    const waiting = await rotation(appKey);
    assert.deepEqual([waiting.State, waiting.Acknowledged, waiting.Missing], ['pending', [agentA.hostId], [agentB.hostId]]);
    // Hosts and server keep encrypting with the default; the pending version already decrypts on the agent.
    const blob = await kms.send(new EncryptCommand({ KeyId: appKey, Plaintext: Buffer.from('x') }));
    assert.equal(parseCiphertextBlob(blob.CiphertextBlob!).keyVersion, 1);
    const local = await agentA.client.call<{ CiphertextBlob: string }>('Encrypt', { KeyId: appKey, Plaintext: Buffer.from('x') });
    assert.equal(parseCiphertextBlob(Buffer.from(local.CiphertextBlob, 'base64')).keyVersion, 1);

    agentB = await agent({ stateDir: agentB.stateDir });
    await agentB.waitFor((view) => heldVersions(view, appKey).includes(2), 'the pending version after restart');
    await agentA.waitFor((view) => view.Keys.find((key) => key.KeyId === appKey)?.DefaultVersion === 2, 'the promotion');
    const promoted = await rotation(appKey);
    assert.deepEqual([promoted.State, promoted.DefaultVersion, promoted.Missing], ['promoted', 2, []]);
    const after = await kms.send(new EncryptCommand({ KeyId: appKey, Plaintext: Buffer.from('x') }));
    assert.equal(parseCiphertextBlob(after.CiphertextBlob!).keyVersion, 2);
  });

  it('promotes by force, naming the hosts left behind in the answer and the audit log', async () => {
    await agentB.stop();
    await json<RotationView>('key', 'rotate', appKey, '--staged');
    await agentA.waitFor((view) => heldVersions(view, appKey).includes(3), 'version 3');
    const refused = await trustplaneFails(['rotation', 'promote', appKey], { env });
    assert.match(refused, /ConflictException.*1 host\(s\) have not acknowledged/);
    const forced = await json<RotationView>('rotation', 'promote', appKey, '--force');
    assert.deepEqual([forced.State, forced.DefaultVersion, forced.LeftBehind], ['promoted', 3, [agentB.hostId]]);
    const records = (await runTrustplane(['audit', 'query', '--home', home, '--operation', 'FleetPromotionLeftHostBehind', '--json'], { env }))
      .trim().split('\n').map((line) => JSON.parse(line) as { resource: string });
    assert.ok(records.some((record) => record.resource.endsWith(`host/${agentB.hostId}`)), 'the left-behind host is audited');
    agentB = await agent({ stateDir: agentB.stateDir });
    await agentB.waitFor((view) => heldVersions(view, appKey).includes(3), 'the version it missed');
  });

  it('reconnects after a server restart and receives what changed', async () => {
    await server.stop();
    await agentA.waitFor((view) => !view.Connected, 'the disconnection');
    await start();
    const later = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await trustplane('class', 'grant-key', 'web', later);
    await agentA.waitFor((view) => view.Connected && heldVersions(view, later).includes(1), 'the key granted after the restart');
  });

  it('serves from its encrypted cache when restarted while the server is down', async () => {
    const before = await agentA.client.call<{ CiphertextBlob: string }>('Encrypt', { KeyId: 'alias/app', Plaintext: Buffer.from('cached') });
    await server.stop();
    await agentA.stop();
    assert.ok(readdirSync(agentA.stateDir).includes('keyring.cache'));
    agentA = await agent({ stateDir: agentA.stateDir });
    const status = await agentA.status();
    assert.equal(status.Connected, false);
    const opened = await agentA.client.call<{ Plaintext: string }>('Decrypt', { CiphertextBlob: before.CiphertextBlob });
    assert.equal(Buffer.from(opened.Plaintext, 'base64').toString(), 'cached');
    await agentA.client.call('Encrypt', { KeyId: 'alias/app', Plaintext: Buffer.from('offline') });
    await start();
    await agentA.waitFor((view) => view.Connected, 'the reconnection');
  });

  it('refuses certificates not issued to a current host, with typed errors', async () => {
    const info = await (await fetch(`${server.url}/v1/fleet/info`)).json() as { FleetPort: number };
    const forgedCa = await createCertificateAuthority('not the fleet CA', 1);
    const hostKeys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const forged = await issueCertificate({ authority: { certificateDer: forgedCa.certificateDer, privateKeyPkcs8: forgedCa.privateKeyPkcs8 },
      subjectPublicKeyDer: hostKeys.publicKey.export({ format: 'der', type: 'spki' }), commonName: agentA.hostId, usage: 'client',
      uris: [hostUri(server.accountId, agentA.hostId)], validityDays: 1 });
    const reply = await new Promise<{ status: number; body: { __type: string } }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: info.FleetPort, path: '/v1/agent/stream', servername: fleetServerName(server.accountId),
        cert: certificateToPem(forged.certificateDer), key: privateKeyToPem(hostKeys.privateKey.export({ format: 'der', type: 'pkcs8' })),
        rejectUnauthorized: false, agent: false }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => { text += chunk.toString(); });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { __type: string } }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual([reply.status, reply.body.__type], [401, 'InvalidHostCertificateException']);
  });

  it('wipes a removed host\'s cache and identity on the next message, and rotates the keys it held', async () => {
    const before = await rotation(appKey);
    await trustplane('host', 'remove', agentB.hostId);
    assert.equal(await agentB.exited, 3);
    assert.deepEqual(readdirSync(agentB.stateDir), []);
    // The removed host held the key: a new version, promoted once the remaining host holds it.
    await agentA.waitFor((view) => view.Keys.find((key) => key.KeyId === appKey)?.DefaultVersion === before.DefaultVersion + 1, 'the rotation after removal');
    const hosts = await json<Array<{ HostId: string }>>('host', 'list');
    assert.deepEqual(hosts.map((host) => host.HostId), [agentA.hostId]);
  });
});

describe('host certificate renewal', () => {
  it('renews at two thirds of the certificate\'s life and keeps receiving keys', { timeout: 90_000 }, async () => {
    const server = await startTestServer({ extraArgs: ['--fleet-listen', '127.0.0.1:0', '--host-certificate-lifetime', '30s'] });
    const env = cliEnv(server);
    let started: TestAgent | undefined;
    try {
      await runTrustplane(['class', 'create', 'short'], { env });
      const token = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'short', '--json'], { env })).Token;
      started = await startTestAgent({ serverUrl: server.url, joinToken: token });
      const agentProcess = started;
      await agentProcess.waitFor(() => /host certificate renewed/.test(agentProcess.output()), 'the renewal', 60_000);
      const kms = kmsClient(server);
      const keyId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
      kms.destroy();
      await runTrustplane(['class', 'grant-key', 'short', keyId], { env });
      await agentProcess.waitFor((view) => view.Connected && heldVersions(view, keyId).includes(1), 'a key pushed over the renewed identity');
      const shown = await trustplaneJson<{ Host: { CertificateExpiresAt: number } }>(['host', 'show', agentProcess.hostId, '--json'], { env });
      assert.ok(shown.Host.CertificateExpiresAt * 1000 > Date.now() + 15_000, 'the server records the new certificate');
    } finally {
      await started?.stop();
      await server.dispose();
    }
  });
});
