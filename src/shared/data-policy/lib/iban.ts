// iban: International Bank Account Numbers, checked against the per-country length and the ISO 13616 mod-97 check. Pure logic, no I/O.
// Must never keep or return the characters it examined; only where they were.
import { DEFAULT_CONTEXT_WINDOW, matchAll, type BuiltinDetectorOptions, type Detector, type DetectorCandidate } from './detector.ts';

/** IBAN length per country (SWIFT IBAN registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BR: 29, BY: 28, CH: 21, CR: 22, CY: 28,
  CZ: 24, DE: 22, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18,
  GR: 27, GT: 28, HR: 21, HU: 28, IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32,
  LI: 21, LT: 20, LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MR: 27, MT: 31, MU: 30, NL: 18, NO: 15,
  PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, SA: 24, SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27,
  ST: 25, SV: 28, TL: 23, TN: 24, TR: 26, UA: 29, VA: 22, VG: 24, XK: 20,
};

// Where an IBAN may start: country letters and two check digits, not inside a longer word.
const IBAN_START = /(?<![A-Za-z0-9])[A-Z]{2}\d{2}/g;
const IBAN_CONTEXT_WORDS = ['iban', 'account', 'bank', 'bic', 'swift', 'transfer', 'sepa', 'wire', 'beneficiary'];
const MAX_IBAN_LENGTH = 34;

/** ISO 13616 / ISO 7064 mod 97-10: the rearranged IBAN, letters as 10..35, is 1 modulo 97. */
export function passesIbanChecksum(compactIban: string): boolean {
  const rearranged = compactIban.slice(4) + compactIban.slice(0, 4);
  let remainder = 0;
  for (const character of rearranged) {
    const code = character.charCodeAt(0);
    const value = code >= 65 && code <= 90 ? code - 55 : code - 48;
    if (value < 0 || value > 35) return false;
    remainder = value >= 10 ? (remainder * 100 + value) % 97 : (remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

/**
 * Reads the IBAN's characters from `start`: either compact, or printed in groups of four separated by single spaces.
 * Returns the span in the text and the compact form, or undefined when the text there is not shaped like that.
 */
function readIbanAt(text: string, start: number, expectedLength: number): { length: number; compact: string } | undefined {
  const compactRun = /^[A-Z0-9]+/.exec(text.slice(start, start + MAX_IBAN_LENGTH + 1))?.[0] ?? '';
  if (compactRun.length === expectedLength) return { length: expectedLength, compact: compactRun };
  if (compactRun.length !== 4) return undefined;
  let compact = '';
  let at = start;
  while (compact.length < expectedLength) {
    const groupLength = Math.min(4, expectedLength - compact.length);
    if (compact.length > 0) {
      if (text[at] !== ' ') return undefined;
      at += 1;
    }
    const group = text.slice(at, at + groupLength);
    if (!/^[A-Z0-9]+$/.test(group) || group.length !== groupLength) return undefined;
    compact += group;
    at += groupLength;
  }
  if (/[A-Za-z0-9]/.test(text[at] ?? '')) return undefined;
  return { length: at - start, compact };
}

export function createIbanDetector(options: BuiltinDetectorOptions = {}): Detector {
  return {
    type: 'iban',
    maxMatchLength: MAX_IBAN_LENGTH + Math.ceil(MAX_IBAN_LENGTH / 4),
    contextWords: IBAN_CONTEXT_WORDS,
    contextWindow: options.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: options.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const match of matchAll(new RegExp(IBAN_START), text)) {
        const expectedLength = IBAN_LENGTHS[match[0].slice(0, 2)];
        if (expectedLength === undefined) continue;
        const found = readIbanAt(text, match.index, expectedLength);
        if (found === undefined || !passesIbanChecksum(found.compact)) continue;
        yield { offset: match.index, length: found.length, confidence: 0.85, confidenceWithContext: 0.99, requiresContext: false };
      }
    },
  };
}
