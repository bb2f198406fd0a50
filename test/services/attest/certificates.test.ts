// Attested certificates and app keys end to end, with real server and agent processes in software
// mode: a CSR is refused until the host affirms, then signed by the account's fleet CA with only
// what the verifier decides (CN, host URI, DNS names, serverAuth+clientAuth); the agent's
// VerifyCertificate does RFC 5280 path validation with revocation (good, expired, wrong purpose,
// foreign CA, intermediate without cA, revoked after a quarantine, seen in the CRL and the status
// endpoint); app keys are kept per class and released only to active, affirming hosts of it.
import 'reflect-metadata';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { startTestServer, makeTempDir, type TestServer } from '../../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson } from '../../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../../helpers/agent.ts';
import { hostCaller } from '../../helpers/host-call.ts';
import { AgentState } from '../../../src/agent/state.ts';
import {
  certificateToPem, createCertificateAuthority, createCertificateRequest, createRevocationList, generateAsymmetricPair, issueCertificate,
  validateCertificatePath, verifyRevocationList, type CertificateAuthority,
} from '../../../src/shared/crypto/index.ts';
import { attestedHostUri, hostUri } from '../../../src/shared/fleet-wire.ts';

interface IssuedView { Certificate: string; Chain: string[]; Serial: string; NotAfter: string }
interface VerifyView { Valid: boolean; Reason?: string; Subject: string; NotAfter: string }
interface StatusView { Serial: string; Status: string; RevokedAt?: string; Reason?: string; NotAfter?: string }
interface HostShow { Host: { Status: string }; Attestation: { Status: string; Measurements?: Record<string, string> } }

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const subtle = webcrypto.subtle;
type KeyAlgorithm = webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams | webcrypto.Algorithm;
type SigningAlgorithm = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['signingAlgorithm'];

/** A key pair and a PEM CSR for it, made with @peculiar/x509 (any algorithm), asking for `extensions`. */
async function csrFor(algorithm: KeyAlgorithm, signing: SigningAlgorithm, extensions: x509.Extension[] = [],
  name = 'CN=whatever-i-like, O=Evil Corp') {
  const keys = await subtle.generateKey(algorithm, true, ['sign', 'verify']) as webcrypto.CryptoKeyPair;
  const request = await x509.Pkcs10CertificateRequestGenerator.create({ name, keys: keys as Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'],
    signingAlgorithm: signing, extensions });
  return { keys, pem: request.toString('pem') };
}

/** A P-256 key (PKCS#8 and SPKI DER) and a CSR for it, the way an agent makes one. */
async function p256Csr(dnsNames: string[] = []) {
  const pair = await generateAsymmetricPair('ECC_NIST_P256');
  return { pair, pem: await createCertificateRequest({ privateKeyPkcs8: pair.privateKeyDer, publicKeyDer: pair.publicKeyDer, commonName: 'workload', dnsNames }) };
}

const sanOf = (certificate: X509Certificate) => (certificate.subjectAltName ?? '').split(', ').filter(Boolean).sort();

