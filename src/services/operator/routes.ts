// Operator routes. Init, unseal and status are plain JSON over HTTP with no credentials (a
// sealed server can check none); seal and domain key rotation are signed TrustPlaneOperator.*
// operations. Every call is audited. Must never echo a share.
import { z } from 'zod';
import type { AuditLog } from '../../shared/audit/index.ts';
import type { RateLimiter } from '../../shared/http/index.ts';
import { createPlainJsonHandler, defineOperation, fields, plainJsonPost } from '../../shared/http/index.ts';
import type { Logger } from '../../shared/log.ts';
import type { OperatorService } from './service.ts';

export const OPERATOR_TARGET_PREFIX = 'TrustPlaneOperator';
const OPERATOR_PATH_PREFIX = '/v1/operator/';

const initInput = z.object({
  Shares: fields.integer({ min: 1, max: 255 }).optional(),
  Threshold: fields.integer({ min: 1, max: 255 }).optional(),
  /** age public keys, one per share in order: each share is returned encrypted to its holder. */
  Recipients: z.array(fields.text({ min: 4, max: 1024 })).min(1).max(255).optional(),
}).strict();
const unsealInput = z.object({
  Share: fields.text({ min: 1, max: 1024 }).optional(),
  Reset: z.boolean().optional(),
}).strict();

/** Handles /v1/operator/{init,unseal,status}; answers false for any other path. */
export function createOperatorHttpHandler(options: { service: OperatorService; logger: Logger; audit?: AuditLog; rateLimiter?: RateLimiter }) {
  const { service } = options;
  return createPlainJsonHandler({ prefix: OPERATOR_PATH_PREFIX, logger: options.logger, audit: options.audit, rateLimiter: options.rateLimiter, routes: {
    init: plainJsonPost('OperatorInit', initInput, (input) => service.init({ shares: input.Shares, threshold: input.Threshold }, input.Recipients)),
    unseal: plainJsonPost('OperatorUnseal', unsealInput, (input) => service.unseal(input.Share, input.Reset ?? false)),
    status: { method: 'GET', operation: 'OperatorGetStatus', handle: () => service.status() },
  } });
}

export function operatorOperations(service: OperatorService) {
  return [
    defineOperation({
      target: `${OPERATOR_TARGET_PREFIX}.Seal`, action: 'tp:Seal', input: z.object({}),
      handle: async (caller) => service.seal(caller),
    }),
    defineOperation({
      target: `${OPERATOR_TARGET_PREFIX}.RotateDomainKey`, action: 'tp:RotateDomainKey', input: z.object({}),
      handle: async (caller) => ({ DomainKeyRotation: await service.rotateDomainKey(caller) }),
    }),
    defineOperation({
      target: `${OPERATOR_TARGET_PREFIX}.GetDomainKeyRotation`, action: 'tp:GetDomainKeyRotation', input: z.object({}),
      handle: async (caller) => ({ DomainKeyRotation: await service.domainKeyRotation(caller) }),
    }),
  ];
}
