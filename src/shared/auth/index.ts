// Authentication: SigV4 verification and the directory of principals' access keys.
// Must never let a request reach a service without an authenticated Caller.
export { verifySigV4, deriveSigningKey, formatAmzDate, rfc3986Encode, type SignedHttpRequest, type SigV4Scope } from './sigv4.ts';
export { CredentialDirectory, type Caller, type IssuedAccessKey } from './credentials.ts';
