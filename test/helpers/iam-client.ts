// Signed calls to trustplane's identity operations (TrustPlaneIam.*), as tests make them.
import { randomUUID } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { postRaw } from './kms-client.ts';
import type { TestServer } from './server.ts';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export class IamCallError extends Error {
  constructor(readonly code: string, message: string, readonly status: number) {
    super(message);
    this.name = code;
  }
}

/** Calls TrustPlaneIam.<operation>; resolves to the JSON answer, rejects with IamCallError. */
export async function iam<T = Record<string, unknown>>(server: TestServer, credentials: Credentials, operation: string,
  input: Record<string, unknown> = {}): Promise<T> {
  return trustplaneCall<T>(server, credentials, `TrustPlaneIam.${operation}`, input);
}

/** Calls TrustPlaneOperator.<operation> (seal, domain key rotation). */
export async function operatorCall<T = Record<string, unknown>>(server: TestServer, credentials: Credentials, operation: string,
  input: Record<string, unknown> = {}): Promise<T> {
  return trustplaneCall<T>(server, credentials, `TrustPlaneOperator.${operation}`, input);
}

/** Any operation signed for the service "trustplane". */
export async function trustplaneCall<T = Record<string, unknown>>(server: TestServer, credentials: Credentials, target: string,
  input: Record<string, unknown> = {}): Promise<T> {
  const url = new URL(server.url);
  const body = JSON.stringify(input);
  const signer = new SignatureV4({ service: 'trustplane', region: server.region, sha256: Hash.bind(null, 'sha256'), credentials });
  const signed = await signer.sign({ method: 'POST', protocol: 'http:', hostname: url.hostname, port: Number(url.port), path: '/', body,
    headers: { host: url.host, 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target,
      'amz-sdk-invocation-id': randomUUID() } });
  const response = await postRaw(server.url, signed.headers as Record<string, string>, Buffer.from(body));
  if (response.status !== 200) throw new IamCallError(String(response.json.__type), String(response.json.message), response.status);
  return response.json as T;
}

export function rootCredentials(server: TestServer): Credentials {
  return { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
}
