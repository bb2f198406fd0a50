// Objects across the backing zones: where an object lives, what its sealed metadata says, reading and writing bodies.
// Must never return plaintext that did not authenticate, nor leave a client-visible object half written.
import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  createObjectEncryptStream, encryptedObjectLength, openObjectMetadata, openObjectRange, sealObjectMetadata, zeroize,
  type CiphertextSource, type EncryptionContext, type ObjectSegment,
} from '../../../shared/crypto/index.ts';
import type { DataKeySpec, ZoneProxyConfig } from '../config.ts';
import type { BackingObjectHead, BackingZone } from './backing.ts';
import { decodeObjectLayout, encodeObjectLayout, type ObjectLayout } from './domain/object-layout.ts';
import { S3Error } from './errors.ts';
import {
  META_FORMAT, META_MODE, META_NAME, META_ORIGIN, META_PENDING, META_SEALED, META_WRAPPED_KEY, OBJECT_FORMAT_VERSION, RESERVED_PREFIX,
  type ObjectView, type SealedObjectInfo,
} from './object-metadata.ts';
import type { ZoneKeys } from './zone-keys.ts';

/** A single PUT's ETag (the plaintext's MD5) is known only after the body: it follows the ciphertext, sealed. */
const TRAILER_MAGIC = 'TPET1';

export interface ObjectLocation {
  zone: BackingZone;
  /** The client bucket whose backing bucket holds it (the quarantine or evidence bucket for copies). */
  bucket: string;
  backingKey: string;
}

const VIEW_CACHE_ENTRIES = 50_000;

export class ZoneObjects {
  readonly config: ZoneProxyConfig;
  readonly zones: ReadonlyMap<string, BackingZone>;
  readonly keys: ZoneKeys;
  readonly trailerLength: number;
  // Listing an encrypted bucket needs each object's sealed metadata; a backing object's metadata never changes
  // while its ETag stays the same, so views are cached by (zone, bucket, name, backing ETag). No secrets inside.
  readonly #views = new Map<string, ObjectView>();

  constructor(config: ZoneProxyConfig, zones: ReadonlyMap<string, BackingZone>, keys: ZoneKeys) {
    this.config = config;
    this.zones = zones;
    this.keys = keys;
    const probe = Buffer.alloc(32);
    this.trailerLength = Buffer.byteLength(TRAILER_MAGIC) + sealObjectMetadata(probe, { probe: '1' }, Buffer.alloc(16)).length;
  }

  zone(name: string): BackingZone {
    const zone = this.zones.get(name);
    if (!zone) throw new S3Error('InvalidArgument', `There is no backing zone named ${name}.`);
    return zone;
  }

  /** The zone a new object of this bucket goes to, before any policy routes it. */
  placementZone(bucket: string, requested?: string): BackingZone {
    if (requested) return this.zone(requested);
    return this.zone(this.config.bucketZones.get(bucket) ?? this.config.defaultZone);
  }

  /** Zones in the order to look for an object of this bucket: its placement first. */
  searchOrder(bucket: string): BackingZone[] {
    const first = this.placementZone(bucket);
    return [first, ...[...this.zones.values()].filter((zone) => zone !== first)];
  }

  context(bucket: string, key: string): EncryptionContext {
    return { bucket, key, zone: this.config.zone };
  }

  /**
   * The context written into the ciphertext's own header, which the backing store can read: the zone only, never
   * the name (a zone that hashes names must not find them in the bodies). The name is bound all the same: the data
   * key unwraps only under the object's full context, and the sealed metadata and trailer authenticate it.
   */
  bodyContext(): EncryptionContext {
    return { zone: this.config.zone };
  }

  /** The backing name of a client key in a zone (a hash when the zone hides names). */
  async backingKey(zone: BackingZone, bucket: string, key: string): Promise<string> {
    return zone.config.hashNames ? this.keys.hashName(bucket, key) : key;
  }

  /** Finds an object in whichever zone holds it. */
  async locate(bucket: string, key: string): Promise<{ location: ObjectLocation; head: BackingObjectHead } | undefined> {
    for (const zone of this.searchOrder(bucket)) {
      const backingKey = await this.backingKey(zone, bucket, key);
      try {
        const head = await zone.headObject(bucket, backingKey);
        if (head.metadata[META_PENDING]) continue;
        return { location: { zone, bucket, backingKey }, head };
      } catch (error) {
        if (error instanceof S3Error && (error.code === 'NoSuchKey' || error.code === 'NoSuchBucket')) continue;
        throw error;
      }
    }
    return undefined;
  }

