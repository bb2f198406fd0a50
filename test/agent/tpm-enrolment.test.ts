// Token-less enrolment by TPM (swtpm + tpm2-tools) with real server and agent processes: a class
// that refuses join tokens, an operator allowlist of endorsement keys (so a genuine TPM from any
// vendor does not walk in), credential activation before the host exists, and what the verifier
// refuses: an unlisted EK, a wrong secret, a second finish, a second live host per EK, a removed EK.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { kmsClient } from '../helpers/kms-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFails, trustplaneJson } from '../helpers/cli.ts';
import { startTestAgent, type AgentStatusView, type TestAgent } from '../helpers/agent.ts';
import { locateTpmTools, startSwtpm, type Swtpm } from '../helpers/swtpm.ts';
import { Tpm, type TpmProvisioning } from '../../src/agent/tpm.ts';
import { tpmEnrollmentProofMessage, tpmEnrollmentFinishMessage } from '../../src/shared/fleet-wire.ts';

const located = await locateTpmTools({ swtpm: true });

interface Reply { status: number; body: Record<string, unknown> }
interface HostShow { Host: { Classes: string[] }; Attestation: { Status: string; Mode: string; AttestationKeyActivated?: boolean } }
interface ClassList { Classes: Array<{ Name: string; Attestation?: { Mode: string; JoinTokens?: boolean } }> }
interface EkList { Eks: Array<{ Fingerprint: string; EnrolledHostId?: string }> }

const keyIds = (status: AgentStatusView) => status.Keys.map((key) => key.KeyId);

