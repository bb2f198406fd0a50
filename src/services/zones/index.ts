// The zone proxies' public entry point: configuration and the S3 proxy (PostgreSQL comes later).
// Must never export anything that hands out backing-store or key-service credentials.
export { loadZoneConfig, type ZoneProxyConfig } from './config.ts';
export { startZoneS3Proxy, type RunningZoneProxy } from './s3/server.ts';
