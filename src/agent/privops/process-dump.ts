// `process.dump`: every readable region of a process (per /proc/PID/maps) into one archive, up to maxBytes, streamed.
// Must never exceed maxBytes of region content, hold more than one piece of it at a time, nor stop at an unreadable region
// (it is listed as skipped instead).
import { UserError } from '../../shared/errors.ts';
import { integerParameter, onlyParameters } from './parameters.ts';
import { defineOperation, StreamedOperationResult } from './operation.ts';
import { describeRegion, MAX_PID, openProcessMemory, readMemoryMap } from './process-maps.ts';

export const DEFAULT_DUMP_BYTES = 64 * 1024 * 1024;
export const MAX_DUMP_BYTES = 64 * 1024 ** 3;
/** The archive's first bytes; see PROCESS_DUMP_FORMAT. */
export const PROCESS_DUMP_MAGIC = 'TPDUMP1\n';
/**
 * The archive (the result's bulk content): the 8 bytes "TPDUMP1\n", then for each piece of a region dumped (a region is
 * read in pieces of up to 1 MiB, each written as soon as it is read) a 4-byte big-endian length N, N bytes of UTF-8 JSON
 * {Start, End, Perms, Path, Length} (addresses hex strings: Start the piece's first address, End the end of the range it
 * was read from; Length the byte count that follows, less than End-Start when the read was cut short by maxBytes or a page
 * that could not be read), then Length bytes. Result.Regions sums the pieces per region.
 */
export const PROCESS_DUMP_FORMAT = 'trustplane-process-dump-1';

const CHUNK_BYTES = 1024 * 1024;

interface DumpInput { pid: number; maxBytes: number }

export const processDumpOperation = defineOperation({
  name: 'process.dump',
  description: 'every readable memory region of a process in one archive, streamed (parameters: pid, maxBytes (default 64 MiB, at most 64 GiB))',
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
    const dumped: Array<ReturnType<typeof describeRegion> & { Length: number }> = [];
    const skipped: Array<ReturnType<typeof describeRegion> & { Reason: string }> = [];
    let total = 0;
    let truncated = false;
    async function* archive(): AsyncGenerator<Buffer> {
      // Opened here, not before: a stream that is never read leaves nothing open.
      const memory = await openProcessMemory(pid);
      try {
        yield Buffer.from(PROCESS_DUMP_MAGIC);
        for (const region of regions) {
          if (!region.perms.startsWith('r')) continue;
          if (total >= maxBytes) { truncated = true; break; }
          const size = region.end - region.start;
          const wanted = Number(size < BigInt(maxBytes - total) ? size : BigInt(maxBytes - total));
          let length = 0;
          let reason: string | undefined;
          while (length < wanted) {
            const start = region.start + BigInt(length);
            const piece = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, wanted - length));
            let bytesRead: number;
            try {
              bytesRead = await memory.read(start, piece);
            } catch (error) {
              reason = (error as NodeJS.ErrnoException).code ?? 'error';
              break;
            }
            if (bytesRead === 0) break;
            const header = Buffer.from(JSON.stringify({ ...describeRegion(region), Start: `0x${start.toString(16)}`,
              End: `0x${(start + BigInt(piece.length)).toString(16)}`, Length: bytesRead }));
            const prefix = Buffer.alloc(4);
            prefix.writeUInt32BE(header.length);
            yield Buffer.concat([prefix, header]);
            yield piece.subarray(0, bytesRead);
            length += bytesRead;
            if (bytesRead < piece.length) break;
          }
          if (length === 0) {
            skipped.push({ ...describeRegion(region), Reason: reason ?? 'unreadable' });
            continue;
          }
          dumped.push({ ...describeRegion(region), Length: length });
          total += length;
          if (BigInt(wanted) < size) truncated = true;
        }
      } finally {
        await memory.close();
      }
    }
    return new StreamedOperationResult(archive(),
      () => ({ Pid: pid, Format: PROCESS_DUMP_FORMAT, Bytes: total, MaxBytes: maxBytes, Truncated: truncated, Regions: dumped, Skipped: skipped }));
  },
});
