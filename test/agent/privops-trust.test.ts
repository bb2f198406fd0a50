// Who a host trusts for sealed privileged operations, with a real server and agent: signers certified by a trusted CA
// (full path validation, the dedicated EKU, narrowing per subject) and per-signer parameter limits.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent.ts';
import {
  canonicalJson, certificateToPem, describeCertificate, generateSignerKeyPair, issueCertificate, pemCertificatesToDer, privateKeyPemToDer, publicKeyPemToDer, randomBytes,
  resultPublicKeyFromPem, signDetachedJws,
} from '../../src/shared/crypto/index.ts';
import { PRIVOP_JWS_TYPE, type PrivopRequest, type PrivopRequestFile, type PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';
import { loadPrivopTrust } from '../../src/agent/privops/trust.ts';

describe('privileged-operation signers certified by a CA, and parameter limits', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let agent: TestAgent;
  const dir = makeTempDir('trustplane-privops-trust-');
  const logs = join(dir, 'logs');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);

  /** `privop request` into a file, signed with the key (and certificate, if any) in `signerDir`. */
  const request = async (signerDir: string, op: string, params: string[] = [], withCertificate = true) => {
    const path = file('req.json');
    writeFileSync(path, await trustplane('privop', 'request', '--host', agent.hostId, '--op', op, ...params.flatMap((param) => ['--param', param]),
      '--sign-key', join(signerDir, 'signer.key'), ...(withCertificate ? ['--sign-cert', join(signerDir, 'signer.pem')] : []),
      '--result-key', join(dir, 'keys', 'result.pub')));
    return path;
  };
  /** A request signed here with a certificate made here (e.g. expired, or without the EKU). */
  const requestWithCertificate = async (certificatePem: string, signerKeyPem: string, op = 'system.snapshot') => {
    const now = Date.now();
    const body: PrivopRequest = { Version: 1, Operation: op, Parameters: {}, Target: { HostId: agent.hostId },
      NotBefore: new Date(now - 60_000).toISOString(), NotAfter: new Date(now + 600_000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
      Requester: 'test', ResultKey: resultPublicKeyFromPem(readFileSync(join(dir, 'keys', 'result.pub'), 'utf8')).toString('base64url') };
    const signed: PrivopRequestFile = { Request: body, Signature: await signDetachedJws(signerKeyPem, canonicalJson(body), PRIVOP_JWS_TYPE,
      pemCertificatesToDer(certificatePem)[0]),
      Certificates: [certificatePem] };
    const path = file('req.json');
    writeFileSync(path, JSON.stringify(signed));
    return path;
  };
  /** A certificate from the trusted CA, issued in-process with any usage and validity. */
  const issueFromTrustedCa = async (options: { usage: 'client' | 'privop-signing'; now?: Date; validityDays?: number }) => {
    const caKey = privateKeyPemToDer(readFileSync(join(dir, 'ca', 'ca.key'), 'utf8'));
    const signer = generateSignerKeyPair();
    const issued = await issueCertificate({ authority: { certificateDer: pemCertificatesToDer(readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8'))[0] as Buffer,
      privateKeyPkcs8: caKey.pkcs8 }, subjectPublicKeyDer: publicKeyPemToDer(signer.publicKeyPem), commonName: 'team-a', usage: options.usage,
      validityDays: options.validityDays ?? 30, now: options.now });
    return { certificatePem: certificateToPem(issued.certificateDer), keyPem: signer.privateKeyPem };
  };
  const deliverAndOpen = async (requestPath: string) => {
    const sealed = file('sealed.bin');
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', sealed);
    return JSON.parse(await trustplane('privop', 'open', sealed, '--key', join(dir, 'keys', 'result.key'), '--request', requestPath)) as PrivopResultPlaintext;
  };
  const refusal = (requestPath: string) => fails('privop', 'deliver', requestPath, '--agent', agent.socketPath);

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'ops');
    const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'ops', '--uses', '1', '--json'], { env })).Token;
    await trustplane('privop', 'keygen', '--out', join(dir, 'keys'));
    await trustplane('privop', 'keygen', '--out', join(dir, 'pinned'));
    await trustplane('privop', 'make-ca', '--out', join(dir, 'ca'), '--name', 'team signers');
    await trustplane('privop', 'make-ca', '--out', join(dir, 'rogue-ca'));
    for (const [ca, subject, out] of [['ca', 'CN=team-a', 'team-a'], ['ca', 'CN=team-b', 'team-b'], ['ca', 'CN=team-c', 'team-c'],
      ['rogue-ca', 'CN=team-a', 'rogue'], ['revocable-ca', 'CN=team-r', 'team-r']] as const) {
      if (ca === 'revocable-ca') await trustplane('privop', 'make-ca', '--out', join(dir, ca));
      await trustplane('privop', 'issue-signer', '--ca-key', join(dir, ca, 'ca.key'), '--ca-cert', join(dir, ca, 'ca.pem'), '--subject', subject,
        '--out', join(dir, out), '--days', '7');
    }
    mkdirSync(logs);
    writeFileSync(join(logs, 'app.log'), 'line one\nline two\n');
    writeFileSync(join(dir, 'secret.txt'), 'not for the log readers');
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({
      signers: [{ publicKeyFile: 'pinned/signer.pub', operations: ['file.read'], name: 'log-reader',
        limits: { 'file.read': { path: `${logs.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/.*`, length: 4096 } } }],
      cas: [{ certificateFile: 'ca/ca.pem', name: 'team-ca', operations: ['system.snapshot', 'process.list', 'file.hash'],
        subjects: { 'CN=team-a': ['*'], 'CN=team-b': ['system.snapshot'] } },
      { certificateFile: 'revocable-ca/ca.pem', crlFile: 'revocable-ca/crl.pem', name: 'revocable-ca', operations: ['system.snapshot'] }],
    }));
    // An empty list to start with: the CA's signers are good until one is listed.
    await trustplane('privop', 'revoke-signer', '--ca-key', join(dir, 'revocable-ca', 'ca.key'), '--ca-cert', join(dir, 'revocable-ca', 'ca.pem'),
      '--out', join(dir, 'revocable-ca', 'crl.pem'));
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'privops-trust-host', extraArgs: ['--privop-trust', trustFile] });
  });
  after(async () => {
    await agent?.stop();
    await server?.dispose();
  });

  it('accepts a request signed by a CA-certified signer; its result opens', async () => {
    assert.match(readFileSync(join(dir, 'team-a', 'signer.pem'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    const requestPath = await request(join(dir, 'team-a'), 'system.snapshot');
    assert.equal((JSON.parse(readFileSync(requestPath, 'utf8')) as PrivopRequestFile).Certificates?.length, 1);
    const opened = await deliverAndOpen(requestPath);
    assert.equal(opened.HostId, agent.hostId);
    assert.equal(opened.Operation, 'system.snapshot');
    const listed = (await deliverAndOpen(await request(join(dir, 'team-a'), 'process.list'))).Result as { Processes: unknown[] };
    assert.ok(listed.Processes.length > 0);
  });

  it('refuses a certificate from a CA it does not trust, and a certificate for another key than the signature\'s', async () => {
    assert.match(await refusal(await request(join(dir, 'rogue'), 'system.snapshot')), /PrivopCertificateInvalid.*no path to the trust anchor/);
    // team-b's certificate attached to a request team-a signed: the signature must be by the certificate's key.
    const signedByA = await request(join(dir, 'team-a'), 'system.snapshot');
    const parsed = JSON.parse(readFileSync(signedByA, 'utf8')) as PrivopRequestFile;
    parsed.Certificates = [readFileSync(join(dir, 'team-b', 'signer.pem'), 'utf8')];
    const swapped = file('swapped.json');
    writeFileSync(swapped, JSON.stringify(parsed));
    assert.match(await refusal(swapped), /PrivopBadSignature.*x5t#S256/);
    // The signature names its certificate: a courier who strips it (to fall back to a pinned entry for the same key) is refused.
    const stripped = JSON.parse(readFileSync(signedByA, 'utf8')) as PrivopRequestFile;
    delete stripped.Certificates;
    const strippedPath = file('stripped.json');
    writeFileSync(strippedPath, JSON.stringify(stripped));
    assert.match(await refusal(strippedPath), /PrivopBadSignature.*does not carry/);
    // Without its certificate, the certified key is not a pinned signer.
    assert.match(await refusal(await request(join(dir, 'team-a'), 'system.snapshot', [], false)), /PrivopSignerNotTrusted/);
  });

  it('refuses an expired certificate and one without the privop-signing extended key usage', async () => {
    const expired = await issueFromTrustedCa({ usage: 'privop-signing', now: new Date(Date.now() - 10 * 86_400_000), validityDays: 1 });
    assert.match(await refusal(await requestWithCertificate(expired.certificatePem, expired.keyPem)), /PrivopCertificateInvalid.*expired/);
    const clientOnly = await issueFromTrustedCa({ usage: 'client' });
    assert.match(await refusal(await requestWithCertificate(clientOnly.certificatePem, clientOnly.keyPem)),
      /PrivopCertificateInvalid.*extendedKeyUsage does not include privop request signing/);
    // The same CA and key usage but the right EKU: accepted (so the refusals above were for the reasons given).
    const good = await issueFromTrustedCa({ usage: 'privop-signing' });
    assert.equal((await deliverAndOpen(await requestWithCertificate(good.certificatePem, good.keyPem))).Operation, 'system.snapshot');
  });

  it('checks a CA\'s revocation list for every request: a revoked signer is refused, and so is every signer of a CA whose list is bad', async () => {
    const revocable = ['--ca-key', join(dir, 'revocable-ca', 'ca.key'), '--ca-cert', join(dir, 'revocable-ca', 'ca.pem')];
    const before = await request(join(dir, 'team-r'), 'system.snapshot');
    assert.equal((await deliverAndOpen(before)).Operation, 'system.snapshot');

    const serial = describeCertificate(pemCertificatesToDer(readFileSync(join(dir, 'team-r', 'signer.pem'), 'utf8'))[0] as Buffer).serialNumber;
    const revoked = JSON.parse(await trustplane('privop', 'revoke-signer', ...revocable, '--serial', serial, '--out', join(dir, 'revocable-ca', 'crl.pem'))) as
      { Number: number; Revoked: string[] };
    assert.equal(revoked.Number, 2);
    assert.equal(revoked.Revoked.length, 1);
    // No restart: the agent reads the list afresh.
    assert.match(await refusal(await request(join(dir, 'team-r'), 'system.snapshot')), /PrivopCertificateInvalid[\s\S]*revocable-ca: revoked/);

    // A list signed by another CA is no list at all: the CA's signers are refused (fail closed), others' are not.
    const good = readFileSync(join(dir, 'revocable-ca', 'crl.pem'));
    await trustplane('privop', 'revoke-signer', '--ca-key', join(dir, 'rogue-ca', 'ca.key'), '--ca-cert', join(dir, 'rogue-ca', 'ca.pem'),
      '--out', join(dir, 'rogue.crl'));
    writeFileSync(join(dir, 'revocable-ca', 'crl.pem'), readFileSync(join(dir, 'rogue.crl')));
    try {
      assert.match(await refusal(await request(join(dir, 'team-r'), 'system.snapshot')), /revocable-ca: its revocation list is unusable: the revocation list (signature does not verify|is issued by another CA)/);
      assert.equal((await deliverAndOpen(await request(join(dir, 'team-a'), 'system.snapshot'))).Operation, 'system.snapshot');
      // Nor does the CLI extend a list that is not the CA's.
      assert.match(await fails('privop', 'revoke-signer', ...revocable, '--out', join(dir, 'revocable-ca', 'crl.pem')), /InvalidRevocationList/);
    } finally {
      writeFileSync(join(dir, 'revocable-ca', 'crl.pem'), good);
    }
  });

  it('narrows the CA\'s operations per certificate subject', async () => {
    const target = join(dir, 'hashed.txt');
    writeFileSync(target, 'x');
    // The CA allows file.hash; team-b's subject entry does not; team-c has no entry at all.
    assert.match(await refusal(await request(join(dir, 'team-b'), 'file.hash', [`path=${target}`])), /PrivopNotPermitted.*team-ca\/CN=team-b/);
    assert.equal((await deliverAndOpen(await request(join(dir, 'team-b'), 'system.snapshot'))).Operation, 'system.snapshot');
    assert.match(await refusal(await request(join(dir, 'team-c'), 'system.snapshot')), /PrivopNotPermitted/);
    assert.equal((await deliverAndOpen(await request(join(dir, 'team-a'), 'file.hash', [`path=${target}`]))).Operation, 'file.hash');
    // team-a's subject says "*", but the CA entry does not allow file.read.
    assert.match(await refusal(await request(join(dir, 'team-a'), 'file.read', [`path=${target}`])), /PrivopNotPermitted/);
  });

  it('enforces a signer\'s parameter limits, naming the parameter and not its value', async () => {
    const pinned = join(dir, 'pinned');
    const inside = await request(pinned, 'file.read', [`path=${join(logs, 'app.log')}`, 'length=9'], false);
    assert.equal(Buffer.from((await deliverAndOpen(inside)).Content?.Base64 ?? '', 'base64').toString(), 'line one\n');

    const outside = await refusal(await request(pinned, 'file.read', [`path=${join(dir, 'secret.txt')}`, 'length=9'], false));
    assert.match(outside, /PrivopNotPermitted.*parameter path is outside/);
    assert.doesNotMatch(outside, /secret\.txt/);
    // A path that walks out of the pattern with "..": refused before it is normalised.
    assert.match(await refusal(await request(pinned, 'file.read', [`path=${logs}/../secret.txt`, 'length=9'], false)), /PrivopNotPermitted.*parameter path/);
    assert.match(await refusal(await request(pinned, 'file.read', [`path=${join(logs, 'app.log')}`, 'length=4097'], false)),
      /PrivopNotPermitted.*parameter length is above this signer's limit of 4096/);
    // A link inside the allowed tree that leads out of it: judged by where it leads.
    symlinkSync(join(dir, 'secret.txt'), join(logs, 'shortcut.log'));
    assert.match(await refusal(await request(pinned, 'file.read', [`path=${join(logs, 'shortcut.log')}`, 'length=9'], false)),
      /PrivopNotPermitted.*parameter path leads \(through a link\) outside/);
    // A limited parameter left to the operation's default is not judged: it must be given.
    assert.match(await refusal(await request(pinned, 'file.read', [`path=${join(logs, 'app.log')}`], false)), /PrivopNotPermitted.*parameter length.*explicitly/);
    const audit = readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8');
    assert.doesNotMatch(audit, /secret\.txt/);
  });

  it('refuses to start on a trust file with a bad limit or a CA file that is not one certificate', async () => {
    const bad = join(dir, 'bad-trust.json');
    writeFileSync(bad, JSON.stringify({ signers: [{ publicKeyFile: 'pinned/signer.pub', operations: ['file.read'], limits: { 'file.read': { path: '(/var/log' } } }] }));
    await assert.rejects(loadPrivopTrust(bad), /signers\.0\.limits\.file\.read\.path: not a valid regular expression/);
    writeFileSync(join(dir, 'two.pem'), readFileSync(join(dir, 'ca', 'ca.pem'), 'utf8') + readFileSync(join(dir, 'rogue-ca', 'ca.pem'), 'utf8'));
    writeFileSync(bad, JSON.stringify({ cas: [{ certificateFile: 'two.pem', operations: ['*'] }] }));
    await assert.rejects(loadPrivopTrust(bad), /holds 2 certificates/);
  });
});
