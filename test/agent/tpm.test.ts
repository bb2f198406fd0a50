// The agent's TPM layer against a real software TPM (swtpm) and tpm2-tools: provisioning, credential activation with our makeCredential, quotes, PCRs and sealing.
// Must never touch a hardware TPM or the system's swtpm state: every run manufactures its own TPM in a temporary directory.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { AK_HANDLE, EK_HANDLE, Tpm, TpmCommandError, type TpmProvisioning } from '../../src/agent/tpm.ts';
import {
  computePcrDigest, encodeCredentialFile, makeCredential, parseQuote, parseTpmPublic, randomBytes, replayPcrExtends, sha256, TPMA_OBJECT,
  verifyQuoteSignature,
} from '../../src/shared/crypto/index.ts';
import { run } from '../helpers/exec.ts';
import { locateTpmTools, startSwtpm, type Swtpm } from '../helpers/swtpm.ts';

const located = await locateTpmTools();
/** swtpm_setup's ECC EK: P-384, SHA-384 name, AES-256, with userWithAuth (so a password session suffices). */
const SWTPM_ECC_EK_HANDLE = '0x81010016';
const SECOND_AK_HANDLE = 0x81010003;

describe('TPM layer on swtpm', { skip: located.skip }, () => {
  let swtpm: Swtpm;
  let tpm: Tpm;
  let provisioned: TpmProvisioning;

  /** A tpm2-tools command of the test's own, against the same TPM. */
  const tool = (name: string, args: string[]) => run(name, args, { env: { PATH: process.env.PATH, TPM2TOOLS_TCTI: swtpm.tcti, TSS2_LOG: 'all+none' } });
  const workDir = () => mkdtempSync(join(tmpdir(), 'trustplane-tpm-test-'));

  before(async () => {
    swtpm = await startSwtpm();
    tpm = new Tpm({ tcti: swtpm.tcti });
    provisioned = await tpm.provision();
  });

  after(async () => {
    await swtpm?.stop();
  });

  test('provision is idempotent: the same EK and AK again, also from a new instance', async () => {
    const again = await tpm.provision();
    const fresh = await new Tpm({ tcti: swtpm.tcti }).provision();
    for (const other of [again, fresh]) {
      assert.deepEqual(other.ekPublic, provisioned.ekPublic);
      assert.deepEqual(other.akPublic, provisioned.akPublic);
      assert.deepEqual(other.akName, provisioned.akName);
    }
    const ek = parseTpmPublic(provisioned.ekPublic);
    const ak = parseTpmPublic(provisioned.akPublic);
    assert.equal(ek.type, 'rsa');
    assert.deepEqual(ek.symmetric, { algorithm: 'aes', keyBits: 128, mode: 'cfb' });
    assert.deepEqual(ak.name, provisioned.akName);
    assert.deepEqual(ak.scheme, { scheme: 'rsassa', hash: 'sha256' });
    const required = TPMA_OBJECT.restricted | TPMA_OBJECT.sign | TPMA_OBJECT.fixedTPM;
    assert.equal(ak.objectAttributes & required, required);
    const handles = await tool('tpm2_getcap', ['handles-persistent']);
    assert.match(handles.stdout, new RegExp(`0x${EK_HANDLE.toString(16)}`, 'i'));
    assert.match(handles.stdout, new RegExp(`0x${AK_HANDLE.toString(16)}`, 'i'));
  });

  test('the EK certificate is read from NV, is an X.509 certificate for the EK and chains to the swtpm local CA', () => {
    assert.ok(provisioned.ekCertificate, 'swtpm_setup --create-ek-cert writes one');
    const certificate = new X509Certificate(provisioned.ekCertificate);
    const ek = parseTpmPublic(provisioned.ekPublic);
    assert.deepEqual(certificate.publicKey.export({ format: 'der', type: 'spki' }), ek.publicKey.export({ format: 'der', type: 'spki' }));
    const issuer = new X509Certificate(readFileSync(swtpm.issuerCertificatePath));
    assert.equal(certificate.verify(issuer.publicKey), true);
    assert.equal(certificate.checkIssued(issuer), true);
  });

  test('a missing EK is re-created from the default template: the same key, so the certificate still fits', async () => {
    const evicted = await tool('tpm2_evictcontrol', ['-C', 'o', '-c', `0x${EK_HANDLE.toString(16)}`]);
    assert.equal(evicted.code, 0, evicted.stderr);
    const recreated = await tpm.provision();
    assert.deepEqual(recreated.ekPublic, provisioned.ekPublic);
    assert.deepEqual(recreated.akName, provisioned.akName);
  });

  test('a credential made by our makeCredential is activated by the real TPM and gives back the secret', async (t) => {
    const ek = parseTpmPublic(provisioned.ekPublic);
    for (const length of [32, 16, 1]) {
      const secret = randomBytes(length);
      const { credentialBlob, encryptedSecret } = makeCredential(ek, provisioned.akName, secret);
      const started = performance.now();
      const recovered = await tpm.activateCredential(credentialBlob, encryptedSecret);
      if (length === 32) t.diagnostic(`activateCredential took ${(performance.now() - started).toFixed(1)} ms`);
      assert.deepEqual(recovered, secret);
    }
  });

  test('a credential made for another object name is refused by the TPM, and the error carries no secret', async () => {
    const ek = parseTpmPublic(provisioned.ekPublic);
    const secret = randomBytes(32);
    const otherName = Buffer.concat([provisioned.akName.subarray(0, 2), sha256('another key')]);
    const { credentialBlob, encryptedSecret } = makeCredential(ek, otherName, secret);
    const error = await tpm.activateCredential(credentialBlob, encryptedSecret).then(() => undefined, (caught: unknown) => caught);
    assert.ok(error instanceof TpmCommandError, String(error));
    assert.equal(error.tool, 'tpm2_activatecredential');
    assert.notEqual(error.exitCode, 0);
    assert.match(error.message, /^tpm2_activatecredential failed \(exit \d+\): ERROR/);
    assert.equal(error.message.includes(secret.toString('hex')), false);
    // A credential for our AK but another EK: the TPM cannot even recover the seed.
    const foreignEk = parseTpmPublic((await startSwtpm().then(async (other) => {
      try {
        return (await new Tpm({ tcti: other.tcti }).provision()).ekPublic;
      } finally {
        await other.stop();
      }
    })));
    const foreign = makeCredential(foreignEk, provisioned.akName, secret);
    await assert.rejects(tpm.activateCredential(foreign.credentialBlob, foreign.encryptedSecret), TpmCommandError);
  });

  test('our makeCredential for the ECC P-384 EK (KDFe, SHA-384, AES-256) is activated by tpm2_activatecredential', async () => {
    const dir = workDir();
    try {
      const publicPath = join(dir, 'ecc-ek.pub');
      const read = await tool('tpm2_readpublic', ['-c', SWTPM_ECC_EK_HANDLE, '-o', publicPath]);
      assert.equal(read.code, 0, read.stderr);
      const ek = parseTpmPublic(readFileSync(publicPath));
      assert.equal(ek.ecc?.curve, 'P-384');
      const secret = randomBytes(48);
      const { credentialBlob, encryptedSecret } = makeCredential(ek, provisioned.akName, secret);
      writeFileSync(join(dir, 'credential'), encodeCredentialFile(credentialBlob, encryptedSecret));
      const activated = await tool('tpm2_activatecredential', ['-c', `0x${AK_HANDLE.toString(16)}`, '-C', SWTPM_ECC_EK_HANDLE,
        '-i', join(dir, 'credential'), '-o', join(dir, 'secret'), '-P', '']);
      assert.equal(activated.code, 0, activated.stderr);
      assert.deepEqual(readFileSync(join(dir, 'secret')), secret);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a quote carries the nonce, the digest of the PCRs read back, and a signature only the AK verifies', async (t) => {
    const ak = parseTpmPublic(provisioned.akPublic);
    const nonce = randomBytes(32);
    const pcrs = [0, 16, 23];
    const started = performance.now();
    const { attest, signature } = await tpm.quote(nonce, pcrs);
    t.diagnostic(`quote took ${(performance.now() - started).toFixed(1)} ms`);
    const quote = parseQuote(attest);
    assert.deepEqual(quote.extraData, nonce);
    assert.deepEqual(quote.pcrSelections, [{ hash: 'sha256', pcrs }]);
    assert.deepEqual(quote.pcrDigest, computePcrDigest(await tpm.readPcrs(pcrs), 'sha256'));
    assert.equal(verifyQuoteSignature(ak, attest, signature), true);
    const flipped = Buffer.from(attest);
    flipped[flipped.length - 1] ^= 0x01;
    assert.equal(verifyQuoteSignature(ak, flipped, signature), false);

    // Another AK in the same TPM (ECDSA P-256 this time): its public key does not verify our quote,
    // and its own quotes verify with it.
    const other = new Tpm({ tcti: swtpm.tcti, akHandle: SECOND_AK_HANDLE, akAlgorithm: 'ecc-p256-ecdsa-sha256' });
    const otherAk = parseTpmPublic((await other.provision()).akPublic);
    assert.equal(otherAk.type, 'ecc');
    assert.notDeepEqual(otherAk.name, ak.name);
    assert.equal(verifyQuoteSignature(otherAk, attest, signature), false);
    const otherQuote = await other.quote(nonce, pcrs);
    assert.equal(verifyQuoteSignature(otherAk, otherQuote.attest, otherQuote.signature), true);
    assert.equal(verifyQuoteSignature(ak, otherQuote.attest, otherQuote.signature), false);
    assert.deepEqual(parseQuote(otherQuote.attest).extraData, nonce);
  });

  test('tpm2_checkquote accepts the same quote files we parse and verify, and refuses an altered one', async () => {
    const nonce = randomBytes(20);
    const { attest, signature } = await tpm.quote(nonce, [16, 23]);
    assert.equal(verifyQuoteSignature(parseTpmPublic(provisioned.akPublic), attest, signature), true);
    const dir = workDir();
    try {
      writeFileSync(join(dir, 'ak.pub'), provisioned.akPublic);
      writeFileSync(join(dir, 'attest'), attest);
      writeFileSync(join(dir, 'signature'), signature);
      const check = (attestPath: string) => tool('tpm2_checkquote', ['-u', join(dir, 'ak.pub'), '-m', attestPath, '-s', join(dir, 'signature'),
        '-g', 'sha256', '-q', nonce.toString('hex')]);
      const good = await check(join(dir, 'attest'));
      assert.equal(good.code, 0, good.stderr);
      const altered = Buffer.from(attest);
      altered[altered.length - 1] ^= 0x01;
      writeFileSync(join(dir, 'altered'), altered);
      assert.notEqual((await check(join(dir, 'altered'))).code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('PCR 23 reset and extended twice reads back as the replayed hash chain, in the order asked for', async () => {
    const digests = [sha256('boot component one'), sha256('boot component two')];
    await tpm.resetPcr(23);
    assert.deepEqual(await tpm.readPcrs([23]), [Buffer.alloc(32)]);
    for (const digest of digests) await tpm.extendPcr(23, digest);
    const [pcr23, pcr16] = await tpm.readPcrs([23, 16]);
    assert.deepEqual(pcr23, replayPcrExtends(Buffer.alloc(32), digests, 'sha256'));
    assert.deepEqual((await tpm.readPcrs([16, 23]))[0], pcr16);
    await assert.rejects(tpm.extendPcr(23, Buffer.alloc(20)), RangeError);
    await assert.rejects(tpm.readPcrs([24]), RangeError);
  });

  test('sealed data unseals while the PCRs hold their values, fails once one moves, and unseals again when they are restored', async () => {
    const digests = [sha256('kernel'), sha256('initrd')];
    const restore = async () => {
      await tpm.resetPcr(23);
      for (const digest of digests) await tpm.extendPcr(23, digest);
    };
    await restore();
    const secret = randomBytes(64);
    const blob = await tpm.seal(secret, [16, 23]);
    assert.equal(blob[0], 1, 'format version');
    assert.equal(blob.includes(secret), false);
    assert.deepEqual(await tpm.unseal(blob), secret);
    await tpm.extendPcr(23, sha256('a changed initrd'));
    const error = await tpm.unseal(blob).then(() => undefined, (caught: unknown) => caught);
    assert.ok(error instanceof TpmCommandError, String(error));
    assert.equal(error.tool, 'tpm2_unseal');
    assert.equal(error.responseCode, 0x99d, error.message);
    await restore();
    assert.deepEqual(await tpm.unseal(blob), secret);
    const tampered = Buffer.from(blob);
    tampered[tampered.length - 5] ^= 0x01;
    await assert.rejects(tpm.unseal(tampered), TpmCommandError);
    await assert.rejects(tpm.seal(Buffer.alloc(129), [23]), RangeError);
  });

  test('commands issued together are serialised, and nothing is left loaded in the TPM afterwards', async () => {
    const nonce = randomBytes(16);
    const ek = parseTpmPublic(provisioned.ekPublic);
    const secret = randomBytes(32);
    const credential = makeCredential(ek, provisioned.akName, secret);
    const [quote, pcrs, activated, sealed] = await Promise.all([
      tpm.quote(nonce, [23]), tpm.readPcrs([23]), tpm.activateCredential(credential.credentialBlob, credential.encryptedSecret),
      tpm.seal(Buffer.from('x'), [23]), tpm.provision(),
    ]);
    assert.deepEqual(parseQuote(quote.attest).pcrDigest, computePcrDigest(pcrs, 'sha256'));
    assert.deepEqual(activated, secret);
    assert.deepEqual(await tpm.unseal(sealed), Buffer.from('x'));
    for (const kind of ['handles-transient', 'handles-loaded-session', 'handles-saved-session']) {
      const listed = await tool('tpm2_getcap', [kind]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.trim(), '', `${kind} after the commands`);
    }
  });
});
