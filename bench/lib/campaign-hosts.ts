// Simulated hosts for the campaign bench: each is the agent's own fleet client, executor and relay worker run in this
// process (enrolled with a join token, its state in a directory of its own), without the socket API or attestation, so
// what a campaign exercises (push event, fetch over mutual TLS, verification, sealing, upload) is the agent's real code.
// Must never leave a host's stream open after stop(), nor talk to anything but the loopback server it was given.
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { enroll, FleetClient } from '../../src/agent/fleet-client.ts';
import { AgentKeyRing } from '../../src/agent/key-ring.ts';
import { PrivopExecutor } from '../../src/agent/privops/executor.ts';
import { createOperationRegistry, hostOperations } from '../../src/agent/privops/registry.ts';
import { PrivopRelayWorker } from '../../src/agent/privops/relay.ts';
import { withServerCampaigns, type PrivopTrust } from '../../src/agent/privops/trust.ts';
import { AgentState, type AgentIdentity } from '../../src/agent/state.ts';
import { UserError } from '../../src/shared/errors.ts';
import type { Logger } from '../../src/shared/log.ts';
import { assertLoopback } from './signed-json-client.ts';

/** Enrolment is limited per source address (50/s): a throttled host waits about this long and tries again. */
const THROTTLED_RETRY_MS = 250;
const MAX_ENROLL_ATTEMPTS = 200;

export interface CampaignHost {
  hostId: string;
  connected(): boolean;
  stop(): void;
}

async function enrollRetrying(state: AgentState, serverUrl: string, joinToken: string, name: string): Promise<AgentIdentity> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await enroll(state, serverUrl, joinToken, name);
    } catch (error) {
      const throttled = error instanceof UserError && (error.httpStatus === 429 || /Throttl/.test(error.code));
      if (!throttled || attempt >= MAX_ENROLL_ATTEMPTS) throw error;
      await delay(THROTTLED_RETRY_MS);
    }
  }
}

/** Enrols `count` hosts one after another (progress through `onEnrolled`) and starts each one's stream. */
export async function startCampaignHosts(options: { serverUrl: string; joinToken: string; count: number; dir: string; trust: PrivopTrust;
  logger: Logger; onEnrolled?: (done: number) => void }): Promise<CampaignHost[]> {
  assertLoopback(options.serverUrl);
  const hosts: CampaignHost[] = [];
  try {
    for (let index = 0; index < options.count; index += 1) {
      const state = new AgentState(join(options.dir, `host-${index}`));
      state.prepare();
      const identity = await enrollRetrying(state, options.serverUrl, options.joinToken, `bench-campaign-${index}`);
      const executor = new PrivopExecutor({ state, trust: withServerCampaigns(options.trust, identity.CaCertificate), logger: options.logger,
        registry: createOperationRegistry(hostOperations()) });
      let worker: PrivopRelayWorker | undefined;
      const client = new FleetClient({ state, ring: new AgentKeyRing(), logger: options.logger, identity, events: {
        onConnected: () => undefined, onRevoked: () => undefined, onPrivop: (data) => worker?.announced(data) } });
      worker = new PrivopRelayWorker({ executor, call: (path, body) => client.call(path, body), logger: options.logger });
      void client.run().catch((error: unknown) => options.logger.error({ err: error }, 'simulated host stopped'));
      hosts.push({ hostId: identity.HostId, connected: () => client.connected, stop: () => { worker?.stop(); client.stop(); } });
      options.onEnrolled?.(index + 1);
    }
  } catch (error) {
    for (const host of hosts) host.stop();
    throw error;
  }
  return hosts;
}
