// Attestation with a real TPM (swtpm + tpm2-tools) and real server and agent processes: enrolment
// with credential activation and EK certificate checks, a good boot affirming, TPM-native sealing,
// a changed measured file caught at the next interval with the configured revoke, and evidence a
// compromised agent might send (replayed nonce, another AK, a forged event list) all detected.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, makeTempDir, trustplaneBin, type TestServer } from '../helpers/server.ts';
import { kmsClient } from '../helpers/kms-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson } from '../helpers/cli.ts';
import { startTestAgent, type AgentStatusView, type TestAgent } from '../helpers/agent.ts';
import { hostCaller, type HostReply } from '../helpers/host-call.ts';
import { locateTpmTools, startSwtpm, type Swtpm } from '../helpers/swtpm.ts';
import { Attestor } from '../../src/agent/attestation.ts';
import { Tpm } from '../../src/agent/tpm.ts';
import { AgentState } from '../../src/agent/state.ts';
import { evidenceBinding } from '../../src/shared/attest-wire.ts';
import { createLogger } from '../../src/shared/log.ts';

const located = await locateTpmTools({ swtpm: true });

interface Failure { Id: string; Severity: string; Component: string }
interface HostShow { Host: { Status: string }; Attestation: { Status: string; Mode: string; Failures: Failure[]; AttestationKeyActivated?: boolean } }

const keyIds = (status: AgentStatusView) => status.Keys.map((key) => key.KeyId);
const failureIds = (reply: HostReply) => (reply.body.Failures as Failure[]).map((failure) => failure.Id);

