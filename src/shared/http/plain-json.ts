// Plain JSON routes for the few calls that cannot be SigV4-signed (a sealed server checks no
// credentials; an enrolling host has none yet): typed errors like every API, every POST audited.
// Must never echo a secret from a request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { AuditLog } from '../audit/index.ts';
import { UserError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { errorReply, toWireJson } from './aws-json.ts';
import { readBody } from './body.ts';
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

function send(response: ServerResponse, status: number, body: unknown, requestId: string): void {
  const payload = Buffer.from(JSON.stringify(toWireJson(body) ?? {}));
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': payload.length, 'x-amzn-requestid': requestId });
  response.end(payload);
}

async function jsonBody(request: IncomingMessage): Promise<unknown> {
  const payload = await readBody(request, MAX_PLAIN_JSON_BODY_BYTES);
  if (payload.length === 0) return {};
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new UserError('SerializationException', 'The request body is not valid JSON.');
  }
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
    const requestId = randomUUID();
    const startedAt = Date.now();
    let status = 200;
    let body: unknown;
    try {
      rateLimiter?.take(`address ${request.socket.remoteAddress ?? 'unknown'}`, 'management');
      if (!route) throw new UserError('UnknownOperationException', `Unknown path ${path}.`, 404);
      if (request.method !== route.method) throw new UserError('UnknownOperationException', `Use ${route.method} for ${path}.`, 405);
      body = await route.handle(route.method === 'POST' ? await jsonBody(request) : {}, request);
    } catch (error) {
      const reply = errorReply(error, requestId, logger, 'trustplane');
      status = reply.status;
      body = { __type: reply.type, message: reply.message };
    }
    const throttled = (body as { __type?: string }).__type === 'ThrottlingException';
    if (route && route.method === 'POST' && audit && !throttled) {
      // The caller is not known (no credentials); that the call was made, and its outcome, is recorded.
      const outcome = status === 200 ? 'Success' : String((body as { __type: string }).__type);
      await audit.record({ time: startedAt, requestId, sourceIp: request.socket.remoteAddress, service: 'trustplane',
        operation: route.operation, decision: 'Unauthenticated', outcome, latencyMs: Date.now() - startedAt })
        .catch((error: unknown) => logger.error({ err: error, requestId }, 'call could not be audited'));
    }
    send(response, status, body, requestId);
    return true;
  };
}
