// Wires the control plane: store, crypto module, credentials, authorisation, services, HTTP.
// Owns start-up and shutdown. Must never log credentials; prints dev credentials only to the terminal.
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Authorizer, CredentialDirectory } from './shared/auth/index.ts';
import { policyEngine } from './shared/auth/policy-engine.ts';
import { Keyring, pemCertificatesToDer, Pkcs11CryptoModule, randomBytes, SoftwareCryptoModule, zeroize } from './shared/crypto/index.ts';
import { HOME_DATABASE_FILE, readPkcs11Pin, SERVER_PID_FILE, type ServerConfig } from './shared/config.ts';
import { writeFileDurably } from './shared/fs.ts';
import { readSharedCredentials, writeSharedConfig, writeSharedCredentials, type SharedCredentials } from './shared/home-files.ts';
import { createAwsJsonEndpoint, RateLimiter, ReplayGuard, startHttpServer, type RunningHttpServer } from './shared/http/index.ts';
import type { Logger } from './shared/log.ts';
import { SqliteStore } from './shared/store/index.ts';
import { SqliteAuditStore } from './shared/store/sqlite-audit.ts';
import { SqliteFleetStore } from './shared/store/sqlite-fleet.ts';
import {
  createFleetHttpHandler, FleetPushHub, FleetService, fleetApiOperations, FLEET_TARGET_PREFIX, KeyRingDistributor, startAgentListener,
  type AccountCertificateIssuer, type RunningAgentListener,
} from './services/fleet/index.ts';
import {
  AttestationService, attestAgentRoutes, attestApiOperations, createCertificateStatusHandler, createVerifierDiscoveryHandler,
} from './services/attest/index.ts';
import { SqliteAttestStore } from './shared/store/sqlite-attest.ts';
import { SqlitePrivopStore } from './shared/store/sqlite-privop.ts';
import { SqliteRequestKeyStore } from './shared/store/sqlite-request-keys.ts';
import {
  CampaignService, HostRequestKeyService, PrivopService, privopAgentRoutes, privopApiOperations, PRIVOP_TARGET_PREFIX, requestKeyAgentRoutes, requestKeyApiOperations,
} from './services/privops/index.ts';
import { AuditLog, recordCurrentRequestInTransaction } from './shared/audit/index.ts';
import { keyResourceQuestion, KeyService, kmsOperations } from './services/kms/index.ts';
import { IdentityService, iamOperations, newAccountId } from './services/iam/index.ts';
import {
  createOperatorHttpHandler, DomainKeyRotation, OperatorService, operatorApiOperations, OPERATOR_TARGET_PREFIX, type SealBackend,
} from './services/operator/index.ts';

export interface RunningServer {
  url: string;
  home: string;
  accountId: string;
  region: string;
  /** Dev mode: the root principal's credentials (made at first start, read from the home after). */
  rootCredentials?: SharedCredentials;
  keyService: KeyService;
  operator: OperatorService;
  /** The port host agents connect to (mutual TLS). */
  fleetPort: number;
  stop(): Promise<void>;
}

const DEV_UNSEAL_FILE = 'dev-unseal.key';
/** Per source address, for the calls that carry no credentials. */
const UNAUTHENTICATED_CALLS_PER_SECOND = 50;
/** How often the verifier looks for silent hosts and due alerts. */
const ATTESTATION_TICK_MS = 1000;

/** Every certificate in the EK CA PEM files, as DER; a file that holds none is a configuration error. */
function readEkCaCertificates(files: string[]): Buffer[] {
  return files.flatMap((file) => {
    const certificates = pemCertificatesToDer(readFileSync(file, 'utf8'));
    if (certificates.length === 0) throw new Error(`--ek-ca ${file} holds no PEM certificate`);
    return certificates;
  });
}

/**
 * Dev mode keeps the root key in a 0600 file beside the data: convenient and clearly not for
 * production. The file is written durably before the module records anything, and an existing
 * file is always reused, so a crash during first start can never strand wrapped domain keys.
 */
