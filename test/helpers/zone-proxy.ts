// Starts the whole S3 zone stack for end-to-end tests: a dev key service with the zone's keys, two s3rver backing
// zones (eu, us), a zone.yaml, and `trustplane proxy s3` itself; clients for all of it. Must never leave a process or temp dir behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import * as nodeCrypto from 'node:crypto';
import http from 'node:http';
import type { Readable } from 'node:stream';
import { GetObjectCommand, S3Client, type GetObjectCommandInput, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest, HttpResponse } from '@smithy/protocol-http';
import type { MiddlewareStack } from '@smithy/types';
import { Hash } from '@smithy/hash-node';
import { CreateAliasCommand, CreateKeyCommand, type KMSClient } from '@aws-sdk/client-kms';
import { stringify as stringifyYaml } from 'yaml';
import { run, type RunResult } from './exec.ts';
import { locateAwsCli, type AwsCliLocation } from './aws-cli.ts';
import { kmsClient } from './kms-client.ts';
import { makeTempDir, startTestServer, trustplaneBin, type TestServer } from './server.ts';
import { startS3rver, type S3rverHandle } from './s3rver.ts';

export { locateAwsCli, type AwsCliLocation };

export type ZoneName = 'eu' | 'us';
export const ZONE_NAMES: readonly ZoneName[] = ['eu', 'us'];
export const READY_LINE = /trustplane S3 zone proxy listening on (http:\/\/\S+) \(zone (\S+)\)/;
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** One policy rule as zone.yaml spells it. */
export interface PolicyRuleConfig {
  name: string;
  match?: { bucket?: string; prefix?: string; contentType?: string; detectors?: string[] };
  action: string | string[];
  keySpec?: 'AES_128' | 'AES_256';
}

export interface ZoneStackOptions {
  /** Policy rules, in order (default none). */
  policies?: PolicyRuleConfig[];
  /** Placement per client bucket, e.g. { archive: { zone: 'us' } }. */
  buckets?: Record<string, { zone: ZoneName }>;
  /** Hash object names in a backing zone (default false for both). */
  hashNames?: Partial<Record<ZoneName, boolean>>;
  /** Backing bucket prefix per zone (default "eu-" and "us-"). */
  bucketPrefix?: Partial<Record<ZoneName, string>>;
  quarantine?: { bucket: string; zone?: ZoneName };
  evidence?: { bucket: string; zone?: ZoneName };
  /** zone.yaml's `detectors` (tuning and custom detectors). */
  detectors?: Record<string, unknown>;
  /** Plaintext bytes per encrypted chunk (the proxy's default when absent). */
  chunkSize?: number;
  /** The region clients sign for; default us-east-1; null leaves it out of zone.yaml (any region accepted). */
  region?: string | null;
  defaultZone?: ZoneName;
  /** Whether zone.yaml sets an audit log (default true). */
  auditLog?: boolean;
  /** Anything else for zone.yaml's top level (overrides what the stack writes). */
  extraConfig?: Record<string, unknown>;
}

export interface AwsRunOptions {
  credentials?: Credentials;
  region?: string;
  cwd?: string;
  timeoutMs?: number;
  /** Default: the proxy; pass a backing zone's endpoint to talk to it directly. */
  endpoint?: string;
}

