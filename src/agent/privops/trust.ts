// Who may ask this host for privileged operations: the --privop-trust file (pinned signer public keys
// and the operations each may request). Must never start with a trust file it cannot fully read: it fails closed.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { importSignerPublicKey } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';

const operationName = z.string().regex(/^(\*|[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+)$/, 'an operation name or "*"');

const trustFileSchema = z.object({
  signers: z.array(z.object({
    publicKeyFile: z.string().min(1),
    operations: z.array(operationName).min(1),
    /** For the audit log; defaults to the key file's name. */
    name: z.string().min(1).max(128).optional(),
  }).strict()).default([]),
  cas: z.array(z.object({ certificateFile: z.string().min(1), operations: z.array(operationName).min(1) }).strict()).default([]),
}).strict();

export interface TrustedSigner {
  name: string;
  keyId: string;
  key: KeyObject;
  operations: ReadonlySet<string>;
}

export interface PrivopTrust {
  /** By key id (the JWK thumbprint the request's JWS names as kid). */
  signers: ReadonlyMap<string, TrustedSigner>;
}

export function mayRequest(signer: TrustedSigner, operation: string): boolean {
  return signer.operations.has('*') || signer.operations.has(operation);
}

const broken = (file: string, message: string) => new UserError('InvalidPrivopTrust', `--privop-trust ${file}: ${message}`);

export async function loadPrivopTrust(file: string): Promise<PrivopTrust> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw broken(file, `cannot read it as JSON (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
  }
  const parsed = trustFileSchema.safeParse(value);
  if (!parsed.success) {
    throw broken(file, parsed.error.issues.map((issue) => `${issue.path.join('.') || '(file)'}: ${issue.message}`).join('; '));
  }
  if (parsed.data.cas.length > 0) {
    // Refused rather than ignored: an operator who wrote "cas" expects those signers to work, or not to.
    throw broken(file, '"cas" (certificate-based signers) is not supported by this agent yet; pin signer public keys under "signers".');
  }
  const signers = new Map<string, TrustedSigner>();
  for (const entry of parsed.data.signers) {
    const path = resolve(dirname(file), entry.publicKeyFile);
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (error) {
      throw broken(file, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
    }
    const imported = await importSignerPublicKey(pem).catch((error: Error) => { throw broken(file, `${path}: ${error.message}`); });
    if (signers.has(imported.keyId)) throw broken(file, `${path} is listed twice.`);
    signers.set(imported.keyId, { name: entry.name ?? entry.publicKeyFile, keyId: imported.keyId, key: imported.key,
      operations: new Set(entry.operations) });
  }
  return { signers };
}
