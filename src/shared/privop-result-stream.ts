// The sealed result of a privileged operation, version 2: binary and streamed, so a result of any size (a 1 GiB
// process.dump) goes from the host to the courier's file and on to the opener's output in constant memory.
// Must never hand out a byte of plaintext from a stream whose structure, signature or AEAD has not checked out.
//
// Sealed result file, version 2 (what `trustplane privop deliver` writes):
//   magic    "trustplane-privop-result-v2\n" (28 bytes)
//   header   u32 BE length N (1..128 KiB), N bytes of UTF-8 JSON
//            { "Format": "trustplane-privop-result", "Version": 2, "RequestDigest": base64url (32 bytes), "HostId": "h-…",
//              "HostCertificate": PEM, "Enc": base64url HPKE encapsulated key (32 bytes), "ChunkBytes": C (4 KiB..16 MiB) }
//   frames   each: u8 kind, u32 BE length L, L bytes of HPKE ciphertext:
//            kind 'D' (0x44): a data chunk, L = C + 16 exactly; kind 'F' (0x46): the final chunk, 16 <= L <= C + 16, once
//   trailer  u8 'S' (0x53), u32 BE length (1..256), a DER ECDSA P-256/SHA-256 signature by the host identity key over
//            "trustplane-privop-result-v2\0" ‖ RequestDigest ‖ SHA-256(every byte before the trailer); then end of file.
//   HPKE: RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, to Request.ResultKey, info
//   "trustplane-privop-result-v2", one context for the stream, chunk i sealed with the context's i-th sequence number and
//   AAD = RequestDigest ‖ u64 BE i ‖ u8 final (1 for the 'F' chunk): order, truncation and the binding are all checked.
//   The plaintext (the chunks' concatenation) is a sequence of records, each u8 kind, u32 BE length, bytes:
//   'C' (0x43) bulk content, 1 byte..16 MiB each, in order (e.g. process.dump's TPDUMP1 archive), then exactly one
//   'R' (0x52) result record, 1 byte..64 MiB of UTF-8 JSON: { "Version": 2, "RequestDigest", "HostId", "Operation",
//   "StartedAt", "CompletedAt", "Result"? | "Error"?, "Content"?: { "Bytes", "Sha256" (hex) } }, and nothing after.
//   The result record comes last because what describes the content (regions read, byte counts, hash) is known only
//   once the content has gone by.
import { z } from 'zod';
import { HpkeStreamOpener, HpkeStreamSealer, RunningSha256, signWithPemKey, zeroize, HPKE_STREAM_TAG_LENGTH } from './crypto/index.ts';
import { CiphertextError } from './errors.ts';
import {
  base64url, checkHostSignature, checkRequestBinding, refuseResult, zodReason, PRIVOP_RESULT_FORMAT, type PrivopRequest, type PrivopResultPlaintext,
} from './privop-wire.ts';

export const PRIVOP_RESULT_STREAM_VERSION = 2;
export const PRIVOP_RESULT_STREAM_MAGIC = Buffer.from('trustplane-privop-result-v2\n');
export const PRIVOP_RESULT_STREAM_INFO = 'trustplane-privop-result-v2';
const SIGNATURE_LABEL = Buffer.from('trustplane-privop-result-v2\0');
export const DEFAULT_RESULT_CHUNK_BYTES = 1024 * 1024;
export const MIN_RESULT_CHUNK_BYTES = 4096;
export const MAX_RESULT_CHUNK_BYTES = 16 * 1024 * 1024;
const MAX_HEADER_BYTES = 128 * 1024;
const MAX_SIGNATURE_BYTES = 256;
export const MAX_CONTENT_RECORD_BYTES = 16 * 1024 * 1024;
export const MAX_RESULT_JSON_BYTES = 64 * 1024 * 1024;
/** What a reader accepts in all: 128 GiB of plaintext (process.dump is capped at 64 GiB). */
export const MAX_RESULT_PLAINTEXT_BYTES = 128 * 1024 ** 3;

const FRAME_DATA = 0x44;
const FRAME_FINAL = 0x46;
const FRAME_TRAILER = 0x53;
const RECORD_CONTENT = 0x43;
const RECORD_RESULT = 0x52;

