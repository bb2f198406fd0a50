// Data-policy decisions for one object: which rules can apply before the body is seen, and what they decide after.
// Must never let a clear-text outcome (pass) win over a rule that demands encryption, denial or quarantine.
import type { DataKeySpec, PolicyRule } from '../../config.ts';

export interface ObjectTarget {
  bucket: string;
  key: string;
  contentType: string;
}

/** What is known before the body: the rules whose location matches, the key strength, whether to scan. */
export interface PolicyPlan {
  candidates: readonly PolicyRule[];
  /** Some candidate rule depends on detectors: the body must be scanned before the object is placed. */
  needsScan: boolean;
  /** The data key strength, fixed before the body: the strongest any candidate rule may ask for. */
  keySpec: DataKeySpec;
  /** The decision if no detector fires (what a rule-free or location-only policy decides up front). */
  unscanned: PolicyDecision;
}

export interface PolicyDecision {
  /** The rule that denies the object, if any (first in order). */
  deny?: string;
  /** The rule that quarantines it, if any. */
  quarantine?: string;
  /** The rule that routes it, and the zone. */
  route?: { rule: string; zone: string };
  /** The rule that stores it in clear (only when no applied rule asks for encryption). */
  pass?: string;
  snapshot: string[];
  log: string[];
  /** Every rule that applied, in order. */
  applied: string[];
}

/** `*` matches any run of characters, `?` one; everything else is literal. */
export function globMatches(pattern: string, text: string): boolean {
  if (pattern === '*') return true;
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, 's').test(text);
}

function locationMatches(rule: PolicyRule, target: ObjectTarget): boolean {
  if (!globMatches(rule.bucket, target.bucket)) return false;
  if (!target.key.startsWith(rule.prefix)) return false;
  if (rule.contentType !== undefined) {
    const type = target.contentType.split(';')[0].trim().toLowerCase();
    if (!globMatches(rule.contentType.toLowerCase(), type)) return false;
  }
  return true;
}

const strength = (spec: DataKeySpec) => (spec === 'AES_256' ? 2 : 1);

/** The rules that can apply to an object at this location, before its content is known. */
export function planPolicy(rules: readonly PolicyRule[], target: ObjectTarget, defaultKeySpec: DataKeySpec): PolicyPlan {
  const candidates = rules.filter((rule) => locationMatches(rule, target));
  let keySpec: DataKeySpec = defaultKeySpec;
  const locationOnly = candidates.filter((rule) => !rule.detectors);
  // A location rule sets the strength; a detector rule can only raise it (it is chosen before the content is seen).
  const explicit = locationOnly.find((rule) => rule.keySpec)?.keySpec;
  if (explicit) keySpec = explicit;
  for (const rule of candidates) {
    if (rule.detectors && rule.keySpec && strength(rule.keySpec) > strength(keySpec)) keySpec = rule.keySpec;
  }
  return { candidates, needsScan: candidates.some((rule) => rule.detectors !== undefined), keySpec,
    unscanned: decidePolicy(candidates, new Set()) };
}

/** The decision once the detectors have run: `found` holds the detector types that matched. */
export function decidePolicy(candidates: readonly PolicyRule[], found: ReadonlySet<string>): PolicyDecision {
  const decision: PolicyDecision = { snapshot: [], log: [], applied: [] };
  let encryptDemanded = false;
  for (const rule of candidates) {
    if (rule.detectors && !rule.detectors.some((detector) => found.has(detector))) continue;
    decision.applied.push(rule.name);
    for (const action of rule.actions) {
      if (action === 'deny') decision.deny ??= rule.name;
      else if (action === 'quarantine') decision.quarantine ??= rule.name;
      else if (action === 'pass') decision.pass ??= rule.name;
      else if (action === 'encrypt') encryptDemanded = true;
      else if (action === 'snapshot') decision.snapshot.push(rule.name);
      else if (action === 'log') decision.log.push(rule.name);
      else if (action.startsWith('route:')) decision.route ??= { rule: rule.name, zone: action.slice('route:'.length) };
    }
    // A detector rule that fires with any protective action outranks a location's pass.
    if (rule.detectors && rule.actions.some((action) => action !== 'pass' && action !== 'log')) encryptDemanded = true;
  }
  if (decision.pass && (encryptDemanded || decision.quarantine || decision.deny)) delete decision.pass;
  return decision;
}
