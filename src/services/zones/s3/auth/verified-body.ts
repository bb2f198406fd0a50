// An authenticated request's payload as a stream that verifies framing, signatures, digests and length as it flows.
// Must never release the payload's last bytes before every check passed, nor emit anything but an S3Error.
import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { constantTimeEqual } from '../../../../shared/crypto/index.ts';
import { S3Error } from '../errors.ts';
import { AwsChunkedDecoder } from './aws-chunked.ts';
import {
  checksumHeaderName, createChecksum, createDigest, parseChecksumValue, type ChecksumAlgorithm, type RunningDigest,
} from './checksums.ts';

export interface PayloadChecks {
  /** Present when the body is aws-chunked: it removes the framing and checks chunk and trailer signatures. */
  decoder?: AwsChunkedDecoder;
  /** The hex SHA-256 the client signed in x-amz-content-sha256. */
  sha256Hex?: string;
  /** Content-MD5, decoded. */
  contentMd5?: Buffer;
  /** The x-amz-checksum-* to verify: its value from the header, or (undefined) from the trailer of that name. */
  checksum?: { algorithm: ChecksumAlgorithm; value: string | undefined };
  /** The decoded length the payload must have, when known. */
  length?: number;
}

export interface PayloadResult {
  md5Hex: string;
  checksum: { algorithm: ChecksumAlgorithm; value: string } | undefined;
}

/**
 * Checks a payload as it passes. The piece most recently decoded is always held back and released only
 * once the input ended and every check passed; on any failure the stream is destroyed with an S3Error.
 */
class VerifyingStream extends Transform {
  readonly #checks: PayloadChecks;
  readonly #md5 = createDigest('md5');
  readonly #sha256: RunningDigest | undefined;
  readonly #checksum: RunningDigest | undefined;
  #held: Buffer | undefined;
  #length = 0;
  #start: (() => void) | undefined;
  result: PayloadResult | undefined;

  constructor(checks: PayloadChecks, start: () => void) {
    super();
    this.#start = start;
    this.#checks = checks;
    this.#sha256 = checks.sha256Hex !== undefined ? createDigest('sha256') : undefined;
    this.#checksum = checks.checksum ? createChecksum(checks.checksum.algorithm) : undefined;
  }

  // The request is read only once someone reads the body: until then nothing can fail unseen.
  override _read(size: number): void {
    const start = this.#start;
    this.#start = undefined;
    start?.();
    super._read(size);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      if (this.#checks.decoder) this.#checks.decoder.write(chunk, (slice) => this.#accept(slice));
      else this.#accept(chunk);
      callback();
    } catch (error) {
      callback(asS3Error(error));
    }
  }

  override _flush(callback: TransformCallback): void {
    this.#verify().then((result) => {
      this.result = result;
      if (this.#held) this.push(this.#held);
      this.#held = undefined;
      callback();
    }, (error: unknown) => callback(asS3Error(error)));
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#held = undefined;
    callback(error);
  }

  #accept(slice: Buffer): void {
    if (slice.length === 0) return;
    this.#length += slice.length;
    if (this.#checks.length !== undefined && this.#length > this.#checks.length) {
      throw new S3Error('InvalidRequest', 'The request body is longer than its declared length.');
    }
    this.#md5.update(slice);
    this.#sha256?.update(slice);
    this.#checksum?.update(slice);
    if (this.#held) this.push(this.#held);
    this.#held = slice;
  }

  async #verify(): Promise<PayloadResult> {
    const checks = this.#checks;
    const trailers = checks.decoder?.end();
    if (checks.length !== undefined && this.#length !== checks.length) {
      throw new S3Error('IncompleteBody', `You did not provide the number of bytes specified by the Content-Length HTTP header (${this.#length} of ${checks.length}).`);
    }
    if (this.#sha256 && checks.sha256Hex !== undefined) {
      const computed = await this.#sha256.digest();
      if (!constantTimeEqual(computed, Buffer.from(checks.sha256Hex, 'hex'))) {
        throw new S3Error('XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
      }
    }
    const md5 = await this.#md5.digest();
    if (checks.contentMd5 && !constantTimeEqual(md5, checks.contentMd5)) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    let checksum: PayloadResult['checksum'];
    if (checks.checksum && this.#checksum) {
      const { algorithm } = checks.checksum;
      const value = checks.checksum.value ?? trailers?.get(checksumHeaderName(algorithm));
      if (value === undefined) throw new S3Error('IncompleteBody', `The trailing ${checksumHeaderName(algorithm)} was not sent.`);
      const expected = parseChecksumValue(algorithm, value);
      const computed = await this.#checksum.digest();
      if (!constantTimeEqual(computed, expected)) {
        throw new S3Error('BadDigest', `The ${algorithm} you specified did not match the calculated checksum.`);
      }
      checksum = { algorithm, value: computed.toString('base64') };
    }
    return { md5Hex: md5.toString('hex'), checksum };
  }
}

function asS3Error(error: unknown): S3Error {
  if (error instanceof S3Error) return error;
  return new S3Error('InternalError', 'We encountered an internal error. Please try again.', {}, { cause: error });
}

/**
 * Pipes `request` through the checks once the body is first read. `onClose` runs once the body is finished with (ended, failed or
 * destroyed); the caller zeroes its signing key there. `result()` is undefined until the body ended.
 */
export function createVerifiedBody(request: IncomingMessage, checks: PayloadChecks, onClose: () => void):
  { body: VerifyingStream; result(): PayloadResult | undefined } {
  const body = new VerifyingStream(checks, () => request.pipe(body));
  // A failure before the consumer attached its listeners must not crash the process; the error stays
  // on body.errored, which pipeline(), finished() and async iteration report.
  body.on('error', () => {});
  const sourceFailed = () => {
    // The client went away (or the socket failed) before the whole body arrived.
    if (!request.complete && !body.destroyed) {
      body.destroy(new S3Error('IncompleteBody', 'The request body ended before the length it declared.'));
    }
  };
  request.on('error', sourceFailed);
  request.on('aborted', sourceFailed);
  request.on('close', sourceFailed);
  body.once('close', () => {
    request.off('aborted', sourceFailed);
    request.off('close', sourceFailed);
    request.unpipe(body);
    onClose();
  });
  return { body, result: () => body.result };
}
