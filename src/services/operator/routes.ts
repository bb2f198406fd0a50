// Operator routes. Init, unseal and status are plain JSON over HTTP with no credentials (a
// sealed server can check none); seal and domain key rotation are signed TrustPlaneOperator.*
// operations. Every call is audited. Must never echo a share.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AuditLog } from '../../shared/audit/index.ts';
import { defineOperation, errorReply, fields, parseInput, readBody, toWireJson } from '../../shared/http/index.ts';
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { OperatorService } from './service.ts';

export const OPERATOR_TARGET_PREFIX = 'TrustPlaneOperator';
export const OPERATOR_PATH_PREFIX = '/v1/operator/';
const MAX_OPERATOR_BODY_BYTES = 16 * 1024;

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

function send(response: ServerResponse, status: number, body: unknown, requestId: string): void {
  const payload = Buffer.from(JSON.stringify(toWireJson(body) ?? {}));
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': payload.length, 'x-amzn-requestid': requestId });
  response.end(payload);
}

async function jsonBody(request: IncomingMessage): Promise<unknown> {
  const payload = await readBody(request, MAX_OPERATOR_BODY_BYTES);
  if (payload.length === 0) return {};
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new UserError('SerializationException', 'The request body is not valid JSON.');
  }
}

/** Handles /v1/operator/{init,unseal,status}; answers false for any other path. */
export function createOperatorHttpHandler(options: { service: OperatorService; logger: Logger; audit?: AuditLog }) {
  const { service, logger, audit } = options;
  const routes: Record<string, { method: string; operation: string; handle(request: IncomingMessage): Promise<unknown> }> = {
    init: { method: 'POST', operation: 'Init', handle: async (request) => {
      const input = parseInput(initInput, await jsonBody(request));
      return service.init({ shares: input.Shares, threshold: input.Threshold }, input.Recipients);
    } },
    unseal: { method: 'POST', operation: 'Unseal', handle: async (request) => {
      const input = parseInput(unsealInput, await jsonBody(request));
      return service.unseal(input.Share, input.Reset ?? false);
    } },
    status: { method: 'GET', operation: 'GetStatus', handle: async () => service.status() },
  };
  return async function handleOperator(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    const path = (request.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith(OPERATOR_PATH_PREFIX)) return false;
    const route = routes[path.slice(OPERATOR_PATH_PREFIX.length)];
    const requestId = randomUUID();
    const startedAt = Date.now();
    let status = 200;
    let body: unknown;
    try {
      if (!route) throw new UserError('UnknownOperationException', `Unknown operator path ${path}.`, 404);
      if (request.method !== route.method) throw new UserError('UnknownOperationException', `Use ${route.method} for ${path}.`, 405);
      body = await route.handle(request);
    } catch (error) {
      const reply = errorReply(error, requestId, logger, 'trustplane');
      status = reply.status;
      body = { __type: reply.type, message: reply.message };
    }
    if (route && route.method === 'POST' && audit) {
      // Who submitted a share cannot be known; that one was submitted, and with what outcome, is recorded.
      const outcome = status === 200 ? 'Success' : String((body as { __type: string }).__type);
      await audit.record({ time: startedAt, requestId, sourceIp: request.socket.remoteAddress, service: 'trustplane',
        operation: `Operator${route.operation}`, decision: 'Unauthenticated', outcome, latencyMs: Date.now() - startedAt })
        .catch((error: unknown) => logger.error({ err: error, requestId }, 'operator call could not be audited'));
    }
    send(response, status, body, requestId);
    return true;
  };
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
