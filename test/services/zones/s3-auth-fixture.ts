// Test parts for S3 client authentication: a node:http server answering the decoded body's SHA-256 and length,
// an aws-chunked encoder built from the spec with node:crypto HMACs, and raw requests for what no SDK sends.
import { createHash, createHmac } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { authenticateS3Request, type AuthenticatedS3Request, type ClientSecrets } from '../../../src/services/zones/s3/auth/index.ts';
import { S3Error, s3ErrorXml } from '../../../src/services/zones/s3/errors.ts';

export const ACCESS_KEY_ID = 'AKIAZONECLIENT0001';
export const SECRET = 'zone-client-secret-0001';
export const REGION = 'us-east-1';

/** AWS's documented example (S3 API reference, "Transferring Payload in Multiple Chunks"). */
export const AWS_EXAMPLE = {
  accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
  secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  amzDate: '20130524T000000Z',
  scope: '20130524/us-east-1/s3/aws4_request',
  seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
  chunkSignatures: [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ],
  /** The same upload with a trailing CRC32C ("Including Trailing Headers" example). */
  trailer: {
    seedSignature: '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
    chunkSignatures: [
      'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
      '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
      '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992',
    ],
    checksum: 'sOO8/Q==',
    trailerSignature: 'd81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435',
  },
};

