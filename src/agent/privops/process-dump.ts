// `process.dump`: every readable region of a process (per /proc/PID/maps) into one archive, up to maxBytes.
// Must never exceed maxBytes of region content, nor stop at an unreadable region (it is listed as skipped instead).
// This slice holds the archive in memory (the sealed result is one message); streaming in chunks is still to do.
import { UserError } from '../../shared/errors.ts';
import { integerParameter, onlyParameters } from './parameters.ts';
import { defineOperation } from './operation.ts';
import { describeRegion, MAX_PID, openProcessMemory, readMemoryMap } from './process-maps.ts';

export const DEFAULT_DUMP_BYTES = 64 * 1024 * 1024;
export const MAX_DUMP_BYTES = 256 * 1024 * 1024;
/** The archive's first bytes; see PROCESS_DUMP_FORMAT. */
export const PROCESS_DUMP_MAGIC = 'TPDUMP1\n';
/**
 * The archive (Result.Archive, base64): the 8 bytes "TPDUMP1\n", then for each region dumped a 4-byte big-endian
 * length N, N bytes of UTF-8 JSON {Start, End, Perms, Path, Length} (addresses hex strings; Length the byte count that
 * follows, less than End-Start when the region was cut short by maxBytes or a page that could not be read), then Length bytes.
 */
export const PROCESS_DUMP_FORMAT = 'trustplane-process-dump-1';

const CHUNK_BYTES = 1024 * 1024;

interface DumpInput { pid: number; maxBytes: number }

export const processDumpOperation = defineOperation({
  name: 'process.dump',
  description: 'every readable memory region of a process in one archive (parameters: pid, maxBytes (default 64 MiB, at most 256 MiB))',
  parse(parameters): DumpInput {
    onlyParameters('process.dump', parameters, ['pid', 'maxBytes']);
    if (parameters.pid === undefined) throw new UserError('PrivopInvalidParameters', 'process.dump: parameter pid is required.');
    return {
      pid: integerParameter('process.dump', parameters, 'pid', { min: 1, max: MAX_PID, fallback: 0 }),
      maxBytes: integerParameter('process.dump', parameters, 'maxBytes', { min: 1, max: MAX_DUMP_BYTES, fallback: DEFAULT_DUMP_BYTES }),
    };
  },
  async run({ pid, maxBytes }: DumpInput) {
    const regions = await readMemoryMap(pid);
    const memory = await openProcessMemory(pid);
    const parts: Buffer[] = [Buffer.from(PROCESS_DUMP_MAGIC)];
    const dumped: Array<ReturnType<typeof describeRegion> & { Length: number }> = [];
    const skipped: Array<ReturnType<typeof describeRegion> & { Reason: string }> = [];
    let total = 0;
    let truncated = false;
    try {
      for (const region of regions) {
        if (!region.perms.startsWith('r')) continue;
        if (total >= maxBytes) { truncated = true; break; }
        const size = region.end - region.start;
        const wanted = Number(size < BigInt(maxBytes - total) ? size : BigInt(maxBytes - total));
        const chunks: Buffer[] = [];
        let length = 0;
        let reason: string | undefined;
        while (length < wanted) {
          const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, wanted - length));
          let bytesRead: number;
          try {
            bytesRead = await memory.read(region.start + BigInt(length), chunk);
          } catch (error) {
            reason = (error as NodeJS.ErrnoException).code ?? 'error';
            break;
          }
          chunks.push(chunk.subarray(0, bytesRead));
          length += bytesRead;
          if (bytesRead < chunk.length) break;
        }
        if (length === 0) {
          skipped.push({ ...describeRegion(region), Reason: reason ?? 'unreadable' });
          continue;
        }
        const header = Buffer.from(JSON.stringify({ ...describeRegion(region), Length: length }));
        const prefix = Buffer.alloc(4);
        prefix.writeUInt32BE(header.length);
        parts.push(prefix, header, ...chunks);
        dumped.push({ ...describeRegion(region), Length: length });
        total += length;
        if (BigInt(wanted) < size) truncated = true;
      }
    } finally {
      await memory.close();
    }
    return { Pid: pid, Format: PROCESS_DUMP_FORMAT, Bytes: total, MaxBytes: maxBytes, Truncated: truncated, Regions: dumped, Skipped: skipped,
      Archive: Buffer.concat(parts).toString('base64') };
  },
});
