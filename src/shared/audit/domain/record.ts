// What one audit record holds, the guard that keeps anything else out, and its canonical form.
// Must never let a field outside the schema (plaintext, key material, secrets, signatures) through.
// The canonical form is canonicalJson (./canonical-json.ts) of the record; encodeAuditRecord computes it directly.

/** Bumped whenever the record schema or its canonical encoding changes; stored in every record. */
export const AUDIT_RECORD_FORMAT_VERSION = 1;

export const AUDIT_DECISIONS = ['Allow', 'ExplicitDeny', 'ImplicitDeny', 'Unauthenticated'] as const;
export type AuditDecision = typeof AUDIT_DECISIONS[number];

/** Outcome of a request that succeeded; any other outcome is the error code the caller got. */
export const AUDIT_SUCCESS = 'Success';

/** Longest string kept in a field; longer caller-controlled values are cut (an audit write must not fail on them). */
export const MAX_AUDIT_FIELD_LENGTH = 2048;

/** One request, as the audit log keeps it. Never anything a caller sent or received as data. */
export interface AuditRecord {
  /** Position in the log: 1, 2, 3, ... without gaps. */
  seq: number;
  /** When the request arrived, in milliseconds since the epoch. */
  time: number;
  requestId: string;
  accountId?: string;
  principalArn?: string;
  sourceIp?: string;
  /** The service answering: 'kms', 'iam', 'sts', ... */
  service: string;
  operation: string;
  /** The resource acted on, as an ARN where there is one. */
  resource?: string;
  decision: AuditDecision;
  /** Which statement decided, e.g. 'key-policy#AllowUse' or 'identity-policy:Admins#Deny'. */
  decidingStatement?: string;
  /** 'Success' or the error code returned. */
  outcome: string;
  latencyMs: number;
  formatVersion: number;
}

/** A record before the log places it: the log assigns seq and formatVersion (and time, if absent). */
export type AuditRecordDraft = Omit<AuditRecord, 'seq' | 'formatVersion' | 'time'> & { time?: number };

const REQUIRED_TEXT = ['requestId', 'service', 'operation', 'outcome'] as const;
const OPTIONAL_TEXT = ['accountId', 'principalArn', 'sourceIp', 'resource', 'decidingStatement'] as const;
const DRAFT_FIELDS: ReadonlySet<string> = new Set([...REQUIRED_TEXT, ...OPTIONAL_TEXT, 'time', 'decision', 'latencyMs']);
const RECORD_FIELDS: ReadonlySet<string> = new Set([...DRAFT_FIELDS, 'seq', 'formatVersion']);
const DECISIONS: ReadonlySet<string> = new Set(AUDIT_DECISIONS);

/** A draft or stored record that does not fit the schema. */
export class AuditRecordError extends TypeError {
  constructor(message: string) { super(message); this.name = 'AuditRecordError'; }
}

function boundedText(value: string): string {
  if (value.length <= MAX_AUDIT_FIELD_LENGTH) return value;
  const cut = value.slice(0, MAX_AUDIT_FIELD_LENGTH);
  // Cut on a code point boundary so the text stays well-formed.
  const last = cut.charCodeAt(cut.length - 1);
  return last >= 0xd800 && last <= 0xdbff ? cut.slice(0, -1) : cut;
}

export interface SanitizedDraft {
  draft: AuditRecordDraft;
  /** Names (never values) of fields that were not in the schema and were left out. */
  droppedFields: string[];
}

/**
 * The guard every draft passes before it is stored: copies only the schema's fields, checks
 * their types, and reports the names of anything else. Throws AuditRecordError when a required
 * field is missing or of the wrong type: that is a bug in the caller, not caller input.
 */
