// The server relay for sealed privileged operations, end to end with a real server, a real agent and the real CLI:
// a courier submits, the host fetches, judges, runs and uploads the sealed result in slices, the courier downloads it.
// Refusals come back with the host's code and are audited on both sides; the courier can never read a result.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, startTestServer, makeTempDir, trustplaneBin, type TestServer } from '../../helpers/server.ts';
import { run } from '../../helpers/exec.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson } from '../../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../../helpers/agent.ts';
import { iam, rootCredentials, trustplaneCall, type Credentials } from '../../helpers/iam-client.ts';
import type { PrivopResultPlaintext } from '../../../src/shared/privop-wire.ts';

interface RelayView { RelayId: string; HostId: string; Status: string; Operation?: string; Refusal?: { Code: string; Message: string }; ResultBytes?: number }

describe('the privileged-operation relay', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let agent: TestAgent;
  let courier: Credentials;
  let courierEnv: NodeJS.ProcessEnv;
  const dir = makeTempDir('trustplane-relay-');
  const keys = join(dir, 'keys');
  const limited = join(dir, 'limited');
  const fresh = join(dir, 'fresh');
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);
  const trustplane = (...args: string[]) => runTrustplane(args, { env });

  const request = async (op: string, params: string[] = [], signer = keys) => {
    const path = file('req.json');
    writeFileSync(path, await trustplane('privop', 'request', '--host', agent.hostId, '--op', op, ...params.flatMap((param) => ['--param', param]),
      '--sign-key', join(signer, 'signer.key'), '--result-key', join(keys, 'result.pub')));
    return path;
  };
  const describeRelay = (relayId: string) => trustplaneCall<RelayView>(server, rootCredentials(server), 'TrustPlanePrivop.DescribeRequest', { RelayId: relayId });
  /** Runs the CLI and answers how it ended, success or not. */
  const cli = (args: string[], options: { env: NodeJS.ProcessEnv }) => run(process.execPath, [trustplaneBin, ...args], { env: options.env, cwd: repoRoot });
  const relayIdIn = (stderr: string) => /relay (r-[0-9a-f-]+)/.exec(stderr)?.[1] ?? assert.fail(`no relay id in: ${stderr}`);

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'ops');
    const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'ops', '--uses', '1', '--json'], { env })).Token;
    for (const keyDir of [keys, limited, fresh]) await trustplane('privop', 'keygen', '--out', keyDir);
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({ signers: [
      { publicKeyFile: 'keys/signer.pub', operations: ['*'], name: 'ops-team' },
      { publicKeyFile: 'limited/signer.pub', operations: ['system.snapshot'], name: 'watch' },
    ] }));
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'relay-host', extraArgs: ['--privop-trust', trustFile] });
    await agent.waitFor((status) => status.Connected, 'the push stream');

    // The courier: an IAM user allowed the relay actions and nothing else.
    const root = rootCredentials(server);
    const user = await iam<{ User: { Arn: string } }>(server, root, 'CreateUser', { UserName: 'courier' });
    await iam(server, root, 'PutPrincipalPolicy', { PrincipalArn: user.User.Arn, PolicyName: 'relay', PolicyDocument: JSON.stringify({
      Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['privop:SubmitRequest', 'privop:DescribeRequest', 'privop:GetResult'], Resource: '*' }] }) });
    const key = await iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string } }>(server, root, 'CreateAccessKey', { UserName: 'courier' });
    courier = { accessKeyId: key.AccessKey.AccessKeyId, secretAccessKey: key.AccessKey.SecretAccessKey };
    courierEnv = cliEnv(server, courier);
  });
  after(async () => {
    await agent?.stop();
    await server?.dispose();
  });

  it('delivers through the relay; a result of several slices downloads whole and opens with the result key', async () => {
    const content = nodeRandomBytes(1024 * 1024);
    const target = join(dir, 'evidence.bin');
    writeFileSync(target, content);
    const requestPath = await request('file.read', [`path=${target}`]);
    const sealedPath = file('sealed.json');
    const delivered = await cli(['privop', 'deliver', requestPath, '--relay', '--out', sealedPath, '--wait', '60s'], { env });
    assert.equal(delivered.code, 0, delivered.stderr);
    assert.match(delivered.stderr, /completed/);
    const relay = await describeRelay(relayIdIn(delivered.stderr));
    assert.equal(relay.Status, 'completed');
    assert.equal(relay.HostId, agent.hostId);
    assert.equal(relay.Operation, 'file.read');
    // Over a MiB of content inside the ciphertext: the host uploaded it in more than one slice.
    assert.ok((relay.ResultBytes ?? 0) > 1024 * 1024);
    assert.equal(relay.ResultBytes, readFileSync(sealedPath).length);
    // GetResult in small slices gives the same bytes.
    const first = await trustplaneCall<{ Data: string; More: boolean }>(server, rootCredentials(server), 'TrustPlanePrivop.GetResult',
      { RelayId: relay.RelayId, Offset: 0, Length: 1000 });
    assert.equal(first.More, true);
    assert.deepEqual(Buffer.from(first.Data, 'base64'), readFileSync(sealedPath).subarray(0, 1000));

    const opened = JSON.parse(await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath)) as PrivopResultPlaintext;
    assert.equal(opened.HostId, agent.hostId);
    assert.deepEqual(Buffer.from(opened.Content?.Base64 ?? '', 'base64'), content);
  });

  it('a refused request comes back with the host\'s code, audited on the host and on the server', async () => {
    const requestPath = await request('file.hash', ['path=/etc/hostname'], limited);
    const refused = await cli(['privop', 'deliver', requestPath, '--relay', '--wait', '60s'], { env });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /PrivopNotPermitted/);
    assert.match(refused.stderr, new RegExp(agent.hostId));
    const relayId = relayIdIn(refused.stderr);
    const relay = await describeRelay(relayId);
    assert.equal(relay.Status, 'refused');
    assert.equal(relay.Refusal?.Code, 'PrivopNotPermitted');

    const hostAudit = readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(hostAudit.some((entry) => entry.Channel === 'relay' && entry.Outcome === 'refused' && entry.Code === 'PrivopNotPermitted'));
    const serverAudit = await runTrustplane(['audit', 'query', '--home', server.home, '--operation', 'PrivopRelayRefused', '--json'], { env });
    assert.match(serverAudit, new RegExp(relayId));
    assert.match(serverAudit, /PrivopNotPermitted/);
    const submitted = await runTrustplane(['audit', 'query', '--home', server.home, '--operation', 'PrivopRelaySubmitted', '--json'], { env });
    assert.match(submitted, new RegExp(`relay ${relayId} request [A-Za-z0-9_-]{43} operation file.hash`));
  });

  it('a request relayed a second time is refused by the host\'s nonce record, never run twice', async () => {
    const requestPath = await request('system.snapshot');
    const first = await cli(['privop', 'deliver', requestPath, '--relay', '--out', file('sealed.json'), '--wait', '60s'], { env });
    assert.equal(first.code, 0, first.stderr);
    const again = await cli(['privop', 'deliver', requestPath, '--relay', '--out', file('sealed.json'), '--wait', '60s'], { env });
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /PrivopReplay/);
  });

  it('the courier\'s credentials cannot decrypt the result, the server holds none of it in clear, and the courier can do nothing else', async () => {
    const marker = `relay-marker-${nodeRandomBytes(12).toString('hex')}`;
    const target = join(dir, 'marker.txt');
    writeFileSync(target, marker.repeat(3));
    const requestPath = await request('file.read', [`path=${target}`]);
    const sealedPath = file('sealed.json');
    const delivered = await cli(['privop', 'deliver', requestPath, '--relay', '--out', sealedPath, '--wait', '60s'], { env: courierEnv });
    assert.equal(delivered.code, 0, delivered.stderr);
    const sealed = readFileSync(sealedPath);
    assert.ok(!sealed.includes(marker));
    assert.ok(!sealed.includes(Buffer.from(marker.repeat(3)).toString('base64')));
    // A key the courier makes for itself does not open it (even skipping the host check the courier has no CA for); only the requester's does.
    const unverified = await cli(['privop', 'open', sealedPath, '--key', join(fresh, 'result.key')], { env: courierEnv });
    assert.match(unverified.stderr, /PrivopHostUnverified/);
    const refusal = await cli(['privop', 'open', sealedPath, '--key', join(fresh, 'result.key'), '--insecure-skip-host-check'], { env: courierEnv });
    assert.match(refusal.stderr, /PrivopCannotDecrypt/);
    await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath);
    // The server's database (and its write-ahead log) never saw the result in clear.
    for (const name of readdirSync(server.home).filter((entry) => entry.includes('.db'))) {
      const bytes = readFileSync(join(server.home, name));
      assert.ok(!bytes.includes(marker), `${name} holds the marker`);
      assert.ok(!bytes.includes(Buffer.from(marker.repeat(3)).toString('base64')), `${name} holds the marker in base64`);
    }
    // Relay actions only: no keys, no fleet, no deleting relays.
    await assert.rejects(trustplaneCall(server, courier, 'TrustPlaneFleet.ListHosts', {}), { name: 'AccessDeniedException' });
    await assert.rejects(trustplaneCall(server, courier, 'TrustPlaneKms.ListKeys', {}), { name: /AccessDenied|UnknownOperation|UnrecognizedClient/ });
    await assert.rejects(trustplaneCall(server, courier, 'TrustPlanePrivop.DeleteRequest', { RelayId: relayIdIn(delivered.stderr) }), { name: 'AccessDeniedException' });
  });

  it('relays submitted while the host is offline reach it when it reconnects; one it already ran is refused as a replay', async () => {
    const fresh = await request('system.snapshot');
    const alreadyRun = await request('system.snapshot');
    // Run on the host before (as if the agent had run it and stopped before uploading): its nonce is spent.
    await trustplane('privop', 'deliver', alreadyRun, '--agent', agent.socketPath);
    const trustArgs = ['--privop-trust', join(dir, 'privop-trust.json')];
    await agent.stop();
    const submit = async (path: string) => (await trustplaneCall<{ RelayId: string }>(server, rootCredentials(server), 'TrustPlanePrivop.SubmitRequest',
      { Request: JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown> })).RelayId;
    const freshRelay = await submit(fresh);
    const replayRelay = await submit(alreadyRun);
    assert.equal((await describeRelay(freshRelay)).Status, 'pending');
    agent = await startTestAgent({ serverUrl: server.url, stateDir: agent.stateDir, extraArgs: trustArgs });
    const sealedPath = file('sealed.bin');
    const collected = await cli(['privop', 'deliver', '--relay-id', freshRelay, '--wait', '60s', '--out', sealedPath], { env });
    assert.equal(collected.code, 0, collected.stderr);
    assert.equal((JSON.parse(await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', fresh)) as PrivopResultPlaintext)
      .Operation, 'system.snapshot');
    const replayed = await cli(['privop', 'deliver', '--relay-id', replayRelay, '--wait', '60s'], { env });
    assert.notEqual(replayed.code, 0);
    assert.match(replayed.stderr, /PrivopReplay/);
  });

  it('accepts an encrypted request by its host id alone, and the host\'s verdict comes back', async () => {
    const submitted = await trustplaneCall<{ RelayId: string; HostId: string }>(server, rootCredentials(server), 'TrustPlanePrivop.SubmitRequest',
      { Request: { Encrypted: { HostId: agent.hostId, Enc: 'AAAA', Ciphertext: 'opaque' } } });
    assert.equal(submitted.HostId, agent.hostId);
    const waited = await cli(['privop', 'deliver', '--relay-id', submitted.RelayId, '--wait', '60s'], { env });
    // This agent does not read the encrypted format: its refusal is what the courier gets back.
    assert.notEqual(waited.code, 0);
    const relay = await describeRelay(submitted.RelayId);
    assert.equal(relay.Status, 'refused');
    assert.equal(relay.Operation, undefined);
    assert.ok(relay.Refusal?.Code);
  });

  it('refuses a request for a class, a host of another account and a malformed file before relaying anything', async () => {
    await assert.rejects(trustplaneCall(server, rootCredentials(server), 'TrustPlanePrivop.SubmitRequest',
      { Request: { Encrypted: { HostId: 'h-0123456789abcdef' } } }), { name: 'NotFoundException' });
    await assert.rejects(trustplaneCall(server, rootCredentials(server), 'TrustPlanePrivop.SubmitRequest', { Request: { Encrypted: {} } }),
      { name: 'PrivopMalformedRequest' });
    const requestPath = await request('system.snapshot');
    const classRequest = JSON.parse(readFileSync(requestPath, 'utf8')) as { Request: { Target: unknown } };
    classRequest.Request.Target = { Class: 'ops' };
    await assert.rejects(trustplaneCall(server, rootCredentials(server), 'TrustPlanePrivop.SubmitRequest', { Request: classRequest }),
      { name: 'PrivopClassTargetUnsupported', message: /campaign/ });
  });
});
