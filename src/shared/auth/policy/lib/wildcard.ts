// Wildcard (`*`, `?`) matching for actions, resources, StringLike and ARN operators.
// Must never use regular expressions: patterns come from policy authors and values from callers, and a
// backtracking regex over both is a denial-of-service; this matcher is O(pattern × text) at worst.

export const LITERAL = 0;
export const STAR = 1;
export const ONE = 2;

/**
 * A pattern whose wildcard positions are marked separately from its text, so a policy variable's value or an
 * escaped `${*}` can put a literal `*` into a pattern without it acting as a wildcard.
 */
export interface Glob {
  readonly text: string;
  /** Per UTF-16 unit of text: LITERAL, STAR or ONE. Absent when the pattern has no wildcard at all. */
  readonly marks?: Uint8Array;
  /** The whole pattern is `*`. */
  readonly matchesAll: boolean;
}

/** Treats every `*` and `?` in text as a wildcard. */
export function globFromPattern(text: string): Glob {
  let marks: Uint8Array | undefined;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 42 /* * */ || code === 63 /* ? */) {
      marks ??= new Uint8Array(text.length);
      marks[i] = code === 42 ? STAR : ONE;
    }
  }
  return { text, marks, matchesAll: text === '*' };
}

/** Builds a glob from pieces, some of which are literal whatever characters they contain. */
export function globFromPieces(pieces: readonly { text: string; literal: boolean }[]): Glob {
  let text = '';
  const marks: number[] = [];
  let wild = false;
  for (const piece of pieces) {
    for (let i = 0; i < piece.text.length; i++) {
      const code = piece.text.charCodeAt(i);
      const mark = piece.literal ? LITERAL : code === 42 ? STAR : code === 63 ? ONE : LITERAL;
      if (mark !== LITERAL) wild = true;
      marks.push(mark);
    }
    text += piece.text;
  }
  const allStar = wild && text === '*';
  return { text, marks: wild ? Uint8Array.from(marks) : undefined, matchesAll: allStar };
}

export function globMatch(glob: Glob, value: string): boolean {
  if (glob.matchesAll) return true;
  const marks = glob.marks;
  if (marks === undefined) return glob.text === value;
  const pattern = glob.text;
  const m = pattern.length;
  const n = value.length;
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  // Greedy with a single resume point: on a mismatch, let the most recent `*` swallow one more character.
  // Earlier stars never need revisiting, which is what bounds the work.
  while (t < n) {
    if (p < m) {
      const mark = marks[p];
      if (mark === STAR) {
        starP = p++;
        starT = t;
        continue;
      }
      if (mark === ONE || pattern.charCodeAt(p) === value.charCodeAt(t)) {
        p++;
        t++;
        continue;
      }
    }
    if (starP < 0) return false;
    p = starP + 1;
    t = ++starT;
  }
  while (p < m && marks[p] === STAR) p++;
  return p === m;
}

/**
 * An ARN pattern as the ARN operators and the Resource element read it: six colon-separated components
 * (arn:partition:service:region:account:resource), each matched on its own so a wildcard never spans a colon
 * of the first five; the resource component keeps any further colons. A pattern with fewer than six
 * components (notably `*`) is matched against the whole value.
 */
export interface ArnGlob {
  readonly whole?: Glob;
  readonly components?: readonly Glob[];
}

/** Splits at the first five colons; undefined when there are fewer than five. */
export function splitArn(value: string): string[] | undefined {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < 5; i++) {
    const colon = value.indexOf(':', start);
    if (colon < 0) return undefined;
    parts.push(value.slice(start, colon));
    start = colon + 1;
  }
  parts.push(value.slice(start));
  return parts;
}

export function arnGlobFromGlob(glob: Glob): ArnGlob {
  if (glob.matchesAll) return { whole: glob };
  const parts = splitArn(glob.text);
  if (parts === undefined) return { whole: glob };
  const components: Glob[] = [];
  let offset = 0;
  for (const part of parts) {
    const marks = glob.marks?.subarray(offset, offset + part.length);
    const wild = marks !== undefined && marks.some((mark) => mark !== LITERAL);
    components.push({ text: part, marks: wild ? marks : undefined, matchesAll: wild && part === '*' });
    offset += part.length + 1;
  }
  return { components };
}

export function arnGlobMatch(pattern: ArnGlob, value: string, valueParts?: readonly string[]): boolean {
  if (pattern.whole !== undefined) return globMatch(pattern.whole, value);
  const parts = valueParts ?? splitArn(value);
  if (parts === undefined) return false;
  const components = pattern.components!;
  for (let i = 0; i < 6; i++) if (!globMatch(components[i]!, parts[i]!)) return false;
  return true;
}

export function hasWildcard(text: string): boolean {
  return text.includes('*') || text.includes('?');
}
