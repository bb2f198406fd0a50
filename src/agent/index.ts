// `trustplane agent`: enrols once (join token, or its TPM), then keeps this host's key ring current from the server's push
// and serves local applications on a Unix socket. Starts from its encrypted cache, so it serves
// while the server is down. Revoked: wipes its cache and identity and exits.
import { hostname } from 'node:os';
import { zeroize } from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { enroll, enrollWithTpm, FleetClient } from './fleet-client.ts';
import { AgentKeyRing } from './key-ring.ts';
import { AgentSocketApi } from './socket-api.ts';
import { AgentState } from './state.ts';
import { Attestor, configurationMeasurement } from './attestation.ts';
import { attestationOperations } from './attestation-socket.ts';
import { CertificateVerifier } from './certificate-verifier.ts';
import { HostCertificates } from './host-certificate.ts';
import { Tpm } from './tpm.ts';
import { PrivopExecutor } from './privops/executor.ts';
import { ProtectedResources } from './privops/protected-resources.ts';
import { privilegedOperations } from './privops/socket.ts';
import { PrivopRelayWorker } from './privops/relay.ts';
import { createOperationRegistry, hostOperations } from './privops/registry.ts';
import { loadPrivopTrust, withServerCampaigns } from './privops/trust.ts';
import { HostRequestKey } from './privops/request-key.ts';

export interface AgentOptions {
  server?: string;
  joinToken?: string;
  stateDir: string;
  socketPath: string;
  socketMode: number;
  name?: string;
  /** TCTI of the TPM to attest with (e.g. `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`); absent: software mode. */
  tpm?: string;
  /** Boot components to measure (files). */
  measure?: string[];
  /** The agent's own program file, measured with the boot components. */
  programPath?: string;
  /** Report operational parameters (ports, modules, executables, users) with evidence (default on). */
  operational?: boolean;
  /** The --privop-trust file: who may sign privileged-operation requests for this host; absent: none may. */
  privopTrust?: string;
  /** --privop-log-root: directories logs.collect may read besides /var/log (the host owner's choice, not the request's). */
  privopLogRoots?: string[];
}

export interface RunningAgent {
  hostId: string;
  /** Resolves when the agent stops: asked to, or revoked (then with the reason). */
  done: Promise<{ revoked?: string }>;
  stop(): Promise<void>;
}

