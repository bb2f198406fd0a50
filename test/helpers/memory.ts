// Searches a live process's memory (through /proc/PID/maps and /proc/PID/mem) for a byte string:
// how tests prove that sealing leaves no key behind. Linux only; the test process must be allowed
// to read the child's memory (it is its parent).
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

const CHUNK = 16 * 1024 * 1024;

export function processMemoryContains(pid: number, needle: Buffer): boolean {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter(Boolean);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const buffer = Buffer.alloc(CHUNK + needle.length);
  try {
    for (const line of maps) {
      const [range, perms, , , , name] = line.split(/\s+/);
      if (!perms?.startsWith('r') || name === '[vvar]' || name === '[vsyscall]') continue;
      const [startHex, endHex] = range!.split('-');
      const start = BigInt(`0x${startHex}`);
      const end = BigInt(`0x${endHex}`);
      let carried = 0;
      for (let at = start; at < end; at += BigInt(CHUNK)) {
        const length = Number(end - at < BigInt(CHUNK) ? end - at : BigInt(CHUNK));
        let read: number;
        try {
          read = readSync(fd, buffer, carried, length, at);
        } catch {
          break; // guard pages and the like cannot be read
        }
        const window = buffer.subarray(0, carried + read);
        if (window.indexOf(needle) !== -1) return true;
        carried = Math.min(needle.length - 1, window.length);
        window.copyWithin(0, window.length - carried);
      }
    }
    return false;
  } finally {
    buffer.fill(0);
    closeSync(fd);
  }
}
