// AWS Signature Version 4 verification (KMS, IAM) and the pieces the S3 zone proxy composes into its own check.
// Must never compare signatures with ===, log a signature or secret, or accept a skewed clock.
import { constantTimeEqual, hmac, sha256Hex } from '../crypto/index.ts';
import { UserError } from '../errors.ts';

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256';
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

export interface SignedHttpRequest {
  method: string;
  /** The request target as sent: path and query, still percent-encoded. */
  url: string;
  /** Raw header list as node gives it: name, value, name, value ... */
  rawHeaders: string[];
  body: Buffer;
}

export interface SigV4Scope {
  accessKeyId: string;
  dateStamp: string;
  region: string;
  service: string;
}

export interface SigV4Options {
  /** Signing service names this endpoint answers for (e.g. kms, trustplane). */
  services: readonly string[];
  now: Date;
  /** Derives (or takes from cache) the signing key for a scope; undefined for an unknown access key. */
  signingKeyFor(scope: SigV4Scope): Promise<Buffer | undefined>;
  /** Headers that must be signed when present (beyond host and every x-amz-* header). */
  requiredSignedHeaders?: readonly string[];
  /** S3 signs the path encoded once; every other service encodes it twice. */
  singleEncodePath?: boolean;
}

export interface VerifiedSignature {
  scope: SigV4Scope;
  /** The signature (hex), for replay detection only: never log it. */
  signature: string;
  securityToken?: string;
  signedHeaders: string[];
}

const incomplete = (message: string) => new UserError('IncompleteSignatureException', message);
const invalidSignature = (message: string) => new UserError('InvalidSignatureException', message);

export function rfc3986Encode(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * The canonical URI of a path as sent. Each segment is decoded and re-encoded the RFC 3986 way, so
 * clients that escape more or fewer characters still agree; `//` and `.` segments are kept as they are.
 */
function canonicalUri(path: string, singleEncode: boolean): string {
  if (path === '' || path === '/') return '/';
  const segments = path.split('/').map((segment) => {
    const once = rfc3986Encode(safeDecode(segment));
    return singleEncode ? once : rfc3986Encode(once);
  });
  return segments.join('/');
}

/** The canonical query string: pairs encoded and sorted, X-Amz-Signature left out (a presigned URL carries it). */
function canonicalQuery(query: string): string {
  if (!query) return '';
  const pairs = query.split('&').filter(Boolean).map((part) => {
    const equals = part.indexOf('=');
    const name = equals < 0 ? part : part.slice(0, equals);
    const value = equals < 0 ? '' : part.slice(equals + 1);
    return [rfc3986Encode(safeDecode(name.replace(/\+/g, '%20'))), rfc3986Encode(safeDecode(value.replace(/\+/g, '%20')))] as const;
  }).filter(([name]) => name !== 'X-Amz-Signature');
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

/** Header values by lower-case name, each trimmed with inner whitespace folded, in the order sent. */
export function headerValues(rawHeaders: readonly string[]): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index].toLowerCase();
    const list = values.get(name) ?? [];
    list.push(rawHeaders[index + 1].trim().replace(/\s+/g, ' '));
    values.set(name, list);
  }
  return values;
}

export interface SigV4AuthorizationFields {
  credential: string;
  signedHeaders: string[];
  signature: string;
}

/**
 * Splits `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`. Undefined when the
 * header is not SigV4 at all; otherwise the fields found and the names of the ones missing.
 */
export function parseAuthorizationHeader(header: string):
  { fields: SigV4AuthorizationFields; missing: [] } | { fields?: undefined; missing: string[] } | undefined {
  if (!header.startsWith(`${SIGV4_ALGORITHM} `)) return undefined;
  const fields = new Map<string, string>();
  for (const part of header.slice(SIGV4_ALGORITHM.length + 1).split(',')) {
    const equals = part.indexOf('=');
    if (equals > 0) fields.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const missing = ['Credential', 'SignedHeaders', 'Signature'].filter((name) => !fields.get(name));
  if (missing.length > 0) return { missing };
  return { fields: { credential: fields.get('Credential') as string,
    signedHeaders: (fields.get('SignedHeaders') as string).split(';'), signature: fields.get('Signature') as string }, missing: [] };
}

/** `AKID/20130524/us-east-1/s3/aws4_request` as a scope; undefined when it has another shape. */
export function parseCredentialScope(credential: string): SigV4Scope | undefined {
  const parts = credential.split('/');
  if (parts.length !== 5 || parts[4] !== 'aws4_request' || !parts[0]) return undefined;
  const [accessKeyId, dateStamp, region, service] = parts;
  return { accessKeyId, dateStamp, region, service };
}

/** The scope line of a string to sign: `date/region/service/aws4_request`. */
export function credentialScope(scope: Omit<SigV4Scope, 'accessKeyId'>): string {
  return `${scope.dateStamp}/${scope.region}/${scope.service}/aws4_request`;
}

export function parseAmzDate(value: string): Date | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) return undefined;
  const [, year, month, day, hour, minute, second] = match.map(Number);
  const date = new Date(Date.UTC(year, month - 1, day, hour, minute, second));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function formatAmzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export interface CanonicalRequestInput {
  method: string;
  /** Path and query as sent, still percent-encoded. */
  url: string;
  headers: ReadonlyMap<string, readonly string[]>;
  signedHeaders: readonly string[];
  /** Hex SHA-256 of the payload, or the literal the client signed instead (UNSIGNED-PAYLOAD, STREAMING-...). */
  payloadHash: string;
  singleEncodePath: boolean;
}

