// Operational parameters on the verifier side: validating a host's report, comparing it with its class's expected sets, and adopting a known-good report.
// Must never do I/O or import from src/agent; every deviation is a warning-level failure, never a reason to trust more.
import { z } from 'zod';
import { UserError } from '../../../shared/errors.ts';

export type FailureSeverity = 'low' | 'medium' | 'high' | 'critical';

/** A failure is data: what was checked, how bad a deviation is, and what was expected against what was found. */
export interface AttestationFailure {
  Id: string;
  Severity: FailureSeverity;
  Component: string;
  Expected?: string;
  Found?: string;
  Detail?: string;
}

/** A host's report as it arrives; the same shape as the agent's OperationalReport. */
export interface ReportedOperational {
  ListeningPorts: string[];
  Modules: string[];
  Executables: Array<{ Path: string; Sha256: string }>;
  Users: string[];
  Truncated?: boolean;
}

/** A class's accepted values; a category left out is not checked. Executables are sha256 hex digests. */
export interface ExpectedOperational {
  ListeningPorts?: string[];
  Modules?: string[];
  Executables?: string[];
  Users?: string[];
}

// The agent (src/agent/operational.ts) caps its report at the same sizes, so an honest report always parses.
export const MAX_OPERATIONAL_LIST_ENTRIES = 2048;
export const MAX_OPERATIONAL_EXECUTABLES = 2000;
export const MAX_OPERATIONAL_STRING_LENGTH = 4096;
/** Enough to show what is wrong without letting one noisy host flood the audit log. */
export const MAX_OPERATIONAL_FAILURES = 50;

const PORT_PATTERN = /^(tcp|udp)\/([1-9][0-9]{0,4})$/;
const SHA256_PATTERN = /^[0-9a-fA-F]{64}$/;

const text = z.string().min(1).max(MAX_OPERATIONAL_STRING_LENGTH);
const port = z.string().max(9).regex(PORT_PATTERN).refine((value) => Number(value.split('/')[1]) <= 65535,
  { message: 'port must be from 1 to 65535' });
const sha256 = z.string().regex(SHA256_PATTERN).transform((value) => value.toLowerCase());

const reportSchema = z.object({
  ListeningPorts: z.array(port).max(MAX_OPERATIONAL_LIST_ENTRIES),
  Modules: z.array(text).max(MAX_OPERATIONAL_LIST_ENTRIES),
  Executables: z.array(z.object({ Path: text, Sha256: sha256 }).strict()).max(MAX_OPERATIONAL_EXECUTABLES),
  Users: z.array(text).max(MAX_OPERATIONAL_LIST_ENTRIES),
  Truncated: z.boolean().optional(),
}).strict();

/** Validates a report received from the network; throws a ValidationException naming the first offending member. */
export function parseOperationalReport(value: unknown): ReportedOperational {
  const result = reportSchema.safeParse(value);
  if (result.success) {
    const report: ReportedOperational = {
      ListeningPorts: result.data.ListeningPorts, Modules: result.data.Modules,
      Executables: result.data.Executables, Users: result.data.Users,
    };
    if (result.data.Truncated) report.Truncated = true;
    return report;
  }
  const issue = result.error.issues[0];
  const where = issue.path.length ? issue.path.join('.') : 'report';
  // The message names the member and the rule, never the value: a report is host data, not the caller's.
  throw new UserError('ValidationException', `Invalid operational report at '${where}': ${issue.message}.`);
}

type Component = 'listening-port' | 'module' | 'executable' | 'user';

/** One failure per reported value the class does not expect, capped at MAX_OPERATIONAL_FAILURES plus a marker. */
export function compareOperational(report: ReportedOperational, expected: ExpectedOperational | undefined): AttestationFailure[] {
  if (!expected) return [];
  const deviations: Array<{ component: Component; expectedCount: number; found: string }> = [];
  const check = (component: Component, accepted: string[] | undefined, found: Array<{ value: string; shown: string }>) => {
    if (accepted === undefined) return;
    const set = new Set(accepted);
    for (const entry of found) if (!set.has(entry.value)) deviations.push({ component, expectedCount: set.size, found: entry.shown });
  };
  check('listening-port', expected.ListeningPorts, report.ListeningPorts.map((value) => ({ value, shown: value })));
  check('module', expected.Modules, report.Modules.map((value) => ({ value, shown: value })));
  // Digests compare case-insensitively: a class's list may be pasted in upper case from another tool.
  check('executable', expected.Executables?.map((value) => value.toLowerCase()),
    report.Executables.map((entry) => ({ value: entry.Sha256.toLowerCase(), shown: `${entry.Path} ${entry.Sha256.toLowerCase()}` })));
  check('user', expected.Users, report.Users.map((value) => ({ value, shown: value })));

  const failures: AttestationFailure[] = deviations.slice(0, MAX_OPERATIONAL_FAILURES).map((deviation) => ({
    Id: 'operational-unexpected', Severity: 'low', Component: deviation.component,
    Expected: describeExpected(deviation.expectedCount), Found: deviation.found,
  }));
  if (deviations.length > MAX_OPERATIONAL_FAILURES) {
    failures.push({ Id: 'operational-truncated', Severity: 'low', Component: 'operational',
      Detail: `${deviations.length - MAX_OPERATIONAL_FAILURES} more unexpected values not listed` });
  }
  // A capped report can hide the very value a class would flag, so say that it was not all seen.
  const checked = [expected.ListeningPorts, expected.Modules, expected.Executables, expected.Users].some((list) => list !== undefined);
  if (checked && report.Truncated) {
    failures.push({ Id: 'operational-incomplete', Severity: 'low', Component: 'operational',
      Detail: 'the host capped its report, so some values were not compared' });
  }
  return failures;
}

/** A known-good host's report as a class's expected sets (sorted, distinct; executables by digest). */
export function expectedFromReport(report: ReportedOperational): ExpectedOperational {
  return {
    ListeningPorts: distinct(report.ListeningPorts),
    Modules: distinct(report.Modules),
    Executables: distinct(report.Executables.map((entry) => entry.Sha256.toLowerCase())),
    Users: distinct(report.Users),
  };
}

function describeExpected(count: number): string {
  if (count === 0) return 'none expected';
  return `one of ${count} expected ${count === 1 ? 'value' : 'values'}`;
}

function distinct(values: string[]): string[] {
  return [...new Set(values)].sort();
}
