// Sealed privileged operations on the wire: the signed request a courier carries to a host, and the
// sealed result it carries back. Must never let a result be opened, or a request verified, on bytes other than the JCS bytes signed.
//
// Request file (JSON, what `trustplane privop request` prints):
//   { "Request": { "Version": 1, "Operation": "file.hash", "Parameters": { "path": "/etc/hosts" },
//                  "Target": { "HostId": "h-…" } | { "Class": "web/jp" },
//                  "NotBefore": ISO 8601, "NotAfter": ISO 8601, "Nonce": base64url (16–48 random bytes),
//                  "Requester": "alice@example", "ResultKey": base64url raw X25519 public key (32 bytes) },
//     "Signature": compact JWS, payload detached ("header..signature"): alg EdDSA (Ed25519) or ES256,
//                  kid = RFC 7638 thumbprint of the signer key, typ "trustplane-privop+jws";
//                  the payload is the RFC 8785 (JCS) bytes of "Request",
//     "Certificates"?: [PEM] (the signer's certificate first, then intermediates; it must carry the privop-signing EKU
//                  and chain to a CA the host trusts; the JWS is then verified with its key, kid is not used) }
//   Request digest = SHA-256(JCS(Request)); it names the request everywhere after.
//
// Sealed result file (JSON, what `trustplane privop deliver` writes), version 1:
//   { "Format": "trustplane-privop-result", "Version": 1,
//     "RequestDigest": base64url (32 bytes), "HostId": "h-…", "HostCertificate": PEM (the host's identity certificate),
//     "Enc": base64url HPKE encapsulated key (32 bytes), "Ciphertext": base64 HPKE ciphertext,
//     "Signature": base64 DER ECDSA P-256/SHA-256 by the host identity key over
//                  "trustplane-privop-result-v1\0" ‖ RequestDigest ‖ Enc ‖ SHA-256(Ciphertext) }
//   HPKE: RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, to Request.ResultKey,
//   info "trustplane-privop-result-v1", aad RequestDigest. The plaintext is JSON:
//   { "Version": 1, "RequestDigest", "HostId", "Operation", "StartedAt", "CompletedAt", "Result"? | "Error"?: { "Code", "Message" } }.
//   Version 1 is held in memory whole; hosts now write version 2 (streamed, see privop-result-stream.ts); `open` reads both.
import { z } from 'zod';
import {
  canonicalJson, certificatesFromPem, describeCertificate, hpkeOpen, hpkeSeal, importPublicKeyDer, sha256, signWithPemKey, verifyMessage,
  HPKE_ENCAPSULATED_KEY_LENGTH, HPKE_PUBLIC_KEY_LENGTH,
} from './crypto/index.ts';
import { UserError } from './errors.ts';
import { parseHostUri } from './fleet-wire.ts';

export const PRIVOP_REQUEST_VERSION = 1;
export const PRIVOP_RESULT_VERSION = 1;
export const PRIVOP_RESULT_FORMAT = 'trustplane-privop-result';
export const PRIVOP_JWS_TYPE = 'trustplane-privop+jws';
export const PRIVOP_RESULT_INFO = 'trustplane-privop-result-v1';
const RESULT_SIGNATURE_LABEL = Buffer.from('trustplane-privop-result-v1\0');
/** The longest validity window a request may ask for: it bounds how long hosts remember nonces. */
export const MAX_PRIVOP_WINDOW_SECONDS = 7 * 86_400;
export const MAX_PRIVOP_PARAMETERS = 32;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const isoTime = z.string().max(40).regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/, 'an ISO 8601 time with a zone')
  .refine((value) => Number.isFinite(Date.parse(value)), 'a valid time');
export const base64url = (minBytes: number, maxBytes: number) => z.string().regex(BASE64URL, 'base64url')
  .refine((value) => { const length = Buffer.from(value, 'base64url').length; return length >= minBytes && length <= maxBytes; },
    `base64url of ${minBytes === maxBytes ? minBytes : `${minBytes} to ${maxBytes}`} bytes`);