export interface ZoneStack {
  /** The proxy's base URL, http://127.0.0.1:PORT, parsed from its ready line. */
  readonly endpoint: string;
  /** The region clients sign for. */
  readonly region: string;
  /** The S3 client credentials the proxy accepts (listed under `clients` in zone.yaml). */
  readonly clientCredentials: Credentials;
  /** The key service and the ids of the zone's keys there. */
  readonly keyService: TestServer;
  readonly dataKeyId: string;
  readonly nameKeyId: string;
  /** The two backing stores. */
  readonly zones: Readonly<Record<ZoneName, S3rverHandle>>;
  /** The backing zones' own credentials (never valid at the proxy). */
  readonly backingCredentials: Readonly<Record<ZoneName, Credentials>>;
  /** A scratch directory for the test's files (removed by dispose). */
  readonly workDir: string;
  readonly configPath: string;
  readonly auditLogPath: string;
  /** The zone.yaml document as last written. */
  config(): Record<string, unknown>;
  /** The backing bucket that holds client bucket `bucket` in `zone` (the zone's prefix + the name). */
  backingBucket(zone: ZoneName, bucket: string): string;
  /** An @aws-sdk/client-s3 client for the proxy (path style, one attempt), with the client credentials unless given others. */
  s3(credentials?: Credentials, options?: { region?: string }): S3Client;
  /** An @aws-sdk/client-s3 client for a backing store, with that zone's credentials unless given others. */
  directS3(zone: ZoneName, credentials?: Credentials): S3Client;
  /** Runs /usr/bin/aws <args> --endpoint-url <proxy> with the client credentials; never throws on a failed command. */
  aws(args: string[], options?: AwsRunOptions): Promise<RunResult>;
  /** Everything the proxy process wrote to stdout and stderr since it last started. */
  proxyOutput(): string;
  /** The proxy process's pid. */
  proxyPid(): number;
  /** Stops the proxy, rewrites zone.yaml (same port) with `changes` merged into the options, and starts it again. */
  restartProxy(changes?: ZoneStackOptions): Promise<void>;
  dispose(): Promise<void>;
}

const randomHex = (bytes: number) => nodeCrypto.randomBytes(bytes).toString('hex');
const randomSecret = () => nodeCrypto.randomBytes(30).toString('base64url');

interface RunningProxy {
  child: ChildProcess;
  endpoint: string;
  output(): string;
  stop(): Promise<void>;
}

/** Spawns `trustplane proxy s3 --config FILE` and resolves when it prints its ready line. */
export async function spawnZoneProxy(configPath: string, cwd: string): Promise<RunningProxy> {
  const child = spawn(process.execPath, [trustplaneBin, 'proxy', 's3', '--config', configPath], {
    cwd, env: { ...process.env, TRUSTPLANE_LOG_LEVEL: process.env.TRUSTPLANE_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const mirror = process.env.TRUSTPLANE_TEST_SERVER_LOG === '1';
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (mirror) process.stderr.write(chunk);
  });
  const exited = once(child, 'exit');
  const endpoint = await new Promise<string>((resolveReady, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const fail = (reason: string) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      reject(new Error(`${reason}; its output:\n${output}`));
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`the zone proxy exited (${code ?? signal}) before it was ready`);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`the zone proxy did not print its ready line within ${READY_TIMEOUT_MS / 1000} s`);
    }, READY_TIMEOUT_MS);
    child.once('exit', onExit);
    child.once('error', (error) => fail(`the zone proxy could not start: ${error.message}`));
    lines.on('line', (line) => {
      output += `${line}\n`;
      if (mirror) process.stderr.write(`${line}\n`);
      const ready = READY_LINE.exec(line);
      if (ready) {
        clearTimeout(timer);
        child.off('exit', onExit);
        resolveReady(ready[1]);
      }
    });
  });
  let stopping: Promise<void> | undefined;
  return {
    child, endpoint,
    output: () => output,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        await exited;
        clearTimeout(timer);
      })();
      return stopping;
    },
  };
}

/** The zone.yaml document for a stack. */
function zoneConfig(parts: {
  port: number; keyService: TestServer; clients: Record<string, string>; zones: Record<ZoneName, S3rverHandle>;
  backing: Record<ZoneName, Credentials>; auditLogPath: string; options: ZoneStackOptions;
}): Record<string, unknown> {
  const { options } = parts;
  const prefix = (zone: ZoneName) => options.bucketPrefix?.[zone] ?? `${zone}-`;
  const document: Record<string, unknown> = {
    listen: `127.0.0.1:${parts.port}`,
    zone: 'eu',
    ...(options.region === null ? {} : { region: options.region ?? 'us-east-1' }),
    kms: {
      endpoint: parts.keyService.url, region: parts.keyService.region,
      accessKeyId: parts.keyService.accessKeyId, secretAccessKey: parts.keyService.secretAccessKey,
      keyId: 'alias/zone-data', nameKeyId: 'alias/zone-names',
    },
    clients: parts.clients,
    zones: Object.fromEntries(ZONE_NAMES.map((zone) => [zone, {
      endpoint: parts.zones[zone].endpoint, region: zone === 'eu' ? 'eu-west-1' : 'us-east-1',
      accessKeyId: parts.backing[zone].accessKeyId, secretAccessKey: parts.backing[zone].secretAccessKey,
      bucketPrefix: prefix(zone), hashNames: options.hashNames?.[zone] ?? false,
    }])),
    defaultZone: options.defaultZone ?? 'eu',
  };
  if (options.buckets) document.buckets = options.buckets;
  if (options.quarantine) document.quarantine = options.quarantine;
  if (options.evidence) document.evidence = options.evidence;
  if (options.auditLog ?? true) document.auditLog = parts.auditLogPath;
  if (options.chunkSize !== undefined) document.chunkSize = options.chunkSize;
  if (options.detectors) document.detectors = options.detectors;
  if (options.policies) document.policies = options.policies;
  return { ...document, ...options.extraConfig };
}

