// One backing zone: an S3 endpoint in another jurisdiction, reached with that zone's own credentials.
// Must never send aws-chunked framing or a client's credentials to it, nor turn its failures into the caller's fault.
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand,
  CreateMultipartUploadCommand, DeleteBucketCommand, DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadBucketCommand, HeadObjectCommand, ListBucketsCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, S3ServiceException, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { BackingZoneConfig } from '../config.ts';
import { S3Error, S3_ERROR_STATUS, type S3ErrorCode } from './errors.ts';
import type { SealedObjectInfo } from './object-metadata.ts';

/** The stored headers S3 keeps with an object besides its content type (kept by the store itself for clear objects). */
type StoredObjectHeaders = SealedObjectInfo['headers'];

export interface BackingObjectHead {
  contentLength: number;
  etag: string;
  lastModified: Date;
  contentType?: string;
  metadata: Record<string, string>;
  headers: StoredObjectHeaders;
}

function storedHeaders(answer: { CacheControl?: string; ContentDisposition?: string; ContentEncoding?: string; ContentLanguage?: string;
  ExpiresString?: string; Expires?: Date }): StoredObjectHeaders {
  const headers: StoredObjectHeaders = {};
  if (answer.CacheControl) headers['cache-control'] = answer.CacheControl;
  if (answer.ContentDisposition) headers['content-disposition'] = answer.ContentDisposition;
  if (answer.ContentEncoding) headers['content-encoding'] = answer.ContentEncoding;
  if (answer.ContentLanguage) headers['content-language'] = answer.ContentLanguage;
  const expires = answer.ExpiresString ?? answer.Expires?.toUTCString();
  if (expires) headers.expires = expires;
  return headers;
}

function headerFields(headers: StoredObjectHeaders | undefined): { CacheControl?: string; ContentDisposition?: string; ContentEncoding?: string;
  ContentLanguage?: string; Expires?: Date } {
  if (!headers) return {};
  const expires = headers.expires ? new Date(headers.expires) : undefined;
  return { CacheControl: headers['cache-control'], ContentDisposition: headers['content-disposition'], ContentEncoding: headers['content-encoding'],
    ContentLanguage: headers['content-language'], Expires: expires && !Number.isNaN(expires.getTime()) ? expires : undefined };
}

export interface BackingObject extends BackingObjectHead {
  body: Readable;
}

export interface BackingListing {
  objects: Array<{ key: string; size: number; etag: string; lastModified: Date }>;
  commonPrefixes: string[];
  nextContinuationToken?: string;
}

/** Codes the backing store may answer that mean the same to our caller; anything else is our fault (InternalError). */
const PASSED_THROUGH = new Set<string>(['NoSuchKey', 'NoSuchBucket', 'NoSuchUpload', 'BucketNotEmpty', 'BucketAlreadyOwnedByYou',
  'BucketAlreadyExists', 'InvalidPart', 'InvalidPartOrder', 'EntityTooSmall', 'InvalidRange', 'PreconditionFailed', 'InvalidBucketName']);

const KNOWN_BUCKET_TTL_MS = 30_000;

export class BackingZone {
  readonly name: string;
  readonly config: BackingZoneConfig;
  readonly #client: S3Client;
  // Buckets seen to exist, so that every PUT does not cost a HEAD per zone; a bucket deleted behind our back is
  // noticed within the TTL (its requests then fail with NoSuchBucket from the store itself).
  readonly #knownBuckets = new Map<string, number>();