export function canonicalRequest(input: CanonicalRequestInput): string {
  const queryStart = input.url.indexOf('?');
  const path = queryStart < 0 ? input.url : input.url.slice(0, queryStart);
  const query = queryStart < 0 ? '' : input.url.slice(queryStart + 1);
  const canonicalHeaders = input.signedHeaders.map((name) => `${name}:${(input.headers.get(name) ?? []).join(',')}\n`).join('');
  return [input.method, canonicalUri(path, input.singleEncodePath), canonicalQuery(query),
    canonicalHeaders, input.signedHeaders.join(';'), input.payloadHash].join('\n');
}

/** The request's string to sign: algorithm, timestamp, scope and the hash of the canonical request. */
export function stringToSign(amzDate: string, scope: Omit<SigV4Scope, 'accessKeyId'>, canonical: string): string {
  return [SIGV4_ALGORITHM, amzDate, credentialScope(scope), sha256Hex(canonical)].join('\n');
}

/** True when `provided` (hex as sent) is the HMAC of `toSign`; compared in constant time. */
export function signatureMatches(signingKey: Uint8Array, toSign: string, provided: string): boolean {
  const expected = hmac('sha256', signingKey, toSign);
  const given = /^[0-9a-f]{64}$/.test(provided) ? Buffer.from(provided, 'hex') : Buffer.alloc(0);
  return constantTimeEqual(expected, given);
}

/** Derives the SigV4 signing key: HMAC chain over date, region, service. */
export function deriveSigningKey(secret: Uint8Array, scope: Omit<SigV4Scope, 'accessKeyId'>): Buffer {
  const secretKey = Buffer.concat([Buffer.from('AWS4'), secret]);
  const dateKey = hmac('sha256', secretKey, scope.dateStamp);
  secretKey.fill(0);
  const regionKey = hmac('sha256', dateKey, scope.region);
  const serviceKey = hmac('sha256', regionKey, scope.service);
  const signingKey = hmac('sha256', serviceKey, 'aws4_request');
  dateKey.fill(0); regionKey.fill(0); serviceKey.fill(0);
  return signingKey;
}

/**
 * Verifies a header-signed request. Errors follow AWS: missing → MissingAuthenticationToken,
 * malformed → IncompleteSignature, unknown key → UnrecognizedClient, mismatch or skew → InvalidSignature.
 */
export async function verifySigV4(request: SignedHttpRequest, options: SigV4Options): Promise<VerifiedSignature> {
  const headers = headerValues(request.rawHeaders);
  const authorization = headers.get('authorization')?.[0];
  if (!authorization) throw new UserError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const parsedHeader = parseAuthorizationHeader(authorization);
  if (!parsedHeader) throw incomplete(`Authorization header requires the ${SIGV4_ALGORITHM} algorithm.`);
  if (!parsedHeader.fields) {
    throw incomplete(parsedHeader.missing.map((name) => `Authorization header requires '${name}' parameter.`).join(' '));
  }
  const parsed = parsedHeader.fields;

  const parsedScope = parseCredentialScope(parsed.credential);
  if (!parsedScope) {
    throw incomplete(`Credential should be scoped to a valid region, not '${parsed.credential.split('/')[2] ?? ''}'. `);
  }
  const { dateStamp, service } = parsedScope;
  if (!options.services.includes(service)) throw invalidSignature(`Credential should be scoped to correct service: '${options.services[0]}'. `);
  const signedHeaders = new Set(parsed.signedHeaders);
  if (!signedHeaders.has('host')) throw invalidSignature("'Host' must be a signed header.");
  // A header that changes meaning (the operation, the payload hash, the token) must be covered by
  // the signature, or a relay could turn a signed DescribeKey into a ScheduleKeyDeletion.
  const required = options.requiredSignedHeaders ?? [];
  for (const name of headers.keys()) {
    if (signedHeaders.has(name) || name === 'x-amz-signature') continue;
    if (name.startsWith('x-amz-') || required.includes(name)) {
      throw invalidSignature(`The header '${name}' must be signed.`);
    }
  }

  const amzDateText = headers.get('x-amz-date')?.[0];
  const requestDate = amzDateText ? parseAmzDate(amzDateText) : undefined;
  if (!amzDateText || !requestDate) {
    throw incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
  }
  if (dateStamp !== amzDateText.slice(0, 8)) {
    throw invalidSignature(`Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${dateStamp}' != '${amzDateText.slice(0, 8)}', from '${amzDateText}'.`);
  }
  const skew = requestDate.getTime() - options.now.getTime();
  if (skew < -MAX_CLOCK_SKEW_MS) {
    throw invalidSignature(`Signature expired: ${amzDateText} is now earlier than ${formatAmzDate(new Date(options.now.getTime() - MAX_CLOCK_SKEW_MS))} (${formatAmzDate(options.now)} - 5 min.)`);
  }
  if (skew > MAX_CLOCK_SKEW_MS) {
    throw invalidSignature(`Signature not yet current: ${amzDateText} is still later than ${formatAmzDate(new Date(options.now.getTime() + MAX_CLOCK_SKEW_MS))} (${formatAmzDate(options.now)} + 5 min.)`);
  }

  const scope = parsedScope;
  const signingKey = await options.signingKeyFor(scope);
  if (!signingKey) throw new UserError('UnrecognizedClientException', 'The security token included in the request is invalid.');

  const canonical = canonicalRequest({ method: request.method, url: request.url, headers, signedHeaders: parsed.signedHeaders,
    payloadHash: sha256Hex(request.body), singleEncodePath: options.singleEncodePath ?? false });
  if (!signatureMatches(signingKey, stringToSign(amzDateText, scope, canonical), parsed.signature)) {
    throw invalidSignature('The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.');
  }
  return { scope, signature: parsed.signature, securityToken: headers.get('x-amz-security-token')?.[0], signedHeaders: parsed.signedHeaders };
}
