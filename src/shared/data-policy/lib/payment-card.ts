// payment_card: 13–19 digit numbers with a known card network prefix and a valid Luhn check digit. Pure logic, no I/O.
// Must never keep or return the digits it examined; only where they were.
import { DEFAULT_CONTEXT_WINDOW, matchAll, type BuiltinDetectorOptions, type Detector, type DetectorCandidate } from './detector.ts';

// Digits with single optional spaces or dashes between them; no digit or separator-digit directly before or after.
const CARD_CANDIDATE = /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])/g;
const CARD_CONTEXT_WORDS = ['card', 'credit', 'debit', 'cc', 'visa', 'mastercard', 'amex', 'discover', 'jcb', 'diners',
  'unionpay', 'expiry', 'exp', 'expires', 'cvv', 'cvc', 'pan', 'payment'];

interface CardNetwork {
  readonly name: string;
  readonly lengths: readonly number[];
  matchesPrefix(digits: string): boolean;
}

function prefixBetween(digits: string, width: number, low: number, high: number): boolean {
  const prefix = Number(digits.slice(0, width));
  return prefix >= low && prefix <= high;
}

const CARD_NETWORKS: readonly CardNetwork[] = [
  { name: 'visa', lengths: [13, 16, 19], matchesPrefix: (d) => d.startsWith('4') },
  { name: 'mastercard', lengths: [16], matchesPrefix: (d) => prefixBetween(d, 2, 51, 55) || prefixBetween(d, 4, 2221, 2720) },
  { name: 'amex', lengths: [15], matchesPrefix: (d) => d.startsWith('34') || d.startsWith('37') },
  { name: 'discover', lengths: [16, 17, 18, 19],
    matchesPrefix: (d) => d.startsWith('6011') || d.startsWith('65') || prefixBetween(d, 3, 644, 649) || prefixBetween(d, 6, 622126, 622925) },
  { name: 'jcb', lengths: [16, 17, 18, 19], matchesPrefix: (d) => prefixBetween(d, 4, 3528, 3589) },
  { name: 'diners', lengths: [14, 15, 16, 17, 18, 19],
    matchesPrefix: (d) => prefixBetween(d, 3, 300, 305) || d.startsWith('3095') || d.startsWith('36') || d.startsWith('38') || d.startsWith('39') },
  { name: 'unionpay', lengths: [16, 17, 18, 19], matchesPrefix: (d) => d.startsWith('62') },
];

/** The Luhn (mod 10) check over a string of digits. */
export function passesLuhn(digits: string): boolean {
  let sum = 0;
  let doubled = false;
  for (let index = digits.length - 1; index >= 0; index -= 1) {
    let value = digits.charCodeAt(index) - 48;
    if (doubled) {
      value *= 2;
      if (value > 9) value -= 9;
    }
    sum += value;
    doubled = !doubled;
  }
  return sum % 10 === 0;
}

/** Whether the digits look like a card of a known network (prefix and length) and pass Luhn. */
export function isPaymentCardNumber(digits: string): boolean {
  return CARD_NETWORKS.some((network) => network.lengths.includes(digits.length) && network.matchesPrefix(digits))
    && passesLuhn(digits);
}

export function createPaymentCardDetector(options: BuiltinDetectorOptions = {}): Detector {
  return {
    type: 'payment_card',
    maxMatchLength: 19 + 18,
    contextWords: CARD_CONTEXT_WORDS,
    contextWindow: options.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: options.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const match of matchAll(new RegExp(CARD_CANDIDATE), text)) {
        const digits = match[0].replace(/[ -]/g, '');
        if (!isPaymentCardNumber(digits)) continue;
        // Mixed separators ("4111-1111 1111") are unusual for a real card; trust them less.
        const separators = new Set(match[0].replace(/\d/g, ''));
        const confidence = separators.size > 1 ? 0.4 : 0.6;
        yield { offset: match.index, length: match[0].length, confidence, confidenceWithContext: 0.95, requiresContext: false };
      }
    },
  };
}
