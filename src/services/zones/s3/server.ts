// The zone proxy's HTTP face: S3's REST API (path and virtual-host style), authenticated with the clients' SigV4.
// Must never answer before authenticating, show a stack trace, or forward a byte the signature checks have not passed.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import type { ZoneProxyConfig } from '../config.ts';
import { randomBytes } from '../../../shared/crypto/index.ts';
import { authenticateS3Request, checksumHeaderName, type AuthenticatedS3Request } from './auth/index.ts';
import { BackingZone } from './backing.ts';
import { resolveRangeHeader } from './domain/object-layout.ts';
import { S3Error, s3ErrorXml } from './errors.ts';
import { clientMetadataFrom, storedHeadersFrom, type ObjectView } from './object-metadata.ts';
import { collectBounded, ZoneObjects } from './objects.ts';
import { PolicyAudit } from './policy-audit.ts';
import { ZoneS3Service, checkBucketName, type Caller } from './service.ts';
import { parseCompleteMultipartUpload, parseDeleteObjects, xmlDocument } from './xml.ts';
import { ZoneKeys } from './zone-keys.ts';

const MAX_XML_BODY = 1024 * 1024;
const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024;
const ZONE_HEADER = 'x-trustplane-zone';

export interface RunningZoneProxy {
  url: string;
  port: number;
  close(): Promise<void>;
}

