// Starts s3rver (a real S3-compatible server on the filesystem) as a backing store for the zone proxy's tests,
// and lets tests read and edit the files it writes. Must never be taken as proof of a signature: s3rver checks none.
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import { promises as fsPromises, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from './server.ts';

/** The part of a Koa context the ListObjectsV2 handler below uses. */
interface S3rverContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  status: number;
  type: string;
  body: unknown;
  store: FilesystemStorePrototype & { getBucket(bucket: string): Promise<unknown> };
}
type S3rverMiddleware = (ctx: S3rverContext, next: () => Promise<void>) => Promise<void>;

interface S3rverInstance {
  run(): Promise<{ port: number; address: string }>;
  close(): Promise<void>;
  httpServer?: Server;
  /** Koa's middleware list, composed when the server starts listening. */
  middleware: S3rverMiddleware[];
}
interface S3rverConstructor {
  new (options: Record<string, unknown>): S3rverInstance;
}
interface S3rverAccount {
  createKeyPair(accessKeyId: string, secretAccessKey: string): void;
  revokeAccessKey(accessKeyId: string): void;
}

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as S3rverConstructor;
// s3rver only knows the access key ids in this process-wide registry (S3RVER out of the box), and checks SigV4
// signatures not at all: registering a key pair is what makes it accept a backing zone's credentials.
const { DUMMY_ACCOUNT, registry: ACCESS_KEYS } = require('s3rver/lib/models/account') as {
  DUMMY_ACCOUNT: S3rverAccount; registry: Map<string, unknown>;
};

interface S3rverObject {
  key: string;
  size: number;
  metadata: Record<string, string>;
  lastModifiedDate: Date;
}
interface S3rverListing {
  objects: S3rverObject[];
  commonPrefixes: string[];
  isTruncated: boolean;
}
interface S3rverListOptions {
  delimiter?: string;
  prefix?: string;
  maxKeys?: number;
  startAfter?: string;
}
interface FilesystemStorePrototype {
  rootDirectory: string;
  getResourcePath(bucket: string, key: string, resource: string): string;
  getBucketPath(bucket: string): string;
  listObjects(bucket: string, options: S3rverListOptions): Promise<S3rverListing>;
  deleteObject(bucket: string, key: string): Promise<void>;
}

/*
 * Two s3rver 3.7.1 bugs that real S3 does not have, fixed here so that they are not taken for the proxy's:
 * - listObjects with a delimiter never descends two levels below the prefix, so `a/b/c` under prefix "" with
 *   delimiter "/" is found, but `p/e/f/g` under prefix "p/" yields no common prefix "p/e/". Fixed by listing without
 *   the delimiter and folding keys into common prefixes here (objects count against max-keys, as s3rver counts).
 * - deleteObject removes directories it emptied with an unguarded readdir/rmdir, so concurrent deletes in one
 *   directory (DeleteObjects, or any client deleting in parallel) fail with ENOENT or ENOTEMPTY. Fixed by tolerating both.
 */
const { prototype: store } = require('s3rver/lib/stores/filesystem') as { prototype: FilesystemStorePrototype };
const listObjects = store.listObjects;
store.listObjects = async function listObjectsFixed(this: FilesystemStorePrototype, bucket, options) {
  const { delimiter = '', prefix = '', maxKeys = Infinity } = options;
  if (!delimiter) return listObjects.call(this, bucket, options);
  const all = await listObjects.call(this, bucket, { ...options, delimiter: '', maxKeys: Infinity });
  const objects: S3rverObject[] = [];
  const commonPrefixes = new Set<string>();
  let isTruncated = false;
  for (const object of all.objects) {
    const at = object.key.indexOf(delimiter, prefix.length);
    if (at !== -1) {
      commonPrefixes.add(object.key.slice(0, at + delimiter.length));
    } else if (objects.length < maxKeys) {
      objects.push(object);
    } else {
      isTruncated = true;
      break;
    }
  }
  return { objects, commonPrefixes: [...commonPrefixes].sort(), isTruncated };
};
store.deleteObject = async function deleteObjectFixed(this: FilesystemStorePrototype, bucket, key) {
  await Promise.all(['object', 'object.md5', 'metadata.json'].map((resource) => fsPromises.unlink(this.getResourcePath(bucket, key, resource))
    .catch((error: NodeJS.ErrnoException) => { if (error.code !== 'ENOENT') throw error; })));
  const parts = key.split('/').slice(0, -1);
  while (parts.length) {
    try {
      await fsPromises.rmdir(join(this.getBucketPath(bucket), ...parts));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Not empty (another object lives there), or another delete removed it first: either way, done here.
      if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') break;
      throw error;
    }
    parts.pop();
  }
};

