// The zone's key service as the proxy uses it: a fresh data key per object, unwrapping on read, name hashing.
// Must never log a data key, keep an unwrapped key past its time in the cache, or reuse a data key across objects.
import { DecryptCommand, EncryptCommand, GenerateDataKeyCommand, GenerateMacCommand, KMSClient } from '@aws-sdk/client-kms';
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { encodeEncryptionContext, sha256Hex, zeroize, type EncryptionContext } from '../../../shared/crypto/index.ts';
import type { DataKeySpec, ZoneProxyConfig } from '../config.ts';
import { S3Error } from './errors.ts';

export interface DataKey {
  /** The plaintext data key: the caller zeroes it when the object is written. */
  plaintext: Buffer;
  wrapped: Buffer;
}

const UNWRAPPED_CACHE_ENTRIES = 4096;
const UNWRAPPED_CACHE_TTL_MS = 5 * 60 * 1000;
const NAME_CACHE_ENTRIES = 100_000;

interface CachedKey { key: Buffer; expires: number }

export class ZoneKeys {
  readonly #kms: KMSClient;
  readonly #keyId: string;
  readonly #nameKeyId: string | undefined;
  // Unwrapped data keys by (wrapped key, context): a listing or a Range GET must not cost a key-service call per
  // request. Entries are copies owned by the cache and zeroed when they leave it.
  readonly #unwrapped = new Map<string, CachedKey>();
  readonly #names = new Map<string, string>();
  // Expired keys are wiped on a timer too, not only when the same key is asked for again.
  readonly #sweeper = setInterval(() => this.#sweep(), 60_000).unref();

  readonly #zone: string;

  constructor(config: ZoneProxyConfig['kms'], zone: string) {
    this.#zone = zone;
    const agentOptions = { keepAlive: true, maxSockets: 64 };
    this.#kms = new KMSClient({ endpoint: config.endpoint, region: config.region, maxAttempts: 3,
      credentials: { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey },
      requestHandler: new NodeHttpHandler({ httpAgent: new Agent(agentOptions), httpsAgent: new HttpsAgent(agentOptions) }) });
    this.#keyId = config.keyId;
    this.#nameKeyId = config.nameKeyId;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [cacheKey, entry] of this.#unwrapped) {
      if (entry.expires <= now) { zeroize(entry.key); this.#unwrapped.delete(cacheKey); }
    }
  }

  destroy(): void {
    clearInterval(this.#sweeper);
    for (const entry of this.#unwrapped.values()) zeroize(entry.key);
    this.#unwrapped.clear();
    this.#kms.destroy();
  }

  #unavailable(error: unknown): S3Error {
    const name = (error as { name?: string }).name ?? 'error';
    return new S3Error('ServiceUnavailable', `The zone's key service refused or failed (${name}); try again.`, {}, { cause: error });
  }

  /** A fresh data key for one object, bound to its encryption context. */
  async generateDataKey(context: EncryptionContext, keySpec: DataKeySpec): Promise<DataKey> {
    try {
      const answer = await this.#kms.send(new GenerateDataKeyCommand({ KeyId: this.#keyId, KeySpec: keySpec, EncryptionContext: context }));
      if (!answer.Plaintext || !answer.CiphertextBlob) throw new Error('incomplete answer');
      return { plaintext: Buffer.from(answer.Plaintext), wrapped: Buffer.from(answer.CiphertextBlob) };
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  /**
   * Unwraps an object's data key. The caller gets its own copy (to zero). A key the key service refuses for
   * this context means the object was moved, swapped or tampered with: an InternalError-free, typed refusal.
   */
  async unwrapDataKey(wrapped: Uint8Array, context: EncryptionContext): Promise<Buffer> {
    const cacheKey = sha256Hex(Buffer.concat([encodeEncryptionContext(context), wrapped]));
    const now = Date.now();
    const cached = this.#unwrapped.get(cacheKey);
    if (cached && cached.expires > now) return Buffer.from(cached.key);
    if (cached) { zeroize(cached.key); this.#unwrapped.delete(cacheKey); }
    let plaintext: Buffer;
    try {
      const answer = await this.#kms.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: context, KeyId: this.#keyId }));
      if (!answer.Plaintext) throw new Error('no plaintext');
      plaintext = Buffer.from(answer.Plaintext);
    } catch (error) {
      const name = (error as { name?: string }).name;
      if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') {
        throw new S3Error('InvalidObjectState', 'The stored object does not belong under this name (its key does not open here): it was moved or tampered with at the backing store.');
      }
      throw this.#unavailable(error);
    }
    if (this.#unwrapped.size >= UNWRAPPED_CACHE_ENTRIES) {
      const oldest = this.#unwrapped.keys().next().value as string;
      zeroize(this.#unwrapped.get(oldest)?.key);
      this.#unwrapped.delete(oldest);
    }
    this.#unwrapped.set(cacheKey, { key: Buffer.from(plaintext), expires: now + UNWRAPPED_CACHE_TTL_MS });
    return plaintext;
  }

  /** The backing name of an object in a zone that hashes names: HMAC-SHA-256 under the zone's name key, in hex. */
  async hashName(bucket: string, key: string): Promise<string> {
    if (!this.#nameKeyId) throw new S3Error('InternalError', 'Name hashing is configured without kms.nameKeyId.');
    const message = `${bucket}\n${key}`;
    const cached = this.#names.get(message);
    if (cached) return cached;
    let hex: string;
    try {
      const answer = await this.#kms.send(new GenerateMacCommand({ KeyId: this.#nameKeyId, MacAlgorithm: 'HMAC_SHA_256', Message: Buffer.from(message, 'utf8') }));
      if (!answer.Mac) throw new Error('no mac');
      hex = Buffer.from(answer.Mac).toString('hex');
    } catch (error) {
      throw this.#unavailable(error);
    }
    if (this.#names.size >= NAME_CACHE_ENTRIES) this.#names.delete(this.#names.keys().next().value as string);
    this.#names.set(message, hex);
    return hex;
  }

  /** The client's name for an object in a zone that hashes names, encrypted by the key service (context without the name). */
  async sealName(bucket: string, name: string): Promise<Buffer> {
    try {
      const answer = await this.#kms.send(new EncryptCommand({ KeyId: this.#keyId, Plaintext: Buffer.from(name, 'utf8'),
        EncryptionContext: { bucket, zone: this.#zone, purpose: 'object-name' } }));
      if (!answer.CiphertextBlob) throw new Error('no ciphertext');
      return Buffer.from(answer.CiphertextBlob);
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  async openName(bucket: string, sealed: Uint8Array): Promise<string> {
    try {
      const answer = await this.#kms.send(new DecryptCommand({ CiphertextBlob: sealed, KeyId: this.#keyId,
        EncryptionContext: { bucket, zone: this.#zone, purpose: 'object-name' } }));
      if (!answer.Plaintext) throw new Error('no plaintext');
      return Buffer.from(answer.Plaintext).toString('utf8');
    } catch (error) {
      const errorName = (error as { name?: string }).name;
      if (errorName === 'InvalidCiphertextException') throw new S3Error('InvalidObjectState', 'A stored object\'s sealed name does not open: it was moved or tampered with.');
      throw this.#unavailable(error);
    }
  }
}