interface S3Request {
  method: string;
  bucket?: string;
  key?: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

/** Splits a request into bucket and key, path-style or virtual-host style. */
/** Query parameters an object request may carry; any other is a sub-resource (tagging, acl ...) we do not serve. */
const OBJECT_PARAMETERS = new Set(['uploadId', 'partNumber', 'uploads', 'x-id', 'response-content-type', 'response-content-language',
  'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding', 'max-parts', 'part-number-marker']);
const BUCKET_PARAMETERS = new Set(['list-type', 'prefix', 'delimiter', 'max-keys', 'continuation-token', 'start-after', 'encoding-type',
  'fetch-owner', 'marker', 'location', 'uploads', 'delete', 'x-id', 'key-marker', 'upload-id-marker', 'max-uploads']);

const BUCKET_WRITE_PARAMETERS = new Set(['x-id']);

function refuseSubresources(query: URLSearchParams, allowed: ReadonlySet<string>): void {
  for (const name of query.keys()) {
    if (!allowed.has(name) && !name.toLowerCase().startsWith('x-amz-')) {
      throw new S3Error('NotImplemented', `The zone proxy does not implement the ${name} sub-resource or parameter.`);
    }
  }
}

function route(request: IncomingMessage, hostnames: readonly string[]): S3Request {
  // The raw target, never a normalised URL: the signature covers the path as sent, so `a/../b` must stay a key
  // named `a/../b` rather than become `b`.
  const target = request.url ?? '/';
  const queryStart = target.indexOf('?');
  const rawPath = queryStart < 0 ? target : target.slice(0, queryStart);
  const query = new URLSearchParams(queryStart < 0 ? '' : target.slice(queryStart + 1));
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidRequest', 'The request target must be an absolute path.');
  const host = (request.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
  let bucket: string | undefined;
  let path = rawPath;
  const suffix = hostnames.find((name) => host.endsWith(`.${name}`));
  if (suffix) {
    bucket = host.slice(0, -(suffix.length + 1));
  } else {
    const match = /^\/([^/]+)(?:\/(.*))?$/s.exec(path);
    if (match) { bucket = decodePath(match[1]); path = match[2] === undefined ? '' : `/${match[2]}`; } else path = '';
  }
  const rawKey = path.replace(/^\//, '');
  const key = rawKey === '' ? undefined : decodePath(rawKey);
  if (bucket === '.' || bucket === '..') throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.');
  return { method: request.method ?? 'GET', bucket, key, query, headers: request.headers };
}

function decodePath(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new S3Error('InvalidArgument', 'The request path is not valid percent-encoding.');
  }
}

function header(request: S3Request, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function httpDate(date: Date): string {
  return date.toUTCString();
}

/** GET/HEAD/CopyObject preconditions, as S3 judges them (If-Match beats If-Unmodified-Since; If-None-Match beats If-Modified-Since). */
function checkConditions(request: S3Request, view: ObjectView, prefix = ''): 'ok' | 'not-modified' {
  const ifMatch = header(request, `${prefix}if-match`);
  const ifNoneMatch = header(request, `${prefix}if-none-match`);
  const ifModifiedSince = header(request, `${prefix}if-modified-since`);
  const ifUnmodifiedSince = header(request, `${prefix}if-unmodified-since`);
  const etags = (value: string) => value.split(',').map((item) => item.trim().replace(/^W\//, '').replace(/^"|"$/g, ''));
  const current = view.etag.replace(/^"|"$/g, '');
  const modified = Math.floor(view.lastModified.getTime() / 1000) * 1000;
  const failed = () => new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' });
  if (ifMatch !== undefined) {
    if (!etags(ifMatch).some((etag) => etag === '*' || etag === current)) throw failed();
  } else if (ifUnmodifiedSince !== undefined) {
    const since = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(since) && modified > since) throw failed();
  }
  if (ifNoneMatch !== undefined) {
    if (etags(ifNoneMatch).some((etag) => etag === '*' || etag === current)) {
      if (prefix) throw failed();
      return 'not-modified';
    }
  } else if (ifModifiedSince !== undefined) {
    const since = Date.parse(ifModifiedSince);
    if (!Number.isNaN(since) && modified <= since) {
      if (prefix) throw failed();
      return 'not-modified';
    }
  }
  return 'ok';
}

function objectHeaders(view: ObjectView): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': view.contentType, etag: view.etag, 'last-modified': httpDate(view.lastModified), 'accept-ranges': 'bytes',
  };
  for (const [name, value] of Object.entries(view.headers)) if (value !== undefined) headers[name] = value;
  for (const [name, value] of Object.entries(view.userMetadata)) headers[`x-amz-meta-${name}`] = value;
  return headers;
}

async function readXmlBody(auth: AuthenticatedS3Request): Promise<string> {
  return (await collectBounded(auth.body, MAX_XML_BODY,
    () => new S3Error('MalformedXML', 'The XML you provided is larger than this proxy reads (1 MiB).'))).toString('utf8');
}

function contentLength(auth: AuthenticatedS3Request): number {
  if (auth.payloadLength === undefined) throw new S3Error('MissingContentLength', 'You must provide the Content-Length HTTP header.');
  if (auth.payloadLength > MAX_SINGLE_PUT) throw new S3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size (5 GiB for one PUT; use multipart upload).');
  return auth.payloadLength;
}

function requestedZone(request: S3Request, auth: AuthenticatedS3Request, zones: ReadonlyMap<string, BackingZone>): string | undefined {
  const zone = header(request, ZONE_HEADER);
  if (zone === undefined) return undefined;
  // Placement is a security decision: an unsigned header could be added by anyone on the path.
  if (!auth.signedHeaders.includes(ZONE_HEADER)) throw new S3Error('AccessDenied', `The ${ZONE_HEADER} header must be signed.`);
  if (!zones.has(zone)) throw new S3Error('InvalidArgument', `${ZONE_HEADER} names no backing zone of this proxy: ${zone}.`, { ArgumentName: ZONE_HEADER });
  return zone;
}

class ZoneS3Proxy {
  readonly #config: ZoneProxyConfig;
  readonly #logger: Logger;
  readonly #zones: Map<string, BackingZone>;
  readonly #keys: ZoneKeys;
  readonly #audit: PolicyAudit;
  readonly #service: ZoneS3Service;
  readonly #secrets: Map<string, Buffer>;
  readonly #hostnames: string[];
  #server: Server | undefined;

  constructor(config: ZoneProxyConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#zones = new Map([...config.zones.values()].map((zone) => [zone.name, new BackingZone(zone)]));
    this.#keys = new ZoneKeys(config.kms, config.zone);
    this.#audit = new PolicyAudit(config.auditLog);
    this.#service = new ZoneS3Service(config, new ZoneObjects(config, this.#zones, this.#keys), this.#audit, logger);
    this.#secrets = new Map([...config.clients.entries()].map(([id, secret]) => [id, Buffer.from(secret, 'utf8')]));
    this.#hostnames = [...new Set(['localhost', config.host, ...config.hostnames])].filter((name) => /[a-z]/i.test(name));
  }

  async listen(): Promise<RunningZoneProxy> {
    const server = createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, (request, response) => { void this.#handle(request, response); });
    this.#server = server;
    await new Promise<void>((resolveListen, rejectListen) => {
      server.once('error', rejectListen);
      server.listen(this.#config.port, this.#config.host, () => { server.off('error', rejectListen); resolveListen(); });
    });
    const { port } = server.address() as AddressInfo;
    const host = this.#config.host.includes(':') ? `[${this.#config.host}]` : this.#config.host;
    return { url: `http://${host}:${port}`, port, close: () => this.close() };
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server) {
      server.closeIdleConnections();
      await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      server.closeAllConnections();
    }
    for (const zone of this.#zones.values()) zone.destroy();
    this.#keys.destroy();
    await this.#audit.close();
    for (const secret of this.#secrets.values()) secret.fill(0);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase();
    response.setHeader('x-amz-request-id', requestId);
    response.setHeader('server', 'trustplane-zone-proxy');
    const started = Date.now();
    let s3: S3Request | undefined;
    try {
      s3 = route(request, this.#hostnames);
      const auth = await authenticateS3Request(request, { secrets: { secretFor: (id) => this.#secrets.get(id) }, region: this.#config.region });
      await this.#dispatch(s3, auth, { accessKeyId: auth.accessKeyId }, response);
      this.#logger.info({ requestId, method: s3.method, bucket: s3.bucket, status: response.statusCode, ms: Date.now() - started }, 'request');
    } catch (error) {
      this.#fail(error, request, response, requestId, s3);
    }
  }

  #fail(error: unknown, request: IncomingMessage, response: ServerResponse, requestId: string, s3: S3Request | undefined): void {
    const s3Error = error instanceof S3Error ? error
      : new S3Error('InternalError', `We encountered an internal error. Please try again. (request ${requestId})`);
    if (!(error instanceof S3Error) || s3Error.status >= 500) {
      this.#logger.error({ requestId, err: error instanceof Error ? { name: error.name, message: error.message, stack: error.stack,
        cause: (error.cause as Error | undefined)?.message } : String(error) }, 'request failed');
    } else {
      this.#logger.info({ requestId, code: s3Error.code, method: request.method, bucket: s3?.bucket }, 'request refused');
    }
    // Whatever the client still sends is not read: the connection closes after the error.
    if (response.headersSent) {
      response.destroy(s3Error);
      return;
    }
    const body = request.method === 'HEAD' ? '' : s3ErrorXml(s3Error, s3?.key ? `/${s3.bucket}/${s3.key}` : s3?.bucket ? `/${s3.bucket}` : '/', requestId);
    response.writeHead(s3Error.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body),
      ...(request.complete ? {} : { connection: 'close' }) });
    response.end(body);
    if (!request.complete) request.resume();
  }

  #xml(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...headers });
    response.end(body);
  }

  #empty(response: ServerResponse, status: number, headers: Record<string, string> = {}): void {
    response.writeHead(status, { 'content-length': '0', ...headers });
    response.end();
  }

  async #drain(auth: AuthenticatedS3Request): Promise<void> {
    // Bodyless operations still verify their (empty) payload against the signature.
    for await (const chunk of auth.body) void chunk;
  }

