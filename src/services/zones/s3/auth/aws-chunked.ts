// Decoder for S3's aws-chunked framing, verifying chained chunk signatures and the trailer signature as bytes arrive.
// Must never buffer more than one bounded framing line, nor hand out data past the declared decoded length.
import { constantTimeEqual, hmac, sha256Hex } from '../../../../shared/crypto/index.ts';
import { SIGV4_ALGORITHM } from '../../../../shared/auth/sigv4.ts';
import { S3Error } from '../errors.ts';
import { ChunkSha256 } from './checksums.ts';

/** A chunk-size line (size plus extensions) or one trailer line may not be longer than this. */
export const MAX_FRAMING_LINE = 4096;
/** All trailer lines together. */
export const MAX_TRAILER_BYTES = 16 * 1024;
const MAX_TRAILER_LINES = 16;
/** 12 hex digits are 256 TiB, far past S3's 5 TiB object limit; more is an attack on number precision. */
const MAX_SIZE_DIGITS = 12;
const EMPTY_SHA256 = sha256Hex('');
const CHUNK_ALGORITHM = `${SIGV4_ALGORITHM}-PAYLOAD`;
const TRAILER_ALGORITHM = `${SIGV4_ALGORITHM}-TRAILER`;
const TRAILER_SIGNATURE_HEADER = 'x-amz-trailer-signature';

/** What a signed aws-chunked body chains its signatures from. */
export interface ChunkSigningContext {
  /** The request's SigV4 signing key; the decoder reads it, the caller zeroes it. */
  signingKey: Uint8Array;
  /** x-amz-date of the request. */
  amzDate: string;
  /** `date/region/s3/aws4_request` */
  scope: string;
  /** The request's own signature (hex), which the first chunk's signature chains from. */
  seedSignature: string;
}

export interface AwsChunkedDecoderOptions {
  /** Present: every chunk must carry a valid chunk-signature (and the trailer a valid x-amz-trailer-signature). */
  signing?: ChunkSigningContext;
  /** Trailing headers the client declared in x-amz-trailer (lower-case); the body must end with exactly these. */
  trailers: readonly string[];
  /** x-amz-decoded-content-length, when sent: the chunks must add up to exactly this. */
  decodedLength?: number;
  /** STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the trailer must end with a valid x-amz-trailer-signature. */
  signedTrailer?: boolean;
}

type State = 'size-line' | 'data' | 'data-crlf' | 'trailer-line' | 'done';

const incomplete = (message: string) => new S3Error('IncompleteBody', message);
const badFraming = (message: string) => new S3Error('IncompleteBody', `The aws-chunked body is malformed: ${message}`);
const signatureMismatch = (what: string) => new S3Error('SignatureDoesNotMatch',
  `The ${what} signature we calculated does not match the signature you provided. Check your key and signing method.`);

/**
 * Incremental aws-chunked decoder. Feed it framed bytes with `write` (data slices come out through the
 * callback, as views of the input), then call `end` when the input ends. Every problem is an S3Error.
 * Memory is bounded: only a partial framing line (at most MAX_FRAMING_LINE bytes) is ever kept.
 */
export class AwsChunkedDecoder {
  readonly #signing: ChunkSigningContext | undefined;
  readonly #declaredTrailers: readonly string[];
  readonly #decodedLength: number | undefined;
  readonly #signedTrailer: boolean;
  #state: State = 'size-line';
  #line: Buffer[] = [];
  #lineLength = 0;
  #chunkRemaining = 0;
  #chunkSignature: Buffer | undefined;
  #crlfSeen = 0;
  #previousSignature: string;
  readonly #chunkHash = new ChunkSha256();
  #decoded = 0;
  #trailerBytes = 0;
  readonly #trailers = new Map<string, string>();
  #trailerSignature: string | undefined;
  #lastChunkSeen = false;

