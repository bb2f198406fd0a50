// `system.snapshot`: kernel, host name, uptime, mounts, listening sockets, login users, loaded modules and load figures, from /proc and /etc.
// Must never shell out nor read anything that is not system-wide metadata.
import { readdir, readFile } from 'node:fs/promises';
import { freemem, hostname, loadavg, machine, release, totalmem, uptime, version } from 'node:os';
import { collectOperational } from '../operational.ts';
import { onlyParameters } from './parameters.ts';
import { defineOperation } from './operation.ts';

const MAX_MOUNTS = 2048;

interface Mount { Device: string; MountPoint: string; Type: string; Options: string }

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
const unescapeMountField = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

async function listMounts(): Promise<{ mounts: Mount[]; truncated: boolean }> {
  let text = '';
  try {
    text = await readFile('/proc/mounts', 'utf8');
  } catch {
    return { mounts: [], truncated: false };
  }
  const mounts = text.split('\n').filter(Boolean).map((line) => {
    const [device = '', mountPoint = '', type = '', options = ''] = line.split(' ');
    return { Device: unescapeMountField(device), MountPoint: unescapeMountField(mountPoint), Type: type, Options: options };
  });
  return { mounts: mounts.slice(0, MAX_MOUNTS), truncated: mounts.length > MAX_MOUNTS };
}

async function countProcesses(): Promise<number> {
  try {
    return (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).length;
  } catch {
    return 0;
  }
}

/** MemAvailable (what can be used without swapping) when the kernel reports it; free memory otherwise. */
async function availableMemory(): Promise<number> {
  try {
    const kib = /^MemAvailable:\s+(\d+) kB$/m.exec(await readFile('/proc/meminfo', 'utf8'))?.[1];
    if (kib) return Number(kib) * 1024;
  } catch {
    // Falls through to what Node knows.
  }
  return freemem();
}

export const systemSnapshotOperation = defineOperation({
  name: 'system.snapshot',
  description: 'kernel, host name, uptime, mounts, listening sockets, login users, loaded kernel modules',
  parse(parameters) {
    onlyParameters('system.snapshot', parameters, []);
    return {};
  },
  async run() {
    const [operational, mounts, processes, available] = await Promise.all([collectOperational({ maxExecutables: 0 }), listMounts(), countProcesses(),
      availableMemory()]);
    const [load1, load5] = loadavg();
    return {
      Kernel: { Release: release(), Version: version(), Machine: machine() },
      Hostname: hostname(),
      UptimeSeconds: Math.floor(uptime()),
      Mounts: mounts.mounts,
      ListeningSockets: operational.ListeningPorts,
      Users: operational.Users,
      Modules: operational.Modules,
      // The numbers a health watch keeps a baseline of (src/shared/privop-health.ts).
      Figures: { LoadAverage1m: load1, LoadAverage5m: load5, MemoryTotalBytes: totalmem(), MemoryAvailableBytes: available, ProcessCount: processes,
        ListeningSocketCount: operational.ListeningPorts.length, ModuleCount: operational.Modules.length, UserCount: operational.Users.length,
        MountCount: mounts.mounts.length },
      ...(operational.Truncated || mounts.truncated ? { Truncated: true } : {}),
    };
  },
});