  /** The object's context: its own name, or for quarantine/evidence copies the name it was written under. */
  objectContext(location: ObjectLocation, head: BackingObjectHead, clientKey: string): EncryptionContext {
    // Only the quarantine and evidence buckets hold copies under another name: elsewhere the marker would let the
    // backing store replay any object under any name.
    const copies = [this.config.quarantine?.bucket, this.config.evidence?.bucket];
    if (head.metadata[META_ORIGIN] && copies.includes(location.bucket)) {
      // Quarantine copies are named <bucket>/<key>; evidence copies <time>-<random>/<bucket>/<key>.
      const name = location.bucket === this.config.evidence?.bucket ? clientKey.slice(clientKey.indexOf('/') + 1) : clientKey;
      const slash = name.indexOf('/');
      if (slash <= 0) throw new S3Error('InvalidObjectState', 'A quarantined or evidence copy has a malformed name.');
      return this.context(name.slice(0, slash), name.slice(slash + 1));
    }
    return this.context(location.bucket, clientKey);
  }

  /** The client's view of a backing object (decrypting its sealed metadata and trailer). */
  async view(location: ObjectLocation, head: BackingObjectHead, clientKey: string | undefined): Promise<ObjectView> {
    const cached = this.#views.get(this.#viewKey(location, head.etag));
    // The time comes from the store's answer, not the cache: a view remembered at write time has none yet.
    if (cached) return { ...cached, lastModified: head.lastModified };
    const view = await this.#buildView(location, head, clientKey);
    // A clear object's ETag is the MD5 of its content: a new upload of the same bytes must not find the old metadata.
    if (view.encrypted) this.#remember(location, view);
    return view;
  }

  /** The remembered view of a backing object at this ETag, if any: a listing, which has the ETag, then needs no HEAD. */
  cachedView(location: ObjectLocation, backingEtag: string, lastModified: Date): ObjectView | undefined {
    const cached = this.#views.get(this.#viewKey(location, backingEtag));
    return cached ? { ...cached, lastModified } : undefined;
  }

