// The zone proxy's S3 operations: buckets across zones, objects through encryption and data policies, multipart.
// Must never store an object a rule denies, leave a staged copy visible, or place plaintext where policy asks for ciphertext.
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { DetectorMatch } from '../../../shared/data-policy/index.ts';
import { encryptedObjectLength, openObjectMetadata, openObjectRange, randomUuid, sealObjectMetadata, sha256Hex, zeroize, type EncryptionContext } from '../../../shared/crypto/index.ts';
import type { DataKeySpec, ZoneProxyConfig } from '../config.ts';
import type { BackingObjectHead, BackingZone } from './backing.ts';
import { decidePolicy, planPolicy, type PolicyDecision, type PolicyPlan } from './domain/policy.ts';
import { encodeObjectLayout, type ObjectLayout } from './domain/object-layout.ts';
import { S3Error } from './errors.ts';
import {
  META_FORMAT, META_MODE, META_NAME, META_ORIGIN, META_PENDING, META_WRAPPED_KEY, OBJECT_FORMAT_VERSION, STAGING_PREFIX,
  PARTS_PREFIX, UPLOADS_PREFIX, type ObjectView, type SealedObjectInfo,
} from './object-metadata.ts';
import { ciphertextRefusal, collectBounded, exactLength, pumpInto, ZoneObjects, type ObjectLocation } from './objects.ts';
import { describeMatches, type PolicyAudit } from './policy-audit.ts';

const MIN_PART_SIZE = 5 * 1024 * 1024;
const LIST_CONCURRENCY = 16;

export interface Caller { accessKeyId: string }

export interface ObjectInput {
  body: Readable;
  length: number;
  contentType: string;
  userMetadata: Record<string, string>;
  headers: SealedObjectInfo['headers'];
  /** A signed x-trustplane-zone header: place new objects in this zone. */
  requestedZone?: string;
}

export interface PutOutcome {
  etag: string;
  /** Response headers telling the caller what policy did (x-trustplane-policy-*). */
  policyHeaders: Record<string, string>;
}

export interface ListedObject { key: string; size: number; etag: string; lastModified: Date }

interface UploadRecord {
  v: 1;
  uploadId: string;
  initiated: string;
  /** Where the parts go: the backing name (staging, quarantine or final) in record.bucket. */
  backingKey: string;
  mode: 'enc' | 'clear';
  /** The client bucket and key the upload completes to (the quarantine bucket for a quarantine-by-location). */
  bucket: string;
  staging: boolean;
  keySpec: DataKeySpec;
  wrapped?: string;
  /** Content type, user metadata and stored headers, sealed under the data key. */
  sealed?: string;
  /** Clear uploads: content type and metadata go to the backing store as they are. */
  clear?: { contentType: string; userMetadata: Record<string, string> };
  /** The client key: in clear for zones that show names, encrypted by the key service for zones that hash them. */
  name?: string;
  sealedName?: string;
  origin?: boolean;
}

/** An upload record as stored: the record sealed under a data key bound to bucket, zone and upload. */
interface SealedUploadRecord { v: 2; uploadId: string; wrapped: string; sealed: string }

/** What the proxy recorded of an uploaded part (the backing store's ListParts is not relied upon). */
interface PartRecord { partNumber: number; etag: string; plaintextLength: number; ciphertextLength: number; lastModified: string }

function locationMatchesKey(error: unknown): boolean {
  return error instanceof S3Error && (error.code === 'NoSuchKey' || error.code === 'NoSuchBucket');
}

async function mapLimited<T, R>(items: readonly T[], limit: number, run: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await run(items[index]);
    }
  }));
  return results;
}


export class ZoneS3Service {
  readonly #config: ZoneProxyConfig;
  readonly #objects: ZoneObjects;
  readonly #audit: PolicyAudit;
  readonly #logger: Logger;

  constructor(config: ZoneProxyConfig, objects: ZoneObjects, audit: PolicyAudit, logger: Logger) {
    this.#config = config;
    this.#objects = objects;
    this.#audit = audit;
    this.#logger = logger;
  }

  get #zones(): BackingZone[] {
    return [...this.#objects.zones.values()];
  }

  // ---- buckets ---------------------------------------------------------------------------------------------

