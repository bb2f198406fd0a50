// Who may ask this host for privileged operations: the --privop-trust file (pinned signer public keys, CAs whose
// certified signers are trusted, the operations each may request and per-signer parameter limits).
// Must never start with a trust file it cannot fully read (a bad key, certificate or limit): it fails closed.
import { readFileSync } from 'node:fs';
import { dirname, posix, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { certificatesFromPem, importSignerPublicKey } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { resolvedPath } from './protected-resources.ts';
import { PRIVOP_CAMPAIGN_SIGNER_SUBJECT, zodReason, type PrivopParameters } from '../../shared/privop-wire.ts';

const operationName = z.string().regex(/^(\*|[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+)$/, 'an operation name or "*"');
const parameterName = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'a parameter name');
/** A string: a regular expression the whole value must match; a number: the largest value allowed. */
const limitsSchema = z.record(operationName, z.record(parameterName, z.union([z.string().min(1).max(1024), z.number().finite()])));

const trustFileSchema = z.object({
  signers: z.array(z.object({
    publicKeyFile: z.string().min(1),
    operations: z.array(operationName).min(1),
    /** For the audit log; defaults to the key file's name. */
    name: z.string().min(1).max(128).optional(),
    limits: limitsSchema.optional(),
  }).strict()).default([]),
  cas: z.array(z.object({
    certificateFile: z.string().min(1),
    /** The CA's revocation list (PEM or DER), re-read for every request so a new list applies without a restart; required fresh. */
    crlFile: z.string().min(1).optional(),
    operations: z.array(operationName).min(1),
    /** Narrows `operations` per certificate subject (the subject DN as RFC 4514 text, e.g. "CN=team-a"); unlisted subjects may request nothing. */
    subjects: z.record(z.string().min(1).max(1024), z.array(operationName)).optional(),
    name: z.string().min(1).max(128).optional(),
    limits: limitsSchema.optional(),
  }).strict()).default([]),
  /** The server as the account's central requester (fleet campaigns): its campaign signer, certified by this host's own account CA. */
  server: z.object({ operations: z.array(operationName).min(1), limits: limitsSchema.optional() }).strict().optional(),
}).strict();

export type ParameterLimit = { kind: 'pattern'; pattern: RegExp } | { kind: 'maximum'; maximum: number };
/** Operation → parameter → limit. */
export type ParameterLimits = ReadonlyMap<string, ReadonlyMap<string, ParameterLimit>>;

export interface TrustedSigner {
  name: string;
  keyId: string;
  key: KeyObject;
  operations: ReadonlySet<string>;
  /** A certified signer's subject entry, when its CA narrows by subject: the operation must be in both sets. */
  narrowedTo?: ReadonlySet<string>;
  limits: ParameterLimits;
}

export interface TrustedCa {
  name: string;
  certificateDer: Buffer;
  /** Where its CRL is (absolute); absent: this CA's signers are not checked for revocation. */
  crlPath?: string;
  operations: ReadonlySet<string>;
  subjects?: ReadonlyMap<string, ReadonlySet<string>>;
  limits: ParameterLimits;
}

export interface PrivopTrust {
  /** By key id (the JWK thumbprint the request's JWS names as kid). */
  signers: ReadonlyMap<string, TrustedSigner>;
  cas: readonly TrustedCa[];
  /** The "server" entry as read; it becomes a CA entry once the host's account CA is known (withServerCampaigns). */
  server?: { operations: ReadonlySet<string>; limits: ParameterLimits };
  /** The trust file and every file it names: no privileged operation may touch them (ProtectedResources). */
  files: string[];
}

/**
 * The trust with the "server" entry made a CA: this host's own account CA (from its enrolment), narrowed to the
 * campaign signer's subject, so only a certificate for that subject with the privop-signing EKU passes (a host
 * identity certificate from the same CA lacks the EKU). Unchanged when the file has no "server" entry.
 */
export function withServerCampaigns(trust: PrivopTrust, accountCaPem: string): PrivopTrust {
  if (!trust.server) return trust;
  const [certificateDer] = certificatesFromPem(accountCaPem);
  if (!certificateDer) throw new UserError('InvalidPrivopTrust', 'The enrolment holds no account CA certificate for the "server" trust entry.');
  const server: TrustedCa = { name: 'server', certificateDer, operations: trust.server.operations,
    subjects: new Map([[PRIVOP_CAMPAIGN_SIGNER_SUBJECT, trust.server.operations]]), limits: trust.server.limits };
  return { ...trust, cas: [...trust.cas, server] };
}

const allows = (operations: ReadonlySet<string>, operation: string) => operations.has('*') || operations.has(operation);

export function mayRequest(signer: TrustedSigner, operation: string): boolean {
  return allows(signer.operations, operation) && (!signer.narrowedTo || allows(signer.narrowedTo, operation));
}

/** The signer a valid certificate from `ca` makes, with the CA's operations narrowed to its subject's entry (none when unlisted). */
export function certifiedSigner(ca: TrustedCa, subject: string, key: { key: KeyObject; keyId: string }): TrustedSigner {
  return { name: `${ca.name}/${subject}`, keyId: key.keyId, key: key.key, operations: ca.operations,
    narrowedTo: ca.subjects ? ca.subjects.get(subject) ?? new Set() : undefined, limits: ca.limits };
}

/**
 * The first parameter of the request outside the signer's limits for the operation, with why (never its value), or undefined.
 * A limited parameter must be given (the operation's default is not judged); a limited path must be in normal form, so `..` cannot walk out of a pattern.
 */
export function parameterOutsideLimits(signer: TrustedSigner, operation: string, parameters: PrivopParameters): string | undefined {
  const limits = signer.limits.get(operation);
  if (!limits) return undefined;
  for (const [name, limit] of limits) {
    const value = parameters[name];
    if (value === undefined) return `parameter ${name} is limited for this signer and must be given explicitly`;
    if (limit.kind === 'pattern') {
      if (typeof value !== 'string' || !limit.pattern.test(value)) return `parameter ${name} is outside this signer's limit`;
      if (value.startsWith('/') && posix.normalize(value) !== value) return `parameter ${name} is limited for this signer and must be a normalised path`;
      // A link inside the allowed tree may point out of it: the place it reaches must be allowed too.
      if (value.startsWith('/') && !limit.pattern.test(resolvedPath(value))) return `parameter ${name} leads (through a link) outside this signer's limit`;
    } else {
      const number = typeof value === 'number' ? value : /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
      if (!Number.isFinite(number) || number > limit.maximum) return `parameter ${name} is above this signer's limit of ${limit.maximum}`;
    }
  }
  return undefined;
}

const broken = (file: string, message: string) => new UserError('InvalidPrivopTrust', `--privop-trust ${file}: ${message}`);

function compileLimits(file: string, where: string, limits: z.infer<typeof limitsSchema> | undefined): ParameterLimits {
  const compiled = new Map<string, Map<string, ParameterLimit>>();
  for (const [operation, parameters] of Object.entries(limits ?? {})) {
    const byName = new Map<string, ParameterLimit>();
    for (const [name, limit] of Object.entries(parameters)) {
      if (typeof limit === 'number') {
        byName.set(name, { kind: 'maximum', maximum: limit });
        continue;
      }
      try {
        // Anchored at both ends: the whole value must match ("/var/log/.*", not "/var/log/").
        byName.set(name, { kind: 'pattern', pattern: new RegExp(`^(?:${limit})$`, 'u') });
      } catch (error) {
        throw broken(file, `${where}.limits.${operation}.${name}: not a valid regular expression (${(error as Error).message}).`);
      }
    }
    compiled.set(operation, byName);
  }
  return compiled;
}

function readReferenced(file: string, relative: string, files: string[]): { path: string; text: string } {
  const path = resolve(dirname(file), relative);
  files.push(path);
  try {
    return { path, text: readFileSync(path, 'utf8') };
  } catch (error) {
    throw broken(file, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
}

export async function loadPrivopTrust(file: string): Promise<PrivopTrust> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw broken(file, `cannot read it as JSON (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
  }
  const files = [resolve(file)];
  const parsed = trustFileSchema.safeParse(value);
  if (!parsed.success) {
    throw broken(file, zodReason(parsed.error));
  }
  const signers = new Map<string, TrustedSigner>();
  for (const [index, entry] of parsed.data.signers.entries()) {
    const { path, text } = readReferenced(file, entry.publicKeyFile, files);
    const imported = await importSignerPublicKey(text).catch((error: Error) => { throw broken(file, `${path}: ${error.message}`); });
    if (signers.has(imported.keyId)) throw broken(file, `${path} is listed twice.`);
    signers.set(imported.keyId, { name: entry.name ?? entry.publicKeyFile, keyId: imported.keyId, key: imported.key,
      operations: new Set(entry.operations), limits: compileLimits(file, `signers.${index}`, entry.limits) });
  }
  const cas: TrustedCa[] = [];
  for (const [index, entry] of parsed.data.cas.entries()) {
    const { path, text } = readReferenced(file, entry.certificateFile, files);
    let certificates: Buffer[];
    try {
      certificates = certificatesFromPem(text);
    } catch (error) {
      throw broken(file, `${path}: ${(error as Error).message}`);
    }
    // One anchor per entry: a bundle would silently trust every certificate in it with these operations.
    if (certificates.length !== 1) throw broken(file, `${path} holds ${certificates.length} certificates; give one CA certificate per entry.`);
    const crlPath = entry.crlFile ? resolve(dirname(file), entry.crlFile) : undefined;
    if (crlPath) {
      // Read once now so a wrong path stops the agent at start; a stale or bad list refuses requests later, with the reason.
      readReferenced(file, entry.crlFile as string, files);
    }
    cas.push({ name: entry.name ?? entry.certificateFile, certificateDer: certificates[0] as Buffer, crlPath, operations: new Set(entry.operations),
      subjects: entry.subjects ? new Map(Object.entries(entry.subjects).map(([subject, operations]) => [subject, new Set(operations)])) : undefined,
      limits: compileLimits(file, `cas.${index}`, entry.limits) });
  }
  const server = parsed.data.server
    ? { operations: new Set(parsed.data.server.operations), limits: compileLimits(file, 'server', parsed.data.server.limits) } : undefined;
  return { signers, cas, server, files };
}