const headerSchema = z.object({
  Format: z.literal(PRIVOP_RESULT_FORMAT),
  Version: z.literal(PRIVOP_RESULT_STREAM_VERSION),
  RequestDigest: base64url(32, 32),
  HostId: z.string().regex(/^h-[0-9a-f]{1,64}$/),
  HostCertificate: z.string().min(1).max(65_536),
  Enc: base64url(32, 32),
  ChunkBytes: z.number().int().min(MIN_RESULT_CHUNK_BYTES).max(MAX_RESULT_CHUNK_BYTES),
}).strict();

export type SealedResultHeader = z.infer<typeof headerSchema>;

const malformed = (message: string) => refuseResult('PrivopMalformedResult', `The sealed result is malformed: ${message}.`);
const truncated = () => refuseResult('PrivopTruncatedResult', 'The sealed result is cut short (a frame or the trailer is missing).');

function lengthPrefixed(kind: number | undefined, length: number): Buffer {
  const prefix = Buffer.alloc(kind === undefined ? 4 : 5);
  if (kind !== undefined) prefix[0] = kind;
  prefix.writeUInt32BE(length, kind === undefined ? 0 : 1);
  return prefix;
}

/** The plaintext records for one piece of bulk content (split to the record limit). */
export function* contentRecords(piece: Buffer): Generator<Buffer> {
  for (let at = 0; at < piece.length; at += MAX_CONTENT_RECORD_BYTES) {
    const part = piece.subarray(at, Math.min(piece.length, at + MAX_CONTENT_RECORD_BYTES));
    yield lengthPrefixed(RECORD_CONTENT, part.length);
    yield part;
  }
}

/** The closing plaintext record: the result JSON. */
export function resultRecord(plaintext: PrivopResultPlaintext): Buffer {
  const json = Buffer.from(JSON.stringify(plaintext));
  if (json.length > MAX_RESULT_JSON_BYTES) throw new RangeError('result JSON too large');
  return Buffer.concat([lengthPrefixed(RECORD_RESULT, json.length), json]);
}

function signedMessage(digest: Buffer, hashBeforeTrailer: Buffer): Buffer {
  return Buffer.concat([SIGNATURE_LABEL, digest, hashBeforeTrailer]);
}

/**
 * Seals `plaintext` (records from contentRecords and resultRecord) as a version 2 stream, yielding the file's bytes as
 * they are made: it pulls the next piece of plaintext only when its consumer asks for more bytes (backpressure).
 */
export async function* sealPrivopResultStream(options: { resultKey: Buffer; digest: Buffer; hostId: string; hostCertificatePem: string;
  hostKeyPem: string; plaintext: AsyncIterable<Buffer>; chunkBytes?: number }): AsyncGenerator<Buffer> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_RESULT_CHUNK_BYTES;
  const sealer = await HpkeStreamSealer.create(options.resultKey, PRIVOP_RESULT_STREAM_INFO, options.digest);
  const running = new RunningSha256();
  const header: SealedResultHeader = { Format: PRIVOP_RESULT_FORMAT, Version: PRIVOP_RESULT_STREAM_VERSION,
    RequestDigest: options.digest.toString('base64url'), HostId: options.hostId, HostCertificate: options.hostCertificatePem,
    Enc: sealer.enc.toString('base64url'), ChunkBytes: chunkBytes };
  const headerJson = Buffer.from(JSON.stringify(header));
  const opening = Buffer.concat([PRIVOP_RESULT_STREAM_MAGIC, lengthPrefixed(undefined, headerJson.length), headerJson]);
  running.update(opening);
  yield opening;
  // One chunk's plaintext is gathered here (never more), sealed, then zeroed: it may be process memory.
  const chunk = Buffer.alloc(chunkBytes);
  let filled = 0;
  async function* frame(final: boolean): AsyncGenerator<Buffer> {
    const ciphertext = await sealer.seal(chunk.subarray(0, filled), final);
    chunk.fill(0, 0, filled);
    filled = 0;
    const prefix = lengthPrefixed(final ? FRAME_FINAL : FRAME_DATA, ciphertext.length);
    running.update(prefix).update(ciphertext);
    yield prefix;
    yield ciphertext;
  }
  try {
    for await (const piece of options.plaintext) {
      for (let at = 0; at < piece.length;) {
        const taken = piece.copy(chunk, filled, at, Math.min(piece.length, at + chunkBytes - filled));
        filled += taken;
        at += taken;
        if (filled === chunkBytes) yield* frame(false);
      }
    }
    yield* frame(true);
  } finally {
    chunk.fill(0);
  }
  const signature = signWithPemKey(options.hostKeyPem, signedMessage(options.digest, running.digest()));
  yield Buffer.concat([lengthPrefixed(FRAME_TRAILER, signature.length), signature]);
}

