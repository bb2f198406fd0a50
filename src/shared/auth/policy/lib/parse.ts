// Validation of AWS IAM JSON policy documents (key policies and identity policies) into a ParsedPolicy.
// Must never accept what it does not understand: unknown fields, operators and value types are refused with a reason.
import { PolicyDocumentError } from '../errors.ts';
import { normaliseConditionValue, parseOperatorName } from './conditions.ts';
import { findDuplicateKey } from './duplicate-keys.ts';
import { principalEntryProblem } from './principals.ts';
import type { ParsedCondition, ParsedPolicy, ParsedPrincipal, ParsedStatement, PolicyKind, PolicyVersion } from './types.ts';
import { parseTemplate } from './variables.ts';

/** AWS KMS's limit on a key policy document. */
export const MAX_POLICY_BYTES = 32 * 1024;
/** A 32 KiB document holds at most a few hundred statements; more would only be a way to slow evaluation down. */
export const MAX_STATEMENTS = 256;

export interface ParsePolicyOptions {
  /** `resource`: a key policy (Principal required); `identity`: attached to a principal (no Principal). */
  readonly kind: PolicyKind;
  /**
   * The Resource/NotResource element: `required` (the default; AWS KMS key policies and identity policies need it),
   * or `forbidden` for policies whose resource is implicit, such as a role's trust policy (AWS refuses a Resource
   * there). A statement without one applies to any resource.
   */
  readonly resource?: 'required' | 'forbidden';
}

