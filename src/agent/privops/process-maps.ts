// The memory map of a process as /proc/PID/maps states it, and an open handle on /proc/PID/mem.
// Must never write to a process's memory: /proc/PID/mem is opened read-only.
import { close, open, read } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { UserError } from '../../shared/errors.ts';

/** The largest pid Linux can hand out (PID_MAX_LIMIT on 64-bit). */
export const MAX_PID = 4_194_304;

export interface MemoryRegion { start: bigint; end: bigint; perms: string; offset: bigint; path: string }

const hex = (value: bigint) => `0x${value.toString(16)}`;

/** A region as results show it (addresses in hex: they may not fit a JSON number). */
export function describeRegion(region: MemoryRegion): { Start: string; End: string; Perms: string; Path: string } {
  return { Start: hex(region.start), End: hex(region.end), Perms: region.perms, Path: region.path };
}

const unavailable = (pid: number, what: string, error: NodeJS.ErrnoException) => error.code === 'ENOENT' || error.code === 'ESRCH'
  ? new UserError('ProcessNotFound', `No process ${pid} on this host.`)
  : new UserError('ProcessUnavailable', `Cannot ${what} of process ${pid} (${error.code ?? 'error'}: reading another user's process needs root).`);

export async function readMemoryMap(pid: number): Promise<MemoryRegion[]> {
  const text = await readFile(`/proc/${pid}/maps`, 'utf8').catch((error: NodeJS.ErrnoException) => { throw unavailable(pid, 'read the memory map', error); });
  const regions: MemoryRegion[] = [];
  for (const line of text.split('\n')) {
    // start-end perms offset dev inode [path]; the path may contain spaces.
    const match = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) \S+ \d+ *(.*)$/.exec(line);
    if (!match) continue;
    regions.push({ start: BigInt(`0x${match[1]}`), end: BigInt(`0x${match[2]}`), perms: match[3], offset: BigInt(`0x${match[4]}`), path: match[5] });
  }
  return regions;
}

/** A read-only descriptor on /proc/PID/mem (callback fs: only it takes a bigint position; FileHandle.read ignores one). */
export interface ProcessMemory { read(address: bigint, buffer: Buffer): Promise<number>; close(): Promise<void> }

const openFile = promisify(open);
const closeFile = promisify(close);
const readAt = (fd: number, buffer: Buffer, offset: number, length: number, position: bigint) => new Promise<number>((resolve, reject) => {
  read(fd, buffer, offset, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead)));
});

export async function openProcessMemory(pid: number): Promise<ProcessMemory> {
  const fd = await openFile(`/proc/${pid}/mem`, 'r').catch((error: NodeJS.ErrnoException) => { throw unavailable(pid, 'open the memory', error); });
  return {
    /** Reads into `buffer` from `address`; the count read, short when a page past the first cannot be read. Throws when the first cannot. */
    async read(address, buffer) {
      let done = 0;
      while (done < buffer.length) {
        let bytesRead: number;
        try {
          bytesRead = await readAt(fd, buffer, done, buffer.length - done, address + BigInt(done));
        } catch (error) {
          if (done > 0) break;
          throw error;
        }
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    },
    close: () => closeFile(fd),
  };
}
