// Drives a running server with the real AWS CLI v2: every key-service operation, through the
// CLI's own argument parsing, fileb:// inputs, pagination, output formatting and error reporting.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { AwsCli, locateAwsCli } from '../../helpers/aws-cli.ts';

const located = await locateAwsCli();
const DAY_MS = 24 * 60 * 60 * 1000;

type Json = Record<string, any>;
type Context = Record<string, string>;

/** Asserts that an ISO timestamp printed by the CLI is within a minute of `expectedMs`. */
function assertNear(value: unknown, expectedMs: number, what: string): void {
  assert.equal(typeof value, 'string', `${what} is missing`);
  const parsed = Date.parse(value as string);
  assert.ok(Math.abs(parsed - expectedMs) < 60_000, `${what} ${String(value)} is not near ${new Date(expectedMs).toISOString()}`);
}

describe('key service through the AWS CLI v2', { skip: located.skip }, () => {
  let server: TestServer;
  let cli: AwsCli;

  before(async () => {
    server = await startTestServer();
    if (located.skip === undefined) cli = new AwsCli(server, located.path);
  });
  after(async () => {
    cli?.dispose();
    await server?.dispose();
  });

  const arnOf = (keyId: string) => `arn:aws:kms:${server.region}:${server.accountId}:key/${keyId}`;
  const contextArgs = (context?: Context) => (context ? ['--encryption-context', JSON.stringify(context)] : []);

  async function createKey(...args: string[]): Promise<Json> {
    return (await cli.json('create-key', ...args)).KeyMetadata;
  }

  async function encrypt(keyId: string, plaintext: Buffer, context?: Context): Promise<Buffer> {
    return cli.bytes('CiphertextBlob', 'encrypt', '--key-id', keyId, '--plaintext', cli.fileb(plaintext), ...contextArgs(context));
  }

  async function decrypt(blob: Buffer, context?: Context): Promise<Buffer> {
    return cli.bytes('Plaintext', 'decrypt', '--ciphertext-blob', cli.fileb(blob), ...contextArgs(context));
  }

  it('creates symmetric, RSA, ECC and HMAC keys and describes them', async () => {
    const [symmetric, rsa, ecc, hmac] = await Promise.all([
      createKey('--description', 'cli symmetric', '--tags', 'TagKey=made-by,TagValue=aws-cli'),
      createKey('--key-spec', 'RSA_2048', '--key-usage', 'SIGN_VERIFY'),
      createKey('--key-spec', 'ECC_NIST_P256', '--key-usage', 'SIGN_VERIFY'),
      createKey('--key-spec', 'HMAC_256', '--key-usage', 'GENERATE_VERIFY_MAC'),
    ]);
    const expected: Array<[Json, string, string]> = [[symmetric, 'SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT'],
      [rsa, 'RSA_2048', 'SIGN_VERIFY'], [ecc, 'ECC_NIST_P256', 'SIGN_VERIFY'], [hmac, 'HMAC_256', 'GENERATE_VERIFY_MAC']];
    for (const [metadata, keySpec, keyUsage] of expected) {
      assert.match(metadata.KeyId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(metadata.Arn, arnOf(metadata.KeyId));
      assert.equal(metadata.AWSAccountId, server.accountId);
      assert.equal(metadata.KeySpec, keySpec);
      assert.equal(metadata.CustomerMasterKeySpec, keySpec);
      assert.equal(metadata.KeyUsage, keyUsage);
      assert.equal(metadata.KeyState, 'Enabled');
      assert.equal(metadata.Enabled, true);
      assert.equal(metadata.Origin, 'AWS_KMS');
      assert.equal(metadata.KeyManager, 'CUSTOMER');
      assertNear(metadata.CreationDate, Date.now(), 'CreationDate');
    }
    assert.equal(symmetric.Description, 'cli symmetric');
    assert.deepEqual(symmetric.EncryptionAlgorithms, ['SYMMETRIC_DEFAULT']);
    assert.ok(rsa.SigningAlgorithms.includes('RSASSA_PSS_SHA_256') && rsa.SigningAlgorithms.includes('RSASSA_PKCS1_V1_5_SHA_256'));
    assert.deepEqual(ecc.SigningAlgorithms, ['ECDSA_SHA_256']);
    assert.deepEqual(hmac.MacAlgorithms, ['HMAC_SHA_256']);

    const [byId, byArn, missing, wrongUsage] = await Promise.all([
      cli.json('describe-key', '--key-id', ecc.KeyId),
      cli.json('describe-key', '--key-id', ecc.Arn),
      cli.error('DescribeKey', ['describe-key', '--key-id', nodeCrypto.randomUUID()]),
      cli.error('CreateKey', ['create-key', '--key-spec', 'ECC_NIST_P256', '--key-usage', 'ENCRYPT_DECRYPT']),
    ]);
    assert.deepEqual(byId.KeyMetadata, ecc);
    assert.deepEqual(byArn.KeyMetadata, ecc);
    assert.equal(missing.code, 'NotFoundException');
    assert.match(missing.message, /does not exist/);
    assert.equal(wrongUsage.code, 'ValidationException');
  });

  it('lists keys across pages, with the CLI paginating and by hand', async () => {
    const created = await Promise.all([createKey(), createKey(), createKey()]);
    const all = await cli.json('list-keys');
    const ids = all.Keys.map((key: Json) => key.KeyId) as string[];
    for (const key of created) {
      assert.ok(ids.includes(key.KeyId), `list-keys is missing ${key.KeyId}`);
      assert.deepEqual(all.Keys.find((entry: Json) => entry.KeyId === key.KeyId), { KeyId: key.KeyId, KeyArn: key.Arn });
    }
    assert.equal(new Set(ids).size, ids.length, 'list-keys repeats a key');

    // --page-size makes the CLI send Limit=1 and follow NextMarker until Truncated is false.
    const [pageByPage, firstTwo, rawPage] = await Promise.all([
      cli.json('list-keys', '--page-size', '1'),
      cli.json('list-keys', '--max-items', '2'),
      cli.json('list-keys', '--no-paginate', '--limit', '1'),
    ]);
    assert.deepEqual(pageByPage.Keys.map((key: Json) => key.KeyId), ids);
    assert.equal(firstTwo.Keys.length, 2);
    assert.equal(typeof firstTwo.NextToken, 'string');
    assert.equal(rawPage.Keys.length, 1);
    assert.equal(rawPage.Truncated, true);
    assert.equal(typeof rawPage.NextMarker, 'string');

    const [rest, secondRawPage] = await Promise.all([
      cli.json('list-keys', '--starting-token', firstTwo.NextToken),
      cli.json('list-keys', '--no-paginate', '--limit', '1', '--marker', rawPage.NextMarker),
    ]);
    assert.deepEqual([...firstTwo.Keys, ...rest.Keys].map((key: Json) => key.KeyId), ids);
    assert.equal(secondRawPage.Keys[0].KeyId, ids[1]);

    const badMarker = await cli.error('ListKeys', ['list-keys', '--no-paginate', '--marker', 'not-a-marker']);
    assert.equal(badMarker.code, 'InvalidMarkerException');
  });

  it('updates a key description', async () => {
    const key = await createKey('--description', 'before');
    const update = await cli.run(['update-key-description', '--key-id', key.KeyId, '--description', 'after: rotated quarterly']);
    assert.equal(update.code, 0, update.stderr);
    assert.equal(update.stdout.trim(), '', 'UpdateKeyDescription answers nothing');
    const described = await cli.json('describe-key', '--key-id', key.KeyId);
    assert.equal(described.KeyMetadata.Description, 'after: rotated quarterly');
  });

  it('disables and re-enables a key; a disabled key refuses to encrypt', async () => {
    const key = await createKey();
    const before = await encrypt(key.KeyId, Buffer.from('written while enabled'));
    await cli.json('disable-key', '--key-id', key.KeyId);
    const [described, refused, refusedDecrypt] = await Promise.all([
      cli.json('describe-key', '--key-id', key.KeyId),
      cli.error('Encrypt', ['encrypt', '--key-id', key.KeyId, '--plaintext', cli.fileb('x')]),
      cli.error('Decrypt', ['decrypt', '--ciphertext-blob', cli.fileb(before)]),
    ]);
    assert.equal(described.KeyMetadata.KeyState, 'Disabled');
    assert.equal(described.KeyMetadata.Enabled, false);
    assert.equal(refused.code, 'DisabledException');
    assert.match(refused.message, new RegExp(`${key.Arn} is disabled`));
    assert.equal(refusedDecrypt.code, 'DisabledException');

    await cli.json('enable-key', '--key-id', key.KeyId);
    assert.equal((await cli.json('describe-key', '--key-id', key.KeyId)).KeyMetadata.KeyState, 'Enabled');
    assert.equal((await decrypt(before)).toString(), 'written while enabled');
  });

  it('schedules and cancels key deletion', async () => {
    const key = await createKey();
    const blob = await encrypt(key.KeyId, Buffer.from('still mine'));
    const tooShort = await cli.error('ScheduleKeyDeletion',
      ['schedule-key-deletion', '--key-id', key.KeyId, '--pending-window-in-days', '6']);
    assert.equal(tooShort.code, 'ValidationException');
    assert.match(tooShort.message, /pendingWindowInDays/i);

    const scheduled = await cli.json('schedule-key-deletion', '--key-id', key.KeyId, '--pending-window-in-days', '7');
    assert.equal(scheduled.KeyId, key.Arn);
    assert.equal(scheduled.KeyState, 'PendingDeletion');
    assert.equal(scheduled.PendingWindowInDays, 7);
    assertNear(scheduled.DeletionDate, Date.now() + 7 * DAY_MS, 'DeletionDate');

    const [described, encryptRefused, decryptRefused, again] = await Promise.all([
      cli.json('describe-key', '--key-id', key.KeyId),
      cli.error('Encrypt', ['encrypt', '--key-id', key.KeyId, '--plaintext', cli.fileb('x')]),
      cli.error('Decrypt', ['decrypt', '--ciphertext-blob', cli.fileb(blob)]),
      cli.error('ScheduleKeyDeletion', ['schedule-key-deletion', '--key-id', key.KeyId]),
    ]);
    assert.equal(described.KeyMetadata.KeyState, 'PendingDeletion');
    assert.equal(described.KeyMetadata.Enabled, false);
    assert.equal(described.KeyMetadata.DeletionDate, scheduled.DeletionDate);
    assert.equal(described.KeyMetadata.PendingDeletionWindowInDays, 7);
    assert.equal(encryptRefused.code, 'KMSInvalidStateException');
    assert.match(encryptRefused.message, /pending deletion/);
    assert.equal(decryptRefused.code, 'KMSInvalidStateException');
    assert.equal(again.code, 'KMSInvalidStateException');

    const cancelled = await cli.json('cancel-key-deletion', '--key-id', key.KeyId);
    assert.equal(cancelled.KeyId, key.Arn);
    const afterCancel = (await cli.json('describe-key', '--key-id', key.KeyId)).KeyMetadata;
    assert.equal(afterCancel.KeyState, 'Disabled', 'a key whose deletion was cancelled stays disabled');
    assert.equal(afterCancel.DeletionDate, undefined);
    assert.equal(afterCancel.PendingDeletionWindowInDays, undefined);
    const notPending = await cli.error('CancelKeyDeletion', ['cancel-key-deletion', '--key-id', key.KeyId]);
    assert.equal(notPending.code, 'KMSInvalidStateException');
    await cli.json('enable-key', '--key-id', key.KeyId);
    assert.equal((await decrypt(blob)).toString(), 'still mine');
  });

  it('creates, lists, updates and deletes aliases, and encrypts through them', async () => {
    const [first, second] = await Promise.all([createKey(), createKey()]);
    const aliasName = 'alias/cli-app';
    const aliasArn = `arn:aws:kms:${server.region}:${server.accountId}:${aliasName}`;
    const created = await cli.run(['create-alias', '--alias-name', aliasName, '--target-key-id', first.KeyId]);
    assert.equal(created.code, 0, created.stderr);

    const [listed, duplicate, reserved, viaName, viaArn] = await Promise.all([
      cli.json('list-aliases', '--key-id', first.KeyId),
      cli.error('CreateAlias', ['create-alias', '--alias-name', aliasName, '--target-key-id', second.KeyId]),
      cli.error('CreateAlias', ['create-alias', '--alias-name', 'alias/aws/cli', '--target-key-id', second.KeyId]),
      cli.json('encrypt', '--key-id', aliasName, '--plaintext', cli.fileb('via name')),
      cli.json('encrypt', '--key-id', aliasArn, '--plaintext', cli.fileb('via arn')),
    ]);
    assert.equal(listed.Aliases.length, 1);
    assert.equal(listed.Aliases[0].AliasName, aliasName);
    assert.equal(listed.Aliases[0].AliasArn, aliasArn);
    assert.equal(listed.Aliases[0].TargetKeyId, first.KeyId);
    assert.equal(duplicate.code, 'AlreadyExistsException');
    assert.match(duplicate.message, new RegExp(aliasArn));
    assert.equal(reserved.code, 'InvalidAliasNameException');
    assert.equal(viaName.KeyId, first.Arn);
    assert.equal(viaArn.KeyId, first.Arn);
    assert.equal((await decrypt(Buffer.from(viaArn.CiphertextBlob, 'base64'))).toString(), 'via arn');

    await cli.run(['update-alias', '--alias-name', aliasName, '--target-key-id', second.Arn]);
    const [all, retargeted] = await Promise.all([
      cli.json('list-aliases'),
      cli.json('encrypt', '--key-id', aliasName, '--plaintext', cli.fileb('after update')),
    ]);
    assert.equal(all.Aliases.find((alias: Json) => alias.AliasName === aliasName)?.TargetKeyId, second.KeyId);
    assert.equal(retargeted.KeyId, second.Arn);

    const deleted = await cli.run(['delete-alias', '--alias-name', aliasName]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const [afterDelete, gone, deleteAgain] = await Promise.all([
      cli.json('list-aliases', '--key-id', second.KeyId),
      cli.error('Encrypt', ['encrypt', '--key-id', aliasName, '--plaintext', cli.fileb('x')]),
      cli.error('DeleteAlias', ['delete-alias', '--alias-name', aliasName]),
    ]);
    assert.deepEqual(afterDelete.Aliases, []);
    assert.equal(gone.code, 'NotFoundException');
    assert.equal(deleteAgain.code, 'NotFoundException');
  });

  it('round-trips binary plaintext with an encryption context, and binds the context', async () => {
    const key = await createKey();
    const plaintext = Buffer.from(Array.from({ length: 256 }, (_, index) => index));
    const context = { purpose: 'cli test', tenant: '42' };
    const encrypted = await cli.json('encrypt', '--key-id', key.KeyId, '--plaintext', cli.fileb(plaintext), ...contextArgs(context));
    assert.equal(encrypted.KeyId, key.Arn);
    assert.equal(encrypted.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
    const blob = Buffer.from(encrypted.CiphertextBlob, 'base64');

    const [roundTrip, described, wrongContext, noContext] = await Promise.all([
      decrypt(blob, context),
      cli.json('decrypt', '--ciphertext-blob', cli.fileb(blob), ...contextArgs(context)),
      cli.error('Decrypt', ['decrypt', '--ciphertext-blob', cli.fileb(blob), ...contextArgs({ ...context, tenant: '43' })]),
      cli.error('Decrypt', ['decrypt', '--ciphertext-blob', cli.fileb(blob)]),
    ]);
    assert.deepEqual(roundTrip, plaintext);
    assert.equal(described.KeyId, key.Arn, 'Decrypt answers the full key ARN');
    assert.equal(described.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
    assert.equal(wrongContext.code, 'InvalidCiphertextException');
    assert.equal(noContext.code, 'InvalidCiphertextException');
  });

  it('re-encrypts from one key to another with source and destination contexts', async () => {
    const [source, destination] = await Promise.all([createKey(), createKey()]);
    const blob = await encrypt(source.KeyId, Buffer.from('move me'), { from: 'a' });
    const moved = await cli.json('re-encrypt', '--ciphertext-blob', cli.fileb(blob),
      '--source-encryption-context', JSON.stringify({ from: 'a' }),
      '--destination-key-id', destination.KeyId, '--destination-encryption-context', JSON.stringify({ to: 'b' }));
    assert.equal(moved.SourceKeyId, source.Arn);
    assert.equal(moved.KeyId, destination.Arn);
    assert.equal(moved.SourceEncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
    assert.equal(moved.DestinationEncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
    const movedBlob = Buffer.from(moved.CiphertextBlob, 'base64');

    const [decrypted, decryptedBy, oldContext, wrongSource] = await Promise.all([
      decrypt(movedBlob, { to: 'b' }),
      cli.json('decrypt', '--ciphertext-blob', cli.fileb(movedBlob), ...contextArgs({ to: 'b' })),
      cli.error('Decrypt', ['decrypt', '--ciphertext-blob', cli.fileb(movedBlob), ...contextArgs({ from: 'a' })]),
      cli.error('ReEncrypt', ['re-encrypt', '--ciphertext-blob', cli.fileb(blob), '--destination-key-id', destination.KeyId]),
    ]);
    assert.equal(decrypted.toString(), 'move me');
    assert.equal(decryptedBy.KeyId, destination.Arn);
    assert.equal(oldContext.code, 'InvalidCiphertextException');
    assert.equal(wrongSource.code, 'InvalidCiphertextException');
  });

  it('generates data keys, with and without a plaintext copy', async () => {
    const key = await createKey();
    const context = { file: 'backup.tar' };
    const [bySpec, byLength, withoutPlaintext, both] = await Promise.all([
      cli.json('generate-data-key', '--key-id', key.KeyId, '--key-spec', 'AES_256', ...contextArgs(context)),
      cli.json('generate-data-key', '--key-id', key.KeyId, '--number-of-bytes', '64'),
      cli.json('generate-data-key-without-plaintext', '--key-id', key.KeyId, '--key-spec', 'AES_128', ...contextArgs(context)),
      cli.error('GenerateDataKey', ['generate-data-key', '--key-id', key.KeyId, '--key-spec', 'AES_256', '--number-of-bytes', '32']),
    ]);
    const plaintext = Buffer.from(bySpec.Plaintext, 'base64');
    assert.equal(plaintext.length, 32);
    assert.equal(bySpec.KeyId, key.Arn);
    assert.equal(Buffer.from(byLength.Plaintext, 'base64').length, 64);
    assert.equal(withoutPlaintext.Plaintext, undefined);
    assert.equal(withoutPlaintext.KeyId, key.Arn);
    assert.equal(both.code, 'ValidationException');

    const [unwrapped, unwrappedLength, unwrappedWithout] = await Promise.all([
      decrypt(Buffer.from(bySpec.CiphertextBlob, 'base64'), context),
      decrypt(Buffer.from(byLength.CiphertextBlob, 'base64')),
      decrypt(Buffer.from(withoutPlaintext.CiphertextBlob, 'base64'), context),
    ]);
    assert.deepEqual(unwrapped, plaintext);
    assert.deepEqual(unwrappedLength, Buffer.from(byLength.Plaintext, 'base64'));
    assert.equal(unwrappedWithout.length, 16);
  });

  it('generates data key pairs whose public key is SPKI and whose private key matches it', async () => {
    const key = await createKey();
    const context = { pair: 'p' };
    const [pair, withoutPlaintext] = await Promise.all([
      cli.json('generate-data-key-pair', '--key-id', key.KeyId, '--key-pair-spec', 'ECC_NIST_P256', ...contextArgs(context)),
      cli.json('generate-data-key-pair-without-plaintext', '--key-id', key.KeyId, '--key-pair-spec', 'RSA_2048'),
    ]);
    assert.equal(pair.KeyId, key.Arn);
    assert.equal(pair.KeyPairSpec, 'ECC_NIST_P256');
    const publicKey = nodeCrypto.createPublicKey({ key: Buffer.from(pair.PublicKey, 'base64'), format: 'der', type: 'spki' });
    assert.equal(publicKey.asymmetricKeyType, 'ec');
    assert.equal(publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const privateDer = Buffer.from(pair.PrivateKeyPlaintext, 'base64');
    const privateKey = nodeCrypto.createPrivateKey({ key: privateDer, format: 'der', type: 'pkcs8' });
    assert.deepEqual(nodeCrypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' }), Buffer.from(pair.PublicKey, 'base64'));

    assert.equal(withoutPlaintext.KeyPairSpec, 'RSA_2048');
    assert.equal(withoutPlaintext.PrivateKeyPlaintext, undefined);
    const rsaPublic = nodeCrypto.createPublicKey({ key: Buffer.from(withoutPlaintext.PublicKey, 'base64'), format: 'der', type: 'spki' });
    assert.equal(rsaPublic.asymmetricKeyType, 'rsa');
    assert.equal(rsaPublic.asymmetricKeyDetails?.modulusLength, 2048);

    const [unwrapped, unwrappedRsa] = await Promise.all([
      decrypt(Buffer.from(pair.PrivateKeyCiphertextBlob, 'base64'), context),
      decrypt(Buffer.from(withoutPlaintext.PrivateKeyCiphertextBlob, 'base64')),
    ]);
    assert.deepEqual(unwrapped, privateDer);
    const rsaPrivate = nodeCrypto.createPrivateKey({ key: unwrappedRsa, format: 'der', type: 'pkcs8' });
    assert.deepEqual(nodeCrypto.createPublicKey(rsaPrivate).export({ format: 'der', type: 'spki' }),
      Buffer.from(withoutPlaintext.PublicKey, 'base64'));
  });

  it('generates random bytes of the requested length and refuses 0 and 1025', async () => {
    const [first, second, max, tooMany, zero, zeroAtServer] = await Promise.all([
      cli.bytes('Plaintext', 'generate-random', '--number-of-bytes', '32'),
      cli.bytes('Plaintext', 'generate-random', '--number-of-bytes', '32'),
      cli.bytes('Plaintext', 'generate-random', '--number-of-bytes', '1024'),
      cli.error('GenerateRandom', ['generate-random', '--number-of-bytes', '1025']),
      cli.run(['generate-random', '--number-of-bytes', '0']),
      cli.error('GenerateRandom', ['generate-random', '--number-of-bytes', '0'], { clientValidation: false }),
    ]);
    assert.equal(first.length, 32);
    assert.equal(second.length, 32);
    assert.notDeepEqual(first, second);
    assert.equal(max.length, 1024);
    assert.equal(tooMany.code, 'ValidationException');
    assert.match(tooMany.message, /less than or equal to 1024/);
    // The CLI's model has a minimum of 1, so the CLI itself refuses 0 (exit 252) without a request.
    assert.equal(zero.code, 252, zero.stderr);
    assert.match(zero.stderr, /valid min value: 1/);
    assert.equal(zeroAtServer.code, 'ValidationException');
    assert.match(zeroAtServer.message, /greater than or equal to 1/);
  });

  it('signs and verifies with RSA (RAW) and ECDSA P-256 (DIGEST), matching node:crypto', async () => {
    const [rsa, ecc] = await Promise.all([
      createKey('--key-spec', 'RSA_2048', '--key-usage', 'SIGN_VERIFY'),
      createKey('--key-spec', 'ECC_NIST_P256', '--key-usage', 'SIGN_VERIFY'),
    ]);
    const message = Buffer.from('release v1.2.3 checksum manifest\n');
    const digest = nodeCrypto.createHash('sha256').update(message).digest();
    const [pss, pkcs1, ecdsa, rsaPublic, eccPublic] = await Promise.all([
      cli.json('sign', '--key-id', rsa.KeyId, '--message', cli.fileb(message), '--message-type', 'RAW',
        '--signing-algorithm', 'RSASSA_PSS_SHA_256'),
      cli.bytes('Signature', 'sign', '--key-id', rsa.KeyId, '--message', cli.fileb(message),
        '--signing-algorithm', 'RSASSA_PKCS1_V1_5_SHA_256'),
      cli.json('sign', '--key-id', ecc.Arn, '--message', cli.fileb(digest), '--message-type', 'DIGEST',
        '--signing-algorithm', 'ECDSA_SHA_256'),
      cli.bytes('PublicKey', 'get-public-key', '--key-id', rsa.KeyId),
      cli.bytes('PublicKey', 'get-public-key', '--key-id', ecc.KeyId),
    ]);
    assert.equal(pss.KeyId, rsa.Arn);
    assert.equal(pss.SigningAlgorithm, 'RSASSA_PSS_SHA_256');
    assert.equal(ecdsa.KeyId, ecc.Arn);
    const pssSignature = Buffer.from(pss.Signature, 'base64');
    const ecdsaSignature = Buffer.from(ecdsa.Signature, 'base64');
    assert.equal(pssSignature.length, 256);
    assert.equal(pkcs1.length, 256);

    // Independent verification: AWS signs PSS with a salt as long as the digest, ECDSA as DER.
    const rsaKey = nodeCrypto.createPublicKey({ key: rsaPublic, format: 'der', type: 'spki' });
    const eccKey = nodeCrypto.createPublicKey({ key: eccPublic, format: 'der', type: 'spki' });
    assert.ok(nodeCrypto.verify('sha256', message,
      { key: rsaKey, padding: nodeCrypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pssSignature), 'PSS signature');
    assert.ok(nodeCrypto.verify('sha256', message, { key: rsaKey, padding: nodeCrypto.constants.RSA_PKCS1_PADDING }, pkcs1),
      'PKCS#1 v1.5 signature');
    assert.ok(nodeCrypto.verify('sha256', message, eccKey, ecdsaSignature), 'ECDSA signature over the digest of the message');

    const wrong = Buffer.from('release v1.2.4 checksum manifest\n');
    const [pssValid, ecdsaRawValid, ecdsaDigestValid, pssWrong, ecdsaWrong, shortDigest] = await Promise.all([
      cli.json('verify', '--key-id', rsa.KeyId, '--message', cli.fileb(message), '--message-type', 'RAW',
        '--signature', cli.fileb(pssSignature), '--signing-algorithm', 'RSASSA_PSS_SHA_256'),
      cli.json('verify', '--key-id', ecc.KeyId, '--message', cli.fileb(message),
        '--signature', cli.fileb(ecdsaSignature), '--signing-algorithm', 'ECDSA_SHA_256'),
      cli.json('verify', '--key-id', ecc.KeyId, '--message', cli.fileb(digest), '--message-type', 'DIGEST',
        '--signature', cli.fileb(ecdsaSignature), '--signing-algorithm', 'ECDSA_SHA_256'),
      cli.error('Verify', ['verify', '--key-id', rsa.KeyId, '--message', cli.fileb(wrong),
        '--signature', cli.fileb(pssSignature), '--signing-algorithm', 'RSASSA_PSS_SHA_256']),
      cli.error('Verify', ['verify', '--key-id', ecc.KeyId, '--message', cli.fileb(wrong),
        '--signature', cli.fileb(ecdsaSignature), '--signing-algorithm', 'ECDSA_SHA_256']),
      cli.error('Sign', ['sign', '--key-id', ecc.KeyId, '--message', cli.fileb(digest.subarray(0, 31)), '--message-type', 'DIGEST',
        '--signing-algorithm', 'ECDSA_SHA_256']),
    ]);
    for (const verified of [pssValid, ecdsaRawValid, ecdsaDigestValid]) assert.equal(verified.SignatureValid, true);
    assert.equal(pssValid.KeyId, rsa.Arn);
    assert.equal(ecdsaDigestValid.SigningAlgorithm, 'ECDSA_SHA_256');
    assert.equal(pssWrong.code, 'KMSInvalidSignatureException');
    assert.equal(ecdsaWrong.code, 'KMSInvalidSignatureException');
    assert.equal(shortDigest.code, 'ValidationException');
  });

  it('gets the public key of an asymmetric key and refuses one for a symmetric key', async () => {
    const [ecc, symmetric] = await Promise.all([
      createKey('--key-spec', 'ECC_NIST_P256', '--key-usage', 'SIGN_VERIFY'),
      createKey(),
    ]);
    const [answer, refused] = await Promise.all([
      cli.json('get-public-key', '--key-id', ecc.KeyId),
      cli.error('GetPublicKey', ['get-public-key', '--key-id', symmetric.KeyId]),
    ]);
    assert.equal(answer.KeyId, ecc.Arn);
    assert.equal(answer.KeySpec, 'ECC_NIST_P256');
    assert.equal(answer.CustomerMasterKeySpec, 'ECC_NIST_P256');
    assert.equal(answer.KeyUsage, 'SIGN_VERIFY');
    assert.deepEqual(answer.SigningAlgorithms, ['ECDSA_SHA_256']);
    const publicKey = nodeCrypto.createPublicKey({ key: Buffer.from(answer.PublicKey, 'base64'), format: 'der', type: 'spki' });
    assert.equal(publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(refused.code, 'UnsupportedOperationException');
  });

  it('generates and verifies HMACs; a tampered MAC or message fails', async () => {
    const key = await createKey('--key-spec', 'HMAC_256', '--key-usage', 'GENERATE_VERIFY_MAC');
    const message = Buffer.from('webhook body {"id":1}');
    const generated = await cli.json('generate-mac', '--key-id', key.KeyId, '--message', cli.fileb(message),
      '--mac-algorithm', 'HMAC_SHA_256');
    assert.equal(generated.KeyId, key.Arn);
    assert.equal(generated.MacAlgorithm, 'HMAC_SHA_256');
    const mac = Buffer.from(generated.Mac, 'base64');
    assert.equal(mac.length, 32);
    const tampered = Buffer.from(mac);
    tampered[0] ^= 0x01;

    const verifyArgs = (body: Buffer, tag: Buffer, algorithm = 'HMAC_SHA_256') => ['verify-mac', '--key-id', key.KeyId,
      '--message', cli.fileb(body), '--mac', cli.fileb(tag), '--mac-algorithm', algorithm];
    const [again, valid, badMac, badMessage, wrongAlgorithm] = await Promise.all([
      cli.bytes('Mac', 'generate-mac', '--key-id', key.Arn, '--message', cli.fileb(message), '--mac-algorithm', 'HMAC_SHA_256'),
      cli.json(...verifyArgs(message, mac)),
      cli.error('VerifyMac', verifyArgs(message, tampered)),
      cli.error('VerifyMac', verifyArgs(Buffer.from('webhook body {"id":2}'), mac)),
      cli.error('GenerateMac', ['generate-mac', '--key-id', key.KeyId, '--message', cli.fileb(message), '--mac-algorithm', 'HMAC_SHA_384']),
    ]);
    assert.deepEqual(again, mac, 'HMAC is deterministic');
    assert.equal(valid.MacValid, true);
    assert.equal(valid.KeyId, key.Arn);
    assert.equal(badMac.code, 'KMSInvalidMacException');
    assert.equal(badMessage.code, 'KMSInvalidMacException');
    assert.equal(wrongAlgorithm.code, 'InvalidKeyUsageException');
  });

  it('enables rotation with a period, rotates on demand, lists rotations and keeps old ciphertexts', async () => {
    const key = await createKey();
    const oldBlob = await encrypt(key.KeyId, Buffer.from('sealed before rotation'), { v: '1' });
    const [initial, noRotations, tooShortCli, tooShort] = await Promise.all([
      cli.json('get-key-rotation-status', '--key-id', key.KeyId),
      cli.json('list-key-rotations', '--key-id', key.KeyId),
      cli.run(['enable-key-rotation', '--key-id', key.KeyId, '--rotation-period-in-days', '89']),
      cli.error('EnableKeyRotation', ['enable-key-rotation', '--key-id', key.KeyId, '--rotation-period-in-days', '89'],
        { clientValidation: false }),
    ]);
    assert.equal(initial.KeyRotationEnabled, false);
    assert.equal(initial.RotationPeriodInDays, undefined);
    assert.deepEqual(noRotations.Rotations, []);
    assert.equal(tooShortCli.code, 252, 'the CLI refuses a period under 90 days itself');
    assert.match(tooShortCli.stderr, /valid min value: 90/);
    assert.equal(tooShort.code, 'ValidationException');

    await cli.json('enable-key-rotation', '--key-id', key.KeyId, '--rotation-period-in-days', '90');
    const enabled = await cli.json('get-key-rotation-status', '--key-id', key.Arn);
    assert.equal(enabled.KeyRotationEnabled, true);
    assert.equal(enabled.KeyId, key.Arn);
    assert.equal(enabled.RotationPeriodInDays, 90);
    assertNear(enabled.NextRotationDate, Date.now() + 90 * DAY_MS, 'NextRotationDate');

    const rotated = await cli.json('rotate-key-on-demand', '--key-id', key.KeyId);
    assert.equal(rotated.KeyId, key.KeyId, 'RotateKeyOnDemand answers the key id, as AWS does (not the ARN)');
    const newBlob = await encrypt(key.KeyId, Buffer.from('sealed after rotation'), { v: '2' });
    const [rotations, oldPlaintext, newPlaintext] = await Promise.all([
      cli.json('list-key-rotations', '--key-id', key.KeyId),
      decrypt(oldBlob, { v: '1' }),
      decrypt(newBlob, { v: '2' }),
    ]);
    assert.equal(rotations.Rotations.length, 1);
    assert.equal(rotations.Rotations[0].KeyId, key.Arn);
    assert.equal(rotations.Rotations[0].RotationType, 'ON_DEMAND');
    assertNear(rotations.Rotations[0].RotationDate, Date.now(), 'RotationDate');
    assert.equal(oldPlaintext.toString(), 'sealed before rotation');
    assert.equal(newPlaintext.toString(), 'sealed after rotation');
    assert.notDeepEqual(newBlob.subarray(0, 40), oldBlob.subarray(0, 40));

    await cli.json('disable-key-rotation', '--key-id', key.KeyId);
    const disabled = await cli.json('get-key-rotation-status', '--key-id', key.KeyId);
    assert.equal(disabled.KeyRotationEnabled, false);
    assert.equal(disabled.RotationPeriodInDays, undefined);
    assert.equal(disabled.NextRotationDate, undefined);
    assert.equal((await decrypt(oldBlob, { v: '1' })).toString(), 'sealed before rotation', 'disabling rotation keeps old versions');

    const hmac = await createKey('--key-spec', 'HMAC_256', '--key-usage', 'GENERATE_VERIFY_MAC');
    const unsupported = await cli.error('EnableKeyRotation', ['enable-key-rotation', '--key-id', hmac.KeyId]);
    assert.equal(unsupported.code, 'UnsupportedOperationException');
  });

  // AWS documents GetKeyRotationStatus as false while a key is pending deletion, restored on cancel.
  it('reports rotation disabled while a key is pending deletion, and restores it on cancel', async () => {
    const key = await createKey();
    await cli.json('enable-key-rotation', '--key-id', key.KeyId, '--rotation-period-in-days', '180');
    await cli.json('schedule-key-deletion', '--key-id', key.KeyId, '--pending-window-in-days', '7');
    const pending = await cli.json('get-key-rotation-status', '--key-id', key.KeyId);
    await cli.json('cancel-key-deletion', '--key-id', key.KeyId);
    const restored = await cli.json('get-key-rotation-status', '--key-id', key.KeyId);
    assert.equal(restored.KeyRotationEnabled, true, 'cancelling deletion restores the rotation status');
    assert.equal(restored.RotationPeriodInDays, 180);
    assert.equal(pending.KeyRotationEnabled, false, 'AWS reports rotation as disabled while the key is pending deletion');
  });

  it('gets, puts and lists key policies; a malformed policy is refused', async () => {
    const key = await createKey();
    const [current, names] = await Promise.all([
      cli.json('get-key-policy', '--key-id', key.KeyId, '--policy-name', 'default'),
      // --no-paginate shows the page as the server sent it; paginating drops Truncated.
      cli.json('list-key-policies', '--key-id', key.KeyId, '--no-paginate'),
    ]);
    assert.deepEqual(names.PolicyNames, ['default']);
    assert.equal(names.Truncated, false);
    const policy = JSON.parse(current.Policy);
    assert.equal(policy.Version, '2012-10-17');
    assert.deepEqual(policy.Statement[0].Principal, { AWS: `arn:aws:iam::${server.accountId}:root` });
    assert.equal(policy.Statement[0].Action, 'kms:*');

    const replacement = JSON.stringify({ Version: '2012-10-17', Id: 'cli-policy', Statement: [{ Sid: 'Root',
      Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${server.accountId}:root` }, Action: 'kms:*', Resource: '*' }] });
    const put = await cli.run(['put-key-policy', '--key-id', key.KeyId, '--policy-name', 'default', '--policy', replacement]);
    assert.equal(put.code, 0, put.stderr);
    const [stored, malformed, noStatement] = await Promise.all([
      cli.json('get-key-policy', '--key-id', key.KeyId, '--policy-name', 'default'),
      cli.error('PutKeyPolicy', ['put-key-policy', '--key-id', key.KeyId, '--policy-name', 'default', '--policy', '{"Version": "2012-10-17",']),
      cli.error('PutKeyPolicy', ['put-key-policy', '--key-id', key.KeyId, '--policy-name', 'default', '--policy', '{"Version":"2012-10-17"}']),
    ]);
    assert.equal(stored.Policy, replacement);
    assert.equal(malformed.code, 'MalformedPolicyDocumentException');
    assert.equal(noStatement.code, 'MalformedPolicyDocumentException');
  });

  it('tags, lists tags and untags a key; the aws: prefix is reserved', async () => {
    const key = await createKey('--tags', 'TagKey=created,TagValue=at-birth');
    const tagged = await cli.run(['tag-resource', '--key-id', key.KeyId,
      '--tags', 'TagKey=team,TagValue=crypto', 'TagKey=env,TagValue=test']);
    assert.equal(tagged.code, 0, tagged.stderr);
    const byKey = (tags: Json[]) => Object.fromEntries(tags.map((tag) => [tag.TagKey, tag.TagValue]));
    const [listed, reserved] = await Promise.all([
      cli.json('list-resource-tags', '--key-id', key.KeyId, '--no-paginate'),
      cli.error('TagResource', ['tag-resource', '--key-id', key.KeyId, '--tags', 'TagKey=aws:owner,TagValue=x']),
    ]);
    assert.deepEqual(byKey(listed.Tags), { created: 'at-birth', team: 'crypto', env: 'test' });
    assert.equal(listed.Truncated, false);
    assert.equal(reserved.code, 'TagException');

    await cli.run(['tag-resource', '--key-id', key.Arn, '--tags', 'TagKey=env,TagValue=prod']);
    await cli.run(['untag-resource', '--key-id', key.KeyId, '--tag-keys', 'created', 'never-set']);
    const after = await cli.json('list-resource-tags', '--key-id', key.KeyId);
    assert.deepEqual(byKey(after.Tags), { team: 'crypto', env: 'prod' });
    assert.equal(after.Tags.length, 2);
  });

  it('rejects a wrong secret and an unknown access key', async () => {
    const [wrongSecret, unknownKey] = await Promise.all([
      cli.error('ListKeys', ['list-keys'],
        { credentials: { accessKeyId: server.accessKeyId, secretAccessKey: `${server.secretAccessKey}x` } }),
      cli.error('ListKeys', ['list-keys'],
        { credentials: { accessKeyId: 'AKIAUNKNOWNUNKNOWN00', secretAccessKey: server.secretAccessKey } }),
    ]);
    assert.equal(wrongSecret.code, 'InvalidSignatureException');
    assert.equal(unknownKey.code, 'UnrecognizedClientException');
  });
});
