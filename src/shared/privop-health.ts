// Health watch: a per-host baseline of `system.snapshot` results and the departures from it, judged by whoever holds
// the watch key (the server never sees a snapshot in clear). Pure logic, no I/O.
// Must never fold a departing figure into its own baseline (a sustained departure keeps being flagged), nor flag during learning.
import { z } from 'zod';

export const HEALTH_BASELINE_VERSION = 1;

/** The numeric figures a baseline keeps (system.snapshot's `Figures`), with the smallest change worth flagging for each. */
export const HEALTH_FIGURES = {
  LoadAverage1m: 1,
  LoadAverage5m: 1,
  MemoryAvailableBytes: 256 * 1024 * 1024,
  MemoryTotalBytes: 64 * 1024 * 1024,
  ProcessCount: 20,
  ListeningSocketCount: 1,
  ModuleCount: 1,
  UserCount: 1,
  MountCount: 1,
} as const;
export type HealthFigure = keyof typeof HEALTH_FIGURES;

/** The lists whose new members are flagged (once, then learnt), with how much a new member matters. */
const HEALTH_SETS = { ListeningSockets: 'warning', Modules: 'critical', Users: 'critical', Mounts: 'warning' } as const;
type HealthSet = keyof typeof HEALTH_SETS;

export interface HealthSettings {
  /** Snapshots taken in before figures are judged. */
  learningSamples: number;
  /** How many standard deviations from the mean a figure may stray (never less than its floor or 25 % of the mean). */
  deviations: number;
}

export const DEFAULT_HEALTH_SETTINGS: HealthSettings = { learningSamples: 3, deviations: 4 };

/** Running mean and variance (Welford): a baseline never stores the samples themselves. */
interface FigureStatistics { Count: number; Mean: number; M2: number }

export interface HostBaseline {
  Version: typeof HEALTH_BASELINE_VERSION;
  HostId: string;
  Samples: number;
  UpdatedAt: string;
  KernelRelease: string;
  UptimeSeconds: number;
  Figures: Partial<Record<HealthFigure, FigureStatistics>>;
  Sets: Record<HealthSet, string[]>;
}

export interface HealthDeparture {
  HostId: string;
  Kind: 'figure' | 'added' | 'kernel-changed' | 'rebooted';
  /** The figure or list concerned. */
  Name: string;
  Expected?: string;
  Found: string;
  Severity: 'warning' | 'critical';
}

const snapshotSchema = z.object({
  Kernel: z.object({ Release: z.string() }).passthrough(),
  UptimeSeconds: z.number().finite().nonnegative(),
  Mounts: z.array(z.object({ MountPoint: z.string(), Type: z.string() }).passthrough()),
  ListeningSockets: z.array(z.string()),
  Users: z.array(z.string()),
  Modules: z.array(z.string()),
  Figures: z.record(z.string(), z.number().finite()).optional(),
}).passthrough();

export type HealthSnapshot = z.infer<typeof snapshotSchema>;

/** A system.snapshot result checked for what the watch reads; undefined when it is not one. */
export function readHealthSnapshot(result: unknown): HealthSnapshot | undefined {
  const parsed = snapshotSchema.safeParse(result);
  return parsed.success ? parsed.data : undefined;
}

const setMembers = (snapshot: HealthSnapshot): Record<HealthSet, string[]> => ({
  ListeningSockets: [...new Set(snapshot.ListeningSockets)].sort(),
  Modules: [...new Set(snapshot.Modules)].sort(),
  Users: [...new Set(snapshot.Users)].sort(),
  Mounts: [...new Set(snapshot.Mounts.map((mount) => `${mount.MountPoint} (${mount.Type})`))].sort(),
});

function folded(statistics: FigureStatistics | undefined, value: number): FigureStatistics {
  const count = (statistics?.Count ?? 0) + 1;
  const mean = statistics?.Mean ?? 0;
  const delta = value - mean;
  const nextMean = mean + delta / count;
  return { Count: count, Mean: nextMean, M2: (statistics?.M2 ?? 0) + delta * (value - nextMean) };
}

