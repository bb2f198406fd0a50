// Compiles a parsed policy once into matchers that evaluate without re-reading the document.
// Must never defer validation to evaluation: anything that could fail to parse was refused by parsePolicy.
import { compileCondition, variableTemplate, type CompiledCondition } from './conditions.ts';
import type { KeyView } from './context.ts';
import { parsePolicy, type ParsePolicyOptions } from './parse.ts';
import { compilePrincipal, type PrincipalMatcher } from './principals.ts';
import type { Effect, ParsedPolicy, ParsedStatement, PolicyKind, PolicyVersion } from './types.ts';
import { resolveGlob, type Template } from './variables.ts';
import { arnGlobFromGlob, arnGlobMatch, globFromPattern, globMatch, hasWildcard, type ArnGlob, type Glob } from './wildcard.ts';

export interface CompilePolicyOptions {
  /** How decisions name this policy (e.g. "key-policy", "user/alice:inline/ops"); defaults to the document's Id. */
  readonly policyId?: string;
}

export interface CompiledPolicy {
  readonly kind: PolicyKind;
  readonly policyId?: string;
  readonly version?: PolicyVersion;
  readonly statements: readonly CompiledStatement[];
  readonly parsed: ParsedPolicy;
}

export interface ActionMatcher {
  readonly all: boolean;
  /** Lower-cased: AWS action names are case-insensitive. */
  readonly exact: ReadonlySet<string>;
  readonly globs: readonly Glob[];
}

export interface ResourceMatcher {
  readonly all: boolean;
  readonly exact: ReadonlySet<string>;
  readonly patterns: readonly ArnGlob[];
  /** Patterns with policy variables, resolved per request. */
  readonly templates: readonly Template[];
}

export interface CompiledStatement {
  readonly index: number;
  readonly sid?: string;
  readonly effect: Effect;
  readonly principal?: PrincipalMatcher;
  readonly notPrincipal?: PrincipalMatcher;
  readonly actions: ActionMatcher;
  readonly notAction: boolean;
  readonly resources: ResourceMatcher;
  readonly notResource: boolean;
  readonly conditions: readonly CompiledCondition[];
}

export function compilePolicy(parsed: ParsedPolicy, options: CompilePolicyOptions = {}): CompiledPolicy {
  const variables = parsed.version === '2012-10-17';
  return Object.freeze({
    kind: parsed.kind,
    policyId: options.policyId ?? parsed.id,
    version: parsed.version,
    statements: Object.freeze(parsed.statements.map((statement) => compileStatement(statement, variables))),
    parsed,
  });
}

/** parsePolicy then compilePolicy: what a service does with a stored or submitted document. */
export function compilePolicyDocument(document: string, options: ParsePolicyOptions & CompilePolicyOptions): CompiledPolicy {
  return compilePolicy(parsePolicy(document, options), options);
}

function compileStatement(statement: ParsedStatement, variables: boolean): CompiledStatement {
  const actions = statement.action ?? statement.notAction!;
  const resources = statement.resource ?? statement.notResource!;
  return Object.freeze({
    index: statement.index,
    sid: statement.sid,
    effect: statement.effect,
    principal: statement.principal && compilePrincipal(statement.principal),
    notPrincipal: statement.notPrincipal && compilePrincipal(statement.notPrincipal),
    actions: compileActions(actions),
    notAction: statement.action === undefined,
    resources: compileResources(resources, variables),
    notResource: statement.resource === undefined,
    conditions: statement.conditions.map((condition) => compileCondition(condition, variables, statement.effect)),
  });
}

function compileActions(actions: readonly string[]): ActionMatcher {
  const exact = new Set<string>();
  const globs: Glob[] = [];
  for (const action of actions) {
    const lower = action.toLowerCase();
    if (hasWildcard(lower)) globs.push(globFromPattern(lower));
    else exact.add(lower);
  }
  return { all: actions.includes('*'), exact, globs };
}

function compileResources(resources: readonly string[], variables: boolean): ResourceMatcher {
  const exact = new Set<string>();
  const patterns: ArnGlob[] = [];
  const templates: Template[] = [];
  for (const resource of resources) {
    const template = variableTemplate(resource, variables);
    if (template) templates.push(template);
    else if (hasWildcard(resource)) patterns.push(arnGlobFromGlob(globFromPattern(resource)));
    else exact.add(resource);
  }
  return { all: resources.includes('*'), exact, patterns, templates };
}

export function matchAction(matcher: ActionMatcher, actionLower: string): boolean {
  if (matcher.all || matcher.exact.has(actionLower)) return true;
  for (const glob of matcher.globs) if (globMatch(glob, actionLower)) return true;
  return false;
}

export function matchResource(matcher: ResourceMatcher, resource: string, resourceParts: readonly string[] | undefined, keys: KeyView): boolean {
  if (matcher.all || matcher.exact.has(resource)) return true;
  for (const pattern of matcher.patterns) if (arnGlobMatch(pattern, resource, resourceParts)) return true;
  for (const template of matcher.templates) {
    const glob = resolveGlob(template, keys);
    if (glob !== undefined && arnGlobMatch(arnGlobFromGlob(glob), resource, resourceParts)) return true;
  }
  return false;
}
