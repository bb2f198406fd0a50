// Typed client for the key service: the AWS SDK for AWS operations, SigV4-signed calls for
// trustplane's extensions. Reads the credentials the AWS tools read. Never prints secrets.
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { KMSClient } from '@aws-sdk/client-kms';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { fromIni } from '@aws-sdk/credential-provider-ini';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { resolveHome } from '../shared/config.ts';
import { UserError } from '../shared/errors.ts';
import { AWS_CONFIG_FILE, AWS_PROFILE, CREDENTIALS_FILE } from '../shared/home-files.ts';

const DEFAULT_ENDPOINT = 'http://127.0.0.1:8200';

export interface ClientOptions {
  endpoint?: string;
  home?: string;
}

function resolveEndpoint(flag: string | undefined): string {
  const endpoint = flag ?? process.env.TRUSTPLANE_ENDPOINT ?? DEFAULT_ENDPOINT;
  try {
    const url = new URL(endpoint);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('scheme');
  } catch {
    throw new UserError('InvalidEndpoint', `--endpoint must be an http(s) URL, got '${endpoint}'.`);
  }
  return endpoint.replace(/\/+$/, '');
}

/**
 * The AWS default chain (environment, shared files, AWS_PROFILE, ...), then, for a
 * developer on the server's machine, the dev credentials the server wrote into its home.
 */
function credentialChain(home: string | undefined): AwsCredentialIdentityProvider {
  const standard = defaultProvider();
  return async (): Promise<AwsCredentialIdentity> => {
    try {
      return await standard();
    } catch (error) {
      const file = join(resolveHome(home), CREDENTIALS_FILE);
      if (!existsSync(file)) {
        throw new UserError('MissingCredentials', 'No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, as printed by `trustplane server --dev`.');
      }
      return fromIni({ filepath: file, configFilepath: join(resolveHome(home), AWS_CONFIG_FILE), profile: AWS_PROFILE })();
    }
  };
}

function region(): string {
  return process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

const CONNECTION_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'EAI_AGAIN']);

/** Turns a transport failure into an error that says which endpoint and what to check. */
export function explainConnectionError(error: unknown, endpoint: string): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERRORS.has(code)) {
    return new UserError('ConnectionError', `cannot reach the key service at ${endpoint} (${code}); is \`trustplane server\` running there? Set --endpoint or TRUSTPLANE_ENDPOINT.`);
  }
  return error;
}

export class KeyServiceClient {
  readonly endpoint: string;
  readonly kms: KMSClient;
  readonly #credentials: AwsCredentialIdentityProvider;

  constructor(options: ClientOptions = {}) {
    this.endpoint = resolveEndpoint(options.endpoint);
    this.#credentials = credentialChain(options.home);
    this.kms = new KMSClient({ endpoint: this.endpoint, region: region(), credentials: this.#credentials, maxAttempts: 3 });
  }

  /** Calls a trustplane extension operation (TrustPlaneKms.*). */
  async extension<T>(operation: string, input: Record<string, unknown>): Promise<T> {
    return this.call<T>(`TrustPlaneKms.${operation}`, 'kms', input);
  }

  /** Calls an identity operation (TrustPlaneIam.*), signed for the service "trustplane". */
  async iam<T>(operation: string, input: Record<string, unknown>): Promise<T> {
    return this.call<T>(`TrustPlaneIam.${operation}`, 'trustplane', input);
  }

  /** A SigV4-signed JSON 1.1 request to any target; AWS-shaped errors become UserErrors with their code. */
  async call<T>(target: string, service: string, input: Record<string, unknown>): Promise<T> {
    const url = new URL(this.endpoint);
    const body = JSON.stringify(input);
    const signer = new SignatureV4({ service, region: region(), credentials: this.#credentials, sha256: Hash.bind(null, 'sha256') });
    const signed = await signer.sign({ method: 'POST', protocol: url.protocol, hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined, path: '/', body,
      // A fresh invocation id makes every request's signature unique, as the AWS SDKs do: the server
      // refuses a repeated signature on state-changing operations as a replay.
      headers: { host: url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target,
        'amz-sdk-invocation-id': randomUUID() } });
    return this.#send<T>('POST', '/', { ...signed.headers, 'content-length': String(Buffer.byteLength(body)) }, body);
  }

  /** Calls a fleet operation (TrustPlaneFleet.*): host classes, key grants, join tokens. */
  async fleet<T>(operation: string, input: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>(`TrustPlaneFleet.${operation}`, 'trustplane', input);
  }

  /** Calls a privileged-operation operation (TrustPlanePrivop.*): the relay and campaigns. */
  async privop<T>(operation: string, input: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>(`TrustPlanePrivop.${operation}`, 'trustplane', input);
  }

  /** Calls a signed operator operation (TrustPlaneOperator.*): seal, domain key rotation. */
  async operator<T>(operation: string, input: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>(`TrustPlaneOperator.${operation}`, 'trustplane', input);
  }

  /** The unauthenticated operator calls (init, unseal, status): a sealed server can check no credentials. */
  async operatorUnsigned<T>(operation: 'init' | 'unseal' | 'status', input?: Record<string, unknown>): Promise<T> {
    const body = input === undefined ? '' : JSON.stringify(input);
    return this.#send<T>(input === undefined ? 'GET' : 'POST', `/v1/operator/${operation}`,
      { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }, body);
  }

  async #send<T>(method: string, path: string, headers: Record<string, string>, body: string): Promise<T> {
    const url = new URL(this.endpoint);
    const transport = url.protocol === 'https:' ? https : http;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = transport.request({ hostname: url.hostname, port: url.port, method, path, headers }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      request.on('error', (error) => reject(explainConnectionError(error, this.endpoint)));
      request.end(body);
    });
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new UserError('InvalidResponse', `${this.endpoint} answered HTTP ${status} with a body that is not JSON.`);
    }
    if (status !== 200) throw new UserError(String(parsed.__type ?? 'Error'), String(parsed.message ?? `HTTP ${status}`));
    return parsed as T;
  }

  destroy(): void {
    this.kms.destroy();
  }
}