/** The EK fingerprint as anyone can compute it from the EK certificate: SHA-256 of its SubjectPublicKeyInfo. */
function fingerprintFromCertificate(der: Buffer): string {
  return createHash('sha256').update(new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}

describe('enrolment by TPM, without a join token (swtpm)', { skip: located.skip }, () => {
  let listed: Swtpm;
  let other: Swtpm;
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let kms: KMSClient;
  let agent: TestAgent | undefined;
  let appKey: string;
  let listedKeys: TpmProvisioning;
  let otherKeys: TpmProvisioning;
  let otherFingerprint: string;
  let otherHostId: string;
  let unlistedMessage: string;
  const dir = makeTempDir();
  const kernel = join(dir, 'vmlinuz');
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  const show = (hostId: string) => json<HostShow>('host', 'show', hostId);

  const post = async (path: string, body: unknown): Promise<Reply> => {
    const response = await fetch(new URL(path, server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: await response.json() as Record<string, unknown> };
  };

  /** Plays an agent's first half with the other TPM: its own identity key, the proof, the TPM's keys. */
  const started = new WeakMap<Reply, { publicKeyDer: Buffer; hpke: Buffer }>();
  const start = async (keys: TpmProvisioning, fingerprint: string): Promise<Reply> => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) as { privateKey: KeyObject; publicKey: KeyObject };
    const hpke = randomBytes(32);
    const publicKeyDer = publicKey.export({ type: 'spki', format: 'der' });
    const reply = await post('/v1/fleet/enroll-tpm/start', { EkPublic: keys.ekPublic.toString('base64'), EkCertificate: keys.ekCertificate?.toString('base64'),
      AkPublic: keys.akPublic.toString('base64'), PublicKey: publicKeyDer.toString('base64'),
      HpkePublicKey: hpke.toString('base64'), Proof: sign('sha256', tpmEnrollmentProofMessage(fingerprint, hpke), privateKey).toString('base64'),
      Name: 'db-other' });
    started.set(reply, { publicKeyDer, hpke });
    return reply;
  };
  const activate = async (started: Reply): Promise<Buffer> => new Tpm({ tcti: other.tcti }).activateCredential(
    Buffer.from(String(started.body.CredentialBlob), 'base64'), Buffer.from(String(started.body.EncryptedSecret), 'base64'));
  /** The finishing proof: an HMAC keyed by the recovered secret over the keys being enrolled (`keys` overrides them, as a relay would). */
  const finish = (reply: Reply, secret: Buffer, keys?: { publicKeyDer: Buffer; hpke: Buffer }) => {
    const enrolled = keys ?? started.get(reply)!;
    const proof = createHmac('sha256', secret).update(tpmEnrollmentFinishMessage(String(reply.body.EnrolmentId), enrolled.publicKeyDer, enrolled.hpke)).digest();
    return post('/v1/fleet/enroll-tpm/finish', { EnrolmentId: reply.body.EnrolmentId, Proof: proof.toString('base64') });
  };

  before(async () => {
    writeFileSync(kernel, 'kernel 6.6 build 7');
    listed = await startSwtpm();
    other = await startSwtpm();
    // Both manufacturers' EK CAs are trusted: genuine TPMs, which the allowlist still keeps out until an operator names them.
    server = await startTestServer({ home: makeTempDir(), extraArgs: ['--ek-ca', listed.issuerCertificatePath, '--ek-ca', other.issuerCertificatePath] });
    env = cliEnv(server);
    kms = kmsClient(server);
    appKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await trustplane('class', 'create', 'db', '--attestation', 'tpm', '--interval', '1s', '--join-tokens', 'deny');
    await trustplane('class', 'grant-key', 'db', appKey);
    // Read once here; each TPM is used by one program at a time (tpm2-tools without a resource manager).
    listedKeys = await new Tpm({ tcti: listed.tcti }).provision();
    otherKeys = await new Tpm({ tcti: other.tcti }).provision();
    otherFingerprint = fingerprintFromCertificate(otherKeys.ekCertificate!);
  });

  after(async () => {
    await agent?.stop();
    kms?.destroy();
    await server?.dispose();
    await other?.stop();
    await listed?.stop();
  });

  it('makes no join token for a class that refuses them, and a token made before no longer enrols', async () => {
    assert.match(await fails('host', 'join-token', '--classes', 'db'), /ValidationException: Class db admits no hosts with join tokens/);
    await trustplane('class', 'create', 'replica', '--parent', 'db');
    assert.match(await fails('host', 'join-token', '--classes', 'db/replica'), /ValidationException: Class db admits no/, 'nor for a class below it');
    const classes = await json<ClassList>('class', 'list');
    assert.equal(classes.Classes.find((record) => record.Name === 'db')?.Attestation?.JoinTokens, false);
    assert.match(await trustplane('class', 'describe', 'db'), /join tokens: denied/);

    await trustplane('class', 'create', 'legacy', '--attestation', 'tpm');
    const { Token } = await json<{ Token: string }>('host', 'join-token', '--classes', 'legacy');
    await trustplane('class', 'set-attestation', 'legacy', '--join-tokens', 'deny');
    await assert.rejects(startTestAgent({ serverUrl: server.url, joinToken: Token, name: 'late' }),
      /AccessDeniedException: Class legacy no longer admits hosts with join tokens/);
  });

  it('refuses a genuine TPM whose endorsement key is on no list, with one generic answer', async () => {
    await assert.rejects(startTestAgent({ serverUrl: server.url, name: 'stranger', extraArgs: ['--tpm', other.tcti] }),
      /InvalidEndorsementKeyException/);
    const refused = await start(otherKeys, otherFingerprint);
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
    assert.equal(refused.body.__type, 'InvalidEndorsementKeyException');
    unlistedMessage = String(refused.body.message);
    // Neither a token nor a TPM: the agent says what it needs.
    await assert.rejects(startTestAgent({ serverUrl: server.url, name: 'nothing' }), /NotEnrolled: .*--join-token.*--tpm/);
  });

  it('enrols an agent with --tpm and no token once its EK is allowed; it affirms and gets the class key', async () => {
    const certificatePath = join(dir, 'ek.pem');
    writeFileSync(certificatePath, new X509Certificate(listedKeys.ekCertificate!).toString());
    const allowed = await json<{ Fingerprint: string; Added: boolean }>('class', 'allow-ek', 'db', '--ek-certificate', certificatePath);
    assert.deepEqual(allowed, { Class: 'db', Fingerprint: fingerprintFromCertificate(listedKeys.ekCertificate!), Added: true });

    agent = await startTestAgent({ serverUrl: server.url, name: 'db-1', extraArgs: ['--tpm', listed.tcti, '--measure', kernel] });
    await agent.waitFor((status) => status.Attestation?.Status === 'pending', 'the first (unappraised) verdict');
    const enrolled = await show(agent.hostId);
    assert.deepEqual(enrolled.Host.Classes, ['db']);
    assert.equal(enrolled.Attestation.Mode, 'tpm');
    assert.equal(enrolled.Attestation.AttestationKeyActivated, true);
    assert.doesNotMatch(agent.output(), /TPM attestation key activated with the verifier/, 'the AK was trusted at enrolment, not activated again');
    const eks = await json<EkList>('class', 'list-eks', 'db');
    assert.deepEqual(eks.Eks.map((ek) => [ek.Fingerprint, ek.EnrolledHostId]), [[allowed.Fingerprint, agent.hostId]]);
    assert.deepEqual(keyIds(await agent.status()), []);

    await trustplane('class', 'set-reference', 'db', '--from-host', agent.hostId);
    const affirmed = await agent.waitFor((status) => status.Attestation?.Status === 'affirming' && keyIds(status).includes(appKey), 'affirming with keys');
    assert.deepEqual(affirmed.Attestation?.Failures, []);
  });

  it('refuses a wrong secret, and finishes an enrolment at most once', async () => {
    const ekPublicPath = join(dir, 'other-ek.pub');
    writeFileSync(ekPublicPath, otherKeys.ekPublic);
    const allowed = await json<{ Fingerprint: string }>('class', 'allow-ek', 'db', '--ek-public', ekPublicPath);
    assert.equal(allowed.Fingerprint, otherFingerprint, 'the public area and the certificate name the same EK');

    const guessed = await start(otherKeys, otherFingerprint);
    assert.equal(guessed.status, 200, JSON.stringify(guessed.body));
    const wrong = await finish(guessed, randomBytes(32));
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.__type, 'InvalidProofException');
    const late = await finish(guessed, await activate(guessed));
    assert.equal(late.status, 401, 'a refused finish used the enrolment up');
    assert.equal(late.body.__type, 'InvalidEnrolmentException');

    // A relay that put its own identity key in at the start cannot finish: the real agent's MAC covers the agent's key.
    const relayed = await start(otherKeys, otherFingerprint);
    const agentsOwnKeys = { publicKeyDer: generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'der' }),
      hpke: randomBytes(32) };
    const swapped = await finish(relayed, await activate(relayed), agentsOwnKeys);
    assert.equal(swapped.status, 400);
    assert.equal(swapped.body.__type, 'InvalidProofException');

    const started = await start(otherKeys, otherFingerprint);
    const secret = await activate(started);
    const done = await finish(started, secret);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.deepEqual(done.body.Classes, ['db']);
    assert.match(String(done.body.Certificate), /BEGIN CERTIFICATE/);
    otherHostId = String(done.body.HostId);
    const again = await finish(started, secret);
    assert.equal(again.status, 401);
    assert.equal(again.body.__type, 'InvalidEnrolmentException');
    assert.equal((await show(otherHostId)).Attestation.AttestationKeyActivated, true);
  });

  it('enrols no second live host with the same endorsement key', async () => {
    const started = await start(otherKeys, otherFingerprint);
    const refused = await finish(started, await activate(started));
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.equal(refused.body.__type, 'ConflictException');
    assert.match(String(refused.body.message), new RegExp(otherHostId));
    const hosts = await json<Array<{ HostId: string }>>('host', 'list');
    assert.equal(hosts.length, 2, 'no host was recorded for the refused enrolment');
  });

  it('enrols nothing more with an endorsement key once it is removed; the host it enrolled stays', async () => {
    await trustplane('class', 'remove-ek', 'db', otherFingerprint);
    const eks = await json<EkList>('class', 'list-eks', 'db');
    assert.ok(!eks.Eks.some((ek) => ek.Fingerprint === otherFingerprint));
    const refused = await start(otherKeys, otherFingerprint);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.__type, 'InvalidEndorsementKeyException');
    assert.equal(refused.body.message, unlistedMessage, 'a removed EK and one never listed get the same answer');
    assert.deepEqual((await show(otherHostId)).Host.Classes, ['db']);
  });
});
