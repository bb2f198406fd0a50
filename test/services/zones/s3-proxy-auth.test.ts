// Who the S3 zone proxy lets in: only the client credentials in zone.yaml, with valid SigV4 signatures (headers or
// presigned URLs); never a backing store's credentials. Refusals are S3 error documents, never stack traces.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, ListBucketsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  bodyBytes, locateAwsCli, objectPath, presignUrl, randomMarker, rawS3Request, s3Error, startZoneStack, ZONE_NAMES, type ZoneStack,
} from '../../helpers/zone-proxy.ts';

const located = await locateAwsCli();
const BUCKET = 'vault';
const MARKER = randomMarker('AUTH');

/** An S3 error document's Code (and that it is one: XML, no stack trace). */
function errorCode(body: Buffer): string {
  const text = body.toString('utf8');
  assert.match(text, /<Error>[\s\S]*<\/Error>/, `not an S3 error document: ${text.slice(0, 300)}`);
  assert.doesNotMatch(text, /\bat \S+ \(|\.ts:\d+|node:internal/, `an error document carries a stack trace: ${text.slice(0, 500)}`);
  return /<Code>([^<]+)<\/Code>/.exec(text)?.[1] ?? '';
}

describe('S3 zone proxy: authentication', () => {
  let stack: ZoneStack;
  let s3: S3Client;
  const body = Buffer.from(`secret payload ${MARKER}`);

  before(async () => {
    stack = await startZoneStack({ region: 'us-east-1' });
    s3 = stack.s3();
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'doc.txt', Body: body, ContentType: 'text/plain' }));
  });
  after(async () => {
    await stack?.dispose();
  });

  it('refuses a wrong secret with 403 SignatureDoesNotMatch', async () => {
    const wrong = stack.s3({ accessKeyId: stack.clientCredentials.accessKeyId, secretAccessKey: `${stack.clientCredentials.secretAccessKey}x` });
    const error = await s3Error(wrong.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'doc.txt' })));
    assert.equal(error.code, 'SignatureDoesNotMatch');
    assert.equal(error.status, 403);
    const put = await s3Error(wrong.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'by-wrong-secret', Body: Buffer.from('x') })));
    assert.equal(put.code, 'SignatureDoesNotMatch');
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    assert.deepEqual(listed.Contents?.map((entry) => entry.Key), ['doc.txt'], 'nothing was stored by a refused PUT');
  });

  it('refuses an unknown access key id with 403 InvalidAccessKeyId', async () => {
    const unknown = stack.s3({ accessKeyId: 'AKIAZONEUNKNOWN00001', secretAccessKey: stack.clientCredentials.secretAccessKey });
    const error = await s3Error(unknown.send(new ListBucketsCommand({})));
    assert.equal(error.code, 'InvalidAccessKeyId');
    assert.equal(error.status, 403);
  });

  it("refuses the backing stores' own credentials, and the client credentials are in no backing configuration", async () => {
    for (const zone of ZONE_NAMES) {
      const backing = stack.s3(stack.backingCredentials[zone]);
      const error = await s3Error(backing.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'doc.txt' })));
      assert.equal(error.code, 'InvalidAccessKeyId', `zone ${zone}'s backing credentials at the proxy`);
      assert.equal(error.status, 403);
      const zoneConfig = (stack.config().zones as Record<string, Record<string, unknown>>)[zone];
      assert.notEqual(zoneConfig.accessKeyId, stack.clientCredentials.accessKeyId);
      assert.notEqual(zoneConfig.secretAccessKey, stack.clientCredentials.secretAccessKey);
      // The backing store does not know the client's key either: the proxy re-signs with the zone's own.
      const direct = await s3Error(stack.directS3(zone, stack.clientCredentials).send(new ListBucketsCommand({})));
      assert.equal(direct.code, 'InvalidAccessKeyId', `zone ${zone}'s backing store and the client credentials`);
    }
    const kms = stack.config().kms as Record<string, unknown>;
    assert.notEqual(kms.accessKeyId, stack.clientCredentials.accessKeyId);
  });

  it('refuses an unsigned request with 403 AccessDenied and an S3 error document', async () => {
    const response = await rawS3Request(stack, { method: 'GET', path: objectPath(BUCKET, 'doc.txt'), credentials: null });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response.body), 'AccessDenied');
    assert.ok(!response.body.includes(MARKER));
  });

  it('refuses a request whose signed headers changed after signing, and a body that does not match its signed hash', async () => {
    const changed = await rawS3Request(stack, { method: 'GET', path: objectPath(BUCKET, 'doc.txt'), headers: { 'x-amz-meta-note': 'a' },
      tamper: (headers) => { headers['x-amz-meta-note'] = 'b'; } });
    assert.equal(changed.status, 403);
    assert.equal(errorCode(changed.body), 'SignatureDoesNotMatch');

    const original = Buffer.from('the body that was signed');
    const swapped = await rawS3Request(stack, { method: 'PUT', path: objectPath(BUCKET, 'swapped-body'), body: original,
      tamper: (headers) => {
        headers['x-amz-content-sha256'] = nodeCrypto.createHash('sha256').update(Buffer.from('another body, same length!')).digest('hex');
      } });
    // S3 checks the signature (which covers the header) first; a proxy that checks the body first says so instead.
    assert.ok(swapped.status === 403 || swapped.status === 400, `a payload hash changed after signing: ${swapped.status}`);
    assert.ok(['SignatureDoesNotMatch', 'XAmzContentSHA256Mismatch'].includes(errorCode(swapped.body)), swapped.body.toString());
    assert.equal((await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'swapped-body' })))).code, 'NoSuchKey');

    // Signed hash of one body, another body sent: S3 answers XAmzContentSHA256Mismatch and stores nothing.
    const signedHash = nodeCrypto.createHash('sha256').update(original).digest('hex');
    const mismatch = await rawS3Request(stack, { method: 'PUT', path: objectPath(BUCKET, 'mismatched-body'),
      headers: { 'x-amz-content-sha256': signedHash }, body: Buffer.from('not the body that was signed') });
    assert.equal(mismatch.status, 400, `a body that does not match x-amz-content-sha256: ${mismatch.body.toString()}`);
    assert.equal(errorCode(mismatch.body), 'XAmzContentSHA256Mismatch');
    const missing = await s3Error(s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'mismatched-body' })));
    assert.equal(missing.code, 'NoSuchKey', 'nothing is stored when the body does not match its hash');
  });

  it('refuses a signature for another region than the one configured', async () => {
    const elsewhere = stack.s3(stack.clientCredentials, { region: 'ap-southeast-2' });
    const error = await s3Error(elsewhere.send(new ListBucketsCommand({})));
    assert.ok(error.status === 400 || error.status === 403, `status ${error.status}`);
    assert.ok(['AuthorizationHeaderMalformed', 'SignatureDoesNotMatch'].includes(error.code), error.code);
  });

  it('refuses a request signed too long ago with 403 RequestTimeTooSkewed', async () => {
    const response = await rawS3Request(stack, { method: 'GET', path: objectPath(BUCKET, 'doc.txt'),
      signingDate: new Date(Date.now() - 60 * 60 * 1000) });
    assert.equal(response.status, 403);
    assert.equal(errorCode(response.body), 'RequestTimeTooSkewed');
  });

  it('serves a presigned GET URL, and refuses it once expired or altered', async () => {
    const url = await presignUrl(stack, { bucket: BUCKET, key: 'doc.txt', expiresIn: 300 });
    const fetched = await fetch(url);
    assert.equal(fetched.status, 200);
    assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(body));

    const expired = await presignUrl(stack, { bucket: BUCKET, key: 'doc.txt', expiresIn: 60, signingDate: new Date(Date.now() - 3_600_000) });
    const refused = await fetch(expired);
    assert.equal(refused.status, 403);
    const refusedBody = Buffer.from(await refused.arrayBuffer());
    assert.equal(errorCode(refusedBody), 'AccessDenied');
    assert.ok(!refusedBody.includes(MARKER));

    const other = await fetch(url.replace('/doc.txt?', '/other.txt?'));
    assert.equal(other.status, 403, 'a presigned URL is for its own key only');
    const wrongSecret = await presignUrl(stack, { bucket: BUCKET, key: 'doc.txt',
      credentials: { accessKeyId: stack.clientCredentials.accessKeyId, secretAccessKey: 'not-the-secret' } });
    const bad = await fetch(wrongSecret);
    assert.equal(bad.status, 403);
    assert.equal(errorCode(Buffer.from(await bad.arrayBuffer())), 'SignatureDoesNotMatch');
  });

  it('serves a URL presigned by `aws s3 presign`, and the CLI reports a wrong secret', { skip: located.skip }, async () => {
    const presigned = await stack.aws(['s3', 'presign', `s3://${BUCKET}/doc.txt`, '--expires-in', '300']);
    assert.equal(presigned.code, 0, presigned.stderr);
    const fetched = await fetch(presigned.stdout.trim());
    assert.equal(fetched.status, 200, `GET ${presigned.stdout.trim()}`);
    assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(body));

    const refused = await stack.aws(['s3', 'ls', `s3://${BUCKET}/`],
      { credentials: { accessKeyId: stack.clientCredentials.accessKeyId, secretAccessKey: 'wrong-secret' } });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /SignatureDoesNotMatch/);
    const listed = await stack.aws(['s3', 'ls', `s3://${BUCKET}/`]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`\\s${body.length} doc\\.txt`));
  });

  it('keeps working for the right credentials after all these refusals, and logged no secret', async () => {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'doc.txt' }));
    assert.ok((await bodyBytes(got.Body)).equals(body));
    const output = stack.proxyOutput();
    assert.ok(!output.includes(stack.clientCredentials.secretAccessKey), 'the proxy logged a client secret');
    for (const zone of ZONE_NAMES) assert.ok(!output.includes(stack.backingCredentials[zone].secretAccessKey), `the proxy logged zone ${zone}'s secret`);
    assert.ok(!output.includes(MARKER), 'the proxy logged plaintext');
  });
});
