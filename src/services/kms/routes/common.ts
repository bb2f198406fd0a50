// Field schemas shared by the key service's operations.
// Must never hold handler logic.
import { z } from 'zod';
import { fields } from '../../../shared/http/index.ts';
import { KEY_SPECS, DATA_KEY_PAIR_SPECS } from '../../../shared/crypto/index.ts';
import { ENCRYPTION_ALGORITHMS, KEY_USAGES, MAC_ALGORITHMS, SIGNING_ALGORITHMS } from '../domain/key-specs.ts';

export const TRENT = 'TrentService';
/** Target prefix of trustplane's own extensions on the same protocol. */
export const EXTENSIONS = 'TrustPlaneKms';

export const keyId = fields.keyIdField;
export const context = fields.encryptionContextField;
export const grantTokens = fields.grantTokensField;
export const limit = fields.limitField;
export const marker = fields.markerField;
export const dryRun = z.boolean().optional();
export const keySpec = z.enum(KEY_SPECS);
export const keyUsage = z.enum(KEY_USAGES);
export const keyPairSpec = z.enum(DATA_KEY_PAIR_SPECS);
export const encryptionAlgorithm = z.enum(ENCRYPTION_ALGORITHMS).optional();
export const signingAlgorithm = z.enum(SIGNING_ALGORITHMS);
export const macAlgorithm = z.enum(MAC_ALGORITHMS);
export const messageType = z.enum(['RAW', 'DIGEST']).optional();
export const plaintext = fields.blob({ min: 1, max: 4096 });
export const ciphertextBlob = fields.blob({ min: 1, max: 6144 });
export const aliasName = fields.text({ min: 1, max: 256 });
export const tags = z.array(z.object({
  TagKey: fields.text({ min: 1, max: 128 }),
  TagValue: fields.text({ min: 0, max: 256 }),
})).max(50);

export function toTagRecords(list: Array<{ TagKey: string; TagValue: string }> | undefined) {
  return (list ?? []).map((tag) => ({ tagKey: tag.TagKey, tagValue: tag.TagValue }));
}
