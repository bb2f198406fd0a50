// The crypto module's public surface: every primitive and every key byte goes through here.
// Must never be bypassed: no other code imports node:crypto for keys or ciphers.
export { randomBytes, constantTimeEqual, zeroize, sha256, sha256Hex, hash, randomUuid, type HashName } from './lib/bytes.ts';
export {
  aesGcmEncrypt, aesGcmDecrypt, aesKwpWrap, aesKwpUnwrap, GCM_NONCE_LENGTH, GCM_MAX_NONCE_LENGTH, GCM_TAG_LENGTH,
  type SymmetricKey,
} from './lib/aead.ts';
export { hmac, verifyHmac, hkdf } from './lib/mac.ts';
export {
  signMessage, verifyMessage, signDigest, verifyDigest, rsaOaepEncrypt, rsaOaepDecrypt, agreeSharedSecret,
  importPublicKeyDer, importPrivateKeyDer, importPublicKeyJwk, importPrivateKeyJwk, importRawPublicKey,
  importRawPrivateKey, importEcPrivateScalar, hashLength,
  UnsupportedDigestSigningError, OaepDecryptionError, type SignatureScheme, type RawKeyType, type EcCurveName,
} from './lib/asymmetric.ts';
export {
  encodeEncryptionContext, decodeEncryptionContext, parseCiphertextBlob, encodeCiphertextHeader, uuidToBytes, bytesToUuid,
  MIN_CIPHERTEXT_BLOB_LENGTH, CIPHERTEXT_FORMAT_VERSION, type EncryptionContext, type ParsedCiphertext,
} from './lib/ciphertext-blob.ts';
export {
  CustomerKey, SECRET_KEY_SPEC, generateKeyMaterial, generateAsymmetricPair, isAsymmetricSpec, isHmacSpec, KEY_SPECS,
  DATA_KEY_PAIR_SPECS, MAC_HASH, type KeySpec, type DataKeyPairSpec, type MacAlgorithm, type KeyPairDer,
} from './lib/customer-key.ts';
export type {
  CryptoModule, CryptoModuleStatus, CryptoModuleKind, WrappedSecret, DomainKeyRecord, DomainKeyStore, DomainKeyState,
} from './lib/crypto-module.ts';
export { SoftwareCryptoModule, WrongRootKeyError, ROOT_CHECK_NAME } from './lib/software-module.ts';
export {
  Pkcs11CryptoModule, Pkcs11LoginError, Pkcs11TokenError, type Pkcs11CryptoModuleOptions,
} from './lib/pkcs11-module.ts';
export {
  Keyring, DEFAULT_KEY_CACHE_ENTRIES, DEFAULT_KEY_CACHE_TTL_MS, type StoredKeyMaterial, type NewKeyMaterial, type KeyCacheOptions,
} from './lib/keyring.ts';
export {
  encodeFileHeader, readFileHeader, createEncryptStream, createDecryptStream, decryptChunk, decryptRange,
  deriveChunkedFileKey, plaintextRangeToChunks, ciphertextLength, plaintextLength, ChunkedFileKey,
  chunkedAlgorithmForKey, fileHeaderLength, CHUNKED_ALGORITHM_AES_256_GCM, CHUNKED_ALGORITHM_AES_128_GCM,
  CHUNKED_FORMAT_VERSION, DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE,
  type ChunkedAlgorithm, type ChunkedFileHeader, type FileHeaderFields, type FileHeaderReadResult, type ChunkSpan,
  type EncryptStreamOptions, type DecryptStreamOptions,
} from './lib/chunked-aead.ts';
export {
  createObjectEncryptStream, encryptedObjectLength, plaintextObjectLength, objectHeaderContext, checkObjectLayout,
  objectPlaintextLength, openObjectRange, sealObjectMetadata, openObjectMetadata, sealedObjectMetadataLength, MAX_PART_NUMBER,
  type ObjectSegment, type ObjectLayout, type ObjectLayoutPart, type ObjectEncryptOptions, type ObjectSizeOptions,
  type CiphertextSource, type OpenObjectRangeOptions,
} from './lib/object-envelope.ts';
export {
  rewrapBatch, type WrappedRecord, type WrappedRecordCursor, type WrappedRecordOwner,
  type WrappedRecordReplacement, type WrappedRecordStore, type RewrapBatchResult,
} from './lib/rewrap.ts';
export {
  createCertificateAuthority, issueCertificate, certificateToPem, isP256PublicKey, privateKeyToPem, describeCertificate, normalizeSerial,
  type CertificateAuthority, type IssueCertificateInput, type IssuedCertificate,
} from './lib/certificates.ts';
export {
  parseCertificateRequest, createCertificateRequest, CertificateRequestError, type ParsedCertificateRequest,
} from './lib/certificate-requests.ts';
export {
  createRevocationList, verifyRevocationList, normalizeHexSerial, revocationListDer, revocationListToPem, type RevocationEntry, type RevocationListInput, type RevocationReason,
  type VerifiedRevocationList,
} from './lib/revocation-lists.ts';
export {
  validateCertificatePath, certificatesFromPem, CertificateFormatError, PRIVOP_SIGNING_EKU_OID, type CertificatePurpose, type PathValidationInput, type PathValidationResult,
} from './lib/certificate-paths.ts';
export {
  generateHpkeKeyPair, hpkeSeal, hpkeOpen, isHpkePublicKey, HPKE_PUBLIC_KEY_LENGTH, HPKE_ENCAPSULATED_KEY_LENGTH, type HpkeKeyPair, type HpkeSealed,
} from './lib/hpke.ts';
export { HpkeStreamSealer, HpkeStreamOpener, RunningSha256, hpkeStreamChunkAad, HPKE_STREAM_TAG_LENGTH } from './lib/hpke-stream.ts';
export { signJwt, publicJwk, signDetached, verifyDetached, TOKEN_ALGORITHM } from './lib/jwt.ts';
export {
  parseTpmPublic, makeCredential, encodeCredentialFile, decodeCredentialFile, parseQuote, parseTpmSignature, verifyQuoteSignature,
  computePcrDigest, replayPcrExtends, endorsementKeyFingerprint, TpmFormatError, TPMA_OBJECT,
  type TpmPublic, type TpmHashName, type TpmCurveName, type TpmSymmetricDefinition, type TpmScheme, type TpmSchemeName,
  type QuoteInfo, type TpmPcrSelection, type TpmSignature, type TpmCredential, type VerifyQuoteOptions,
} from './lib/tpm.ts';
export { certificateValidity, checkEndorsementCertificate, pemCertificatesToDer, type EndorsementCertificateProblem } from './lib/certificates.ts';
export { canonicalJson } from './lib/canonical-json.ts';
export {
  generateSignerKeyPair, generateResultKeyPair, resultPublicKeyFromPem, resultPrivateKeyFromPem, importSignerPublicKey, signDetachedJws,
  detachedJwsHeader, certificateThumbprint, verifyDetachedJws, signWithPemKey, PrivopKeyError, importSignerCertificateKey, privateKeyPemToDer, publicKeyPemToDer, PRIVOP_JWS_ALGORITHMS, type PrivopJwsAlgorithm,
} from './lib/privop-keys.ts';
export { PRIVOP_REQUEST_KEY_EKU_OID } from './lib/certificates.ts';
export {
  checkRequestKeyCertificate, requestKeyId, x25519PublicKeyOf, x25519PublicKeySpki, type CheckedRequestKeyCertificate,
} from './lib/request-key-certificates.ts';
