// Encryption operations: Encrypt, Decrypt, ReEncrypt, data keys, data key pairs, random bytes.
// Routes parse and delegate; key bytes stay in the crypto module, data keys go to the caller.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { kmsErrors } from '../domain/errors.ts';
import {
  ciphertextBlob, context, dryRun, encryptionAlgorithm, grantTokens, keyId, keyPairSpec, plaintext, TRENT,
} from './common.ts';

export function encryptionOperations(service: KeyService) {
  const dataKeyInput = z.object({
    KeyId: keyId, EncryptionContext: context, NumberOfBytes: fields.integer({ min: 1, max: 1024 }).optional(),
    KeySpec: z.enum(['AES_256', 'AES_128']).optional(), GrantTokens: grantTokens, DryRun: dryRun,
  });
  const dataKeyPairInput = z.object({
    KeyId: keyId, EncryptionContext: context, KeyPairSpec: keyPairSpec, GrantTokens: grantTokens, DryRun: dryRun,
  });
  return [
    defineOperation({
      target: `${TRENT}.Encrypt`, action: 'kms:Encrypt',
      input: z.object({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context, GrantTokens: grantTokens,
        EncryptionAlgorithm: encryptionAlgorithm, DryRun: dryRun }),
      handle: (caller, input) => service.encrypt(caller, { keyId: input.KeyId, plaintext: input.Plaintext,
        context: input.EncryptionContext, algorithm: input.EncryptionAlgorithm, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.Decrypt`, action: 'kms:Decrypt',
      input: z.object({ CiphertextBlob: ciphertextBlob, EncryptionContext: context, GrantTokens: grantTokens,
        KeyId: keyId.optional(), EncryptionAlgorithm: encryptionAlgorithm, DryRun: dryRun }),
      handle: (caller, input) => service.decrypt(caller, { ciphertextBlob: input.CiphertextBlob,
        context: input.EncryptionContext, keyId: input.KeyId, algorithm: input.EncryptionAlgorithm, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.ReEncrypt`, action: 'kms:ReEncryptFrom',
      input: z.object({ CiphertextBlob: ciphertextBlob, SourceEncryptionContext: context, SourceKeyId: keyId.optional(),
        DestinationKeyId: keyId, DestinationEncryptionContext: context, SourceEncryptionAlgorithm: encryptionAlgorithm,
        DestinationEncryptionAlgorithm: encryptionAlgorithm, GrantTokens: grantTokens, DryRun: dryRun }),
      handle: (caller, input) => service.reEncrypt(caller, { ciphertextBlob: input.CiphertextBlob,
        sourceContext: input.SourceEncryptionContext, sourceKeyId: input.SourceKeyId, destinationKeyId: input.DestinationKeyId,
        destinationContext: input.DestinationEncryptionContext, sourceAlgorithm: input.SourceEncryptionAlgorithm,
        destinationAlgorithm: input.DestinationEncryptionAlgorithm, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GenerateDataKey`, action: 'kms:GenerateDataKey', input: dataKeyInput,
      handle: (caller, input) => service.generateDataKey(caller, { keyId: input.KeyId, context: input.EncryptionContext,
        numberOfBytes: input.NumberOfBytes, keySpec: input.KeySpec, withPlaintext: true, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GenerateDataKeyWithoutPlaintext`, action: 'kms:GenerateDataKeyWithoutPlaintext', input: dataKeyInput,
      handle: (caller, input) => service.generateDataKey(caller, { keyId: input.KeyId, context: input.EncryptionContext,
        numberOfBytes: input.NumberOfBytes, keySpec: input.KeySpec, withPlaintext: false, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GenerateDataKeyPair`, action: 'kms:GenerateDataKeyPair', input: dataKeyPairInput,
      handle: (caller, input) => service.generateDataKeyPair(caller, { keyId: input.KeyId, context: input.EncryptionContext,
        keyPairSpec: input.KeyPairSpec, withPlaintext: true, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GenerateDataKeyPairWithoutPlaintext`, action: 'kms:GenerateDataKeyPairWithoutPlaintext', input: dataKeyPairInput,
      handle: (caller, input) => service.generateDataKeyPair(caller, { keyId: input.KeyId, context: input.EncryptionContext,
        keyPairSpec: input.KeyPairSpec, withPlaintext: false, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GenerateRandom`, action: 'kms:GenerateRandom',
      input: z.object({ NumberOfBytes: fields.integer({ min: 1, max: 1024 }).optional(), CustomKeyStoreId: z.string().optional() }),
      handle: async (_caller, input) => {
        if (input.NumberOfBytes === undefined) throw kmsErrors.validation('NumberOfBytes is required.');
        return service.generateRandom(input.NumberOfBytes);
      },
    }),
  ];
}
