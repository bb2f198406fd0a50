// Signing and MAC operations: Sign, Verify, GetPublicKey, GenerateMac, VerifyMac.
// Routes parse and delegate; private keys never leave the crypto module.
import { z } from 'zod';
import { defineOperation, fields } from '../../../shared/http/index.ts';
import type { KeyService } from '../service.ts';
import { dryRun, grantTokens, keyId, macAlgorithm, messageType, signingAlgorithm, TRENT } from './common.ts';

const message = fields.blob({ min: 1, max: 4096 });

export function signingOperations(service: KeyService) {
  return [
    defineOperation({
      target: `${TRENT}.Sign`, action: 'kms:Sign',
      input: z.object({ KeyId: keyId, Message: message, MessageType: messageType, SigningAlgorithm: signingAlgorithm,
        GrantTokens: grantTokens, DryRun: dryRun }),
      handle: (caller, input) => service.sign(caller, { keyId: input.KeyId, message: input.Message,
        messageType: input.MessageType ?? 'RAW', signingAlgorithm: input.SigningAlgorithm, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.Verify`, action: 'kms:Verify',
      input: z.object({ KeyId: keyId, Message: message, MessageType: messageType, Signature: fields.blob({ min: 1, max: 6144 }),
        SigningAlgorithm: signingAlgorithm, GrantTokens: grantTokens, DryRun: dryRun }),
      handle: (caller, input) => service.verify(caller, { keyId: input.KeyId, message: input.Message,
        messageType: input.MessageType ?? 'RAW', signingAlgorithm: input.SigningAlgorithm, signature: input.Signature,
        dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.GetPublicKey`, action: 'kms:GetPublicKey',
      input: z.object({ KeyId: keyId, GrantTokens: grantTokens }),
      handle: (caller, input) => service.getPublicKey(caller, input.KeyId),
    }),
    defineOperation({
      target: `${TRENT}.GenerateMac`, action: 'kms:GenerateMac',
      input: z.object({ KeyId: keyId, Message: message, MacAlgorithm: macAlgorithm, GrantTokens: grantTokens, DryRun: dryRun }),
      handle: (caller, input) => service.generateMac(caller, { keyId: input.KeyId, message: input.Message,
        macAlgorithm: input.MacAlgorithm, dryRun: input.DryRun }),
    }),
    defineOperation({
      target: `${TRENT}.VerifyMac`, action: 'kms:VerifyMac',
      input: z.object({ KeyId: keyId, Message: message, MacAlgorithm: macAlgorithm, Mac: fields.blob({ min: 1, max: 6144 }),
        GrantTokens: grantTokens, DryRun: dryRun }),
      handle: (caller, input) => service.verifyMac(caller, { keyId: input.KeyId, message: input.Message,
        macAlgorithm: input.MacAlgorithm, mac: input.Mac, dryRun: input.DryRun }),
    }),
  ];
}
