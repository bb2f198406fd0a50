// A host's privileged-operation request key (X25519, for HPKE) as the fleet CA certifies it: the SPKI the CA signs,
// the key id that names it, and the requester's check of its certificate before encrypting to it.
// Must never call a certificate usable unless it chains to the given CA, is valid now, names the host and is only for keyAgreement.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import * as nodeCrypto from 'node:crypto';
import { importRawPrivateKey, importRawPublicKey } from './asymmetric.ts';
import { sha256 } from './bytes.ts';
import { validateCertificatePath } from './certificate-paths.ts';
import { PRIVOP_REQUEST_KEY_EKU_OID } from './certificates.ts';

x509.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The SubjectPublicKeyInfo (OID 1.3.101.110) of a raw 32-byte X25519 public key, for the CA to certify. */
export function x25519PublicKeySpki(raw: Uint8Array): Buffer {
  return importRawPublicKey('x25519', raw).export({ format: 'der', type: 'spki' });
}

/** What names a request key in an encrypted request: base64url SHA-256 of the raw public key (stable across re-certification). */
export function requestKeyId(raw: Uint8Array): string {
  return sha256(raw).toString('base64url');
}

export interface CheckedRequestKeyCertificate {
  /** The raw X25519 public key (32 bytes) to encrypt to. */
  publicKey: Buffer;
  keyId: string;
  uris: string[];
  notAfter: Date;
  serial: string;
}

/**
 * Checks a request-key certificate at `now`: against the account CA when `anchorDer` is given (RFC 5280 path, validity, not a CA;
 * revocation is not consulted: the requester has no CRL here), else only its own validity period; then that it is X25519,
 * keyAgreement only, carries the request-key EKU and has a URI `namesHost` accepts. Returns the key or the reason it may not be used.
 */
export async function checkRequestKeyCertificate(input: { certificateDer: Uint8Array; anchorDer?: Uint8Array; namesHost: (uri: string) => boolean; now: Date })
  : Promise<{ key: CheckedRequestKeyCertificate } | { problem: string }> {
  let certificate: x509.X509Certificate;
  try {
    certificate = new x509.X509Certificate(Buffer.from(input.certificateDer));
  } catch {
    return { problem: 'it is not a well-formed X.509 certificate' };
  }
  if (input.anchorDer) {
    const path = await validateCertificatePath({ certificateDer: input.certificateDer, anchorDer: input.anchorDer, now: input.now, unsafeSkipRevocation: true });
    if (!path.valid) return { problem: path.reason ?? 'not valid' };
  } else if (input.now < certificate.notBefore || input.now > certificate.notAfter) {
    return { problem: `it is valid from ${certificate.notBefore.toISOString()} to ${certificate.notAfter.toISOString()} only` };
  }
  const spki = Buffer.from(certificate.publicKey.rawData);
  let key: nodeCrypto.KeyObject;
  try {
    key = nodeCrypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return { problem: 'its public key is unreadable' };
  }
  if (key.asymmetricKeyType !== 'x25519') return { problem: `its key is ${key.asymmetricKeyType ?? 'unknown'}, not X25519` };
  const usages = certificate.getExtension(x509.KeyUsagesExtension);
  if (!usages || usages.usages !== x509.KeyUsageFlags.keyAgreement) return { problem: 'its keyUsage is not keyAgreement only' };
  const extended = certificate.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? [];
  if (!extended.includes(PRIVOP_REQUEST_KEY_EKU_OID)) return { problem: `its extendedKeyUsage lacks the request-key usage (${PRIVOP_REQUEST_KEY_EKU_OID})` };
  const uris = certificate.getExtension(x509.SubjectAlternativeNameExtension)?.names.items
    .filter((name) => name.type === 'url').map((name) => name.value) ?? [];
  if (!uris.some(input.namesHost)) return { problem: 'it does not name the target host' };
  const publicKey = Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url');
  return { key: { publicKey, keyId: requestKeyId(publicKey), uris, notAfter: certificate.notAfter, serial: certificate.serialNumber } };
}

/** The raw X25519 public key of a raw X25519 private key (a host's request key, read back from its state). */
export function x25519PublicKeyOf(privateKey: Uint8Array): Buffer {
  const key = nodeCrypto.createPublicKey(importRawPrivateKey('x25519', privateKey));
  return Buffer.from(key.export({ format: 'jwk' }).x as string, 'base64url');
}