const escapeXml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** GET /<bucket>?list-type=2 as S3 answers it, from s3rver's own store; other requests go on to s3rver. */
const listV2: S3rverMiddleware = async (ctx, next) => {
  const bucket = /^\/([^/]+)\/?$/.exec(ctx.path)?.[1];
  if (ctx.method !== 'GET' || single(ctx.query['list-type']) !== '2' || !bucket || !(await ctx.store.getBucket(bucket))) return next();
  const accessKeyId = /Credential=([^/]+)\//.exec(single(ctx.headers.authorization) ?? '')?.[1];
  if (accessKeyId !== undefined && !ACCESS_KEYS.has(accessKeyId)) return next(); // s3rver's own answer: InvalidAccessKeyId
  const token = single(ctx.query['continuation-token']);
  const startAfter = token !== undefined ? Buffer.from(token, 'base64url').toString('utf8') : single(ctx.query['start-after']);
  const prefix = single(ctx.query.prefix) ?? '';
  const delimiter = single(ctx.query.delimiter) ?? '';
  const maxKeys = Math.min(1000, Number(single(ctx.query['max-keys']) ?? 1000));
  const result = maxKeys > 0 ? await ctx.store.listObjects(bucket, { prefix, delimiter, maxKeys, startAfter })
    : { objects: [], commonPrefixes: [], isTruncated: false };
  const last = result.objects.at(-1)?.key;
  const element = (name: string, value: string | number | undefined) => (value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`);
  ctx.status = 200;
  ctx.type = 'application/xml';
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    + element('Name', bucket) + element('Prefix', prefix) + element('Delimiter', delimiter || undefined) + element('MaxKeys', maxKeys)
    + element('KeyCount', result.objects.length + result.commonPrefixes.length) + element('IsTruncated', String(result.isTruncated && last !== undefined))
    + element('ContinuationToken', token) + element('StartAfter', token === undefined ? startAfter : undefined)
    + element('NextContinuationToken', result.isTruncated && last !== undefined ? Buffer.from(last, 'utf8').toString('base64url') : undefined)
    + result.objects.map((object) => `<Contents>${element('Key', object.key)}${element('LastModified', object.lastModifiedDate.toISOString())}`
      + `${element('ETag', object.metadata.etag)}${element('Size', object.size)}<StorageClass>STANDARD</StorageClass></Contents>`).join('')
    + result.commonPrefixes.map((common) => `<CommonPrefixes>${element('Prefix', common)}</CommonPrefixes>`).join('')
    + '</ListBucketResult>';
};

/** s3rver names every file of an object `<last key segment>._S3rver_<resource>` in the key's directories. */
const SUFFIX = '._S3rver_';

export interface S3rverHandle {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  port: number;
  /** Where s3rver keeps buckets: one directory per bucket. */
  directory: string;
  /** The credentials s3rver accepts from this handle's users (registered in s3rver's account registry). */
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Every file s3rver wrote (objects, metadata and md5 sidecars, in-progress uploads) that contains `marker`. */
  filesContaining(marker: Buffer | string): string[];
  /** Every file s3rver wrote, relative to `directory`, sorted. */
  listFiles(): string[];
  /** The file that holds the object's bytes. */
  objectFile(bucket: string, key: string): string;
  /** The JSON sidecar that holds the object's content type and x-amz-meta-* headers. */
  metadataFile(bucket: string, key: string): string;
  /** The sidecar with the MD5 s3rver serves as the ETag (s3rver trusts it; it does not re-hash the object). */
  md5File(bucket: string, key: string): string;
  /** The object keys s3rver holds in `bucket` (from its files, not through the S3 API), sorted. */
  objectKeys(bucket: string): string[];
  /** The directory of an unfinished multipart upload's parts in `bucket` (parts are files named 1, 2, ...). */
  uploadsDirectory(bucket: string): string;
  close(): Promise<void>;
}

export interface S3rverOptions {
  /** Access key id the store accepts; default S3RVER (s3rver's own). */
  accessKeyId?: string;
  secretAccessKey?: string;
}

function resourcePath(root: string, bucket: string, key: string, resource: string): string {
  const parts = key.split('/');
  const last = parts.pop() ?? '';
  return join(root, bucket, ...parts, `${last}${SUFFIX}${resource}`);
}

function walk(directory: string, found: string[] = []): string[] {
  for (const name of readdirSync(directory)) {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) walk(path, found);
    else found.push(path);
  }
  return found;
}

/** Starts s3rver on 127.0.0.1, a free port, in a new temporary directory that close() removes. */
export async function startS3rver(options: S3rverOptions = {}): Promise<S3rverHandle> {
  const directory = makeTempDir('trustplane-s3rver-');
  const credentials = { accessKeyId: options.accessKeyId ?? 'S3RVER', secretAccessKey: options.secretAccessKey ?? 'S3RVER' };
  if (credentials.accessKeyId !== 'S3RVER') DUMMY_ACCOUNT.createKeyPair(credentials.accessKeyId, credentials.secretAccessKey);
  // vhostBuckets off: every request is path-style, as the proxy sends them.
  // TRUSTPLANE_TEST_S3RVER_LOG=1 shows s3rver's request log and errors while debugging a test.
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: process.env.TRUSTPLANE_TEST_S3RVER_LOG !== '1',
    resetOnClose: false, vhostBuckets: false });
  server.middleware.unshift(listV2);
  let port: number;
  try {
    ({ port } = await server.run());
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  let closed = false;
  const handle: S3rverHandle = {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    credentials,
    filesContaining(marker) {
      const needle = typeof marker === 'string' ? Buffer.from(marker, 'utf8') : marker;
      return walk(directory).filter((path) => readFileSync(path).includes(needle));
    },
    listFiles: () => walk(directory).map((path) => path.slice(directory.length + 1)).sort(),
    objectFile: (bucket, key) => resourcePath(directory, bucket, key, 'object'),
    metadataFile: (bucket, key) => resourcePath(directory, bucket, key, 'metadata.json'),
    md5File: (bucket, key) => resourcePath(directory, bucket, key, 'object.md5'),
    objectKeys(bucket) {
      const root = join(directory, bucket);
      const suffix = `${SUFFIX}object`;
      let files: string[];
      try {
        files = walk(root);
      } catch {
        return [];
      }
      return files.filter((path) => path.endsWith(suffix) && !path.slice(root.length + 1).startsWith(`${SUFFIX}uploads`))
        .map((path) => path.slice(root.length + 1, -suffix.length)).sort();
    },
    uploadsDirectory: (bucket) => join(directory, bucket, `${SUFFIX}uploads`),
    async close() {
      if (closed) return;
      closed = true;
      // close() waits for open connections; the proxy's kept-alive ones would hold it up.
      const closing = server.close();
      server.httpServer?.closeAllConnections();
      await closing;
      if (credentials.accessKeyId !== 'S3RVER') DUMMY_ACCOUNT.revokeAccessKey(credentials.accessKeyId);
      rmSync(directory, { recursive: true, force: true });
    },
  };
  return handle;
}
