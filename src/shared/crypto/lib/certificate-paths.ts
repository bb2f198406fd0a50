// RFC 5280 path validation for relying parties on a host: pkijs builds the path to one trust anchor
// and checks signatures, name chaining, validity periods, cA and keyCertSign on issuers, policies and
// name constraints; this adds what pkijs leaves out (end-entity checks, extended key usage, path
// length constraints, unknown critical extensions) and checks revocation against a verified CRL.
// Must never call a certificate valid when any check could not be made (no CRL: not valid).
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import * as nodeCrypto from 'node:crypto';
import type * as Pkijs from 'pkijs';
import { normalizeHexSerial, type VerifiedRevocationList } from './revocation-lists.ts';

x509.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** `privop-signing`: a signer of sealed privileged-operation requests (the dedicated EKU below is required, anyExtendedKeyUsage is not enough). */
export type CertificatePurpose = 'server' | 'client' | 'privop-signing';

/**
 * Extended key usage of certificates that may sign privileged-operation requests. Under a private arc (trustplane's
 * placeholder enterprise number 1.3.6.1.4.1.59999, "x.1.1" = privop request signing); no other EKU, anyExtendedKeyUsage included, stands in for it.
 */
export const PRIVOP_SIGNING_EKU_OID = '1.3.6.1.4.1.59999.1.1';

const MAX_CHAIN = 8;
const EKU_OID = { server: '1.3.6.1.5.5.7.3.1', client: '1.3.6.1.5.5.7.3.2', 'privop-signing': PRIVOP_SIGNING_EKU_OID } as const;
const EKU_NAME = { server: 'serverAuth', client: 'clientAuth', 'privop-signing': `privop request signing (${PRIVOP_SIGNING_EKU_OID})` } as const;
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** Extensions this validation (or pkijs under it) processes; any other marked critical makes a certificate invalid (RFC 5280 §4.2). */
const UNDERSTOOD_EXTENSIONS = new Set([
  '2.5.29.14', // subjectKeyIdentifier
  '2.5.29.15', // keyUsage
  '2.5.29.17', // subjectAltName
  '2.5.29.19', // basicConstraints
  '2.5.29.30', // nameConstraints (pkijs)
  '2.5.29.32', // certificatePolicies (pkijs)
  '2.5.29.33', // policyMappings (pkijs)
  '2.5.29.35', // authorityKeyIdentifier
  '2.5.29.36', // policyConstraints (pkijs)
  '2.5.29.37', // extKeyUsage
  '2.5.29.54', // inhibitAnyPolicy (pkijs)
]);

/** Input that is not a certificate at all (the caller's error, not a verdict). */
export class CertificateFormatError extends Error {
  readonly code = 'InvalidCertificate';
  constructor(message: string) {
    super(message);
    this.name = 'CertificateFormatError';
  }
}

export interface PathValidationInput {
  certificateDer: Uint8Array;
  /** Intermediates (and possibly the anchor), in any order. */
  chainDer?: Uint8Array[];
  anchorDer: Uint8Array;
  /** The anchor's CRL, already verified (verifyRevocationList); absent: revocation cannot be checked, so nothing is valid. */
  revocationList?: VerifiedRevocationList;
  /** Why the revocation list is missing, for the answer. */
  revocationUnavailable?: string;
  /**
   * Skips revocation (no CRL is consulted and none is required). Only for trust anchors that publish no CRL, such as the CAs
   * of privileged-operation signers in this version; the ugly name is so a grep finds every caller.
   */
  unsafeSkipRevocation?: boolean;
  purpose?: CertificatePurpose;
  now: Date;
}

export interface PathValidationResult {
  valid: boolean;
  reason?: string;
  subject: string;
  notAfter: Date;
  serial: string;
}

