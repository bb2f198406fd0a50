// Authenticates an S3 client request at the zone proxy: SigV4 header or presigned URL, plain or aws-chunked payload.
// Must never accept an unsigned x-amz-*/x-trustplane-* header, compare signatures with ===, or log secrets.
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import {
  SIGV4_ALGORITHM, canonicalRequest, credentialScope, deriveSigningKey, formatAmzDate, headerValues, parseAmzDate,
  parseAuthorizationHeader, parseCredentialScope, signatureMatches, stringToSign, type SigV4Scope,
} from '../../../../shared/auth/sigv4.ts';
import { zeroize } from '../../../../shared/crypto/index.ts';
import { S3Error } from '../errors.ts';
import { AwsChunkedDecoder } from './aws-chunked.ts';
import {
  CHECKSUM_ALGORITHMS, checksumAlgorithmOfHeader, checksumHeaderName, parseChecksumAlgorithm, parseChecksumValue,
  parseContentMd5, type ChecksumAlgorithm,
} from './checksums.ts';
import { createVerifiedBody, type PayloadChecks } from './verified-body.ts';

/** S3's limit on the difference between the request time and the server's clock. */
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
/** The longest a presigned URL may be valid: seven days. */
export const MAX_PRESIGNED_EXPIRES_SECONDS = 604_800;

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED_PAYLOAD = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_PAYLOAD_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_PAYLOAD_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';

/** The credentials S3 clients use with the proxy. */
export interface ClientSecrets {
  /** The secret access key's bytes, or undefined for an unknown key. Not modified or kept by the caller of this. */
  secretFor(accessKeyId: string): Uint8Array | undefined;
}

export type { ChecksumAlgorithm } from './checksums.ts';

/** How the payload was protected: its hash signed, not signed, or aws-chunked (signed chunks and/or a trailer). */
export type PayloadSigning = 'sha256' | 'unsigned' | 'streaming-signed' | 'streaming-signed-trailer' | 'streaming-unsigned-trailer';

export interface AuthenticatedS3Request {
  accessKeyId: string;
  /** How the request was signed. */
  authentication: 'header' | 'presigned';
  /** The region of the credential scope. */
  region: string;
  /** The time the client signed for. */
  signedAt: Date;
  /** Presigned URLs: when the URL stops being valid. */
  expiresAt: Date | undefined;
  signedHeaders: readonly string[];          // lower-case names covered by the signature
  payloadSigning: PayloadSigning;
  /** Payload length with framing removed: x-amz-decoded-content-length for aws-chunked, else Content-Length; undefined if unknown */
  payloadLength: number | undefined;
  /** Content-Encoding with aws-chunked removed (e.g. "gzip"); undefined when nothing is left. */
  contentEncoding: string | undefined;
  /** The checksum algorithm the client sent (in a header or announced for the trailer), known before the body is read. */
  checksumAlgorithm: ChecksumAlgorithm | undefined;
  /** The payload, aws-chunked framing removed. Verifies as bytes pass: chunk signatures, the signed payload hash
   *  (x-amz-content-sha256 hex), Content-MD5, x-amz-checksum-* (header or trailer), the decoded length. If any check
   *  fails it emits an S3Error instead of ending, and it NEVER releases the payload's last byte before every check
   *  passed: a consumer that forwards bytes as they come therefore never completes a bad upload downstream.
   *  The request is read only once the body is read. An empty payload has no last byte: wait for 'end'. */
  body: Readable;
  /** After body ended: the checksum the client sent and we verified (to echo back as x-amz-checksum-<alg>), if any. */
  verifiedChecksum(): { algorithm: ChecksumAlgorithm; value: string } | undefined;
  /** After body ended: MD5 of the decoded payload (hex), which the proxy uses as the object's ETag. Throws before. */
  payloadMd5Hex(): string;
}

export interface AuthenticateS3Options {
  secrets: ClientSecrets;
  /** The region clients must sign for; any region when absent. */
  region?: string;
  now?: () => Date;
  /** Headers that must be signed when present, beyond host, x-amz-* and x-trustplane-* (lower-case). */
  requiredSignedHeaders?: readonly string[];
}