export const MAX_PRIVOP_PARAMETER_CHARS = 4096;
/** Bulk content (a parameter whose name ends in `Base64`, e.g. patch.apply's contentBase64): base64 of up to 16 MiB. */
export const MAX_PRIVOP_BASE64_PARAMETER_CHARS = Math.ceil((16 * 1024 * 1024) / 3) * 4;
export const privopParameterValue = z.union([z.string().max(MAX_PRIVOP_BASE64_PARAMETER_CHARS), z.number().finite()]);
const isBulkParameter = (name: string) => name.endsWith('Base64');

export const privopRequestSchema = z.object({
  Version: z.literal(PRIVOP_REQUEST_VERSION),
  Operation: z.string().max(64).regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+$/, 'an operation name like system.snapshot'),
  Parameters: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'a parameter name'), privopParameterValue)
    .refine((value) => Object.keys(value).length <= MAX_PRIVOP_PARAMETERS, `at most ${MAX_PRIVOP_PARAMETERS} parameters`)
    .refine((value) => Object.entries(value).every(([name, item]) => typeof item !== 'string' || item.length <= MAX_PRIVOP_PARAMETER_CHARS || isBulkParameter(name)),
      `string parameters of at most ${MAX_PRIVOP_PARAMETER_CHARS} characters (bulk content: a name ending in Base64)`)
    .refine((value) => Object.entries(value).filter(([name]) => isBulkParameter(name)).length <= 1, 'at most one bulk (…Base64) parameter'),
  Target: z.union([
    z.object({ HostId: z.string().regex(/^h-[0-9a-f]{1,64}$/, 'a host id (h-…)') }).strict(),
    z.object({ Class: z.string().min(1).max(512) }).strict(),
  ]),
  NotBefore: isoTime,
  NotAfter: isoTime,
  Nonce: base64url(16, 48),
  Requester: z.string().min(1).max(256),
  ResultKey: base64url(HPKE_PUBLIC_KEY_LENGTH, HPKE_PUBLIC_KEY_LENGTH),
}).strict();

export type PrivopRequest = z.infer<typeof privopRequestSchema>;
export type PrivopParameters = PrivopRequest['Parameters'];

export const privopRequestFileSchema = z.object({
  Request: z.unknown(),
  Signature: z.string().min(1).max(4096),
  Certificates: z.array(z.string().min(1).max(65_536)).max(8).optional(),
}).strict();

export interface PrivopRequestFile {
  Request: PrivopRequest;
  Signature: string;
  Certificates?: string[];
}

/** A request file checked for shape (not for its signature): the request, its JCS bytes and digest. */
export interface ParsedPrivopRequest {
  file: PrivopRequestFile;
  request: PrivopRequest;
  /** JCS of the Request exactly as received: what the signature must cover. */
  canonical: Buffer;
  digest: Buffer;
}

export const zodReason = (error: z.ZodError) => error.issues.map((issue) => `${issue.path.join('.') || '(file)'}: ${issue.message}`).join('; ');

/** Parses a request file (text or parsed JSON); a UserError (PrivopMalformedRequest) says what is wrong. */
export function parsePrivopRequestFile(input: unknown): ParsedPrivopRequest {
  let value = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    try {
      value = JSON.parse(input.toString());
    } catch {
      throw new UserError('PrivopMalformedRequest', 'The request file is not JSON.');
    }
  }
  const file = privopRequestFileSchema.safeParse(value);
  if (!file.success) throw new UserError('PrivopMalformedRequest', `The request file is malformed: ${zodReason(file.error)}.`);
  const request = privopRequestSchema.safeParse(file.data.Request);
  if (!request.success) throw new UserError('PrivopMalformedRequest', `The request is malformed: ${zodReason(request.error)}.`);
  // The signed bytes are those of the request as received, not of our parse of it.
  const canonical = canonicalRequestJson(file.data.Request);
  return { file: { ...file.data, Request: request.data }, request: request.data, canonical, digest: sha256(canonical) };
}

/** JCS bytes of part of a request file; what has no JSON form (a lone surrogate in a string) is a malformed request, not a crash. */
export function canonicalRequestJson(value: unknown): Buffer {
  try {
    return canonicalJson(value);
  } catch (error) {
    if (error instanceof TypeError) throw new UserError('PrivopMalformedRequest', `The request file cannot be canonicalized (RFC 8785): ${error.message}.`);
    throw error;
  }
}

