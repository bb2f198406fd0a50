// Starts s3rver (a real S3-compatible server on the filesystem) as a backing store for the zone proxy's tests,
// and lets tests read and edit the files it writes. Must never be taken as proof of a signature: s3rver checks none.
import { createRequire } from 'node:module';
import type { Server } from 'node:http';
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from './server.ts';

interface S3rverInstance {
  run(): Promise<{ port: number; address: string }>;
  close(): Promise<void>;
  httpServer?: Server;
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
const { DUMMY_ACCOUNT } = require('s3rver/lib/models/account') as { DUMMY_ACCOUNT: S3rverAccount };

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
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, resetOnClose: false, vhostBuckets: false });
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
