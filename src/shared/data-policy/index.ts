// Data-policy detectors shared by the zone proxies (S3 now, PostgreSQL later): the public entry point, re-exports only.
// Must never export anything that returns or logs matched text.
export { compileDetectorPolicy, scanText, BUILTIN_DETECTOR_NAMES, type DataScannerFactory } from './lib/config.ts';
export type { DataScanner } from './lib/scanner.ts';
export type { DetectorMatch } from './lib/detector.ts';
export { findUnsafePatternConstruct } from './lib/custom.ts';
