// Host enrolment with a join token against a real server: proof of key possession, a client
// certificate from the account's fleet CA, single-use tokens, and the host inventory.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { operatorCall, rootCredentials, trustplaneCall } from '../../helpers/iam-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson } from '../../helpers/cli.ts';

interface Enrolled { HostId: string; AccountId: string; Classes: string[]; Certificate: string; CaCertificate: string; CertificateExpiresAt: number }

function hostKey(): { privateKey: KeyObject; spki: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, spki: publicKey.export({ format: 'der', type: 'spki' }) };
}

/** The key ring (HPKE, X25519) public key hosts enrol with: any 32 bytes will do for these tests. */
const HPKE_PUBLIC_KEY = randomBytes(32).toString('base64');

function proofFor(privateKey: KeyObject, token: string): string {
  return sign('sha256', Buffer.from(`trustplane-enroll-v1\n${token}\n${HPKE_PUBLIC_KEY}`), privateKey).toString('base64');
}

describe('host enrolment', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let keyId: string;
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const enroll = async (body: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const payload = typeof body === 'string' ? body : JSON.stringify({ HpkePublicKey: HPKE_PUBLIC_KEY, ...body as object });
    const response = await fetch(`${server.url}/v1/fleet/enroll`, { method: 'POST', body: payload });
    return { status: response.status, json: await response.json() as Record<string, unknown> };
  };
  const token = async (classes: string, uses = 1) => (await json<{ Token: string }>('host', 'join-token', '--classes', classes, '--uses', String(uses))).Token;

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    const client = kmsClient(server);
    keyId = (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    client.destroy();
    await trustplane('class', 'create', 'web');
    await trustplane('class', 'create', 'db');
    await trustplane('class', 'grant-key', 'web', keyId);
  });
  after(async () => { await server?.dispose(); });

  let firstHost: string;

  it('issues a client certificate from the account CA to a host that proves it holds its key', async () => {
    const joinToken = await token('web', 2);
    const key = hostKey();
    const reply = await enroll({ JoinToken: joinToken, PublicKey: key.spki.toString('base64'), Proof: proofFor(key.privateKey, joinToken),
      Name: 'web-1.example', AgentVersion: '0.1.0' });
    assert.equal(reply.status, 200, JSON.stringify(reply.json));
    const enrolled = reply.json as unknown as Enrolled;
    firstHost = enrolled.HostId;
    assert.match(enrolled.HostId, /^h-[0-9a-f]{20}$/);
    assert.deepEqual(enrolled.Classes, ['web']);
    const ca = new X509Certificate(enrolled.CaCertificate);
    const certificate = new X509Certificate(enrolled.Certificate);
    assert.equal(ca.ca, true);
    assert.equal(certificate.ca, false);
    assert.equal(certificate.verify(ca.publicKey), true, 'signed by the CA');
    assert.equal(certificate.checkIssued(ca), true);
    assert.deepEqual(certificate.publicKey.export({ format: 'der', type: 'spki' }), key.spki);
    assert.equal(certificate.subject, `CN=${enrolled.HostId}`);
    assert.deepEqual(certificate.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client authentication only');
    assert.match(certificate.subjectAltName ?? '', new RegExp(`URI:trustplane:host:${enrolled.AccountId}:${enrolled.HostId}`));
    const days = (new Date(certificate.validTo).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `valid ${days} days`);

    // The same token's second use: another host, the same CA.
    const second = hostKey();
    const again = await enroll({ JoinToken: joinToken, PublicKey: second.spki.toString('base64'), Proof: proofFor(second.privateKey, joinToken), Name: 'web-2' });
    assert.equal(again.status, 200);
    assert.equal(again.json.CaCertificate, enrolled.CaCertificate);
    // Used up.
    const third = hostKey();
    const refused = await enroll({ JoinToken: joinToken, PublicKey: third.spki.toString('base64'), Proof: proofFor(third.privateKey, joinToken), Name: 'web-3' });
    assert.deepEqual([refused.status, refused.json.__type], [401, 'InvalidJoinTokenException']);
  });

  it('refuses bad proofs, wrong key types, unknown tokens and malformed requests without using the token', async () => {
    const joinToken = await token('db');
    const key = hostKey();
    const otherProof = proofFor(key.privateKey, `${joinToken}x`);
    const badProof = await enroll({ JoinToken: joinToken, PublicKey: key.spki.toString('base64'), Proof: otherProof, Name: 'db-1' });
    assert.deepEqual([badProof.status, badProof.json.__type], [400, 'InvalidProofException']);
    const ed = generateKeyPairSync('ed25519');
    const wrongType = await enroll({ JoinToken: joinToken, PublicKey: ed.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
      Proof: sign(null, Buffer.from(joinToken), ed.privateKey).toString('base64'), Name: 'db-1' });
    assert.deepEqual([wrongType.status, wrongType.json.__type], [400, 'ValidationException']);
    const unknown = await enroll({ JoinToken: 'tpjoin_nope', PublicKey: key.spki.toString('base64'), Proof: otherProof, Name: 'db-1' });
    assert.deepEqual([unknown.status, unknown.json.__type], [401, 'InvalidJoinTokenException']);
    assert.equal((await enroll('{not json')).json.__type, 'SerializationException');
    assert.equal((await enroll({ JoinToken: joinToken })).json.__type, 'ValidationException');
    assert.equal((await enroll({ JoinToken: joinToken, PublicKey: key.spki.toString('base64'), Proof: otherProof, Name: 'db 1' })).status, 400);
    const get = await fetch(`${server.url}/v1/fleet/enroll`);
    assert.equal(get.status, 405);
    // None of that used the token.
    const good = await enroll({ JoinToken: joinToken, PublicKey: key.spki.toString('base64'), Proof: proofFor(key.privateKey, joinToken), Name: 'db-1' });
    assert.equal(good.status, 200, JSON.stringify(good.json));
  });

  it('lists, shows, moves and removes hosts; a class with hosts is not deleted', async () => {
    const listed = await json<Array<{ HostId: string; Classes: string[]; LastSeen: number; Keys: Record<string, number[]> }>>('host', 'list');
    assert.equal(listed.length, 3);
    assert.deepEqual(Object.keys(listed[0]!).sort(), ['Classes', 'HostId', 'Keys', 'LastSeen']);
    const first = listed.find((entry) => entry.HostId === firstHost)!;
    assert.deepEqual(first.Classes, ['web']);
    const shown = await json<{ Host: { EntitledKeyIds: string[]; AgentVersion: string } }>('host', 'show', firstHost);
    assert.deepEqual(shown.Host.EntitledKeyIds, [keyId]);
    assert.equal(shown.Host.AgentVersion, '0.1.0');
    await trustplane('host', 'set-classes', firstHost, 'web,db');
    assert.deepEqual((await json<{ Host: { Classes: string[] } }>('host', 'show', firstHost)).Host.Classes, ['db', 'web']);
    await assert.rejects(trustplane('host', 'set-classes', firstHost, 'nope'), (error: { stderr: string }) => /NotFoundException: Class nope does not exist/.test(error.stderr));
    await assert.rejects(trustplane('class', 'delete', 'db'), (error: { stderr: string }) => /ConflictException/.test(error.stderr));
    await trustplane('host', 'remove', firstHost);
    await assert.rejects(trustplane('host', 'show', firstHost), (error: { stderr: string }) => /NotFoundException/.test(error.stderr));
    const changes = await trustplaneCall<{ Changes: Array<{ Kind: string; HostId?: string }> }>(server, rootCredentials(server), 'TrustPlaneFleet.ListChanges');
    assert.deepEqual(changes.Changes.filter((change) => change.HostId === firstHost).map((change) => change.Kind),
      ['host-enrolled', 'host-classes-changed', 'host-removed']);
  });

  it('keeps the CA usable across a domain key rotation (its private key is rewrapped like every other secret)', async () => {
    await operatorCall(server, rootCredentials(server), 'RotateDomainKey');
    for (;;) {
      const { DomainKeyRotation: progress } = await operatorCall<{ DomainKeyRotation: { State: string } }>(server, rootCredentials(server), 'GetDomainKeyRotation');
      if (progress.State === 'Idle') break;
      await delay(50);
    }
    const joinToken = await token('web');
    const key = hostKey();
    const reply = await enroll({ JoinToken: joinToken, PublicKey: key.spki.toString('base64'), Proof: proofFor(key.privateKey, joinToken), Name: 'after-rotation' });
    assert.equal(reply.status, 200, JSON.stringify(reply.json));
  });
});
