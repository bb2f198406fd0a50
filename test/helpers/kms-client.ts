// A real @aws-sdk/client-kms client pointed at a test server, plus raw signed requests for
// what the SDK refuses to send (malformed bodies, skewed clocks, unknown targets).
import { KMSClient } from '@aws-sdk/client-kms';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import http from 'node:http';
import type { TestServer } from './server.ts';

export interface SigningCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** One attempt per call (a retried 5xx would hide a server fault); the server's own dev credentials unless given others. */
export function kmsClient(server: Pick<TestServer, 'url' | 'region' | 'accessKeyId' | 'secretAccessKey'>,
  credentials?: SigningCredentials): KMSClient {
  return new KMSClient({
    endpoint: server.url, region: server.region, maxAttempts: 1,
    credentials: credentials ?? { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
}

export interface SignOptions {
  /** The SigV4 service name: 'kms' (default) or 'trustplane'. */
  service?: string;
  /** Default: the server's. */
  region?: string;
  /** Default: the server's own dev credentials. */
  credentials?: SigningCredentials;
  signingDate?: Date;
}

/**
 * SigV4-signs `POST /` to the server with exactly `headers` (plus host, first, unless given) and
 * `body`, and returns the headers to send: these plus the signature's. Nothing else is signed.
 */
export async function signRequest(server: TestServer, headers: Record<string, string>, body: string | Buffer,
  options: SignOptions = {}): Promise<Record<string, string>> {
  const url = new URL(server.url);
  const signer = new SignatureV4({ service: options.service ?? 'kms', region: options.region ?? server.region, sha256: Hash.bind(null, 'sha256'),
    credentials: options.credentials ?? { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
  const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port),
    path: '/', headers: { host: url.host, ...headers }, body }, { signingDate: options.signingDate });
  return signed.headers as Record<string, string>;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: Record<string, unknown>;
}

export interface RawRequestOptions {
  target?: string;
  body?: string | Buffer;
  signingDate?: Date;
  credentials?: SigningCredentials;
  region?: string;
  unsigned?: boolean;
  tamper?: (headers: Record<string, string>) => void;
}

/** Sends a SigV4-signed JSON 1.1 request with full control over what is sent. */
export async function rawKmsRequest(server: TestServer, options: RawRequestOptions): Promise<RawResponse> {
  const url = new URL(server.url);
  const body = options.body ?? '{}';
  const headers: Record<string, string> = {
    host: url.host, 'content-type': 'application/x-amz-json-1.1',
  };
  if (options.target !== undefined) headers['x-amz-target'] = options.target;
  const finalHeaders = options.unsigned ? headers
    : await signRequest(server, headers, body, { region: options.region, credentials: options.credentials, signingDate: options.signingDate });
  options.tamper?.(finalHeaders);
  return postRaw(server.url, finalHeaders, typeof body === 'string' ? Buffer.from(body) : body);
}

/** POSTs exactly these headers and bytes (node:http, so Host and lengths are ours to set). */
export function postRaw(endpoint: string, headers: Record<string, string>, body: Buffer): Promise<RawResponse> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: Number(url.port), method: 'POST', path: '/',
      headers: { ...headers, 'content-length': String(body.length) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Record<string, unknown> = {};
        try { json = text ? JSON.parse(text) as Record<string, unknown> : {}; } catch { json = { unparsed: text }; }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, json });
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}
