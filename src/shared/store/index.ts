// The store's public surface: its interfaces, the SQLite implementations, record types.
// Must never be reached except through a service (routes do not touch storage).
export * from './types.ts';
export * from './fleet-types.ts';
export * from './attest-types.ts';
export * from './privop-types.ts';
export { SqliteStore, InvalidMarkerError } from './sqlite.ts';
export { SqliteFleetStore } from './sqlite-fleet.ts';
export { SqliteAttestStore } from './sqlite-attest.ts';
export { SqlitePrivopStore } from './sqlite-privop.ts';
export { SqliteAuditStore, NoAuditLogError } from './sqlite-audit.ts';
export * from './request-key-types.ts';
export { SqliteRequestKeyStore } from './sqlite-request-keys.ts';
