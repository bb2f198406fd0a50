// `system.snapshot`: kernel, host name, uptime, mounts, listening sockets, login users and loaded modules, from /proc and /etc.
// Must never shell out nor read anything that is not system-wide metadata.
import { readFile } from 'node:fs/promises';
import { hostname, machine, release, uptime, version } from 'node:os';
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

export const systemSnapshotOperation = defineOperation({
  name: 'system.snapshot',
  description: 'kernel, host name, uptime, mounts, listening sockets, login users, loaded kernel modules',
  parse(parameters) {
    onlyParameters('system.snapshot', parameters, []);
    return {};
  },
  async run() {
    const [operational, mounts] = await Promise.all([collectOperational({ maxExecutables: 0 }), listMounts()]);
    return {
      Kernel: { Release: release(), Version: version(), Machine: machine() },
      Hostname: hostname(),
      UptimeSeconds: Math.floor(uptime()),
      Mounts: mounts.mounts,
      ListeningSockets: operational.ListeningPorts,
      Users: operational.Users,
      Modules: operational.Modules,
      ...(operational.Truncated || mounts.truncated ? { Truncated: true } : {}),
    };
  },
});
