// Client request authentication for the S3 zone proxy: the one entry point the proxy imports.
// Must never grow logic of its own: it only re-exports.
export {
  authenticateS3Request, MAX_CLOCK_SKEW_MS, MAX_PRESIGNED_EXPIRES_SECONDS, UNSIGNED_PAYLOAD, STREAMING_SIGNED_PAYLOAD,
  STREAMING_SIGNED_PAYLOAD_TRAILER, STREAMING_UNSIGNED_PAYLOAD_TRAILER,
  type AuthenticatedS3Request, type AuthenticateS3Options, type ClientSecrets, type PayloadSigning,
} from './request-auth.ts';
export {
  CHECKSUM_ALGORITHMS, checksumHeaderName, checksumAlgorithmOfHeader, parseChecksumAlgorithm, createChecksum,
  type ChecksumAlgorithm, type RunningDigest,
} from './checksums.ts';
export { AwsChunkedDecoder, MAX_FRAMING_LINE, MAX_TRAILER_BYTES, type AwsChunkedDecoderOptions, type ChunkSigningContext } from './aws-chunked.ts';