/** How far a figure may stray from its mean before it is flagged. */
export function figureTolerance(figure: HealthFigure, statistics: FigureStatistics, settings: HealthSettings): number {
  const deviation = statistics.Count > 1 ? Math.sqrt(statistics.M2 / (statistics.Count - 1)) : 0;
  return Math.max(settings.deviations * deviation, 0.25 * Math.abs(statistics.Mean), HEALTH_FIGURES[figure]);
}

const round = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(2));

/**
 * Judges one host's snapshot against its baseline (none: the first snapshot starts one) and returns the next baseline
 * and the departures: figures outside their tolerance (after learning), new members of watched lists, a new kernel, a reboot.
 */
export function assessHealth(previous: HostBaseline | undefined, hostId: string, snapshot: HealthSnapshot, at: Date,
  settings: HealthSettings = DEFAULT_HEALTH_SETTINGS): { baseline: HostBaseline; departures: HealthDeparture[] } {
  const departures: HealthDeparture[] = [];
  const members = setMembers(snapshot);
  if (previous) {
    if (previous.KernelRelease !== snapshot.Kernel.Release) {
      departures.push({ HostId: hostId, Kind: 'kernel-changed', Name: 'Kernel', Expected: previous.KernelRelease, Found: snapshot.Kernel.Release, Severity: 'critical' });
    }
    if (snapshot.UptimeSeconds < previous.UptimeSeconds) {
      departures.push({ HostId: hostId, Kind: 'rebooted', Name: 'UptimeSeconds', Expected: `≥ ${previous.UptimeSeconds}`, Found: String(snapshot.UptimeSeconds),
        Severity: 'warning' });
    }
    for (const set of Object.keys(HEALTH_SETS) as HealthSet[]) {
      const known = new Set(previous.Sets[set]);
      for (const member of members[set]) {
        if (!known.has(member)) departures.push({ HostId: hostId, Kind: 'added', Name: set, Found: member, Severity: HEALTH_SETS[set] });
      }
    }
  }
  const judging = (previous?.Samples ?? 0) >= settings.learningSamples;
  const figures: HostBaseline['Figures'] = { ...previous?.Figures };
  for (const figure of Object.keys(HEALTH_FIGURES) as HealthFigure[]) {
    const value = snapshot.Figures?.[figure];
    if (value === undefined) continue;
    const statistics = figures[figure];
    if (judging && statistics) {
      const tolerance = figureTolerance(figure, statistics, settings);
      if (Math.abs(value - statistics.Mean) > tolerance) {
        departures.push({ HostId: hostId, Kind: 'figure', Name: figure, Expected: `${round(statistics.Mean)} ± ${round(tolerance)}`, Found: round(value),
          Severity: 'warning' });
        continue;
      }
    }
    figures[figure] = folded(statistics, value);
  }
  // New list members are flagged once and then learnt: the watch reports a change, it does not nag about it.
  const sets = Object.fromEntries((Object.keys(HEALTH_SETS) as HealthSet[]).map((set) => [set,
    [...new Set([...(previous?.Sets[set] ?? []), ...members[set]])].sort()])) as Record<HealthSet, string[]>;
  return {
    baseline: { Version: HEALTH_BASELINE_VERSION, HostId: hostId, Samples: (previous?.Samples ?? 0) + 1, UpdatedAt: at.toISOString(),
      KernelRelease: snapshot.Kernel.Release, UptimeSeconds: snapshot.UptimeSeconds, Figures: figures, Sets: sets },
    departures,
  };
}

const baselineSchema = z.object({
  Version: z.literal(HEALTH_BASELINE_VERSION),
  HostId: z.string(),
  Samples: z.number().int().nonnegative(),
  UpdatedAt: z.string(),
  KernelRelease: z.string(),
  UptimeSeconds: z.number().nonnegative(),
  Figures: z.record(z.string(), z.object({ Count: z.number().int().positive(), Mean: z.number().finite(), M2: z.number().finite().nonnegative() })),
  Sets: z.object({ ListeningSockets: z.array(z.string()), Modules: z.array(z.string()), Users: z.array(z.string()), Mounts: z.array(z.string()) }),
});

/** A stored baseline read back; undefined when it is not one of this version (the watch then learns afresh and says so). */
export function readHostBaseline(value: unknown): HostBaseline | undefined {
  const parsed = baselineSchema.safeParse(value);
  return parsed.success ? parsed.data as HostBaseline : undefined;
}
