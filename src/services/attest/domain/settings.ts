// A host's attestation settings: its classes' own and their ancestors', combined so the strictest
// wins (TPM over software, the shortest interval, every corrective action any of them asks for, no
// join tokens if any of them refuses them).
// Must never do I/O: it works on the classes the caller has already read.
import type {
  ActionTrigger, AttestationStatus, ClassAttestationSettings, CorrectiveAction, HostClassRecord,
} from '../../../shared/store/index.ts';
import { lineage } from '../../fleet/index.ts';

export const DEFAULT_INTERVAL_SECONDS = 30;
export const MIN_INTERVAL_SECONDS = 1;
export const MAX_INTERVAL_SECONDS = 24 * 3600;
export const DEFAULT_SILENT_AFTER = 3;
export const ACTION_TRIGGERS: readonly ActionTrigger[] = ['contraindicated', 'warning', 'silent'];
export const CORRECTIVE_ACTIONS: readonly CorrectiveAction[] = ['flag', 'alert', 'revoke'];

/** Flag everything, alert on what matters; revoking is a choice an operator makes per class. */
export const DEFAULT_ACTIONS: Record<ActionTrigger, CorrectiveAction[]> = {
  contraindicated: ['flag', 'alert'],
  warning: ['flag'],
  silent: ['flag', 'alert'],
};

/** The settings a host follows, or undefined when none of its classes (nor their ancestors) attests. */
export function effectiveSettings(classes: ReadonlyMap<string, HostClassRecord>, hostClasses: readonly string[]): ClassAttestationSettings | undefined {
  let combined: ClassAttestationSettings | undefined;
  for (const name of [...lineage(classes, hostClasses)].sort()) {
    const own = classes.get(name)?.attestation;
    if (!own) continue;
    if (!combined) {
      combined = { ...own, actions: { ...own.actions } };
      continue;
    }
    combined.mode = combined.mode === 'tpm' || own.mode === 'tpm' ? 'tpm' : 'software';
    combined.intervalSeconds = Math.min(combined.intervalSeconds, own.intervalSeconds);
    combined.silentAfter = Math.min(combined.silentAfter, own.silentAfter);
    for (const trigger of ACTION_TRIGGERS) {
      combined.actions[trigger] = [...new Set([...combined.actions[trigger], ...own.actions[trigger]])].sort();
    }
    combined.webhookUrl ??= own.webhookUrl;
    combined.joinTokens = combined.joinTokens && own.joinTokens;
  }
  return combined;
}

/** The class, of a host's lineage, whose reference values apply: the nearest one that attests. */
export function referenceClass(classes: ReadonlyMap<string, HostClassRecord>, hostClasses: readonly string[]): string | undefined {
  for (const name of [...hostClasses].sort()) {
    let current = classes.get(name);
    const seen = new Set<string>();
    while (current && !seen.has(current.name)) {
      if (current.attestation) return current.name;
      seen.add(current.name);
      current = current.parent === undefined ? undefined : classes.get(current.parent);
    }
  }
  return undefined;
}

/** What a verdict sets off under these settings (silent and the rest have their own lists). */
export function actionsFor(settings: ClassAttestationSettings, status: AttestationStatus): CorrectiveAction[] {
  if (status === 'contraindicated' || status === 'warning' || status === 'silent') return settings.actions[status];
  return [];
}

/** Whether a host with this verdict may hold keys: never while contraindicated, silent or not yet attested. */
export function mayHoldKeys(status: AttestationStatus | undefined): boolean {
  return status === 'affirming' || status === 'warning';
}
