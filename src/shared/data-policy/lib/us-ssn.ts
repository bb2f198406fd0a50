// us_ssn: US Social Security numbers (AAA-GG-SSSS), without the ranges the SSA never issues. Pure logic, no I/O.
// Must never keep or return the digits it examined; only where they were.
import { DEFAULT_CONTEXT_WINDOW, matchAll, type BuiltinDetectorOptions, type Detector, type DetectorCandidate } from './detector.ts';

// The same separator (dash, space or none) both times; nothing digit-like directly around.
const SSN_CANDIDATE = /(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])/g;
const SSN_CONTEXT_WORDS = ['ssn', 'ssns', 'social security', 'social security number', 'ss#', 'ss no', 'taxpayer', 'tin'];

/** Whether area, group and serial are in ranges that can be issued (area not 000, 666 or 900–999; group not 00; serial not 0000). */
export function isIssuableSsn(area: string, group: string, serial: string): boolean {
  const areaNumber = Number(area);
  return areaNumber !== 0 && areaNumber !== 666 && areaNumber < 900 && group !== '00' && serial !== '0000';
}

export function createUsSsnDetector(options: BuiltinDetectorOptions = {}): Detector {
  return {
    type: 'us_ssn',
    maxMatchLength: 11,
    contextWords: SSN_CONTEXT_WORDS,
    contextWindow: options.contextWindow ?? DEFAULT_CONTEXT_WINDOW,
    minConfidence: options.minConfidence ?? 0,
    *findCandidates(text: string): Iterable<DetectorCandidate> {
      for (const match of matchAll(new RegExp(SSN_CANDIDATE), text)) {
        const [whole, area = '', separator, group = '', serial = ''] = match;
        if (!isIssuableSsn(area, group, serial)) continue;
        // Nine bare digits or space-separated groups are too common to count without a context word.
        const dashed = separator === '-';
        yield { offset: match.index, length: whole.length, confidence: dashed ? 0.6 : 0.5,
          confidenceWithContext: dashed ? 0.95 : 0.85, requiresContext: !dashed };
      }
    },
  };
}
