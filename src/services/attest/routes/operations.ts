// Attestation operations for operators (TrustPlaneFleet.*: class settings, reference values,
// clearing a quarantine, EAR tokens, sealing), the verifier's public endpoints (OIDC discovery,
// JWKS, CRLs and certificate status), and the routes agents reach over mutual TLS (evidence,
// attested certificates, app keys). Routes parse and delegate.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { randomUuid, zeroize } from '../../../shared/crypto/index.ts';
import type { Logger } from '../../../shared/log.ts';
import { defineOperation, errorReply, fields, sendJson, type RateLimiter } from '../../../shared/http/index.ts';
import { UserError } from '../../../shared/errors.ts';
import { defineAgentRoute, type AgentRoute } from '../../fleet/index.ts';
import type { AttestationService } from '../service.ts';
import { CORRECTIVE_ACTIONS, MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS } from '../domain/settings.ts';

const FLEET = 'TrustPlaneFleet';
const className = fields.text({ min: 1, max: 512 });
const hostId = fields.text({ min: 3, max: 64, pattern: /^h-[0-9a-f]+$/ });
const actionList = z.array(z.enum(CORRECTIVE_ACTIONS as [string, ...string[]])).max(3);

export function attestOperations(service: AttestationService) {
  return [
    defineOperation({
      target: `${FLEET}.SetClassAttestation`, action: 'fleet:SetClassAttestation',
      input: z.object({
        Name: className,
        Mode: z.enum(['tpm', 'software', 'none']).optional(),
        IntervalSeconds: fields.integer({ min: MIN_INTERVAL_SECONDS, max: MAX_INTERVAL_SECONDS }).optional(),
        SilentAfter: fields.integer({ min: 1, max: 100 }).optional(),
        Actions: z.object({ contraindicated: actionList.optional(), warning: actionList.optional(), silent: actionList.optional() }).strict().optional(),
        WebhookUrl: fields.text({ min: 0, max: 2048 }).optional(),
        JoinTokens: z.boolean().optional(),
      }).strict(),
      handle: async (caller, input) => {
        const settings = await service.configureClass(caller, input.Name, { Mode: input.Mode, IntervalSeconds: input.IntervalSeconds,
          SilentAfter: input.SilentAfter, Actions: input.Actions as Parameters<AttestationService['configureClass']>[2]['Actions'],
          WebhookUrl: input.WebhookUrl, JoinTokens: input.JoinTokens });
        return { Attestation: settings && { Mode: settings.mode, IntervalSeconds: settings.intervalSeconds, SilentAfter: settings.silentAfter,
          Actions: settings.actions, WebhookUrl: settings.webhookUrl, JoinTokens: settings.joinTokens } };
      },
    }),
    defineOperation({
      target: `${FLEET}.SetClassReference`, action: 'fleet:SetClassReference',
      input: z.object({ Name: className, FromHost: hostId.optional(), Document: z.unknown().optional(), WithOperational: z.boolean().optional() }).strict(),
      handle: async (caller, input) => service.setReference(caller, input.Name, { FromHost: input.FromHost, Document: input.Document,
        WithOperational: input.WithOperational }),
    }),
    defineOperation({
      target: `${FLEET}.GetClassReference`, action: 'fleet:GetClassReference', input: z.object({ Name: className }).strict(),
      handle: async (caller, input) => service.getReference(caller, input.Name),
    }),
    defineOperation({
      target: `${FLEET}.ClearHost`, action: 'fleet:ClearHost', input: z.object({ HostId: hostId }).strict(),
      handle: async (caller, input) => service.clearHost(caller, input.HostId),
    }),
    defineOperation({
      target: `${FLEET}.GetAttestationToken`, action: 'fleet:GetAttestationToken',
      input: z.object({ HostIds: z.array(hostId).min(1).max(100), Nonce: fields.text({ min: 8, max: 64 }).optional() }).strict(),
      handle: async (caller, input) => service.attestationToken(caller, input.HostIds, input.Nonce),
    }),
    defineOperation({
      target: `${FLEET}.SealToHost`, action: 'fleet:SealToHost',
      input: z.object({ HostId: hostId, Plaintext: fields.blob({ min: 1, max: 65536 }) }).strict(),
      handle: async (caller, input) => {
        const sealed = await service.seal(caller, input.HostId, input.Plaintext);
        return { Sealed: sealed.Sealed.toString('base64'), MeasurementDigest: sealed.MeasurementDigest };
      },
    }),
  ];
}

