// The AWS JSON 1.1 protocol under abuse: authentication failures, skewed clocks, malformed
// and oversized bodies, unknown operations. Every one gets a typed 4xx, never a 5xx.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CreateKeyCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient, postRaw, rawKmsRequest, signRequest } from '../../helpers/kms-client.ts';

describe('AWS JSON protocol and SigV4', () => {
  let server: TestServer;
  let kms: KMSClient;
  let keyId: string;

  before(async () => {
    server = await startTestServer();
    kms = kmsClient(server);
    keyId = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  });
  after(async () => {
    kms?.destroy();
    await server?.dispose();
  });

  const encryptBody = () => JSON.stringify({ KeyId: keyId, Plaintext: Buffer.from('hi').toString('base64') });

  it('accepts a correctly signed raw request, signed for any region name', async () => {
    for (const region of [server.region, 'eu-west-3', 'anything-1']) {
      const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(), region });
      assert.equal(response.status, 200, JSON.stringify(response.json));
      assert.equal(typeof response.json.CiphertextBlob, 'string');
    }
  });

  it('rejects an unknown access key with UnrecognizedClientException', async () => {
    const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      credentials: { accessKeyId: 'AKTPNOSUCHKEY0000000', secretAccessKey: server.secretAccessKey } });
    assert.equal(response.status, 400);
    assert.equal(response.json.__type, 'UnrecognizedClientException');
    assert.equal(response.headers['x-amzn-errortype'], 'UnrecognizedClientException');
  });

  it('rejects a wrong secret, a changed body and a changed header with InvalidSignatureException', async () => {
    const wrongSecret = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: `${server.secretAccessKey}x` } });
    assert.equal(wrongSecret.json.__type, 'InvalidSignatureException');
    const sdkWithWrongSecret = kmsClient(server, { accessKeyId: server.accessKeyId, secretAccessKey: 'wrong' });
    await assert.rejects(sdkWithWrongSecret.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('x') })),
      { name: 'InvalidSignatureException' });
    sdkWithWrongSecret.destroy();
    const changedTarget = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      tamper: (headers) => { headers['x-amz-target'] = 'TrentService.Decrypt'; } });
    assert.equal(changedTarget.json.__type, 'InvalidSignatureException');
    const signedFor = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      tamper: (headers) => { headers.authorization = headers.authorization.replace(/Signature=[0-9a-f]{4}/, 'Signature=0000'); } });
    assert.equal(signedFor.json.__type, 'InvalidSignatureException');
  });

  it('rejects a body changed after signing', async () => {
    const url = new URL(server.url);
    const signed = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      tamper: () => undefined });
    assert.equal(signed.status, 200);
    // Re-sign one body, send another of the same length.
    let captured: Record<string, string> = {};
    await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(), tamper: (headers) => { captured = { ...headers }; } });
    const other = encryptBody().replace('aGk=', 'aGo=');
    const response = await postRaw(`http://${url.host}`, captured, Buffer.from(other));
    assert.equal(response.json.__type, 'InvalidSignatureException');
  });

  it('requires X-Amz-Target and Content-Type to be signed, so a relay cannot change the operation', async () => {
    const body = JSON.stringify({ KeyId: keyId });
    // Sign only host and x-amz-date, then attach a target the signature does not cover.
    const signed = await signRequest(server, {}, body);
    const headers = { ...signed, 'x-amz-target': 'TrentService.ScheduleKeyDeletion',
      'content-type': 'application/x-amz-json-1.1' };
    const response = await postRaw(server.url, headers, Buffer.from(body));
    assert.equal(response.status, 400);
    assert.equal(response.json.__type, 'InvalidSignatureException');
    assert.match(String(response.json.message), /'(x-amz-target|content-type)' must be signed/);
  });

  it('binds the signing service to the operation: kms requests cannot be signed for another service', async () => {
    const body = encryptBody();
    const signed = await signRequest(server, { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrentService.Encrypt' }, body,
      { service: 'trustplane' });
    const response = await postRaw(server.url, signed, Buffer.from(body));
    assert.equal(response.json.__type, 'InvalidSignatureException');
  });

  it('rejects clocks skewed by more than five minutes, in both directions', async () => {
    for (const offsetMinutes of [-6, 6, -60 * 24]) {
      const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
        signingDate: new Date(Date.now() + offsetMinutes * 60_000) });
      assert.equal(response.status, 400, `skew ${offsetMinutes}`);
      assert.equal(response.json.__type, 'InvalidSignatureException');
      assert.match(String(response.json.message), offsetMinutes < 0 ? /Signature expired/ : /Signature not yet current/);
    }
    const within = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      signingDate: new Date(Date.now() - 4 * 60_000) });
    assert.equal(within.status, 200);
  });

  it('asks for authentication when a request is unsigned or the signature is incomplete', async () => {
    const unsigned = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(), unsigned: true });
    assert.equal(unsigned.status, 400);
    assert.equal(unsigned.json.__type, 'MissingAuthenticationTokenException');
    const incomplete = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: encryptBody(),
      tamper: (headers) => { headers.authorization = headers.authorization.replace(/, Signature=[0-9a-f]+/, ''); } });
    assert.equal(incomplete.json.__type, 'IncompleteSignatureException');
  });

  it('answers malformed JSON, wrong types and non-objects with SerializationException', async () => {
    for (const body of ['{"KeyId":', 'null', '[1,2]', '"text"', JSON.stringify({ KeyId: keyId, Plaintext: 42 }),
      JSON.stringify({ KeyId: keyId, Plaintext: 'not base64!' })]) {
      const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body });
      assert.equal(response.status, 400, body);
      assert.equal(response.json.__type, 'SerializationException', body);
      assert.equal(typeof response.json.message, 'string');
      assert.doesNotMatch(String(response.json.message), /at .*\.ts:\d+/, 'no stack traces');
    }
  });

  it('keeps "__proto__" an ordinary encryption-context key and refuses ill-formed Unicode', async () => {
    const encrypted = await rawKmsRequest(server, { target: 'TrentService.Encrypt',
      body: `{"KeyId":"${keyId}","Plaintext":"aGk=","EncryptionContext":{"__proto__":"x"}}` });
    assert.equal(encrypted.status, 200, JSON.stringify(encrypted.json));
    const blob = String(encrypted.json.CiphertextBlob);
    for (const context of ['{}', '{"__proto__":"other"}']) {
      const wrong = await rawKmsRequest(server, { target: 'TrentService.Decrypt', body: `{"CiphertextBlob":"${blob}","EncryptionContext":${context}}` });
      assert.equal(wrong.json.__type, 'InvalidCiphertextException', context);
    }
    const right = await rawKmsRequest(server, { target: 'TrentService.Decrypt', body: `{"CiphertextBlob":"${blob}","EncryptionContext":{"__proto__":"x"}}` });
    assert.equal(right.json.Plaintext, 'aGk=');
    const illFormed = await rawKmsRequest(server, { target: 'TrentService.Encrypt',
      body: `{"KeyId":"${keyId}","Plaintext":"aGk=","EncryptionContext":{"tenant":"\\ud800"}}` });
    assert.equal(illFormed.json.__type, 'ValidationException');
    const huge = await rawKmsRequest(server, { target: 'TrentService.Encrypt',
      body: JSON.stringify({ KeyId: keyId, Plaintext: 'aGk=', EncryptionContext: { big: 'x'.repeat(9000) } }) });
    assert.equal(huge.json.__type, 'ValidationException');
  });

  it('answers missing required members with ValidationException naming the member', async () => {
    const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: JSON.stringify({ KeyId: keyId }) });
    assert.equal(response.json.__type, 'ValidationException');
    assert.match(String(response.json.message), /at 'plaintext' failed to satisfy constraint: Member must not be null/);
  });

  it('answers oversized bodies with a typed 413 and keeps serving', async () => {
    const huge = JSON.stringify({ KeyId: keyId, Plaintext: Buffer.alloc(2 * 1024 * 1024).toString('base64') });
    const response = await rawKmsRequest(server, { target: 'TrentService.Encrypt', body: huge });
    assert.equal(response.status, 413);
    assert.equal(response.json.__type, 'RequestEntityTooLargeException');
    const next = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from('still up') }));
    assert.ok(next.CiphertextBlob);
  });

  it('answers unknown operations with UnknownOperationException', async () => {
    for (const target of ['TrentService.DeleteEverything', 'Other.Encrypt', undefined]) {
      const response = await rawKmsRequest(server, { target, body: '{}' });
      assert.equal(response.status, 400);
      assert.equal(response.json.__type, 'UnknownOperationException', String(target));
    }
  });

  it('reports health without authentication', async () => {
    const response = await fetch(`${server.url}/health`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: 'ok', initialized: true, sealed: false, module: 'software', progress: 0, threshold: 0 });
  });
});