interface ParsedAuth {
  authentication: 'header' | 'presigned';
  credential: string;
  signedHeaders: string[];
  signature: string;
  amzDate: string;
  payloadHash: string;
  /** Presigned: X-Amz-Expires in seconds. */
  expiresSeconds?: number;
}

const malformed = (message: string, fields: Record<string, string> = {}) =>
  new S3Error('AuthorizationHeaderMalformed', `The authorization header is malformed; ${message}`, fields);

/** Query parameters by name (decoded), every value kept, for reading X-Amz-* of a presigned URL. */
function queryParameters(url: string): Map<string, string[]> {
  const params = new Map<string, string[]>();
  const queryStart = url.indexOf('?');
  if (queryStart < 0) return params;
  for (const part of url.slice(queryStart + 1).split('&')) {
    if (!part) continue;
    const equals = part.indexOf('=');
    const name = decodeQueryPart(equals < 0 ? part : part.slice(0, equals));
    const value = decodeQueryPart(equals < 0 ? '' : part.slice(equals + 1));
    params.set(name, [...(params.get(name) ?? []), value]);
  }
  return params;
}

function decodeQueryPart(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, '%20'));
  } catch {
    return text;
  }
}

function single(headers: ReadonlyMap<string, readonly string[]>, name: string): string | undefined {
  const values = headers.get(name);
  // Repeated headers are signed joined by commas, so that is also the value they mean here.
  return values === undefined ? undefined : values.join(',');
}

function parseHeaderAuth(authorization: string, headers: ReadonlyMap<string, readonly string[]>): ParsedAuth {
  if (!authorization.startsWith(`${SIGV4_ALGORITHM} `)) {
    if (authorization.startsWith('AWS ')) throw new S3Error('AccessDenied', 'Signature Version 2 is not supported: sign requests with AWS Signature Version 4.');
    throw new S3Error('AccessDenied', `Unsupported authorization type: sign requests with ${SIGV4_ALGORITHM}.`);
  }
  const parsed = parseAuthorizationHeader(authorization);
  if (!parsed?.fields) throw malformed(`it requires the ${(parsed?.missing ?? []).join(', ')} parameter(s).`);
  let amzDate = single(headers, 'x-amz-date');
  if (amzDate === undefined) {
    // S3 also takes the HTTP Date header; the string to sign then carries it in ISO 8601 basic form.
    const date = single(headers, 'date');
    const parsedDate = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isNaN(parsedDate)) amzDate = formatAmzDate(new Date(parsedDate));
  }
  if (amzDate === undefined || !parseAmzDate(amzDate)) {
    throw new S3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header');
  }
  const payloadHash = single(headers, 'x-amz-content-sha256');
  if (payloadHash === undefined) throw new S3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  return { authentication: 'header', credential: parsed.fields.credential, signedHeaders: parsed.fields.signedHeaders,
    signature: parsed.fields.signature, amzDate, payloadHash };
}

const PRESIGN_PARAMETERS = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'];