/** Every certificate in a PEM text, as DER; text holding none, or a malformed block, is a format error. */
export function certificatesFromPem(pem: string): Buffer[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new CertificateFormatError('Expected a PEM certificate (-----BEGIN CERTIFICATE-----).');
  return blocks.map((block) => {
    const der = Buffer.from(block.replace(/-----(BEGIN|END) CERTIFICATE-----|\s+/g, ''), 'base64');
    parse(der);
    return der;
  });
}

function parse(der: Uint8Array): x509.X509Certificate {
  try {
    return new x509.X509Certificate(Buffer.from(der));
  } catch {
    throw new CertificateFormatError('A certificate is not a well-formed X.509 certificate.');
  }
}

/** pkijs is large and only the agent's VerifyCertificate needs it: loaded on first use, not by every command. */
let pkijsModule: Promise<typeof Pkijs> | undefined;
const loadPkijs = () => (pkijsModule ??= import('pkijs'));

function toPkijs(pkijs: typeof Pkijs, der: Uint8Array): Pkijs.Certificate {
  try {
    return pkijs.Certificate.fromBER(new Uint8Array(der));
  } catch {
    throw new CertificateFormatError('A certificate is not a well-formed X.509 certificate.');
  }
}

const sameSignature = (a: ArrayBuffer, b: ArrayBuffer | Uint8Array) => Buffer.from(a).equals(Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)));

/** What pkijs's result codes mean, in words a caller can act on. */
function describePkijsFailure(code: number | undefined, message: string): string {
  if (code === 8) return 'a certificate in the path is expired or not yet valid';
  if (code === 10) return 'the issuer and subject names do not chain';
  if (code === 12) return 'a certificate in the path is revoked';
  if (code === 14) return 'an issuer in the path is not a CA (basicConstraints cA is false, or keyUsage lacks keyCertSign)';
  if (/certificate path/i.test(message)) return 'no path to the trust anchor: issued by another CA, or a chain certificate is missing';
  return `path validation failed: ${message}`;
}

function checkEndEntity(certificate: x509.X509Certificate, purpose: CertificatePurpose | undefined, now: Date): string | undefined {
  if (now < certificate.notBefore) return `not valid before ${certificate.notBefore.toISOString()}`;
  if (now > certificate.notAfter) return `expired at ${certificate.notAfter.toISOString()}`;
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  if (constraints?.ca) return 'a CA certificate, not an end-entity certificate';
  if (!purpose) return undefined;
  const usages = certificate.getExtension(x509.KeyUsagesExtension);
  if (purpose === 'privop-signing') {
    if (usages && !(usages.usages & x509.KeyUsageFlags.digitalSignature)) return 'keyUsage does not allow digitalSignature';
    const oids = certificate.getExtension(x509.ExtendedKeyUsageExtension)?.usages.map(String) ?? [];
    return oids.includes(PRIVOP_SIGNING_EKU_OID) ? undefined : `extendedKeyUsage does not include ${EKU_NAME[purpose]}`;
  }
  if (usages) {
    const wanted = purpose === 'client' ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement
      : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.keyAgreement;
    if (!(usages.usages & wanted)) return `keyUsage does not allow ${purpose} authentication`;
  }
  const extended = certificate.getExtension(x509.ExtendedKeyUsageExtension);
  if (extended) {
    const oids = extended.usages.map(String);
    if (!oids.includes(EKU_OID[purpose]) && !oids.includes(ANY_EXTENDED_KEY_USAGE)) {
      return `extendedKeyUsage does not include ${EKU_NAME[purpose]}`;
    }
  }
  return undefined;
}

