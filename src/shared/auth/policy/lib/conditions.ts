// Condition operators: their catalogue, validation of policy values, and compiled tests over a request.
// Must never treat a missing key, an empty multi-valued key or an unparseable value other than as AWS documents.
import { AmbiguousValues, type KeyValue, type KeyView } from './context.ts';
import { cidrContains, parseCidr, parseIp } from './ip.ts';
import type { BaseOperator, Effect, ParsedCondition, SetQualifier } from './types.ts';
import { arnGlobFromGlob, arnGlobMatch, globFromPattern, globMatch, splitArn, type ArnGlob, type Glob } from './wildcard.ts';
import { hasVariables, parseTemplate, resolveGlob, resolveText, type Template } from './variables.ts';

type Family = 'string' | 'stringIgnoreCase' | 'stringLike' | 'numeric' | 'date' | 'bool' | 'binary' | 'ip' | 'arn' | 'null';
type Comparison = 'eq' | 'lt' | 'lte' | 'gt' | 'gte';

interface OperatorSpec {
  readonly family: Family;
  /** Negated operators (StringNotEquals…) are true when the key is missing and NOR their values. */
  readonly negated: boolean;
  readonly comparison: Comparison;
}

const spec = (family: Family, negated = false, comparison: Comparison = 'eq'): OperatorSpec => ({ family, negated, comparison });

const OPERATORS: Readonly<Record<BaseOperator, OperatorSpec>> = {
  StringEquals: spec('string'),
  StringNotEquals: spec('string', true),
  StringEqualsIgnoreCase: spec('stringIgnoreCase'),
  StringNotEqualsIgnoreCase: spec('stringIgnoreCase', true),
  StringLike: spec('stringLike'),
  StringNotLike: spec('stringLike', true),
  NumericEquals: spec('numeric'),
  NumericNotEquals: spec('numeric', true),
  NumericLessThan: spec('numeric', false, 'lt'),
  NumericLessThanEquals: spec('numeric', false, 'lte'),
  NumericGreaterThan: spec('numeric', false, 'gt'),
  NumericGreaterThanEquals: spec('numeric', false, 'gte'),
  DateEquals: spec('date'),
  DateNotEquals: spec('date', true),
  DateLessThan: spec('date', false, 'lt'),
  DateLessThanEquals: spec('date', false, 'lte'),
  DateGreaterThan: spec('date', false, 'gt'),
  DateGreaterThanEquals: spec('date', false, 'gte'),
  Bool: spec('bool'),
  BinaryEquals: spec('binary'),
  IpAddress: spec('ip'),
  NotIpAddress: spec('ip', true),
  ArnEquals: spec('arn'),
  ArnLike: spec('arn'),
  ArnNotEquals: spec('arn', true),
  ArnNotLike: spec('arn', true),
  Null: spec('null'),
};

export const CONDITION_OPERATORS: readonly BaseOperator[] = Object.keys(OPERATORS) as BaseOperator[];

export interface OperatorName {
  readonly base: BaseOperator;
  readonly qualifier?: SetQualifier;
  readonly ifExists: boolean;
}