describe('attested certificates and app keys', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  const agents: TestAgent[] = [];
  let web: TestAgent;
  let db1: TestAgent;
  let db2: TestAgent;
  let hostCertificate: IssuedView;
  let workload: IssuedView;
  let caPem: string;
  const boot = makeTempDir();
  const kernel = join(boot, 'vmlinuz');
  const storedKey = webcrypto.getRandomValues(new Uint8Array(48));
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const start = async (joinToken: string, name: string, extraArgs: string[] = []) => {
    const agent = await startTestAgent({ serverUrl: server.url, joinToken, name, extraArgs });
    agents.push(agent);
    return agent;
  };
  const status = (agent: TestAgent) => (agent.waitFor((view) => view.Attestation !== undefined, 'a first verdict'));
  const affirming = (agent: TestAgent) => agent.waitFor((view) => view.Attestation?.Status === 'affirming', 'affirming');
  /** Polls the socket's HostCertificate until `accept` holds (a certificate is asked for after the verdict that allows it). */
  const hostCertificateOf = async (agent: TestAgent, accept: (view: IssuedView) => boolean = () => true): Promise<IssuedView> => {
    const deadline = Date.now() + 15_000;
    let last: unknown;
    for (;;) {
      try {
        const view = await agent.client.call<IssuedView>('HostCertificate');
        if (accept(view)) return view;
        last = view;
      } catch (error) {
        last = error;
      }
      if (Date.now() > deadline) throw new Error(`no acceptable host certificate on ${agent.hostId}: ${String(last)}`);
      await new Promise<void>((resolve) => { setTimeout(resolve, 50); });
    }
  };
  const verify = (agent: TestAgent, body: Record<string, unknown>) => agent.client.call<VerifyView>('VerifyCertificate', body);
  const certificateStatus = async (serial: string) => {
    const response = await fetch(new URL(`/v1/attest/certificates/${serial}`, server.url));
    return { status: response.status, body: await response.json() as StatusView };
  };
  const revocationList = async (accountId: string) => fetch(new URL(`/v1/attest/crl/${accountId}`, server.url));

  before(async () => {
    writeFileSync(kernel, 'kernel 6.1 build 1');
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'web', '--attestation', 'software', '--interval', '1s', '--on-contraindicated', 'flag,revoke');
    // Flag only: a host of db that does not affirm stays active (not quarantined), so it can attest later.
    await trustplane('class', 'create', 'db', '--attestation', 'software', '--interval', '1s', '--on-contraindicated', 'flag');
    const webToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'web')).Token;
    web = await start(webToken, 'web-1', ['--measure', kernel]);
  });

  after(async () => {
    for (const agent of agents) await agent.stop();
    await server?.dispose();
  });

  it('refuses a CSR, and has no host certificate, while the host is pending', async () => {
    assert.equal((await status(web)).Attestation?.Status, 'pending');
    const { pem } = await p256Csr();
    await assert.rejects(web.client.call('IssueCertificate', { Csr: pem }),
      (error: Error) => error.name === 'AccessDeniedException' && /pending/.test(error.message) && /affirms/.test(error.message));
    await assert.rejects(web.client.call('HostCertificate'), { name: 'CertificateUnavailableException' });
  });

  it('issues the host its certificate once it affirms: chained to the account CA, CN, URI SAN and EKU set by the verifier', async () => {
    await trustplane('class', 'set-reference', 'web', '--from-host', web.hostId);
    await affirming(web);
    hostCertificate = await hostCertificateOf(web);
    caPem = hostCertificate.Chain[0];
    const identity = new AgentState(web.stateDir).identity()!;
    assert.equal(new X509Certificate(caPem).fingerprint256, new X509Certificate(identity.CaCertificate).fingerprint256, 'the account fleet CA');
    const certificate = new X509Certificate(hostCertificate.Certificate);
    const ca = new X509Certificate(caPem);
    assert.ok(certificate.checkIssued(ca) && certificate.verify(ca.publicKey), 'signed by the account CA');
    assert.equal(certificate.subject, `CN=${web.hostId}`);
    assert.deepEqual(sanOf(certificate), [`URI:${attestedHostUri(server.accountId, web.hostId)}`, `URI:${hostUri(server.accountId, web.hostId)}`]);
    assert.deepEqual([...certificate.keyUsage].sort(), [SERVER_AUTH, CLIENT_AUTH].sort());
    assert.equal(certificate.ca, false);
    const lifetime = Date.parse(certificate.validTo) - Date.now();
    assert.ok(lifetime > 23 * 3600_000 && lifetime <= 24 * 3600_000, `about 24 h left, not ${lifetime} ms`);
    assert.equal(hostCertificate.Serial, certificate.serialNumber.toLowerCase().replace(/^0+/, ''));
    assert.ok(!('PrivateKey' in hostCertificate) && !JSON.stringify(hostCertificate).includes('PRIVATE KEY'));
    assert.deepEqual(await certificateStatus(hostCertificate.Serial), { status: 200,
      body: { Serial: hostCertificate.Serial, Status: 'good', NotAfter: new Date(certificate.validTo).toISOString() } });
  });

  it('signs a workload\'s CSR keeping only its key and DNS names, and refuses bad requests', async () => {
    const { pem } = await csrFor({ name: 'ECDSA', namedCurve: 'P-384' }, { name: 'ECDSA', hash: 'SHA-384' } as SigningAlgorithm, [
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'API.example.internal' }, { type: 'dns', value: 'api.example.internal' },
        { type: 'url', value: 'trustplane:host:000000000000:h-00' }, { type: 'ip', value: '10.0.0.1' }]),
      new x509.BasicConstraintsExtension(true, 5, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ]);
    workload = await web.client.call<IssuedView>('IssueCertificate', { Csr: pem });
    const certificate = new X509Certificate(workload.Certificate);
    assert.equal(certificate.subject, `CN=${web.hostId}`, 'the requested subject is ignored');
    assert.deepEqual(sanOf(certificate), [`DNS:api.example.internal`, `URI:${attestedHostUri(server.accountId, web.hostId)}`,
      `URI:${hostUri(server.accountId, web.hostId)}`]);
    assert.equal(certificate.ca, false, 'a request for a CA certificate is ignored');
    assert.equal(certificate.publicKey.asymmetricKeyDetails?.namedCurve, 'secp384r1');
    assert.ok(certificate.verify(new X509Certificate(caPem).publicKey));
    assert.deepEqual(workload.Chain, [caPem]);

    const rsa = await csrFor({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
    assert.equal(new X509Certificate((await web.client.call<IssuedView>('IssueCertificate', { Csr: rsa.pem })).Certificate).publicKey.asymmetricKeyType, 'rsa');

    const refused = async (csr: string, pattern: RegExp) => assert.rejects(web.client.call('IssueCertificate', { Csr: csr }),
      (error: Error) => error.name === 'ValidationException' && pattern.test(error.message));
    const weak = await csrFor({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' });
    await refused(weak.pem, /2048/);
    const edwards = await csrFor({ name: 'Ed25519' }, { name: 'Ed25519' });
    await refused(edwards.pem, /not accepted/);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 8] ^= 1;
    await refused(`-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`, /signature/);
    await refused('not a request', /PEM/);
    const many = await p256Csr(Array.from({ length: 21 }, (_, index) => `n${index}.example`));
    await refused(many.pem, /At most 20 DNS names/);
  });

  it('VerifyCertificate: valid for a good certificate, for either purpose, with or without the CA in the chain', async () => {
    for (const Purpose of ['server', 'client', undefined]) {
      const result = await verify(web, { Certificate: workload.Certificate, Purpose });
      assert.equal(result.Valid, true, result.Reason);
      assert.equal(result.Subject, `CN=${web.hostId}`);
      assert.equal(result.NotAfter, workload.NotAfter);
    }
    assert.equal((await verify(web, { Certificate: hostCertificate.Certificate, Chain: [caPem], Purpose: 'server' })).Valid, true);
    await assert.rejects(verify(web, { Certificate: 'garbage' }), { name: 'ValidationException' });
  });

  it('VerifyCertificate: invalid for the wrong purpose, a foreign CA, an intermediate without cA, a CA certificate', async () => {
    // The fleet identity certificate comes from the same CA but says nothing about attestation: refused, even as a client.
    const identity = new AgentState(web.stateDir).identity()!;
    const identityCheck = await verify(web, { Certificate: identity.Certificate, Purpose: 'client' });
    assert.equal(identityCheck.Valid, false);
    assert.match(identityCheck.Reason ?? '', /issued on attestation/);
    const wrongPurpose = await verify(web, { Certificate: identity.Certificate, Purpose: 'server' });
    assert.equal(wrongPurpose.Valid, false);
    assert.match(wrongPurpose.Reason ?? '', /serverAuth/);

    const foreign = await createCertificateAuthority('trustplane fleet CA 000000000000', 30);
    const stranger = await generateAsymmetricPair('ECC_NIST_P256');
    const forged = await issueCertificate({ authority: foreign, subjectPublicKeyDer: stranger.publicKeyDer, commonName: web.hostId, usage: 'both',
      uris: [hostUri(server.accountId, web.hostId), attestedHostUri(server.accountId, web.hostId)], validityDays: 1 });
    const foreignResult = await verify(web, { Certificate: certificateToPem(forged.certificateDer), Chain: [certificateToPem(foreign.certificateDer)] });
    assert.equal(foreignResult.Valid, false);
    assert.match(foreignResult.Reason ?? '', /another CA|no path/);

    // A certificate of ours used as an issuer: signed correctly, but not a CA.
    const { pair, pem } = await p256Csr();
    const intermediate = await web.client.call<IssuedView>('IssueCertificate', { Csr: pem });
    const signingKey = await subtle.importKey('pkcs8', pair.privateKeyDer, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const leafKeys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const leaf = await x509.X509CertificateGenerator.create({ serialNumber: '4a0b', subject: 'CN=service.example', issuer: `CN=${web.hostId}`,
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000), signingKey,
      publicKey: leafKeys.publicKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as SigningAlgorithm,
      extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])] });
    const chained = await verify(web, { Certificate: leaf.toString('pem'), Chain: [intermediate.Certificate], Purpose: 'server' });
    assert.equal(chained.Valid, false);
    assert.match(chained.Reason ?? '', /not a CA/);
    assert.equal(chained.Subject, 'CN=service.example');

    const anchor = await verify(web, { Certificate: caPem });
    assert.equal(anchor.Valid, false);
    assert.match(anchor.Reason ?? '', /CA certificate/);
  });

  it('VerifyCertificate: invalid once a certificate expires', async () => {
    const { pem } = await p256Csr();
    const shortLived = await web.client.call<IssuedView>('IssueCertificate', { Csr: pem, LifetimeSeconds: 1 });
    assert.ok(Date.parse(shortLived.NotAfter) - Date.now() <= 1000);
    const deadline = Date.now() + 10_000;
    let result: VerifyView;
    for (;;) {
      result = await verify(web, { Certificate: shortLived.Certificate, Purpose: 'client' });
      if (!result.Valid || Date.now() > deadline) break;
      await new Promise<void>((resolve) => { setTimeout(resolve, 100); });
    }
    assert.equal(result.Valid, false);
    assert.match(result.Reason ?? '', /^expired at /);
  });

  it('keeps app keys per class: StoreKey and GetKey round trip; refused on a pending host and from another class', async () => {
    const dbToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'db', '--uses', '2')).Token;
    db1 = await start(dbToken, 'db-1');
    assert.equal((await status(db1)).Attestation?.Status, 'pending');
    await assert.rejects(db1.client.call('StoreKey', { Name: 'orders-dek', Key: storedKey }),
      (error: Error) => error.name === 'AccessDeniedException' && /pending/.test(error.message));
    await trustplane('class', 'set-reference', 'db', '--from-host', db1.hostId);
    await affirming(db1);

    const stored = await db1.client.call<{ Name: string; Class: string }>('StoreKey', { Name: 'orders-dek', Key: storedKey });
    assert.deepEqual({ Name: stored.Name, Class: stored.Class }, { Name: 'orders-dek', Class: 'db' });
    const got = await db1.client.call<{ Key: string; Class: string }>('GetKey', { Name: 'orders-dek' });
    assert.deepEqual(Buffer.from(got.Key, 'base64'), Buffer.from(storedKey));
    assert.equal(got.Class, 'db');
    await assert.rejects(db1.client.call('GetKey', { Name: 'nothing-here' }), { name: 'NotFoundException' });
    await assert.rejects(db1.client.call('StoreKey', { Name: 'big', Key: new Uint8Array(1025) }), { name: 'ValidationException' });
    await assert.rejects(db1.client.call('StoreKey', { Name: 'web/x', Key: storedKey }), { name: 'ValidationException' });
    await assert.rejects(db1.client.call('StoreKey', { Name: 'x', Key: storedKey, Class: 'web' }), { name: 'AccessDeniedException' });

    // A host of another class, affirming, is refused the class's key; its own class has none by that name.
    await assert.rejects(web.client.call('GetKey', { Name: 'orders-dek', Class: 'db' }),
      (error: Error) => error.name === 'AccessDeniedException' && /not among the classes/.test(error.message));
    await assert.rejects(web.client.call('GetKey', { Name: 'orders-dek' }), { name: 'NotFoundException' });
    // Also straight at the server, as a host: the verifier decides, not the agent.
    const call = await hostCaller(web.stateDir);
    const direct = await call('/v1/agent/attest/key/get', { Name: 'orders-dek', Class: 'db' });
    assert.equal(direct.status, 403);
  });

  it('gives a second host of the class the key once it attests, and not before', async () => {
    const dbToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'db')).Token;
    // Another configuration (no operational reports): its agent:config measurement is not among the class's reference values.
    db2 = await start(dbToken, 'db-2', ['--no-operational']);
    await db2.waitFor((view) => view.Attestation?.Status === 'contraindicated', 'contraindicated against db-1\'s reference values');
    await assert.rejects(db2.client.call('GetKey', { Name: 'orders-dek' }),
      (error: Error) => error.name === 'AccessDeniedException' && /contraindicated/.test(error.message));
    const { pem } = await p256Csr();
    await assert.rejects(db2.client.call('IssueCertificate', { Csr: pem }),
      (error: Error) => error.name === 'AccessDeniedException' && /contraindicated/.test(error.message));

    // The operator accepts both configurations (several values per component, as for a rolling upgrade).
    const measurements = await Promise.all([db1, db2].map(async (agent) => (await json<HostShow>('host', 'show', agent.hostId)).Attestation.Measurements!));
    const components: Record<string, string[]> = {};
    for (const measured of measurements) for (const [name, digest] of Object.entries(measured)) components[name] = [...new Set([...(components[name] ?? []), digest])];
    assert.equal(components['agent:config'].length, 2);
    const policy = join(makeTempDir(), 'db-reference.json');
    writeFileSync(policy, JSON.stringify({ Components: components }));
    await trustplane('class', 'set-reference', 'db', '--file', policy);
    await affirming(db2);
    const got = await db2.client.call<{ Key: string }>('GetKey', { Name: 'orders-dek' });
    assert.deepEqual(Buffer.from(got.Key, 'base64'), Buffer.from(storedKey));

    const audit = await runTrustplane(['audit', 'query', '--home', server.home, '--operation', 'AttestationGetKey', '--json'], { env });
    assert.match(audit, /app key db\/orders-dek/);
    assert.match(audit, /contraindicated/);
    assert.ok(!audit.includes(Buffer.from(storedKey).toString('base64')));
  });

  it('revokes the host\'s certificates when a changed measured file quarantines it: CRL, status endpoint and VerifyCertificate agree', async () => {
    const before = await revocationList(server.accountId);
    assert.equal(before.status, 200);
    assert.equal(before.headers.get('content-type'), 'application/pkix-crl');
    assert.equal(new x509.X509Crl(Buffer.from(await before.arrayBuffer())).findRevoked(hostCertificate.Serial), null);

    writeFileSync(kernel, 'kernel 6.1 build 1 with a rootkit');
    await web.waitFor((view) => view.Attestation?.Status === 'contraindicated' && (view.Attestation as { Quarantined?: boolean }).Quarantined === true,
      'contraindicated and quarantined');
    await assert.rejects(web.client.call('HostCertificate'), (error: Error) => error.name === 'CertificateUnavailableException' && /quarantined/.test(error.message));

    const revoked = await certificateStatus(hostCertificate.Serial);
    assert.equal(revoked.body.Status, 'revoked');
    assert.equal(revoked.body.Reason, 'attestation contraindicated');
    assert.ok(Date.parse(revoked.body.RevokedAt!) > Date.now() - 60_000);
    assert.equal((await certificateStatus(workload.Serial)).body.Status, 'revoked', 'workload certificates of the host too');
    assert.deepEqual((await certificateStatus('4' + '0'.repeat(31))).body, { Serial: '4' + '0'.repeat(31), Status: 'unknown' });
    assert.equal((await certificateStatus('not-hex')).status, 400);

    const response = await revocationList(server.accountId);
    const crl = new x509.X509Crl(Buffer.from(await response.arrayBuffer()));
    assert.ok(await crl.verify({ publicKey: new x509.X509Certificate(caPem) }), 'signed by the account CA');
    assert.ok(crl.findRevoked(hostCertificate.Serial), 'the host certificate is listed');
    assert.ok(crl.findRevoked(workload.Serial), 'the workload certificate is listed');
    const nextUpdate = crl.nextUpdate!.getTime() - Date.now();
    assert.ok(nextUpdate > 55 * 60_000 && nextUpdate <= 60 * 60_000, `next update in about an hour, not ${nextUpdate} ms`);
    assert.equal((await revocationList('000000000000')).status, 404);
    assert.equal((await revocationList('not-an-account')).status, 404);

    // Another host, which never fetched the CRL, and the quarantined host itself (it forgot its cached CRL) both see it revoked.
    for (const agent of [db1, web]) {
      const result = await verify(agent, { Certificate: hostCertificate.Certificate, Purpose: 'server' });
      assert.equal(result.Valid, false);
      assert.equal(result.Reason, 'revoked');
    }
    // Quarantined: no new certificate.
    const { pem } = await p256Csr();
    await assert.rejects(web.client.call('IssueCertificate', { Csr: pem }),
      (error: Error) => error.name === 'AccessDeniedException' && /quarantined/.test(error.message));
  });

  it('gets a new host certificate once the quarantine is cleared and the host affirms again', async () => {
    writeFileSync(kernel, 'kernel 6.1 build 1');
    await web.waitFor((view) => view.Attestation?.Status === 'affirming', 'affirming (still quarantined)');
    await assert.rejects(web.client.call('HostCertificate'), { name: 'CertificateUnavailableException' });
    await trustplane('host', 'clear', web.hostId);
    const renewed = await hostCertificateOf(web);
    assert.notEqual(renewed.Serial, hostCertificate.Serial);
    assert.equal((await verify(web, { Certificate: renewed.Certificate, Purpose: 'client' })).Valid, true);
    assert.equal((await certificateStatus(renewed.Serial)).body.Status, 'good');
  });

  it('counts the certificates of a host removed from the fleet as revoked', async () => {
    const certificate = await hostCertificateOf(db1);
    assert.equal((await certificateStatus(certificate.Serial)).body.Status, 'good');
    await trustplane('host', 'remove', db1.hostId);
    const removed = await certificateStatus(certificate.Serial);
    assert.equal(removed.body.Status, 'revoked');
    assert.equal(removed.body.Reason, 'host removed');
    const crl = new x509.X509Crl(Buffer.from(await (await revocationList(server.accountId)).arrayBuffer()));
    assert.equal(crl.findRevoked(certificate.Serial)?.reason, x509.X509CrlReason.cessationOfOperation);
  });
});

