// Input schemas for the AWS JSON protocols, with AWS's own validation wording.
// Must never echo a sensitive value (plaintext, keys) in an error message.
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { BASE64_PATTERN } from '../auth/policy/index.ts';

/** A base64 blob field decoded to bytes, with AWS's length limits on the decoded bytes. */
export function blob(limits: { min?: number; max?: number } = {}) {
  return z.string().transform((value, context) => {
    if (!BASE64_PATTERN.test(value)) {
      context.addIssue({ code: z.ZodIssueCode.custom, params: { serialization: true }, message: 'Invalid base64' });
      return z.NEVER;
    }
    const bytes = Buffer.from(value, 'base64');
    if (limits.min !== undefined && bytes.length < limits.min) {
      context.addIssue({ code: z.ZodIssueCode.custom, params: { sensitive: true },
        message: `Member must have length greater than or equal to ${limits.min}` });
    }
    if (limits.max !== undefined && bytes.length > limits.max) {
      context.addIssue({ code: z.ZodIssueCode.custom, params: { sensitive: true },
        message: `Member must have length less than or equal to ${limits.max}` });
    }
    return bytes;
  });
}

export function text(limits: { min?: number; max?: number; pattern?: RegExp } = {}) {
  let schema = z.string();
  if (limits.min !== undefined) schema = schema.min(limits.min);
  if (limits.max !== undefined) schema = schema.max(limits.max);
  if (limits.pattern) schema = schema.regex(limits.pattern);
  return schema;
}

export function integer(limits: { min?: number; max?: number } = {}) {
  let schema = z.number().int();
  if (limits.min !== undefined) schema = schema.min(limits.min);
  if (limits.max !== undefined) schema = schema.max(limits.max);
  return schema;
}

export const keyIdField = text({ min: 1, max: 2048 });
/** AWS's limit on an encryption context: 8192 bytes of keys and values together. */
export const MAX_ENCRYPTION_CONTEXT_BYTES = 8192;

/**
 * An encryption context: a string map copied onto an object with no prototype (so a key such as
 * "__proto__" is an ordinary key), with well-formed Unicode only (an unpaired surrogate would
 * collapse to U+FFFD in UTF-8 and make two contexts bind the same bytes).
 */
export const encryptionContextField = z.unknown().transform((value, context): Record<string, string> | undefined => {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) {
    context.addIssue({ code: z.ZodIssueCode.custom, params: { serialization: true }, message: 'EncryptionContext must be a map of strings' });
    return z.NEVER;
  }
  const copy = Object.create(null) as Record<string, string>;
  let bytes = 0;
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') {
      context.addIssue({ code: z.ZodIssueCode.custom, params: { serialization: true }, message: 'EncryptionContext values must be strings' });
      return z.NEVER;
    }
    if (!key.isWellFormed() || !entry.isWellFormed()) {
      context.addIssue({ code: z.ZodIssueCode.custom, params: { sensitive: true }, message: 'Member must contain only well-formed Unicode strings' });
      return z.NEVER;
    }
    bytes += Buffer.byteLength(key) + Buffer.byteLength(entry);
    copy[key] = entry;
  }
  if (bytes > MAX_ENCRYPTION_CONTEXT_BYTES) {
    context.addIssue({ code: z.ZodIssueCode.custom, params: { sensitive: true },
      message: `Member must have a total length of keys and values less than or equal to ${MAX_ENCRYPTION_CONTEXT_BYTES} bytes` });
    return z.NEVER;
  }
  return copy;
});
export const grantTokensField = z.array(text({ min: 1, max: 8192 })).max(10).optional();
export const limitField = integer({ min: 1, max: 1000 }).optional();
export const markerField = text({ min: 1, max: 1024, pattern: /^[\u0020-\u00FF]*$/ }).optional();

/** AWS names members in lowerCamelCase in validation messages. */
function memberPath(path: Array<string | number>): string {
  return path.map((part) => (typeof part === 'string' ? part.charAt(0).toLowerCase() + part.slice(1) : String(part))).join('.');
}

function shownValue(value: unknown, sensitive: boolean): string {
  if (sensitive || value === undefined) return '';
  if (Array.isArray(value)) return ` '[${value.join(', ')}]'`;
  if (typeof value === 'object' && value !== null) return '';
  const textValue = String(value);
  return textValue.length > 256 ? '' : ` '${textValue}'`;
}

function valueAt(input: unknown, path: Array<string | number>): unknown {
  let current = input;
  for (const part of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string | number, unknown>)[part];
  }
  return current;
}

function constraintOf(issue: z.ZodIssue): string {
  switch (issue.code) {
    case z.ZodIssueCode.too_small:
      if (issue.type === 'number') return `Member must have value greater than or equal to ${issue.minimum}`;
      return `Member must have length greater than or equal to ${issue.minimum}`;
    case z.ZodIssueCode.too_big:
      if (issue.type === 'number') return `Member must have value less than or equal to ${issue.maximum}`;
      return `Member must have length less than or equal to ${issue.maximum}`;
    case z.ZodIssueCode.invalid_enum_value:
      return `Member must satisfy enum value set: [${issue.options.join(', ')}]`;
    case z.ZodIssueCode.invalid_string:
      return 'Member must satisfy regular expression pattern';
    case z.ZodIssueCode.invalid_type:
      return 'Member must not be null';
    default:
      return issue.message;
  }
}

/**
 * Parses a request body against a schema. Wrong JSON types are SerializationException (as AWS
 * answers them); constraint violations are one ValidationException listing every violation.
 */
export function parseInput<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, body: unknown): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const serialization = issues.find((issue) =>
    (issue.code === z.ZodIssueCode.invalid_type && issue.received !== 'undefined' && issue.received !== 'null')
    || (issue.code === z.ZodIssueCode.custom && issue.params?.serialization));
  if (serialization) {
    const path = memberPath(serialization.path);
    throw new UserError('SerializationException', serialization.code === z.ZodIssueCode.custom
      ? `Could not decode '${path}': ${serialization.message}.` : `Unexpected value type for '${path}': expected ${
        serialization.code === z.ZodIssueCode.invalid_type ? serialization.expected : 'another type'}.`);
  }
  const messages = issues.map((issue) => {
    const sensitive = issue.code === z.ZodIssueCode.custom && Boolean(issue.params?.sensitive);
    return `Value${shownValue(valueAt(body, issue.path), sensitive)} at '${memberPath(issue.path)}' failed to satisfy constraint: ${constraintOf(issue)}`;
  });
  const plural = messages.length === 1 ? 'error' : 'errors';
  throw new UserError('ValidationException', `${messages.length} validation ${plural} detected: ${messages.join('; ')}`);
}