  #viewKey(location: ObjectLocation, backingEtag: string): string {
    return `${location.zone.name}\0${location.bucket}\0${location.backingKey}\0${backingEtag}`;
  }

  #remember(location: ObjectLocation, view: ObjectView): void {
    if (this.#views.size >= VIEW_CACHE_ENTRIES) this.#views.delete(this.#views.keys().next().value as string);
    this.#views.set(this.#viewKey(location, view.backingEtag), view);
  }

  async #buildView(location: ObjectLocation, head: BackingObjectHead, clientKey: string | undefined): Promise<ObjectView> {
    const base = { bucket: location.bucket, zone: location.zone.name, backingBucket: location.zone.bucket(location.bucket),
      backingKey: location.backingKey, backingSize: head.contentLength, backingEtag: head.etag, lastModified: head.lastModified };
    if (head.metadata[META_FORMAT] === undefined) {
      throw new S3Error('InvalidObjectState', 'The stored object was not written through this zone proxy; it is not served.');
    }
    if (head.metadata[META_MODE] !== 'enc') {
      // Stored in clear by a pass rule: public by the owner's choice, and as trustworthy as the backing store.
      const userMetadata = Object.fromEntries(Object.entries(head.metadata).filter(([name]) => !name.startsWith('tp-')));
      return { ...base, key: clientKey ?? location.backingKey, size: head.contentLength, etag: head.etag,
        contentType: head.contentType ?? 'application/octet-stream', userMetadata, headers: head.headers, encrypted: false };
    }
    if (head.metadata[META_FORMAT] !== OBJECT_FORMAT_VERSION) {
      throw new S3Error('InvalidObjectState', `The stored object has format ${head.metadata[META_FORMAT] ?? 'none'}, which this proxy does not read.`);
    }
    const name = clientKey ?? await this.#sealedName(location, head);
    const info = await this.#openInfo(location, head, name);
    let etag = info.etag;
    if (!etag) etag = await this.#readTrailerEtag(location, head, name);
    return { ...base, key: name, size: info.size, etag, contentType: info.contentType, userMetadata: info.userMetadata,
      headers: info.headers, encrypted: true, layout: info.layout };
  }

  async #sealedName(location: ObjectLocation, head: BackingObjectHead): Promise<string> {
    // A hashed backing name says nothing, and the sealed metadata's context needs the name: the name itself is
    // encrypted by the key service under a context without it (bucket, zone), and read back here.
    const sealedName = head.metadata[META_NAME];
    if (!sealedName) throw new S3Error('InvalidObjectState', 'A stored object under a hashed name carries no sealed name.');
    return this.keys.openName(location.bucket, Buffer.from(sealedName, 'base64'));
  }

  #wrappedKey(head: BackingObjectHead): Buffer {
    const text = head.metadata[META_WRAPPED_KEY];
    if (!text) throw new S3Error('InvalidObjectState', 'The stored object carries no wrapped data key.');
    return Buffer.from(text, 'base64');
  }

  async #openInfo(location: ObjectLocation, head: BackingObjectHead, clientKey: string): Promise<SealedObjectInfo> {
    const context = this.objectContext(location, head, clientKey);
    const dataKey = await this.keys.unwrapDataKey(this.#wrappedKey(head), context);
    try {
      const sealed = head.metadata[META_SEALED];
      if (!sealed) throw new S3Error('InvalidObjectState', 'The stored object carries no sealed metadata.');
      let info: SealedObjectInfo;
      try {
        info = JSON.parse(openObjectMetadata(dataKey, context, sealed).toString('utf8')) as SealedObjectInfo;
      } catch {
        throw new S3Error('InvalidObjectState', 'The stored object\'s metadata does not authenticate: it was tampered with at the backing store.');
      }
      if (info.v !== 1 || typeof info.size !== 'number') throw new S3Error('InvalidObjectState', 'The stored object\'s metadata has an unknown shape.');
      return info;
    } finally {
      zeroize(dataKey);
    }
  }

  async #readTrailerEtag(location: ObjectLocation, head: BackingObjectHead, clientKey: string): Promise<string> {
    if (head.contentLength < this.trailerLength) throw new S3Error('InvalidObjectState', 'The stored object is truncated.');
    const answer = await location.zone.getObject(location.bucket, location.backingKey,
      { start: head.contentLength - this.trailerLength, end: head.contentLength - 1 });
    const bytes = await collectBounded(answer.body, this.trailerLength);
    const text = bytes.toString('latin1');
    if (!text.startsWith(TRAILER_MAGIC)) throw new S3Error('InvalidObjectState', 'The stored object is truncated or its end was altered.');
    const context = this.objectContext(location, head, clientKey);
    const dataKey = await this.keys.unwrapDataKey(this.#wrappedKey(head), context);
    try {
      const md5 = openObjectMetadata(dataKey, { ...context, part: 'trailer' }, text.slice(TRAILER_MAGIC.length));
      return `"${md5.toString('hex')}"`;
    } catch {
      throw new S3Error('InvalidObjectState', 'The stored object\'s end does not authenticate: it was truncated or altered at the backing store.');
    } finally {
      zeroize(dataKey);
    }
  }

  /** The sealed trailer that follows a single PUT's ciphertext. */
  sealTrailer(dataKey: Uint8Array, context: EncryptionContext, md5: Buffer): Buffer {
    return Buffer.from(TRAILER_MAGIC + sealObjectMetadata(dataKey, { ...context, part: 'trailer' }, md5), 'latin1');
  }

  /** Backing metadata for an encrypted object. */
  sealInfo(dataKey: Uint8Array, wrapped: Uint8Array, context: EncryptionContext, info: SealedObjectInfo, extra: Record<string, string> = {}): Record<string, string> {
    const metadata: Record<string, string> = {
      [META_FORMAT]: OBJECT_FORMAT_VERSION, [META_MODE]: 'enc', [META_WRAPPED_KEY]: Buffer.from(wrapped).toString('base64'),
      [META_SEALED]: sealObjectMetadata(dataKey, context, Buffer.from(JSON.stringify(info), 'utf8')), ...extra,
    };
    const bytes = Object.entries(metadata).reduce((total, [name, value]) => total + name.length + value.length, 0);
    if (bytes > 2000) throw new S3Error('MetadataTooLarge', 'The object\'s metadata, once encrypted, exceeds what S3 stores (2 KB); use fewer or shorter metadata values.');
    return metadata;
  }

  /** Plaintext of an object (or a range of it), decrypted and verified chunk by chunk. */
  async openBody(location: ObjectLocation, head: BackingObjectHead, view: ObjectView, range?: { start: number; end: number }): Promise<Readable> {
    if (!view.encrypted) {
      const answer = await location.zone.getObject(location.bucket, location.backingKey, range);
      return answer.body;
    }
    // The view carries the layout it was opened with: the sealed metadata is not opened a second time.
    const layout = decodeObjectLayout(view.layout ?? (await this.#openInfo(location, head, view.key)).layout);
    const context = this.objectContext(location, head, view.key);
    const dataKey = await this.keys.unwrapDataKey(this.#wrappedKey(head), context);
    const ciphertextLength = layout.kind === 'single' ? head.contentLength - this.trailerLength : head.contentLength;
    const source: CiphertextSource = {
      length: ciphertextLength,
      read: async (start, end) => (await location.zone.getObject(location.bucket, location.backingKey, { start, end })).body,
    };
    try {
      return await openObjectRange(source, { dataKey, context: this.bodyContext(), layout, range });
    } catch (error) {
      throw ciphertextRefusal(error);
    } finally {
      zeroize(dataKey);
    }
  }

  /** The layout text of a single object written in one PUT. */
  singleLayout(plaintextLength: number): ObjectLayout {
    return { kind: 'single', plaintextLength, chunkSize: this.config.chunkSize };
  }

  /**
   * Encrypts a plaintext stream into a backing object (sealed metadata first, trailer last). The body must be
   * `plaintextLength` bytes; the backing store receives exactly the computed ciphertext length, so a body that errors
   * or runs short leaves no object behind. Returns the plaintext MD5 (the client's ETag).
   */
  async writeEncrypted(target: ObjectLocation, options: {
    context: EncryptionContext; keySpec: DataKeySpec; plaintext: Readable; plaintextLength: number;
    info: Omit<SealedObjectInfo, 'layout' | 'etag' | 'size' | 'v'>; extraMetadata?: Record<string, string>;
    observe?: (chunk: Buffer) => void;
  }): Promise<{ etag: string; backingEtag: string }> {
    const { plaintext: dataKey, wrapped } = await this.keys.generateDataKey(options.context, options.keySpec);
    try {
      const layout = this.singleLayout(options.plaintextLength);
      const info: SealedObjectInfo = { v: 1, ...options.info, size: options.plaintextLength, layout: encodeObjectLayout(layout) };
      const metadata = this.sealInfo(dataKey, wrapped, options.context, info, {
        ...(target.zone.config.hashNames ? { [META_NAME]: (await this.keys.sealName(target.bucket, options.info.name)).toString('base64') } : {}),
        ...options.extraMetadata,
      });
      const length = encryptedObjectLength(options.plaintextLength, { wrappedDataKey: wrapped, context: this.bodyContext(), chunkSize: this.config.chunkSize })
        + this.trailerLength;
      const md5 = createHash('md5');
      const observe = new Transform({
        transform(chunk: Buffer, _encoding, callback: TransformCallback) {
          md5.update(chunk);
          options.observe?.(chunk);
          callback(null, chunk);
        },
      });
      const encryptor = createObjectEncryptStream({ dataKey, wrappedDataKey: wrapped, context: this.bodyContext(), chunkSize: this.config.chunkSize });
      const trailer = this.#trailerStage(dataKey, options.context, md5);
      const put = await pumpInto(options.plaintext, [exactLength(options.plaintextLength), observe, encryptor, trailer],
        (body) => target.zone.putObject(target.bucket, target.backingKey, body, length, metadata, 'application/octet-stream'));
      const etag = `"${(trailer as Transform & { md5Hex: string }).md5Hex}"`;
      // What a first GET would otherwise learn with a key-service call and a read of the trailer (a quarantine or
      // evidence copy is named differently and learns it the slow way).
      if (!options.extraMetadata?.[META_ORIGIN]) this.#remember(target, { bucket: target.bucket, key: options.info.name, size: options.plaintextLength, etag, lastModified: new Date(0),
        contentType: options.info.contentType, userMetadata: options.info.userMetadata, headers: options.info.headers, zone: target.zone.name,
        backingBucket: target.zone.bucket(target.bucket), backingKey: target.backingKey, backingSize: length, backingEtag: put.etag, encrypted: true,
        layout: info.layout });
      return { etag, backingEtag: put.etag };
    } finally {
      zeroize(dataKey);
    }
  }

  #trailerStage(dataKey: Buffer, context: EncryptionContext, md5: ReturnType<typeof createHash>): Transform {
    const objects = this;
    const keyCopy = Buffer.from(dataKey);
    const stage = new Transform({
      transform(chunk: Buffer, _encoding, callback: TransformCallback) { callback(null, chunk); },
      flush(callback: TransformCallback) {
        const digest = md5.digest();
        (stage as Transform & { md5Hex: string }).md5Hex = digest.toString('hex');
        try {
          callback(null, objects.sealTrailer(keyCopy, context, digest));
        } finally {
          zeroize(keyCopy);
        }
      },
    });
    stage.once('close', () => zeroize(keyCopy));
    return stage;
  }

  /** Encrypts one multipart part; returns the backing part's ETag (which is also the client's part ETag). */
  async writePart(target: ObjectLocation, uploadId: string, segment: ObjectSegment, options: {
    dataKey: Uint8Array; wrapped: Uint8Array; context: EncryptionContext; plaintext: Readable; plaintextLength: number;
  }): Promise<string> {
    const length = encryptedObjectLength(options.plaintextLength, { wrappedDataKey: options.wrapped, context: this.bodyContext(),
      chunkSize: this.config.chunkSize, segment });
    const encryptor = createObjectEncryptStream({ dataKey: options.dataKey, wrappedDataKey: options.wrapped, context: this.bodyContext(),
      chunkSize: this.config.chunkSize, segment });
    const part = await pumpInto(options.plaintext, [exactLength(options.plaintextLength), encryptor],
      (body) => target.zone.uploadPart(target.bucket, target.backingKey, uploadId, segment.partNumber, body, length));
    return part.etag;
  }

  /** Whether a backing key is one of the proxy's own (staging, upload records). */
  static isReserved(backingKey: string): boolean {
    return backingKey.startsWith(RESERVED_PREFIX);
  }
}

