// Server configuration from flags and environment, validated at start-up.
// Must never carry secrets: credentials and unseal material live in files under the home.
import { resolve } from 'node:path';
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
}

export const DEFAULT_LISTEN = '127.0.0.1:8200';
/** The database file the server keeps in its home; the audit CLI reads the same file. */
export const HOME_DATABASE_FILE = 'trustplane.db';
export const DEFAULT_REGION = 'us-east-1';

export function parseListen(listen: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new UserError('InvalidConfiguration', `--listen must be HOST:PORT, got '${listen}'.`);
  return { host: match[1].replace(/^\[|\]$/g, ''), port };
}

export function resolveHome(flag: string | undefined): string {
  return resolve(flag ?? process.env.TRUSTPLANE_HOME ?? '.trustplane');
}

export function serverConfig(options: { home?: string; listen?: string; dev?: boolean; region?: string;
  scheduleIntervalSeconds?: string; rateLimit?: string }): ServerConfig {
  const { host, port } = parseListen(options.listen ?? process.env.TRUSTPLANE_LISTEN ?? DEFAULT_LISTEN);
  const region = options.region ?? process.env.TRUSTPLANE_REGION ?? DEFAULT_REGION;
  if (!/^[a-z0-9-]{1,32}$/.test(region)) throw new UserError('InvalidConfiguration', `--region must look like us-east-1, got '${region}'.`);
  const interval = Number(options.scheduleIntervalSeconds ?? process.env.TRUSTPLANE_SCHEDULE_INTERVAL_SECONDS ?? 60);
  if (!Number.isFinite(interval) || interval <= 0) throw new UserError('InvalidConfiguration', 'The schedule interval must be a positive number of seconds.');
  return { home: resolveHome(options.home), host, port, dev: Boolean(options.dev), region,
    scheduleIntervalMs: interval * 1000, maxBodyBytes: 1024 * 1024,
    rateLimits: parseRateLimits(options.rateLimit ?? process.env.TRUSTPLANE_RATE_LIMIT),
    audit: process.env.TRUSTPLANE_AUDIT !== 'off' };
}
