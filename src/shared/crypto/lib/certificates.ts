// X.509 for the fleet's internal CA: a self-signed ECDSA P-256 CA and the certificates it issues to
// hosts (client) and to the server (server). Built with @peculiar/x509 over Node's WebCrypto.
// Must never hold a CA private key longer than one signing: callers unwrap, sign, and zeroize.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import * as nodeCrypto from 'node:crypto';
import { importPrivateKeyDer, importPublicKeyDer } from './asymmetric.ts';
import { randomBytes } from './bytes.ts';
import { PRIVOP_SIGNING_EKU_OID } from './certificate-paths.ts';

/**
 * Extended key usage of a host's privileged-operation request key (X25519, HPKE): under trustplane's placeholder arc,
 * next to the signing EKU ("x.1.2"). It says what the key is for, so a requester never encrypts to a host's TLS key.
 */
export const PRIVOP_REQUEST_KEY_EKU_OID = '1.3.6.1.4.1.59999.1.2';

x509.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;

export interface CertificateAuthority {
  certificateDer: Buffer;
  /** PKCS#8 DER; the caller wraps it at once and zeroizes this buffer. */
  privateKeyPkcs8: Buffer;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  // Positive (RFC 5280) and with a non-zero leading byte, so the hex we store is the serial the certificate carries.
  bytes[0] = ((bytes[0] as number) & 0x7f) | 0x40;
  return bytes.toString('hex');
}

export async function createCertificateAuthority(commonName: string, validityDays: number, now = new Date()): Promise<CertificateAuthority> {
  const keys = await nodeCrypto.webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(), name: `CN=${commonName}`, notBefore: now, notAfter: new Date(now.getTime() + validityDays * DAY_MS),
    keys, signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await nodeCrypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certificateDer: Buffer.from(certificate.rawData), privateKeyPkcs8: pkcs8 };
}

export interface IssueCertificateInput {
  authority: { certificateDer: Uint8Array; privateKeyPkcs8: Uint8Array };
  subjectPublicKeyDer: Uint8Array;
  commonName: string;
  /**
   * `both`: serverAuth and clientAuth (attested host certificates, usable either side of mutual TLS);
   * `privop-signing`: only the privileged-operation signing EKU (PRIVOP_SIGNING_EKU_OID), keyUsage digitalSignature only;
   * `privop-request-key`: a host's X25519 request key: keyUsage keyAgreement only, only PRIVOP_REQUEST_KEY_EKU_OID.
   */
  usage: 'client' | 'server' | 'both' | 'privop-signing' | 'privop-request-key';
  /** subjectAltName URIs (a host's identity) and DNS names / IPs (a server's). */
  uris?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  validityDays: number;
  now?: Date;
}

export interface IssuedCertificate {
  certificateDer: Buffer;
  serialNumber: string;
  notAfter: Date;
}

/** Tolerates clocks a little behind ours: a new certificate is valid from a few minutes ago. */
const CLOCK_SKEW_MS = 5 * 60 * 1000;

export async function issueCertificate(input: IssueCertificateInput): Promise<IssuedCertificate> {
  const now = input.now ?? new Date();
  const authority = new x509.X509Certificate(input.authority.certificateDer);
  // The certificate is stored in clear and could have been swapped: sign only if it is the key's own.
  const keyPublic = nodeCrypto.createPublicKey(importPrivateKeyDer(input.authority.privateKeyPkcs8)).export({ format: 'der', type: 'spki' });
  const certificatePublic = new nodeCrypto.X509Certificate(Buffer.from(input.authority.certificateDer)).publicKey.export({ format: 'der', type: 'spki' });
  if (!keyPublic.equals(certificatePublic)) throw new Error('the CA certificate does not match the CA private key');
  const signingKey = await nodeCrypto.webcrypto.subtle.importKey('pkcs8', input.authority.privateKeyPkcs8, EC_P256, false, ['sign']);
  // Embedded as given (callers decide which key types they accept); parsed first, so garbage is refused here.
  const subjectKeyType = importPublicKeyDer(input.subjectPublicKeyDer).asymmetricKeyType;
  const publicKey = Buffer.from(input.subjectPublicKeyDer);
  const names: x509.JsonGeneralName[] = [
    ...(input.uris ?? []).map((value) => ({ type: 'url' as const, value })),
    ...(input.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(input.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const serial = serialNumber();
  // Never outliving the CA that vouches for it; whole seconds, as the certificate says it (X.509 times have no milliseconds).
  const notAfter = new Date(Math.floor(Math.min(now.getTime() + input.validityDays * DAY_MS, authority.notAfter.getTime()) / 1000) * 1000);
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial, subject: `CN=${input.commonName}`, issuer: authority.subject,
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS), notAfter,
    signingKey, publicKey, signingAlgorithm: EC_P256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(input.usage === 'privop-signing' ? [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([PRIVOP_SIGNING_EKU_OID], true),
      ] : input.usage === 'privop-request-key' ? [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyAgreement, true),
        new x509.ExtendedKeyUsageExtension([PRIVOP_REQUEST_KEY_EKU_OID], true),
      ] : [
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature
          | (subjectKeyType === 'rsa' ? x509.KeyUsageFlags.keyEncipherment : x509.KeyUsageFlags.keyAgreement), true),
        new x509.ExtendedKeyUsageExtension([
          ...(input.usage !== 'client' ? [x509.ExtendedKeyUsage.serverAuth] : []),
          ...(input.usage !== 'server' ? [x509.ExtendedKeyUsage.clientAuth] : []),
        ], true),
      ]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names, false)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(authority, false),
    ],
  });
  return { certificateDer: Buffer.from(certificate.rawData), serialNumber: serial, notAfter };
}