/** The AWS example's payload: 65 KiB of 'a', sent as a 64 KiB chunk, a 1 KiB chunk and the final empty chunk. */
export function awsExampleBody(chunkSignatures: readonly string[]): Buffer {
  const [first, second, last] = chunkSignatures;
  return Buffer.concat([
    Buffer.from(`10000;chunk-signature=${first}\r\n`), Buffer.alloc(65536, 'a'), Buffer.from('\r\n'),
    Buffer.from(`400;chunk-signature=${second}\r\n`), Buffer.alloc(1024, 'a'), Buffer.from('\r\n'),
    Buffer.from(`0;chunk-signature=${last}\r\n`),
  ]);
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The SigV4 signing key, derived independently of the code under test. */
export function signingKey(secret: string, dateStamp: string, region: string): Buffer {
  let key = createHmac('sha256', `AWS4${secret}`).update(dateStamp).digest();
  for (const part of [region, 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  return key;
}

export interface ChunkSigner {
  key: Buffer;
  amzDate: string;
  scope: string;
  previous: string;
}

/** Signs one chunk the way the S3 docs define it, chaining from (and updating) `signer.previous`. */
export function signChunk(signer: ChunkSigner, data: Uint8Array): string {
  const toSign = ['AWS4-HMAC-SHA256-PAYLOAD', signer.amzDate, signer.scope, signer.previous, sha256Hex(''), sha256Hex(data)].join('\n');
  signer.previous = createHmac('sha256', signer.key).update(toSign).digest('hex');
  return signer.previous;
}

/** Signs the trailing headers ("name:value\n" each), chaining from the final chunk's signature. */
export function signTrailer(signer: ChunkSigner, trailers: ReadonlyArray<readonly [string, string]>): string {
  const canonical = trailers.map(([name, value]) => `${name}:${value}\n`).join('');
  const toSign = ['AWS4-HMAC-SHA256-TRAILER', signer.amzDate, signer.scope, signer.previous, sha256Hex(canonical)].join('\n');
  return createHmac('sha256', signer.key).update(toSign).digest('hex');
}

/**
 * Frames `chunks` as aws-chunked: signed when `signer` is given, with trailing headers when `trailers`
 * is given (and an x-amz-trailer-signature when both are). Yields piece by piece, so a large body is
 * never held in memory.
 */
export function* encodeAwsChunked(chunks: Iterable<Uint8Array>, options: { signer?: ChunkSigner;
  trailers?: ReadonlyArray<readonly [string, string]> } = {}): Generator<Buffer> {
  const { signer, trailers } = options;
  const sizeLine = (data: Uint8Array) => Buffer.from(signer
    ? `${data.length.toString(16)};chunk-signature=${signChunk(signer, data)}\r\n` : `${data.length.toString(16)}\r\n`);
  for (const chunk of chunks) {
    if (chunk.length === 0) continue;
    yield sizeLine(chunk);
    yield Buffer.from(chunk);
    yield Buffer.from('\r\n');
  }
  yield sizeLine(new Uint8Array(0));
  let tail = '';
  if (trailers) {
    for (const [name, value] of trailers) tail += `${name}:${value}\r\n`;
    if (signer) tail += `x-amz-trailer-signature:${signTrailer(signer, trailers)}\r\n`;
  }
  yield Buffer.from(`${tail}\r\n`);
}

/** What the test server saw for one request. */
export interface ServerRecord {
  status: number;
  /** The S3 error code when refused. */
  code?: string;
  auth?: Pick<AuthenticatedS3Request, 'accessKeyId' | 'payloadSigning' | 'payloadLength' | 'contentEncoding' | 'checksumAlgorithm' | 'signedHeaders' | 'authentication'>;
  /** Decoded bytes the body delivered (also when it failed: never the whole payload then). */
  delivered: number;
  sha256?: string;
  md5Hex?: string;
  checksum?: { algorithm: string; value: string };
}

export interface AuthServer {
  url: string;
  port: number;
  records: ServerRecord[];
  /** Moves the server's clock (milliseconds added to the real time). */
  clockOffsetMs: number;
  /** Fixes the server's clock (for the AWS example's 2013 date). */
  fixedNow: Date | undefined;
  secrets: Map<string, string>;
  close(): Promise<void>;
}

/**
 * A node:http server that authenticates each request with authenticateS3Request, reads the whole body
 * through the verifying stream and answers the decoded body's SHA-256 and length (in x-test-body-sha256
 * and x-test-body-length, with an empty body as S3's PutObject has) with the ETag and x-amz-checksum-* a
 * real S3 would send, or the S3Error as XML.
 */
export async function startAuthServer(options: { region?: string } = {}): Promise<AuthServer> {
  const secrets = new Map<string, string>([[ACCESS_KEY_ID, SECRET], [AWS_EXAMPLE.accessKeyId, AWS_EXAMPLE.secret]]);
  const clientSecrets: ClientSecrets = { secretFor: (id) => (secrets.has(id) ? Buffer.from(secrets.get(id) as string) : undefined) };
  const state: AuthServer = {
    url: '', port: 0, records: [], clockOffsetMs: 0, fixedNow: undefined, secrets, close: async () => {},
  };
  const server: Server = createServer((request, response) => {
    void (async () => {
      const record: ServerRecord = { status: 0, delivered: 0 };
      state.records.push(record);
      try {
        const auth = await authenticateS3Request(request, {
          secrets: clientSecrets, region: options.region ?? REGION,
          now: () => state.fixedNow ?? new Date(Date.now() + state.clockOffsetMs),
        });
        record.auth = { accessKeyId: auth.accessKeyId, payloadSigning: auth.payloadSigning, payloadLength: auth.payloadLength,
          contentEncoding: auth.contentEncoding, checksumAlgorithm: auth.checksumAlgorithm, signedHeaders: auth.signedHeaders,
          authentication: auth.authentication };
        const hash = createHash('sha256');
        for await (const piece of auth.body as AsyncIterable<Buffer>) {
          record.delivered += piece.length;
          hash.update(piece);
        }
        record.sha256 = hash.digest('hex');
        record.md5Hex = auth.payloadMd5Hex();
        record.checksum = auth.verifiedChecksum();
        record.status = 200;
        const headers: Record<string, string> = { etag: `"${record.md5Hex}"`, 'x-test-body-sha256': record.sha256,
          'x-test-body-length': String(record.delivered) };
        if (record.checksum) headers[`x-amz-checksum-${record.checksum.algorithm.toLowerCase()}`] = record.checksum.value;
        response.writeHead(200, headers);
        response.end();
      } catch (error) {
        const s3Error = error instanceof S3Error ? error : new S3Error('InternalError', 'internal error');
        record.status = s3Error.status;
        record.code = s3Error.code;
        if (response.headersSent || response.destroyed) return;
        response.writeHead(s3Error.status, { 'content-type': 'application/xml', connection: 'close' });
        response.end(s3ErrorXml(s3Error, request.url ?? '/', 'test-request'));
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  state.close = () => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
  return state;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The S3 error code in an XML error body. */
  code?: string;
}

/**
 * Sends one request as given (headers verbatim, body from a buffer or an iterable of pieces). With
 * `abortAfter`, the connection is cut after that many body bytes, as a client that goes away would.
 */
export function sendRaw(url: string, input: { method: string; path: string; headers: Record<string, string>;
  body?: Buffer | Iterable<Buffer> | AsyncIterable<Buffer>; abortAfter?: number }): Promise<RawResponse> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const request = httpRequest({ host: target.hostname, port: target.port, method: input.method, path: input.path,
      headers: input.headers, setHost: !Object.keys(input.headers).some((name) => name.toLowerCase() === 'host') }, (response) => {
      const pieces: Buffer[] = [];
      response.on('data', (piece: Buffer) => pieces.push(piece));
      response.on('end', () => {
        const body = Buffer.concat(pieces).toString('utf8');
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, code: /<Code>([^<]+)<\/Code>/.exec(body)?.[1] });
      });
      response.on('error', reject);
    });
    request.on('error', reject);
    const body = input.body;
    if (body === undefined) { request.end(); return; }
    if (Buffer.isBuffer(body)) {
      if (input.abortAfter !== undefined) {
        request.write(body.subarray(0, input.abortAfter), () => request.destroy(new Error('client went away')));
        return;
      }
      request.end(body);
      return;
    }
    Readable.from(body).pipe(request);
  });
}

export function smithySigner(credentials: { accessKeyId: string; secretAccessKey: string } = { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
  region = REGION): SignatureV4 {
  return new SignatureV4({ credentials, region, service: 's3', sha256: Hash.bind(null, 'sha256'), uriEscapePath: false, applyChecksum: false });
}

/**
 * Signs a request with @smithy/signature-v4 (the SDK's own signer) and returns the headers to send
 * and the signature (the seed of an aws-chunked body).
 */
export async function signHeaders(url: string, input: { method: string; path: string; query?: Record<string, string>;
  headers: Record<string, string>; signingDate?: Date; signer?: SignatureV4; host?: string }): Promise<{ headers: Record<string, string>; signature: string; path: string }> {
  const target = new URL(url);
  const signer = input.signer ?? smithySigner();
  const signed = await signer.sign({
    method: input.method, protocol: 'http:', hostname: target.hostname, port: Number(target.port), path: input.path,
    query: input.query ?? {}, headers: { host: input.host ?? `${target.hostname}:${target.port}`, ...input.headers },
  }, { signingDate: input.signingDate ?? new Date() });
  const headers = signed.headers as Record<string, string>;
  const signature = /Signature=([0-9a-f]{64})/.exec(headers.authorization ?? headers.Authorization)?.[1] ?? '';
  const query = new URLSearchParams(input.query ?? {}).toString();
  return { headers, signature, path: query ? `${input.path}?${query}` : input.path };
}

/** A body of `size` bytes that differ piece by piece, generated as it is read (never held whole). */
export function* patternPieces(size: number, pieceSize = 64 * 1024): Generator<Buffer> {
  let produced = 0;
  for (let counter = 0; produced < size; counter += 1) {
    const length = Math.min(pieceSize, size - produced);
    const piece = Buffer.alloc(length, counter & 0xff);
    if (length >= 4) piece.writeUInt32BE(counter, 0);
    produced += length;
    yield piece;
  }
}