export function sanitizeAuditDraft(input: unknown): SanitizedDraft {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new AuditRecordError('an audit draft must be an object');
  const source = input as Record<string, unknown>;
  const draft: Record<string, unknown> = {};
  for (const field of REQUIRED_TEXT) {
    const value = source[field];
    if (typeof value !== 'string' || value.length === 0) throw new AuditRecordError(`audit field ${field} must be a non-empty string`);
    draft[field] = boundedText(value);
  }
  for (const field of OPTIONAL_TEXT) {
    const value = source[field];
    if (value === undefined || value === null || value === '') continue;
    if (typeof value !== 'string') throw new AuditRecordError(`audit field ${field} must be a string`);
    draft[field] = boundedText(value);
  }
  if (typeof source.decision !== 'string' || !DECISIONS.has(source.decision)) {
    throw new AuditRecordError(`audit field decision must be one of ${AUDIT_DECISIONS.join(', ')}`);
  }
  draft.decision = source.decision;
  const latency = source.latencyMs;
  if (typeof latency !== 'number' || !Number.isFinite(latency) || latency < 0) {
    throw new AuditRecordError('audit field latencyMs must be a finite, non-negative number');
  }
  // Microsecond resolution is plenty, and keeps the canonical number short and portable.
  draft.latencyMs = Math.round(latency * 1000) / 1000;
  if (source.time !== undefined) {
    if (typeof source.time !== 'number' || !Number.isSafeInteger(source.time) || source.time < 0) {
      throw new AuditRecordError('audit field time must be milliseconds since the epoch');
    }
    draft.time = source.time;
  }
  const droppedFields = Object.keys(source).filter((field) => !DRAFT_FIELDS.has(field));
  return { draft: draft as unknown as AuditRecordDraft, droppedFields };
}

/** Places a draft at `seq`, passing it through the guard first. */
export function toAuditRecord(input: AuditRecordDraft, seq: number, now: number): AuditRecord {
  return placeAuditDraft(sanitizeAuditDraft(input).draft, seq, now);
}

/**
 * Places a draft that has already passed sanitizeAuditDraft (AuditLog admits every draft through it)
 * at `seq`. Copies the schema's fields by name, so nothing else is stored even so.
 */
export function placeAuditDraft(draft: AuditRecordDraft, seq: number, now: number): AuditRecord {
  // One literal with every field, always in this order: one object shape, which keeps this path cheap.
  return {
    seq, time: draft.time ?? now, requestId: draft.requestId, accountId: draft.accountId, principalArn: draft.principalArn,
    sourceIp: draft.sourceIp, service: draft.service, operation: draft.operation, resource: draft.resource,
    decision: draft.decision, decidingStatement: draft.decidingStatement, outcome: draft.outcome, latencyMs: draft.latencyMs,
    formatVersion: AUDIT_RECORD_FORMAT_VERSION,
  };
}

// The record's members in canonical (sorted) order, with their encoded names: the record is flat and
// its fields are fixed, so canonicalJson's general sort is done once here. Tests hold the two equal.
const CANONICAL_MEMBERS = [...RECORD_FIELDS].sort().map((name) => ({ name: name as keyof AuditRecord, prefix: `${JSON.stringify(name)}:` }));

/** The exact text that is hashed into the chain and stored: canonicalJson(record), computed faster. */
export function encodeAuditRecord(record: AuditRecord): string {
  let text = '{';
  for (const { name, prefix } of CANONICAL_MEMBERS) {
    const value = record[name];
    if (value === undefined) continue;
    if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError(`audit field ${name} is not a finite number`);
    text += `${text.length > 1 ? ',' : ''}${prefix}${JSON.stringify(value)}`;
  }
  return `${text}}`;
}

/**
 * Reads a stored record strictly: JSON, only schema fields with the right types, a format
 * version this code knows, and the canonical encoding (so one record has exactly one text).
 */
export function decodeAuditRecord(text: string): AuditRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AuditRecordError('not valid JSON');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new AuditRecordError('not a JSON object');
  const fields = parsed as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((field) => !RECORD_FIELDS.has(field));
  if (unknown.length > 0) throw new AuditRecordError(`fields outside the schema: ${unknown.join(', ')}`);
  if (fields.formatVersion !== AUDIT_RECORD_FORMAT_VERSION) throw new AuditRecordError(`unknown format version ${String(fields.formatVersion)}`);
  if (typeof fields.seq !== 'number' || !Number.isSafeInteger(fields.seq) || fields.seq < 1) throw new AuditRecordError('seq must be a positive integer');
  if (typeof fields.time !== 'number') throw new AuditRecordError('time is missing');
  // Fields outside the schema were refused above; the guard drops only seq and formatVersion, set here.
  const record = placeAuditDraft(sanitizeAuditDraft(fields).draft, fields.seq, 0);
  if (encodeAuditRecord(record) !== text) throw new AuditRecordError('not in canonical form');
  return record;
}

/** Reads a stored record for display, without insisting on the canonical form (verification does that). */
export function readAuditRecord(text: string): AuditRecord {
  return JSON.parse(text) as AuditRecord;
}
