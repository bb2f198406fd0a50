// The AWS JSON 1.1 protocol: POST / with X-Amz-Target, SigV4 on every request, typed inputs,
// AWS-shaped errors. Must never answer a caller's mistake with a 5xx or a stack trace.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';
import type { Caller, CredentialDirectory } from '../auth/index.ts';
import { randomUuid } from '../crypto/index.ts';
import { CiphertextError, SealedError, UserError } from '../errors.ts';
import { InvalidMarkerError } from '../store/index.ts';
import type { Logger } from '../log.ts';
import { parseJsonBody, readBody } from './body.ts';
import { parseInput } from './validation.ts';
import type { RateClass, RateLimiter, ReplayGuard } from './rate-limit.ts';
import {
  AUDIT_SUCCESS, auditRequestScope, type AuditDecision, type AuditLog, type AuditRecordDraft, type RequestAuditScope,
} from '../audit/index.ts';

/** One protocol operation, declared as data: target, action for authorisation, input, handler. */
export interface AwsJsonOperation<Input = unknown, Output = unknown> {
  target: string;
  action: string;
  /** Which rate limit applies (default management). */
  rateClass?: RateClass;
  /**
   * Refuse a second request with the same signature. For operations whose replay would hand new
   * credentials to whoever replays them; every other operation is harmless to replay (idempotent,
   * failing on repeat, or adding only a redundant version or key that exposes nothing), and AWS
   * clients may legitimately send byte-identical requests within one second.
   */
  refuseReplays?: boolean;
  input: z.ZodType<Input, z.ZodTypeDef, unknown>;
  handle(caller: Caller, input: Input): Promise<Output>;
}

/** Builds an operation with its input type inferred from the schema. */
export function defineOperation<Schema extends z.ZodTypeAny, Output>(operation: {
  target: string; action: string; rateClass?: RateClass; refuseReplays?: boolean; input: Schema; handle(caller: Caller, input: z.output<Schema>): Promise<Output>;
}): AwsJsonOperation<z.output<Schema>, Output> {
  return operation;
}

export interface AwsJsonEndpointOptions {
  /** Target prefix (e.g. TrentService) → the SigV4 service name its requests must be signed for. */
  signingServices: Readonly<Record<string, string>>;
  operations: AwsJsonOperation[];
  credentials: CredentialDirectory;
  logger: Logger;
  maxBodyBytes: number;
  rateLimiter?: RateLimiter;
  replayGuard?: ReplayGuard;
  /** Every request, authenticated or not, is recorded before it is answered. */
  audit?: AuditLog;
}



/** Turns handler output into JSON: bytes as base64, dates as epoch seconds, undefined dropped. */
export function toWireJson(value: unknown): unknown {
  if (value === undefined || value === null) return undefined;
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (value instanceof Date) return value.getTime() / 1000;
  if (Array.isArray(value)) return value.map(toWireJson);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      const converted = toWireJson(item);
      if (converted !== undefined) out[key] = converted;
    }
    return out;
  }
  return value;
}

interface ErrorReply {
  status: number;
  type: string;
  message: string;
}

/**
 * `protocol` decides how "sealed" is said: the AWS KMS protocol has only KMSInternalException for
 * it (HTTP 500, as KMS sends); trustplane's own APIs answer a typed 503 a client can act on.
 */
export function errorReply(error: unknown, requestId: string, logger: Logger, protocol: 'aws' | 'trustplane' = 'aws'): ErrorReply {
  if (error instanceof UserError) return { status: error.httpStatus, type: error.code, message: error.message };
  // A paging marker the store did not issue is the caller's mistake, whichever service listed.
  if (error instanceof InvalidMarkerError) return { status: 400, type: 'InvalidMarkerException', message: 'The marker is invalid.' };
  if (error instanceof CiphertextError) return { status: 400, type: error.code, message: error.message };
  if (error instanceof SealedError) {
    return protocol === 'aws' ? { status: 500, type: error.code, message: error.message }
      : { status: 503, type: 'ServiceSealedException', message: error.message };
  }
  logger.error({ err: error, requestId }, 'internal error');
  return { status: 500, type: 'KMSInternalException', message: `An internal error occurred. Request id: ${requestId}` };
}

export function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string>,
  contentType = 'application/x-amz-json-1.1'): void {
  const payload = Buffer.from(JSON.stringify(body));
  response.writeHead(status, { 'content-type': contentType, 'content-length': payload.length, ...headers });
  response.end(payload);
}

/** AWS list responses: Truncated always, NextMarker only when there is a next page. */
export function pageMarkers(nextMarker: string | undefined): { Truncated: boolean; NextMarker?: string } {
  return { Truncated: nextMarker !== undefined, NextMarker: nextMarker };
}

/** Headers that decide what a JSON 1.1 request means: they must be covered by the signature. */
const SIGNED_HEADERS = ['x-amz-target', 'content-type'];

/** An operation with what its target implies, worked out once at start-up. */
interface ResolvedTarget {
  operation: AwsJsonOperation;
  /** The SigV4 service its requests must be signed for (undefined when its prefix has none: nothing is). */
  signingService: string | undefined;
  protocol: 'aws' | 'trustplane';
  /** Its name in the audit log. */
  name: string;
}