export async function startAgent(options: AgentOptions, logger: Logger): Promise<RunningAgent> {
  const state = new AgentState(options.stateDir);
  state.prepare();
  // Read before anything else starts: a trust file that does not load stops the agent.
  const privopTrust = options.privopTrust ? await loadPrivopTrust(options.privopTrust) : undefined;
  const tpm = options.tpm ? new Tpm({ tcti: options.tpm }) : undefined;
  let identity = state.identity();
  if (!identity) {
    if (!options.server || (!options.joinToken && !tpm)) {
      throw new UserError('NotEnrolled', `${options.stateDir} holds no enrolment: pass --server URL and --join-token TOKEN, `
        + 'or --server URL and --tpm TCTI to enrol by the TPM (its endorsement key allowed in a class: trustplane class allow-ek).');
    }
    const name = options.name ?? hostname().replace(/[^\w.-]/g, '-').slice(0, 253);
    // A token, when given, decides; without one the TPM is the credential.
    identity = options.joinToken ? await enroll(state, options.server, options.joinToken, name)
      : await enrollWithTpm(state, options.server, tpm as Tpm, name);
    logger.info({ hostId: identity.HostId, by: options.joinToken ? 'join token' : 'TPM endorsement key' }, 'enrolled');
  } else if (options.server && new URL(options.server).origin !== new URL(identity.ServerUrl).origin) {
    throw new UserError('AlreadyEnrolled', `${options.stateDir} is enrolled with ${identity.ServerUrl}; use another --state to enrol elsewhere.`);
  }

  const ring = new AgentKeyRing();
  const cached = state.readCache(identity.HostId);
  if (cached) {
    try {
      ring.load(identity.HostId, cached);
    } finally {
      zeroize(cached);
    }
    logger.info({ keys: ring.size, revision: ring.revision }, 'key ring loaded from the local cache');
  }

  let resolveDone: (result: { revoked?: string }) => void = () => undefined;
  const done = new Promise<{ revoked?: string }>((resolve) => { resolveDone = resolve; });
  let api: AgentSocketApi | undefined;
  let stopped = false;
  let relay: PrivopRelayWorker | undefined;
  const client: FleetClient = new FleetClient({ state, ring, logger, identity, events: {
    onConnected: (connected) => {
      logger.info({ connected }, connected ? 'connected to the server' : 'disconnected from the server');
      // Registered on every connection (idempotent): the answer also brings the host's current classes.
      if (connected) void requestKey.register();
    },
    onRevoked: (reason) => {
      logger.error({ reason }, 'this host was revoked: wiping its key ring cache and identity');
      ring.wipe();
      state.wipe();
      void stop().then(() => resolveDone({ revoked: reason }));
    },
    onPrivop: (data) => relay?.announced(data),
  } });
  const call = (path: string, body: unknown) => client.call(path, body);
  const requestKey = new HostRequestKey({ state, call, logger, hostId: identity.HostId });
  await requestKey.ensure();
  // Certificates are checked against the account CA this host got at enrolment.
  const verifier = new CertificateVerifier({ call, anchorPem: identity.CaCertificate, logger });
  const certificates = new HostCertificates({ state, call, logger, hostId: identity.HostId, verifier });
  const attestor = new Attestor({ tpm, logger, operational: options.operational,
    journal: { load: () => state.readMeasurements(), save: (events) => state.writeMeasurements(events) }, call, onVerdict: (verdict) => certificates.onVerdict(verdict),
    measure: [...(options.programPath ? [options.programPath] : []), ...(options.measure ?? [])],
    // Only what hosts of one class share: reference values adopted from one host then hold for the others.
    selfMeasurements: configurationMeasurement({ server: new URL(identity.ServerUrl).origin, tpm: options.tpm !== undefined,
      measure: options.measure ?? [], socketMode: options.socketMode, operational: options.operational !== false }) });
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    attestor.stop();
    certificates.stop();
    relay?.stop();
    requestKey.stop();
    client.stop();
    await api?.close();
    ring.wipe();
  };
  // The "server" entry trusts campaign requests signed under this host's own account CA (known once enrolled).
  const privops = new PrivopExecutor({ state, trust: privopTrust && withServerCampaigns(privopTrust, identity.CaCertificate), logger, requestKey,
    registry: createOperationRegistry(hostOperations({ stateDir: state.dir, logRoots: options.privopLogRoots }),
      ProtectedResources.ofAgent({ stateDir: state.dir, trustFiles: privopTrust?.files })) });
  // Requests relayed by the server are judged by the same executor as the socket's.
  relay = new PrivopRelayWorker({ executor: privops, call, logger });
  api = new AgentSocketApi({ ring, logger, status: () => ({ HostId: client.identity.HostId, Revision: ring.revision,
    Connected: client.connected, CertificateExpiresAt: client.identity.CertificateExpiresAt, Keys: ring.describe(),
    Attestation: attestor.verdict, PrivopRequestKey: requestKey.status() }), operations: {
      ...attestationOperations({ call, tpm, certificates, verifier }),
      ...privilegedOperations(privops),
    } });
  await api.listen(options.socketPath, options.socketMode);
  void client.run().then(() => undefined, (error: unknown) => logger.error({ err: error }, 'fleet client stopped'));
  // Boot measurements are taken before the first challenge, so the event list starts at this start.
  await attestor.measureBoot();
  void attestor.run().then(() => undefined, (error: unknown) => logger.error({ err: error }, 'attestation stopped'));
  return {
    hostId: identity.HostId,
    done,
    stop: async () => { await stop(); resolveDone({}); },
  };
}
