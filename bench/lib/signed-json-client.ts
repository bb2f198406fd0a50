// A minimal AWS JSON 1.1 client for load generation: serialise, SigV4-sign and POST every request
// over a keep-alive agent, as a real SDK does. Must never reuse a signature or talk beyond loopback.
import http from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Outcome } from './load-generator.ts';

export interface SignedJsonClientOptions {
  endpoint: string;
  region: string;
  service: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  agent: http.Agent;
  /** A request still unanswered after this long counts as an error. */
  timeoutMs: number;
}

export interface JsonReply {
  status: number;
  body: Record<string, unknown>;
}

/** A keep-alive agent bounded to `concurrency` sockets, one per in-flight request. */
export function keepAliveAgent(concurrency: number): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
}

export function assertLoopback(endpoint: string): URL {
  const url = new URL(endpoint);
  if (url.protocol !== 'http:' || url.hostname !== '127.0.0.1') throw new Error(`bench traffic stays on 127.0.0.1, not ${endpoint}`);
  return url;
}

export class SignedJsonClient {
  readonly #url: URL;
  readonly #port: number;
  readonly #signer: SignatureV4;
  readonly #options: SignedJsonClientOptions;

  constructor(options: SignedJsonClientOptions) {
    this.#url = assertLoopback(options.endpoint);
    this.#port = Number(this.#url.port);
    this.#options = options;
    // One signer per client, like an SDK client: it caches the derived signing key per day, not signatures.
    this.#signer = new SignatureV4({ service: options.service, region: options.region, credentials: options.credentials,
      sha256: Hash.bind(null, 'sha256') });
  }

  /** Serialises, signs (fresh date and signature) and sends one operation call. */
  async call(target: string, input: Record<string, unknown>): Promise<JsonReply> {
    const body = JSON.stringify(input);
    const signed = await this.#signer.sign({
      method: 'POST', protocol: 'http:', hostname: this.#url.hostname, port: this.#port, path: '/', query: {},
      headers: { host: this.#url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target },
      body,
    });
    return this.#post(signed.headers as Record<string, string>, Buffer.from(body));
  }

  #post(headers: Record<string, string>, body: Buffer): Promise<JsonReply> {
    return new Promise((resolve, reject) => {
      const request = http.request({
        host: this.#url.hostname, port: this.#port, method: 'POST', path: '/', agent: this.#options.agent,
        headers: { ...headers, 'content-length': String(body.length) },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: Record<string, unknown>;
          try {
            parsed = text ? JSON.parse(text) as Record<string, unknown> : {};
          } catch {
            parsed = { unparsed: text.slice(0, 200) };
          }
          resolve({ status: response.statusCode ?? 0, body: parsed });
        });
      });
      request.setTimeout(this.#options.timeoutMs, () => request.destroy(new Error(`no answer within ${this.#options.timeoutMs} ms`)));
      request.on('error', reject);
      request.end(body);
    });
  }
}

/** Turns a reply into an outcome: 200 and a passing check, or the AWS error type as the reason. */
export function judgeReply(reply: JsonReply, check: (body: Record<string, unknown>) => boolean): Outcome {
  if (reply.status !== 200) {
    const type = typeof reply.body.__type === 'string' ? reply.body.__type : 'no __type';
    return { ok: false, reason: `HTTP ${reply.status} ${type}` };
  }
  return check(reply.body) ? { ok: true } : { ok: false, reason: 'HTTP 200 with an unexpected body' };
}

/** Creates a symmetric key for a bench's set-up and returns its id; `label` prefixes the error if it fails. */
export async function createSymmetricKey(client: SignedJsonClient, description: string, label?: string): Promise<string> {
  const created = await client.call('TrentService.CreateKey', { Description: description, KeySpec: 'SYMMETRIC_DEFAULT' });
  const keyId = (created.body.KeyMetadata as { KeyId?: string } | undefined)?.KeyId;
  if (created.status !== 200 || !keyId) {
    throw new Error(`${label === undefined ? '' : `${label}: `}CreateKey failed: ${created.status} ${JSON.stringify(created.body)}`);
  }
  return keyId;
}