  constructor(config: BackingZoneConfig) {
    this.name = config.name;
    this.config = config;
    const agentOptions = { keepAlive: true, maxSockets: 128 };
    this.#client = new S3Client({
      endpoint: config.endpoint, region: config.region, forcePathStyle: true,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
      // Plain, fixed-length bodies towards the backing store: no aws-chunked, no trailing checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
      // A streamed body cannot be replayed, so a retry would send nothing; reads are retried by the caller's client.
      maxAttempts: 1,
      requestHandler: new NodeHttpHandler({ httpAgent: new Agent(agentOptions), httpsAgent: new HttpsAgent(agentOptions),
        connectionTimeout: 10_000, requestTimeout: 0 }),
    });
  }

  /** The backing bucket that holds a client bucket in this zone. */
  bucket(clientBucket: string): string {
    return `${this.config.bucketPrefix}${clientBucket}`;
  }

  /** The client bucket a backing bucket stands for, if it is one of ours. */
  clientBucket(backingBucket: string): string | undefined {
    return backingBucket.startsWith(this.config.bucketPrefix) ? backingBucket.slice(this.config.bucketPrefix.length) : undefined;
  }

  destroy(): void {
    this.#client.destroy();
  }

  async #call<T>(run: () => Promise<T>, resource: { bucket?: string; key?: string }): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.#translate(error, resource);
    }
  }

  #translate(error: unknown, resource: { bucket?: string; key?: string }): Error {
    if (error instanceof S3Error) return error;
    const name = error instanceof S3ServiceException ? error.name : (error as { name?: string }).name ?? '';
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    const fields: Record<string, string> = {};
    if (resource.bucket) fields.BucketName = resource.bucket;
    if (resource.key) fields.Key = resource.key;
    if (name === 'NotFound' || (status === 404 && !PASSED_THROUGH.has(name))) {
      return new S3Error(resource.key ? 'NoSuchKey' : 'NoSuchBucket', resource.key ? 'The specified key does not exist.' : 'The specified bucket does not exist.', fields);
    }
    if (PASSED_THROUGH.has(name) && name in S3_ERROR_STATUS) {
      return new S3Error(name as S3ErrorCode, (error as Error).message || name, fields);
    }
    if (status === 412) return new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold.', fields);
    return new S3Error('ServiceUnavailable', `Backing zone ${this.name} failed (${name || (error as Error).message || 'error'}); try again.`,
      {}, { cause: error });
  }

  listBuckets(): Promise<Array<{ name: string; created: Date }>> {
    return this.#call(async () => {
      const answer = await this.#client.send(new ListBucketsCommand({}));
      return (answer.Buckets ?? []).flatMap((bucket) => {
        const clientName = bucket.Name ? this.clientBucket(bucket.Name) : undefined;
        return clientName ? [{ name: clientName, created: bucket.CreationDate ?? new Date(0) }] : [];
      });
    }, {});
  }

  createBucket(bucket: string): Promise<void> {
    return this.#call(async () => {
      try {
        await this.#client.send(new CreateBucketCommand({ Bucket: this.bucket(bucket) }));
      } catch (error) {
        // Creating a bucket we already hold is fine: a bucket lives in every zone, created where missing.
        if ((error as { name?: string }).name === 'BucketAlreadyOwnedByYou') return;
        throw error;
      }
    }, { bucket });
  }

  deleteBucket(bucket: string): Promise<void> {
    this.#knownBuckets.delete(bucket);
    return this.#call(async () => { await this.#client.send(new DeleteBucketCommand({ Bucket: this.bucket(bucket) })); }, { bucket });
  }

  /** Whether the bucket exists in this zone. */
  async hasBucket(bucket: string): Promise<boolean> {
    if ((this.#knownBuckets.get(bucket) ?? 0) > Date.now()) return true;
    try {
      await this.#client.send(new HeadBucketCommand({ Bucket: this.bucket(bucket) }));
      this.#knownBuckets.set(bucket, Date.now() + KNOWN_BUCKET_TTL_MS);
      return true;
    } catch (error) {
      const translated = this.#translate(error, { bucket });
      if (translated instanceof S3Error && translated.code === 'NoSuchBucket') return false;
      throw translated;
    }
  }

  putObject(bucket: string, key: string, body: Readable | Buffer, contentLength: number, metadata: Record<string, string>,
    contentType?: string, headers?: StoredObjectHeaders): Promise<{ etag: string }> {
    return this.#call(async () => {
      const answer = await this.#client.send(new PutObjectCommand({ Bucket: this.bucket(bucket), Key: key, Body: body,
        ContentLength: contentLength, Metadata: metadata, ContentType: contentType ?? 'application/octet-stream', ...headerFields(headers) }));
      return { etag: answer.ETag ?? '' };
    }, { bucket, key });
  }

  getObject(bucket: string, key: string, range?: { start: number; end: number }): Promise<BackingObject> {
    return this.#call(async () => {
      const answer = await this.#client.send(new GetObjectCommand({ Bucket: this.bucket(bucket), Key: key,
        Range: range ? `bytes=${range.start}-${range.end}` : undefined }));
      return { body: answer.Body as Readable, contentLength: answer.ContentLength ?? 0, etag: answer.ETag ?? '',
        lastModified: answer.LastModified ?? new Date(0), contentType: answer.ContentType, metadata: answer.Metadata ?? {}, headers: storedHeaders(answer) };
    }, { bucket, key });
  }

  headObject(bucket: string, key: string): Promise<BackingObjectHead> {
    return this.#call(async () => {
      const answer = await this.#client.send(new HeadObjectCommand({ Bucket: this.bucket(bucket), Key: key }));
      return { contentLength: answer.ContentLength ?? 0, etag: answer.ETag ?? '', lastModified: answer.LastModified ?? new Date(0),
        contentType: answer.ContentType, metadata: answer.Metadata ?? {}, headers: storedHeaders(answer) };
    }, { bucket, key });
  }

  deleteObject(bucket: string, key: string): Promise<void> {
    return this.#call(async () => { await this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket(bucket), Key: key })); }, { bucket, key });
  }

  /** Deletes up to 1000 keys; S3 semantics: a missing key is not an error. */
  deleteObjects(bucket: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return Promise.resolve();
    return this.#call(async () => {
      const answer = await this.#client.send(new DeleteObjectsCommand({ Bucket: this.bucket(bucket),
        Delete: { Objects: keys.map((key) => ({ Key: key })), Quiet: true } }));
      const failed = (answer.Errors ?? []).filter((entry) => entry.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new S3Error('ServiceUnavailable', `Backing zone ${this.name} could not delete ${failed.length} object(s); try again.`);
    }, { bucket });
  }

  /** Server-side copy within this zone; `metadata` replaces the source's metadata when given. */
  copyObject(source: { bucket: string; key: string }, target: { bucket: string; key: string }, metadata?: Record<string, string>,
    contentType?: string, headers?: StoredObjectHeaders): Promise<{ etag: string; lastModified: Date }> {
    return this.#call(async () => {
      const answer = await this.#client.send(new CopyObjectCommand({ Bucket: this.bucket(target.bucket), Key: target.key,
        CopySource: `${this.bucket(source.bucket)}/${encodeURIComponent(source.key).replace(/%2F/g, '/')}`,
        MetadataDirective: metadata ? 'REPLACE' : 'COPY', Metadata: metadata, ContentType: metadata ? (contentType ?? 'application/octet-stream') : undefined,
        ...(metadata ? headerFields(headers) : {}) }));
      return { etag: answer.CopyObjectResult?.ETag ?? '', lastModified: answer.CopyObjectResult?.LastModified ?? new Date() };
    }, { bucket: target.bucket, key: target.key });
  }

  listObjects(bucket: string, options: { prefix?: string; delimiter?: string; startAfter?: string; continuationToken?: string; maxKeys?: number }): Promise<BackingListing> {
    return this.#call(async () => {
      const answer = await this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket(bucket), Prefix: options.prefix || undefined,
        Delimiter: options.delimiter || undefined, StartAfter: options.continuationToken ? undefined : options.startAfter || undefined,
        ContinuationToken: options.continuationToken, MaxKeys: options.maxKeys ?? 1000 }));
      return {
        objects: (answer.Contents ?? []).map((entry) => ({ key: entry.Key ?? '', size: entry.Size ?? 0, etag: entry.ETag ?? '',
          lastModified: entry.LastModified ?? new Date(0) })),
        commonPrefixes: (answer.CommonPrefixes ?? []).map((entry) => entry.Prefix ?? ''),
        nextContinuationToken: answer.IsTruncated ? answer.NextContinuationToken : undefined,
      };
    }, { bucket });
  }

  createMultipartUpload(bucket: string, key: string, metadata: Record<string, string>, contentType?: string): Promise<string> {
    return this.#call(async () => {
      const answer = await this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket(bucket), Key: key, Metadata: metadata,
        ContentType: contentType ?? 'application/octet-stream' }));
      if (!answer.UploadId) throw new S3Error('ServiceUnavailable', `Backing zone ${this.name} gave no upload id.`);
      return answer.UploadId;
    }, { bucket, key });
  }

  uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Readable, contentLength: number): Promise<{ etag: string }> {
    return this.#call(async () => {
      const answer = await this.#client.send(new UploadPartCommand({ Bucket: this.bucket(bucket), Key: key, UploadId: uploadId,
        PartNumber: partNumber, Body: body, ContentLength: contentLength }));
      return { etag: answer.ETag ?? '' };
    }, { bucket, key });
  }

  completeMultipartUpload(bucket: string, key: string, uploadId: string, parts: Array<{ partNumber: number; etag: string }>): Promise<{ etag: string }> {
    return this.#call(async () => {
      const answer = await this.#client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket(bucket), Key: key, UploadId: uploadId,
        MultipartUpload: { Parts: parts.map((part) => ({ PartNumber: part.partNumber, ETag: part.etag })) } }));
      return { etag: answer.ETag ?? '' };
    }, { bucket, key });
  }

  /** Aborts an upload; a store that cannot abort (s3rver) keeps the orphaned parts, which no listing of ours shows. */
  abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    return this.#call(async () => {
      try {
        await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket(bucket), Key: key, UploadId: uploadId }));
      } catch (error) {
        const name = (error as { name?: string }).name;
        if (name === 'NotImplemented' || name === 'MethodNotAllowed' || name === 'NoSuchUpload') return;
        throw error;
      }
    }, { bucket, key });
  }
}
