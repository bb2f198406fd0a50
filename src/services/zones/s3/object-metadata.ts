// What the proxy stores with each backing object (S3 user metadata), and what a client sees of it.
// Must never put a client's metadata, content type or ETag in clear on an encrypted object.
import { S3Error } from './errors.ts';

/** Backing metadata names (x-amz-meta-…), all lower-case as S3 returns them. */
export const META_FORMAT = 'tp-format';
export const META_MODE = 'tp-mode';
export const META_WRAPPED_KEY = 'tp-key';
export const META_SEALED = 'tp-meta';
/** Present on quarantine and evidence copies: the object's context is that of `<bucket>/<key>` under its own name. */
export const META_ORIGIN = 'tp-origin';
/** Present while a multipart object is not yet complete (its layout is written on completion). */
/** On objects in a zone that hashes names: the client's name, encrypted by the key service. */
export const META_NAME = 'tp-name';
export const META_PENDING = 'tp-pending';
export const OBJECT_FORMAT_VERSION = '1';

/** Backing keys the proxy uses for itself, hidden from listings. */
export const RESERVED_PREFIX = '.trustplane-';
export const STAGING_PREFIX = '.trustplane-staging/';
export const UPLOADS_PREFIX = '.trustplane-uploads/';
export const PARTS_PREFIX = '.trustplane-parts/';

/** The headers S3 stores with an object besides user metadata, which the proxy keeps sealed. */
export const STORED_HEADERS = ['cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'] as const;

/** What the sealed metadata of an encrypted object holds. */
export interface SealedObjectInfo {
  v: 1;
  /** The client's key (the backing name may be a hash of it). */
  name: string;
  /** Plaintext size. */
  size: number;
  /** The client-visible ETag, quoted; for single PUTs it is in the trailer instead (known only after the body). */
  etag?: string;
  contentType: string;
  userMetadata: Record<string, string>;
  headers: Partial<Record<(typeof STORED_HEADERS)[number], string>>;
  /** encodeObjectLayout text. */
  layout: string;
}

/** The client's view of an object. */
export interface ObjectView {
  bucket: string;
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
  contentType: string;
  userMetadata: Record<string, string>;
  headers: Partial<Record<(typeof STORED_HEADERS)[number], string>>;
  /** Where it lives. */
  zone: string;
  backingBucket: string;
  backingKey: string;
  backingSize: number;
  backingEtag: string;
  encrypted: boolean;
  /** An encrypted object's layout text (encodeObjectLayout), as its sealed metadata states it. */
  layout?: string;
}

// S3 counts user-defined metadata (names and values) up to 2 KB; ours must fit beside the client's.
export const MAX_CLIENT_METADATA_BYTES = 1024;

/** The client's x-amz-meta-* headers, checked for our reserved names and size. */
export function clientMetadataFrom(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const metadata: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const short = name.slice('x-amz-meta-'.length);
    if (short.startsWith('tp-')) throw new S3Error('InvalidArgument', `Metadata names starting with tp- are reserved by the zone proxy: x-amz-meta-${short}.`);
    const text = Array.isArray(value) ? value.join(',') : value;
    metadata[short] = text;
    bytes += short.length + Buffer.byteLength(text);
  }
  if (bytes > MAX_CLIENT_METADATA_BYTES) {
    throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size: the zone proxy keeps ${MAX_CLIENT_METADATA_BYTES} bytes of the 2 KB for its own encrypted metadata.`);
  }
  return metadata;
}

export function storedHeadersFrom(headers: Record<string, string | string[] | undefined>): SealedObjectInfo['headers'] {
  const stored: SealedObjectInfo['headers'] = {};
  for (const name of STORED_HEADERS) {
    const value = headers[name];
    if (typeof value === 'string' && value !== '') stored[name] = value;
  }
  return stored;
}