async function devUnseal(module: SoftwareCryptoModule, home: string, logger: Logger): Promise<void> {
  const path = join(home, DEV_UNSEAL_FILE);
  let rootKey: Buffer;
  if (existsSync(path)) {
    rootKey = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  } else {
    if (module.status().initialized) throw new Error(`dev mode needs ${path}, the auto-unseal file written at first start`);
    rootKey = randomBytes(32);
    writeFileDurably(path, `${rootKey.toString('base64')}\n`);
  }
  try {
    if (!module.status().initialized) await module.initialize(rootKey);
    else await module.unseal(rootKey);
  } finally {
    zeroize(rootKey);
  }
  logger.warn({ path }, 'DEV MODE: crypto module unsealed from the auto-unseal file; never use dev mode in production');
}

/** A PKCS#11 module unseals itself by logging in to its token; a software module waits for shares. */
async function openSealBackend(config: ServerConfig, store: SqliteStore, logger: Logger): Promise<SealBackend> {
  if (config.seal.kind === 'software') {
    const module = new SoftwareCryptoModule(store);
    await module.load();
    return { kind: 'software', module };
  }
  const module = new Pkcs11CryptoModule({ store, libraryPath: config.seal.libraryPath, tokenLabel: config.seal.tokenLabel,
    pin: readPkcs11Pin(config.seal.pinFile) ?? '' });
  try {
    await module.open();
  } catch (error) {
    logger.error({ err: error }, 'the PKCS#11 token could not be opened: starting sealed');
  }
  return { kind: 'pkcs11', module };
}