/** Refuses a body that is longer or shorter than declared (the backing store was promised exactly `length` bytes). */
export function exactLength(length: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      callback(seen > length ? new S3Error('IncompleteBody', 'The request body is longer than its declared length.') : null, chunk);
    },
    flush(callback: TransformCallback) {
      callback(seen === length ? undefined : new S3Error('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.'));
    },
  });
}

/**
 * Pipes `source` through `stages` into a backing upload that reads `body`. Either failing fails both: a broken body
 * aborts the upload (it never receives its declared length), a refused upload stops reading the source.
 */
export async function pumpInto<T>(source: Readable, stages: Transform[], upload: (body: Readable) => Promise<T>): Promise<T> {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const uploaded = upload(out);
  const flow = pipeline([source, ...stages, out]);
  const [, result] = await Promise.all([flow.catch((error: unknown) => { out.destroy(error as Error); throw error; }),
    uploaded.catch((error: unknown) => { source.destroy(); throw error; })]);
  return result;
}

/** A ciphertext that does not authenticate is the backing store's doing, not the caller's: a typed refusal. */
export function ciphertextRefusal(error: unknown): Error {
  if (error instanceof S3Error) return error;
  if ((error as { code?: string }).code === 'InvalidCiphertextException' || (error as Error).name === 'CiphertextError') {
    return new S3Error('InvalidObjectState', 'The stored object does not authenticate: it was tampered with, truncated or swapped at the backing store.');
  }
  return error as Error;
}

/** A small stream read whole, refusing it past `limit` bytes with `tooLong` (whose error it is depends on who sent it). */
export async function collectBounded(stream: Readable, limit: number,
  tooLong = () => new S3Error('InvalidObjectState', 'The backing store answered more bytes than asked for.')): Promise<Buffer> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > limit) throw tooLong();
    parts.push(chunk as Buffer);
  }
  return Buffer.concat(parts);
}
