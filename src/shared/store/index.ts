// The store's public surface: one interface, the SQLite implementation, record types.
// Must never be reached except through a service (routes do not touch storage).
export * from './types.ts';
export { SqliteStore, InvalidMarkerError, encodeMarker, decodeMarker } from './sqlite.ts';