const TOP_LEVEL_FIELDS = ['Version', 'Id', 'Statement'] as const;
const STATEMENT_FIELDS = ['Sid', 'Effect', 'Principal', 'NotPrincipal', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition'] as const;
const ACTION = /^[A-Za-z0-9-]+:[A-Za-z0-9_*?-]+$/;
const CONDITION_KEY = /^[A-Za-z0-9-]+:[^\u0000-\u001f\u007f]+$/;
const CONTROL = /[\u0000-\u001f\u007f]/;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const fail = (reason: string): never => {
  throw new PolicyDocumentError(reason);
};

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const quote = (value: unknown): string => JSON.stringify(value);

function unknownField(name: string, known: readonly string[]): string {
  const near = known.find((field) => field.toLowerCase() === name.toLowerCase());
  return `unknown field ${quote(name)}${near ? ` (did you mean ${near}?)` : ''}`;
}

/** People count statements from 1; paths from the duplicate finder count from 0. */
function humanPath(path: string): string {
  return path.replace(/^Statement\[(\d+)\]/, (_, n: string) => `Statement ${Number(n) + 1}`);
}

/**
 * Parses and validates a policy document. Throws PolicyDocumentError (MalformedPolicyDocumentException) whose
 * message is the precise reason, naming the statement: "Statement 2 (Sid AllowUse): unknown condition operator …".
 */
export function parsePolicy(document: string, options: ParsePolicyOptions): ParsedPolicy {
  if (typeof document !== 'string') fail('the policy document must be a string');
  const bytes = Buffer.byteLength(document, 'utf8');
  if (bytes > MAX_POLICY_BYTES) fail(`the policy document is ${bytes} bytes; the limit is ${MAX_POLICY_BYTES}`);
  let root: Json;
  try {
    root = JSON.parse(document) as Json;
  } catch (error) {
    return fail(`the policy document is not valid JSON: ${(error as Error).message}`);
  }
  const duplicate = findDuplicateKey(document);
  if (duplicate) fail(`duplicate field ${quote(duplicate.key)} ${duplicate.path ? `in ${humanPath(duplicate.path)}` : 'at the top level'}`);
  if (!isObject(root)) return fail('the policy document must be a JSON object');

  for (const name of Object.keys(root)) {
    if (!(TOP_LEVEL_FIELDS as readonly string[]).includes(name)) fail(`${unknownField(name, TOP_LEVEL_FIELDS)} at the top level`);
  }
  let version: PolicyVersion | undefined;
  if (root.Version !== undefined) {
    if (root.Version !== '2012-10-17' && root.Version !== '2008-10-17') fail(`unsupported Version ${quote(root.Version)}; use "2012-10-17"`);
    version = root.Version as PolicyVersion;
  }
  let id: string | undefined;
  if (root.Id !== undefined) {
    if (typeof root.Id !== 'string' || root.Id.length === 0) fail('Id must be a non-empty string');
    if (CONTROL.test(root.Id as string)) fail('Id must not contain control characters');
    id = root.Id as string;
  }
  const rawStatements = root.Statement;
  if (rawStatements === undefined) fail('the policy has no Statement');
  const list = Array.isArray(rawStatements) ? rawStatements : [rawStatements!];
  if (list.length === 0) fail('Statement must contain at least one statement');
  if (list.length > MAX_STATEMENTS) fail(`the policy has ${list.length} statements; the limit is ${MAX_STATEMENTS}`);

  const variables = version === '2012-10-17';
  const statements: ParsedStatement[] = [];
  const sids = new Map<string, number>();
  list.forEach((raw, index) => {
    const statement = parseStatement(raw, index, options.kind, options.resource ?? 'required', variables);
    if (statement.sid !== undefined) {
      const first = sids.get(statement.sid);
      if (first !== undefined) fail(`${label(index, statement.sid)}: duplicate Sid (statement ${first + 1} has it too)`);
      sids.set(statement.sid, index);
    }
    statements.push(statement);
  });
  return { kind: options.kind, version, id, statements };
}

function label(index: number, sid: unknown): string {
  const printable = typeof sid === 'string' && sid.length > 0 && !CONTROL.test(sid);
  return `Statement ${index + 1}${printable ? ` (Sid ${sid})` : ''}`;
}

function parseStatement(raw: Json, index: number, kind: PolicyKind, resourceRule: 'required' | 'forbidden', variables: boolean): ParsedStatement {
  if (!isObject(raw)) return fail(`Statement ${index + 1}: must be an object`);
  const where = label(index, raw.Sid);
  const bad = (reason: string): never => fail(`${where}: ${reason}`);

  for (const name of Object.keys(raw)) {
    if (!(STATEMENT_FIELDS as readonly string[]).includes(name)) bad(unknownField(name, STATEMENT_FIELDS));
  }
  let sid: string | undefined;
  if (raw.Sid !== undefined) {
    if (typeof raw.Sid !== 'string' || raw.Sid.length === 0) bad('Sid must be a non-empty string');
    // Sids end up in decisions, audit records and terminals; a newline in one could forge a line of output.
    if (CONTROL.test(raw.Sid as string)) bad('Sid must not contain control characters');
    sid = raw.Sid as string;
  }
  if (raw.Effect === undefined) bad('Effect is required');
  if (raw.Effect !== 'Allow' && raw.Effect !== 'Deny') bad(`Effect must be "Allow" or "Deny", not ${quote(raw.Effect)}`);
  const effect = raw.Effect as 'Allow' | 'Deny';

  let principal: ParsedPrincipal | undefined;
  let notPrincipal: ParsedPrincipal | undefined;
  if (kind === 'identity') {
    if (raw.Principal !== undefined || raw.NotPrincipal !== undefined) {
      bad(`${raw.Principal !== undefined ? 'Principal' : 'NotPrincipal'} is not allowed in an identity policy (it applies to the principal it is attached to)`);
    }
  } else {
    if (raw.Principal !== undefined && raw.NotPrincipal !== undefined) bad('use either Principal or NotPrincipal, not both');
    if (raw.Principal === undefined && raw.NotPrincipal === undefined) bad('Principal is required in a key policy');
    if (raw.Principal !== undefined) principal = parsePrincipal(raw.Principal, 'Principal', bad);
    else {
      // AWS supports NotPrincipal only to deny everyone but a list; with Allow it grants the whole world.
      if (effect !== 'Deny') bad('NotPrincipal can only be used with "Effect": "Deny"');
      notPrincipal = parsePrincipal(raw.NotPrincipal!, 'NotPrincipal', bad);
    }
  }

  const [actionField, actions] = exactlyOne(raw, 'Action', 'NotAction', bad);
  for (const action of actions) {
    if (action !== '*' && !ACTION.test(action)) bad(`${actionField} entry ${quote(action)} is not "*" or service:action (e.g. "kms:Decrypt", "kms:Get*")`);
  }
  if (resourceRule === 'forbidden' && (raw.Resource !== undefined || raw.NotResource !== undefined)) {
    bad(`${raw.Resource !== undefined ? 'Resource' : 'NotResource'} is not allowed in this kind of policy (its resource is the one it is attached to)`);
  }
  const [resourceField, resources] = resourceRule === 'forbidden' ? ['Resource', ['*']] as const : exactlyOne(raw, 'Resource', 'NotResource', bad);
  for (const resource of resources) {
    if (resource !== '*' && !resource.startsWith('arn:')) bad(`${resourceField} entry ${quote(resource)} is not "*" or an ARN`);
    if (variables && resource.includes('${')) {
      const template = parseTemplate(resource);
      if (typeof template === 'string') bad(`${resourceField}: ${template}`);
    }
  }
  const conditions = raw.Condition === undefined ? [] : parseConditions(raw.Condition, variables, bad);

  return {
    index,
    sid,
    effect,
    principal,
    notPrincipal,
    ...(actionField === 'Action' ? { action: actions } : { notAction: actions }),
    ...(resourceField === 'Resource' ? { resource: resources } : { notResource: resources }),
    conditions,
  };
}

function exactlyOne<F extends string>(raw: JsonObject, field: F, negated: `Not${F}`, bad: (reason: string) => never): [F | `Not${F}`, string[]] {
  const has = raw[field] !== undefined;
  const hasNot = raw[negated] !== undefined;
  if (has && hasNot) bad(`use either ${field} or ${negated}, not both`);
  if (!has && !hasNot) bad(`${field} is required`);
  const name = has ? field : negated;
  return [name, stringList(raw[name]!, name, bad)];
}

function stringList(value: Json, field: string, bad: (reason: string) => never): string[] {
  const list = typeof value === 'string' ? [value] : Array.isArray(value) ? value : undefined;
  if (list === undefined || list.length === 0) return bad(`${field} must be a string or a non-empty array of strings`);
  for (const entry of list) {
    if (typeof entry !== 'string' || entry.length === 0) bad(`${field} must contain only non-empty strings, not ${quote(entry)}`);
  }
  return list as string[];
}

function parsePrincipal(value: Json, field: string, bad: (reason: string) => never): ParsedPrincipal {
  if (value === '*') return { any: true, aws: [], service: [] };
  if (!isObject(value)) return bad(`${field} must be "*" or an object such as {"AWS": "arn:aws:iam::111122223333:root"}`);
  const types = Object.keys(value);
  if (types.length === 0) bad(`${field} must name at least one principal`);
  let aws: string[] = [];
  let service: string[] = [];
  for (const type of types) {
    if (type === 'AWS') {
      aws = stringList(value.AWS!, `${field} AWS`, bad);
      for (const entry of aws) {
        const problem = principalEntryProblem(entry);
        if (problem) bad(`${field}: ${problem}`);
      }
    } else if (type === 'Service') {
      service = stringList(value.Service!, `${field} Service`, bad);
    } else {
      bad(`${field} type ${quote(type)} is not supported (use AWS or Service)`);
    }
  }
  return { any: aws.includes('*'), aws, service };
}

function parseConditions(value: Json, variables: boolean, bad: (reason: string) => never): ParsedCondition[] {
  if (!isObject(value)) return bad('Condition must be an object mapping operators to {"key": value} objects');
  const conditions: ParsedCondition[] = [];
  for (const [operator, block] of Object.entries(value)) {
    const name = parseOperatorName(operator);
    if (typeof name === 'string') bad(name);
    const { base, qualifier, ifExists } = name as Exclude<typeof name, string>;
    if (!isObject(block)) bad(`condition operator ${operator} must map condition keys to values`);
    const keys = Object.keys(block as JsonObject);
    if (keys.length === 0) bad(`condition operator ${operator} has no condition keys`);
    for (const key of keys) {
      if (!CONDITION_KEY.test(key)) bad(`condition key ${quote(key)} under ${operator} is not of the form prefix:name`);
      const raw = (block as JsonObject)[key]!;
      const list = Array.isArray(raw) ? raw : [raw];
      if (list.length === 0) bad(`condition ${operator} on ${key} has an empty list of values`);
      const values: string[] = [];
      for (const entry of list) {
        if (typeof entry !== 'string' && typeof entry !== 'number' && typeof entry !== 'boolean') {
          bad(`condition ${operator} on ${key}: values must be strings, numbers or booleans, not ${entry === null ? 'null' : Array.isArray(entry) ? 'a nested array' : 'an object'}`);
        }
        const normalised = normaliseConditionValue(base, entry as string | number | boolean, variables);
        if (typeof normalised !== 'string') return bad(`condition ${operator} on ${key}: ${normalised.problem}`);
        values.push(normalised);
      }
      conditions.push({ operator, base, qualifier, ifExists, key, values });
    }
  }
  return conditions;
}
