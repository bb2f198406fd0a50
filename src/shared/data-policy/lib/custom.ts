// Custom detectors from configuration: a named regular expression or a keyword list, with optional context words. Pure logic, no I/O.
// Must never accept a pattern shape known to backtrack catastrophically, nor keep or return matched text.
import { DEFAULT_CONTEXT_WINDOW, matchAll, type Detector, type DetectorCandidate } from './detector.ts';

export const DEFAULT_CUSTOM_MAX_MATCH_LENGTH = 256;

export interface CustomDetectorDefinition {
  readonly name: string;
  /** A JavaScript regular expression (no flags; see `ignoreCase`). */
  readonly pattern?: string;
  /** Whole words or phrases, matched case-insensitively. */
  readonly keywords?: readonly string[];
  readonly ignoreCase?: boolean;
  readonly contextWords?: readonly string[];
  readonly window?: number;
  /** Without a context word near, the match does not count at all. */
  readonly requireContext?: boolean;
  /** Confidence of a match without context (default 0.6; with context it is raised by 0.3, at most 1). */
  readonly confidence?: number;
  readonly minConfidence?: number;
  /** Matches longer than this are ignored; bounds the scanner's overlap window. */
  readonly maxLength?: number;
}

/**
 * Why a pattern is refused, or undefined when it is acceptable. Refused: back-references, and quantified groups that
 * contain a quantifier or an alternation (`(a+)+`, `(a|a)*`), the shapes that backtrack exponentially. What remains can
 * still backtrack polynomially, which the scanner bounds by never showing a regex more than one step's window of text.
 */
export function findUnsafePatternConstruct(pattern: string): string | undefined {
  // For each open group: whether it holds a quantifier or an alternation.
  const groups: Array<{ risky: boolean }> = [];
  let lastClosedGroupRisky = false;
  let inClass = false;
  for (let index = 0; index < pattern.length; index += 1) {
    const character = pattern[index];
    const afterGroup = lastClosedGroupRisky;
    lastClosedGroupRisky = false;
    if (character === '\\') {
      const next = pattern[index + 1] ?? '';
      if (!inClass && (/[1-9]/.test(next) || next === 'k')) return 'back-references are not allowed';
      index += 1;
      continue;
    }
    if (inClass) {
      if (character === ']') inClass = false;
      continue;
    }
    const isQuantifier = character === '*' || character === '+' || character === '?'
      || (character === '{' && /^\{\d+(,\d*)?\}/.test(pattern.slice(index)));
    if (isQuantifier) {
      // A '?' right after '(' or after another quantifier is syntax (group kind, laziness), not a quantifier of a group.
      if (afterGroup) return 'a quantified group may not contain a quantifier or an alternation (catastrophic backtracking)';
      const top = groups[groups.length - 1];
      if (top !== undefined && !(character === '?' && pattern[index - 1] === '(')) top.risky = true;
      if (character === '{') index = pattern.indexOf('}', index);
      continue;
    }
    if (character === '[') inClass = true;
    else if (character === '(') groups.push({ risky: false });
    else if (character === '|') {
      const top = groups[groups.length - 1];
      if (top !== undefined) top.risky = true;
    } else if (character === ')') {
      const closed = groups.pop();
      lastClosedGroupRisky = closed?.risky ?? false;
      const parent = groups[groups.length - 1];
      if (parent !== undefined && closed?.risky) parent.risky = true;
    }
  }
  return undefined;
}

function escapeRegExp(text: string): string {
  // Only syntax characters: with the u flag an escaped '-' or other non-syntax character is an error.
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** A regex matching any keyword as a whole word, case-insensitively; spaces in a phrase match any run of white space. */
function compileKeywords(keywords: readonly string[]): RegExp {
  const alternatives = [...keywords].sort((a, b) => b.length - a.length)
    .map((keyword) => keyword.trim().split(/\s+/).map(escapeRegExp).join('\\s+'));
  return new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alternatives.join('|')})(?![\\p{L}\\p{N}_])`, 'giu');
}

/** Compiles a definition already validated by the configuration schema. */
export function createCustomDetector(definition: CustomDetectorDefinition): Detector {
  const pattern = definition.keywords !== undefined
    ? compileKeywords(definition.keywords)
    : new RegExp(definition.pattern ?? '', definition.ignoreCase ? 'gi' : 'g');
  const maxMatchLength = definition.maxLength ?? DEFAULT_CUSTOM_MAX_MATCH_LENGTH;
  const confidence = definition.confidence ?? 0.6;
  const contextWords = (definition.contextWords ?? []).map((word) => word.toLowerCase());
  return {
    type: definition.name,
    maxMatchLength,
    contextWords,
    contextWindow: definition.window ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: definition.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const match of matchAll(new RegExp(pattern), text)) {
        if (match[0].length > maxMatchLength) continue;
        yield { offset: match.index, length: match[0].length, confidence,
          confidenceWithContext: Math.min(1, Math.round((confidence + 0.3) * 100) / 100), requiresContext: definition.requireContext ?? false };
      }
    },
  };
}