describe('attestation with a TPM (swtpm)', { skip: located.skip }, () => {
  let swtpm: Swtpm;
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let kms: KMSClient;
  let agent: TestAgent;
  let appKey: string;
  let joinToken: string;
  const bootDir = makeTempDir();
  const kernel = join(bootDir, 'vmlinuz');
  const others: Swtpm[] = [];
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const show = (hostId: string) => json<HostShow>('host', 'show', hostId);
  const startAgent = (stateDir?: string) => startTestAgent({ serverUrl: server.url, joinToken, stateDir, name: 'db-1',
    extraArgs: ['--tpm', swtpm.tcti, '--measure', kernel] });

  before(async () => {
    writeFileSync(kernel, 'kernel 6.6 build 7');
    swtpm = await startSwtpm();
    server = await startTestServer({ home: makeTempDir(), extraArgs: ['--ek-ca', swtpm.issuerCertificatePath] });
    env = cliEnv(server);
    kms = kmsClient(server);
    appKey = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await trustplane('class', 'create', 'db', '--attestation', 'tpm', '--interval', '1s', '--on-contraindicated', 'flag,revoke');
    await trustplane('class', 'grant-key', 'db', appKey);
    joinToken = (await json<{ Token: string }>('host', 'join-token', '--classes', 'db', '--uses', '3')).Token;
  });

  after(async () => {
    await agent?.stop();
    kms?.destroy();
    await server?.dispose();
    for (const other of others) await other.stop();
    await swtpm?.stop();
  });

  it('enrols with credential activation; a good boot affirms once reference values are set', async () => {
    agent = await startAgent();
    await agent.waitFor((status) => status.Attestation?.Status === 'pending', 'the first (unappraised) verdict');
    const enrolled = await show(agent.hostId);
    assert.equal(enrolled.Attestation.Mode, 'tpm');
    assert.equal(enrolled.Attestation.AttestationKeyActivated, true);
    assert.deepEqual(keyIds(await agent.status()), []);

    await trustplane('class', 'set-reference', 'db', '--from-host', agent.hostId);
    const affirmed = await agent.waitFor((status) => status.Attestation?.Status === 'affirming' && keyIds(status).includes(appKey), 'affirming with keys');
    assert.deepEqual(affirmed.Attestation?.Failures, []);
    assert.equal((await show(agent.hostId)).Attestation.Status, 'affirming');
  });

  it('refuses a TPM whose EK certificate is not from a configured EK CA', async () => {
    const foreign = await startSwtpm();
    others.push(foreign);
    // Enrolled without --tpm: this test registers the foreign TPM itself (two tpm2-tools users of one TPM would race).
    const stranger = await startTestAgent({ serverUrl: server.url, joinToken, name: 'db-2' });
    try {
      const call = await hostCaller(stranger.stateDir);
      const keys = await new Tpm({ tcti: foreign.tcti }).provision();
      const refused = await call('/v1/agent/attest/register', { EkPublic: keys.ekPublic.toString('base64'),
        EkCertificate: keys.ekCertificate?.toString('base64'), AkPublic: keys.akPublic.toString('base64') });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.__type, 'InvalidEkCertificateException');
      const view = await show(stranger.hostId);
      assert.equal(view.Attestation.AttestationKeyActivated, false);
      assert.deepEqual(keyIds(await stranger.status()), []);
    } finally {
      await stranger.stop();
    }
  });

  it('seals host-local secrets with the TPM, released only while the PCR matches', async () => {
    const sealed = await agent.client.call<{ Sealed: string }>('TpmSeal', { Plaintext: Buffer.from('local disk key') });
    const opened = await agent.client.call<{ Plaintext: string }>('TpmUnseal', { Sealed: sealed.Sealed });
    assert.equal(Buffer.from(opened.Plaintext, 'base64').toString(), 'local disk key');

    // The measured file changes: at the next interval the agent extends PCR 23, so the TPM refuses.
    writeFileSync(kernel, 'kernel 6.6 build 7, patched by someone');
    const revoked = await agent.waitFor((status) => status.Attestation?.Status === 'contraindicated' && status.Keys.length === 0,
      'contraindicated with keys withdrawn');
    assert.ok(revoked.Attestation?.Failures.some((failure) => failure.Id === 'measurement-changed'));
    await assert.rejects(agent.client.call('TpmUnseal', { Sealed: sealed.Sealed }), { name: 'AccessDeniedException' });
    const view = await show(agent.hostId);
    assert.equal(view.Host.Status, 'quarantined');
    const token = (await json<{ Token: string }>('host', 'attestation-token', agent.hostId)).Token;
    const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { submods: Record<string, Record<string, unknown>> };
    assert.equal(claims.submods[agent.hostId]['ear.status'], 'contraindicated');
  });

  it('detects a replayed nonce, a quote from another AK and a forged event list', async () => {
    await agent.stop();
    writeFileSync(kernel, 'kernel 6.6 build 7');
    const call = await hostCaller(agent.stateDir);
    const reference = await json<{ Document: { Components: Record<string, string[]> } }>('class', 'show-reference', 'db');
    // Play the agent: the same components, the same order, the same configuration digest.
    const tpm = new Tpm({ tcti: swtpm.tcti });
    // It carries on from the agent's journal (the PCR still replays it): this TPM was not reset.
    const state = new AgentState(agent.stateDir);
    const attestor = new Attestor({ tpm, logger: createLogger(), operational: false, call: async () => ({}), measure: [trustplaneBin, kernel],
      selfMeasurements: { 'agent:config': reference.Document.Components['agent:config'][0] },
      journal: { load: () => state.readMeasurements(), save: (events) => state.writeMeasurements(events) } });
    await attestor.measureBoot();
    assert.ok(attestor.events.length > 3, 'resumed the agent\'s event list');
    // The kernel is back as it was at boot: extended again, so the latest digest equals the boot one.
    assert.deepEqual(await attestor.remeasure(), [kernel]);
    const challenge = async () => Buffer.from(String((await call('/v1/agent/attest/challenge', {})).body.Nonce), 'base64');

    const nonce = await challenge();
    const good = await attestor.evidenceFor(nonce);
    const first = await call('/v1/agent/attest/evidence', good);
    assert.equal(first.status, 200);
    assert.equal(first.body.Status, 'affirming', JSON.stringify(first.body));

    const replayed = await call('/v1/agent/attest/evidence', good);
    assert.equal(replayed.body.Status, 'contraindicated');
    assert.ok(failureIds(replayed).includes('nonce-invalid'));

    // A second AK in the same TPM, never activated with the verifier.
    const otherAk = new Tpm({ tcti: swtpm.tcti, akHandle: 0x81010003 });
    await otherAk.provision();
    const foreignNonce = await challenge();
    const foreign = await attestor.evidenceFor(foreignNonce);
    const reQuoted = await otherAk.quote(evidenceBinding(foreignNonce, foreign.OperationalJson), [23]);
    const otherAkReply = await call('/v1/agent/attest/evidence', { ...foreign,
      Quote: { Attest: reQuoted.attest.toString('base64'), Signature: reQuoted.signature.toString('base64') } });
    assert.ok(failureIds(otherAkReply).includes('quote-signature'), JSON.stringify(otherAkReply.body));

    // A forged event list: the kernel changes and is extended, but the list claims the old value.
    writeFileSync(kernel, 'kernel 6.6 build 7, patched again');
    await attestor.remeasure();
    const forgedNonce = await challenge();
    const honest = await attestor.evidenceFor(forgedNonce);
    const forged = { ...honest, Events: honest.Events.slice(0, -1) };
    const forgedReply = await call('/v1/agent/attest/evidence', forged);
    assert.equal(forgedReply.body.Status, 'contraindicated');
    assert.ok(failureIds(forgedReply).includes('event-log-mismatch'), JSON.stringify(forgedReply.body));

    // Malformed quotes are the caller's mistake, typed.
    const garbledNonce = await challenge();
    const garbled = await call('/v1/agent/attest/evidence', { ...(await attestor.evidenceFor(garbledNonce)), Quote: { Attest: 'AAAA', Signature: 'AAAA' } });
    assert.ok(garbled.status === 400 || failureIds(garbled).includes('quote-malformed'), JSON.stringify(garbled.body));
  });

  it('detects a PCR reset within one TPM boot: a clean history replayed over a reset PCR is rewritten history', async () => {
    const call = await hostCaller(agent.stateDir);
    const reference = await json<{ Document: { Components: Record<string, string[]> } }>('class', 'show-reference', 'db');
    // What root on the host could do: reset PCR 23 and extend the reference digests again (no journal: a fresh start).
    const attestor = new Attestor({ tpm: new Tpm({ tcti: swtpm.tcti }), logger: createLogger(), operational: false, call: async () => ({}),
      measure: [trustplaneBin, kernel], selfMeasurements: { 'agent:config': reference.Document.Components['agent:config'][0] } });
    await attestor.measureBoot();
    const nonce = Buffer.from(String((await call('/v1/agent/attest/challenge', {})).body.Nonce), 'base64');
    const replayed = await call('/v1/agent/attest/evidence', await attestor.evidenceFor(nonce));
    assert.equal(replayed.body.Status, 'contraindicated');
    assert.ok(failureIds(replayed).includes('event-log-rewritten'), JSON.stringify(replayed.body));
  });

  it('gets its keys back after a clean boot (TPM reset) and host clear', async () => {
    writeFileSync(kernel, 'kernel 6.6 build 7');
    await swtpm.reboot();
    agent = await startAgent(agent.stateDir);
    await agent.waitFor((status) => status.Attestation?.Status === 'affirming', 'affirming after a clean boot');
    assert.deepEqual(keyIds(await agent.status()), []);
    await trustplane('host', 'clear', agent.hostId);
    await agent.waitFor((status) => keyIds(status).includes(appKey), 'keys after clear');
  });
});
