// The agent's local API: HTTP/JSON on a Unix socket, the key service's field names, crypto run
// here with the cached keys (no server round trip). Ciphertexts are the key service's format.
// Access is the socket file's mode (and its directory's); Node exposes no peer credentials.
// Must never return key material, and never log plaintext.
import { chmodSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import {
  hashLength, MAC_HASH, parseCiphertextBlob, randomBytes, zeroize, type CustomerKey, type KeySpec, type MacAlgorithm,
} from '../shared/crypto/index.ts';
import { CiphertextError, UserError } from '../shared/errors.ts';
import { errorReply, fields, parseInput, readJsonBody, sendJson } from '../shared/http/index.ts';
import type { Logger } from '../shared/log.ts';
import {
  MAC_ALGORITHMS, SIGNING_ALGORITHMS, signatureSchemeFor, signingAlgorithmsFor, signingHash,
} from '../services/kms/domain/key-specs.ts';
import type { AgentKeyRing } from './key-ring.ts';

// Room for a privileged-operation request carrying a 16 MiB patch (base64, then JSON).
const MAX_SOCKET_BODY_BYTES = 24 * 1024 * 1024;
/** How far a streamed answer may run ahead of the client: bounds the agent's memory per stream. */
const STREAM_READ_AHEAD_BYTES = 1024 * 1024;
const keyRef = fields.text({ min: 1, max: 2048 });
const context = z.record(z.string(), z.string()).optional();

const schemas = {
  Encrypt: z.object({ KeyId: keyRef, Plaintext: fields.blob({ min: 1, max: 4096 }), EncryptionContext: context }).strict(),
  Decrypt: z.object({ CiphertextBlob: fields.blob({ min: 1, max: 6144 }), EncryptionContext: context, KeyId: keyRef.optional() }).strict(),
  GenerateDataKey: z.object({ KeyId: keyRef, KeySpec: z.enum(['AES_256', 'AES_128']).optional(),
    NumberOfBytes: fields.integer({ min: 1, max: 1024 }).optional(), EncryptionContext: context }).strict(),
  Sign: z.object({ KeyId: keyRef, Message: fields.blob({ min: 1, max: 4096 }), MessageType: z.enum(['RAW', 'DIGEST']).optional(),
    SigningAlgorithm: z.enum(SIGNING_ALGORITHMS) }).strict(),
  Verify: z.object({ KeyId: keyRef, Message: fields.blob({ min: 1, max: 4096 }), MessageType: z.enum(['RAW', 'DIGEST']).optional(),
    SigningAlgorithm: z.enum(SIGNING_ALGORITHMS), Signature: fields.blob({ min: 1, max: 6144 }) }).strict(),
  GenerateMac: z.object({ KeyId: keyRef, Message: fields.blob({ min: 1, max: 4096 }), MacAlgorithm: z.enum(MAC_ALGORITHMS) }).strict(),
  GetSecret: z.object({ KeyId: keyRef, Version: fields.integer({ min: 1 }).optional() }).strict(),
  VerifyMac: z.object({ KeyId: keyRef, Message: fields.blob({ min: 1, max: 4096 }), MacAlgorithm: z.enum(MAC_ALGORITHMS),
    Mac: fields.blob({ min: 1, max: 6144 }) }).strict(),
};

const notFound = (reference: string) => new UserError('NotFoundException',
  `This host holds no key ${reference}: it is not granted to the host's classes, or has not arrived yet.`, 404);

export interface AgentStatus {
  HostId: string;
  Revision: number;
  Connected: boolean;
  CertificateExpiresAt: string;
  Keys: unknown[];
  Attestation?: unknown;
  /** The privileged-operation request key: registered with the server, and the classes it last said. */
  PrivopRequestKey?: unknown;
}

/**
 * An answer streamed as the HTTP body (application/octet-stream, chunked) instead of JSON: bytes too many to hold
 * (a sealed privileged-operation result). Pulled only as fast as the client reads.
 */
export class SocketStreamReply {
  constructor(readonly body: AsyncIterable<Buffer>) {}
}

/** An operation served beside the key operations (attestation, sealing); validates its own input. */
export type SocketOperation = (input: unknown) => Promise<Record<string, unknown> | SocketStreamReply>;

export class AgentSocketApi {
  readonly #ring: AgentKeyRing;
  readonly #logger: Logger;
  readonly #status: () => AgentStatus;
  readonly #operations: Record<string, SocketOperation>;
  #server?: Server;

  constructor(options: { ring: AgentKeyRing; logger: Logger; status: () => AgentStatus; operations?: Record<string, SocketOperation> }) {
    this.#ring = options.ring;
    this.#logger = options.logger;
    this.#status = options.status;
    this.#operations = options.operations ?? {};
  }

  #held(reference: string, usage: string) {
    const held = this.#ring.find(reference);
    if (!held) throw notFound(reference);
    if (!held.descriptor.Enabled) throw new UserError('DisabledException', `${held.descriptor.Arn} is disabled.`, 400);
    if (held.descriptor.KeyUsage !== usage) {
      throw new UserError('InvalidKeyUsageException', `${held.descriptor.Arn} key usage is ${held.descriptor.KeyUsage}.`, 400);
    }
    return held;
  }

  #default(reference: string, usage: string): { key: CustomerKey; arn: string; spec: KeySpec } {
    const held = this.#held(reference, usage);
    const key = this.#ring.version(held, held.descriptor.DefaultVersion);
    if (!key) throw notFound(`${reference} (version ${held.descriptor.DefaultVersion})`);
    return { key, arn: held.descriptor.Arn, spec: held.descriptor.KeySpec as KeySpec };
  }

  /** Runs one operation; what the key service would answer for the same call, made locally. */
  async operate(operation: string, body: unknown): Promise<unknown> {
    switch (operation) {
      case 'Encrypt': {
        const input = parseInput(schemas.Encrypt, body);
        const { key, arn, spec } = this.#default(input.KeyId, 'ENCRYPT_DECRYPT');
        if (spec !== 'SYMMETRIC_DEFAULT') throw new UserError('UnsupportedOperationException', 'The agent encrypts with symmetric keys only.');
        return { CiphertextBlob: key.encrypt(input.Plaintext, input.EncryptionContext), KeyId: arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      case 'Decrypt': {
        const input = parseInput(schemas.Decrypt, body);
        const parsed = parseCiphertextBlob(input.CiphertextBlob);
        const held = this.#ring.find(parsed.keyId);
        if (!held) throw notFound(parsed.keyId);
        if (input.KeyId !== undefined && this.#ring.find(input.KeyId) !== held) {
          throw new UserError('IncorrectKeyException', 'The ciphertext was not made with the key named by KeyId.');
        }
        if (!held.descriptor.Enabled) throw new UserError('DisabledException', `${held.descriptor.Arn} is disabled.`);
        if (parsed.keyVersion < held.descriptor.MinDecryptVersion) {
          throw new CiphertextError(`The ciphertext was made with version ${parsed.keyVersion}, below the minimum decryption version ${held.descriptor.MinDecryptVersion}.`);
        }
        const key = this.#ring.version(held, parsed.keyVersion);
        if (!key) throw notFound(`${parsed.keyId} (version ${parsed.keyVersion})`);
        return { Plaintext: key.decrypt(parsed, input.EncryptionContext), KeyId: held.descriptor.Arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      case 'GenerateDataKey': {
        const input = parseInput(schemas.GenerateDataKey, body);
        if ((input.KeySpec === undefined) === (input.NumberOfBytes === undefined)) {
          throw new UserError('ValidationException', 'Give exactly one of KeySpec and NumberOfBytes.');
        }
        const { key, arn, spec } = this.#default(input.KeyId, 'ENCRYPT_DECRYPT');
        if (spec !== 'SYMMETRIC_DEFAULT') throw new UserError('UnsupportedOperationException', 'Data keys come from symmetric keys only.');
        const plaintext = randomBytes(input.NumberOfBytes ?? (input.KeySpec === 'AES_128' ? 16 : 32));
        return { CiphertextBlob: key.encrypt(plaintext, input.EncryptionContext), Plaintext: plaintext, KeyId: arn };
      }
      case 'Sign':
      case 'Verify': {
        const input = operation === 'Sign' ? parseInput(schemas.Sign, body) : parseInput(schemas.Verify, body);
        const { key, arn, spec } = this.#default(input.KeyId, 'SIGN_VERIFY');
        if (!(signingAlgorithmsFor(spec, 'SIGN_VERIFY') ?? []).includes(input.SigningAlgorithm)) {
          throw new UserError('KMSInvalidSigningAlgorithmException', `${input.SigningAlgorithm} is not valid for ${spec}.`);
        }
        const digest = input.MessageType === 'DIGEST';
        if (digest && input.Message.length !== hashLength(signingHash(input.SigningAlgorithm))) {
          throw new UserError('ValidationException', `A DIGEST message must be the ${signingHash(input.SigningAlgorithm)} digest.`);
        }
        const scheme = signatureSchemeFor(input.SigningAlgorithm);
        if (operation === 'Sign') {
          return { Signature: key.sign(scheme, input.Message, digest), KeyId: arn, SigningAlgorithm: input.SigningAlgorithm };
        }
        const valid = key.verify(scheme, input.Message, digest, (input as z.output<typeof schemas.Verify>).Signature);
        if (!valid) throw new UserError('KMSInvalidSignatureException', 'The signature is not valid.');
        return { SignatureValid: true, KeyId: arn, SigningAlgorithm: input.SigningAlgorithm };
      }
      case 'GenerateMac':
      case 'VerifyMac': {
        const input = operation === 'GenerateMac' ? parseInput(schemas.GenerateMac, body) : parseInput(schemas.VerifyMac, body);
        const { key, arn, spec } = this.#default(input.KeyId, 'GENERATE_VERIFY_MAC');
        const algorithm = input.MacAlgorithm as MacAlgorithm;
        if (`HMAC_${MAC_HASH[algorithm].slice(3)}` !== spec) throw new UserError('InvalidKeyUsageException', `${algorithm} is not valid for ${spec}.`);
        if (operation === 'GenerateMac') return { Mac: key.generateMac(algorithm, input.Message), KeyId: arn, MacAlgorithm: algorithm };
        if (!key.verifyMac(algorithm, input.Message, (input as z.output<typeof schemas.VerifyMac>).Mac)) {
          throw new UserError('KMSInvalidMacException', 'The MAC is not valid.');
        }
        return { MacValid: true, KeyId: arn, MacAlgorithm: algorithm };
      }
      case 'GetSecret': {
        const input = parseInput(schemas.GetSecret, body);
        const held = this.#held(input.KeyId, 'SECRET_VALUE');
        const version = input.Version ?? held.descriptor.DefaultVersion;
        const key = this.#ring.version(held, version);
        if (!key) throw notFound(`${input.KeyId} (version ${version})`);
        return { SecretValue: key.secretValue(), KeyId: held.descriptor.Arn, Version: version };
      }
      default:
        throw new UserError('UnknownOperationException', `Unknown operation ${operation}.`, 404);
    }
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex');
    const path = (request.url ?? '').split('?')[0];
    try {
      if (request.method === 'GET' && path === '/v1/status') {
        sendJson(response, 200, this.#status(), {}, 'application/json');
        return;
      }
      const operation = /^\/v1\/([A-Za-z]+)$/.exec(path)?.[1];
      if (request.method !== 'POST' || !operation) throw new UserError('UnknownOperationException', `Use POST /v1/<Operation>; got ${request.method} ${path}.`, 404);
      const body = await readJsonBody(request, MAX_SOCKET_BODY_BYTES);
      const extra = Object.hasOwn(this.#operations, operation) ? this.#operations[operation] : undefined;
      const answer = extra ? await extra(body) : await this.operate(operation, body);
      if (answer instanceof SocketStreamReply) {
        await this.#stream(response, answer.body, requestId);
        return;
      }
      const result = answer as Record<string, unknown>;
      const wire = Object.fromEntries(Object.entries(result).map(([name, value]) => [name, Buffer.isBuffer(value) ? value.toString('base64') : value]));
      for (const value of Object.values(result)) if (Buffer.isBuffer(value)) zeroize(value);
      sendJson(response, 200, wire, {}, 'application/json');
    } catch (error) {
      const reply = errorReply(error, requestId, this.#logger, 'trustplane');
      sendJson(response, reply.status, { __type: reply.type, message: reply.message }, {}, 'application/json');
    }
  }

  /**
   * Streams `body` as the answer. Its first part is awaited before the status is sent, so a failure before any byte
   * is still a typed JSON error; a failure later (or the client leaving) can only cut the stream, which the client detects.
   */
  async #stream(response: ServerResponse, body: AsyncIterable<Buffer>, requestId: string): Promise<void> {
    const iterator = body[Symbol.asyncIterator]();
    const first = await iterator.next();
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    async function* parts(): AsyncGenerator<Buffer> {
      try {
        if (!first.done) yield first.value;
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
      } finally {
        // Reached early when the client goes away: ends the producer too.
        await iterator.return?.();
      }
    }
    try {
      // A few MiB of read-ahead lets the producer seal the next chunk while the socket drains the last (bounded memory).
      await pipeline(Readable.from(parts(), { objectMode: false, highWaterMark: STREAM_READ_AHEAD_BYTES }), response);
    } catch (error) {
      const gone = (error as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE';
      if (gone) this.#logger.warn({ requestId }, 'socket client left before the streamed answer ended');
      else this.#logger.error({ err: error, requestId }, 'streamed answer failed');
      response.destroy();
    }
  }

  /** Listens on `path` with `mode`; a stale socket left by a crash is replaced, a live one refused. */
  async listen(path: string, mode: number): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    if (existsSync(path)) {
      const live = await new Promise<boolean>((resolve) => {
        const probe = connect(path, () => { probe.end(); resolve(true); });
        probe.on('error', () => resolve(false));
      });
      if (live) throw new UserError('SocketInUse', `Another agent is listening on ${path}.`);
      rmSync(path, { force: true });
    }
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        this.#logger.error({ err: error }, 'socket request failed');
        response.destroy();
      });
    });
    // Created with no access for others, then opened up to the mode asked for: never briefly wider.
    const previous = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => { server.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(previous);
    }
    chmodSync(path, mode);
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    await new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
  }
}
