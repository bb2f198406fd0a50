// `process.list`: every process's pid, parent, user and command line, from /proc.
// Must never read a process's memory or environment: only stat, status and cmdline.
import { readdir, readFile } from 'node:fs/promises';
import { onlyParameters } from './parameters.ts';
import { defineOperation } from './operation.ts';

const MAX_PROCESSES = 32_768;
const MAX_COMMAND_LENGTH = 4096;

interface ProcessEntry { Pid: number; Ppid: number; Uid: number; User: string; Command: string }

async function userNames(): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  try {
    for (const line of (await readFile('/etc/passwd', 'utf8')).split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid && /^\d+$/.test(uid) && !names.has(Number(uid))) names.set(Number(uid), name);
    }
  } catch {
    // No /etc/passwd (minimal containers): numeric users only.
  }
  return names;
}

async function readProcess(pid: number, names: Map<number, string>): Promise<ProcessEntry | undefined> {
  try {
    const [stat, status, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/status`, 'utf8'),
      readFile(`/proc/${pid}/cmdline`)]);
    // The command name may hold spaces and parentheses: the fields after it start after the last ')'.
    const commandName = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
    const argv = cmdline.toString('utf8').split('\0').filter(Boolean).join(' ');
    return { Pid: pid, Ppid: ppid, Uid: uid, User: names.get(uid) ?? String(uid),
      Command: (argv || `[${commandName}]`).slice(0, MAX_COMMAND_LENGTH) };
  } catch {
    return undefined; // it exited while we looked, or we may not read it
  }
}

export const processListOperation = defineOperation({
  name: 'process.list',
  description: 'pid, parent pid, user and command line of every process',
  parse(parameters) {
    onlyParameters('process.list', parameters, []);
    return {};
  },
  async run() {
    const names = await userNames();
    const pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name)).map(Number).sort((a, b) => a - b);
    const entries = (await Promise.all(pids.slice(0, MAX_PROCESSES).map((pid) => readProcess(pid, names))))
      .filter((entry): entry is ProcessEntry => entry !== undefined);
    return { Processes: entries, ...(pids.length > MAX_PROCESSES ? { Truncated: true } : {}) };
  },
});
