// Drives a running server with @aws-sdk/client-kms: every operation, its results and its errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as nodeCrypto from 'node:crypto';
import {
  CancelKeyDeletionCommand, CreateAliasCommand, CreateKeyCommand, DecryptCommand, DeleteAliasCommand, DescribeKeyCommand,
  DisableKeyCommand, DisableKeyRotationCommand, EnableKeyCommand, EnableKeyRotationCommand, EncryptCommand,
  GenerateDataKeyCommand, GenerateDataKeyPairCommand, GenerateDataKeyPairWithoutPlaintextCommand,
  GenerateDataKeyWithoutPlaintextCommand, GenerateMacCommand, GenerateRandomCommand, GetKeyPolicyCommand,
  GetKeyRotationStatusCommand, GetPublicKeyCommand, KMSClient, ListAliasesCommand, ListKeyPoliciesCommand,
  ListKeyRotationsCommand, ListKeysCommand, ListResourceTagsCommand, PutKeyPolicyCommand, ReEncryptCommand,
  RotateKeyOnDemandCommand, ScheduleKeyDeletionCommand, SignCommand, TagResourceCommand, UntagResourceCommand,
  UpdateAliasCommand, UpdateKeyDescriptionCommand, VerifyCommand, VerifyMacCommand, type KeySpec, type KeyUsageType,
} from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';

const text = (value: string) => Buffer.from(value, 'utf8');

/** Runs a call that must fail and returns the AWS error name and message. */
async function failure(promise: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await promise;
  } catch (error) {
    const record = error as { name: string; message: string; $metadata?: { httpStatusCode?: number } };
    return { name: record.name, message: record.message, status: record.$metadata?.httpStatusCode };
  }
  assert.fail('expected the call to fail');
}