/** Reads exact byte counts from a stream of buffers of any size. */
class ByteReader {
  readonly #iterator: AsyncIterator<Buffer>;
  #buffers: Buffer[] = [];
  #available = 0;
  #ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.#iterator = source[Symbol.asyncIterator]();
  }

  async #fill(wanted: number): Promise<void> {
    while (this.#available < wanted && !this.#ended) {
      const next = await this.#iterator.next();
      if (next.done) this.#ended = true;
      else if (next.value.length) { this.#buffers.push(next.value); this.#available += next.value.length; }
    }
  }

  /** Exactly `length` bytes, or a PrivopTruncatedResult when the stream ends first. */
  async read(length: number): Promise<Buffer> {
    await this.#fill(length);
    if (this.#available < length) throw truncated();
    const parts: Buffer[] = [];
    let remaining = length;
    while (remaining > 0) {
      const first = this.#buffers[0] as Buffer;
      if (first.length <= remaining) {
        parts.push(first);
        this.#buffers.shift();
        remaining -= first.length;
      } else {
        parts.push(first.subarray(0, remaining));
        this.#buffers[0] = first.subarray(remaining);
        remaining = 0;
      }
    }
    this.#available -= length;
    return parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts, length);
  }

  async atEnd(): Promise<boolean> {
    await this.#fill(1);
    return this.#available === 0;
  }

  async close(): Promise<void> {
    await this.#iterator.return?.();
  }
}

type SealedEvent =
  | { type: 'header'; header: SealedResultHeader }
  | { type: 'chunk'; final: boolean; ciphertext: Buffer }
  | { type: 'trailer'; signature: Buffer; hashBeforeTrailer: Buffer };

/** The structure of a version 2 stream, checked as it goes by: magic, sizes, frame kinds and order, the trailer, nothing after. */
async function* parseSealedResult(source: AsyncIterable<Buffer>): AsyncGenerator<SealedEvent> {
  const reader = new ByteReader(source);
  const running = new RunningSha256();
  const read = async (length: number) => {
    const bytes = await reader.read(length);
    running.update(bytes);
    return bytes;
  };
  try {
    const magic = await reader.read(PRIVOP_RESULT_STREAM_MAGIC.length).catch(() => Buffer.alloc(0));
    if (!magic.equals(PRIVOP_RESULT_STREAM_MAGIC)) throw malformed('it does not start with the version 2 magic');
    running.update(magic);
    const headerLength = (await read(4)).readUInt32BE(0);
    if (headerLength < 1 || headerLength > MAX_HEADER_BYTES) throw malformed(`a header of ${headerLength} bytes`);
    let value: unknown;
    try {
      value = JSON.parse((await read(headerLength)).toString('utf8'));
    } catch (error) {
      if (error instanceof SyntaxError) throw malformed('the header is not JSON');
      throw error;
    }
    const parsed = headerSchema.safeParse(value);
    if (!parsed.success) throw malformed(`header: ${zodReason(parsed.error)}`);
    const header = parsed.data;
    yield { type: 'header', header };
    const fullFrame = header.ChunkBytes + HPKE_STREAM_TAG_LENGTH;
    let plaintextBytes = 0;
    for (;;) {
      const prefix = await read(5);
      const kind = prefix[0];
      const length = prefix.readUInt32BE(1);
      if (kind === FRAME_DATA || kind === FRAME_FINAL) {
        const final = kind === FRAME_FINAL;
        if (final ? length < HPKE_STREAM_TAG_LENGTH || length > fullFrame : length !== fullFrame) {
          throw malformed(`a ${final ? 'final' : 'data'} frame of ${length} bytes (chunks are ${header.ChunkBytes} bytes)`);
        }
        plaintextBytes += length - HPKE_STREAM_TAG_LENGTH;
        if (plaintextBytes > MAX_RESULT_PLAINTEXT_BYTES) throw malformed('more content than any result may hold');
        yield { type: 'chunk', final, ciphertext: await read(length) };
        if (final) break;
      } else if (kind === FRAME_TRAILER) {
        throw truncated();
      } else {
        throw malformed(`an unknown frame kind 0x${(kind ?? 0).toString(16)}`);
      }
    }
    const hashBeforeTrailer = running.digest();
    const trailer = await reader.read(5);
    if (trailer[0] !== FRAME_TRAILER) throw malformed('data after the final frame');
    const signatureLength = trailer.readUInt32BE(1);
    if (signatureLength < 1 || signatureLength > MAX_SIGNATURE_BYTES) throw malformed(`a signature of ${signatureLength} bytes`);
    const signature = await reader.read(signatureLength);
    if (!(await reader.atEnd())) throw malformed('bytes after the trailer');
    yield { type: 'trailer', signature, hashBeforeTrailer };
  } finally {
    await reader.close();
  }
}