async function createZoneKeys(kms: KMSClient): Promise<{ dataKeyId: string; nameKeyId: string }> {
  const data = await kms.send(new CreateKeyCommand({ Description: 'zone data keys' }));
  const names = await kms.send(new CreateKeyCommand({ Description: 'zone object names', KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' }));
  const dataKeyId = data.KeyMetadata!.KeyId!;
  const nameKeyId = names.KeyMetadata!.KeyId!;
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/zone-data', TargetKeyId: dataKeyId }));
  await kms.send(new CreateAliasCommand({ AliasName: 'alias/zone-names', TargetKeyId: nameKeyId }));
  return { dataKeyId, nameKeyId };
}

/** Starts a key service, two backing stores and the proxy; on any failure stops what it started and rethrows. */
export async function startZoneStack(initialOptions: ZoneStackOptions = {}): Promise<ZoneStack> {
  let options = initialOptions;
  const cleanups: Array<() => Promise<void> | void> = [];
  const cleanUp = async () => {
    const failures: unknown[] = [];
    for (const step of cleanups.splice(0).reverse()) {
      try { await step(); } catch (error) { failures.push(error); }
    }
    if (failures.length) throw new AggregateError(failures, 'zone stack cleanup failed');
  };
  try {
    const directory = makeTempDir('trustplane-zone-stack-');
    cleanups.push(() => rmSync(directory, { recursive: true, force: true }));
    const workDir = join(directory, 'work');
    const awsHome = join(directory, 'aws-home');
    mkdirSync(workDir);
    mkdirSync(awsHome);
    // Path-style addressing: 127.0.0.1 has no bucket subdomains.
    const awsConfigFile = join(awsHome, 'config');
    writeFileSync(awsConfigFile, '[default]\ns3 =\n    addressing_style = path\n');
    const configPath = join(directory, 'zone.yaml');
    const auditLogPath = join(directory, 'zone-audit.jsonl');

    const keyService = await startTestServer();
    cleanups.push(() => keyService.dispose());
    const kms = kmsClient(keyService);
    cleanups.push(() => kms.destroy());
    const { dataKeyId, nameKeyId } = await createZoneKeys(kms);

    const backing: Record<ZoneName, Credentials> = {
      eu: { accessKeyId: `BACKING-EU-${randomHex(6)}`, secretAccessKey: randomSecret() },
      us: { accessKeyId: `BACKING-US-${randomHex(6)}`, secretAccessKey: randomSecret() },
    };
    const zones = {} as Record<ZoneName, S3rverHandle>;
    for (const zone of ZONE_NAMES) {
      zones[zone] = await startS3rver(backing[zone]);
      cleanups.push(() => zones[zone].close());
    }
    const clientCredentials: Credentials = { accessKeyId: `AKIAZONE${randomHex(6).toUpperCase()}`, secretAccessKey: randomSecret() };
    const clients = { [clientCredentials.accessKeyId]: clientCredentials.secretAccessKey };
    const region = options.region ?? 'us-east-1';

    let document: Record<string, unknown> = {};
    const writeConfig = (port: number) => {
      document = zoneConfig({ port, keyService, clients, zones, backing, auditLogPath, options });
      writeFileSync(configPath, stringifyYaml(document), { mode: 0o600 });
    };
    writeConfig(0);
    let proxy = await spawnZoneProxy(configPath, directory);
    cleanups.push(() => proxy.stop());

    let awsCli: Promise<AwsCliLocation> | undefined;
    const sdkClients = new Set<S3Client>();
    cleanups.push(() => { for (const client of sdkClients) client.destroy(); });
    const track = (client: S3Client) => { sdkClients.add(client); return client; };

    const stack: ZoneStack = {
      get endpoint() { return proxy.endpoint; },
      region, clientCredentials, keyService, dataKeyId, nameKeyId, zones, backingCredentials: backing,
      workDir, configPath, auditLogPath,
      config: () => document,
      backingBucket: (zone, bucket) => `${options.bucketPrefix?.[zone] ?? `${zone}-`}${bucket}`,
      s3: (credentials = clientCredentials, clientOptions = {}) => track(new S3Client({
        endpoint: proxy.endpoint, region: clientOptions.region ?? region, forcePathStyle: true, maxAttempts: 1, credentials,
      })),
      directS3: (zone, credentials = backing[zone]) => track(new S3Client({
        endpoint: zones[zone].endpoint, region: zone === 'eu' ? 'eu-west-1' : 'us-east-1', forcePathStyle: true, maxAttempts: 1,
        credentials,
      })),
      async aws(args, runOptions = {}) {
        // Tests that use the CLI skip (or fail, under TRUSTPLANE_REQUIRE_ALL=1) on locateAwsCli() before they get here.
        awsCli ??= locateAwsCli().catch((error: Error) => ({ skip: error.message }));
        const located = await awsCli;
        if (located.skip !== undefined) throw new Error(`the AWS CLI is not usable: ${located.skip}`);
        const credentials = runOptions.credentials ?? clientCredentials;
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH, HOME: awsHome, LC_ALL: 'C.UTF-8',
          AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
          AWS_REGION: runOptions.region ?? region, AWS_DEFAULT_REGION: runOptions.region ?? region,
          AWS_PAGER: '', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_CONFIG_FILE: awsConfigFile,
          // One attempt: a retried 5xx would hide a proxy fault behind a slow success.
          AWS_MAX_ATTEMPTS: '1', AWS_RETRY_MODE: 'standard',
        };
        return run(located.path, [...args, '--endpoint-url', runOptions.endpoint ?? proxy.endpoint],
          { env, cwd: runOptions.cwd ?? workDir, timeoutMs: runOptions.timeoutMs ?? 300_000 });
      },
      proxyOutput: () => proxy.output(),
      proxyPid: () => proxy.child.pid!,
      async restartProxy(changes = {}) {
        const port = Number(new URL(proxy.endpoint).port);
        await proxy.stop();
        options = { ...options, ...changes };
        writeConfig(port);
        proxy = await spawnZoneProxy(configPath, directory);
        // Clients made before the restart point at the same port; their kept-alive sockets are gone, which they survive.
      },
      dispose: cleanUp,
    };
    return stack;
  } catch (error) {
    await cleanUp().catch(() => undefined);
    throw error;
  }
}

// ---- Client-side helpers the zone tests share: reading bodies, judging errors, raw and presigned requests. ----

/** RFC 3986 encoding, as SigV4 canonicalises URIs and query strings. */
export function encodeRfc3986(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The path-style request path of an object: /bucket/key with each key segment encoded. */
export function objectPath(bucket: string, key?: string): string {
  return key === undefined ? `/${bucket}` : `/${bucket}/${key.split('/').map(encodeRfc3986).join('/')}`;
}

/** The S3 error a failed SDK call threw: its code (the error's name), HTTP status and message. */
export interface S3CallError {
  code: string;
  status: number | undefined;
  message: string;
  /** Every field the SDK parsed from the error document (e.g. BucketName, RuleName). */
  fields: Record<string, unknown>;
}

/** Awaits a call that must fail with an S3 service error and returns it (fails the test when the call succeeds). */
export async function s3Error(call: Promise<unknown>): Promise<S3CallError> {
  let result: unknown;
  try {
    result = await call;
  } catch (error) {
    const failure = error as Error & { $metadata?: { httpStatusCode?: number }; $response?: unknown };
    if (failure.$metadata === undefined) throw error;
    const fields: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(failure)) if (!name.startsWith('$')) fields[name] = value;
    return { code: failure.name, status: failure.$metadata.httpStatusCode, message: failure.message, fields };
  }
  throw new Error(`expected an S3 error, but the call succeeded: ${JSON.stringify(result, (key, value) => key === 'Body' ? '[body]' : value).slice(0, 400)}`);
}

/** Reads a whole SDK response body (GetObject's Body) into a Buffer. */
export async function bodyBytes(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/**
 * What a GET delivered, never throwing: an S3 error before any body, or the headers and whatever body bytes
 * arrived before the stream ended, failed, or went quiet for `idleMs` (a response that stops short without closing).
 */
export type ReadOutcome =
  | { kind: 'error'; code: string; status: number | undefined; message: string }
  | { kind: 'body'; status: number | undefined; contentLength: number | undefined; contentRange: string | undefined;
      eTag: string | undefined; bytes: Buffer; streamError?: string; stalled?: boolean };

export async function readObject(s3: S3Client, input: GetObjectCommandInput, idleMs = 15_000): Promise<ReadOutcome> {
  let output: GetObjectCommandOutput;
  try {
    output = await s3.send(new GetObjectCommand(input));
  } catch (error) {
    const failure = error as Error & { $metadata?: { httpStatusCode?: number } };
    return { kind: 'error', code: failure.name, status: failure.$metadata?.httpStatusCode, message: failure.message };
  }
  const chunks: Buffer[] = [];
  let streamError: string | undefined;
  let stalled = false;
  const body = output.Body as (Readable & AsyncIterable<Uint8Array>) | undefined;
  if (body) {
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => { stalled = true; body.destroy(new Error(`no body bytes for ${idleMs} ms`)); }, idleMs);
    };
    arm();
    try {
      for await (const chunk of body) {
        chunks.push(Buffer.from(chunk));
        arm();
      }
    } catch (error) {
      streamError = (error as Error).message || String(error);
    } finally {
      clearTimeout(timer);
    }
  }
  return { kind: 'body', status: output.$metadata.httpStatusCode, contentLength: output.ContentLength, contentRange: output.ContentRange,
    eTag: output.ETag, bytes: Buffer.concat(chunks), ...(streamError === undefined ? {} : { streamError }), ...(stalled ? { stalled } : {}) };
}

/** An SDK command for the S3 client: what sendWithHeaders needs of it. */
export interface S3CommandWithStack<Input extends object, Output extends object> {
  middlewareStack: MiddlewareStack<Input, Output>;
}

/**
 * Sends an SDK command with extra request headers (added in the build step, before signing, so they are signed) and
 * returns the headers the SDK finally sent and the raw response headers (the SDK drops the ones S3 does not define,
 * e.g. x-trustplane-policy-action).
 */
export async function sendWithHeaders<Input extends object, Output extends object>(s3: S3Client, command: S3CommandWithStack<Input, Output>,
  extraHeaders: Record<string, string> = {}): Promise<{ output: Output; headers: Record<string, string>; requestHeaders: Record<string, string> }> {
  let headers: Record<string, string> = {};
  let requestHeaders: Record<string, string> = {};
  command.middlewareStack.add((next) => async (args) => {
    if (HttpRequest.isInstance(args.request)) Object.assign(args.request.headers, extraHeaders);
    return next(args);
  }, { step: 'build', name: 'trustplaneTestExtraHeaders' });
  // The deserialize step is the innermost: it sees the request as signed and sent, and the raw response.
  command.middlewareStack.add((next) => async (args) => {
    if (HttpRequest.isInstance(args.request)) requestHeaders = { ...args.request.headers };
    const result = await next(args);
    if (HttpResponse.isInstance(result.response)) headers = { ...result.response.headers };
    return result;
  }, { step: 'deserialize', name: 'trustplaneTestCaptureHeaders' });
  const output = await s3.send(command as unknown as Parameters<S3Client['send']>[0]) as Output;
  return { output, headers, requestHeaders };
}

export interface RawS3Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RawS3RequestOptions {
  method: string;
  /** Path-style path, already encoded (see objectPath), without the query. */
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Default: the stack's client credentials; null sends the request unsigned. */
  credentials?: Credentials | null;
  region?: string;
  signingDate?: Date;
  /** Changes the signed headers before sending (to break a signature after the fact). */
  tamper?: (headers: Record<string, string>) => void;
}

function queryString(query: Record<string, string>): string {
  return Object.entries(query).map(([name, value]) => (value === '' ? encodeRfc3986(name) : `${encodeRfc3986(name)}=${encodeRfc3986(value)}`)).join('&');
}

/** Sends one SigV4-signed (service s3, payload hash over the body) request to the proxy with exactly these headers. */
export async function rawS3Request(stack: Pick<ZoneStack, 'endpoint' | 'region' | 'clientCredentials'>, options: RawS3RequestOptions): Promise<RawS3Response> {
  const url = new URL(stack.endpoint);
  const body = options.body ?? Buffer.alloc(0);
  let headers: Record<string, string> = { host: url.host, ...options.headers };
  const credentials = options.credentials === undefined ? stack.clientCredentials : options.credentials;
  if (credentials !== null) {
    const signer = new SignatureV4({ service: 's3', region: options.region ?? stack.region, credentials, sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: false, applyChecksum: true });
    // The body's own hash unless the caller signs another (to send a body that does not match it).
    const hash = headers['x-amz-content-sha256'] ?? nodeCrypto.createHash('sha256').update(body).digest('hex');
    const signed = await signer.sign(new HttpRequest({ method: options.method, protocol: 'http:', hostname: url.hostname, port: Number(url.port),
      path: options.path, query: options.query ?? {}, headers: { ...headers, 'x-amz-content-sha256': hash }, body }),
    { signingDate: options.signingDate });
    headers = signed.headers as Record<string, string>;
  }
  options.tamper?.(headers);
  const search = options.query && Object.keys(options.query).length ? `?${queryString(options.query)}` : '';
  return new Promise((resolve, reject) => {
    const request = http.request({ host: url.hostname, port: Number(url.port), method: options.method, path: `${options.path}${search}`,
      headers: { ...headers, 'content-length': String(body.length) } }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

export interface PresignOptions {
  method?: string;
  bucket: string;
  key: string;
  expiresIn?: number;
  signingDate?: Date;
  credentials?: Credentials;
}

/** A presigned URL for the proxy, made as @aws-sdk/s3-request-presigner makes them (UNSIGNED-PAYLOAD, host the only signed header). */
export async function presignUrl(stack: Pick<ZoneStack, 'endpoint' | 'region' | 'clientCredentials'>, options: PresignOptions): Promise<string> {
  const url = new URL(stack.endpoint);
  const signer = new SignatureV4({ service: 's3', region: stack.region, credentials: options.credentials ?? stack.clientCredentials,
    sha256: Hash.bind(null, 'sha256'), uriEscapePath: false, applyChecksum: false });
  const path = objectPath(options.bucket, options.key);
  const presigned = await signer.presign(new HttpRequest({ method: options.method ?? 'GET', protocol: 'http:', hostname: url.hostname,
    port: Number(url.port), path, headers: { host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }),
  { expiresIn: options.expiresIn ?? 300, signingDate: options.signingDate, unsignableHeaders: new Set(['content-type']) });
  return `${url.origin}${path}?${queryString(presigned.query as Record<string, string>)}`;
}

/** A random marker that cannot occur by chance in ciphertext or metadata: tests plant it and search the backing stores for it. */
export function randomMarker(label = 'MARKER'): string {
  return `${label}-${nodeCrypto.randomBytes(12).toString('hex')}`;
}

/** `length` bytes that repeat no 16-byte block, with `marker` written every `every` bytes (so any chunk of the object holds it). */
export function markedPlaintext(length: number, marker: string, every = 4096): Buffer {
  const bytes = nodeCrypto.randomBytes(length);
  const mark = Buffer.from(marker, 'latin1');
  for (let at = 0; at + mark.length <= length; at += every) mark.copy(bytes, at);
  return bytes;
}

export const md5Hex = (bytes: Buffer) => nodeCrypto.createHash('md5').update(bytes).digest('hex');
