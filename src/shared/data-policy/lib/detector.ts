// The shape every data-policy detector has, and the context-word test they share. Pure logic, no I/O.
// Must never carry or expose the matched text: a match is a type, a confidence and a position only.

/** One finding. `offset` and `length` count UTF-16 code units of the decoded text (JavaScript string indices), from the start of the stream. */
export interface DetectorMatch {
  readonly type: string;
  readonly confidence: number;
  readonly offset: number;
  readonly length: number;
}

/** A place a detector's pattern matched, before context words and thresholds are applied. */
export interface DetectorCandidate {
  readonly offset: number;
  readonly length: number;
  /** Confidence when no context word is near. */
  readonly confidence: number;
  /** Confidence when a context word is within the detector's window. */
  readonly confidenceWithContext: number;
  /** The candidate counts only with a context word near (e.g. an unseparated SSN). */
  readonly requiresContext: boolean;
}

/** A compiled detector: finds candidates in a bounded piece of text. */
export interface Detector {
  readonly type: string;
  /** The longest text a match can span; the scanner's overlap window depends on it. */
  readonly maxMatchLength: number;
  /** Lower-case words or phrases that make a nearby match more likely to be real. */
  readonly contextWords: readonly string[];
  /** How many characters either side of a match are searched for a context word. */
  readonly contextWindow: number;
  /** Matches below this confidence are dropped. */
  readonly minConfidence: number;
  findCandidates(text: string): Iterable<DetectorCandidate>;
}

export const DEFAULT_CONTEXT_WINDOW = 64;

const WORD_CHARACTER = /[\p{L}\p{N}_]/u;

function isWordCharacter(character: string | undefined): boolean {
  return character !== undefined && WORD_CHARACTER.test(character);
}

/** Whether one of `words` occurs as a whole word (case-insensitive) within `window` characters before or after text[start, end). */
export function hasContextWord(text: string, start: number, end: number, words: readonly string[], window: number): boolean {
  if (words.length === 0) return false;
  const regionStart = Math.max(0, start - window);
  const regionEnd = Math.min(text.length, end + window);
  const before = text.slice(regionStart, start).toLowerCase();
  const after = text.slice(end, regionEnd).toLowerCase();
  return words.some((word) => containsWholeWord(before, word) || containsWholeWord(after, word));
}

function containsWholeWord(haystack: string, word: string): boolean {
  for (let at = haystack.indexOf(word); at !== -1; at = haystack.indexOf(word, at + 1)) {
    if (!isWordCharacter(haystack[at - 1]) && !isWordCharacter(haystack[at + word.length])) return true;
  }
  return false;
}

/** Applies context words and the threshold to a candidate; undefined when it does not count. */
export function judgeCandidate(detector: Detector, text: string, candidate: DetectorCandidate): number | undefined {
  const nearContext = hasContextWord(text, candidate.offset, candidate.offset + candidate.length,
    detector.contextWords, detector.contextWindow);
  if (candidate.requiresContext && !nearContext) return undefined;
  const confidence = nearContext ? candidate.confidenceWithContext : candidate.confidence;
  return confidence >= detector.minConfidence ? confidence : undefined;
}

/** Runs a global regex over text, never looping on an empty match. */
export function* matchAll(pattern: RegExp, text: string): Generator<RegExpExecArray> {
  pattern.lastIndex = 0;
  for (let match = pattern.exec(text); match !== null; match = pattern.exec(text)) {
    if (match[0].length === 0) {
      pattern.lastIndex += 1;
      continue;
    }
    yield match;
  }
}

/** Options every built-in detector accepts. */
export interface BuiltinDetectorOptions {
  readonly contextWindow?: number;
  readonly minConfidence?: number;
}
