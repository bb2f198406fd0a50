// Sealed privileged operations end to end with a real server and a real agent process: keygen, signed
// requests carried by the CLI courier, sealed results opened with the result key, and every refusal
// the host owes (tampering, window, host, replay across restarts, permission) and the opener owes (wrong key, altered result).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { hostname, release } from 'node:os';
import { join } from 'node:path';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent.ts';
import {
  canonicalJson, certificateToPem, createCertificateAuthority, generateAsymmetricPair, issueCertificate, privateKeyToPem, randomBytes, resultPublicKeyFromPem,
  signDetachedJws,
} from '../../src/shared/crypto/index.ts';
import { hostUri } from '../../src/shared/fleet-wire.ts';
import { resultRecord, sealPrivopResultStream } from '../../src/shared/privop-result-stream.ts';
import { parsePrivopRequestFile, privopRequestDigest, PRIVOP_JWS_TYPE, type PrivopRequest, type PrivopRequestFile, type PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';

describe('sealed privileged operations on a real agent', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let agent: TestAgent;
  const dir = makeTempDir('trustplane-privops-');
  const keys = join(dir, 'keys');
  const other = join(dir, 'other');
  const limited = join(dir, 'limited');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);

  /** `privop request` into a file; returns its path. */
  const request = async (op: string, params: string[] = [], options: { host?: string; signer?: string; resultKey?: string; ttl?: string } = {}) => {
    const path = file('req.json');
    writeFileSync(path, await trustplane('privop', 'request', '--host', options.host ?? agent.hostId, '--op', op,
      ...params.flatMap((param) => ['--param', param]), '--sign-key', join(options.signer ?? keys, 'signer.key'),
      '--result-key', join(options.resultKey ?? keys, 'result.pub'), ...(options.ttl ? ['--ttl', options.ttl] : [])));
    return path;
  };
  /** A request signed here with any content (e.g. a window in the past), the way `privop request` signs. */
  const signedRequest = async (overrides: Partial<PrivopRequest>) => {
    const now = Date.now();
    const body: PrivopRequest = { Version: 1, Operation: 'system.snapshot', Parameters: {}, Target: { HostId: agent.hostId },
      NotBefore: new Date(now - 60_000).toISOString(), NotAfter: new Date(now + 600_000).toISOString(), Nonce: randomBytes(24).toString('base64url'),
      Requester: 'test', ResultKey: resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).toString('base64url'), ...overrides };
    const signed: PrivopRequestFile = { Request: body, Signature: await signDetachedJws(readFileSync(join(keys, 'signer.key'), 'utf8'),
      canonicalJson(body), PRIVOP_JWS_TYPE) };
    const path = file('req.json');
    writeFileSync(path, JSON.stringify(signed));
    return path;
  };
  const deliver = async (requestPath: string) => {
    const path = file('sealed.bin');
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', path);
    return path;
  };
  const open = async (sealedPath: string, requestPath?: string, keyDir = keys) => JSON.parse(await trustplane('privop', 'open', sealedPath,
    '--key', join(keyDir, 'result.key'), ...(requestPath ? ['--request', requestPath] : []))) as PrivopResultPlaintext;
  const refusal = async (requestPath: string) => fails('privop', 'deliver', requestPath, '--agent', agent.socketPath);
  /** The request file with one edit applied to its parsed JSON. */
  const edited = (requestPath: string, edit: (file: PrivopRequestFile) => void) => {
    const parsed = JSON.parse(readFileSync(requestPath, 'utf8')) as PrivopRequestFile;
    edit(parsed);
    const path = file('edited.json');
    writeFileSync(path, JSON.stringify(parsed, null, 2));
    return path;
  };

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'ops');
    const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'ops', '--uses', '1', '--json'], { env })).Token;
    for (const keyDir of [keys, other, limited]) await trustplane('privop', 'keygen', '--out', keyDir);
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({ signers: [
      { publicKeyFile: 'keys/signer.pub', operations: ['*'], name: 'ops-team' },
      { publicKeyFile: 'limited/signer.pub', operations: ['system.snapshot'], name: 'watch' },
    ] }));
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'privops-host', extraArgs: ['--privop-trust', trustFile] });
  });
  after(async () => {
    await agent?.stop();
    await server?.dispose();
  });

  it('keygen writes PEM key pairs, the private halves readable by their owner only', () => {
    for (const name of ['signer.key', 'result.key']) assert.equal(statSync(join(keys, name)).mode & 0o777, 0o600, name);
    assert.match(readFileSync(join(keys, 'signer.key'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.match(readFileSync(join(keys, 'result.pub'), 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
    assert.equal(resultPublicKeyFromPem(readFileSync(join(keys, 'result.pub'), 'utf8')).length, 32);
  });

  it('runs system.snapshot and the result opens with the result key only', async () => {
    const requestPath = await request('system.snapshot');
    const sealedPath = await deliver(requestPath);
    // The courier's file holds no plaintext of the result.
    assert.doesNotMatch(readFileSync(sealedPath, 'utf8'), new RegExp(release().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    const opened = await open(sealedPath, requestPath);
    assert.equal(opened.HostId, agent.hostId);
    assert.equal(opened.Operation, 'system.snapshot');
    const result = opened.Result as { Kernel: { Release: string }; Hostname: string; Mounts: Array<{ MountPoint: string }>; UptimeSeconds: number;
      Figures: Record<string, number> };
    assert.equal(result.Kernel.Release, release());
    // The figures a health watch keeps a baseline of: this test's own processes are among those counted.
    assert.ok(result.Figures.ProcessCount >= 3 && result.Figures.MemoryAvailableBytes > 0 && result.Figures.MemoryAvailableBytes <= result.Figures.MemoryTotalBytes);
    assert.equal(result.Figures.MountCount, result.Mounts.length);
    assert.equal(result.Hostname, hostname());
    assert.ok(result.Mounts.some((mount) => mount.MountPoint === '/'));
    assert.ok(result.UptimeSeconds > 0);

    // With the account CA, the host certificate must chain to it; a certificate from elsewhere is refused.
    const identity = JSON.parse(readFileSync(join(agent.stateDir, 'identity.json'), 'utf8')) as { CaCertificate: string; Certificate: string };
    writeFileSync(join(dir, 'account-ca.pem'), identity.CaCertificate);
    writeFileSync(join(dir, 'not-a-ca.pem'), identity.Certificate);
    await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--ca', join(dir, 'account-ca.pem'));
    assert.match(await fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--ca', join(dir, 'not-a-ca.pem')), /PrivopUntrustedHost/);

    assert.match(await fails('privop', 'open', sealedPath, '--key', join(other, 'result.key')), /PrivopCannotDecrypt/);
    assert.match(await fails('privop', 'open', sealedPath, '--key', join(other, 'result.key'), '--request', requestPath), /PrivopWrongResultKey/);
  });

  it('hashes and reads a file the test wrote, and lists processes', async () => {
    const target = join(dir, 'evidence.txt');
    const content = 'the quick brown fox\n'.repeat(1000);
    writeFileSync(target, content);
    const hashRequest = await request('file.hash', [`path=${target}`]);
    const hashed = (await open(await deliver(hashRequest), hashRequest)).Result as { Sha256: string; Size: number };
    assert.deepEqual(hashed, { Path: target, Size: content.length, Sha256: createHash('sha256').update(content).digest('hex') });

    const readRequest = await request('file.read', [`path=${target}`, 'offset=4', 'length=15']);
    const opened = await open(await deliver(readRequest), readRequest);
    const read = opened.Result as { Length: number; Eof: boolean };
    assert.equal(read.Length, 15);
    assert.equal(Buffer.from(opened.Content?.Base64 ?? '', 'base64').toString(), 'quick brown fox');
    assert.equal(read.Eof, false);

    const listRequest = await request('process.list');
    const listed = (await open(await deliver(listRequest), listRequest)).Result as { Processes: Array<{ Pid: number; Command: string }> };
    assert.ok(listed.Processes.some((entry) => entry.Pid === agent.process.pid && /trustplane/.test(entry.Command)));

    // A file that is not there: accepted and run, the failure sealed too; open says so and exits non-zero.
    const missing = await request('file.hash', [`path=${join(dir, 'missing')}`]);
    assert.match(await fails('privop', 'open', await deliver(missing), '--key', join(keys, 'result.key')), /PrivopOperationFailed.*FileUnavailable/);
    // Parameters are checked before anything runs.
    assert.match(await refusal(await request('file.read', ['path=relative/path'])), /PrivopInvalidParameters.*absolute/);
    assert.match(await refusal(await request('file.read', [`path=${target}`, `length=${128 * 1024 ** 3}`])), /PrivopInvalidParameters/);
  });

  it('refuses a request changed by one byte: parameter, nonce, result key or signature', async () => {
    const target = join(dir, 'a.txt');
    writeFileSync(target, 'a');
    const original = await request('file.hash', [`path=${target}`]);
    const changes: Array<(file: PrivopRequestFile) => void> = [
      (f) => { f.Request.Parameters.path = `${target.slice(0, -5)}b.txt`; },
      (f) => { f.Request.Nonce = `${f.Request.Nonce.slice(0, 5)}${f.Request.Nonce[5] === 'A' ? 'B' : 'A'}${f.Request.Nonce.slice(6)}`; },
      (f) => { f.Request.ResultKey = resultPublicKeyFromPem(readFileSync(join(other, 'result.pub'), 'utf8')).toString('base64url'); },
      (f) => { const at = f.Signature.length - 20; f.Signature = `${f.Signature.slice(0, at)}${f.Signature[at] === 'A' ? 'B' : 'A'}${f.Signature.slice(at + 1)}`; },
    ];
    for (const change of changes) assert.match(await refusal(edited(original, change)), /PrivopBadSignature/);
    // The original still works (none of the refusals used its nonce).
    await open(await deliver(original), original);
  });

  it('refuses an expired or not yet valid window, another host, a class the host is not in', async () => {
    const past = Date.now() - 3_600_000;
    assert.match(await refusal(await signedRequest({ NotBefore: new Date(past).toISOString(), NotAfter: new Date(past + 600_000).toISOString() })),
      /PrivopExpired/);
    const future = Date.now() + 3_600_000;
    assert.match(await refusal(await signedRequest({ NotBefore: new Date(future).toISOString(), NotAfter: new Date(future + 600_000).toISOString() })),
      /PrivopNotYetValid/);
    assert.match(await refusal(await request('system.snapshot', [], { host: 'h-0123456789abcdef' })), /PrivopWrongHost/);
    assert.match(await refusal(await signedRequest({ Target: { Class: 'web' } })), /PrivopWrongHost/);
  });

  it('refuses signers without permission and signers it does not trust', async () => {
    const target = join(dir, 'b.txt');
    writeFileSync(target, 'b');
    assert.match(await refusal(await request('file.hash', [`path=${target}`], { signer: limited })), /PrivopNotPermitted/);
    const allowed = await request('system.snapshot', [], { signer: limited });
    assert.equal((await open(await deliver(allowed), allowed)).Operation, 'system.snapshot');
    assert.match(await refusal(await request('system.snapshot', [], { signer: other })), /PrivopSignerNotTrusted/);
  });

  it('refuses a replayed nonce, also after the agent restarts', async () => {
    const once = await request('system.snapshot');
    await deliver(once);
    assert.match(await refusal(once), /PrivopReplay/);
    await agent.stop();
    agent = await startTestAgent({ serverUrl: server.url, stateDir: agent.stateDir, extraArgs: ['--privop-trust', join(dir, 'privop-trust.json')] });
    assert.match(await refusal(once), /PrivopReplay/);
    const fresh = await request('system.snapshot');
    assert.equal((await open(await deliver(fresh), fresh)).HostId, agent.hostId);
  });

  it('a result forged by a courier (its own CA, a certificate naming the host) does not open: the account CA is required', async () => {
    const requestPath = await request('file.hash', ['path=/etc/hostname']);
    const { request: signed } = parsePrivopRequestFile(readFileSync(requestPath));
    // Everything a courier sees in a plain request is enough to seal a result to its result key.
    const rogue = await createCertificateAuthority('courier CA', 1);
    const hostKey = await generateAsymmetricPair('ECC_NIST_P256');
    const identity = JSON.parse(readFileSync(join(agent.stateDir, 'identity.json'), 'utf8')) as { AccountId: string; CaCertificate: string };
    const issued = await issueCertificate({ authority: rogue, subjectPublicKeyDer: hostKey.publicKeyDer, commonName: agent.hostId, usage: 'client',
      uris: [hostUri(identity.AccountId, agent.hostId)], validityDays: 1 });
    const digest = privopRequestDigest(signed);
    const plaintext = async function* () {
      yield resultRecord({ Version: 2, RequestDigest: digest.toString('base64url'), HostId: agent.hostId, Operation: 'file.hash',
        StartedAt: new Date().toISOString(), CompletedAt: new Date().toISOString(), Result: { Path: '/etc/hostname', Sha256: 'forged' } });
    };
    const pieces: Buffer[] = [];
    for await (const piece of sealPrivopResultStream({ resultKey: Buffer.from(signed.ResultKey, 'base64url'), digest, hostId: agent.hostId,
      hostCertificatePem: certificateToPem(issued.certificateDer), hostKeyPem: privateKeyToPem(hostKey.privateKeyDer), plaintext: plaintext() })) pieces.push(piece);
    const forged = file('forged.bin');
    writeFileSync(forged, Buffer.concat(pieces));

    // The account CA comes from the server when no --ca is given; `host ca` prints the same certificate.
    assert.match(await fails('privop', 'open', forged, '--key', join(keys, 'result.key'), '--request', requestPath), /PrivopUntrustedHost/);
    assert.equal((await trustplane('host', 'ca')).trim(), identity.CaCertificate.trim());
    // Only the explicit opt-out opens it, and says what that means.
    const unchecked = await trustplane('privop', 'open', forged, '--key', join(keys, 'result.key'), '--request', requestPath, '--insecure-skip-host-check');
    assert.equal((JSON.parse(unchecked) as PrivopResultPlaintext & { Result: { Sha256: string } }).Result.Sha256, 'forged');
    // Without --ca and without a server to ask, opening is refused with the way out.
    const offline = await fails('privop', 'open', forged, '--key', join(keys, 'result.key'), '--endpoint', 'http://127.0.0.1:9');
    assert.match(offline, /PrivopHostUnverified[\s\S]*--ca account-ca\.pem/);
  });

  it('a sealed result altered in transit, or answering another request, does not open', async () => {
    const requestPath = await request('system.snapshot');
    const sealedPath = await deliver(requestPath);
    const sealed = readFileSync(sealedPath);
    const headerEnd = 28 + 4 + sealed.readUInt32BE(28);
    // A byte of the header's digest, of the encapsulated key, of a ciphertext frame, of the signature; and a cut.
    const digestAt = sealed.indexOf('"RequestDigest":"') + 20;
    const encAt = sealed.indexOf('"Enc":"') + 10;
    for (const [what, at] of [['digest', digestAt], ['enc', encAt], ['frame', headerEnd + 5 + 20], ['signature', sealed.length - 3]] as const) {
      const path = file('tampered.bin');
      const tampered = Buffer.from(sealed);
      tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41;
      writeFileSync(path, tampered);
      assert.match(await fails('privop', 'open', path, '--key', join(keys, 'result.key')), /trustplane: Privop\w+: /, what);
    }
    const cut = file('cut.bin');
    writeFileSync(cut, sealed.subarray(0, sealed.length - 10));
    assert.match(await fails('privop', 'open', cut, '--key', join(keys, 'result.key')), /PrivopTruncatedResult/);
    const another = await request('system.snapshot');
    assert.match(await fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', another), /PrivopRequestMismatch/);
  });

  it('audits every accepted and refused request without parameter values', () => {
    const lines = readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(lines.some((line) => line.Outcome === 'accepted' && line.Operation === 'file.hash'));
    assert.ok(lines.some((line) => line.Outcome === 'refused' && line.Code === 'PrivopReplay'));
    assert.ok(lines.some((line) => line.Outcome === 'refused' && line.Code === 'PrivopNotPermitted' && line.Signer === 'watch'));
    assert.ok(lines.some((line) => line.Outcome === 'failed' && line.Code === 'FileUnavailable'));
    const text = readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8');
    assert.doesNotMatch(text, /evidence\.txt/);
    assert.equal(statSync(join(agent.stateDir, 'privop-audit.jsonl')).mode & 0o077, 0);
  });
});
