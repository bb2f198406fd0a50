// Policy variables (`${aws:username}`, `${aws:PrincipalTag/team, 'none'}`, `${*}`) in Resource and in
// String/ARN condition values of 2012-10-17 policies. Must never substitute a multi-valued key, nor let a
// substituted value act as a wildcard.
import { globFromPieces, type Glob } from './wildcard.ts';
import { AmbiguousValues, type KeyView } from './context.ts';

type Part =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'char'; readonly char: string }
  | { readonly kind: 'var'; readonly keyLower: string; readonly fallback?: string };

export interface Template {
  readonly source: string;
  readonly parts: readonly Part[];
}

/** Parses `${…}` references; returns a reason string when one is malformed. */
export function parseTemplate(source: string): Template | string {
  const parts: Part[] = [];
  let i = 0;
  let text = '';
  while (i < source.length) {
    const open = source.indexOf('${', i);
    if (open < 0) {
      text += source.slice(i);
      break;
    }
    text += source.slice(i, open);
    const close = findClose(source, open + 2);
    if (close < 0) return `unterminated policy variable in ${JSON.stringify(source)}`;
    const inner = source.slice(open + 2, close);
    if (text) parts.push({ kind: 'text', text });
    text = '';
    const part = parseReference(inner);
    if (typeof part === 'string') return `${part} in ${JSON.stringify(source)}`;
    parts.push(part);
    i = close + 1;
  }
  if (text) parts.push({ kind: 'text', text });
  return { source, parts };
}

/** The closing brace, skipping a quoted default value (which may itself contain braces). */
function findClose(source: string, from: number): number {
  let quoted = false;
  for (let i = from; i < source.length; i++) {
    const ch = source[i];
    if (ch === "'") {
      if (quoted && source[i + 1] === "'") { i++; continue; }
      quoted = !quoted;
    } else if (ch === '}' && !quoted) {
      return i;
    }
  }
  return -1;
}

function parseReference(inner: string): Part | string {
  const trimmed = inner.trim();
  if (trimmed === '*' || trimmed === '?' || trimmed === '$') return { kind: 'char', char: trimmed };
  const comma = trimmed.indexOf(',');
  const name = (comma < 0 ? trimmed : trimmed.slice(0, comma)).trim();
  if (!/^[A-Za-z0-9-]+:[^\s,'{}$]+$/.test(name)) return `invalid policy variable \${${inner}}`;
  if (comma < 0) return { kind: 'var', keyLower: name.toLowerCase() };
  const rest = trimmed.slice(comma + 1).trim();
  if (rest.length < 2 || !rest.startsWith("'") || !rest.endsWith("'")) {
    return `the default value of policy variable \${${inner}} must be in single quotes`;
  }
  const body = rest.slice(1, -1);
  if (/'(?!')/.test(body.replace(/''/g, ''))) return `unescaped quote in the default value of \${${inner}}`;
  return { kind: 'var', keyLower: name.toLowerCase(), fallback: body.replace(/''/g, "'") };
}

export function hasVariables(template: Template): boolean {
  return template.parts.some((part) => part.kind !== 'text');
}

/**
 * The variable's value, or undefined when it has none: the key is missing, or multi-valued (AWS will not
 * substitute those), and there is no default.
 */
function resolveVariable(part: { keyLower: string; fallback?: string }, keys: KeyView): string | undefined {
  const value = keys.get(part.keyLower);
  if (value === undefined || Array.isArray(value) || value instanceof AmbiguousValues) return part.fallback;
  return typeof value === 'string' ? value : String(value);
}

/** The template as plain text, or undefined when a variable has no value (the value then matches nothing). */
export function resolveText(template: Template, keys: KeyView): string | undefined {
  let out = '';
  for (const part of template.parts) {
    if (part.kind === 'text') out += part.text;
    else if (part.kind === 'char') out += part.char;
    else {
      const value = resolveVariable(part, keys);
      if (value === undefined) return undefined;
      out += value;
    }
  }
  return out;
}

/** The template as a wildcard pattern: only the policy's own text can carry wildcards. */
export function resolveGlob(template: Template, keys: KeyView): Glob | undefined {
  const pieces: { text: string; literal: boolean }[] = [];
  for (const part of template.parts) {
    if (part.kind === 'text') pieces.push({ text: part.text, literal: false });
    else if (part.kind === 'char') pieces.push({ text: part.char, literal: true });
    else {
      const value = resolveVariable(part, keys);
      if (value === undefined) return undefined;
      pieces.push({ text: value, literal: true });
    }
  }
  return globFromPieces(pieces);
}