describe('validateCertificatePath: the checks pkijs leaves to us', () => {
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' } as SigningAlgorithm;
  let root: CertificateAuthority;
  let rootKey: webcrypto.CryptoKey;
  const now = () => new Date();
  /** A certificate signed by the root's key with the given extensions (the root certificate names the issuer). */
  const signedByRoot = async (subject: string, extensions: x509.Extension[], keys?: webcrypto.CryptoKeyPair) => {
    const pair = keys ?? await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const issuer = new x509.X509Certificate(root.certificateDer);
    const certificate = await x509.X509CertificateGenerator.create({ serialNumber: `4${Date.now().toString(16)}`, subject, issuer: issuer.subject,
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000), signingKey: rootKey, publicKey: pair.publicKey,
      signingAlgorithm: ecdsa, extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(issuer, false)] });
    return { der: Buffer.from(certificate.rawData), keys: pair };
  };
  const freshList = async (serials: string[] = []) => verifyRevocationList(await createRevocationList({ authority: root,
    entries: serials.map((serial) => ({ serial, revokedAt: now(), reason: 'privilegeWithdrawn' as const })), thisUpdate: now(),
    nextUpdate: new Date(Date.now() + 3600_000), number: 1n }), root.certificateDer, now());

  before(async () => {
    root = await createCertificateAuthority('test root', 1);
    rootKey = await subtle.importKey('pkcs8', root.privateKeyPkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  });

  it('refuses a path longer than the anchor\'s pathLenConstraint allows', async () => {
    const intermediate = await signedByRoot('CN=intermediate', [new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)]);
    const leafKeys = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const leaf = await x509.X509CertificateGenerator.create({ serialNumber: '4c01', subject: 'CN=leaf', issuer: 'CN=intermediate',
      notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3600_000), signingKey: intermediate.keys.privateKey,
      publicKey: leafKeys.publicKey, signingAlgorithm: ecdsa, extensions: [] });
    const result = await validateCertificatePath({ certificateDer: Buffer.from(leaf.rawData), chainDer: [intermediate.der], anchorDer: root.certificateDer,
      revocationList: await freshList(), now: now() });
    assert.equal(result.valid, false);
    assert.match(result.reason ?? '', /pathLenConstraint/);
  });

  it('refuses an unrecognised critical extension, and answers nothing valid without a CRL', async () => {
    const odd = await signedByRoot('CN=odd', [new x509.Extension('1.3.6.1.4.1.99999.1', true, new Uint8Array([5, 0]))]);
    const result = await validateCertificatePath({ certificateDer: odd.der, anchorDer: root.certificateDer, revocationList: await freshList(), now: now() });
    assert.match(result.reason ?? '', /unrecognised critical extension 1\.3\.6\.1\.4\.1\.99999\.1/);
    const plain = await signedByRoot('CN=plain', []);
    assert.equal((await validateCertificatePath({ certificateDer: plain.der, anchorDer: root.certificateDer, revocationList: await freshList(), now: now() })).valid, true);
    const unchecked = await validateCertificatePath({ certificateDer: plain.der, anchorDer: root.certificateDer, revocationUnavailable: 'server unreachable', now: now() });
    assert.deepEqual([unchecked.valid, unchecked.reason], [false, 'revocation status unavailable: server unreachable']);
  });

  it('accepts only a current CRL signed by the anchor', async () => {
    const stale = await createRevocationList({ authority: root, entries: [], thisUpdate: new Date(Date.now() - 7200_000),
      nextUpdate: new Date(Date.now() - 3600_000), number: 2n });
    await assert.rejects(verifyRevocationList(stale, root.certificateDer, now()), /out of date/);
    const other = await createCertificateAuthority('test root', 1);
    const foreign = await createRevocationList({ authority: other, entries: [], thisUpdate: now(), nextUpdate: new Date(Date.now() + 3600_000), number: 3n });
    await assert.rejects(verifyRevocationList(foreign, root.certificateDer, now()), /signature/);
  });
});
