// The detector part of a data policy: its schema, and compiling it once into a factory of scanners.
// Must never accept a configuration it cannot scan with safely; every refusal is a UserError naming the field.
import { z } from 'zod';
import { UserError } from '../../errors.ts';
import { createCustomDetector, findUnsafePatternConstruct } from './custom.ts';
import { DEFAULT_CONTEXT_WINDOW, type Detector } from './detector.ts';
import { createEmailDetector } from './email.ts';
import { createIbanDetector } from './iban.ts';
import { createPaymentCardDetector } from './payment-card.ts';
import { createPhoneDetector, isPhoneRegion } from './phone.ts';
import { DataScanner, type DataScannerOptions } from './scanner.ts';
import { createUsSsnDetector } from './us-ssn.ts';

export const BUILTIN_DETECTOR_NAMES = ['payment_card', 'us_ssn', 'iban', 'email', 'phone'] as const;
export type BuiltinDetectorName = (typeof BUILTIN_DETECTOR_NAMES)[number];

const contextWindowSchema = z.number().int().min(0).max(1024);
const confidenceSchema = z.number().min(0).max(1);

const customDetectorSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'must be lower-case letters, digits, _ or -, starting with a letter')
    .refine((name) => !(BUILTIN_DETECTOR_NAMES as readonly string[]).includes(name), 'is the name of a built-in detector'),
  pattern: z.string().min(1).max(1024).optional(),
  keywords: z.array(z.string().trim().min(1).max(256)).min(1).max(10_000).optional(),
  ignoreCase: z.boolean().optional(),
  contextWords: z.array(z.string().trim().min(1).max(128)).max(1000).optional(),
  window: contextWindowSchema.optional(),
  requireContext: z.boolean().optional(),
  confidence: confidenceSchema.optional(),
  minConfidence: confidenceSchema.optional(),
  maxLength: z.number().int().min(1).max(4096).optional(),
}).strict().superRefine((definition, context) => {
  if ((definition.pattern === undefined) === (definition.keywords === undefined)) {
    context.addIssue({ code: z.ZodIssueCode.custom, message: 'needs exactly one of pattern or keywords', path: [] });
  }
  if (definition.pattern !== undefined) {
    let compiled: RegExp;
    try {
      compiled = new RegExp(definition.pattern);
    } catch {
      context.addIssue({ code: z.ZodIssueCode.custom, message: 'is not a valid regular expression', path: ['pattern'] });
      return;
    }
    const unsafe = findUnsafePatternConstruct(definition.pattern);
    if (unsafe !== undefined) context.addIssue({ code: z.ZodIssueCode.custom, message: unsafe, path: ['pattern'] });
    if (compiled.test('')) {
      context.addIssue({ code: z.ZodIssueCode.custom, message: 'must not match the empty string', path: ['pattern'] });
    }
  }
  if (definition.requireContext && !definition.contextWords?.length) {
    context.addIssue({ code: z.ZodIssueCode.custom, message: 'requireContext needs contextWords', path: ['requireContext'] });
  }
});

/** The detector part of a policy: `detectors: [payment_card, us_ssn, {name: project-x, keywords: [...]}]` plus tuning. */
export const detectorPolicySchema = z.object({
  detectors: z.array(z.union([z.enum(BUILTIN_DETECTOR_NAMES), customDetectorSchema])).min(1).max(64),
  contextWindow: contextWindowSchema.optional(),
  phoneRegion: z.string().refine(isPhoneRegion, 'is not a region code libphonenumber-js knows').optional(),
  maxMatches: z.number().int().min(1).max(1_000_000).optional(),
}).strict().superRefine((policy, context) => {
  const seen = new Set<string>();
  policy.detectors.forEach((entry, index) => {
    const name = typeof entry === 'string' ? entry : entry.name;
    if (seen.has(name)) context.addIssue({ code: z.ZodIssueCode.custom, message: `names ${name} twice`, path: ['detectors', index] });
    seen.add(name);
  });
});

export type DetectorPolicy = z.infer<typeof detectorPolicySchema>;

/** A compiled detector policy: makes one scanner per object. */
export interface DataScannerFactory {
  readonly detectorTypes: readonly string[];
  createScanner(options?: Pick<DataScannerOptions, 'stepChars'>): DataScanner;
}

function describeIssue(issue: z.ZodIssue, field: string): string {
  const path = issue.path.reduce<string>((text, part) => typeof part === 'number' ? `${text}[${part}]` : `${text}.${part}`, field);
  return `${path}: ${issue.message}`;
}

/** Validates and compiles the detector part of a policy once; `field` names it in error messages (e.g. "policies[0].match"). */
export function compileDetectorPolicy(input: unknown, field = 'detectorPolicy'): DataScannerFactory {
  const parsed = detectorPolicySchema.safeParse(input);
  if (!parsed.success) {
    throw new UserError('InvalidConfiguration', parsed.error.issues.map((issue) => describeIssue(issue, field)).join('; '));
  }
  const policy = parsed.data;
  const contextWindow = policy.contextWindow ?? DEFAULT_CONTEXT_WINDOW;
  const detectors: Detector[] = policy.detectors.map((entry) => {
    if (typeof entry !== 'string') return createCustomDetector({ window: contextWindow, ...entry });
    switch (entry) {
      case 'payment_card': return createPaymentCardDetector({ contextWindow });
      case 'us_ssn': return createUsSsnDetector({ contextWindow });
      case 'iban': return createIbanDetector({ contextWindow });
      case 'email': return createEmailDetector({ contextWindow });
      case 'phone': return createPhoneDetector({ contextWindow, defaultRegion: policy.phoneRegion ?? 'US' });
    }
  });
  return {
    detectorTypes: detectors.map((detector) => detector.type),
    createScanner: (options = {}) => new DataScanner(detectors, { ...options, maxMatches: policy.maxMatches }),
  };
}

/** Scans a whole, already-bounded text with a compiled policy (tests, small values such as a database field). */
export function scanText(factory: DataScannerFactory, text: string): ReturnType<DataScanner['finish']> {
  const scanner = factory.createScanner();
  return [...scanner.write(Buffer.from(text, 'utf8')), ...scanner.finish()];
}