export function privopRequestDigest(request: PrivopRequest): Buffer {
  return sha256(canonicalJson(request));
}

/** The result as the holder of the result key reads it. */
export interface PrivopResultPlaintext {
  Version: number;
  RequestDigest: string;
  HostId: string;
  Operation: string;
  StartedAt: string;
  CompletedAt: string;
  Result?: unknown;
  Error?: { Code: string; Message: string };
  /** Version 2: the bulk content that followed in the stream (e.g. process.dump's archive), described; `open` adds where it went. */
  Content?: PrivopResultContent;
}

export interface PrivopResultContent {
  Bytes: number;
  /** Hex SHA-256 of the content bytes. */
  Sha256: string;
  /** Added by `privop open` when the content is small and no --out was given. */
  Base64?: string;
  /** Added by `privop open`: the file the content was written to. */
  File?: string;
}

export interface SealedPrivopResult {
  Format: typeof PRIVOP_RESULT_FORMAT;
  Version: number;
  RequestDigest: string;
  HostId: string;
  HostCertificate: string;
  Enc: string;
  Ciphertext: string;
  Signature: string;
}

const sealedResultSchema = z.object({
  Format: z.literal(PRIVOP_RESULT_FORMAT),
  Version: z.literal(PRIVOP_RESULT_VERSION),
  RequestDigest: base64url(32, 32),
  HostId: z.string().regex(/^h-[0-9a-f]{1,64}$/),
  HostCertificate: z.string().min(1).max(65_536),
  Enc: base64url(HPKE_ENCAPSULATED_KEY_LENGTH, HPKE_ENCAPSULATED_KEY_LENGTH),
  Ciphertext: z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64'),
  Signature: z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64').max(256),
}).strict();

function resultSignedMessage(digest: Uint8Array, enc: Uint8Array, ciphertext: Uint8Array): Buffer {
  return Buffer.concat([RESULT_SIGNATURE_LABEL, digest, enc, sha256(ciphertext)]);
}

/** Seals a result to the request's result key and signs it with the host identity key (PKCS#8 PEM). */
export async function sealPrivopResult(options: { request: PrivopRequest; digest: Buffer; plaintext: PrivopResultPlaintext; hostId: string;
  hostCertificatePem: string; hostKeyPem: string }): Promise<Buffer> {
  const body = Buffer.from(JSON.stringify(options.plaintext));
  const sealed = await hpkeSeal(Buffer.from(options.request.ResultKey, 'base64url'), body, PRIVOP_RESULT_INFO, options.digest);
  body.fill(0);
  const signature = signWithPemKey(options.hostKeyPem, resultSignedMessage(options.digest, sealed.enc, sealed.ciphertext));
  const file: SealedPrivopResult = { Format: PRIVOP_RESULT_FORMAT, Version: PRIVOP_RESULT_VERSION, RequestDigest: options.digest.toString('base64url'),
    HostId: options.hostId, HostCertificate: options.hostCertificatePem, Enc: sealed.enc.toString('base64url'),
    Ciphertext: sealed.ciphertext.toString('base64'), Signature: signature.toString('base64') };
  return Buffer.from(`${JSON.stringify(file, null, 2)}\n`);
}

export const refuseResult = (code: string, message: string) => new UserError(code, message, 400);
const refuse = refuseResult;

/** Judges a result's host: its certificate must name `hostId`, its key must verify `signature` over `message`, and `checkCertificate` (if any) must accept it. */
export function checkHostSignature(options: { hostCertificatePem: string; hostId: string; message: Buffer; signature: Buffer;
  checkCertificate?: (certificateDer: Buffer) => string | undefined }): void {
  let certificateDer: Buffer;
  let described: ReturnType<typeof describeCertificate>;
  try {
    [certificateDer] = certificatesFromPem(options.hostCertificatePem);
    described = describeCertificate(certificateDer);
  } catch {
    throw refuse('PrivopBadHostSignature', 'The host certificate in the sealed result is unreadable.');
  }
  if (!described.uris.some((uri) => parseHostUri(uri)?.hostId === options.hostId)) {
    throw refuse('PrivopBadHostSignature', `The host certificate does not name host ${options.hostId}.`);
  }
  const signatureValid = verifyMessage({ kind: 'ecdsa', hash: 'sha256', encoding: 'der' }, importPublicKeyDer(described.publicKeyDer),
    options.message, options.signature);
  if (!signatureValid) throw refuse('PrivopBadHostSignature', `The host signature does not verify: the sealed result was altered or not made by ${options.hostId}.`);
  const certificateProblem = options.checkCertificate?.(certificateDer);
  if (certificateProblem) throw refuse('PrivopUntrustedHost', `The host certificate is not trusted: ${certificateProblem}.`);
}

