// The listener host agents connect to: HTTPS with mutual TLS, one certificate and one client CA
// per account chosen by the server name the agent asks for. Routes: the push stream, the
// acknowledgement, and certificate renewal. Every refusal is a typed JSON error.
// Must never answer a request whose client certificate is not the host's current one.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import type { AuditLog } from '../../../shared/audit/index.ts';
import { randomUuid } from '../../../shared/crypto/index.ts';
import { UserError } from '../../../shared/errors.ts';
import { errorReply, fields, parseInput, readJsonBody, sendJson } from '../../../shared/http/index.ts';
import type { Logger } from '../../../shared/log.ts';
import type { HostRecord } from '../../../shared/store/index.ts';
import { hostUri } from '../../../shared/fleet-wire.ts';
import type { FleetPushHub } from '../push.ts';
import type { AgentIdentity, FleetService } from '../service.ts';

const MAX_AGENT_BODY_BYTES = 1024 * 1024;

const ackInput = z.object({
  Revision: fields.integer({ min: 0 }),
  Holds: z.record(z.string().uuid(), z.array(fields.integer({ min: 1, max: 2 ** 32 - 1 })).max(100_000)),
  Removed: z.array(z.string().uuid()).max(100_000).optional(),
  Full: z.boolean().optional(),
  AgentVersion: fields.text({ min: 1, max: 64 }).optional(),
}).strict();

const renewInput = z.object({
  PublicKey: fields.blob({ min: 1, max: 6144 }),
  Proof: fields.blob({ min: 1, max: 6144 }),
}).strict();

/** A route another service adds to this listener (attestation): authenticated as a host, input validated. */
export interface AgentRoute<Input = unknown> {
  path: string;
  input: z.ZodType<Input, z.ZodTypeDef, unknown>;
  /** Largest body accepted (default 1 MiB). */
  maxBodyBytes?: number;
  handle(host: HostRecord, input: Input): Promise<unknown>;
}

/** Builds a route with its input type inferred from the schema. */
export function defineAgentRoute<Input>(route: AgentRoute<Input>): AgentRoute {
  return route as AgentRoute;
}

export interface RunningAgentListener {
  server: Server;
  port: number;
  close(): Promise<void>;
}

export async function startAgentListener(options: { host: string; port: number; service: FleetService; hub: FleetPushHub;
  logger: Logger; audit?: AuditLog; routes?: AgentRoute[] }): Promise<RunningAgentListener> {
  const { service, hub, logger } = options;
  const extraRoutes = new Map((options.routes ?? []).map((route) => [route.path, route]));

  // A connection's certificate cannot change: it is read once per connection (parsing it on every
  // request was a third of the listener's time with 1,000 agents); the host itself is checked every time.
  const identities = new WeakMap<TLSSocket, AgentIdentity>();
  async function authenticated(request: IncomingMessage): Promise<HostRecord> {
    const socket = request.socket as TLSSocket;
    let identity = identities.get(socket);
    if (!identity) {
      const peer = socket.getPeerCertificate();
      identity = service.identifyAgent(socket.servername || undefined, { authorized: socket.authorized,
        authorizationError: socket.authorizationError?.toString(), certificateDer: peer?.raw });
      identities.set(socket, identity);
    }
    return service.authenticateAgent(identity);
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomUuid();
    const path = (request.url ?? '').split('?')[0];
    try {
      const host = await authenticated(request);
      if (path === '/v1/agent/stream' && request.method === 'GET') {
        const header = request.headers['last-event-id'];
        const since = Number(Array.isArray(header) ? header[0] : header ?? new URL(request.url ?? '/', 'https://x').searchParams.get('since') ?? 0);
        if (!Number.isSafeInteger(since) || since < 0) throw new UserError('ValidationException', 'Last-Event-ID must be a revision number.');
        await hub.attach(host, since, response);
        return;
      }
      if (path === '/v1/agent/ack' && request.method === 'POST') {
        const input = parseInput(ackInput, await readJsonBody(request, MAX_AGENT_BODY_BYTES));
        const result = await service.acknowledge(host, input);
        sendJson(response, 200, { Promoted: result.promoted.map((entry) => ({ KeyId: entry.keyId, Version: entry.version })) },
          { 'x-amzn-requestid': requestId }, 'application/json');
        return;
      }
      if (path === '/v1/agent/renew' && request.method === 'POST') {
        const input = parseInput(renewInput, await readJsonBody(request, MAX_AGENT_BODY_BYTES));
        const renewed = await service.renew(host, input.PublicKey, input.Proof);
        await options.audit?.record({ requestId, accountId: host.accountId, principalArn: hostUri(host.accountId, host.hostId),
          sourceIp: request.socket.remoteAddress, service: 'trustplane', operation: 'FleetRenewHostCertificate', decision: 'Allow',
          outcome: 'Success', latencyMs: 0 }).catch((error: unknown) => logger.error({ err: error }, 'renewal could not be audited'));
        sendJson(response, 200, { Certificate: renewed.certificatePem, CertificateExpiresAt: renewed.notAfter.toISOString() },
          { 'x-amzn-requestid': requestId }, 'application/json');
        return;
      }
      const route = extraRoutes.get(path);
      if (route && request.method === 'POST') {
        const input = parseInput(route.input, await readJsonBody(request, route.maxBodyBytes ?? MAX_AGENT_BODY_BYTES));
        sendJson(response, 200, await route.handle(host, input), { 'x-amzn-requestid': requestId }, 'application/json');
        return;
      }
      throw new UserError('UnknownOperationException', `Unknown path ${request.method} ${path}.`, 404);
    } catch (error) {
      const reply = errorReply(error, requestId, logger, 'trustplane');
      if (!response.headersSent) {
        sendJson(response, reply.status, { __type: reply.type, message: reply.message }, { 'x-amzn-requestid': requestId }, 'application/json');
      } else {
        response.destroy();
      }
    }
  }

  const server = createServer({
    // The certificate and client CA come from the account named by SNI; no SNI, no handshake.
    SNICallback: (serverName, callback) => {
      service.tlsContextFor(serverName).then((context) => callback(null, context), (error: unknown) => {
        logger.warn({ serverName, err: error }, 'agent TLS handshake refused');
        callback(error as Error);
      });
    },
    // Verified by TLS against the account's CA; refusals are answered in HTTP as typed errors, not TLS alerts.
    requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3',
    keepAliveTimeout: 65_000, headersTimeout: 30_000, requestTimeout: 0,
  }, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error({ err: error }, 'unhandled agent request error');
      response.destroy();
    });
  });
  server.on('tlsClientError', (error) => logger.debug({ err: error }, 'agent TLS error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      hub.stop();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
