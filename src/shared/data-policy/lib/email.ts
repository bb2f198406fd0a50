// email: pragmatic e-mail addresses (local@domain.tld) of bounded length. Pure logic, no I/O.
// Must never keep or return the address it found; only where it was.
import { DEFAULT_CONTEXT_WINDOW, matchAll, type BuiltinDetectorOptions, type Detector, type DetectorCandidate } from './detector.ts';

// Local part up to 64 characters; up to 8 labels of at most 63 characters; an alphabetic TLD. Each part's character
// class excludes the delimiter that ends it, so the pattern cannot backtrack more than linearly.
const EMAIL = /(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g;
const EMAIL_CONTEXT_WORDS = ['email', 'e-mail', 'mail', 'contact', 'from', 'to', 'cc', 'reply-to'];

export function createEmailDetector(options: BuiltinDetectorOptions = {}): Detector {
  return {
    type: 'email',
    maxMatchLength: 64 + 1 + 8 * 64 + 24,
    contextWords: EMAIL_CONTEXT_WORDS,
    contextWindow: options.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: options.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const match of matchAll(new RegExp(EMAIL), text)) {
        yield { offset: match.index, length: match[0].length, confidence: 0.9, confidenceWithContext: 0.97, requiresContext: false };
      }
    },
  };
}
