// Streaming, bounded scanning of an object's bytes with a set of detectors; reports matches with offsets in the whole stream.
// Must never hold more than one step plus the overlap window of text, nor keep matched text after a step.
import { judgeCandidate, type Detector, type DetectorMatch } from './detector.ts';

export const DEFAULT_SCAN_STEP = 8192;
export const DEFAULT_MAX_MATCHES = 1000;

export interface DataScannerOptions {
  /** Characters newly reported per step; each detector sees at most step + overlap characters at a time. */
  readonly stepChars?: number;
  /** Matches reported per object; later ones are dropped and `truncated` is set. */
  readonly maxMatches?: number;
}

/**
 * Fed UTF-8 chunks split anywhere. Bytes that are not UTF-8 decode to U+FFFD (WHATWG decoder, not fatal), so binary
 * content is scanned as replacement characters and never throws. Offsets are UTF-16 code units of the decoded text.
 *
 * Each step reports candidates starting in [reportFrom, reportFrom + step) from a window that also holds `leftKeep`
 * characters before (context words, one character of look-behind, and the start of any match already reported that
 * crosses reportFrom) and `rightKeep` after (the longest match plus the context window), so results do not depend on
 * where chunks or steps fall, as long as patterns look behind at most one character.
 */
export class DataScanner {
  private readonly decoder = new TextDecoder('utf-8', { fatal: false });
  private readonly step: number;
  private readonly maxMatches: number;
  private readonly leftKeep: number;
  private readonly rightKeep: number;
  private pending = '';
  /** Stream offset of pending[0]. */
  private pendingStart = 0;
  /** Index in `pending` of the first character not yet reported on. */
  private reportFrom = 0;
  private reported = 0;
  private finished = false;
  /** More matches were found than `maxMatches`; the rest were dropped. */
  truncated = false;

  constructor(private readonly detectors: readonly Detector[], options: DataScannerOptions = {}) {
    this.step = Math.max(1, options.stepChars ?? DEFAULT_SCAN_STEP);
    this.maxMatches = options.maxMatches ?? DEFAULT_MAX_MATCHES;
    const longestMatch = Math.max(1, ...detectors.map((detector) => detector.maxMatchLength));
    const widestContext = Math.max(0, ...detectors.map((detector) => detector.contextWindow));
    this.leftKeep = Math.max(longestMatch, widestContext) + 1;
    this.rightKeep = longestMatch + widestContext + 1;
  }

  /** Scans a chunk; returns the matches that are now certain (later ones come with later chunks or finish()). */
  write(chunk: Uint8Array): DetectorMatch[] {
    if (this.finished) throw new Error('DataScanner.write after finish');
    this.pending += this.decoder.decode(chunk, { stream: true });
    return this.drain(false);
  }

  /** Flushes the decoder and reports the remaining matches. */
  finish(): DetectorMatch[] {
    if (this.finished) return [];
    this.pending += this.decoder.decode();
    this.finished = true;
    return this.drain(true);
  }

  private drain(final: boolean): DetectorMatch[] {
    const matches: DetectorMatch[] = [];
    while (this.pending.length - this.reportFrom >= this.step + this.rightKeep
      || (final && this.reportFrom < this.pending.length)) {
      const windowStart = Math.max(0, this.reportFrom - this.leftKeep);
      const reportUntil = Math.min(this.pending.length, this.reportFrom + this.step);
      const windowEnd = Math.min(this.pending.length, reportUntil + this.rightKeep);
      this.scanWindow(windowStart, windowEnd, reportUntil, matches);
      this.reportFrom = reportUntil;
    }
    // Keep only what the next step can look back at.
    const dropped = Math.max(0, this.reportFrom - this.leftKeep);
    if (dropped > 0) {
      this.pending = this.pending.slice(dropped);
      this.pendingStart += dropped;
      this.reportFrom -= dropped;
    }
    return matches;
  }

  private scanWindow(windowStart: number, windowEnd: number, reportUntil: number, into: DetectorMatch[]): void {
    if (this.truncated) return;
    const text = this.pending.slice(windowStart, windowEnd);
    const firstReported = this.reportFrom - windowStart;
    const lastReported = reportUntil - windowStart;
    const found: DetectorMatch[] = [];
    for (const detector of this.detectors) {
      for (const candidate of detector.findCandidates(text)) {
        if (candidate.offset < firstReported || candidate.offset >= lastReported) continue;
        const confidence = judgeCandidate(detector, text, candidate);
        if (confidence === undefined) continue;
        found.push({ type: detector.type, confidence, offset: this.pendingStart + windowStart + candidate.offset,
          length: candidate.length });
      }
    }
    found.sort((a, b) => a.offset - b.offset || a.type.localeCompare(b.type));
    for (const match of found) {
      if (this.reported >= this.maxMatches) {
        this.truncated = true;
        return;
      }
      into.push(match);
      this.reported += 1;
    }
  }
}