/** What the first pass established: a well-formed stream signed by the host it names (for the request, when given). */
export interface VerifiedSealedResult {
  header: SealedResultHeader;
  /** SHA-256 of everything before the trailer: the second pass must read the same bytes. */
  hashBeforeTrailer: Buffer;
  /** An upper bound of the plaintext (records included). */
  plaintextBytes: number;
}

/**
 * First pass over a version 2 file: its structure end to end and the host's signature over it (by the certificate it
 * carries, which must name the host; `checkCertificate` judges that certificate), then the binding to `request` if given.
 * Nothing is decrypted.
 */
export async function verifySealedPrivopResult(source: AsyncIterable<Buffer>, options: { publicKey: Buffer; request?: PrivopRequest;
  checkCertificate?: (certificateDer: Buffer) => string | undefined }): Promise<VerifiedSealedResult> {
  let header: SealedResultHeader | undefined;
  let plaintextBytes = 0;
  for await (const event of parseSealedResult(source)) {
    if (event.type === 'header') header = event.header;
    else if (event.type === 'chunk') plaintextBytes += event.ciphertext.length - HPKE_STREAM_TAG_LENGTH;
    else {
      const known = header as SealedResultHeader;
      const digest = Buffer.from(known.RequestDigest, 'base64url');
      checkHostSignature({ hostCertificatePem: known.HostCertificate, hostId: known.HostId, message: signedMessage(digest, event.hashBeforeTrailer),
        signature: event.signature, checkCertificate: options.checkCertificate });
      if (options.request) checkRequestBinding(options.request, digest, known.HostId, options.publicKey);
      return { header: known, hashBeforeTrailer: event.hashBeforeTrailer, plaintextBytes };
    }
  }
  throw truncated();
}

/** Splits decrypted plaintext into its records: content pieces go to `onContent` as they come, the result JSON is kept. */
class RecordReader {
  #prefix = Buffer.alloc(0);
  #kind = 0;
  #remaining = 0;
  #json: Buffer[] = [];
  #result?: Buffer;
  readonly content = new RunningSha256();

