// PKCS#10 certificate signing requests: made on a host for a key that never leaves it, and read by
// the verifier, which keeps only the proven public key and the DNS names asked for.
// Must never trust a request whose signature does not verify, nor a key type or size we do not accept.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import * as nodeCrypto from 'node:crypto';
import { importPublicKeyDer } from './asymmetric.ts';

x509.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const MAX_REQUEST_PEM_LENGTH = 16 * 1024;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;
const ACCEPTED_CURVES = new Set(['prime256v1', 'secp384r1']);
/** A DNS name as a certificate may carry it: LDH labels, an optional leading wildcard label. */
const DNS_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SUBJECT_ALT_NAME_OID = '2.5.29.17';
const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** Why a request was refused; the message is safe to show the requester. */
export class CertificateRequestError extends Error {
  readonly code = 'InvalidCertificateRequest';
  constructor(message: string) {
    super(message);
    this.name = 'CertificateRequestError';
  }
}

export interface ParsedCertificateRequest {
  /** SubjectPublicKeyInfo DER of the key the request proved possession of. */
  publicKeyDer: Buffer;
  /** `ec P-256`, `ec P-384` or `rsa 3072`, for logs and errors. */
  keyDescription: string;
  /** DNS subjectAltNames asked for, lower-cased, de-duplicated, in the order given. */
  dnsNames: string[];
}

/**
 * Reads a PEM CSR: its signature must verify under the key it carries (proof of possession), the key
 * must be EC P-256/P-384 or RSA of 2048 bits or more. The requested subject and every extension but
 * the DNS names of subjectAltName are ignored: the issuer decides what a certificate says.
 */
export async function parseCertificateRequest(pem: string, options: { maxDnsNames: number }): Promise<ParsedCertificateRequest> {
  if (pem.length > MAX_REQUEST_PEM_LENGTH || !/-----BEGIN (NEW )?CERTIFICATE REQUEST-----/.test(pem)) {
    throw new CertificateRequestError('Csr must be one PEM certificate request (-----BEGIN CERTIFICATE REQUEST-----).');
  }
  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(pem.replace(/NEW CERTIFICATE REQUEST/g, 'CERTIFICATE REQUEST'));
  } catch {
    throw new CertificateRequestError('Csr is not a well-formed PKCS#10 certificate request.');
  }
  const publicKeyDer = Buffer.from(request.publicKey.rawData);
  let keyDescription: string;
  try {
    const key = importPublicKeyDer(publicKeyDer);
    if (key.asymmetricKeyType === 'ec' && ACCEPTED_CURVES.has(key.asymmetricKeyDetails?.namedCurve ?? '')) {
      keyDescription = `ec ${key.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? 'P-256' : 'P-384'}`;
    } else if (key.asymmetricKeyType === 'rsa') {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
        throw new CertificateRequestError(`An RSA key must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits; this one has ${bits}.`);
      }
      keyDescription = `rsa ${bits}`;
    } else {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      throw new CertificateRequestError(`The key type ${key.asymmetricKeyType ?? 'unknown'}${curve ? ` (${curve})` : ''} is not accepted: `
        + 'use EC P-256, EC P-384 or RSA (2048 bits or more).');
    }
  } catch (error) {
    if (error instanceof CertificateRequestError) throw error;
    throw new CertificateRequestError('The request\'s public key cannot be read.');
  }
  let verified = false;
  try {
    verified = await request.verify();
  } catch {
    verified = false;
  }
  if (!verified) throw new CertificateRequestError('The request\'s signature does not verify under its own key (no proof of possession).');

  const dnsNames: string[] = [];
  for (const extension of request.extensions) {
    if (extension.type !== SUBJECT_ALT_NAME_OID) continue;
    const names = new x509.SubjectAlternativeNameExtension(extension.rawData).names.toJSON();
    for (const name of names) {
      if (name.type !== 'dns') continue;
      const value = name.value.toLowerCase();
      if (value.length > 253 || !DNS_NAME.test(value)) throw new CertificateRequestError(`${JSON.stringify(name.value.slice(0, 80))} is not a DNS name.`);
      if (!dnsNames.includes(value)) dnsNames.push(value);
    }
  }
  if (dnsNames.length > options.maxDnsNames) {
    throw new CertificateRequestError(`At most ${options.maxDnsNames} DNS names per certificate; the request asks for ${dnsNames.length}.`);
  }
  return { publicKeyDer, keyDescription, dnsNames };
}

/** A PEM CSR for an ECDSA P-256 key pair (PKCS#8 and SPKI DER), signed by it; the caller zeroizes the private key. */
export async function createCertificateRequest(input: { privateKeyPkcs8: Uint8Array; publicKeyDer: Uint8Array; commonName: string;
  dnsNames?: string[] }): Promise<string> {
  const subtle = nodeCrypto.webcrypto.subtle;
  const keys = {
    privateKey: await subtle.importKey('pkcs8', input.privateKeyPkcs8, EC_P256, false, ['sign']),
    publicKey: await subtle.importKey('spki', input.publicKeyDer, EC_P256, true, ['verify']),
  };
  const request = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${input.commonName}`, keys, signingAlgorithm: EC_P256,
    extensions: input.dnsNames && input.dnsNames.length > 0
      ? [new x509.SubjectAlternativeNameExtension(input.dnsNames.map((value) => ({ type: 'dns' as const, value })), false)] : [] });
  return request.toString('pem');
}