/** The checks on a validated path that pkijs does not make. */
function checkPath(path: x509.X509Certificate[], anchor: x509.X509Certificate, input: PathValidationInput): string | undefined {
  for (const [index, certificate] of path.entries()) {
    const isAnchor = index === path.length - 1;
    if (!isAnchor) {
      const unknown = certificate.extensions.find((extension) => extension.critical && !UNDERSTOOD_EXTENSIONS.has(extension.type));
      if (unknown) return `${certificate.subject} has an unrecognised critical extension ${unknown.type}`;
    }
    if (index === 0) continue;
    const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
    if (!constraints?.ca) return `issuer ${certificate.subject} is not a CA (basicConstraints cA is not set)`;
    const usages = certificate.getExtension(x509.KeyUsagesExtension);
    if (usages && !(usages.usages & x509.KeyUsageFlags.keyCertSign)) return `issuer ${certificate.subject} may not sign certificates (keyUsage lacks keyCertSign)`;
    // Intermediate CAs below this one: path[1..index-1].
    if (constraints.pathLength !== undefined && index - 1 > constraints.pathLength) {
      return `issuer ${certificate.subject} allows ${constraints.pathLength} intermediate CA(s) below it (pathLenConstraint); the path has ${index - 1}`;
    }
  }
  if (input.unsafeSkipRevocation) return undefined;
  for (let index = 0; index < path.length - 1; index += 1) {
    const certificate = path[index] as x509.X509Certificate;
    const issuer = path[index + 1] as x509.X509Certificate;
    if (!sameSignature(issuer.signature, anchor.signature)) {
      return `the revocation status of ${certificate.subject} is unknown: there is no CRL for its issuer ${issuer.subject}`;
    }
    if (!input.revocationList) return `revocation status unavailable${input.revocationUnavailable ? `: ${input.revocationUnavailable}` : ''}`;
    if (input.revocationList.revokedSerials.has(normalizeHexSerial(certificate.serialNumber))) {
      return index === 0 ? 'revoked' : `issuer ${certificate.subject} is revoked`;
    }
  }
  return undefined;
}

/** Validates a certificate for a purpose against one trust anchor, with revocation; never throws for an invalid certificate. */
export async function validateCertificatePath(input: PathValidationInput): Promise<PathValidationResult> {
  const chain = input.chainDer ?? [];
  if (chain.length > MAX_CHAIN) throw new CertificateFormatError(`At most ${MAX_CHAIN} chain certificates.`);
  const leaf = parse(input.certificateDer);
  const anchor = parse(input.anchorDer);
  const intermediates = chain.map(parse);
  const describe = (reason?: string): PathValidationResult => ({ valid: reason === undefined, reason, subject: leaf.subject,
    notAfter: leaf.notAfter, serial: normalizeHexSerial(leaf.serialNumber) });

  const endEntity = checkEndEntity(leaf, input.purpose, input.now);
  if (endEntity) return describe(endEntity);

  const pkijs = await loadPkijs();
  const engine = new pkijs.CertificateChainValidationEngine({ trustedCerts: [toPkijs(pkijs, input.anchorDer)],
    // The leaf last: pkijs starts the path from the last certificate it is given.
    certs: [...chain.map((der) => toPkijs(pkijs, der)), toPkijs(pkijs, input.certificateDer)], checkDate: input.now });
  // Revocation is checked below against the CRL we verified ourselves: pkijs is given none.
  const cryptoEngine = new pkijs.CryptoEngine({ name: 'node', crypto: nodeCrypto.webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'] });
  const result = await engine.verify({ passedWhenNotRevValues: false }, cryptoEngine);
  if (!result.result) return describe(describePkijsFailure(result.resultCode, result.resultMessage ?? 'unknown failure'));
  const candidates = [leaf, ...intermediates, anchor];
  const path = (result.certificatePath ?? []).map((certificate) => {
    const signature = certificate.signatureValue.valueBlock.valueHexView;
    const found = candidates.find((candidate) => sameSignature(candidate.signature, signature));
    if (!found) throw new Error('pkijs returned a certificate it was not given');
    return found;
  });
  if (path.length < 2 || !sameSignature(path[path.length - 1]!.signature, anchor.signature)) {
    return describe('no path to the trust anchor: issued by another CA, or a chain certificate is missing');
  }
  return describe(checkPath(path, anchor, input));
}
