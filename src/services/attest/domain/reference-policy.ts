// Reference values of a class: per component the digests accepted (several at once, for rolling
// upgrades), and optionally the expected operational sets. Parsed strictly, stored canonically.
// Must never accept a digest that is not 64 hex characters or an unbounded document.
import { z } from 'zod';
import { UserError } from '../../../shared/errors.ts';
import type { ExpectedOperational } from './operational.ts';

const MAX_COMPONENTS = 512;
const MAX_VALUES_PER_COMPONENT = 32;
const digest = z.string().regex(/^[0-9a-fA-F]{64}$/, 'a SHA-256 digest is 64 hex characters').transform((value) => value.toLowerCase());
const names = z.array(z.string().min(1).max(4096)).max(2048);

const documentSchema = z.object({
  Components: z.record(z.string().min(1).max(4096), z.array(digest).min(1).max(MAX_VALUES_PER_COMPONENT))
    .refine((value) => Object.keys(value).length <= MAX_COMPONENTS, `at most ${MAX_COMPONENTS} components`),
  Operational: z.object({ ListeningPorts: names.optional(), Modules: names.optional(), Executables: z.array(digest).max(2048).optional(),
    Users: names.optional() }).strict().optional(),
}).strict();

export interface ReferencePolicyDocument {
  Components: Record<string, string[]>;
  Operational?: ExpectedOperational;
}

export function parseReferencePolicy(value: unknown): ReferencePolicyDocument {
  const parsed = documentSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError('ValidationException', `The reference policy is not valid at ${issue.path.join('.') || '(root)'}: ${issue.message}.`);
  }
  return parsed.data;
}

/** One text per document (sorted keys and values), so the signature covers exactly what is evaluated. */
export function canonicalReferencePolicy(document: ReferencePolicyDocument): string {
  const components = Object.fromEntries(Object.keys(document.Components).sort()
    .map((name) => [name, [...new Set(document.Components[name])].sort()]));
  const operational = document.Operational === undefined ? undefined : Object.fromEntries(Object.entries(document.Operational)
    .filter(([, values]) => values !== undefined).sort(([a], [b]) => a.localeCompare(b))
    .map(([name, values]) => [name, [...new Set(values as string[])].sort()]));
  return JSON.stringify(operational === undefined ? { Components: components } : { Components: components, Operational: operational });
}

/** Adopts a known-good host's current measurements (and, if asked, its operational sets) as reference values. */
export function referenceFromMeasurements(current: Record<string, string>, operational: ExpectedOperational | undefined): ReferencePolicyDocument {
  const components = Object.fromEntries(Object.entries(current).map(([name, value]) => [name, [value]]));
  return operational === undefined ? { Components: components } : { Components: components, Operational: operational };
}