const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 digest in lower-case hex');
/** An app key's name: no '/', so (class, name) maps to one wrapping name `account/class/name`. */
const appKeyName = fields.text({ min: 1, max: 128, pattern: /^[A-Za-z0-9][A-Za-z0-9._:-]*$/ });
const MAX_APP_KEY_BYTES = 1024;

/** What agents call over the mutual-TLS listener, authenticated as their host. */
export function attestAgentRoutes(service: AttestationService): AgentRoute[] {
  return [
    defineAgentRoute({
      path: '/v1/agent/attest/register',
      input: z.object({ EkPublic: fields.blob({ min: 1, max: 4096 }), EkCertificate: fields.blob({ min: 1, max: 8192 }).optional(),
        AkPublic: fields.blob({ min: 1, max: 4096 }) }).strict(),
      handle: async (host, input) => {
        const result = await service.registerTpm(host, input);
        if (!result.CredentialBlob || !result.EncryptedSecret) return { AlreadyActivated: true };
        return { CredentialBlob: result.CredentialBlob.toString('base64'), EncryptedSecret: result.EncryptedSecret.toString('base64') };
      },
    }),
    defineAgentRoute({
      path: '/v1/agent/attest/activate', input: z.object({ Secret: fields.blob({ min: 1, max: 128 }) }).strict(),
      handle: (host, input) => service.activateTpm(host, input.Secret),
    }),
    defineAgentRoute({ path: '/v1/agent/attest/challenge', input: z.object({}).strict(), handle: (host) => service.challenge(host) }),
    defineAgentRoute({
      path: '/v1/agent/attest/evidence',
      // An operational report lists executables with their paths: bounded, but larger than a key ring ack.
      maxBodyBytes: 16 * 1024 * 1024,
      input: z.object({
        Nonce: fields.text({ min: 1, max: 256 }),
        Events: z.array(z.object({ Pcr: fields.integer({ min: 0, max: 23 }), Component: fields.text({ min: 1, max: 4096 }), Digest: hex64 }).strict())
          .max(4096),
        OperationalJson: z.string().max(12 * 1024 * 1024).optional(),
        Quote: z.object({ Attest: fields.text({ min: 1, max: 8192 }), Signature: fields.text({ min: 1, max: 8192 }) }).strict().optional(),
      }).strict(),
      handle: (host, input) => service.submitEvidence(host, input),
    }),
    defineAgentRoute({
      path: '/v1/agent/attest/token', input: z.object({ Nonce: fields.text({ min: 8, max: 64 }).optional() }).strict(),
      handle: (host, input) => service.attestationTokenForHost(host, input.Nonce),
    }),
    defineAgentRoute({
      path: '/v1/agent/attest/certificate',
      input: z.object({ Csr: fields.text({ min: 1, max: 16_384 }), LifetimeSeconds: fields.integer({ min: 1, max: 30 * 86_400 }).optional() }).strict(),
      handle: (host, input) => service.issueAttestedCertificate(host, input),
    }),
    defineAgentRoute({ path: '/v1/agent/attest/crl', input: z.object({}).strict(), handle: (host) => service.revocationListForHost(host) }),
    defineAgentRoute({
      path: '/v1/agent/attest/key/store',
      input: z.object({ Name: appKeyName, Key: fields.blob({ min: 1, max: MAX_APP_KEY_BYTES }), Class: className.optional() }).strict(),
      handle: async (host, input) => {
        try {
          return await service.storeAppKey(host, input);
        } finally {
          zeroize(input.Key);
        }
      },
    }),
    defineAgentRoute({
      path: '/v1/agent/attest/key/get', input: z.object({ Name: appKeyName, Class: className.optional() }).strict(),
      handle: async (host, input) => {
        const released = await service.getAppKey(host, input);
        try {
          return { Name: released.Name, Class: released.Class, Key: released.Key.toString('base64') };
        } finally {
          zeroize(released.Key);
        }
      },
    }),
    defineAgentRoute({
      path: '/v1/agent/attest/unseal', input: z.object({ Sealed: fields.blob({ min: 1, max: 70_000 }) }).strict(),
      handle: async (host, input) => {
        const { Plaintext } = await service.unseal(host, input.Sealed);
        try {
          return { Plaintext: Plaintext.toString('base64') };
        } finally {
          zeroize(Plaintext);
        }
      },
    }),
  ];
}

