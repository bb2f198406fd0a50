// phone: telephone numbers found and validated by libphonenumber-js (full metadata), for a default region. Pure logic, no I/O.
// Must never keep or return the number it found; only where it was.
import { findNumbers, isSupportedCountry, type CountryCode } from 'libphonenumber-js/max';
import { DEFAULT_CONTEXT_WINDOW, type BuiltinDetectorOptions, type Detector, type DetectorCandidate } from './detector.ts';

const PHONE_CONTEXT_WORDS = ['phone', 'telephone', 'tel', 'mobile', 'cell', 'fax', 'call', 'contact', 'whatsapp', 'sms'];

export interface PhoneDetectorOptions extends BuiltinDetectorOptions {
  /** ISO 3166 alpha-2 region numbers without a `+` prefix are read in, e.g. "US". */
  readonly defaultRegion?: string;
}

/** Whether libphonenumber-js knows the region code. */
export function isPhoneRegion(region: string): region is CountryCode {
  return isSupportedCountry(region);
}

export function createPhoneDetector(options: PhoneDetectorOptions = {}): Detector {
  const region = options.defaultRegion ?? 'US';
  if (!isPhoneRegion(region)) throw new RangeError(`unknown phone region ${region}`);
  return {
    type: 'phone',
    maxMatchLength: 64,
    contextWords: PHONE_CONTEXT_WORDS,
    contextWindow: options.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: options.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const found of findNumbers(text, { defaultCountry: region, v2: true })) {
        if (!found.number.isValid()) continue;
        // An international (+CC) number is far less likely to be some other figure than a bare national one.
        const international = text[found.startsAt] === '+';
        yield { offset: found.startsAt, length: found.endsAt - found.startsAt, confidence: international ? 0.7 : 0.5,
          confidenceWithContext: 0.9, requiresContext: false };
      }
    },
  };
}
