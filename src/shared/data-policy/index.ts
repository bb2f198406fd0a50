// Data-policy detectors shared by the zone proxies (S3 now, PostgreSQL later): the public entry point, re-exports only.
// Must never export anything that returns or logs matched text.
export { compileDetectorPolicy, detectorPolicySchema, scanText, BUILTIN_DETECTOR_NAMES,
  type BuiltinDetectorName, type DataScannerFactory, type DetectorPolicy } from './lib/config.ts';
export { DataScanner, DEFAULT_MAX_MATCHES, DEFAULT_SCAN_STEP, type DataScannerOptions } from './lib/scanner.ts';
export { DEFAULT_CONTEXT_WINDOW, type Detector, type DetectorCandidate, type DetectorMatch } from './lib/detector.ts';
export { createPaymentCardDetector, isPaymentCardNumber, passesLuhn } from './lib/payment-card.ts';
export { createUsSsnDetector, isIssuableSsn } from './lib/us-ssn.ts';
export { createIbanDetector, isValidIban, IBAN_LENGTHS } from './lib/iban.ts';
export { createEmailDetector } from './lib/email.ts';
export { createPhoneDetector, type PhoneDetectorOptions } from './lib/phone.ts';
export { createCustomDetector, findUnsafePatternConstruct, type CustomDetectorDefinition } from './lib/custom.ts';