const CRL_PATH = /^\/v1\/attest\/crl\/([^/]+)$/;
const CERTIFICATE_STATUS_PATH = /^\/v1\/attest\/certificates\/([^/]+)$/;

/**
 * GET /v1/attest/crl/<accountId> (DER, application/pkix-crl) and GET /v1/attest/certificates/<serial>
 * (JSON status): revocation of attested certificates for relying parties, with no credentials, limited
 * per source address. Neither says anything a signed CRL would not.
 */
export function createCertificateStatusHandler(options: { service: AttestationService; logger: Logger; rateLimiter?: RateLimiter }) {
  return async (request: IncomingMessage, response: ServerResponse): Promise<boolean> => {
    const path = (request.url ?? '').split('?')[0] ?? '';
    const crl = CRL_PATH.exec(path);
    const status = CERTIFICATE_STATUS_PATH.exec(path);
    if (!crl && !status) return false;
    const requestId = randomUuid();
    try {
      if (request.method !== 'GET') throw new UserError('UnknownOperationException', `Use GET for ${path}.`, 405);
      options.rateLimiter?.take(`address ${request.socket.remoteAddress ?? 'unknown'}`, 'management');
      if (crl) {
        const accountId = crl[1] ?? '';
        const der = /^\d{12}$/.test(accountId) ? await options.service.revocationList(accountId) : undefined;
        if (!der) throw new UserError('NotFoundException', `No certificate authority for account ${accountId.slice(0, 32)}.`, 404);
        response.writeHead(200, { 'content-type': 'application/pkix-crl', 'content-length': der.length, 'cache-control': 'max-age=60',
          'x-amzn-requestid': requestId });
        response.end(der);
        return true;
      }
      sendJson(response, 200, await options.service.certificateStatus(decodeURIComponent(status?.[1] ?? '')),
        { 'cache-control': 'no-store', 'x-amzn-requestid': requestId }, 'application/json');
    } catch (error) {
      const reply = errorReply(error instanceof URIError ? new UserError('ValidationException', 'Malformed path.') : error, requestId,
        options.logger, 'trustplane');
      sendJson(response, reply.status, { __type: reply.type, message: reply.message }, { 'x-amzn-requestid': requestId }, 'application/json');
    }
    return true;
  };
}

/** GET /.well-known/openid-configuration and /.well-known/jwks.json: no credentials, public keys only. */
export function createVerifierDiscoveryHandler(service: AttestationService) {
  return async (request: IncomingMessage, response: ServerResponse): Promise<boolean> => {
    if (request.method !== 'GET') return false;
    const path = (request.url ?? '').split('?')[0];
    if (path === '/.well-known/openid-configuration') {
      sendJson(response, 200, service.openidConfiguration(), { 'cache-control': 'max-age=300' }, 'application/json');
      return true;
    }
    if (path === '/.well-known/jwks.json') {
      sendJson(response, 200, await service.jwks(), { 'cache-control': 'max-age=300' }, 'application/json');
      return true;
    }
    return false;
  };
}
