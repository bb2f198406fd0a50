// Server configuration from flags and environment, validated at start-up.
// Must never carry secrets: credentials and unseal material live in files under the home.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DEFAULT_KEY_CACHE_ENTRIES, DEFAULT_KEY_CACHE_TTL_MS } from './crypto/index.ts';
import { UserError } from './errors.ts';
import { parseRateLimits, type RateLimits } from './http/rate-limit.ts';

export interface ServerConfig {
  home: string;
  host: string;
  port: number;
  dev: boolean;
  region: string;
  /** How often due rotations and deletions run. */
  scheduleIntervalMs: number;
  maxBodyBytes: number;
  rateLimits: RateLimits;
  /** Only for measuring what auditing costs (bench/policy): TRUSTPLANE_AUDIT=off. Never in production. */
  audit: boolean;
  seal: SealConfig;
  /** Unwrapped customer key versions kept in memory: how many, and for how long (0 disables the cache). */
  keyCache: { maxEntries: number; ttlMs: number };
  /** Background rewrap after a domain key rotation: records per transaction, pause between batches. */
  rewrap: { batchSize: number; pauseMs: number };
  /** The mutual-TLS listener host agents connect to (port 0: any free port, which enrolment tells agents). */
  fleet: { host: string; port: number; hostCertificateLifetimeMs: number };
  /** The verifier: the URL relying parties reach (EAR issuer; default the listen URL) and EK CA certificates (PEM files). */
  attestation: { publicUrl?: string; ekCaFiles: string[]; attestedCertificateLifetimeMs: number };
  /** The privileged-operation relay: the largest sealed result it keeps for a courier. */
  privops: { maxResultBytes: number };
}

export type SealConfig =
  | { kind: 'software' }
  /** The PIN is read at start-up from TRUSTPLANE_PKCS11_PIN or from pinFile, never from a flag. */
  | { kind: 'pkcs11'; libraryPath: string; tokenLabel: string; pinFile?: string };

/**
 * The PKCS#11 PIN from TRUSTPLANE_PKCS11_PIN (then removed from the environment, so nothing this
 * process starts inherits it) or from a file; never from a flag, which `ps` would show.
 */
export function readPkcs11Pin(pinFile: string | undefined): string | undefined {
  const fromEnv = process.env.TRUSTPLANE_PKCS11_PIN;
  delete process.env.TRUSTPLANE_PKCS11_PIN;
  if (fromEnv) return fromEnv;
  return pinFile ? readFileSync(pinFile, 'utf8').trim() : undefined;
}

export interface ServerFlags {
  home?: string; listen?: string; dev?: boolean; region?: string; scheduleIntervalSeconds?: string; rateLimit?: string;
  seal?: string; pkcs11Module?: string; pkcs11Token?: string; pkcs11PinFile?: string;
  keyCacheSize?: string; keyCacheTtl?: string; rewrapBatchSize?: string; rewrapPause?: string;
  fleetListen?: string; hostCertificateLifetime?: string;
  publicUrl?: string; ekCa?: string[]; attestedCertificateLifetime?: string;
  privopMaxResultBytes?: string;
}

/** `90`, `90s`, `15m`, `2h`, `7d` → seconds. */
export function parseDurationSeconds(text: string, flag: string): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!match) throw new UserError('ValidationException', `${flag} must be a number of seconds or like 15m, 2h, 7d; got '${text}'.`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

function numberFlag(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < min) throw new UserError('InvalidConfiguration', `${name} must be a number of at least ${min}, got '${value}'.`);
  return parsed;
}

export function sealConfig(options: Pick<ServerFlags, 'seal' | 'pkcs11Module' | 'pkcs11Token' | 'pkcs11PinFile' | 'dev'>): SealConfig {
  const kind = options.seal ?? process.env.TRUSTPLANE_SEAL ?? 'software';
  if (kind === 'software') return { kind };
  if (kind !== 'pkcs11') throw new UserError('InvalidConfiguration', `--seal must be software or pkcs11, got '${kind}'.`);
  if (options.dev) throw new UserError('InvalidConfiguration', '--dev auto-unseals a software module; it cannot be combined with --seal pkcs11.');
  const libraryPath = options.pkcs11Module ?? process.env.TRUSTPLANE_PKCS11_MODULE;
  const tokenLabel = options.pkcs11Token ?? process.env.TRUSTPLANE_PKCS11_TOKEN;
  if (!libraryPath) throw new UserError('InvalidConfiguration', '--seal pkcs11 needs --pkcs11-module PATH (the vendor library, e.g. /usr/lib/softhsm/libsofthsm2.so).');
  if (!tokenLabel) throw new UserError('InvalidConfiguration', '--seal pkcs11 needs --pkcs11-token LABEL.');
  const pinFile = options.pkcs11PinFile ?? process.env.TRUSTPLANE_PKCS11_PIN_FILE;
  if (!pinFile && !process.env.TRUSTPLANE_PKCS11_PIN) {
    throw new UserError('InvalidConfiguration', '--seal pkcs11 needs the token PIN in TRUSTPLANE_PKCS11_PIN or a file named by --pkcs11-pin-file.');
  }
  return { kind, libraryPath: resolve(libraryPath), tokenLabel, pinFile: pinFile ? resolve(pinFile) : undefined };
}