describe('key service over the AWS SDK', () => {
  let server: TestServer;
  let kms: KMSClient;

  before(async () => {
    server = await startTestServer();
    kms = kmsClient(server);
  });
  after(async () => {
    kms?.destroy();
    await server?.dispose();
  });

  async function newKey(keySpec: KeySpec = 'SYMMETRIC_DEFAULT', keyUsage?: KeyUsageType) {
    const created = await kms.send(new CreateKeyCommand({ KeySpec: keySpec, KeyUsage: keyUsage, Description: `test ${keySpec}` }));
    return created.KeyMetadata!;
  }

  it('creates keys of every spec with the usages AWS allows', async () => {
    const cases: Array<[KeySpec, KeyUsageType]> = [
      ['SYMMETRIC_DEFAULT', 'ENCRYPT_DECRYPT'], ['RSA_2048', 'ENCRYPT_DECRYPT'], ['RSA_3072', 'SIGN_VERIFY'],
      ['ECC_NIST_P256', 'SIGN_VERIFY'], ['ECC_NIST_P384', 'SIGN_VERIFY'], ['ECC_NIST_P521', 'SIGN_VERIFY'],
      ['ECC_SECG_P256K1', 'SIGN_VERIFY'], ['HMAC_224', 'GENERATE_VERIFY_MAC'], ['HMAC_256', 'GENERATE_VERIFY_MAC'],
      ['HMAC_384', 'GENERATE_VERIFY_MAC'], ['HMAC_512', 'GENERATE_VERIFY_MAC'],
    ];
    for (const [keySpec, keyUsage] of cases) {
      const metadata = await newKey(keySpec, keyUsage);
      assert.equal(metadata.KeySpec, keySpec);
      assert.equal(metadata.KeyUsage, keyUsage);
      assert.equal(metadata.KeyState, 'Enabled');
      assert.equal(metadata.Arn, `arn:aws:kms:${server.region}:${server.accountId}:key/${metadata.KeyId}`);
      assert.ok(metadata.CreationDate instanceof Date && Math.abs(metadata.CreationDate.getTime() - Date.now()) < 60_000);
    }
    const wrong = await failure(kms.send(new CreateKeyCommand({ KeySpec: 'ECC_NIST_P256', KeyUsage: 'ENCRYPT_DECRYPT' })));
    assert.equal(wrong.name, 'ValidationException');
    const hmacEncrypt = await failure(kms.send(new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'ENCRYPT_DECRYPT' })));
    assert.equal(hmacEncrypt.name, 'ValidationException');
    const badSpec = await failure(kms.send(new CreateKeyCommand({ KeySpec: 'RSA_1024' as KeySpec })));
    assert.equal(badSpec.name, 'ValidationException');
    assert.match(badSpec.message, /Member must satisfy enum value set/);
  });

  it('encrypts and decrypts with the key named by id, ARN, alias and alias ARN', async () => {
    const key = await newKey();
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/names', TargetKeyId: key.KeyId }));
    const aliasArn = `arn:aws:kms:${server.region}:${server.accountId}:alias/names`;
    for (const keyId of [key.KeyId!, key.Arn!, 'alias/names', aliasArn]) {
      const encrypted = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: text(`hello ${keyId}`) }));
      assert.equal(encrypted.KeyId, key.Arn);
      assert.equal(encrypted.EncryptionAlgorithm, 'SYMMETRIC_DEFAULT');
      const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: encrypted.CiphertextBlob }));
      assert.equal(Buffer.from(decrypted.Plaintext!).toString(), `hello ${keyId}`);
      assert.equal(decrypted.KeyId, key.Arn, 'Decrypt answers the full key ARN');
    }
  });

  it('binds the encryption context unambiguously', async () => {
    const key = await newKey();
    const encrypted = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('ctx'), EncryptionContext: { ab: 'c' } }));
    const ok = await kms.send(new DecryptCommand({ CiphertextBlob: encrypted.CiphertextBlob, EncryptionContext: { ab: 'c' } }));
    assert.equal(Buffer.from(ok.Plaintext!).toString(), 'ctx');
    const wrongContexts: Array<Record<string, string>> = [{ a: 'bc' }, {}, { ab: 'c', extra: '' }, { AB: 'c' }];
    for (const context of wrongContexts) {
      const wrong = await failure(kms.send(new DecryptCommand({ CiphertextBlob: encrypted.CiphertextBlob, EncryptionContext: context })));
      assert.equal(wrong.name, 'InvalidCiphertextException', JSON.stringify(context));
    }
  });

  it('detects one flipped bit anywhere in a ciphertext', async () => {
    const key = await newKey();
    const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('flip me'), EncryptionContext: { k: 'v' } }));
    const blob = Buffer.from(CiphertextBlob!);
    const failures = await Promise.all(Array.from({ length: blob.length }, async (_, index) => {
      const tampered = Buffer.from(blob);
      tampered[index] ^= 0x01;
      return failure(kms.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: { k: 'v' } })));
    }));
    failures.forEach((result, index) => assert.equal(result.name, 'InvalidCiphertextException', `byte ${index}: ${result.message}`));
    const truncated = await failure(kms.send(new DecryptCommand({ CiphertextBlob: blob.subarray(0, blob.length - 1), EncryptionContext: { k: 'v' } })));
    assert.equal(truncated.name, 'InvalidCiphertextException');
    const garbage = await failure(kms.send(new DecryptCommand({ CiphertextBlob: text('not a ciphertext at all') })));
    assert.equal(garbage.name, 'InvalidCiphertextException');
  });

  it('enforces plaintext and random-length limits with ValidationException', async () => {
    const key = await newKey();
    const tooLong = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.alloc(4097, 1) })));
    assert.equal(tooLong.name, 'ValidationException');
    assert.match(tooLong.message, /at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096/);
    const max = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.alloc(4096, 2) }));
    assert.ok(max.CiphertextBlob!.length > 4096);
    for (const count of [0, 1025]) {
      const error = await failure(kms.send(new GenerateRandomCommand({ NumberOfBytes: count })));
      assert.equal(error.name, 'ValidationException', String(count));
    }
    const random = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 1024 }));
    assert.equal(random.Plaintext!.length, 1024);
    const other = await kms.send(new GenerateRandomCommand({ NumberOfBytes: 32 }));
    assert.notDeepEqual(Buffer.from(other.Plaintext!), Buffer.from(random.Plaintext!.subarray(0, 32)));
  });

  it('answers wrong key usage in AWS wording', async () => {
    const signing = await newKey('ECC_NIST_P256', 'SIGN_VERIFY');
    const error = await failure(kms.send(new EncryptCommand({ KeyId: signing.KeyId, Plaintext: text('x') })));
    assert.equal(error.name, 'InvalidKeyUsageException');
    assert.equal(error.message, `${signing.Arn} key usage is SIGN_VERIFY which is not valid for Encrypt.`);
    const symmetric = await newKey();
    const sign = await failure(kms.send(new SignCommand({ KeyId: symmetric.KeyId, Message: text('x'), SigningAlgorithm: 'ECDSA_SHA_256' })));
    assert.equal(sign.name, 'InvalidKeyUsageException');
    const mac = await failure(kms.send(new GenerateMacCommand({ KeyId: symmetric.KeyId, Message: text('x'), MacAlgorithm: 'HMAC_SHA_256' })));
    assert.equal(mac.name, 'InvalidKeyUsageException');
  });

  it('refuses Decrypt with a KeyId that does not match the ciphertext', async () => {
    const [first, second] = [await newKey(), await newKey()];
    const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: first.KeyId, Plaintext: text('x') }));
    const error = await failure(kms.send(new DecryptCommand({ CiphertextBlob, KeyId: second.KeyId })));
    assert.equal(error.name, 'IncorrectKeyException');
    const ok = await kms.send(new DecryptCommand({ CiphertextBlob, KeyId: first.Arn }));
    assert.equal(Buffer.from(ok.Plaintext!).toString(), 'x');
  });

  it('re-encrypts across keys with source and destination contexts', async () => {
    const [source, destination] = [await newKey(), await newKey()];
    const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: source.KeyId, Plaintext: text('move me'), EncryptionContext: { from: 'a' } }));
    const moved = await kms.send(new ReEncryptCommand({ CiphertextBlob, SourceEncryptionContext: { from: 'a' },
      DestinationKeyId: destination.KeyId, DestinationEncryptionContext: { to: 'b' } }));
    assert.equal(moved.SourceKeyId, source.Arn);
    assert.equal(moved.KeyId, destination.Arn);
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: moved.CiphertextBlob, EncryptionContext: { to: 'b' } }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'move me');
    assert.equal(decrypted.KeyId, destination.Arn);
    const wrongSource = await failure(kms.send(new ReEncryptCommand({ CiphertextBlob, DestinationKeyId: destination.KeyId })));
    assert.equal(wrongSource.name, 'InvalidCiphertextException');
  });

  it('generates data keys whose wrapped copy decrypts to the plaintext copy', async () => {
    const key = await newKey();
    const bySpec = await kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256', EncryptionContext: { file: 'f' } }));
    assert.equal(bySpec.Plaintext!.length, 32);
    const unwrapped = await kms.send(new DecryptCommand({ CiphertextBlob: bySpec.CiphertextBlob, EncryptionContext: { file: 'f' } }));
    assert.deepEqual(Buffer.from(unwrapped.Plaintext!), Buffer.from(bySpec.Plaintext!));
    const byLength = await kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, NumberOfBytes: 64 }));
    assert.equal(byLength.Plaintext!.length, 64);
    const aes128 = await kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_128' }));
    assert.equal(aes128.Plaintext!.length, 16);
    const neither = await failure(kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId })));
    assert.equal(neither.name, 'ValidationException');
    const both = await failure(kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256', NumberOfBytes: 32 })));
    assert.equal(both.name, 'ValidationException');
    const without = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: key.KeyId, KeySpec: 'AES_256' }));
    assert.equal((without as { Plaintext?: Uint8Array }).Plaintext, undefined);
    const later = await kms.send(new DecryptCommand({ CiphertextBlob: without.CiphertextBlob }));
    assert.equal(later.Plaintext!.length, 32);
    const rsa = await newKey('RSA_2048', 'ENCRYPT_DECRYPT');
    const asymmetric = await failure(kms.send(new GenerateDataKeyCommand({ KeyId: rsa.KeyId, KeySpec: 'AES_256' })));
    assert.equal(asymmetric.name, 'InvalidKeyUsageException');
  });

  it('generates data key pairs whose private key matches the public key', async () => {
    const key = await newKey();
    for (const KeyPairSpec of ['ECC_NIST_P256', 'RSA_2048'] as const) {
      const pair = await kms.send(new GenerateDataKeyPairCommand({ KeyId: key.KeyId, KeyPairSpec, EncryptionContext: { p: '1' } }));
      const privateKey = nodeCrypto.createPrivateKey({ key: Buffer.from(pair.PrivateKeyPlaintext!), format: 'der', type: 'pkcs8' });
      const publicKey = nodeCrypto.createPublicKey({ key: Buffer.from(pair.PublicKey!), format: 'der', type: 'spki' });
      const signature = nodeCrypto.sign('sha256', text('pair'), privateKey);
      assert.ok(nodeCrypto.verify('sha256', text('pair'), publicKey, signature));
      const unwrapped = await kms.send(new DecryptCommand({ CiphertextBlob: pair.PrivateKeyCiphertextBlob, EncryptionContext: { p: '1' } }));
      assert.deepEqual(Buffer.from(unwrapped.Plaintext!), Buffer.from(pair.PrivateKeyPlaintext!));
      assert.equal(pair.KeyPairSpec, KeyPairSpec);
    }
    const without = await kms.send(new GenerateDataKeyPairWithoutPlaintextCommand({ KeyId: key.KeyId, KeyPairSpec: 'ECC_NIST_P384' }));
    assert.equal((without as { PrivateKeyPlaintext?: Uint8Array }).PrivateKeyPlaintext, undefined);
    assert.ok(without.PublicKey!.length > 0);
  });

  it('signs and verifies RAW and DIGEST messages; signatures verify outside trustplane', async () => {
    const cases = [
      { spec: 'ECC_NIST_P256', algorithm: 'ECDSA_SHA_256', hash: 'sha256', digest: true },
      { spec: 'ECC_NIST_P384', algorithm: 'ECDSA_SHA_384', hash: 'sha384', digest: true },
      { spec: 'ECC_NIST_P521', algorithm: 'ECDSA_SHA_512', hash: 'sha512', digest: true },
      { spec: 'ECC_SECG_P256K1', algorithm: 'ECDSA_SHA_256', hash: 'sha256', digest: true },
      { spec: 'RSA_2048', algorithm: 'RSASSA_PKCS1_V1_5_SHA_256', hash: 'sha256', digest: true },
      { spec: 'RSA_2048', algorithm: 'RSASSA_PSS_SHA_384', hash: 'sha384', digest: false },
    ] as const;
    const rsaKey = await newKey('RSA_2048', 'SIGN_VERIFY');
    for (const entry of cases) {
      const key = entry.spec === 'RSA_2048' ? rsaKey : await newKey(entry.spec, 'SIGN_VERIFY');
      const message = text(`message for ${entry.algorithm}`);
      const { PublicKey } = await kms.send(new GetPublicKeyCommand({ KeyId: key.KeyId }));
      const publicKey = nodeCrypto.createPublicKey({ key: Buffer.from(PublicKey!), format: 'der', type: 'spki' });
      const padding = entry.algorithm.startsWith('RSASSA_PSS')
        ? { padding: nodeCrypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: nodeCrypto.constants.RSA_PSS_SALTLEN_AUTO } : {};
      const raw = await kms.send(new SignCommand({ KeyId: key.KeyId, Message: message, MessageType: 'RAW', SigningAlgorithm: entry.algorithm }));
      assert.ok(nodeCrypto.verify(entry.hash, message, { key: publicKey, ...padding }, Buffer.from(raw.Signature!)), `${entry.algorithm} RAW external`);
      const verified = await kms.send(new VerifyCommand({ KeyId: key.KeyId, Message: message, Signature: raw.Signature, SigningAlgorithm: entry.algorithm }));
      assert.equal(verified.SignatureValid, true);
      const forged = await failure(kms.send(new VerifyCommand({ KeyId: key.KeyId, Message: text('other'), Signature: raw.Signature, SigningAlgorithm: entry.algorithm })));
      assert.equal(forged.name, 'KMSInvalidSignatureException');
      if (entry.digest) {
        const digest = nodeCrypto.createHash(entry.hash).update(message).digest();
        const signed = await kms.send(new SignCommand({ KeyId: key.KeyId, Message: digest, MessageType: 'DIGEST', SigningAlgorithm: entry.algorithm }));
        assert.ok(nodeCrypto.verify(entry.hash, message, publicKey, Buffer.from(signed.Signature!)), `${entry.algorithm} DIGEST external`);
        const viaDigest = await kms.send(new VerifyCommand({ KeyId: key.KeyId, Message: digest, MessageType: 'DIGEST', Signature: raw.Signature, SigningAlgorithm: entry.algorithm }));
        assert.equal(viaDigest.SignatureValid, true);
        const shortDigest = await failure(kms.send(new SignCommand({ KeyId: key.KeyId, Message: digest.subarray(1), MessageType: 'DIGEST', SigningAlgorithm: entry.algorithm })));
        assert.equal(shortDigest.name, 'ValidationException');
      }
    }
    const mismatch = await failure(kms.send(new SignCommand({ KeyId: rsaKey.KeyId, Message: text('x'), SigningAlgorithm: 'ECDSA_SHA_256' })));
    assert.equal(mismatch.name, 'InvalidKeyUsageException');
    const symmetric = await newKey();
    const noPublic = await failure(kms.send(new GetPublicKeyCommand({ KeyId: symmetric.KeyId })));
    assert.equal(noPublic.name, 'UnsupportedOperationException');
  });

  it('encrypts with RSA keys using OAEP', async () => {
    const key = await newKey('RSA_2048', 'ENCRYPT_DECRYPT');
    const { PublicKey } = await kms.send(new GetPublicKeyCommand({ KeyId: key.KeyId }));
    const external = nodeCrypto.publicEncrypt({ key: nodeCrypto.createPublicKey({ key: Buffer.from(PublicKey!), format: 'der', type: 'spki' }),
      padding: nodeCrypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, text('sealed outside'));
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: external, KeyId: key.KeyId, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'sealed outside');
    const viaKms = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('sha1'), EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }));
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: viaKms.CiphertextBlob, KeyId: key.KeyId, EncryptionAlgorithm: 'RSAES_OAEP_SHA_1' }));
    assert.equal(Buffer.from(back.Plaintext!).toString(), 'sha1');
    const tooLong = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.alloc(191, 1), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' })));
    assert.equal(tooLong.name, 'ValidationException');
    assert.equal(tooLong.status, 400);
    const longest = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: Buffer.alloc(190, 1), EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }));
    assert.equal(longest.CiphertextBlob!.length, 256);
    const symmetricAlgorithm = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(symmetricAlgorithm.name, 'InvalidKeyUsageException');
  });

  it('generates and verifies MACs', async () => {
    const key = await newKey('HMAC_384', 'GENERATE_VERIFY_MAC');
    const { Mac } = await kms.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: text('mac me'), MacAlgorithm: 'HMAC_SHA_384' }));
    assert.equal(Mac!.length, 48);
    const ok = await kms.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: text('mac me'), Mac, MacAlgorithm: 'HMAC_SHA_384' }));
    assert.equal(ok.MacValid, true);
    const tampered = Buffer.from(Mac!);
    tampered[0] ^= 1;
    const bad = await failure(kms.send(new VerifyMacCommand({ KeyId: key.KeyId, Message: text('mac me'), Mac: tampered, MacAlgorithm: 'HMAC_SHA_384' })));
    assert.equal(bad.name, 'KMSInvalidMacException');
    const wrongAlgorithm = await failure(kms.send(new GenerateMacCommand({ KeyId: key.KeyId, Message: text('x'), MacAlgorithm: 'HMAC_SHA_256' })));
    assert.equal(wrongAlgorithm.name, 'InvalidKeyUsageException');
  });

  it('disables, re-enables and describes keys', async () => {
    const key = await newKey();
    const { CiphertextBlob } = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') }));
    await kms.send(new DisableKeyCommand({ KeyId: key.KeyId }));
    const described = await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }));
    assert.equal(described.KeyMetadata!.KeyState, 'Disabled');
    assert.equal(described.KeyMetadata!.Enabled, false);
    for (const call of [
      kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })),
      kms.send(new DecryptCommand({ CiphertextBlob })),
      kms.send(new GenerateDataKeyCommand({ KeyId: key.KeyId, KeySpec: 'AES_256' })),
    ]) {
      const error = await failure(call);
      assert.equal(error.name, 'DisabledException');
      assert.equal(error.message, `${key.Arn} is disabled.`);
    }
    await kms.send(new EnableKeyCommand({ KeyId: key.KeyId }));
    const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'x');
    await kms.send(new UpdateKeyDescriptionCommand({ KeyId: key.KeyId, Description: 'renamed' }));
    assert.equal((await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.Description, 'renamed');
    const missing = await failure(kms.send(new DescribeKeyCommand({ KeyId: nodeCrypto.randomUUID() })));
    assert.equal(missing.name, 'NotFoundException');
    assert.equal(missing.status, 400);
    const invalid = await failure(kms.send(new DescribeKeyCommand({ KeyId: 'not-a-key' })));
    assert.equal(invalid.name, 'NotFoundException');
  });

  it('schedules and cancels deletion with AWS state rules', async () => {
    const key = await newKey();
    const tooShort = await failure(kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 6 })));
    assert.equal(tooShort.name, 'ValidationException');
    const tooLong = await failure(kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 31 })));
    assert.equal(tooLong.name, 'ValidationException');
    const scheduled = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId, PendingWindowInDays: 7 }));
    assert.equal(scheduled.KeyState, 'PendingDeletion');
    assert.equal(scheduled.PendingWindowInDays, 7);
    const days = (scheduled.DeletionDate!.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 6.99 && days <= 7.01, `deletion in ${days} days`);
    const encrypt = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(encrypt.name, 'KMSInvalidStateException');
    assert.equal(encrypt.message, `${key.Arn} is pending deletion.`);
    const enable = await failure(kms.send(new EnableKeyCommand({ KeyId: key.KeyId })));
    assert.equal(enable.name, 'KMSInvalidStateException');
    const again = await failure(kms.send(new ScheduleKeyDeletionCommand({ KeyId: key.KeyId })));
    assert.equal(again.name, 'KMSInvalidStateException');
    assert.equal((await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!.KeyState, 'PendingDeletion');
    const cancelled = await kms.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId }));
    assert.equal(cancelled.KeyId, key.Arn);
    const after = (await kms.send(new DescribeKeyCommand({ KeyId: key.KeyId }))).KeyMetadata!;
    assert.equal(after.KeyState, 'Disabled');
    assert.equal(after.DeletionDate, undefined);
    const notPending = await failure(kms.send(new CancelKeyDeletionCommand({ KeyId: key.KeyId })));
    assert.equal(notPending.name, 'KMSInvalidStateException');
  });

  it('manages aliases with AWS errors for duplicates, reserved names and missing aliases', async () => {
    const [first, second] = [await newKey(), await newKey()];
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/app', TargetKeyId: first.KeyId }));
    const duplicate = await failure(kms.send(new CreateAliasCommand({ AliasName: 'alias/app', TargetKeyId: second.KeyId })));
    assert.equal(duplicate.name, 'AlreadyExistsException');
    const reserved = await failure(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/s3', TargetKeyId: first.KeyId })));
    assert.equal(reserved.name, 'InvalidAliasNameException');
    const noPrefix = await failure(kms.send(new CreateAliasCommand({ AliasName: 'app2', TargetKeyId: first.KeyId })));
    assert.equal(noPrefix.name, 'InvalidAliasNameException');
    await kms.send(new UpdateAliasCommand({ AliasName: 'alias/app', TargetKeyId: second.KeyId }));
    const encrypted = await kms.send(new EncryptCommand({ KeyId: 'alias/app', Plaintext: text('x') }));
    assert.equal(encrypted.KeyId, second.Arn);
    const listed = await kms.send(new ListAliasesCommand({ KeyId: second.KeyId }));
    assert.deepEqual(listed.Aliases!.map((alias) => alias.AliasName), ['alias/app']);
    assert.equal(listed.Aliases![0].TargetKeyId, second.KeyId);
    assert.equal(listed.Aliases![0].AliasArn, `arn:aws:kms:${server.region}:${server.accountId}:alias/app`);
    await kms.send(new DeleteAliasCommand({ AliasName: 'alias/app' }));
    const gone = await failure(kms.send(new EncryptCommand({ KeyId: 'alias/app', Plaintext: text('x') })));
    assert.equal(gone.name, 'NotFoundException');
    const deleteMissing = await failure(kms.send(new DeleteAliasCommand({ AliasName: 'alias/app' })));
    assert.equal(deleteMissing.name, 'NotFoundException');
  });

  it('paginates ListKeys and ListAliases with Limit and Marker', async () => {
    const created = [];
    for (let index = 0; index < 5; index += 1) {
      const key = await newKey();
      created.push(key.KeyId!);
      await kms.send(new CreateAliasCommand({ AliasName: `alias/page-${index}`, TargetKeyId: key.KeyId }));
    }
    const seen: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const page = await kms.send(new ListKeysCommand({ Limit: 2, Marker: marker }));
      assert.ok(page.Keys!.length <= 2);
      seen.push(...page.Keys!.map((key) => key.KeyId!));
      assert.equal(page.Truncated, page.NextMarker !== undefined);
      marker = page.NextMarker;
      pages += 1;
    } while (marker);
    assert.ok(pages >= 3);
    assert.equal(new Set(seen).size, seen.length, 'no key listed twice');
    for (const keyId of created) assert.ok(seen.includes(keyId));
    const aliases = await kms.send(new ListAliasesCommand({ Limit: 3 }));
    assert.equal(aliases.Aliases!.length, 3);
    assert.equal(aliases.Truncated, true);
    const badMarker = await failure(kms.send(new ListKeysCommand({ Marker: 'garbage!!' })));
    assert.equal(badMarker.name, 'InvalidMarkerException');
    const badLimit = await failure(kms.send(new ListKeysCommand({ Limit: 0 })));
    assert.equal(badLimit.name, 'ValidationException');
  });

  it('rotates on demand and on schedule settings; old versions keep decrypting', async () => {
    const key = await newKey();
    const before = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('v1') }));
    const status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }));
    assert.equal(status.KeyRotationEnabled, false);
    await kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId, RotationPeriodInDays: 90 }));
    const enabled = await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }));
    assert.equal(enabled.KeyRotationEnabled, true);
    assert.equal(enabled.RotationPeriodInDays, 90);
    const days = (enabled.NextRotationDate!.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 89.99 && days <= 90.01);
    const tooShort = await failure(kms.send(new EnableKeyRotationCommand({ KeyId: key.KeyId, RotationPeriodInDays: 89 })));
    assert.equal(tooShort.name, 'ValidationException');
    const rotated = await kms.send(new RotateKeyOnDemandCommand({ KeyId: key.KeyId }));
    assert.equal(rotated.KeyId, key.KeyId);
    const after = await kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('v2') }));
    assert.notDeepEqual(Buffer.from(after.CiphertextBlob!).subarray(17, 21), Buffer.from(before.CiphertextBlob!).subarray(17, 21));
    for (const [blob, expected] of [[before.CiphertextBlob, 'v1'], [after.CiphertextBlob, 'v2']] as const) {
      const decrypted = await kms.send(new DecryptCommand({ CiphertextBlob: blob }));
      assert.equal(Buffer.from(decrypted.Plaintext!).toString(), expected);
    }
    const rotations = await kms.send(new ListKeyRotationsCommand({ KeyId: key.KeyId }));
    assert.equal(rotations.Rotations!.length, 1);
    assert.equal(rotations.Rotations![0].RotationType, 'ON_DEMAND');
    await kms.send(new DisableKeyRotationCommand({ KeyId: key.KeyId }));
    assert.equal((await kms.send(new GetKeyRotationStatusCommand({ KeyId: key.KeyId }))).KeyRotationEnabled, false);
    const asymmetric = await newKey('ECC_NIST_P256', 'SIGN_VERIFY');
    const unsupported = await failure(kms.send(new EnableKeyRotationCommand({ KeyId: asymmetric.KeyId })));
    assert.equal(unsupported.name, 'UnsupportedOperationException');
  });

  it('keeps key policies and validates them', async () => {
    const key = await newKey();
    const policy = await kms.send(new GetKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default' }));
    const parsed = JSON.parse(policy.Policy!) as { Statement: Array<{ Principal: { AWS: string } }> };
    assert.equal(parsed.Statement[0].Principal.AWS, `arn:aws:iam::${server.accountId}:root`);
    const replacement = JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: 'x', Effect: 'Allow',
      Principal: { AWS: `arn:aws:iam::${server.accountId}:root` }, Action: 'kms:*', Resource: '*' }] });
    await kms.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default', Policy: replacement }));
    assert.equal((await kms.send(new GetKeyPolicyCommand({ KeyId: key.KeyId }))).Policy, replacement);
    const malformed = await failure(kms.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, PolicyName: 'default', Policy: '{not json' })));
    assert.equal(malformed.name, 'MalformedPolicyDocumentException');
    const names = await kms.send(new ListKeyPoliciesCommand({ KeyId: key.KeyId }));
    assert.deepEqual(names.PolicyNames, ['default']);
  });

  it('tags keys, untags them, and refuses reserved tag keys', async () => {
    const key = await newKey();
    await kms.send(new TagResourceCommand({ KeyId: key.KeyId, Tags: [{ TagKey: 'team', TagValue: 'a' }, { TagKey: 'env', TagValue: 'dev' }] }));
    await kms.send(new TagResourceCommand({ KeyId: key.KeyId, Tags: [{ TagKey: 'team', TagValue: 'b' }] }));
    const tags = await kms.send(new ListResourceTagsCommand({ KeyId: key.KeyId }));
    assert.deepEqual(tags.Tags, [{ TagKey: 'env', TagValue: 'dev' }, { TagKey: 'team', TagValue: 'b' }]);
    await kms.send(new UntagResourceCommand({ KeyId: key.KeyId, TagKeys: ['env'] }));
    assert.deepEqual((await kms.send(new ListResourceTagsCommand({ KeyId: key.KeyId }))).Tags, [{ TagKey: 'team', TagValue: 'b' }]);
    const reserved = await failure(kms.send(new TagResourceCommand({ KeyId: key.KeyId, Tags: [{ TagKey: 'aws:x', TagValue: 'y' }] })));
    assert.equal(reserved.name, 'TagException');
    const many = Array.from({ length: 50 }, (_, index) => ({ TagKey: `k${index}`, TagValue: 'v' }));
    const tooMany = await failure(kms.send(new TagResourceCommand({ KeyId: key.KeyId, Tags: many })));
    assert.equal(tooMany.name, 'LimitExceededException');
  });

  it('answers DryRun with DryRunOperationException after every check', async () => {
    const key = await newKey();
    const dry = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), DryRun: true })));
    assert.equal(dry.name, 'DryRunOperationException');
    await kms.send(new DisableKeyCommand({ KeyId: key.KeyId }));
    const disabled = await failure(kms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), DryRun: true })));
    assert.equal(disabled.name, 'DisabledException');
  });
});