export function certificateToPem(der: Uint8Array): string {
  return new x509.X509Certificate(der).toString('pem');
}

/** Whether a DER SubjectPublicKeyInfo is an ECDSA P-256 key naming its curve (what hosts enrol with). */
export function isP256PublicKey(spkiDer: Uint8Array): boolean {
  try {
    const key = importPublicKeyDer(spkiDer);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

/** PKCS#8 DER → PEM, for TLS contexts (which take PEM). The caller zeroizes the DER; the PEM string cannot be. */
export function privateKeyToPem(pkcs8Der: Uint8Array): string {
  return importPrivateKeyDer(pkcs8Der).export({ format: 'pem', type: 'pkcs8' }) as string;
}

/** Serial (upper-case hex, no leading zeros), issuer check and validity of a certificate, for checks TLS leaves to us. */
export function describeCertificate(der: Uint8Array): { serialNumber: string; notAfter: Date; uris: string[]; publicKeyDer: Buffer } {
  const certificate = new nodeCrypto.X509Certificate(Buffer.from(der));
  const uris = (certificate.subjectAltName ?? '').split(', ').filter((name) => name.startsWith('URI:')).map((name) => name.slice(4));
  return { serialNumber: normalizeSerial(certificate.serialNumber), notAfter: new Date(certificate.validTo), uris,
    publicKeyDer: certificate.publicKey.export({ format: 'der', type: 'spki' }) };
}

export function normalizeSerial(serial: string): string {
  return serial.toUpperCase().replace(/^0+(?=.)/, '');
}

/** Why an EK certificate was refused, for the caller's typed error. */
export type EndorsementCertificateProblem = 'unreadable' | 'other-key' | 'unknown-issuer' | 'not-valid-now';

/**
 * Checks a TPM's EK certificate: it certifies `ekSpki` (the EK the TPM presented), and, when
 * authorities are given, one of them issued and signed it and it is valid at `now`.
 */
export function checkEndorsementCertificate(certificateDer: Uint8Array, ekSpki: Uint8Array, authoritiesDer: readonly Uint8Array[],
  now: Date): EndorsementCertificateProblem | undefined {
  let certificate: nodeCrypto.X509Certificate;
  try {
    certificate = new nodeCrypto.X509Certificate(Buffer.from(certificateDer));
  } catch {
    return 'unreadable';
  }
  if (!certificate.publicKey.export({ type: 'spki', format: 'der' }).equals(Buffer.from(ekSpki))) return 'other-key';
  if (authoritiesDer.length === 0) return undefined;
  const chained = authoritiesDer.some((der) => {
    const authority = new nodeCrypto.X509Certificate(Buffer.from(der));
    return certificate.checkIssued(authority) && certificate.verify(authority.publicKey);
  });
  if (!chained) return 'unknown-issuer';
  if (now.getTime() < Date.parse(certificate.validFrom) || now.getTime() > Date.parse(certificate.validTo)) return 'not-valid-now';
  return undefined;
}

/** Every certificate in PEM text, as DER (blocks that are not certificates are refused with an error). */
export function pemCertificatesToDer(pem: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => Buffer.from(new nodeCrypto.X509Certificate(block).raw));
}

/** A PEM certificate's validity period. */
export function certificateValidity(pem: string): { notBefore: Date; notAfter: Date } {
  const certificate = new nodeCrypto.X509Certificate(pem);
  return { notBefore: new Date(certificate.validFrom), notAfter: new Date(certificate.validTo) };
}