function parsePresigned(query: ReadonlyMap<string, readonly string[]>, headers: ReadonlyMap<string, readonly string[]>): ParsedAuth {
  const value = (name: string): string => {
    const values = query.get(name);
    if (!values || values.length !== 1 || values[0] === '') {
      throw malformed(`query-string authentication version 4 requires exactly one each of the ${PRESIGN_PARAMETERS.join(', ')} parameters.`);
    }
    return values[0];
  };
  const algorithm = value('X-Amz-Algorithm');
  if (algorithm !== SIGV4_ALGORITHM) throw malformed(`X-Amz-Algorithm only supports "${SIGV4_ALGORITHM}".`);
  const amzDate = value('X-Amz-Date');
  if (!parseAmzDate(amzDate)) throw malformed('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'".');
  const expiresText = value('X-Amz-Expires');
  const expiresSeconds = /^\d{1,7}$/.test(expiresText) ? Number(expiresText) : Number.NaN;
  if (!(expiresSeconds >= 1 && expiresSeconds <= MAX_PRESIGNED_EXPIRES_SECONDS)) {
    throw malformed(`X-Amz-Expires must be between 1 and ${MAX_PRESIGNED_EXPIRES_SECONDS} seconds.`);
  }
  // S3 signs presigned requests with UNSIGNED-PAYLOAD unless the signer put a payload hash in the URL or a header.
  const hashParameter = [...query.keys()].find((name) => name.toLowerCase() === 'x-amz-content-sha256');
  const payloadHash = (hashParameter !== undefined ? query.get(hashParameter)?.[0] : undefined)
    ?? single(headers, 'x-amz-content-sha256') ?? UNSIGNED_PAYLOAD;
  return { authentication: 'presigned', credential: value('X-Amz-Credential'), signedHeaders: value('X-Amz-SignedHeaders').split(';'),
    signature: value('X-Amz-Signature'), amzDate, payloadHash, expiresSeconds };
}

function checkScope(auth: ParsedAuth, region: string | undefined): SigV4Scope {
  const scope = parseCredentialScope(auth.credential);
  if (!scope || !/^\d{8}$/.test(scope.dateStamp) || !scope.region) {
    throw malformed('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
  }
  if (scope.service !== 's3') throw malformed(`incorrect service "${scope.service}". This endpoint belongs to "s3".`);
  if (region !== undefined && scope.region !== region) {
    throw malformed(`the region '${scope.region}' is wrong; expecting '${region}'`, { Region: region });
  }
  if (scope.dateStamp !== auth.amzDate.slice(0, 8)) {
    throw malformed('Invalid credential date. Date is not the same as X-Amz-Date.');
  }
  return scope;
}

function checkSignedHeaders(auth: ParsedAuth, headers: ReadonlyMap<string, readonly string[]>, required: readonly string[]): void {
  if (auth.signedHeaders.some((name) => name === '' || name !== name.toLowerCase())) {
    throw malformed('SignedHeaders must be a list of lower-case header names.');
  }
  const signed = new Set(auth.signedHeaders);
  if (!signed.has('host')) throw malformed("'host' must be a signed header.");
  // A header that changes what the request does (its placement, its checksums, its metadata) must be
  // covered by the signature, or anyone on the path could add it to a signed request.
  const unsigned = [...headers.keys()].filter((name) => !signed.has(name) && name !== 'authorization'
    && (name.startsWith('x-amz-') || name.startsWith('x-trustplane-') || required.includes(name)));
  if (unsigned.length > 0) {
    throw new S3Error('AccessDenied', 'There were headers present in the request which were not signed', { HeadersNotSigned: unsigned.join(', ') });
  }
}

function checkTime(auth: ParsedAuth, now: Date): { signedAt: Date; expiresAt: Date | undefined } {
  const signedAt = parseAmzDate(auth.amzDate) as Date;
  const skewFields = { RequestTime: auth.amzDate, ServerTime: now.toISOString(), MaxAllowedSkewMilliseconds: String(MAX_CLOCK_SKEW_MS) };
  if (auth.authentication === 'header') {
    if (Math.abs(signedAt.getTime() - now.getTime()) > MAX_CLOCK_SKEW_MS) {
      throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', skewFields);
    }
    return { signedAt, expiresAt: undefined };
  }
  if (signedAt.getTime() - now.getTime() > MAX_CLOCK_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.', skewFields);
  }
  const expiresAt = new Date(signedAt.getTime() + (auth.expiresSeconds as number) * 1000);
  if (now.getTime() > expiresAt.getTime()) {
    throw new S3Error('AccessDenied', 'Request has expired', {
      'X-Amz-Expires': String(auth.expiresSeconds), Expires: expiresAt.toISOString(), ServerTime: now.toISOString() });
  }
  return { signedAt, expiresAt };
}

function payloadSigningOf(payloadHash: string, authentication: ParsedAuth['authentication']): PayloadSigning {
  if (/^[0-9a-fA-F]{64}$/.test(payloadHash)) return 'sha256';
  const streaming: Record<string, PayloadSigning> = {
    [UNSIGNED_PAYLOAD]: 'unsigned',
    [STREAMING_SIGNED_PAYLOAD]: 'streaming-signed',
    [STREAMING_SIGNED_PAYLOAD_TRAILER]: 'streaming-signed-trailer',
    [STREAMING_UNSIGNED_PAYLOAD_TRAILER]: 'streaming-unsigned-trailer',
  };
  const signing = Object.hasOwn(streaming, payloadHash) ? streaming[payloadHash] : undefined;
  if (signing === undefined) {
    throw new S3Error('InvalidArgument', `x-amz-content-sha256 must be ${UNSIGNED_PAYLOAD}, ${STREAMING_SIGNED_PAYLOAD}, `
      + `${STREAMING_SIGNED_PAYLOAD_TRAILER}, ${STREAMING_UNSIGNED_PAYLOAD_TRAILER}, or a valid sha256 value.`);
  }
  if (authentication === 'presigned' && signing !== 'unsigned') {
    throw new S3Error('InvalidRequest', 'A presigned request cannot carry an aws-chunked payload.');
  }
  return signing;
}

function parseLength(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,15}$/.test(value.trim())) throw new S3Error('InvalidArgument', `The ${name} header is not a valid length.`);
  return Number(value.trim());
}