  async listBuckets(): Promise<Array<{ name: string; created: Date }>> {
    const byName = new Map<string, Date>();
    for (const listing of await Promise.all(this.#zones.map((zone) => zone.listBuckets()))) {
      for (const bucket of listing) {
        const known = byName.get(bucket.name);
        if (!known || bucket.created < known) byName.set(bucket.name, bucket.created);
      }
    }
    return [...byName.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, created]) => ({ name, created }));
  }

  /** A bucket exists in every zone, so that policy can route any object of it anywhere. */
  async createBucket(bucket: string): Promise<void> {
    checkBucketName(bucket);
    const present = await Promise.all(this.#zones.map((zone) => zone.hasBucket(bucket)));
    if (present.every(Boolean)) throw new S3Error('BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.', { BucketName: bucket });
    await Promise.all(this.#zones.map((zone, index) => (present[index] ? undefined : zone.createBucket(bucket))));
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.headBucket(bucket);
    for (const zone of this.#zones) {
      const listing = await zone.listObjects(bucket, { maxKeys: 1 }).catch((error: unknown) => {
        if (locationMatchesKey(error)) return undefined;
        throw error;
      });
      if (listing && listing.objects.length > 0) {
        throw new S3Error('BucketNotEmpty', 'The bucket you tried to delete is not empty.', { BucketName: bucket });
      }
    }
    for (const zone of this.#zones) {
      if (await zone.hasBucket(bucket)) await zone.deleteBucket(bucket);
    }
  }

  async headBucket(bucket: string): Promise<void> {
    const present = await Promise.all(this.#zones.map((zone) => zone.hasBucket(bucket)));
    if (!present.some(Boolean)) throw new S3Error('NoSuchBucket', 'The specified bucket does not exist.', { BucketName: bucket });
  }

  // ---- reading ----------------------------------------------------------------------------------------------

  /** Finds an object and its client view; NoSuchKey when no zone holds it. */
  async headObject(bucket: string, key: string): Promise<{ view: ObjectView; location: ObjectLocation; head: BackingObjectHead }> {
    checkKey(key);
    const found = await this.#objects.locate(bucket, key);
    if (!found) {
      await this.headBucket(bucket);
      throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: key });
    }
    const view = await this.#objects.view(found.location, found.head, key);
    return { view, location: found.location, head: found.head };
  }

  async openObject(found: { view: ObjectView; location: ObjectLocation; head: BackingObjectHead }, range?: { start: number; end: number }): Promise<Readable> {
    return this.#objects.openBody(found.location, found.head, found.view, range);
  }

  async listObjects(bucket: string, options: { prefix: string; delimiter: string; maxKeys: number; startAfter: string }): Promise<{
    objects: ListedObject[]; commonPrefixes: string[]; truncated: boolean; last?: string;
  }> {
    await this.headBucket(bucket);
    type Entry = { sortKey: string; object?: { zone: BackingZone; backingKey: string; head: BackingObjectHead | undefined; key: string; size: number; etag: string; lastModified: Date }; prefix?: string };
    const want = options.maxKeys + 1;
    const perZone = await Promise.all(this.#zones.map(async (zone): Promise<Entry[]> => {
      if (!(await zone.hasBucket(bucket))) return [];
      const entries: Entry[] = [];
      if (zone.config.hashNames) {
        // Names are hashes here: read every object's sealed name (cached), then filter and group ourselves.
        let token: string | undefined;
        const grouped = new Set<string>();
        do {
          const page = await zone.listObjects(bucket, { continuationToken: token });
          const visible = page.objects.filter((entry) => !ZoneObjects.isReserved(entry.key));
          const views = await mapLimited(visible, LIST_CONCURRENCY, async (entry) => {
            const location = { zone, bucket, backingKey: entry.key };
            try {
              const head = await zone.headObject(bucket, entry.key);
              if (head.metadata[META_PENDING]) return undefined;
              return await this.#objects.view(location, head, undefined);
            } catch (error) {
              if (locationMatchesKey(error)) return undefined;
              throw error;
            }
          });
          for (const view of views) {
            if (!view || !view.key.startsWith(options.prefix) || view.key <= options.startAfter) continue;
            const rest = view.key.slice(options.prefix.length);
            const cut = options.delimiter ? rest.indexOf(options.delimiter) : -1;
            if (cut >= 0) {
              const prefix = options.prefix + rest.slice(0, cut + options.delimiter.length);
              if (!grouped.has(prefix) && prefix > options.startAfter) { grouped.add(prefix); entries.push({ sortKey: prefix, prefix }); }
            } else {
              entries.push({ sortKey: view.key, object: { zone, backingKey: view.backingKey, head: undefined, key: view.key, size: view.size, etag: view.etag, lastModified: view.lastModified } });
            }
          }
          token = page.nextContinuationToken;
        } while (token);
        return entries;
      }
      let token: string | undefined;
      do {
        const page = await zone.listObjects(bucket, { prefix: options.prefix, delimiter: options.delimiter, startAfter: options.startAfter,
          continuationToken: token, maxKeys: Math.min(1000, want) });
        for (const entry of page.objects) {
          if (ZoneObjects.isReserved(entry.key)) continue;
          entries.push({ sortKey: entry.key, object: { zone, backingKey: entry.key, head: undefined, key: entry.key, size: entry.size, etag: entry.etag, lastModified: entry.lastModified } });
        }
        for (const prefix of page.commonPrefixes) {
          if (ZoneObjects.isReserved(prefix) || prefix <= options.startAfter) continue;
          entries.push({ sortKey: prefix, prefix });
        }
        token = entries.length >= want ? undefined : page.nextContinuationToken;
      } while (token);
      return entries;
    }));
    const merged = perZone.flat().sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    const unique: Entry[] = [];
    for (const entry of merged) if (unique.at(-1)?.sortKey !== entry.sortKey) unique.push(entry);
    const page = unique.slice(0, options.maxKeys);
    const truncated = unique.length > options.maxKeys;
    const objects = await mapLimited(page.filter((entry) => entry.object), LIST_CONCURRENCY, async (entry) => {
      const object = entry.object as NonNullable<Entry['object']>;
      if (object.zone.config.hashNames) return { key: object.key, size: object.size, etag: object.etag, lastModified: object.lastModified };
      const cached = this.#objects.cachedView({ zone: object.zone, bucket, backingKey: object.backingKey }, object.etag, object.lastModified);
      if (cached) return { key: cached.key, size: cached.size, etag: cached.etag, lastModified: cached.lastModified };
      try {
        const head = await object.zone.headObject(bucket, object.backingKey);
        if (head.metadata[META_PENDING]) return undefined;
        const view = await this.#objects.view({ zone: object.zone, bucket, backingKey: object.backingKey }, head, object.key);
        return { key: view.key, size: view.size, etag: view.etag, lastModified: view.lastModified };
      } catch (error) {
        // Listed, then deleted before we looked: S3 shows what it listed; we show it with its backing figures.
        if (locationMatchesKey(error)) return undefined;
        throw error;
      }
    });
    const last = page.at(-1);
    return { objects: objects.filter((entry): entry is ListedObject => entry !== undefined),
      commonPrefixes: page.flatMap((entry) => (entry.prefix ? [entry.prefix] : [])), truncated,
      last: last ? (last.prefix ? `${last.prefix}\u{10FFFF}` : last.sortKey) : undefined };
  }

  // ---- writing ----------------------------------------------------------------------------------------------

  async putObject(caller: Caller, bucket: string, key: string, input: ObjectInput, operation = 'PutObject'): Promise<PutOutcome> {
    checkKey(key);
    await this.headBucket(bucket);
    const plan = planPolicy(this.#config.rules, { bucket, key, contentType: input.contentType }, this.#config.defaultKeySpec);
    const planned = this.#objects.placementZone(bucket, input.requestedZone);
    const info = { name: key, contentType: input.contentType, userMetadata: input.userMetadata, headers: input.headers };
    const context = this.#objects.context(bucket, key);
    if (!plan.needsScan) {
      const decision = plan.unscanned;
      await this.#refuseIfDenied(caller, operation, bucket, key, decision, [], input.length);
      const target = await this.#destination(decision, planned, bucket, key);
      let etag: string;
      if (decision.pass) {
        const put = await this.#writeClear(target, input.body, input.length, input.contentType, input.userMetadata, input.headers);
        etag = put.etag;
      } else {
        ({ etag } = await this.#objects.writeEncrypted(target.location, { context, keySpec: plan.keySpec, plaintext: input.body,
          plaintextLength: input.length, info, extraMetadata: target.origin ? { [META_ORIGIN]: '1' } : undefined }));
      }
      await this.#afterWrite(caller, operation, bucket, key, decision, target, [], input.length);
      return { etag, policyHeaders: policyHeaders(decision) };
    }

    // Detector rules apply here: the object is written, encrypted, to a staging name while it is scanned, and only
    // placed (or dropped) once the whole body has been seen.
    const scanner = this.#config.scanner?.createScanner();
    const matches: DetectorMatch[] = [];
    const staging: ObjectLocation = { zone: planned, bucket, backingKey: `${STAGING_PREFIX}${randomUuid()}` };
    let written: { etag: string };
    try {
      written = await this.#objects.writeEncrypted(staging, { context, keySpec: plan.keySpec, plaintext: input.body, plaintextLength: input.length, info,
        observe: (chunk) => { if (scanner) matches.push(...scanner.write(chunk)); } });
    } catch (error) {
      await staging.zone.deleteObject(bucket, staging.backingKey).catch(() => undefined);
      throw error;
    }
    if (scanner) matches.push(...scanner.finish());
    try {
      return await this.#placeStaged(caller, operation, plan, staging, { bucket, key, etag: written.etag, length: input.length,
        contentType: input.contentType, userMetadata: input.userMetadata, matches, planned });
    } finally {
      await staging.zone.deleteObject(bucket, staging.backingKey).catch((error: unknown) => {
        this.#logger.warn({ err: (error as Error).name, zone: staging.zone.name }, 'could not delete a staged object; it stays hidden');
      });
    }
  }

  /** Places an object that was staged while being scanned, as the detectors' findings decide. */
  async #placeStaged(caller: Caller, operation: string, plan: PolicyPlan, staging: ObjectLocation, object: {
    bucket: string; key: string; etag: string; length: number; contentType: string; userMetadata: Record<string, string>;
    matches: DetectorMatch[]; planned: BackingZone; replaceMetadata?: Record<string, string>;
  }): Promise<PutOutcome> {
    const decision = decidePolicy(plan.candidates, new Set(object.matches.map((match) => match.type)));
    await this.#refuseIfDenied(caller, operation, object.bucket, object.key, decision, object.matches, object.length);
    const target = await this.#destination(decision, object.planned, object.bucket, object.key);
    const stagedHead = await staging.zone.headObject(staging.bucket, staging.backingKey);
    // A multipart object's layout arrives with replaceMetadata: read and copy it with that metadata.
    const metadata = { ...stagedHead.metadata, ...object.replaceMetadata };
    delete metadata[META_PENDING];
    if (decision.pass) {
      const head = { ...stagedHead, metadata };
      const view = await this.#objects.view(staging, head, object.key);
      const plaintext = await this.#objects.openBody(staging, head, view);
      await this.#writeClear(target, plaintext, object.length, object.contentType, object.userMetadata, view.headers);
    } else {
      delete metadata[META_NAME];
      if (target.origin) metadata[META_ORIGIN] = '1';
      if (target.location.zone.config.hashNames) {
        metadata[META_NAME] = (await this.#objects.keys.sealName(target.location.bucket, target.clientKey)).toString('base64');
      }
      await this.#copyObject(staging, target.location, metadata);
    }
    await this.#afterWrite(caller, operation, object.bucket, object.key, decision, target, object.matches, object.length);
    return { etag: object.etag, policyHeaders: policyHeaders(decision) };
  }

  async #refuseIfDenied(caller: Caller, operation: string, bucket: string, key: string, decision: PolicyDecision, matches: DetectorMatch[], bytes: number): Promise<void> {
    if (!decision.deny) return;
    await this.#record(caller, operation, bucket, key, 'denied', undefined, decision, matches, bytes);
    throw new S3Error('AccessDenied', `Access Denied by the zone's data policy (rule ${decision.deny}).`, { RuleName: decision.deny });
  }

  /** Where the object goes: its own name in the routed or planned zone, or its quarantine name. */
  async #destination(decision: PolicyDecision, planned: BackingZone, bucket: string, key: string): Promise<{ location: ObjectLocation; clientKey: string; origin: boolean }> {
    if (decision.quarantine) {
      const quarantine = this.#config.quarantine as { bucket: string; zone: string };
      const zone = this.#objects.zone(quarantine.zone);
      await this.#ensureBucket(zone, quarantine.bucket);
      const clientKey = `${bucket}/${key}`;
      return { location: { zone, bucket: quarantine.bucket, backingKey: await this.#objects.backingKey(zone, quarantine.bucket, clientKey) }, clientKey, origin: true };
    }
    const zone = decision.route ? this.#objects.zone(decision.route.zone) : planned;
    await this.#ensureBucket(zone, bucket);
    return { location: { zone, bucket, backingKey: await this.#objects.backingKey(zone, bucket, key) }, clientKey: key, origin: false };
  }

  async #ensureBucket(zone: BackingZone, bucket: string): Promise<void> {
    if (!(await zone.hasBucket(bucket))) await zone.createBucket(bucket);
  }

  async #writeClear(target: { location: ObjectLocation }, body: Readable, length: number, contentType: string, userMetadata: Record<string, string>,
    headers: SealedObjectInfo['headers']): Promise<{ etag: string }> {
    const { location } = target;
    return pumpInto(body, [exactLength(length)], (checked) => location.zone.putObject(location.bucket, location.backingKey, checked, length,
      { ...userMetadata, [META_FORMAT]: OBJECT_FORMAT_VERSION, [META_MODE]: 'clear' }, contentType, headers));
  }

  /** Copies a backing object, server-side within a zone, streamed between zones. */
  async #copyObject(source: ObjectLocation, target: ObjectLocation, metadata: Record<string, string>, head?: BackingObjectHead): Promise<void> {
    if (source.zone === target.zone) {
      await target.zone.copyObject({ bucket: source.bucket, key: source.backingKey }, { bucket: target.bucket, key: target.backingKey }, metadata,
        head?.contentType, head?.headers);
      return;
    }
    const object = await source.zone.getObject(source.bucket, source.backingKey);
    await target.zone.putObject(target.bucket, target.backingKey, object.body, object.contentLength, metadata, object.contentType, object.headers);
  }

  /** Snapshot, stale copies in other zones, the audit record. */
  async #afterWrite(caller: Caller, operation: string, bucket: string, key: string, decision: PolicyDecision,
    target: { location: ObjectLocation; clientKey: string; origin: boolean }, matches: DetectorMatch[], bytes: number): Promise<void> {
    if (!target.origin) {
      // An object lives in one zone: a newer write placed elsewhere retires the older copy.
      await Promise.all(this.#zones.filter((zone) => zone !== target.location.zone).map(async (zone) => {
        const backingKey = await this.#objects.backingKey(zone, bucket, key);
        await zone.deleteObject(bucket, backingKey).catch((error: unknown) => { if (!locationMatchesKey(error)) throw error; });
      }));
    }
    if (decision.snapshot.length > 0 && this.#config.evidence) {
      const evidence = this.#config.evidence;
      const zone = this.#objects.zone(evidence.zone);
      await this.#ensureBucket(zone, evidence.bucket);
      // One copy per snapshot, never overwritten by the next: <UTC time>-<random>/<bucket>/<key>.
      const stamp = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomUuid().slice(0, 8)}`;
      const clientKey = `${stamp}/${bucket}/${key}`;
      const head = await target.location.zone.headObject(target.location.bucket, target.location.backingKey);
      const metadata = { ...head.metadata };
      delete metadata[META_NAME];
      if (metadata[META_MODE] === 'enc') metadata[META_ORIGIN] = '1';
      if (zone.config.hashNames && metadata[META_MODE] === 'enc') metadata[META_NAME] = (await this.#objects.keys.sealName(evidence.bucket, clientKey)).toString('base64');
      await this.#copyObject(target.location, { zone, bucket: evidence.bucket, backingKey: await this.#objects.backingKey(zone, evidence.bucket, clientKey) }, metadata, head);
    }
    const outcome = decision.quarantine ? 'quarantined' : decision.pass ? 'passed' : 'stored';
    await this.#record(caller, operation, bucket, key, outcome, target.location.zone.name, decision, matches, bytes);
  }

  #record(caller: Caller, operation: string, bucket: string, key: string, outcome: 'stored' | 'denied' | 'quarantined' | 'passed',
    backingZone: string | undefined, decision: PolicyDecision, matches: DetectorMatch[], bytes: number): Promise<void> {
    if (decision.applied.length === 0 && matches.length === 0) return Promise.resolve();
    const described = describeMatches(matches);
    return this.#audit.record({ time: new Date().toISOString(), zone: this.#config.zone, accessKeyId: caller.accessKeyId, operation, bucket, key,
      outcome, backingZone, rules: decision.applied, logRules: decision.log,
      matches: decision.log.length > 0 ? described.matches : undefined, matchCounts: described.counts, bytes }, decision.log.length > 0);
  }

  async deleteObject(bucket: string, key: string): Promise<void> {
    checkKey(key);
    await this.headBucket(bucket);
    await Promise.all(this.#zones.map(async (zone) => {
      if (!(await zone.hasBucket(bucket))) return;
      const backingKey = await this.#objects.backingKey(zone, bucket, key);
      await zone.deleteObject(bucket, backingKey).catch((error: unknown) => { if (!locationMatchesKey(error)) throw error; });
    }));
  }

  async deleteObjects(bucket: string, keys: readonly string[]): Promise<Array<{ key: string; error?: S3Error }>> {
    await this.headBucket(bucket);
    return mapLimited(keys, LIST_CONCURRENCY, async (key) => {
      try {
        await this.deleteObject(bucket, key);
        return { key };
      } catch (error) {
        if (error instanceof S3Error) return { key, error };
        throw error;
      }
    });
  }

  /** CopyObject: the source is decrypted and the copy written under its own name and policy (a new data key). */
  async copyObject(caller: Caller, source: { bucket: string; key: string }, target: { bucket: string; key: string },
    options: { replaceMetadata?: { contentType: string; userMetadata: Record<string, string>; headers: SealedObjectInfo['headers'] }; requestedZone?: string;
      conditions: (view: ObjectView) => void }): Promise<PutOutcome & { lastModified: Date }> {
    const found = await this.headObject(source.bucket, source.key);
    options.conditions(found.view);
    const body = await this.openObject(found);
    const chosen = options.replaceMetadata ?? { contentType: found.view.contentType, userMetadata: found.view.userMetadata, headers: found.view.headers };
    try {
      const outcome = await this.putObject(caller, target.bucket, target.key, { body, length: found.view.size, ...chosen,
        requestedZone: options.requestedZone }, 'CopyObject');
      return { ...outcome, lastModified: new Date() };
    } finally {
      // A write refused before it read the source must still release the source's connection.
      body.destroy();
    }
  }

  // ---- multipart ---------------------------------------------------------------------------------------------

  #uploadRecordKey(uploadId: string): string {
    return `${UPLOADS_PREFIX}${sha256Hex(uploadId)}`;
  }

  #partRecordPrefix(uploadId: string): string {
    return `${PARTS_PREFIX}${sha256Hex(uploadId)}/`;
  }

  async createMultipartUpload(caller: Caller, bucket: string, key: string, input: Omit<ObjectInput, 'body' | 'length'>): Promise<string> {
    checkKey(key);
    await this.headBucket(bucket);
    const plan = planPolicy(this.#config.rules, { bucket, key, contentType: input.contentType }, this.#config.defaultKeySpec);
    const planned = this.#objects.placementZone(bucket, input.requestedZone);
    if (!plan.needsScan) await this.#refuseIfDenied(caller, 'CreateMultipartUpload', bucket, key, plan.unscanned, [], 0);
    const decision = plan.needsScan ? undefined : plan.unscanned;
    const target = plan.needsScan
      ? { location: { zone: planned, bucket, backingKey: `${STAGING_PREFIX}${randomUuid()}` }, clientKey: key, origin: false }
      : await this.#destination(decision as PolicyDecision, planned, bucket, key);
    const zone = target.location.zone;
    await this.#ensureBucket(zone, target.location.bucket);
    await this.#ensureBucket(zone, bucket);
    const record: UploadRecord = { v: 1, uploadId: '', initiated: new Date().toISOString(), mode: decision?.pass ? 'clear' : 'enc',
      bucket: target.location.bucket, backingKey: target.location.backingKey, staging: plan.needsScan, keySpec: plan.keySpec,
      origin: target.origin || undefined };
    if (zone.config.hashNames) record.sealedName = (await this.#objects.keys.sealName(bucket, key)).toString('base64');
    else record.name = key;
    if (record.mode === 'clear') {
      record.clear = { contentType: input.contentType, userMetadata: input.userMetadata };
      record.uploadId = await zone.createMultipartUpload(target.location.bucket, target.location.backingKey,
        { ...input.userMetadata, [META_FORMAT]: OBJECT_FORMAT_VERSION, [META_MODE]: 'clear' }, input.contentType);
    } else {
      const context = this.#objects.context(bucket, key);
      const dataKey = await this.#objects.keys.generateDataKey(context, plan.keySpec);
      try {
        record.wrapped = dataKey.wrapped.toString('base64');
        record.sealed = sealObjectMetadata(dataKey.plaintext, context, Buffer.from(JSON.stringify({ contentType: input.contentType,
          userMetadata: input.userMetadata, headers: input.headers }), 'utf8'));
      } finally {
        zeroize(dataKey.plaintext);
      }
      record.uploadId = await zone.createMultipartUpload(target.location.bucket, target.location.backingKey,
        { [META_FORMAT]: OBJECT_FORMAT_VERSION, [META_MODE]: 'enc', [META_WRAPPED_KEY]: record.wrapped, [META_PENDING]: '1' });
    }
    // The proxy keeps its own record of the upload (and, later, of each part) beside the data: stateless across
    // restarts and replicas, and independent of which multipart listings the backing store implements.
    const recordBody = await this.#sealRecord(bucket, record);
    await zone.putObject(bucket, this.#uploadRecordKey(record.uploadId), recordBody, recordBody.length, {}, 'application/json');
    return record.uploadId;
  }

  #recordContext(bucket: string, uploadId: string): EncryptionContext {
    return { bucket, zone: this.#config.zone, purpose: 'upload-record', upload: uploadId };
  }

  /**
   * An upload record decides where parts go and whether they are encrypted, and it sits in the backing store: it is
   * sealed under its own data key, bound to the bucket and the upload, so the store can neither read nor alter it.
   */
  async #sealRecord(bucket: string, record: UploadRecord): Promise<Buffer> {
    const context = this.#recordContext(bucket, record.uploadId);
    const recordKey = await this.#objects.keys.generateDataKey(context, 'AES_256');
    try {
      const sealed: SealedUploadRecord = { v: 2, uploadId: record.uploadId, wrapped: recordKey.wrapped.toString('base64'),
        sealed: sealObjectMetadata(recordKey.plaintext, context, Buffer.from(JSON.stringify(record), 'utf8')) };
      return Buffer.from(JSON.stringify(sealed), 'utf8');
    } finally {
      zeroize(recordKey.plaintext);
    }
  }

  async #openRecord(bucket: string, sealed: SealedUploadRecord): Promise<UploadRecord> {
    const damaged = () => new S3Error('InvalidObjectState', 'A multipart upload record of the zone proxy does not authenticate: it was altered at the backing store.');
    if (sealed.v !== 2 || typeof sealed.uploadId !== 'string' || typeof sealed.wrapped !== 'string' || typeof sealed.sealed !== 'string') throw damaged();
    const context = this.#recordContext(bucket, sealed.uploadId);
    const recordKey = await this.#objects.keys.unwrapDataKey(Buffer.from(sealed.wrapped, 'base64'), context).catch((error: unknown) => {
      if (error instanceof S3Error && error.code === 'InvalidObjectState') throw damaged();
      throw error;
    });
    try {
      const record = JSON.parse(openObjectMetadata(recordKey, context, sealed.sealed).toString('utf8')) as UploadRecord;
      if (record.uploadId !== sealed.uploadId) throw damaged();
      return record;
    } catch (error) {
      if (error instanceof S3Error) throw error;
      throw damaged();
    } finally {
      zeroize(recordKey);
    }
  }

  async #readRecord<T>(zone: BackingZone, bucket: string, backingKey: string): Promise<T> {
    const object = await zone.getObject(bucket, backingKey);
    try {
      return JSON.parse((await collectBounded(object.body, 64 * 1024)).toString('utf8')) as T;
    } catch (error) {
      if (error instanceof S3Error) throw error;
      throw new S3Error('InvalidObjectState', 'A multipart upload record of the zone proxy is damaged.');
    }
  }

  async #recordName(bucket: string, record: UploadRecord): Promise<string | undefined> {
    if (record.name !== undefined) return record.name;
    return record.sealedName ? this.#objects.keys.openName(bucket, Buffer.from(record.sealedName, 'base64')) : undefined;
  }

  /** The upload's record, from whichever zone holds it; NoSuchUpload if none, or if it belongs to another key. */
  async #upload(bucket: string, key: string, uploadId: string): Promise<{ record: UploadRecord; zone: BackingZone }> {
    const missing = () => new S3Error('NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId });
    if (uploadId.length === 0 || uploadId.length > 1024) throw missing();
    for (const zone of this.#objects.searchOrder(bucket)) {
      let record: UploadRecord;
      try {
        record = await this.#openRecord(bucket, await this.#readRecord<SealedUploadRecord>(zone, bucket, this.#uploadRecordKey(uploadId)));
      } catch (error) {
        if (locationMatchesKey(error)) continue;
        throw error;
      }
      if (record.uploadId !== uploadId || await this.#recordName(bucket, record) !== key) continue;
      return { record, zone };
    }
    throw missing();
  }

  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Readable, length: number): Promise<string> {
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
      throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive.', { ArgumentName: 'partNumber' });
    }
    const { record, zone } = await this.#upload(bucket, key, uploadId);
    const location = { zone, bucket: record.bucket, backingKey: record.backingKey };
    let etag: string;
    let ciphertextLength = length;
    if (record.mode === 'clear') {
      etag = (await pumpInto(body, [exactLength(length)], (checked) => zone.uploadPart(record.bucket, record.backingKey, uploadId, partNumber, checked, length))).etag;
    } else {
      const context = this.#objects.context(bucket, key);
      const wrapped = Buffer.from(record.wrapped as string, 'base64');
      const dataKey = await this.#objects.keys.unwrapDataKey(wrapped, context);
      const segment = { uploadId, partNumber };
      ciphertextLength = encryptedObjectLength(length, { wrappedDataKey: wrapped, context: this.#objects.bodyContext(), chunkSize: this.#config.chunkSize, segment });
      try {
        etag = await this.#objects.writePart(location, uploadId, segment, { dataKey, wrapped, context, plaintext: body, plaintextLength: length });
      } finally {
        zeroize(dataKey);
      }
    }
    const part: PartRecord = { partNumber, etag, plaintextLength: length, ciphertextLength, lastModified: new Date().toISOString() };
    const partBody = Buffer.from(JSON.stringify(part), 'utf8');
    await zone.putObject(bucket, `${this.#partRecordPrefix(uploadId)}${String(partNumber).padStart(5, '0')}`, partBody, partBody.length, {}, 'application/json');
    return etag;
  }

  async #parts(zone: BackingZone, bucket: string, uploadId: string): Promise<PartRecord[]> {
    const prefix = this.#partRecordPrefix(uploadId);
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await zone.listObjects(bucket, { prefix, continuationToken: token });
      keys.push(...page.objects.map((entry) => entry.key));
      token = page.nextContinuationToken;
    } while (token);
    const parts = await mapLimited(keys, LIST_CONCURRENCY, (recordKey) => this.#readRecord<PartRecord>(zone, bucket, recordKey));
    return parts.sort((a, b) => a.partNumber - b.partNumber);
  }

  async #forgetUpload(zone: BackingZone, bucket: string, uploadId: string): Promise<void> {
    const parts = await this.#parts(zone, bucket, uploadId);
    const prefix = this.#partRecordPrefix(uploadId);
    await zone.deleteObjects(bucket, [this.#uploadRecordKey(uploadId), ...parts.map((part) => `${prefix}${String(part.partNumber).padStart(5, '0')}`)]);
  }

  async listParts(bucket: string, key: string, uploadId: string): Promise<Array<{ partNumber: number; etag: string; size: number; lastModified: Date }>> {
    const { zone } = await this.#upload(bucket, key, uploadId);
    return (await this.#parts(zone, bucket, uploadId)).map((part) => ({ partNumber: part.partNumber, etag: part.etag,
      size: part.plaintextLength, lastModified: new Date(part.lastModified) }));
  }

  async abortMultipartUpload(bucket: string, key: string, uploadId: string): Promise<void> {
    const { record, zone } = await this.#upload(bucket, key, uploadId);
    await zone.abortMultipartUpload(record.bucket, record.backingKey, uploadId);
    await this.#forgetUpload(zone, bucket, uploadId);
  }

  async listMultipartUploads(bucket: string, prefix: string): Promise<Array<{ key: string; uploadId: string; initiated: Date }>> {
    await this.headBucket(bucket);
    const uploads: Array<{ key: string; uploadId: string; initiated: Date }> = [];
    for (const zone of this.#zones) {
      if (!(await zone.hasBucket(bucket))) continue;
      let token: string | undefined;
      do {
        const page = await zone.listObjects(bucket, { prefix: UPLOADS_PREFIX, continuationToken: token });
        const records = await mapLimited(page.objects, LIST_CONCURRENCY, (entry) =>
          this.#readRecord<SealedUploadRecord>(zone, bucket, entry.key).then((sealed) => this.#openRecord(bucket, sealed))
            .catch((error: unknown) => { if (locationMatchesKey(error)) return undefined; throw error; }));
        for (const record of records) {
          if (!record) continue;
          const name = await this.#recordName(bucket, record);
          if (name !== undefined && name.startsWith(prefix)) uploads.push({ key: name, uploadId: record.uploadId, initiated: new Date(record.initiated) });
        }
        token = page.nextContinuationToken;
      } while (token);
    }
    return uploads.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.getTime() - b.initiated.getTime()));
  }

  async completeMultipartUpload(caller: Caller, bucket: string, key: string, uploadId: string,
    requested: Array<{ partNumber: number; etag: string }>): Promise<PutOutcome> {
    const { record, zone } = await this.#upload(bucket, key, uploadId);
    for (let index = 1; index < requested.length; index += 1) {
      if (requested[index].partNumber <= requested[index - 1].partNumber) {
        throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.');
      }
    }
    const stored = new Map((await this.#parts(zone, bucket, uploadId)).map((part) => [part.partNumber, part]));
    const unquote = (etag: string) => etag.replace(/^"|"$/g, '');
    const parts = requested.map((part) => {
      const found = stored.get(part.partNumber);
      if (!found || unquote(found.etag) !== unquote(part.etag)) {
        throw new S3Error('InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.');
      }
      return found;
    });
    const context = this.#objects.context(bucket, key);
    const wrapped = record.wrapped ? Buffer.from(record.wrapped, 'base64') : undefined;
    const sizes = parts.map((part) => part.plaintextLength);
    sizes.slice(0, -1).forEach((size) => {
      if (size < MIN_PART_SIZE) throw new S3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size: every part but the last must be at least 5 MiB.');
    });
    const etagDigest = createHash('md5');
    for (const part of parts) etagDigest.update(Buffer.from(unquote(part.etag), 'hex'));
    const etag = `"${etagDigest.digest('hex')}-${parts.length}"`;
    const size = sizes.reduce((total, value) => total + value, 0);
    const location: ObjectLocation = { zone, bucket: record.bucket, backingKey: record.backingKey };
    const backingParts = parts.map((part) => ({ partNumber: part.partNumber, etag: part.etag }));
    const forget = () => this.#forgetUpload(zone, bucket, uploadId).catch((error: unknown) => {
      this.#logger.warn({ err: (error as Error).name, zone: zone.name }, 'could not delete the records of a completed upload');
    });
    if (record.mode === 'clear') {
      await zone.completeMultipartUpload(record.bucket, record.backingKey, uploadId, backingParts);
      await forget();
      const decision: PolicyDecision = { pass: 'location', snapshot: [], log: [], applied: [] };
      await this.#afterWrite(caller, 'CompleteMultipartUpload', bucket, key, decision, { location, clientKey: key, origin: false }, [], size);
      const head = await zone.headObject(record.bucket, record.backingKey);
      return { etag: head.etag, policyHeaders: {} };
    }

    // Everything that can refuse (metadata too large, a layout too irregular) is settled before the backing upload
    // completes: a refusal leaves the upload open for a retry and any older object untouched.
    const layout: ObjectLayout = { kind: 'multipart', uploadId, chunkSize: this.#config.chunkSize,
      parts: parts.map((part) => ({ partNumber: part.partNumber, plaintextLength: part.plaintextLength, ciphertextLength: part.ciphertextLength })) };
    const dataKey = await this.#objects.keys.unwrapDataKey(wrapped as Buffer, context);
    try {
      const described = JSON.parse(openObjectMetadata(dataKey, context, record.sealed as string).toString('utf8')) as {
        contentType: string; userMetadata: Record<string, string>; headers: SealedObjectInfo['headers'] };
      const { contentType, userMetadata } = described;
      const info: SealedObjectInfo = { v: 1, name: key, size, etag, contentType, userMetadata, headers: described.headers, layout: encodeObjectLayout(layout) };
      const metadata = this.#objects.sealInfo(dataKey, wrapped as Buffer, context, info, {
        ...(zone.config.hashNames ? { [META_NAME]: (await this.#objects.keys.sealName(record.bucket, record.origin ? `${bucket}/${key}` : key)).toString('base64') } : {}),
        ...(record.origin ? { [META_ORIGIN]: '1' } : {}),
      });
      await zone.completeMultipartUpload(record.bucket, record.backingKey, uploadId, backingParts);
      const plan = planPolicy(this.#config.rules, { bucket, key, contentType }, this.#config.defaultKeySpec);
      if (!record.staging) {
        // The layout is known only now: it joins the object's metadata by a server-side copy onto itself.
        await zone.copyObject({ bucket: record.bucket, key: record.backingKey }, { bucket: record.bucket, key: record.backingKey }, metadata);
        await forget();
        await this.#afterWrite(caller, 'CompleteMultipartUpload', bucket, key, plan.unscanned, { location, clientKey: key, origin: Boolean(record.origin) }, [], size);
        return { etag, policyHeaders: policyHeaders(plan.unscanned) };
      }
      // Detector rules apply: read the assembled object back once, scanning it, before placing it.
      try {
        const matches: DetectorMatch[] = [];
        const scanner = this.#config.scanner?.createScanner();
        const head = await zone.headObject(record.bucket, record.backingKey);
        const plaintext = await openObjectRange({ length: head.contentLength,
          read: async (start, end) => (await zone.getObject(record.bucket, record.backingKey, { start, end })).body }, { dataKey, context: this.#objects.bodyContext(), layout })
          .catch((error: unknown) => { throw ciphertextRefusal(error); });
        for await (const chunk of plaintext) if (scanner) matches.push(...scanner.write(chunk as Buffer));
        if (scanner) matches.push(...scanner.finish());
        await forget();
        return await this.#placeStaged(caller, 'CompleteMultipartUpload', plan, location, { bucket, key, etag, length: size, contentType, userMetadata,
          matches, planned: zone, replaceMetadata: metadata });
      } finally {
        await zone.deleteObject(record.bucket, record.backingKey).catch(() => undefined);
      }
    } finally {
      zeroize(dataKey);
    }
  }

}

function policyHeaders(decision: PolicyDecision): Record<string, string> {
  const headers: Record<string, string> = {};
  if (decision.quarantine) {
    headers['x-trustplane-policy-action'] = 'quarantine';
    headers['x-trustplane-policy-rule'] = decision.quarantine;
  } else if (decision.route) {
    headers['x-trustplane-policy-action'] = `route:${decision.route.zone}`;
    headers['x-trustplane-policy-rule'] = decision.route.rule;
  } else if (decision.pass) {
    headers['x-trustplane-policy-action'] = 'pass';
    headers['x-trustplane-policy-rule'] = decision.pass;
  }
  if (decision.snapshot.length > 0) headers['x-trustplane-policy-snapshot'] = decision.snapshot.join(',');
  return headers;
}

export function checkBucketName(bucket: string): void {
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    throw new S3Error('InvalidBucketName', 'The specified bucket is not valid.', { BucketName: bucket });
  }
}

export function checkKey(key: string): void {
  if (key === '') throw new S3Error('InvalidArgument', 'An object key must not be empty.');
  if (Buffer.byteLength(key) > 1024) throw new S3Error('KeyTooLongError', 'Your key is too long.');
  if (key.startsWith('.trustplane-')) throw new S3Error('InvalidArgument', 'Object keys starting with .trustplane- are reserved by the zone proxy.');
  // Some S3-compatible stores resolve `.` and `..` segments (s3rver does), which would let `a/../b` overwrite `b`.
  if (key.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw new S3Error('InvalidArgument', 'Object keys with . or .. path segments are refused by the zone proxy (some backing stores resolve them).');
  }
}

