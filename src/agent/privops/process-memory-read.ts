// `process.memory.read`: up to 1 MiB of a process's memory at an address, via /proc/PID/mem.
// Must never read outside one mapped region, nor more than MAX_MEMORY_READ_BYTES per request.
import { UserError } from '../../shared/errors.ts';
import { addressParameter, integerParameter, onlyParameters } from './parameters.ts';
import { defineOperation } from './operation.ts';
import { describeRegion, MAX_PID, openProcessMemory, readMemoryMap } from './process-maps.ts';

export const MAX_MEMORY_READ_BYTES = 1024 * 1024;

interface MemoryReadInput { pid: number; address: bigint; length: number }

export const processMemoryReadOperation = defineOperation({
  name: 'process.memory.read',
  description: 'bytes of a process\'s memory (parameters: pid, address (hex 0x… or decimal), length (at most 1 MiB)); needs ptrace rights over the process',
  parse(parameters): MemoryReadInput {
    onlyParameters('process.memory.read', parameters, ['pid', 'address', 'length']);
    if (parameters.pid === undefined) throw new UserError('PrivopInvalidParameters', 'process.memory.read: parameter pid is required.');
    if (parameters.length === undefined) throw new UserError('PrivopInvalidParameters', 'process.memory.read: parameter length is required.');
    return {
      pid: integerParameter('process.memory.read', parameters, 'pid', { min: 1, max: MAX_PID, fallback: 0 }),
      address: addressParameter('process.memory.read', parameters, 'address'),
      length: integerParameter('process.memory.read', parameters, 'length', { min: 1, max: MAX_MEMORY_READ_BYTES, fallback: MAX_MEMORY_READ_BYTES }),
    };
  },
  async run({ pid, address, length }: MemoryReadInput) {
    const regions = await readMemoryMap(pid);
    const region = regions.find((candidate) => candidate.start <= address && address < candidate.end);
    if (!region) throw new UserError('AddressNotMapped', `Address 0x${address.toString(16)} is not mapped in process ${pid}.`);
    if (!region.perms.startsWith('r')) {
      throw new UserError('AddressNotReadable', `Address 0x${address.toString(16)} is in a region of process ${pid} mapped without read permission (${region.perms}).`);
    }
    // One region only: the next one may be unreadable or absent, and a request names one place.
    const available = region.end - address;
    const buffer = Buffer.alloc(available < BigInt(length) ? Number(available) : length);
    const memory = await openProcessMemory(pid);
    try {
      const bytesRead = await memory.read(address, buffer).catch((error: NodeJS.ErrnoException) => {
        throw new UserError('MemoryUnreadable', `Cannot read process ${pid}'s memory at 0x${address.toString(16)} (${error.code ?? 'error'}).`);
      });
      return { Pid: pid, Address: `0x${address.toString(16)}`, Requested: length, Length: bytesRead, Region: describeRegion(region),
        Content: buffer.subarray(0, bytesRead).toString('base64') };
    } finally {
      await memory.close();
    }
  },
});