/** Content-Encoding without aws-chunked, which is framing for this hop and never part of the object. */
function remainingContentEncoding(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const rest = value.split(',').map((token) => token.trim()).filter((token) => token !== '' && token.toLowerCase() !== 'aws-chunked');
  return rest.length > 0 ? rest.join(',') : undefined;
}

interface ChecksumPlan {
  algorithm: ChecksumAlgorithm;
  /** Undefined: the value comes in the trailer. */
  value: string | undefined;
}

function planChecksum(headers: ReadonlyMap<string, readonly string[]>, trailers: readonly string[]): ChecksumPlan | undefined {
  const inHeaders = CHECKSUM_ALGORITHMS.filter((algorithm) => headers.has(checksumHeaderName(algorithm)));
  const inTrailer = trailers.map((name) => checksumAlgorithmOfHeader(name));
  if (inTrailer.some((algorithm) => algorithm === undefined)) {
    throw new S3Error('InvalidRequest', 'The value specified in the x-amz-trailer header is not supported');
  }
  const all = [...inHeaders, ...(inTrailer as ChecksumAlgorithm[])];
  if (all.length > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  const announced = single(headers, 'x-amz-sdk-checksum-algorithm');
  if (announced !== undefined) {
    const algorithm = parseChecksumAlgorithm(announced);
    if (!algorithm) throw new S3Error('InvalidRequest', 'Value for x-amz-sdk-checksum-algorithm header is invalid.');
    if (all.length === 0) {
      throw new S3Error('InvalidRequest', 'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.');
    }
    if (all[0] !== algorithm) throw new S3Error('InvalidRequest', `The algorithm in x-amz-sdk-checksum-algorithm does not match the ${checksumHeaderName(all[0])} sent.`);
  }
  if (all.length === 0) return undefined;
  const algorithm = all[0];
  if (inHeaders.length === 1) {
    const value = single(headers, checksumHeaderName(algorithm)) as string;
    parseChecksumValue(algorithm, value);
    return { algorithm, value };
  }
  return { algorithm, value: undefined };
}

/**
 * Authenticates an S3 request (SigV4 header or presigned URL) whose body has not been read yet. Everything
 * that can be checked before the body is checked here; the rest is checked by `body` as it streams.
 * Every refusal is an S3Error.
 */
export async function authenticateS3Request(request: IncomingMessage, options: AuthenticateS3Options): Promise<AuthenticatedS3Request> {
  const method = request.method ?? 'GET';
  const url = request.url ?? '/';
  const headers = headerValues(request.rawHeaders);
  const now = (options.now ?? (() => new Date()))();

  const authorizations = headers.get('authorization') ?? [];
  const query = queryParameters(url);
  const presigned = ['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature'].some((name) => query.has(name));
  if (authorizations.length > 0 && presigned) {
    throw new S3Error('InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified');
  }
  let auth: ParsedAuth;
  if (authorizations.length > 1) throw malformed('only one Authorization header is allowed.');
  if (authorizations.length === 1) auth = parseHeaderAuth(authorizations[0], headers);
  else if (presigned) auth = parsePresigned(query, headers);
  else if (query.has('Signature') || query.has('AWSAccessKeyId')) {
    throw new S3Error('AccessDenied', 'Signature Version 2 is not supported: sign requests with AWS Signature Version 4.');
  } else {
    throw new S3Error('AccessDenied', 'Anonymous access is not allowed: sign the request with AWS Signature Version 4.');
  }

  const scope = checkScope(auth, options.region);
  checkSignedHeaders(auth, headers, options.requiredSignedHeaders ?? []);
  const { signedAt, expiresAt } = checkTime(auth, now);
  const payloadSigning = payloadSigningOf(auth.payloadHash, auth.authentication);

  const secret = options.secrets.secretFor(scope.accessKeyId);
  if (!secret) {
    throw new S3Error('InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.', { AWSAccessKeyId: scope.accessKeyId });
  }
  const signingKey = deriveSigningKey(secret, scope);
  const streaming = payloadSigning.startsWith('streaming-');
  try {
    const canonical = canonicalRequest({ method, url, headers, signedHeaders: auth.signedHeaders, payloadHash: auth.payloadHash, singleEncodePath: true });
    if (!signatureMatches(signingKey, stringToSign(auth.amzDate, scope, canonical), auth.signature)) {
      throw new S3Error('SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
        { AWSAccessKeyId: scope.accessKeyId });
    }
    const trailerHeader = single(headers, 'x-amz-trailer');
    const trailers = trailerHeader === undefined ? []
      : trailerHeader.split(',').map((name) => name.trim().toLowerCase()).filter((name) => name !== '');
    const withTrailer = payloadSigning === 'streaming-signed-trailer' || payloadSigning === 'streaming-unsigned-trailer';
    if (withTrailer && trailers.length === 0) throw new S3Error('InvalidRequest', `${auth.payloadHash} requires the x-amz-trailer header.`);
    if (!withTrailer && trailerHeader !== undefined) throw new S3Error('InvalidRequest', 'x-amz-trailer is only allowed with a STREAMING-...-TRAILER payload.');
    const checksum = planChecksum(headers, trailers);
    const md5Header = single(headers, 'content-md5');
    const contentMd5 = md5Header === undefined ? undefined : parseContentMd5(md5Header);

    const contentLength = parseLength(single(headers, 'content-length'), 'Content-Length');
    const payloadLength = streaming ? parseLength(single(headers, 'x-amz-decoded-content-length'), 'x-amz-decoded-content-length') : contentLength;
    const contentEncoding = streaming ? remainingContentEncoding(single(headers, 'content-encoding')) : single(headers, 'content-encoding');

    const checks: PayloadChecks = { contentMd5, checksum, length: payloadLength };
    if (payloadSigning === 'sha256') checks.sha256Hex = auth.payloadHash.toLowerCase();
    if (streaming) {
      const signed = payloadSigning === 'streaming-signed' || payloadSigning === 'streaming-signed-trailer';
      checks.decoder = new AwsChunkedDecoder({
        trailers, decodedLength: payloadLength, signedTrailer: payloadSigning === 'streaming-signed-trailer',
        signing: signed ? { signingKey, amzDate: auth.amzDate, scope: credentialScope(scope), seedSignature: auth.signature.toLowerCase() } : undefined,
      });
    }
    // Only signed chunks need the signing key after this point; it is zeroed when the body is done with.
    const keepKey = payloadSigning === 'streaming-signed' || payloadSigning === 'streaming-signed-trailer';
    const verified = createVerifiedBody(request, checks, () => zeroize(signingKey));
    if (!keepKey) zeroize(signingKey);
    return {
      accessKeyId: scope.accessKeyId,
      authentication: auth.authentication,
      region: scope.region,
      signedAt,
      expiresAt,
      signedHeaders: Object.freeze([...auth.signedHeaders]),
      payloadSigning,
      payloadLength,
      contentEncoding,
      checksumAlgorithm: checksum?.algorithm,
      body: verified.body,
      verifiedChecksum: () => verified.result()?.checksum,
      payloadMd5Hex: () => {
        const result = verified.result();
        if (!result) throw new Error('payloadMd5Hex() is known only after the body ended');
        return result.md5Hex;
      },
    };
  } catch (error) {
    zeroize(signingKey);
    throw error;
  }
}