/** Reads `[ForAllValues:|ForAnyValue:]Base[IfExists]`; returns a reason when the name is not one we know. */
export function parseOperatorName(name: string): OperatorName | string {
  let rest = name;
  let qualifier: SetQualifier | undefined;
  const colon = rest.indexOf(':');
  if (colon >= 0) {
    const prefix = rest.slice(0, colon);
    if (prefix !== 'ForAllValues' && prefix !== 'ForAnyValue') return `unknown condition set qualifier ${prefix}`;
    qualifier = prefix;
    rest = rest.slice(colon + 1);
  }
  let ifExists = false;
  if (rest.endsWith('IfExists') && rest !== 'IfExists') {
    ifExists = true;
    rest = rest.slice(0, -'IfExists'.length);
  }
  if (!Object.hasOwn(OPERATORS, rest)) return `unknown condition operator ${name}`;
  const base = rest as BaseOperator;
  // Null already asks "does the key exist"; neither qualifiers nor IfExists change or extend that question.
  if (base === 'Null' && ifExists) return 'the Null operator cannot take the IfExists suffix';
  if (base === 'Null' && qualifier !== undefined) return `the Null operator cannot take the ${qualifier} qualifier`;
  return { base, qualifier, ifExists };
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const EPOCH = /^-?\d+(?:\.\d+)?$/;
const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|z|[+-]\d{2}(?::?\d{2})?)?)?$/;
/** Padded standard base64, as AWS writes binary values (also what the HTTP layer accepts as a blob). */
export const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function parseNumber(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (!NUMBER.test(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

// One request carries one aws:CurrentTime, read by every date condition of every policy: remember the last one.
let lastDateText: string | undefined;
let lastDateValue: number | undefined;

/** Milliseconds since the epoch from ISO 8601 (a missing zone means UTC) or from epoch seconds. */
export function parseDate(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value * 1000 : undefined;
  if (value === lastDateText) return lastDateValue;
  const parsed = parseDateText(value);
  lastDateText = value;
  lastDateValue = parsed;
  return parsed;
}

function parseDateText(value: string): number | undefined {
  if (EPOCH.test(value)) return Number(value) * 1000;
  const m = ISO_DATE.exec(value);
  if (m === null) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const [hour, minute, second] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  const millis = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== 'Z' && zone !== 'z') {
    const digits = zone.slice(1).replace(':', '');
    const zh = Number(digits.slice(0, 2));
    const zm = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (zh > 23 || zm > 59) return undefined;
    offsetMinutes = (zone[0] === '-' ? -1 : 1) * (zh * 60 + zm);
  }
  // Date.UTC reads years 0–99 as 1900–1999; setting the full year afterwards keeps "0050" as year 50.
  const utc = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  utc.setUTCFullYear(year);
  return utc.getTime() + millis - offsetMinutes * 60_000;
}

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : DAYS[month - 1]!;
}

function parseBool(value: string | number | boolean): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

function isArnPattern(value: string): boolean {
  return value === '*' || (value.startsWith('arn:') && splitArn(value) !== undefined);
}

/**
 * Checks one policy value for an operator and returns it in canonical string form, or a reason it is invalid.
 * `variables` says whether `${…}` is a policy variable here (2012-10-17 String and ARN operators).
 */
export function normaliseConditionValue(base: BaseOperator, raw: string | number | boolean, variables: boolean): string | { problem: string } {
  const family = OPERATORS[base].family;
  const text = typeof raw === 'string' ? raw : String(raw);
  const usesVariables = variables && (family === 'string' || family === 'stringIgnoreCase' || family === 'stringLike' || family === 'arn');
  if (usesVariables && text.includes('${')) {
    const template = parseTemplate(text);
    if (typeof template === 'string') return { problem: template };
  }
  switch (family) {
    case 'string':
    case 'stringIgnoreCase':
    case 'stringLike':
      return text;
    case 'numeric':
      return parseNumber(raw as string | number) === undefined || typeof raw === 'boolean'
        ? { problem: `${JSON.stringify(raw)} is not a number` } : text;
    case 'date':
      return typeof raw === 'boolean' || parseDate(raw) === undefined
        ? { problem: `${JSON.stringify(raw)} is not an ISO 8601 date-time or epoch seconds` } : text;
    case 'bool':
    case 'null': {
      const b = parseBool(raw);
      return b === undefined ? { problem: `${JSON.stringify(raw)} is not true or false` } : String(b);
    }
    case 'binary':
      return typeof raw === 'string' && raw.length > 0 && BASE64_PATTERN.test(raw) ? raw : { problem: `${JSON.stringify(raw)} is not base64` };
    case 'ip':
      return typeof raw === 'string' && parseCidr(raw) !== undefined
        ? raw : { problem: `${JSON.stringify(raw)} is not an IPv4 or IPv6 address or CIDR block` };
    case 'arn':
      if (typeof raw !== 'string') return { problem: `${JSON.stringify(raw)} is not an ARN` };
      // A value built from variables is checked once they are substituted; one that is not an ARN then matches nothing.
      if (usesVariables && text.includes('${')) return text;
      return isArnPattern(text) ? text : { problem: `${JSON.stringify(raw)} is not an ARN (arn:partition:service:region:account:resource)` };
  }
}

/** A compiled condition: one key under one operator. */
export interface CompiledCondition {
  readonly operator: string;
  readonly key: string;
  readonly test: (keys: KeyView) => boolean;
}

/** Whether one request value matches at least one policy value, in the operator's positive sense. */
type ValueMatcher = (value: string | number | boolean, keys: KeyView) => boolean;

const asText = (value: string | number | boolean): string => (typeof value === 'string' ? value : String(value));

function compareWith(comparison: Comparison): (a: number, b: number) => boolean {
  switch (comparison) {
    case 'eq': return (a, b) => a === b;
    case 'lt': return (a, b) => a < b;
    case 'lte': return (a, b) => a <= b;
    case 'gt': return (a, b) => a > b;
    case 'gte': return (a, b) => a >= b;
  }
}

/**
 * A policy value as a template, when `variables` allows them and it has any; undefined for a plain value
 * (a malformed reference, which parsePolicy refuses anyway, leaves the value plain).
 */
export function variableTemplate(value: string, variables: boolean): Template | undefined {
  if (!variables || !value.includes('${')) return undefined;
  const template = parseTemplate(value);
  return typeof template !== 'string' && hasVariables(template) ? template : undefined;
}

function stringMatcher(values: readonly string[], variables: boolean, foldCase: boolean): ValueMatcher {
  const fold = (s: string) => (foldCase ? s.toLowerCase() : s);
  const templates: Template[] = [];
  const plain = new Set<string>();
  for (const value of values) {
    const template = variableTemplate(value, variables);
    if (template) templates.push(template);
    else plain.add(fold(value));
  }
  if (templates.length === 0) return (value) => plain.has(fold(asText(value)));
  return (value, keys) => {
    const text = fold(asText(value));
    if (plain.has(text)) return true;
    for (const template of templates) {
      const resolved = resolveText(template, keys);
      if (resolved !== undefined && fold(resolved) === text) return true;
    }
    return false;
  };
}

function likeMatcher(values: readonly string[], variables: boolean): ValueMatcher {
  const globs: Glob[] = [];
  const templates: Template[] = [];
  for (const value of values) {
    const template = variableTemplate(value, variables);
    if (template) templates.push(template);
    else globs.push(globFromPattern(value));
  }
  return (value, keys) => {
    const text = asText(value);
    for (const glob of globs) if (globMatch(glob, text)) return true;
    for (const template of templates) {
      const glob = resolveGlob(template, keys);
      if (glob !== undefined && globMatch(glob, text)) return true;
    }
    return false;
  };
}

function arnMatcher(values: readonly string[], variables: boolean): ValueMatcher {
  const patterns: ArnGlob[] = [];
  const templates: Template[] = [];
  for (const value of values) {
    const template = variableTemplate(value, variables);
    if (template) templates.push(template);
    else patterns.push(arnGlobFromGlob(globFromPattern(value)));
  }
  return (value, keys) => {
    const text = asText(value);
    const parts = splitArn(text);
    for (const pattern of patterns) if (arnGlobMatch(pattern, text, parts)) return true;
    for (const template of templates) {
      const glob = resolveGlob(template, keys);
      if (glob === undefined || !isArnPattern(glob.text)) continue;
      if (arnGlobMatch(arnGlobFromGlob(glob), text, parts)) return true;
    }
    return false;
  };
}

function numericMatcher(values: readonly string[], parse: (v: string | number) => number | undefined, comparison: Comparison): ValueMatcher {
  const policy = values.map((v) => parse(v)!);
  const compare = compareWith(comparison);
  return (value) => {
    if (typeof value === 'boolean') return false;
    const n = parse(value);
    if (n === undefined) return false;
    for (const p of policy) if (compare(n, p)) return true;
    return false;
  };
}

function ipMatcher(values: readonly string[]): ValueMatcher {
  const blocks = values.map((value) => parseCidr(value)!);
  return (value) => {
    if (typeof value !== 'string') return false;
    const ip = parseIp(value);
    if (ip === undefined) return false;
    for (const block of blocks) if (cidrContains(block, ip)) return true;
    return false;
  };
}

function binaryMatcher(values: readonly string[]): ValueMatcher {
  const policy = values.map((v) => Buffer.from(v, 'base64'));
  return (value) => {
    if (typeof value !== 'string' || !BASE64_PATTERN.test(value)) return false;
    const bytes = Buffer.from(value, 'base64');
    return policy.some((p) => p.equals(bytes));
  };
}

function boolMatcher(values: readonly string[]): ValueMatcher {
  const wanted = new Set(values.map((v) => v === 'true'));
  return (value) => {
    const b = parseBool(value);
    return b !== undefined && wanted.has(b);
  };
}

function valueMatcher(condition: ParsedCondition, family: Family, comparison: Comparison, variables: boolean): ValueMatcher {
  switch (family) {
    case 'string': return stringMatcher(condition.values, variables, false);
    case 'stringIgnoreCase': return stringMatcher(condition.values, variables, true);
    case 'stringLike': return likeMatcher(condition.values, variables);
    case 'arn': return arnMatcher(condition.values, variables);
    case 'numeric': return numericMatcher(condition.values, parseNumber, comparison);
    case 'date': return numericMatcher(condition.values, parseDate, comparison);
    case 'bool': return boolMatcher(condition.values);
    case 'binary': return binaryMatcher(condition.values);
    case 'ip': return ipMatcher(condition.values);
    case 'null': throw new Error('unreachable: Null has no value matcher');
  }
}

/**
 * Compiles one condition. The truth table, from the AWS IAM reference:
 * - key missing (or an empty multi-valued key): …IfExists → true; ForAllValues → true; ForAnyValue → false;
 *   otherwise positive operators → false and negated operators → true;
 * - one value in the request: positive operators → it matches one of the policy values (OR);
 *   negated operators → it matches none of them (NOR);
 * - several values in the request: ForAllValues → every request value passes the single-value test;
 *   ForAnyValue → at least one does; unqualified → as ForAnyValue for positive operators and its negation
 *   for negated ones (no request value matches any policy value);
 * - Null: `true` holds when the key is missing, `false` when it is present.
 * A key given under spellings that differ only in case (AmbiguousValues) is read to the caller's disadvantage:
 * in a Deny statement the condition holds if it holds for any of the values, in an Allow only if for all.
 */
export function compileCondition(condition: ParsedCondition, variables: boolean, effect: Effect): CompiledCondition {
  const { family, negated, comparison } = OPERATORS[condition.base];
  const keyLower = condition.key.toLowerCase();
  const { operator, key, qualifier, ifExists } = condition;
  if (family === 'null') {
    const wantMissing = condition.values.includes('true');
    const wantPresent = condition.values.includes('false');
    return { operator, key, test: (keys) => (keys.has(keyLower) ? wantPresent : wantMissing) };
  }
  const matches = valueMatcher(condition, family, comparison, variables);
  const whenMissing = ifExists || qualifier === 'ForAllValues' || (qualifier === undefined && negated);
  const test = (keys: KeyView): boolean => {
    const value: KeyValue | undefined = keys.get(keyLower);
    if (value === undefined) return whenMissing;
    if (value instanceof AmbiguousValues && qualifier === undefined) {
      for (const v of value.values) if ((matches(v, keys) !== negated) === (effect === 'Deny')) return effect === 'Deny';
      return effect !== 'Deny';
    }
    if (!Array.isArray(value) && !(value instanceof AmbiguousValues)) return matches(value as string | number | boolean, keys) !== negated;
    const values = value instanceof AmbiguousValues ? value.values : value as readonly string[];
    if (qualifier === 'ForAllValues') {
      for (const v of values) if (matches(v, keys) === negated) return false;
      return true;
    }
    if (qualifier === 'ForAnyValue') {
      for (const v of values) if (matches(v, keys) !== negated) return true;
      return false;
    }
    for (const v of values) if (matches(v, keys)) return !negated;
    return negated;
  };
  return { operator, key, test };
}
