// Requests encrypted to the host's request key, and class targets, with a real server, two real agents and the real CLI:
// each host makes and registers its X25519 request key, the fleet CA certifies it, the requester checks the certificate and
// encrypts; the courier's file shows only the host id; another host's key, an altered ciphertext and a re-addressed envelope are
// refused; a class request runs once on each member host and is refused by a non-member.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, makeTempDir, repoRoot, trustplaneBin, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { run } from '../helpers/exec.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent.ts';
import {
  checkRequestKeyCertificate, pemCertificatesToDer, PRIVOP_REQUEST_KEY_EKU_OID, requestKeyId, resultPublicKeyFromPem, x25519PublicKeyOf,
} from '../../src/shared/crypto/index.ts';
import { encryptPrivopRequest, type EncryptedPrivopRequest } from '../../src/shared/privop-encrypted-request.ts';
import type { PrivopRequestFile, PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';

interface RequestKeyView { HostId: string; KeyId: string; Fingerprint: string; NotAfter: string; RegisteredAt: string; File?: string; Certificate?: string }
interface AuditLine { Outcome: string; Code?: string; Encrypted?: boolean; Target?: Record<string, string>; Operation?: string }

describe('encrypted privileged-operation requests and class targets', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  /** In web/jp. */
  let hostA: TestAgent;
  /** In db and web/eu. */
  let hostB: TestAgent;
  const dir = makeTempDir('trustplane-privops-encrypted-');
  const keys = join(dir, 'keys');
  const caFile = join(dir, 'account-ca.pem');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);
  const certificateOf = (agent: TestAgent) => join(dir, `${agent.hostId}-request-key.pem`);

  /** `privop request` with any extra flags, into a file. */
  const request = async (target: string[], op: string, extra: string[] = []) => {
    const path = file('req.json');
    writeFileSync(path, await trustplane('privop', 'request', ...target, '--op', op, '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub'), ...extra));
    return path;
  };
  const deliver = async (agent: TestAgent, requestPath: string) => {
    const path = file('sealed.bin');
    // Sealed results are binary: written by the courier itself, not through a captured (text) stdout.
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', path);
    return path;
  };
  const refusal = (agent: TestAgent, requestPath: string) => fails('privop', 'deliver', requestPath, '--agent', agent.socketPath);
  const open = async (sealedPath: string, requestPath: string) => {
    const result = await run(process.execPath, [trustplaneBin, 'privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath,
      '--ca', caFile], { env, cwd: repoRoot });
    assert.equal(result.code, 0, result.stderr);
    return { plaintext: JSON.parse(result.stdout) as PrivopResultPlaintext, stderr: result.stderr };
  };
  const envelopeOf = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as EncryptedPrivopRequest;
  const writeEnvelope = (envelope: EncryptedPrivopRequest) => {
    const path = file('edited.json');
    writeFileSync(path, JSON.stringify(envelope));
    return path;
  };
  const lastAudit = (agent: TestAgent): AuditLine => {
    const lines = readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8').trim().split('\n');
    return JSON.parse(lines[lines.length - 1] as string) as AuditLine;
  };
  const registered = (agent: TestAgent) => agent.waitFor((status) => (status as { PrivopRequestKey?: { Registered: boolean } }).PrivopRequestKey?.Registered === true,
    'the request key to be registered');

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    for (const name of ['web', 'web/jp', 'web/eu', 'db']) await trustplane('class', 'create', name);
    await trustplane('privop', 'keygen', '--out', keys);
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({ signers: [{ publicKeyFile: 'keys/signer.pub', operations: ['*'], name: 'ops-team' }] }));
    const token = async (classes: string) => (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', classes, '--json'], { env })).Token;
    hostA = await startTestAgent({ serverUrl: server.url, joinToken: await token('web/jp'), name: 'host-a', extraArgs: ['--privop-trust', trustFile] });
    hostB = await startTestAgent({ serverUrl: server.url, joinToken: await token('db,web/eu'), name: 'host-b', extraArgs: ['--privop-trust', trustFile] });
    await Promise.all([registered(hostA), registered(hostB)]);
    writeFileSync(caFile, (JSON.parse(readFileSync(join(hostA.stateDir, 'identity.json'), 'utf8')) as { CaCertificate: string }).CaCertificate);
  });
  after(async () => {
    await hostA?.stop();
    await hostB?.stop();
    await server?.dispose();
  });

  it('each host registers its own X25519 request key; the server publishes a certificate from the account CA naming the host', async () => {
    for (const agent of [hostA, hostB]) {
      const view = await trustplaneJson<RequestKeyView>(['host', 'request-key', agent.hostId, '--out', certificateOf(agent), '--json'], { env });
      assert.equal(view.HostId, agent.hostId);
      assert.ok(Date.parse(view.NotAfter) > Date.now());
      // The private part stays on the host, readable by the agent only; the published key is its public half.
      const keyFile = join(agent.stateDir, 'privop-request.key');
      assert.equal(statSync(keyFile).mode & 0o777, 0o600);
      assert.equal(view.KeyId, requestKeyId(x25519PublicKeyOf(readFileSync(keyFile))));

      const pem = readFileSync(certificateOf(agent), 'utf8');
      const certificate = new X509Certificate(pem);
      const ca = new X509Certificate(readFileSync(caFile));
      assert.ok(certificate.checkIssued(ca) && certificate.verify(ca.publicKey), 'issued and signed by the account CA');
      assert.equal(certificate.publicKey.asymmetricKeyType, 'x25519');
      assert.match(certificate.subjectAltName ?? '', new RegExp(`URI:trustplane:host:\\d{12}:${agent.hostId}$`));
      assert.deepEqual(certificate.keyUsage, [PRIVOP_REQUEST_KEY_EKU_OID]);
      const checked = await checkRequestKeyCertificate({ certificateDer: pemCertificatesToDer(pem)[0] as Buffer, anchorDer: pemCertificatesToDer(readFileSync(caFile, 'utf8'))[0],
        namesHost: (uri) => uri.endsWith(`:${agent.hostId}`), now: new Date() });
      assert.ok('key' in checked, JSON.stringify(checked));
    }
    assert.notEqual(readFileSync(certificateOf(hostA), 'utf8'), readFileSync(certificateOf(hostB), 'utf8'));
    // Printed without --out: the PEM itself.
    assert.match(await trustplane('host', 'request-key', hostA.hostId), /^-----BEGIN CERTIFICATE-----/);
    assert.match(await fails('host', 'request-key', 'h-00000000000000ff'), /PrivopNoRequestKey/);
  });

  it('runs a request encrypted to the host\'s key; the courier\'s file shows only the host id', async () => {
    const secretPath = join(dir, 'quarterly-payroll-evidence.txt');
    writeFileSync(secretPath, 'evidence\n');
    const plain = file('plain.json');
    const requestPath = await request(['--host', hostA.hostId], 'file.hash', ['--param', `path=${secretPath}`, '--encrypt-to', certificateOf(hostA),
      '--ca', caFile, '--save-request', plain]);
    const text = readFileSync(requestPath, 'utf8');
    const resultKey = resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url');
    const signed = JSON.parse(readFileSync(plain, 'utf8')) as PrivopRequestFile;
    for (const hidden of ['file.hash', 'quarterly-payroll-evidence', resultKey, signed.Request.Nonce, signed.Request.Requester, signed.Signature.split('.')[0] as string]) {
      assert.ok(!text.includes(hidden), `the encrypted request shows ${hidden}`);
    }
    assert.deepEqual(Object.keys(envelopeOf(requestPath).Encrypted).sort(), ['Ciphertext', 'Enc', 'HostId', 'KeyId', 'Version']);
    assert.equal(envelopeOf(requestPath).Encrypted.HostId, hostA.hostId);

    const sealedPath = await deliver(hostA, requestPath);
    const opened = await open(sealedPath, plain);
    assert.equal(opened.plaintext.HostId, hostA.hostId);
    assert.equal(opened.plaintext.Operation, 'file.hash');
    const audit = lastAudit(hostA);
    assert.deepEqual([audit.Outcome, audit.Encrypted, audit.Operation], ['accepted', true, 'file.hash']);
    // The encrypted file is the host's to read: the opener needs the clear copy.
    assert.match(await fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath), /PrivopRequestEncrypted/);

    // --encrypt fetches the certificate from the server (checked against --ca here).
    const fetchedPlain = file('plain.json');
    const fetched = await request(['--host', hostA.hostId], 'system.snapshot', ['--encrypt', '--ca', caFile, '--save-request', fetchedPlain]);
    assert.equal((await open(await deliver(hostA, fetched), fetchedPlain)).plaintext.Operation, 'system.snapshot');
  });

  it('refuses a request for another host\'s key, an altered ciphertext and a re-addressed envelope', async () => {
    // The requester: a certificate that does not name the target, one from another CA, and a file without --ca.
    assert.match(await fails('privop', 'request', '--host', hostA.hostId, '--op', 'system.snapshot', '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub'), '--encrypt-to', certificateOf(hostB), '--ca', caFile), /PrivopUntrustedRequestKey: .*does not name the target host/);
    assert.match(await fails('privop', 'request', '--host', hostA.hostId, '--op', 'system.snapshot', '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub'), '--encrypt-to', certificateOf(hostA), '--ca', certificateOf(hostB)), /PrivopUntrustedRequestKey/);
    assert.match(await fails('privop', 'request', '--host', hostA.hostId, '--op', 'system.snapshot', '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub'), '--encrypt-to', certificateOf(hostA)), /needs --ca/);

    // A request for A encrypted to B's key (by someone who skipped the checks): A cannot open it.
    const plainForA = await request(['--host', hostA.hostId], 'system.snapshot');
    const toWrongKey = await encryptPrivopRequest({ requestFileJson: readFileSync(plainForA), hostId: hostA.hostId,
      requestKey: x25519PublicKeyOf(readFileSync(join(hostB.stateDir, 'privop-request.key'))) });
    assert.match(await refusal(hostA, writeEnvelope(toWrongKey)), /PrivopCannotDecrypt/);
    assert.deepEqual([lastAudit(hostA).Outcome, lastAudit(hostA).Code, lastAudit(hostA).Encrypted], ['refused', 'PrivopCannotDecrypt', true]);

    const encrypted = await request(['--host', hostA.hostId], 'system.snapshot', ['--encrypt-to', certificateOf(hostA), '--ca', caFile]);
    // One byte of the ciphertext flipped.
    const flipped = envelopeOf(encrypted);
    const bytes = Buffer.from(flipped.Encrypted.Ciphertext, 'base64');
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0x01;
    flipped.Encrypted.Ciphertext = bytes.toString('base64');
    assert.match(await refusal(hostA, writeEnvelope(flipped)), /PrivopCannotDecrypt/);
    // Re-addressed to B: B is not holding A's key; with B's key id too, the envelope's binding fails; A refuses an envelope for B.
    const readdressed = envelopeOf(encrypted);
    readdressed.Encrypted.HostId = hostB.hostId;
    assert.match(await refusal(hostB, writeEnvelope(readdressed)), /PrivopCannotDecrypt/);
    assert.match(await refusal(hostA, writeEnvelope(readdressed)), /PrivopWrongHost/);
    readdressed.Encrypted.KeyId = requestKeyId(x25519PublicKeyOf(readFileSync(join(hostB.stateDir, 'privop-request.key'))));
    assert.match(await refusal(hostB, writeEnvelope(readdressed)), /PrivopCannotDecrypt/);
    assert.equal(lastAudit(hostB).Encrypted, true);
    // The untouched envelope still runs: nothing above spent its nonce.
    // (The sealed result's clear header names the host that made it.)
    assert.ok(readFileSync(await deliver(hostA, encrypted)).toString('latin1').includes(`"HostId":"${hostA.hostId}"`));
  });

  it('a class request runs once on each host in the class or a class under it, and is refused elsewhere', async () => {
    const web = await request(['--class', 'web'], 'system.snapshot');
    const fromA = await open(await deliver(hostA, web), web);
    assert.equal(fromA.plaintext.HostId, hostA.hostId);
    assert.match(fromA.stderr, new RegExp(`answered by ${hostA.hostId} \\(the request named class web\\)`));
    const fromB = await open(await deliver(hostB, web), web);
    assert.equal(fromB.plaintext.HostId, hostB.hostId);
    // The nonce is single-use on each host.
    assert.match(await refusal(hostA, web), /PrivopReplay/);
    assert.match(await refusal(hostB, web), /PrivopReplay/);

    const jp = await request(['--class', 'web/jp'], 'system.snapshot');
    assert.match(await refusal(hostB, jp), /PrivopWrongHost: .*class web\/jp.*db, web\/eu/);
    assert.equal((await open(await deliver(hostA, jp), jp)).plaintext.HostId, hostA.hostId);
    assert.match(await refusal(hostA, await request(['--class', 'db'], 'system.snapshot')), /PrivopWrongHost/);
    // A class is a path: "we" is not a class above "web".
    assert.match(await refusal(hostA, await request(['--class', 'we'], 'system.snapshot')), /PrivopWrongHost/);
    assert.match(await fails('privop', 'request', '--class', 'web', '--host', hostA.hostId, '--op', 'system.snapshot', '--sign-key', join(keys, 'signer.key'),
      '--result-key', join(keys, 'result.pub')), /--host HOST or --class NAME/);
    // Membership older than any request may live is not judged on: the host waits to hear from the server again.
    const classesFile = join(hostA.stateDir, 'host-classes.json');
    const saved = readFileSync(classesFile, 'utf8');
    const stale = { ...(JSON.parse(saved) as Record<string, unknown>), ReceivedAt: new Date(Date.now() - 8 * 86_400_000).toISOString() };
    writeFileSync(classesFile, JSON.stringify(stale));
    try {
      assert.match(await refusal(hostA, await request(['--class', 'web'], 'system.snapshot')), /PrivopWrongHost: This host's classes were last confirmed at/);
    } finally {
      writeFileSync(classesFile, saved);
    }
  });

  it('a host re-classed learns its classes when it connects again, and keeps its request key', async () => {
    const before = await trustplaneJson<RequestKeyView>(['host', 'request-key', hostB.hostId, '--json'], { env });
    await trustplane('host', 'set-classes', hostB.hostId, 'db');
    const stateDir = hostB.stateDir;
    await hostB.stop();
    hostB = await startTestAgent({ serverUrl: server.url, stateDir, extraArgs: ['--privop-trust', join(dir, 'privop-trust.json')] });
    await hostB.waitFor((status) => JSON.stringify((status as { PrivopRequestKey?: { Registered: boolean; Classes?: string[] } }).PrivopRequestKey)
      === JSON.stringify({ KeyId: before.KeyId, Registered: true, Classes: ['db'] }), 'the new classes');
    assert.match(await refusal(hostB, await request(['--class', 'web'], 'system.snapshot')), /PrivopWrongHost/);
    const after = await trustplaneJson<RequestKeyView>(['host', 'request-key', hostB.hostId, '--json'], { env });
    assert.deepEqual([after.KeyId, after.Fingerprint, after.RegisteredAt], [before.KeyId, before.Fingerprint, before.RegisteredAt]);
  });

  it('a host that lost its request key makes a new one, which replaces the old (audited); requests to the old key no longer open', async () => {
    const old = await trustplaneJson<RequestKeyView>(['host', 'request-key', hostB.hostId, '--json'], { env });
    const toOldKey = await request(['--host', hostB.hostId], 'system.snapshot', ['--encrypt-to', certificateOf(hostB), '--ca', caFile]);
    const stateDir = hostB.stateDir;
    await hostB.stop();
    rmSync(join(stateDir, 'privop-request.key'));
    hostB = await startTestAgent({ serverUrl: server.url, stateDir, extraArgs: ['--privop-trust', join(dir, 'privop-trust.json')] });
    const status = await registered(hostB) as { PrivopRequestKey?: { KeyId: string } };
    assert.notEqual(status.PrivopRequestKey?.KeyId, old.KeyId);
    const replaced = await trustplaneJson<RequestKeyView>(['host', 'request-key', hostB.hostId, '--json'], { env });
    assert.equal(replaced.KeyId, status.PrivopRequestKey?.KeyId);
    assert.match(await refusal(hostB, toOldKey), /PrivopCannotDecrypt/);
    // The server's audit log records the replacement (records are written shortly after the call: polled with a deadline).
    const deadline = Date.now() + 10_000;
    let records = '';
    while (!records.includes(replaced.KeyId) && Date.now() < deadline) {
      records = await trustplane('audit', 'query', '--home', server.home, '--operation', 'PrivopReplaceHostRequestKey', '--json');
    }
    assert.ok(records.includes(`request key ${old.KeyId} replaced by ${replaced.KeyId}`), records);
  });
});
