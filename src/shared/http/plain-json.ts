// Plain JSON routes for the few calls that cannot be SigV4-signed (a sealed server checks no
// credentials; an enrolling host has none yet): typed errors like every API, every POST audited.
// Must never echo a secret from a request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import { AUDIT_SUCCESS, type AuditLog } from '../audit/index.ts';
import { randomUuid } from '../crypto/index.ts';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { errorReply, sendJson, toWireJson } from './aws-json.ts';
import { readJsonBody } from './body.ts';
import { parseInput } from './validation.ts';
import type { RateLimiter } from './rate-limit.ts';

const MAX_PLAIN_JSON_BODY_BYTES = 64 * 1024;

export interface PlainJsonRoute {
  method: 'GET' | 'POST';
  /** Name in the audit log, e.g. OperatorUnseal. */
  operation: string;
  handle(input: unknown, request: IncomingMessage): Promise<unknown>;
}

/** A POST route whose body is validated by `schema` before `handle` sees it. */
export function plainJsonPost<Schema extends z.ZodTypeAny>(operation: string, schema: Schema,
  handle: (input: z.output<Schema>, request: IncomingMessage) => Promise<unknown>): PlainJsonRoute {
  return { method: 'POST', operation, handle: (input, request) => handle(parseInput(schema, input), request) };
}

/** Handles `prefix` + route name; answers false for any other path. */
export function createPlainJsonHandler(options: { prefix: string; routes: Record<string, PlainJsonRoute>; logger: Logger; audit?: AuditLog;
  /** Per source address: these calls have no principal to limit, and each one is audited. */
  rateLimiter?: RateLimiter }) {
  const { prefix, routes, logger, audit, rateLimiter } = options;
  return async function handlePlainJson(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
    const path = (request.url ?? '').split('?')[0] ?? '';
    if (!path.startsWith(prefix)) return false;
    const route = Object.hasOwn(routes, path.slice(prefix.length)) ? routes[path.slice(prefix.length)] : undefined;
    const requestId = randomUuid();
    const startedAt = Date.now();
    let status = 200;
    let body: unknown;
    let outcome = AUDIT_SUCCESS;
    try {
      rateLimiter?.take(`address ${request.socket.remoteAddress ?? 'unknown'}`, 'management');
      if (!route) throw new UserError('UnknownOperationException', `Unknown path ${path}.`, 404);
      if (request.method !== route.method) throw new UserError('UnknownOperationException', `Use ${route.method} for ${path}.`, 405);
      body = await route.handle(route.method === 'POST' ? await readJsonBody(request, MAX_PLAIN_JSON_BODY_BYTES) : {}, request);
    } catch (error) {
      const reply = errorReply(error, requestId, logger, 'trustplane');
      status = reply.status;
      outcome = reply.type;
      body = { __type: reply.type, message: reply.message };
    }
    if (route && route.method === 'POST' && audit && outcome !== 'ThrottlingException') {
      // The caller is not known (no credentials); that the call was made, and its outcome, is recorded.
      // Unlike the AWS JSON endpoints this answers even when the record cannot be written: what these
      // calls return (init's shares, a host's certificate) exists nowhere else, and the action is done.
      await audit.record({ time: startedAt, requestId, sourceIp: request.socket.remoteAddress, service: 'trustplane',
        operation: route.operation, decision: 'Unauthenticated', outcome, latencyMs: Date.now() - startedAt })
        .catch((error: unknown) => logger.error({ err: error, requestId }, 'call could not be audited'));
    }
    sendJson(response, status, toWireJson(body) ?? {}, { 'x-amzn-requestid': requestId }, 'application/json');
    return true;
  };
}
