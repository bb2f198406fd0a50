// `file.read`: up to 1 MiB of one regular file from an offset.
// Must never read more than MAX_FILE_READ_BYTES per request, nor from anything but a regular file.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { UserError } from '../../shared/errors.ts';
import { integerParameter, onlyParameters, pathParameter } from './parameters.ts';
import { defineOperation } from './operation.ts';

export const MAX_FILE_READ_BYTES = 1024 * 1024;

interface FileReadInput { path: string; offset: number; length: number }

export const fileReadOperation = defineOperation({
  name: 'file.read',
  description: 'bytes of a regular file (parameters: path, offset (default 0), length (default and at most 1 MiB))',
  parse(parameters): FileReadInput {
    onlyParameters('file.read', parameters, ['path', 'offset', 'length']);
    return {
      path: pathParameter('file.read', parameters, 'path'),
      offset: integerParameter('file.read', parameters, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 }),
      length: integerParameter('file.read', parameters, 'length', { min: 1, max: MAX_FILE_READ_BYTES, fallback: MAX_FILE_READ_BYTES }),
    };
  },
  async run({ path, offset, length }: FileReadInput) {
    // O_NONBLOCK: opening a FIFO must not hang before fstat refuses it.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
      throw new UserError('FileUnavailable', `Cannot open the file (${error.code ?? 'error'}).`);
    });
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new UserError('NotARegularFile', 'The path is not a regular file.');
      const buffer = Buffer.alloc(Math.max(0, Math.min(length, info.size - offset)));
      const { bytesRead } = buffer.length ? await handle.read(buffer, 0, buffer.length, offset) : { bytesRead: 0 };
      return { Path: path, Size: info.size, Offset: offset, Length: bytesRead, Eof: offset + bytesRead >= info.size,
        Content: buffer.subarray(0, bytesRead).toString('base64') };
    } finally {
      await handle.close();
    }
  },
});