/** How errors are said: the AWS KMS protocol for TrentService, trustplane's own for every other prefix. */
function protocolOf(target: unknown): 'aws' | 'trustplane' {
  return typeof target === 'string' && target.startsWith('TrentService.') ? 'aws' : 'trustplane';
}

/** The audit log's name for a target: what follows its prefix, at most 128 characters. */
function operationName(target: string): string {
  return target.slice(target.indexOf('.') + 1).slice(0, 128) || 'UnknownOperation';
}

export function createAwsJsonEndpoint(options: AwsJsonEndpointOptions) {
  const targets = new Map<string, ResolvedTarget>(options.operations.map((operation) => [operation.target, {
    operation, signingService: options.signingServices[operation.target.slice(0, operation.target.indexOf('.'))],
    protocol: protocolOf(operation.target), name: operationName(operation.target),
  }]));
  const { logger } = options;
  const services = [...new Set(Object.values(options.signingServices))];

  return async function handleAwsJson(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomUuid();
    const startedAt = Date.now();
    const started = performance.now();
    let caller: Caller | undefined;
    // Set once the caller is authenticated and the target is known.
    let resolved: ResolvedTarget | undefined;
    const draft = (outcome: string): AuditRecordDraft => {
      const decisions = caller?.decisions ?? [];
      // A denial ends the request, so the last decision taken is the one that decided it.
      const deciding = decisions.at(-1);
      return {
        time: startedAt, requestId, accountId: caller?.accountId, principalArn: caller?.principalArn,
        sourceIp: request.socket.remoteAddress, service: resolved?.signingService ?? 'unknown',
        operation: resolved?.name ?? operationName(String(request.headers['x-amz-target'] ?? 'UnknownOperation')), resource: deciding?.resource,
        decision: (caller ? deciding?.decision ?? 'Allow' : 'Unauthenticated') as AuditDecision,
        decidingStatement: deciding?.decidedBy, outcome, latencyMs: performance.now() - started,
      };
    };
    const scope: RequestAuditScope = { draft, recordedInTransaction: false };
    const inScope = (work: () => Promise<void>) => (options.audit ? auditRequestScope.run(scope, work) : work());
    await inScope(async () => {
      let status = 200;
      let body: unknown;
      let headers: Record<string, string> = { 'x-amzn-requestid': requestId };
      let outcome = AUDIT_SUCCESS;
      try {
        if (request.method !== 'POST') {
          throw new UserError('UnknownOperationException', `The ${request.method} method is not supported; use POST.`);
        }
        const payload = await readBody(request, options.maxBodyBytes);
        let signature = '';
        caller = await options.credentials.authenticate({
          method: request.method, url: request.url ?? '/', rawHeaders: request.rawHeaders, body: payload }, services,
        { requiredSignedHeaders: SIGNED_HEADERS, onVerified: (value) => { signature = value; } });
        caller.sourceIp = request.socket.remoteAddress;
        caller.decisions = [];
        const target = request.headers['x-amz-target'];
        resolved = typeof target === 'string' ? targets.get(target) : undefined;
        if (!resolved) throw new UserError('UnknownOperationException', `Unknown operation ${String(target ?? '(no X-Amz-Target)')}.`);
        const { operation, signingService } = resolved;
        // SigV4 accepted any of the endpoint's services; this operation takes only its own.
        if (caller.signingService !== signingService) {
          throw new UserError('InvalidSignatureException', `Credential should be scoped to correct service: '${signingService}'. `);
        }
        // Per identity, not per session: new role sessions must not mint fresh buckets.
        options.rateLimiter?.take(caller.identityArn, operation.rateClass ?? 'management');
        if (operation.refuseReplays) options.replayGuard?.check(signature);
        const parsedBody = parseJsonBody(payload);
        if (parsedBody === null || typeof parsedBody !== 'object' || Array.isArray(parsedBody)) {
          throw new UserError('SerializationException', 'The request body must be a JSON object.');
        }
        const input = parseInput(operation.input, parsedBody);
        body = toWireJson(await operation.handle(caller, input)) ?? {};
      } catch (error) {
        const protocol = resolved?.protocol ?? protocolOf(request.headers['x-amz-target']);
        const reply = errorReply(error, requestId, logger, protocol);
        logger.debug({ requestId, type: reply.type }, 'request failed');
        status = reply.status;
        outcome = reply.type;
        body = { __type: reply.type, message: reply.message };
        headers = { ...headers, 'x-amzn-errortype': reply.type };
      }
      if (options.audit && !(scope.recordedInTransaction && outcome === AUDIT_SUCCESS)) {
        try {
          // The answer waits until its audit record is durable: nothing is answered unaudited.
          await options.audit.record(draft(outcome));
        } catch (error) {
          logger.error({ err: error, requestId }, 'audit record could not be written; refusing to answer');
          status = 500;
          body = { __type: 'KMSInternalException', message: `An internal error occurred. Request id: ${requestId}` };
          headers = { 'x-amzn-requestid': requestId, 'x-amzn-errortype': 'KMSInternalException' };
        }
      }
      if (response.headersSent) {
        response.destroy();
        return;
      }
      sendJson(response, status, body, headers);
    });
  };
}
