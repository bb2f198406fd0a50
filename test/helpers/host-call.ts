// Calls the agents' mutual-TLS listener as an enrolled host, with the identity in an agent's state
// directory: for tests that play a misbehaving agent (replayed, forged or foreign evidence).
import { request } from 'node:https';
import { AgentState } from '../../src/agent/state.ts';

export interface HostReply { status: number; body: Record<string, unknown> }

export async function hostCaller(stateDir: string): Promise<(path: string, body: unknown) => Promise<HostReply>> {
  const state = new AgentState(stateDir);
  const identity = state.identity();
  if (!identity) throw new Error(`${stateDir} holds no enrolment`);
  const { identityKeyPem } = state.privateKeys();
  const base = new URL(identity.ServerUrl);
  const info = await (await fetch(new URL('/v1/fleet/info', base))).json() as { FleetPort: number };
  return (path, body) => new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = request({ host: base.hostname, port: info.FleetPort, servername: identity.ServerName, cert: identity.Certificate, key: identityKeyPem,
      ca: identity.CaCertificate, minVersion: 'TLSv1.3', agent: false, method: 'POST', path,
      headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown> }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}