export const DEFAULT_LISTEN = '127.0.0.1:8200';
/** Agents' mutual-TLS listener: by default the next port after --listen's. */
const DEFAULT_HOST_CERTIFICATE_LIFETIME_SECONDS = 30 * 86400;
/** The database file the server keeps in its home; the audit CLI reads the same file. */
export const HOME_DATABASE_FILE = 'trustplane.db';
/** The running server's pid, removed at a clean stop. */
export const SERVER_PID_FILE = 'server.pid';
export const DEFAULT_REGION = 'us-east-1';

export function parseListen(listen: string, flag = '--listen'): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UserError('InvalidConfiguration', `${flag} must be HOST:PORT, got '${listen}'.`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

export function resolveHome(flag: string | undefined): string {
  return resolve(flag ?? process.env.TRUSTPLANE_HOME ?? '.trustplane');
}

export function serverConfig(options: ServerFlags): ServerConfig {
  const { host, port } = parseListen(options.listen ?? process.env.TRUSTPLANE_LISTEN ?? DEFAULT_LISTEN);
  const region = options.region ?? process.env.TRUSTPLANE_REGION ?? DEFAULT_REGION;
  if (!/^[a-z0-9-]{1,32}$/.test(region)) throw new UserError('InvalidConfiguration', `--region must look like us-east-1, got '${region}'.`);
  const interval = Number(options.scheduleIntervalSeconds ?? process.env.TRUSTPLANE_SCHEDULE_INTERVAL_SECONDS ?? 60);
  if (!Number.isFinite(interval) || interval <= 0) throw new UserError('InvalidConfiguration', 'The schedule interval must be a positive number of seconds.');
  return { home: resolveHome(options.home), host, port, dev: Boolean(options.dev), region,
    scheduleIntervalMs: interval * 1000, maxBodyBytes: 1024 * 1024,
    rateLimits: parseRateLimits(options.rateLimit ?? process.env.TRUSTPLANE_RATE_LIMIT),
    audit: process.env.TRUSTPLANE_AUDIT !== 'off', seal: sealConfig(options),
    keyCache: { maxEntries: numberFlag(options.keyCacheSize, '--key-cache-size', DEFAULT_KEY_CACHE_ENTRIES, 1),
      ttlMs: numberFlag(options.keyCacheTtl, '--key-cache-ttl', DEFAULT_KEY_CACHE_TTL_MS / 1000, 0) * 1000 },
    rewrap: { batchSize: numberFlag(options.rewrapBatchSize, '--rewrap-batch-size', 100, 1),
      pauseMs: numberFlag(options.rewrapPause, '--rewrap-pause', 0, 0) },
    fleet: fleetConfig(options, host, port), attestation: attestationConfig(options),
    privops: { maxResultBytes: numberFlag(options.privopMaxResultBytes, '--privop-max-result-bytes', 1024 ** 3, 1024) } };
}

function attestationConfig(options: ServerFlags): ServerConfig['attestation'] {
  const publicUrl = options.publicUrl ?? process.env.TRUSTPLANE_PUBLIC_URL;
  if (publicUrl !== undefined && !/^https?:\/\/[^/]+$/.test(publicUrl.replace(/\/$/, ''))) {
    throw new UserError('InvalidConfiguration', `--public-url must be like https://trust.example.com (scheme and host, no path); got '${publicUrl}'.`);
  }
  const lifetime = options.attestedCertificateLifetime === undefined ? 24 * 3600
    : parseDurationSeconds(options.attestedCertificateLifetime, '--attested-certificate-lifetime');
  if (lifetime < 60 || lifetime > 30 * 86400) throw new UserError('InvalidConfiguration', '--attested-certificate-lifetime must be between 60s and 30d.');
  return { publicUrl: publicUrl?.replace(/\/$/, ''), ekCaFiles: options.ekCa ?? [], attestedCertificateLifetimeMs: lifetime * 1000 };
}

function fleetConfig(options: ServerFlags, host: string, port: number): ServerConfig['fleet'] {
  const listen = options.fleetListen ?? process.env.TRUSTPLANE_FLEET_LISTEN;
  const fleet = listen ? parseListen(listen, '--fleet-listen') : { host, port: port === 0 ? 0 : port + 1 };
  const lifetime = options.hostCertificateLifetime === undefined ? DEFAULT_HOST_CERTIFICATE_LIFETIME_SECONDS
    : parseDurationSeconds(options.hostCertificateLifetime, '--host-certificate-lifetime');
  if (lifetime < 30 || lifetime > 397 * 86400) {
    throw new UserError('InvalidConfiguration', '--host-certificate-lifetime must be between 30s and 397d.');
  }
  return { ...fleet, hostCertificateLifetimeMs: lifetime * 1000 };
}