  async #dispatch(request: S3Request, auth: AuthenticatedS3Request, caller: Caller, response: ServerResponse): Promise<void> {
    const { method, bucket, key, query } = request;
    const service = this.#service;
    if (!bucket) {
      if (method !== 'GET') throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
      await this.#drain(auth);
      const buckets = await service.listBuckets();
      this.#xml(response, 200, xmlDocument('ListAllMyBucketsResult', {
        Owner: { ID: 'trustplane', DisplayName: 'trustplane' },
        Buckets: { Bucket: buckets.map((entry) => ({ Name: entry.name, CreationDate: entry.created })) },
      }));
      return;
    }
    checkBucketName(bucket);
    if (key === undefined) {
      refuseSubresources(query, BUCKET_PARAMETERS);
      await this.#bucketOperation(request, auth, response, bucket);
      return;
    }
    refuseSubresources(query, OBJECT_PARAMETERS);
    if (method === 'PUT' && query.has('partNumber') && query.has('uploadId')) {
      if (header(request, 'x-amz-copy-source')) throw new S3Error('NotImplemented', 'UploadPartCopy is not supported by the zone proxy.');
      const etag = await service.uploadPart(bucket, key, query.get('uploadId') as string, Number(query.get('partNumber')), auth.body, contentLength(auth));
      this.#empty(response, 200, { etag, ...checksumHeaders(auth) });
      return;
    }
    if (method === 'PUT' && header(request, 'x-amz-copy-source')) {
      await this.#drain(auth);
      const source = parseCopySource(header(request, 'x-amz-copy-source') as string);
      const replace = header(request, 'x-amz-metadata-directive') === 'REPLACE';
      const outcome = await service.copyObject(caller, source, { bucket, key }, {
        replaceMetadata: replace ? { contentType: header(request, 'content-type') ?? 'application/octet-stream', userMetadata: clientMetadataFrom(request.headers),
          headers: storedHeadersFrom(request.headers) } : undefined,
        requestedZone: requestedZone(request, auth, this.#zones),
        conditions: (view) => { checkConditions(request, view, 'x-amz-copy-source-'); },
      });
      this.#xml(response, 200, xmlDocument('CopyObjectResult', { LastModified: outcome.lastModified, ETag: outcome.etag }), outcome.policyHeaders);
      return;
    }
    if (method === 'PUT') {
      await this.#checkWriteConditions(request, bucket, key);
      const outcome = await service.putObject(caller, bucket, key, { body: auth.body, length: contentLength(auth),
        contentType: header(request, 'content-type') ?? 'binary/octet-stream', userMetadata: clientMetadataFrom(request.headers),
        headers: storedHeadersFrom({ ...request.headers, 'content-encoding': auth.contentEncoding }), requestedZone: requestedZone(request, auth, this.#zones) });
      this.#empty(response, 200, { etag: outcome.etag, ...outcome.policyHeaders, ...checksumHeaders(auth) });
      return;
    }
    if (method === 'GET' && query.has('uploadId')) {
      await this.#drain(auth);
      const uploadId = query.get('uploadId') as string;
      const maxParts = integerParameter(query, 'max-parts', 1000, 0, 1000);
      const marker = integerParameter(query, 'part-number-marker', 0, 0, 10_000);
      const after = (await service.listParts(bucket, key, uploadId)).filter((part) => part.partNumber > marker);
      const page = after.slice(0, maxParts);
      const truncated = after.length > page.length;
      this.#xml(response, 200, xmlDocument('ListPartsResult', { Bucket: bucket, Key: key, UploadId: uploadId,
        PartNumberMarker: marker, NextPartNumberMarker: truncated ? page.at(-1)?.partNumber : undefined, MaxParts: maxParts, IsTruncated: truncated,
        Part: page.map((part) => ({ PartNumber: part.partNumber, LastModified: part.lastModified, ETag: part.etag, Size: part.size })) }));
      return;
    }
    if (method === 'GET' || method === 'HEAD') {
      await this.#drain(auth);
      const found = await service.headObject(bucket, key);
      if (checkConditions(request, found.view) === 'not-modified') {
        this.#empty(response, 304, { etag: found.view.etag, 'last-modified': httpDate(found.view.lastModified) });
        return;
      }
      const partNumber = query.get('partNumber');
      if (partNumber !== null && partNumber !== '1') throw new S3Error('InvalidArgument', 'The zone proxy serves partNumber=1 (the whole object) only.');
      const range = resolveRangeHeader(header(request, 'range'), found.view.size);
      const headers = objectHeaders(found.view);
      const length = range ? range.end - range.start + 1 : found.view.size;
      if (range) headers['content-range'] = `bytes ${range.start}-${range.end}/${found.view.size}`;
      headers['content-length'] = String(length);
      if (method === 'HEAD') { this.#empty(response, range ? 206 : 200, headers); return; }
      const body = await service.openObject(found, range);
      response.writeHead(range ? 206 : 200, headers);
      // A chunk that fails authentication mid-stream ends the response short of its Content-Length: the client
      // sees a broken transfer, never bytes that did not authenticate.
      await pipeline(body, response).catch((error: unknown) => {
        this.#logger.warn({ err: (error as Error).name, bucket }, 'object stream ended early');
        response.destroy();
      });
      return;
    }
    if (method === 'DELETE' && query.has('uploadId')) {
      await this.#drain(auth);
      await service.abortMultipartUpload(bucket, key, query.get('uploadId') as string);
      this.#empty(response, 204);
      return;
    }
    if (method === 'DELETE') {
      await this.#drain(auth);
      await service.deleteObject(bucket, key);
      this.#empty(response, 204);
      return;
    }
    if (method === 'POST' && query.has('uploads')) {
      await this.#drain(auth);
      const uploadId = await service.createMultipartUpload(caller, bucket, key, { contentType: header(request, 'content-type') ?? 'binary/octet-stream',
        userMetadata: clientMetadataFrom(request.headers), headers: storedHeadersFrom(request.headers), requestedZone: requestedZone(request, auth, this.#zones) });
      this.#xml(response, 200, xmlDocument('InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: uploadId }));
      return;
    }
    if (method === 'POST' && query.has('uploadId')) {
      const parts = parseCompleteMultipartUpload(await readXmlBody(auth));
      const outcome = await service.completeMultipartUpload(caller, bucket, key, query.get('uploadId') as string, parts);
      this.#xml(response, 200, xmlDocument('CompleteMultipartUploadResult', { Location: `/${bucket}/${key}`, Bucket: bucket, Key: key, ETag: outcome.etag }),
        outcome.policyHeaders);
      return;
    }
    throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
  }

  /** S3's conditional writes: If-None-Match: * refuses to replace an object, If-Match requires the current ETag. */
  async #checkWriteConditions(request: S3Request, bucket: string, key: string): Promise<void> {
    const ifNoneMatch = header(request, 'if-none-match');
    const ifMatch = header(request, 'if-match');
    if (ifNoneMatch === undefined && ifMatch === undefined) return;
    const current = await this.#service.headObject(bucket, key).then((found) => found.view, (error: unknown) => {
      if (error instanceof S3Error && error.code === 'NoSuchKey') return undefined;
      throw error;
    });
    const failed = () => new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: ifMatch !== undefined ? 'If-Match' : 'If-None-Match' });
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() === '*' && current) throw failed();
    if (ifMatch !== undefined && (!current || ifMatch.replace(/"/g, '').trim() !== current.etag.replace(/"/g, ''))) {
      if (!current) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
      throw failed();
    }
  }

  async #bucketOperation(request: S3Request, auth: AuthenticatedS3Request, response: ServerResponse, bucket: string): Promise<void> {
    const { method, query } = request;
    const service = this.#service;
    if (method === 'POST' && query.has('delete')) {
      const { keys, quiet } = parseDeleteObjects(await readXmlBody(auth));
      const results = await service.deleteObjects(bucket, keys);
      this.#xml(response, 200, xmlDocument('DeleteResult', {
        Deleted: quiet ? undefined : results.filter((entry) => !entry.error).map((entry) => ({ Key: entry.key })),
        Error: results.filter((entry) => entry.error).map((entry) => ({ Key: entry.key, Code: entry.error?.code, Message: entry.error?.message })),
      }));
      return;
    }
    await this.#drain(auth);
    if (method === 'PUT') {
      refuseSubresources(query, BUCKET_WRITE_PARAMETERS);
      await service.createBucket(bucket);
      this.#empty(response, 200, { location: `/${bucket}` });
      return;
    }
    if (method === 'DELETE') {
      refuseSubresources(query, BUCKET_WRITE_PARAMETERS);
      await service.deleteBucket(bucket);
      this.#empty(response, 204);
      return;
    }
    if (method === 'HEAD') {
      await service.headBucket(bucket);
      this.#empty(response, 200, { 'x-amz-bucket-region': this.#config.region ?? 'us-east-1' });
      return;
    }
    if (method !== 'GET') throw new S3Error('MethodNotAllowed', 'The specified method is not allowed against this resource.');
    if (query.has('location')) {
      await service.headBucket(bucket);
      const region = this.#config.region ?? 'us-east-1';
      this.#xml(response, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${region === 'us-east-1' ? '' : region}</LocationConstraint>`);
      return;
    }
    if (query.has('uploads')) {
      const uploads = await service.listMultipartUploads(bucket, query.get('prefix') ?? '');
      this.#xml(response, 200, xmlDocument('ListMultipartUploadsResult', { Bucket: bucket, IsTruncated: false, MaxUploads: 1000,
        Upload: uploads.map((upload) => ({ Key: upload.key, UploadId: upload.uploadId, Initiated: upload.initiated, StorageClass: 'STANDARD' })) }));
      return;
    }
    await this.#listObjects(request, response, bucket);
  }

  async #listObjects(request: S3Request, response: ServerResponse, bucket: string): Promise<void> {
    const { query } = request;
    const v2 = query.get('list-type') === '2';
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = integerParameter(query, 'max-keys', 1000, 0, 1000);
    const token = query.get('continuation-token');
    let startAfter = (v2 ? query.get('start-after') : query.get('marker')) ?? '';
    if (v2 && token) {
      const decoded = Buffer.from(token, 'base64url').toString('utf8');
      if (!decoded.startsWith('k:')) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
      startAfter = decoded.slice(2);
    }
    const listing = maxKeys === 0 ? { objects: [], commonPrefixes: [], truncated: false, last: undefined }
      : await this.#service.listObjects(bucket, { prefix, delimiter, maxKeys, startAfter });
    const encode = query.get('encoding-type') === 'url';
    const name = (text: string) => (encode ? encodeURIComponent(text).replace(/%2F/g, '/') : text);
    const contents = listing.objects.map((entry) => ({ Key: name(entry.key), LastModified: entry.lastModified, ETag: entry.etag, Size: entry.size, StorageClass: 'STANDARD' }));
    const prefixes = listing.commonPrefixes.map((entry) => ({ Prefix: name(entry) }));
    const common = { Name: bucket, Prefix: name(prefix), Delimiter: delimiter ? name(delimiter) : undefined, MaxKeys: maxKeys,
      EncodingType: encode ? 'url' : undefined, IsTruncated: listing.truncated };
    if (v2) {
      this.#xml(response, 200, xmlDocument('ListBucketResult', { ...common, KeyCount: contents.length + prefixes.length,
        ContinuationToken: token ?? undefined, StartAfter: query.get('start-after') ?? undefined,
        NextContinuationToken: listing.truncated && listing.last ? Buffer.from(`k:${listing.last}`, 'utf8').toString('base64url') : undefined,
        Contents: contents, CommonPrefixes: prefixes }));
    } else {
      this.#xml(response, 200, xmlDocument('ListBucketResult', { ...common, Marker: startAfter,
        NextMarker: listing.truncated && delimiter && listing.last ? listing.last : undefined, Contents: contents, CommonPrefixes: prefixes }));
    }
  }
}

function integerParameter(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const text = query.get(name);
  if (text === null) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min) throw new S3Error('InvalidArgument', `${name} must be an integer from ${min}.`, { ArgumentName: name });
  return Math.min(value, max);
}

function parseCopySource(text: string): { bucket: string; key: string } {
  const decoded = decodePath(text.split('?')[0]).replace(/^\//, '');
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw new S3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey.', { ArgumentName: 'x-amz-copy-source' });
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

function checksumHeaders(auth: AuthenticatedS3Request): Record<string, string> {
  const checksum = auth.verifiedChecksum();
  return checksum ? { [checksumHeaderName(checksum.algorithm)]: checksum.value } : {};
}

/** Starts the proxy: validates the zones' reachability lazily (a zone that is down fails its own requests only). */
export async function startZoneS3Proxy(config: ZoneProxyConfig, logger: Logger): Promise<RunningZoneProxy> {
  const proxy = new ZoneS3Proxy(config, logger);
  return proxy.listen();
}
