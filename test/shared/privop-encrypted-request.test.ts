// The encrypted-request envelope and class matching without a host: the envelope opens only on the host and key it names
// (a flipped byte, another key id, another host id each refused with their code), and class targets match by path.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateHpkeKeyPair, requestKeyId } from '../../src/shared/crypto/index.ts';
import { UserError } from '../../src/shared/errors.ts';
import {
  decryptPrivopRequest, encryptPrivopRequest, isEncryptedPrivopRequest, parseEncryptedPrivopRequest, type EncryptedPrivopRequest,
} from '../../src/shared/privop-encrypted-request.ts';
import { inClass, targetMismatch } from '../../src/agent/privops/target.ts';

const HOST = 'h-00aa';
const OTHER = 'h-00bb';
const requestFileJson = Buffer.from(JSON.stringify({ Request: { Operation: 'file.read' }, Signature: 'x..y' }));

const refusedWith = (code: string) => (error: unknown) => error instanceof UserError && error.code === code;

describe('encrypted privileged-operation requests', () => {
  it('open on the host and key they name, and only there', async () => {
    const host = await generateHpkeKeyPair();
    const other = await generateHpkeKeyPair();
    const envelope = await encryptPrivopRequest({ requestFileJson, hostId: HOST, requestKey: host.publicKey });
    assert.deepEqual(parseEncryptedPrivopRequest(JSON.parse(JSON.stringify(envelope))), envelope);
    assert.equal(envelope.Encrypted.KeyId, requestKeyId(host.publicKey));
    assert.ok(!JSON.stringify(envelope).includes('file.read'));
    assert.ok(isEncryptedPrivopRequest(envelope) && !isEncryptedPrivopRequest(JSON.parse(requestFileJson.toString())));
    assert.deepEqual(await decryptPrivopRequest(envelope, { hostId: HOST, requestKey: host }), requestFileJson);

    const copy = (): EncryptedPrivopRequest => JSON.parse(JSON.stringify(envelope)) as EncryptedPrivopRequest;
    await assert.rejects(decryptPrivopRequest(envelope, { hostId: OTHER, requestKey: other }), refusedWith('PrivopWrongHost'));
    await assert.rejects(decryptPrivopRequest(envelope, { hostId: HOST, requestKey: other }), refusedWith('PrivopCannotDecrypt'));
    await assert.rejects(decryptPrivopRequest(envelope, { hostId: HOST }), refusedWith('PrivopCannotDecrypt'));
    for (let at = 0; at < Buffer.from(envelope.Encrypted.Ciphertext, 'base64').length; at += 7) {
      const flipped = copy();
      const bytes = Buffer.from(flipped.Encrypted.Ciphertext, 'base64');
      bytes[at] = (bytes[at] as number) ^ 0x80;
      flipped.Encrypted.Ciphertext = bytes.toString('base64');
      await assert.rejects(decryptPrivopRequest(flipped, { hostId: HOST, requestKey: host }), refusedWith('PrivopCannotDecrypt'));
    }
    // The same key under another host id (a host that kept a copied key) does not open it: the AAD binds the host id.
    const readdressed = copy();
    readdressed.Encrypted.HostId = OTHER;
    await assert.rejects(decryptPrivopRequest(readdressed, { hostId: OTHER, requestKey: host }), refusedWith('PrivopCannotDecrypt'));
    assert.throws(() => parseEncryptedPrivopRequest({ Encrypted: { ...envelope.Encrypted, Version: 2 } }), refusedWith('PrivopMalformedRequest'));
    assert.throws(() => parseEncryptedPrivopRequest({ ...envelope, Request: {} }), refusedWith('PrivopMalformedRequest'));
  });
});

describe('class targets', () => {
  it('take the class and every class under it, by whole path segments', () => {
    assert.ok(inClass('web', ['web']));
    assert.ok(inClass('web', ['db', 'web/jp/tokyo']));
    assert.ok(!inClass('web/jp', ['web']));
    assert.ok(!inClass('we', ['web']));
    assert.equal(targetMismatch({ HostId: HOST }, { hostId: HOST, classes: [] }), undefined);
    assert.match(targetMismatch({ HostId: OTHER }, { hostId: HOST, classes: [] }) ?? '', /not this host/);
    assert.match(targetMismatch({ Class: 'web' }, { hostId: HOST, classes: [] }) ?? '', /does not know its classes yet/);
  });
});
