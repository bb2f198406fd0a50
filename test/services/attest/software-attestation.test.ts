// Attestation end to end in software mode, with real server and agent processes: no keys until the
// host attests against reference values adopted from it, key policies with tp:* conditions, sealing
// to a measurement, EAR tokens verified with jose against the JWKS found by OIDC discovery, a changed
// measured file detected at the next interval with the configured revoke (keys withdrawn, host
// quarantined, signed alert), clearing the quarantine, silence, and a database that shows nothing.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { compactVerify, createRemoteJWKSet, jwtVerify } from 'jose';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, makeTempDir, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../../helpers/cli.ts';
import { startTestAgent, type AgentStatusView, type TestAgent } from '../../helpers/agent.ts';
import { hostCaller } from '../../helpers/host-call.ts';

interface Failure { Id: string; Severity: string; Component: string; Expected?: string; Found?: string }
interface HostShow { Host: { Status: string; Attestation?: unknown }; Attestation: { Status: string; Mode: string; Failures: Failure[]; LastVerified?: string } }

const sha256Hex = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const keyIds = (status: AgentStatusView) => status.Keys.map((key) => key.KeyId);

describe('attestation in software mode', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let kms: KMSClient;
  let agent: TestAgent;
  let appKey: string;
  let webOnlyKey: string;
  let dbOnlyKey: string;
  let pinnedKey: string;
  let wrongPinKey: string;
  let joinToken: string;
  const home = makeTempDir();
  const bootDir = makeTempDir();
  const kernel = join(bootDir, 'vmlinuz');
  const alerts: Array<{ body: string; signature: string }> = [];
  let alertWaiters: Array<() => void> = [];
  let webhook: Server;
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const show = (hostId: string) => json<HostShow>('host', 'show', hostId);
  const waitForHost = async (hostId: string, condition: (view: HostShow) => boolean, what: string) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const view = await show(hostId);
      if (condition(view)) return view;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(view.Attestation)}`);
      await new Promise<void>((resolve) => { setTimeout(resolve, 100); });
    }
  };
  const measurementPolicy = (component: string, value: string) => JSON.stringify({ Version: '2012-10-17', Statement: [
    { Sid: 'Root', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${server.accountId}:root` }, Action: 'kms:*', Resource: '*' },
    { Sid: 'HostsMeasuringThis', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*',
      Condition: { StringEquals: { [`tp:Measurement/${component}`]: value } } },
  ] });
  const hostPolicy = (className: string) => JSON.stringify({ Version: '2012-10-17', Statement: [
    { Sid: 'Root', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${server.accountId}:root` }, Action: 'kms:*', Resource: '*' },
    { Sid: 'AttestedHostsOfClass', Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:Decrypt', Resource: '*',
      Condition: { Bool: { 'tp:Attested': 'true' }, 'ForAnyValue:StringEquals': { 'tp:HostClass': className } } },
  ] });

  before(async () => {
    webhook = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        // The first delivery fails: the verifier must retry.
        const first = alerts.length === 0 && !(webhook as Server & { failedOnce?: boolean }).failedOnce;
        if (first) {
          (webhook as Server & { failedOnce?: boolean }).failedOnce = true;
          response.writeHead(503).end();
          return;
        }
        alerts.push({ body: Buffer.concat(chunks).toString('utf8'), signature: String(request.headers['x-trustplane-signature']) });
        response.writeHead(204).end();
        for (const wake of alertWaiters) wake();
        alertWaiters = [];
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    writeFileSync(kernel, 'kernel 6.1 build 1');
    server = await startTestServer({ home });
    env = cliEnv(server);
    kms = kmsClient(server);
    appKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    webOnlyKey = (await kms.send(new CreateKeyCommand({ Policy: hostPolicy('web') }))).KeyMetadata!.KeyId!;
    dbOnlyKey = (await kms.send(new CreateKeyCommand({ Policy: hostPolicy('db') }))).KeyMetadata!.KeyId!;
    const port = (webhook.address() as { port: number }).port;
    const created = await json<{ Class: { Attestation: { Mode: string; IntervalSeconds: number; Actions: Record<string, string[]> } } }>(
      'class', 'create', 'web', '--attestation', 'software', '--interval', '1s', '--silent-after', '2',
      '--on-contraindicated', 'flag,alert,revoke', '--on-silent', 'flag', '--webhook', `http://127.0.0.1:${port}/alerts`);
    assert.deepEqual(created.Class.Attestation.Actions.contraindicated, ['alert', 'flag', 'revoke']);
    assert.equal(created.Class.Attestation.IntervalSeconds, 1);
    for (const key of [appKey, webOnlyKey, dbOnlyKey]) await trustplane('class', 'grant-key', 'web', key);
    joinToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'web', '--uses', '3')).Token;
  });

  after(async () => {
    await agent?.stop();
    kms?.destroy();
    await server?.dispose();
    await new Promise<void>((resolve) => webhook.close(() => resolve()));
  });

  it('gives a new host no keys until it attests against reference values adopted from it', async () => {
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'web-1', extraArgs: ['--measure', kernel] });
    const pending = await agent.waitFor((status) => status.Attestation !== undefined, 'a first verdict');
    assert.equal(pending.Attestation?.Status, 'pending');
    assert.deepEqual(pending.Attestation?.Failures.map((failure) => failure.Id), ['reference-missing']);
    assert.deepEqual(keyIds(await agent.status()), []);
    const before = await show(agent.hostId);
    assert.equal(before.Attestation.Status, 'pending');
    assert.equal(before.Attestation.Mode, 'software');

    const reference = await json<{ Version: number; Document: { Components: Record<string, string[]> } }>(
      'class', 'set-reference', 'web', '--from-host', agent.hostId);
    assert.equal(reference.Version, 1);
    assert.deepEqual(reference.Document.Components[kernel], [sha256Hex('kernel 6.1 build 1')]);
    const affirmed = await agent.waitFor((status) => status.Attestation?.Status === 'affirming' && keyIds(status).includes(appKey), 'affirming with keys');
    // The key policy asking for class db keeps that key from a web host; the one asking for web lets it through.
    assert.ok(keyIds(affirmed).includes(webOnlyKey));
    assert.ok(!keyIds(affirmed).includes(dbOnlyKey));
    // A policy pinning a measurement (here the agent's configuration) releases the key only to hosts measuring that.
    const configDigest = reference.Document.Components['agent:config'][0];
    pinnedKey = (await kms.send(new CreateKeyCommand({ Policy: measurementPolicy('agent:config', configDigest) }))).KeyMetadata!.KeyId!;
    wrongPinKey = (await kms.send(new CreateKeyCommand({ Policy: measurementPolicy('agent:config', sha256Hex('another configuration')) })))
      .KeyMetadata!.KeyId!;
    for (const key of [wrongPinKey, pinnedKey]) await trustplane('class', 'grant-key', 'web', key);
    const pinned = await agent.waitFor((status) => keyIds(status).includes(pinnedKey), 'the key pinned to its configuration');
    assert.ok(!keyIds(pinned).includes(wrongPinKey));
    const view = await show(agent.hostId);
    assert.equal(view.Attestation.Status, 'affirming');
    assert.deepEqual(view.Attestation.Failures, []);
    assert.ok(Date.parse(view.Attestation.LastVerified!) > Date.now() - 10_000);
  });

  it('refuses malformed evidence with typed errors and a bad class setting with a clear message', async () => {
    const call = await hostCaller(agent.stateDir);
    const bad = await call('/v1/agent/attest/evidence', { Nonce: 'x', Events: [{ Pcr: 23, Component: 'k', Digest: 'not-hex' }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.__type, 'ValidationException');
    const unknown = await call('/v1/agent/attest/evidence', { Nonce: 'x', Events: [], Surprise: true });
    assert.equal(unknown.status, 400);
    const message = await trustplaneFails(['class', 'set-attestation', 'web', '--on-silent', 'explode'], { env });
    assert.match(message, /flag, alert, revoke/);
    assert.match(await trustplaneFails(['class', 'set-reference', 'web'], { env }), /exactly one of --from-host and --file/);
  });

  it('seals data to the host\'s measurement and releases it to that host', async () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'secret.txt'), 'db password: hunter2');
    await trustplane('seal', '--host', agent.hostId, join(dir, 'secret.txt'), join(dir, 'secret.sealed'));
    assert.ok(!readFileSync(join(dir, 'secret.sealed')).includes('hunter2'));
    await runTrustplane(['unseal', '--agent', agent.socketPath, join(dir, 'secret.sealed'), join(dir, 'opened.txt')], { env });
    assert.equal(readFileSync(join(dir, 'opened.txt'), 'utf8'), 'db password: hunter2');
  });

  it('issues EAR tokens that stock jose verifies against the JWKS from OIDC discovery', async () => {
    const discovery = await (await fetch(new URL('/.well-known/openid-configuration', server.url))).json() as { issuer: string; jwks_uri: string };
    assert.equal(discovery.issuer, server.url.replace(/\/$/, ''));
    const token = (await json<{ Token: string }>('host', 'attestation-token', agent.hostId, '--nonce', 'relying-party-nonce-1')).Token;
    const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: discovery.issuer, algorithms: ['ES256'] });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(payload.eat_nonce, 'relying-party-nonce-1');
    assert.deepEqual(payload['ear.verifier-id'], { developer: 'trustplane', build: 'trustplane 0.1.0' });
    const submod = (payload.submods as Record<string, Record<string, unknown>>)[agent.hostId];
    assert.equal(submod['ear.status'], 'affirming');
    assert.equal(submod['ear.appraisal-policy-id'], 'trustplane:class/web/reference/1');
    // The agent asks for its own host, for a local workload.
    const local = await agent.client.call<{ Token: string }>('AttestationToken', { Nonce: 'workload-nonce' });
    const verified = await jwtVerify(local.Token, jwks, { issuer: discovery.issuer });
    assert.equal(verified.payload.eat_nonce, 'workload-nonce');
    // A tampered token fails.
    const [header, body, signature] = token.split('.');
    const forged = Buffer.from(body, 'base64url').toString().replace('"affirming"', '"warning"');
    await assert.rejects(jwtVerify(`${header}.${Buffer.from(forged).toString('base64url')}.${signature}`, jwks), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });

  it('detects a changed measured file at the next interval: contraindicated, keys withdrawn, quarantined, signed alert', async () => {
    const dir = makeTempDir();
    writeFileSync(join(dir, 'secret.txt'), 'sealed before the change');
    await trustplane('seal', '--host', agent.hostId, join(dir, 'secret.txt'), join(dir, 'secret.sealed'));
    const alerted = new Promise<void>((resolve) => { alertWaiters.push(resolve); });

    writeFileSync(kernel, 'kernel 6.1 build 1 with a rootkit');
    const withdrawn = await agent.waitFor((status) => status.Attestation?.Status === 'contraindicated' && status.Keys.length === 0,
      'contraindicated with the key ring withdrawn');
    assert.ok(withdrawn.Attestation?.Failures.some((failure) => failure.Id === 'measurement-changed'));
    await assert.rejects(agent.client.call('Encrypt', { KeyId: appKey, Plaintext: Buffer.from('x') }), { name: 'NotFoundException' });

    const view = await show(agent.hostId);
    assert.equal(view.Host.Status, 'quarantined');
    assert.equal(view.Attestation.Status, 'contraindicated');
    const changed = view.Attestation.Failures.find((failure) => failure.Id === 'measurement-changed' && failure.Component === kernel)!;
    assert.equal(changed.Severity, 'high');
    assert.equal(changed.Expected, sha256Hex('kernel 6.1 build 1'));
    assert.equal(changed.Found, sha256Hex('kernel 6.1 build 1 with a rootkit'));
    assert.ok(view.Attestation.Failures.some((failure) => failure.Id === 'measurement-unexpected' && failure.Component === kernel));

    // Sealed data is no longer released.
    const refused = await trustplaneFails(['unseal', '--agent', agent.socketPath, join(dir, 'secret.sealed'), join(dir, 'out.txt')], { env });
    assert.match(refused, /AccessDenied|attested|measurement/);
    // Relying parties are told.
    const token = (await json<{ Token: string }>('host', 'attestation-token', agent.hostId)).Token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { submods: Record<string, Record<string, unknown>> };
    assert.equal(claims.submods[agent.hostId]['ear.status'], 'contraindicated');
    assert.equal(claims.submods[agent.hostId]['trustplane.quarantined'], true);

    // The alert webhook got a signed alert (after one failed delivery was retried).
    await alerted;
    const alert = alerts.find((entry) => (JSON.parse(entry.body) as { Status: string }).Status === 'contraindicated')!;
    const body = JSON.parse(alert.body) as { HostId: string; Failures: Failure[]; PreviousStatus: string };
    assert.equal(body.HostId, agent.hostId);
    assert.equal(body.PreviousStatus, 'affirming');
    assert.ok(body.Failures.some((failure) => failure.Id === 'measurement-changed'));
    const [header, , signature] = alert.signature.split('.');
    const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', server.url));
    await compactVerify(`${header}.${Buffer.from(alert.body).toString('base64url')}.${signature}`, jwks);
    await assert.rejects(compactVerify(`${header}.${Buffer.from(alert.body.replace('contraindicated', 'affirming')).toString('base64url')}.${signature}`, jwks));

    // Everything is in the audit log.
    const audit = await trustplane('audit', 'query', '--home', home, '--operation', 'AttestationCorrectiveAction', '--json');
    assert.match(audit, /revoke \(contraindicated\)/);
  });

  it('lifts a quarantine with host clear: keys return once the host affirms again', async () => {
    writeFileSync(kernel, 'kernel 6.1 build 1');
    await waitForHost(agent.hostId, (view) => view.Attestation.Status === 'affirming', 'affirming after the file was restored');
    // Affirming again, but still quarantined: no keys until an operator clears it.
    assert.deepEqual(keyIds(await agent.status()), []);
    assert.equal((await show(agent.hostId)).Host.Status, 'quarantined');
    await trustplane('host', 'clear', agent.hostId);
    await agent.waitFor((status) => keyIds(status).includes(appKey), 'keys after the quarantine was cleared');
    assert.match(await trustplaneFails(['host', 'clear', agent.hostId], { env }), /not quarantined/);
  });

  it('keeps the database free of measurements: vaults and reference values are encrypted', async () => {
    const files = readdirSync(home).filter((name) => name.startsWith('trustplane.db'));
    assert.ok(files.length > 0);
    const dump = Buffer.concat(files.map((name) => readFileSync(join(home, name))));
    for (const needle of [sha256Hex('kernel 6.1 build 1'), sha256Hex('kernel 6.1 build 1 with a rootkit'), kernel]) {
      assert.equal(dump.includes(needle), false, `the database holds ${needle} in clear`);
    }
  });

  it('flags a host that stops sending evidence as silent', async () => {
    await agent.stop();
    const silent = await waitForHost(agent.hostId, (view) => view.Attestation.Status === 'silent', 'silent');
    assert.equal(silent.Attestation.Failures[0].Id, 'silent');
    const token = (await json<{ Token: string }>('host', 'attestation-token', agent.hostId)).Token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { submods: Record<string, Record<string, unknown>> };
    assert.equal(claims.submods[agent.hostId]['ear.status'], 'contraindicated');
    assert.equal(claims.submods[agent.hostId]['trustplane.status'], 'silent');
  });
});
