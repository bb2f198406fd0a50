// Certificate revocation lists (RFC 5280 §5) signed by a fleet CA, and their reading by relying
// parties: signature under the expected issuer, freshness, and the serials they list.
// Must never hold the CA private key longer than one signing, nor accept a list it could not verify.
import 'reflect-metadata'; // @peculiar/x509 resolves its ASN.1 providers through tsyringe, which needs it
import * as x509 from '@peculiar/x509';
import * as nodeCrypto from 'node:crypto';
import { importPrivateKeyDer } from './asymmetric.ts';

x509.cryptoProvider.set(nodeCrypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const CRL_NUMBER_OID = '2.5.29.20';

/**
 * The RFC 5280 reason codes we use: attestation withdrew the host's privilege, or the host left the fleet; a privileged-operation
 * signer's key was compromised or its holder changed role.
 */
export type RevocationReason = 'privilegeWithdrawn' | 'cessationOfOperation' | 'keyCompromise' | 'affiliationChanged';
const REVOCATION_REASONS: readonly RevocationReason[] = ['privilegeWithdrawn', 'cessationOfOperation', 'keyCompromise', 'affiliationChanged'];

export interface RevocationEntry {
  /** Hex serial, as issueCertificate returns it. */
  serial: string;
  revokedAt: Date;
  reason: RevocationReason;
}

export interface RevocationListInput {
  authority: { certificateDer: Uint8Array; privateKeyPkcs8: Uint8Array };
  entries: RevocationEntry[];
  thisUpdate: Date;
  nextUpdate: Date;
  /** Monotonic CRL number (RFC 5280 §5.2.3). */
  number: bigint;
}

/** DER of a non-negative INTEGER (the CRL number extension's value). */
function derInteger(value: bigint): Buffer {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if ((bytes[0] as number) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]);
}

/** The value of a DER INTEGER that is the whole of `der`; undefined when it is not one. */
function readDerInteger(der: Buffer): bigint | undefined {
  if (der.length < 3 || der[0] !== 0x02 || der[1] !== der.length - 2 || der.length > 22) return undefined;
  return BigInt(`0x${der.subarray(2).toString('hex')}`);
}

/** A CRL listing `entries`, signed with the CA key (checked to be the certificate's own first). */
export async function createRevocationList(input: RevocationListInput): Promise<Buffer> {
  const authority = new x509.X509Certificate(input.authority.certificateDer);
  const keyPublic = nodeCrypto.createPublicKey(importPrivateKeyDer(input.authority.privateKeyPkcs8)).export({ format: 'der', type: 'spki' });
  if (!keyPublic.equals(Buffer.from(authority.publicKey.rawData))) throw new Error('the CA certificate does not match the CA private key');
  const signingKey = await nodeCrypto.webcrypto.subtle.importKey('pkcs8', input.authority.privateKeyPkcs8, EC_P256, false, ['sign']);
  const crl = await x509.X509CrlGenerator.create({
    issuer: authority.subjectName, thisUpdate: input.thisUpdate, nextUpdate: input.nextUpdate, signingKey, signingAlgorithm: EC_P256,
    // Every entry carries a reason: it is informative, and pkijs cannot read an entry without extensions.
    entries: input.entries.map((entry) => ({ serialNumber: entry.serial, revocationDate: entry.revokedAt, reason: x509.X509CrlReason[entry.reason] })),
    extensions: [
      await x509.AuthorityKeyIdentifierExtension.create(authority, false),
      new x509.Extension(CRL_NUMBER_OID, false, derInteger(input.number)),
    ],
  });
  return Buffer.from(crl.rawData);
}

export interface VerifiedRevocationList {
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Normalised serials (lower-case hex, no leading zeros). */
  revokedSerials: Set<string>;
  /** The entries as listed (a reason outside ours reads as privilegeWithdrawn), so a list can be re-issued with one more. */
  entries: RevocationEntry[];
  /** The CRL number, when the list carries one. */
  number?: bigint;
  der: Buffer;
}

export function normalizeHexSerial(serial: string): string {
  return serial.toLowerCase().replace(/^0+(?=.)/, '');
}

/**
 * Parses a CRL and checks it was signed by `issuerDer` (name and signature) and is current at `now`
 * (thisUpdate not in the future beyond `skewMs`, nextUpdate not passed). Throws with the reason otherwise.
 * `now` null judges signature and issuer only: for re-issuing a list that may have gone out of date.
 */
export async function verifyRevocationList(crlDer: Uint8Array, issuerDer: Uint8Array, now: Date | null, skewMs = 5 * 60_000): Promise<VerifiedRevocationList> {
  const issuer = new x509.X509Certificate(issuerDer);
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(Buffer.from(crlDer));
  } catch {
    throw new Error('the revocation list is not a DER CRL');
  }
  if (crl.issuer !== issuer.subject) throw new Error('the revocation list is issued by another CA');
  const usages = issuer.getExtension(x509.KeyUsagesExtension);
  if (usages && !(usages.usages & x509.KeyUsageFlags.cRLSign)) throw new Error('the CA may not sign revocation lists (keyUsage lacks cRLSign)');
  if (!(await crl.verify({ publicKey: issuer }).catch(() => false))) throw new Error('the revocation list signature does not verify');
  if (now && crl.thisUpdate.getTime() > now.getTime() + skewMs) throw new Error('the revocation list is dated in the future');
  if (now && crl.nextUpdate && crl.nextUpdate.getTime() < now.getTime()) throw new Error('the revocation list is out of date');
  const numberExtension = crl.extensions.find((extension) => extension.type === CRL_NUMBER_OID);
  return { thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, der: Buffer.from(crlDer),
    revokedSerials: new Set(crl.entries.map((entry) => normalizeHexSerial(entry.serialNumber))),
    entries: crl.entries.map((entry) => {
      const reason = entry.reason === undefined ? undefined : x509.X509CrlReason[entry.reason] as RevocationReason;
      return { serial: normalizeHexSerial(entry.serialNumber), revokedAt: entry.revocationDate,
        reason: reason && REVOCATION_REASONS.includes(reason) ? reason : 'privilegeWithdrawn' };
    }),
    number: numberExtension ? readDerInteger(Buffer.from(numberExtension.value)) : undefined };
}

/** A CRL as PEM ("X509 CRL"), for files an operator handles. */
export function revocationListToPem(der: Uint8Array): string {
  const body = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN X509 CRL-----\n${body}\n-----END X509 CRL-----\n`;
}

/** The DER of a CRL file that holds either PEM or DER. */
export function revocationListDer(file: Uint8Array): Buffer {
  const pem = /-----BEGIN X509 CRL-----([A-Za-z0-9+/=\s]+?)-----END X509 CRL-----/.exec(Buffer.from(file).toString('latin1'));
  return pem ? Buffer.from((pem[1] as string).replace(/\s+/g, ''), 'base64') : Buffer.from(file);
}
