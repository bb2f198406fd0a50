// Fleet campaigns end to end: the server signs one request per active host of a class (nested classes included, a
// random sample when asked) with its campaign signer, relays them to real agents, and the CLI collects the sealed
// results with a summary. Hosts trust the server only through the "server" entry of their --privop-trust file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, startTestServer, makeTempDir, trustplaneBin, type TestServer } from '../../helpers/server.ts';
import { run } from '../../helpers/exec.ts';
import { setTimeout as delay } from 'node:timers/promises';
import { operatorCall, rootCredentials, trustplaneCall } from '../../helpers/iam-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFails, trustplaneJson } from '../../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../../helpers/agent.ts';
import { canonicalJson, pemCertificatesToDer, randomBytes, resultPublicKeyFromPem, signDetachedJws } from '../../../src/shared/crypto/index.ts';
import { PRIVOP_JWS_TYPE, type PrivopRequest, type PrivopResultPlaintext } from '../../../src/shared/privop-wire.ts';

interface Summary { CampaignId: string; Hosts: number; Completed: string[]; Refused: Record<string, string[]>; NotRun: Array<{ HostId: string }> }

describe('fleet campaigns', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  const agents: Record<'web' | 'nested' | 'unrelated' | 'untrusting', TestAgent | undefined> = { web: undefined, nested: undefined, unrelated: undefined,
    untrusting: undefined };
  const agent = (name: keyof typeof agents) => agents[name] ?? assert.fail(`no agent ${name}`);
  const dir = makeTempDir('trustplane-campaign-');
  const keys = join(dir, 'keys');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const cli = (args: string[]) => run(process.execPath, [trustplaneBin, ...args], { env, cwd: repoRoot });

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'web');
    await trustplane('class', 'create', 'web/jp');
    await trustplane('class', 'create', 'db');
    await trustplane('privop', 'keygen', '--out', keys);
    const serverTrust = join(dir, 'server-trust.json');
    writeFileSync(serverTrust, JSON.stringify({ server: { operations: ['system.snapshot', 'process.list'] } }));
    // Trusts a pinned signer only: campaign requests are not for it.
    const pinnedTrust = join(dir, 'pinned-trust.json');
    writeFileSync(pinnedTrust, JSON.stringify({ signers: [{ publicKeyFile: 'keys/signer.pub', operations: ['*'] }] }));
    const start = async (name: keyof typeof agents, className: string, trust: string) => {
      const token = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', className, '--uses', '1', '--json'], { env })).Token;
      agents[name] = await startTestAgent({ serverUrl: server.url, joinToken: token, name: `campaign-${name}`, extraArgs: ['--privop-trust', trust] });
    };
    await Promise.all([start('web', 'web', serverTrust), start('nested', 'web/jp', serverTrust), start('unrelated', 'db', serverTrust),
      start('untrusting', 'web', pinnedTrust)]);
    await Promise.all(Object.values(agents).map((running) => running?.waitFor((status) => status.Connected, 'the push stream')));
  });
  after(async () => {
    await Promise.all(Object.values(agents).map((running) => running?.stop()));
    await server?.dispose();
  });

  it('reaches the class and its nested class only; results open with the result key; the untrusting host shows as refused', async () => {
    const out = join(dir, 'all');
    const ran = await cli(['privop', 'campaign', '--class', 'web', '--op', 'system.snapshot', '--result-key', join(keys, 'result.pub'), '--out', out, '--wait', '60s']);
    // One host refused: the command says so and fails.
    assert.notEqual(ran.code, 0, ran.stderr);
    assert.match(ran.stderr, /2\/3 completed, 1 refused \(PrivopSignerNotTrusted/);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
    assert.equal(summary.Hosts, 3);
    assert.deepEqual(summary.Completed.sort(), [agent('web').hostId, agent('nested').hostId].sort());
    assert.deepEqual(summary.Refused, { PrivopSignerNotTrusted: [agent('untrusting').hostId] });
    assert.deepEqual(summary.NotRun, []);
    assert.ok(!JSON.stringify(summary).includes(agent('unrelated').hostId));

    const identity = JSON.parse(readFileSync(join(agent('web').stateDir, 'identity.json'), 'utf8')) as { CaCertificate: string };
    writeFileSync(join(dir, 'account-ca.pem'), identity.CaCertificate);
    for (const hostId of summary.Completed) {
      const opened = JSON.parse(await trustplane('privop', 'open', join(out, `${hostId}.sealed`), '--key', join(keys, 'result.key'),
        '--ca', join(dir, 'account-ca.pem'))) as PrivopResultPlaintext;
      assert.equal(opened.HostId, hostId);
      assert.equal(opened.Operation, 'system.snapshot');
    }
    // The host recorded who asked: the campaign and the calling principal.
    const hostAudit = readFileSync(join(agent('nested').stateDir, 'privop-audit.jsonl'), 'utf8');
    assert.match(hostAudit, new RegExp(`campaign ${summary.CampaignId} by arn:`));
    assert.match(hostAudit, /"Channel":"relay"/);
  });

  it('takes a random sample of N hosts of the class', async () => {
    const out = join(dir, 'sample');
    await cli(['privop', 'campaign', '--class', 'web', '--sample', '2', '--op', 'process.list', '--result-key', join(keys, 'result.pub'), '--out', out,
      '--wait', '60s']);
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
    assert.equal(summary.Hosts, 2);
    const reached = [...summary.Completed, ...Object.values(summary.Refused).flat()];
    assert.equal(new Set(reached).size, 2);
    const allowed = new Set([agent('web').hostId, agent('nested').hostId, agent('untrusting').hostId]);
    for (const hostId of reached) assert.ok(allowed.has(hostId), `${hostId} is not in class web`);
    const nested = join(dir, 'nested');
    const ran = await cli(['privop', 'campaign', '--class', 'web/jp', '--op', 'system.snapshot', '--result-key', join(keys, 'result.pub'), '--out', nested, '--wait', '60s']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual((JSON.parse(readFileSync(join(nested, 'summary.json'), 'utf8')) as Summary).Completed, [agent('nested').hostId]);
  });

  it('the campaign signer and a waiting relayed request survive a domain key rotation (both rewrapped)', async () => {
    const nested = agent('nested');
    await nested.stop();
    const started = await trustplaneCall<{ CampaignId: string; Hosts: Array<{ HostId: string; RelayId: string }> }>(server, rootCredentials(server),
      'TrustPlanePrivop.StartCampaign', { Class: 'web/jp', Operation: 'system.snapshot', Parameters: {}, TtlSeconds: 600,
        ResultKey: resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url') });
    assert.deepEqual(started.Hosts.map((host) => host.HostId), [nested.hostId]);
    await operatorCall(server, rootCredentials(server), 'RotateDomainKey');
    for (;;) {
      const { DomainKeyRotation: progress } = await operatorCall<{ DomainKeyRotation: { State: string } }>(server, rootCredentials(server), 'GetDomainKeyRotation');
      if (progress.State === 'Idle') break;
      await delay(50);
    }
    agents.nested = await startTestAgent({ serverUrl: server.url, stateDir: nested.stateDir, extraArgs: ['--privop-trust', join(dir, 'server-trust.json')] });
    const waited = await cli(['privop', 'deliver', '--relay-id', started.Hosts[0]?.RelayId ?? '', '--out', join(dir, 'after-rotation.sealed'), '--wait', '60s']);
    assert.equal(waited.code, 0, waited.stderr);
    const described = await trustplaneCall<{ Counts: Record<string, number> }>(server, rootCredentials(server), 'TrustPlanePrivop.DescribeCampaign',
      { CampaignId: started.CampaignId });
    assert.equal(described.Counts.completed, 1);
    // A new campaign signs with the rewrapped signer key.
    const again = await cli(['privop', 'campaign', '--class', 'web/jp', '--op', 'system.snapshot', '--result-key', join(keys, 'result.pub'),
      '--out', join(dir, 'after-rotation'), '--wait', '60s']);
    assert.equal(again.code, 0, again.stderr);
  });

  it('signs a campaign\'s requests without relaying them, for couriers carrying them to the hosts themselves', async () => {
    const signed = await trustplaneCall<{ CampaignId: string; Requests: Array<{ HostId: string; Request: unknown }> }>(server, rootCredentials(server),
      'TrustPlanePrivop.SignCampaignRequests', { Class: 'web/jp', Operation: 'system.snapshot', Parameters: {}, TtlSeconds: 600,
        ResultKey: resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url') });
    assert.deepEqual(signed.Requests.map((entry) => entry.HostId), [agent('nested').hostId]);
    const path = join(dir, 'offline-request.json');
    writeFileSync(path, JSON.stringify(signed.Requests[0]?.Request));
    const sealed = join(dir, 'offline.sealed');
    await trustplane('privop', 'deliver', path, '--agent', agent('nested').socketPath, '--out', sealed);
    const opened = JSON.parse(await trustplane('privop', 'open', sealed, '--key', join(keys, 'result.key'), '--request', path)) as PrivopResultPlaintext;
    assert.equal(opened.HostId, agent('nested').hostId);
  });

  it('an operation outside the "server" entry is refused, and a host identity certificate never passes as a signer', async () => {
    const out = join(dir, 'not-permitted');
    const ran = await cli(['privop', 'campaign', '--class', 'web/jp', '--op', 'file.hash', '--param', 'path=/etc/hostname',
      '--result-key', join(keys, 'result.pub'), '--out', out, '--wait', '60s']);
    assert.notEqual(ran.code, 0);
    assert.deepEqual((JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary).Refused, { PrivopNotPermitted: [agent('nested').hostId] });

    // A request signed by a host's own identity key, with its certificate from the same account CA: no privop-signing EKU.
    const host = agent('web');
    const hostKey = readFileSync(join(host.stateDir, 'identity.key'), 'utf8');
    const hostCertificate = (JSON.parse(readFileSync(join(host.stateDir, 'identity.json'), 'utf8')) as { Certificate: string }).Certificate;
    const now = Date.now();
    const request: PrivopRequest = { Version: 1, Operation: 'system.snapshot', Parameters: {}, Target: { HostId: host.hostId },
      NotBefore: new Date(now).toISOString(), NotAfter: new Date(now + 600_000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
      Requester: 'a host', ResultKey: resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url') };
    const path = join(dir, 'host-signed.json');
    writeFileSync(path, JSON.stringify({ Request: request, Signature: await signDetachedJws(hostKey, canonicalJson(request), PRIVOP_JWS_TYPE,
      pemCertificatesToDer(hostCertificate)[0]), Certificates: [hostCertificate] }));
    assert.match(await trustplaneFails(['privop', 'deliver', path, '--agent', host.socketPath], { env }), /PrivopCertificateInvalid/);
  });
});
