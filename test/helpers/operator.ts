// The operator API's unauthenticated calls (health, init, unseal) over plain HTTP, as operator tooling
// makes them. Never signs anything: signed operator calls (seal, rotation) are operatorCall in iam-client.ts.
import assert from 'node:assert/strict';
import type { Credentials } from './iam-client.ts';
import type { TestServer } from './server.ts';

export interface HealthBody {
  status: string;
  initialized: boolean;
  sealed: boolean;
  module: string;
  progress: number;
  threshold: number;
  sealedReason?: string;
  domainKeyRotation?: { State: string };
}

/** GET /health: the HTTP status (503 while sealed) and the body. */
export async function health(server: TestServer): Promise<{ status: number; body: HealthBody }> {
  const response = await fetch(`${server.url}/health`);
  return { status: response.status, body: await response.json() as HealthBody };
}

/** POSTs JSON to /v1/operator/<path> and returns the status code and the JSON answer. */
export async function operatorPost(server: TestServer, path: 'init' | 'unseal', body: Record<string, unknown>): Promise<{ code: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}/v1/operator/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body) });
  return { code: response.status, json: await response.json() as Record<string, unknown> };
}

/**
 * Initialises a server over the operator API, which must answer 200; returns the root credentials it
 * answers once, and the whole answer (shares, threshold) for the test to judge.
 */
export async function initializeOverApi(server: TestServer, request: Record<string, unknown> = {}): Promise<{ credentials: Credentials;
  json: Record<string, unknown> }> {
  const { code, json } = await operatorPost(server, 'init', request);
  assert.equal(code, 200, JSON.stringify(json));
  return { credentials: { accessKeyId: String(json.AccessKeyId), secretAccessKey: String(json.SecretAccessKey) }, json };
}
