// Signed calls to trustplane's identity operations (TrustPlaneIam.*), as tests make them.
import { randomUUID } from 'node:crypto';
import { postRaw, signRequest } from './kms-client.ts';
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
  const body = JSON.stringify(input);
  const headers = await signRequest(server, { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target,
    'amz-sdk-invocation-id': randomUUID() }, body, { service: 'trustplane', credentials });
  const response = await postRaw(server.url, headers, Buffer.from(body));
  if (response.status !== 200) throw new IamCallError(String(response.json.__type), String(response.json.message), response.status);
  return response.json as T;
}

export function rootCredentials(server: TestServer): Credentials {
  return { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
}