  async feed(plaintext: Buffer, onContent: (piece: Buffer) => Promise<void>): Promise<void> {
    for (let at = 0; at < plaintext.length;) {
      if (this.#result) throw malformed('records after the result');
      if (this.#kind === 0) {
        const wanted = 5 - this.#prefix.length;
        this.#prefix = Buffer.concat([this.#prefix, plaintext.subarray(at, at + wanted)]);
        at += Math.min(wanted, plaintext.length - at);
        if (this.#prefix.length < 5) continue;
        this.#kind = this.#prefix[0] as number;
        this.#remaining = this.#prefix.readUInt32BE(1);
        this.#prefix = Buffer.alloc(0);
        const limit = this.#kind === RECORD_CONTENT ? MAX_CONTENT_RECORD_BYTES : this.#kind === RECORD_RESULT ? MAX_RESULT_JSON_BYTES : 0;
        if (limit === 0) throw malformed(`an unknown record kind 0x${this.#kind.toString(16)}`);
        if (this.#remaining < 1 || this.#remaining > limit) throw malformed(`a record of ${this.#remaining} bytes`);
        continue;
      }
      const piece = plaintext.subarray(at, at + Math.min(this.#remaining, plaintext.length - at));
      at += piece.length;
      this.#remaining -= piece.length;
      if (this.#kind === RECORD_CONTENT) {
        this.content.update(piece);
        await onContent(piece);
      } else {
        this.#json.push(Buffer.from(piece));
      }
      if (this.#remaining === 0) {
        if (this.#kind === RECORD_RESULT) this.#result = Buffer.concat(this.#json);
        this.#kind = 0;
      }
    }
  }

  finish(): Buffer {
    if (!this.#result) throw malformed('the result record is missing');
    return this.#result;
  }
}

/**
 * Second pass: decrypts the stream `verified` came from, giving bulk content to `onContent` in order (the caller must
 * discard it unless this resolves) and resolving to the result JSON once every check has passed: the same bytes as the
 * first pass, every chunk authentic and in order, the final chunk present, the records whole, the content as described.
 */
export async function openSealedPrivopResult(source: AsyncIterable<Buffer>, options: { verified: VerifiedSealedResult; privateKey: Buffer;
  onContent: (piece: Buffer) => Promise<void> }): Promise<PrivopResultPlaintext> {
  const { header } = options.verified;
  const digest = Buffer.from(header.RequestDigest, 'base64url');
  let opener: HpkeStreamOpener | undefined;
  const records = new RecordReader();
  for await (const event of parseSealedResult(source)) {
    if (event.type === 'header') {
      if (JSON.stringify(event.header) !== JSON.stringify(header)) throw refuseResult('PrivopResultChanged', 'The sealed result changed between the two passes.');
      try {
        opener = await HpkeStreamOpener.create(options.privateKey, Buffer.from(header.Enc, 'base64url'), PRIVOP_RESULT_STREAM_INFO, digest);
      } catch {
        throw refuseResult('PrivopCannotDecrypt', 'This result key cannot open the sealed result.');
      }
    } else if (event.type === 'chunk') {
      let plaintext: Buffer;
      try {
        plaintext = await (opener as HpkeStreamOpener).open(event.ciphertext, event.final);
      } catch (error) {
        if (!(error instanceof CiphertextError)) throw error;
        throw refuseResult('PrivopCannotDecrypt',
          `Chunk ${(opener as HpkeStreamOpener).chunks - 1} does not open: another result key, or the chunks were altered, reordered or cut.`);
      }
      try {
        await records.feed(plaintext, options.onContent);
      } finally {
        zeroize(plaintext);
      }
    } else if (!event.hashBeforeTrailer.equals(options.verified.hashBeforeTrailer)) {
      throw refuseResult('PrivopResultChanged', 'The sealed result changed between the two passes.');
    }
  }
  const json = records.finish();
  let plaintext: PrivopResultPlaintext;
  try {
    plaintext = JSON.parse(json.toString('utf8')) as PrivopResultPlaintext;
  } catch {
    throw malformed('the result record is not JSON');
  } finally {
    zeroize(json);
  }
  if (plaintext.Version !== PRIVOP_RESULT_STREAM_VERSION || plaintext.RequestDigest !== header.RequestDigest || plaintext.HostId !== header.HostId) {
    throw refuseResult('PrivopMalformedResult', 'The sealed result\'s content does not match its envelope.');
  }
  const bytes = records.content.bytes;
  const described = plaintext.Content;
  // A failed operation may have sent part of its content before failing: the error is the result, the content is dropped.
  if (!plaintext.Error && (bytes > 0 || described)) {
    if (!described || described.Bytes !== bytes || described.Sha256 !== records.content.digest().toString('hex')) {
      throw refuseResult('PrivopMalformedResult', 'The bulk content does not match its description in the result.');
    }
  }
  return plaintext;
}

/** Whether `start` (a file's first bytes) is a version 2 sealed result rather than a version 1 JSON one. */
export function isSealedResultStream(start: Buffer): boolean {
  return start.subarray(0, PRIVOP_RESULT_STREAM_MAGIC.length).equals(PRIVOP_RESULT_STREAM_MAGIC);
}