export async function startServer(config: ServerConfig, logger: Logger): Promise<RunningServer> {
  mkdirSync(config.home, { recursive: true, mode: 0o700 });
  const store = SqliteStore.open(join(config.home, HOME_DATABASE_FILE));
  const region = await store.initMeta('region', config.region);
  if (region !== config.region) logger.warn({ region, requested: config.region }, 'keeping the region this home was created with');
  const accountId = await store.initMeta('account-id', newAccountId());

  const seal = await openSealBackend(config, store, logger);
  const { module } = seal;
  module.onSeal(() => {
    // A seal nobody asked for (the token went away) must show in the log, not only in status.
    const reason = module.status().sealedReason;
    if (reason) logger.error({ reason }, 'crypto module sealed itself: key operations fail until it is reachable again');
  });
  const keyring = new Keyring(module, { maxCachedKeys: config.keyCache.maxEntries, cacheTtlMs: config.keyCache.ttlMs });
  const credentials = new CredentialDirectory(store, keyring);
  const authorizer = new Authorizer(store, policyEngine);
  if (config.dev) {
    if (seal.kind !== 'software') throw new Error('dev mode needs the software crypto module');
    await devUnseal(seal.module, config.home, logger);
  } else if (module.status().sealed) {
    logger.warn(module.status().initialized ? 'crypto module is sealed: key operations fail until it is unsealed (trustplane operator unseal)'
      : 'crypto module is not initialised: run trustplane operator init');
  }

  // The audit log shares the store's connection, so a state change and its record commit together.
  const audit = config.audit ? await AuditLog.open({ store: new SqliteAuditStore(store.database), keyring, logger }) : undefined;
  if (audit) store.setAfterWriteHook(() => recordCurrentRequestInTransaction((draft) => audit.recordInTransaction(draft)));
  else logger.warn('TRUSTPLANE_AUDIT=off: requests are NOT audited (for benchmarks only)');

  const fleetStore = new SqliteFleetStore(store);
  const keyService = new KeyService({ store, keyring, authorizer, region, logger, stagedRotations: {
    isDistributed: (keyId) => fleetStore.isKeyDistributed(keyId),
    recordInTransaction: (record) => fleetStore.recordStagedRotationInTransaction(record),
  } });
  const identityService = new IdentityService({ store, credentials, authorizer, logger, resourceQuestions: [keyResourceQuestion(keyService)] });
  // Only dev mode makes root credentials at start (and keeps them in a file); otherwise operator init returns them once.
  const rootCredentials = config.dev
    ? await identityService.ensureManagementAccount(accountId, (issued) => writeSharedCredentials(config.home, issued))
      ?? readSharedCredentials(config.home) : undefined;
  const rotation = new DomainKeyRotation({ module, store, logger, batchSize: config.rewrap.batchSize, batchPauseMs: config.rewrap.pauseMs });

  let running = false;
  const runDueWork = async () => {
    if (running) return;
    running = true;
    try {
      await operator.retryLostToken();
      if (module.status().sealed) return;
      // Another server on this home may have rotated the domain key: wrap under the key it made active.
      await seal.module.refresh();
      await keyService.runDueWork();
      await fleetService.runDueWork();
      await identityService.runDueWork();
    } catch (error) {
      logger.error({ err: error }, 'scheduled work failed');
    } finally {
      running = false;
    }
  };
  const operator: OperatorService = new OperatorService({ seal, store, identity: identityService, authorizer, accountId, rotation, logger,
    onUnsealed: async () => { rotation.resume(); void runDueWork(); } });
  // Calls without credentials (init, unseal, status, enrolment) are limited per source address instead.
  const unauthenticatedLimiter = new RateLimiter({ cryptographic: 1, management: UNAUTHENTICATED_CALLS_PER_SECOND });
  const handleOperator = createOperatorHttpHandler({ service: operator, logger, audit, rateLimiter: unauthenticatedLimiter });
  let agentListener: RunningAgentListener | undefined;
  const fleetService: FleetService = new FleetService({ store: fleetStore, keys: keyService, keyring, authorizer, region, logger, audit,
    hostCertificateLifetimeMs: config.fleet.hostCertificateLifetimeMs, fleetPort: () => agentListener?.port,
    entitledKeys: (host) => distributor.entitledKeys(host), describeAttestation: (host) => attestation.describeHost(host),
    // Token-less enrolment: the fleet admits the host and issues its certificate; the verifier checks its TPM and keeps its vault.
    endorsement: { inspect: (keys) => attestation.inspectEndorsement(keys),
      attestsWithTpm: (accountId, className) => attestation.attestsWithTpm(accountId, className),
      makeCredential: (ekPublic, akName, secret) => attestation.makeEnrolmentCredential(ekPublic, akName, secret),
      adoptTpm: (host, keys) => attestation.adoptEnrolledTpm(host, keys) } });
  // Other services get certificates from the account's fleet CA through this; the CA key stays with the fleet service.
  const fleetIssuer: AccountCertificateIssuer = { issue: (accountId, input) => fleetService.issueWithAccountAuthority(accountId, input) };
  let publicUrl = config.attestation.publicUrl;
  const attestation = new AttestationService({ store: new SqliteAttestStore(store), fleet: fleetStore, keyring, authorizer, region, logger, audit,
    issuer: () => publicUrl ?? 'http://127.0.0.1', ekCaCertificates: readEkCaCertificates(config.attestation.ekCaFiles),
    // Attested host certificates and CRLs are signed by the account's fleet CA, which stays with the fleet service.
    authority: { ...fleetIssuer,
      signRevocationList: (accountId, input) => fleetService.signRevocationList(accountId, input) },
    attestedCertificateLifetimeMs: config.attestation.attestedCertificateLifetimeMs });
  // Hosts' privileged-operation request keys are certified by the account's fleet CA too.
  const requestKeys = new HostRequestKeyService({ store: new SqliteRequestKeyStore(store), authorizer, region, logger, audit,
    authority: fleetIssuer });
  const distributor = new KeyRingDistributor({ keys: store, fleet: fleetStore, keyring, gate: {
    context: (host) => attestation.releaseContext(host),
    // A policy that cannot be evaluated releases nothing (and says so), without holding back the host's other keys.
    keyAllowed: (keyId, host, conditionKeys) => keyService.releasableToHost(keyId, host, conditionKeys).catch((error: unknown) => {
      logger.error({ err: error, keyId, hostId: host.hostId }, 'key policy could not be evaluated for a host: key withheld');
      return false;
    }),
  } });
  const pushHub = new FleetPushHub({ store: fleetStore, distributor, logger });
  // The relay reaches hosts through the push hub's own event; a host that (re)connects hears of what waits for it.
  const privopStore = new SqlitePrivopStore(store);
  const privops = new PrivopService({ store: privopStore, fleet: fleetStore, keyring, authorizer, region, logger, audit,
    notifier: { notify: (hostId, data) => pushHub.notify(hostId, 'privop', data) }, maxResultBytes: config.privops.maxResultBytes });
  // The server signs campaign requests with a signer its account's fleet CA certifies (hosts trust it only if told to).
  const campaigns = new CampaignService({ relay: privops, store: privopStore, fleet: fleetStore, keyring, authorizer, region, logger, audit,
    authority: fleetIssuer });
  pushHub.onAttach((host) => {
    privops.announceTo(host).catch((error: unknown) => logger.error({ err: error, hostId: host.hostId }, 'relayed requests could not be announced'));
  });
  const handleVerifierDiscovery = createVerifierDiscoveryHandler(attestation);
  const handleCertificateStatus = createCertificateStatusHandler({ service: attestation, logger, rateLimiter: unauthenticatedLimiter });
  const handleFleetEnrolment = createFleetHttpHandler({ service: fleetService, logger, audit, rateLimiter: unauthenticatedLimiter });
  const handleApi = createAwsJsonEndpoint({
    signingServices: { TrentService: 'kms', TrustPlaneKms: 'kms', TrustPlaneIam: 'trustplane', [OPERATOR_TARGET_PREFIX]: 'trustplane',
      [FLEET_TARGET_PREFIX]: 'trustplane', [PRIVOP_TARGET_PREFIX]: 'trustplane' },
    operations: [...kmsOperations(keyService), ...iamOperations(identityService), ...operatorApiOperations(operator),
      ...fleetApiOperations(fleetService), ...attestApiOperations(attestation), ...privopApiOperations(privops, campaigns),
      ...requestKeyApiOperations(requestKeys)], credentials, logger,
    maxBodyBytes: config.maxBodyBytes, rateLimiter: new RateLimiter(config.rateLimits), replayGuard: new ReplayGuard(), audit,
  });

  const handler = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (request.method === 'GET' && (request.url === '/health' || request.url === '/v1/health')) {
      const health = await operator.health();
      response.writeHead(health.httpStatus, { 'content-type': 'application/json' });
      response.end(JSON.stringify(health.body));
      return;
    }
    if (await handleOperator(request, response)) return;
    if (await handleFleetEnrolment(request, response)) return;
    if (await handleVerifierDiscovery(request, response)) return;
    if (await handleCertificateStatus(request, response)) return;
    await handleApi(request, response);
  };
  const http: RunningHttpServer = await startHttpServer({ host: config.host, port: config.port, handler, logger });
  publicUrl ??= http.url.replace(/\/$/, '');
  await pushHub.start();
  await privops.start();
  const stopWaking = store.onCommit(() => pushHub.wake());
  try {
    agentListener = await startAgentListener({ host: config.fleet.host, port: config.fleet.port, service: fleetService, hub: pushHub, logger, audit,
      routes: [...attestAgentRoutes(attestation), ...privopAgentRoutes(privops), ...requestKeyAgentRoutes(requestKeys)] });
  } catch (error) {
    await http.close();
    throw error;
  }
  logger.info({ port: agentListener.port }, 'listening for host agents (mutual TLS)');
  writeSharedConfig(config.home, region, http.url);
  // Lets offline commands (operator migrate-seal) refuse to run under a live server.
  writeFileDurably(join(config.home, SERVER_PID_FILE), `${process.pid}\n`);

  rotation.resume();
  await runDueWork();
  const timer = setInterval(() => { void runDueWork(); }, config.scheduleIntervalMs);
  timer.unref();
  // Silence is measured in attestation intervals (seconds), not in the scheduler's minutes.
  let attesting = false;
  const attestationTimer = setInterval(() => {
    if (attesting || module.status().sealed) return;
    attesting = true;
    Promise.all([
      attestation.runDueWork().catch((error: unknown) => logger.error({ err: error }, 'attestation due work failed')),
      // The relay's tail (other replicas' submissions) and expiry run on the same one-second tick.
      privops.runDueWork().catch((error: unknown) => logger.error({ err: error }, 'privop relay due work failed')),
    ]).finally(() => { attesting = false; });
  }, ATTESTATION_TICK_MS);
  attestationTimer.unref();

  return {
    url: http.url, home: config.home, accountId, region, rootCredentials, keyService, operator, fleetPort: agentListener.port,
    async stop() {
      clearInterval(timer);
      clearInterval(attestationTimer);
      await attestation.flushSeen().catch((error: unknown) => logger.error({ err: error }, 'attestation times could not be written at shutdown'));
      try {
        stopWaking();
        await agentListener?.close();
        await http.close();
        await rotation.stop();
        // In-flight requests have recorded; flush, fsync and sign a final checkpoint before sealing.
        await audit?.close();
      } finally {
        // Whatever failed above, the keys leave memory.
        store.setAfterWriteHook(undefined);
        operator.sealNow('shutdown');
        if (seal.kind === 'pkcs11') seal.module.dispose();
        await store.close();
        rmSync(join(config.home, SERVER_PID_FILE), { force: true });
      }
    },
  };
}