  constructor(options: AwsChunkedDecoderOptions) {
    this.#signing = options.signing;
    this.#declaredTrailers = options.trailers;
    this.#decodedLength = options.decodedLength;
    this.#signedTrailer = options.signedTrailer ?? false;
    if (this.#signedTrailer && !this.#signing) throw new TypeError('a signed trailer needs a signing context');
    this.#previousSignature = options.signing?.seedSignature ?? '';
  }

  /** Feeds framed input; `onData` receives each decoded slice (a view of `input`, valid until the caller lets go of it). */
  write(input: Buffer, onData: (slice: Buffer) => void): void {
    let offset = 0;
    while (offset < input.length) {
      switch (this.#state) {
        case 'size-line':
        case 'trailer-line': {
          const end = this.#readLine(input, offset);
          if (end < 0) return;
          offset = end;
          const line = this.#takeLine();
          if (this.#state === 'size-line') this.#onSizeLine(line);
          else this.#onTrailerLine(line);
          break;
        }
        case 'data': {
          const take = Math.min(this.#chunkRemaining, input.length - offset);
          const slice = input.subarray(offset, offset + take);
          offset += take;
          this.#chunkRemaining -= take;
          this.#decoded += take;
          if (this.#signing) this.#chunkHash.update(slice);
          onData(slice);
          if (this.#chunkRemaining === 0) { this.#state = 'data-crlf'; this.#crlfSeen = 0; }
          break;
        }
        case 'data-crlf': {
          const expected = this.#crlfSeen === 0 ? 0x0d : 0x0a;
          if (input[offset] !== expected) throw badFraming('chunk data is not followed by CRLF.');
          offset += 1;
          this.#crlfSeen += 1;
          if (this.#crlfSeen === 2) {
            // The chunk's signature covers its data, so it is checked once the data is complete.
            this.#verifyChunkSignature();
            this.#state = 'size-line';
          }
          break;
        }
        case 'done':
          throw new S3Error('InvalidRequest', 'The aws-chunked body continues after its final chunk.');
      }
    }
  }

  /**
   * The input ended: checks that the framing is complete and returns the trailing headers (lower-case
   * names), their signature already verified when the body is signed.
   */
  end(): ReadonlyMap<string, string> {
    if (this.#state !== 'done') {
      // A client may end right after the last chunk (or the last trailer) without the closing empty line;
      // nothing is lost then, so it is accepted, but only with no partial line pending.
      const closable = this.#lastChunkSeen && this.#state === 'trailer-line' && this.#lineLength === 0;
      if (!closable) {
        if (!this.#lastChunkSeen) throw incomplete('The request body ended before the final aws-chunked chunk.');
        throw incomplete('The request body ended inside the aws-chunked trailer.');
      }
      this.#finishTrailers();
    }
    return this.#trailers;
  }

  /** Scans for LF, keeping a partial line; returns the offset after it, or -1 when more input is needed. */
  #readLine(input: Buffer, offset: number): number {
    const lf = input.indexOf(0x0a, offset);
    const end = lf < 0 ? input.length : lf + 1;
    if (this.#lineLength + (end - offset) > MAX_FRAMING_LINE) {
      throw badFraming(`a framing line is longer than ${MAX_FRAMING_LINE} bytes.`);
    }
    this.#line.push(input.subarray(offset, end));
    this.#lineLength += end - offset;
    return lf < 0 ? -1 : end;
  }

  /** The completed line without its CRLF; a bare LF is a framing error. */
  #takeLine(): string {
    const bytes = this.#line.length === 1 ? this.#line[0] : Buffer.concat(this.#line, this.#lineLength);
    this.#line = [];
    this.#lineLength = 0;
    if (bytes.length < 2 || bytes[bytes.length - 2] !== 0x0d) throw badFraming('a framing line does not end with CRLF.');
    if (this.#state === 'trailer-line') {
      this.#trailerBytes += bytes.length;
      if (this.#trailerBytes > MAX_TRAILER_BYTES) throw badFraming(`the trailer is longer than ${MAX_TRAILER_BYTES} bytes.`);
    }
    return bytes.subarray(0, bytes.length - 2).toString('latin1');
  }

  #onSizeLine(line: string): void {
    const semicolon = line.indexOf(';');
    const sizeText = (semicolon < 0 ? line : line.slice(0, semicolon)).trim();
    if (!/^[0-9a-fA-F]+$/.test(sizeText)) throw badFraming('a chunk size is not hexadecimal.');
    const digits = sizeText.replace(/^0+(?=.)/, '');
    if (digits.length > MAX_SIZE_DIGITS) throw new S3Error('InvalidRequest', 'An aws-chunked chunk is too large.');
    const size = Number.parseInt(digits, 16);
    this.#chunkSignature = undefined;
    if (semicolon >= 0) {
      for (const extension of line.slice(semicolon + 1).split(';')) {
        const equals = extension.indexOf('=');
        const name = (equals < 0 ? extension : extension.slice(0, equals)).trim();
        if (name !== 'chunk-signature') continue;
        const value = equals < 0 ? '' : extension.slice(equals + 1).trim();
        if (!/^[0-9a-fA-F]{64}$/.test(value)) throw signatureMismatch('chunk');
        this.#chunkSignature = Buffer.from(value, 'hex');
      }
    }
    if (this.#signing && !this.#chunkSignature) throw signatureMismatch('chunk');
    if (this.#decodedLength !== undefined && this.#decoded + size > this.#decodedLength) {
      throw new S3Error('InvalidRequest', 'The aws-chunked body carries more data than x-amz-decoded-content-length declares.');
    }
    if (size > 0) {
      this.#chunkRemaining = size;
      this.#state = 'data';
      return;
    }
    // The final, empty chunk: its signature covers no data, and the decoded length must be complete.
    this.#verifyChunkSignature();
    if (this.#decodedLength !== undefined && this.#decoded !== this.#decodedLength) {
      throw incomplete(`The aws-chunked body carried ${this.#decoded} bytes; x-amz-decoded-content-length declares ${this.#decodedLength}.`);
    }
    this.#lastChunkSeen = true;
    this.#state = 'trailer-line';
  }

  #verifyChunkSignature(): void {
    const dataHash = this.#chunkHash.takeHex();
    if (!this.#signing) return;
    const toSign = [CHUNK_ALGORITHM, this.#signing.amzDate, this.#signing.scope, this.#previousSignature, EMPTY_SHA256, dataHash].join('\n');
    const expected = hmac('sha256', this.#signing.signingKey, toSign);
    if (!this.#chunkSignature || !constantTimeEqual(expected, this.#chunkSignature)) throw signatureMismatch('chunk');
    this.#previousSignature = expected.toString('hex');
  }

  #onTrailerLine(line: string): void {
    if (line === '') {
      this.#finishTrailers();
      this.#state = 'done';
      return;
    }
    if (this.#trailerSignature !== undefined) throw badFraming('a trailing header follows x-amz-trailer-signature.');
    const colon = line.indexOf(':');
    if (colon <= 0) throw badFraming('a trailing header has no name.');
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === TRAILER_SIGNATURE_HEADER) {
      this.#trailerSignature = value;
      return;
    }
    if (!this.#declaredTrailers.includes(name)) {
      throw new S3Error('InvalidRequest', `The trailing header ${name} was not declared in x-amz-trailer.`);
    }
    if (this.#trailers.has(name)) throw new S3Error('InvalidRequest', `The trailing header ${name} was sent twice.`);
    if (this.#trailers.size >= MAX_TRAILER_LINES) throw badFraming('too many trailing headers.');
    this.#trailers.set(name, value);
  }

  #finishTrailers(): void {
    for (const name of this.#declaredTrailers) {
      if (!this.#trailers.has(name)) throw incomplete(`The trailing header ${name} declared in x-amz-trailer was not sent.`);
    }
    if (!this.#signing || !this.#signedTrailer) return;
    if (this.#trailerSignature === undefined || !/^[0-9a-fA-F]{64}$/.test(this.#trailerSignature)) throw signatureMismatch('trailer');
    // The trailer signature covers the trailing headers in canonical form, chained from the final chunk's signature.
    const canonical = [...this.#trailers.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, value]) => `${name}:${value}\n`).join('');
    const toSign = [TRAILER_ALGORITHM, this.#signing.amzDate, this.#signing.scope, this.#previousSignature, sha256Hex(canonical)].join('\n');
    const expected = hmac('sha256', this.#signing.signingKey, toSign);
    if (!constantTimeEqual(expected, Buffer.from(this.#trailerSignature, 'hex'))) throw signatureMismatch('trailer');
  }
}
