// Enrols many simulated hosts the way `trustplane agent` does (a P-256 identity key, an X25519 key
// ring key, and a proof binding both to the join token), so a bench can play them over mutual TLS.
// Must never send anything beyond loopback, nor keep a host's private key outside its TLS context.
import { generateKeyPairSync, sign } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { assertLoopback } from './signed-json-client.ts';
import { forEachBounded } from './concurrency.ts';
import { REQUEST_TIMEOUT_MS } from './settings.ts';

/** Enrolment is rate-limited per source address (50/s): a throttled enrolment waits about this long and tries again. */
const THROTTLED_RETRY_MS = 200;
const MAX_ENROLL_ATTEMPTS = 100;

export interface SimulatedEnrolment {
  hostId: string;
  name: string;
  /** The server name the agents' listener chooses the account's certificate and client CA by. */
  serverName: string;
  /** The host certificate and key, and the fleet CA, for mutual TLS. */
  tls: SecureContext;
}

export interface EnrolmentOptions {
  serverUrl: string;
  joinToken: string;
  count: number;
  namePrefix: string;
  agentVersion: string;
  concurrency: number;
  /**
   * Loopback source addresses to spread the enrolments over (127.0.0.1 to 127.0.0.N), as hosts of a
   * real fleet come from many addresses; the server's per-address limit applies to each of them.
   */
  sourceAddresses: number;
  onProgress?: (done: number) => void;
}

export interface EnrolmentResult {
  hosts: SimulatedEnrolment[];
  throttled: number;
  seconds: number;
}

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function postJson(url: URL, body: string, localAddress: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: url.hostname, port: Number(url.port), path: url.pathname, method: 'POST', localAddress, agent: false,
      timeout: REQUEST_TIMEOUT_MS, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch {
          reject(new Error(`enrolment answered HTTP ${response.statusCode} without JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error(`enrolment unanswered within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end(body);
  });
}

async function enrollOne(url: URL, options: EnrolmentOptions, name: string, localAddress: string, stats: { throttled: number }): Promise<SimulatedEnrolment> {
  const identity = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyRing = generateKeyPairSync('x25519');
  // The raw X25519 public key is the tail of its SubjectPublicKeyInfo.
  const hpkePublicKey = keyRing.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64');
  const proof = sign('sha256', Buffer.from(`trustplane-enroll-v1\n${options.joinToken}\n${hpkePublicKey}`), identity.privateKey);
  const body = JSON.stringify({ JoinToken: options.joinToken, PublicKey: identity.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
    HpkePublicKey: hpkePublicKey, Proof: proof.toString('base64'), Name: name, AgentVersion: options.agentVersion });
  for (let attempt = 1; attempt <= MAX_ENROLL_ATTEMPTS; attempt += 1) {
    const reply = await postJson(url, body, localAddress);
    if (reply.status === 200) {
      return { hostId: String(reply.body.HostId), name, serverName: String(reply.body.ServerName),
        tls: createSecureContext({ cert: String(reply.body.Certificate), key: identity.privateKey.export({ format: 'pem', type: 'pkcs8' }),
          ca: String(reply.body.CaCertificate), minVersion: 'TLSv1.3' }) };
    }
    if (reply.body.__type !== 'ThrottlingException') throw new Error(`enrolment failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    stats.throttled += 1;
    await delay(THROTTLED_RETRY_MS * (0.5 + Math.random()));
  }
  throw new Error(`enrolment still throttled after ${MAX_ENROLL_ATTEMPTS} attempts`);
}

/** Enrols `count` hosts with one join token; the result is in enrolment order (names `${namePrefix}${index}`). */
export async function enrollSimulatedHosts(options: EnrolmentOptions): Promise<EnrolmentResult> {
  const url = new URL('/v1/fleet/enroll', assertLoopback(options.serverUrl));
  const stats = { throttled: 0 };
  const hosts: SimulatedEnrolment[] = new Array(options.count);
  let done = 0;
  const started = performance.now();
  await forEachBounded(Array.from({ length: options.count }, (_, index) => index), options.concurrency, async (index) => {
    const localAddress = `127.0.0.${1 + (index % Math.max(1, Math.min(250, options.sourceAddresses)))}`;
    hosts[index] = await enrollOne(url, options, `${options.namePrefix}${index}`, localAddress, stats);
    done += 1;
    options.onProgress?.(done);
  });
  return { hosts, throttled: stats.throttled, seconds: (performance.now() - started) / 1000 };
}