/** Checks that a result (request `digest`, from `hostId`) answers `request` and that `publicKey` is the result key it names. */
export function checkRequestBinding(request: PrivopRequest, digest: Buffer, hostId: string, publicKey: Buffer): void {
  if (!privopRequestDigest(request).equals(digest)) throw refuse('PrivopRequestMismatch', 'The sealed result answers another request.');
  // A class request may be answered by any host (each signs for itself); a host request only by that host.
  if ('HostId' in request.Target && request.Target.HostId !== hostId) {
    throw refuse('PrivopRequestMismatch', `The sealed result comes from ${hostId}, not the host the request names.`);
  }
  if (!Buffer.from(request.ResultKey, 'base64url').equals(publicKey)) {
    throw refuse('PrivopWrongResultKey', 'The request names another result key than this one.');
  }
}

/**
 * Opens a sealed result: its shape, the host's signature (by the key of the certificate it carries, which must name
 * the host), the binding to `request` when given (digest, host, result key), then the HPKE decryption and the inner
 * binding. `checkCertificate` lets the caller judge the host certificate (e.g. against an account CA).
 */
export async function openPrivopResult(options: { sealed: Buffer; privateKey: Buffer; publicKey: Buffer; request?: PrivopRequest;
  checkCertificate?: (certificateDer: Buffer) => string | undefined }): Promise<{ plaintext: PrivopResultPlaintext; sealed: SealedPrivopResult }> {
  let value: unknown;
  try {
    value = JSON.parse(options.sealed.toString('utf8'));
  } catch {
    throw refuse('PrivopMalformedResult', 'The sealed result is not a trustplane privop result (not JSON).');
  }
  const parsed = sealedResultSchema.safeParse(value);
  if (!parsed.success) throw refuse('PrivopMalformedResult', `The sealed result is malformed: ${zodReason(parsed.error)}.`);
  const sealed = parsed.data as SealedPrivopResult;
  const digest = Buffer.from(sealed.RequestDigest, 'base64url');
  const enc = Buffer.from(sealed.Enc, 'base64url');
  const ciphertext = Buffer.from(sealed.Ciphertext, 'base64');

  checkHostSignature({ hostCertificatePem: sealed.HostCertificate, hostId: sealed.HostId, message: resultSignedMessage(digest, enc, ciphertext),
    signature: Buffer.from(sealed.Signature, 'base64'), checkCertificate: options.checkCertificate });
  if (options.request) checkRequestBinding(options.request, digest, sealed.HostId, options.publicKey);
  let body: Buffer;
  try {
    body = await hpkeOpen(options.privateKey, { enc, ciphertext }, PRIVOP_RESULT_INFO, digest);
  } catch {
    throw refuse('PrivopCannotDecrypt', 'This result key cannot open the sealed result (another key, or altered ciphertext).');
  }
  let plaintext: PrivopResultPlaintext;
  try {
    plaintext = JSON.parse(body.toString('utf8')) as PrivopResultPlaintext;
  } finally {
    body.fill(0);
  }
  if (plaintext.Version !== PRIVOP_RESULT_VERSION || plaintext.RequestDigest !== sealed.RequestDigest || plaintext.HostId !== sealed.HostId) {
    throw refuse('PrivopMalformedResult', 'The sealed result\'s content does not match its envelope.');
  }
  return { plaintext, sealed };
}

/** The subject of the server's campaign signer certificate (issued by the account's fleet CA): a host's "server" trust entry names it. */
export const PRIVOP_CAMPAIGN_SIGNER_SUBJECT = 'CN=trustplane campaigns';
