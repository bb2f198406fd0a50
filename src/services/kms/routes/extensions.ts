// trustplane extensions on the AWS JSON protocol (target prefix TrustPlaneKms): key versions,
// minimum decryption version, batch Encrypt/Decrypt with per-item errors.
// Routes parse and delegate; one item's failure never fails the batch.
import { z } from 'zod';
import { defineOperation, fields, pageMarkers } from '../../../shared/http/index.ts';
import { CiphertextError, UserError } from '../../../shared/errors.ts';
import type { KeyService } from '../service.ts';
import { ciphertextBlob, context, EXTENSIONS, keyId, limit, marker, plaintext, tags, toTagRecords } from './common.ts';

const secretValue = fields.blob({ min: 1, max: 65_536 });

const MAX_BATCH_ITEMS = 1000;

type ItemResult<T> = T | { ErrorCode: string; ErrorMessage: string };

/** Runs one batch item; user-caused failures become that item's error, our faults fail the request. */
async function runItem<T>(work: () => Promise<T>): Promise<ItemResult<T>> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof UserError || error instanceof CiphertextError) return { ErrorCode: error.code, ErrorMessage: error.message };
    throw error;
  }
}

export function extensionOperations(service: KeyService) {
  return [
    // Secret keys: versions are opaque values (a password, an API token) hosts fetch whole; rotated like any key.
    defineOperation({
      target: `${EXTENSIONS}.CreateSecret`, action: 'kms:CreateKey',
      input: z.object({ Description: fields.text({ min: 0, max: 8192 }).optional(), SecretValue: secretValue, Tags: tags.optional() }),
      handle: async (caller, input) => {
        const key = await service.createKey(caller, { description: input.Description, secretValue: input.SecretValue, tags: toTagRecords(input.Tags) });
        return { KeyMetadata: service.metadata(key) };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.PutSecretValue`, action: 'kms:RotateKeyOnDemand', input: z.object({ KeyId: keyId, SecretValue: secretValue }),
      handle: async (caller, input) => {
        const key = await service.putSecretValue(caller, input.KeyId, input.SecretValue);
        return { KeyId: key.arn, Version: key.pendingVersion ?? key.currentVersion, DefaultVersion: key.currentVersion,
          PendingVersion: key.pendingVersion };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.GetSecretValue`, action: 'kms:Decrypt',
      input: z.object({ KeyId: keyId, Version: fields.integer({ min: 1 }).optional() }),
      handle: async (caller, input) => {
        const result = await service.getSecretValue(caller, input.KeyId, input.Version);
        return { KeyId: result.key.arn, Version: result.version, SecretValue: result.value };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.ListKeyVersions`, action: 'kms:DescribeKey',
      input: z.object({ KeyId: keyId, Limit: limit, Marker: marker }),
      handle: async (caller, input) => {
        const result = await service.listKeyVersions(caller, input.KeyId, input.Limit ?? 100, input.Marker);
        return {
          KeyId: result.key.arn, CurrentVersion: result.key.currentVersion, MinimumDecryptionVersion: result.key.minDecryptVersion,
          Versions: result.versions.map((version) => ({
            Version: version.version, CreationDate: version.createdAt, RotationType: version.rotationType,
            Default: version.version === result.key.currentVersion,
            DecryptionAllowed: version.version >= result.key.minDecryptVersion,
          })),
          ...pageMarkers(result.nextMarker),
        };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.SetMinimumDecryptionVersion`, action: 'kms:PutKeyPolicy',
      input: z.object({ KeyId: keyId, MinimumDecryptionVersion: fields.integer({ min: 1 }) }),
      handle: async (caller, input) => {
        const key = await service.setMinimumDecryptionVersion(caller, input.KeyId, input.MinimumDecryptionVersion);
        return { KeyId: key.arn, MinimumDecryptionVersion: key.minDecryptVersion, CurrentVersion: key.currentVersion };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.BatchEncrypt`, action: 'kms:Encrypt',
      input: z.object({ Items: z.array(z.object({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: context }))
        .min(1).max(MAX_BATCH_ITEMS) }),
      handle: async (caller, input) => {
        const Results = [];
        for (const item of input.Items) {
          Results.push(await runItem(async () => {
            const result = await service.encrypt(caller, { keyId: item.KeyId, plaintext: item.Plaintext, context: item.EncryptionContext });
            return { CiphertextBlob: result.CiphertextBlob, KeyId: result.KeyId };
          }));
        }
        return { Results };
      },
    }),
    defineOperation({
      target: `${EXTENSIONS}.BatchDecrypt`, action: 'kms:Decrypt',
      input: z.object({ Items: z.array(z.object({ CiphertextBlob: ciphertextBlob, EncryptionContext: context, KeyId: keyId.optional() }))
        .min(1).max(MAX_BATCH_ITEMS) }),
      handle: async (caller, input) => {
        const Results = [];
        for (const item of input.Items) {
          Results.push(await runItem(async () => {
            const result = await service.decrypt(caller, { ciphertextBlob: item.CiphertextBlob, context: item.EncryptionContext,
              keyId: item.KeyId });
            return { Plaintext: result.Plaintext, KeyId: result.KeyId };
          }));
        }
        return { Results };
      },
    }),
  ];
}
