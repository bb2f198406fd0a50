// Client request authentication for the S3 zone proxy: the one entry point the proxy imports.
// Must never grow logic of its own: it only re-exports.
export { authenticateS3Request, type AuthenticatedS3Request, type ClientSecrets } from './request-auth.ts';
export { checksumHeaderName, createChecksum, type ChecksumAlgorithm } from './checksums.ts';
export { AwsChunkedDecoder, MAX_FRAMING_LINE, type AwsChunkedDecoderOptions } from './aws-chunked.ts';
