// `file.read`: bytes of one regular file from an offset, streamed as the result's bulk content.
// Must never read more than the length asked for (at most MAX_FILE_READ_BYTES), hold more than one piece of it at a time,
// nor read from anything but a regular file.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { UserError } from '../../shared/errors.ts';
import { integerParameter, onlyParameters, pathParameter } from './parameters.ts';
import { defineOperation, StreamedOperationResult } from './operation.ts';

export const DEFAULT_FILE_READ_BYTES = 1024 * 1024;
export const MAX_FILE_READ_BYTES = 64 * 1024 ** 3;
const PIECE_BYTES = 1024 * 1024;

interface FileReadInput { path: string; offset: number; length: number }

export const fileReadOperation = defineOperation({
  name: 'file.read',
  description: 'bytes of a regular file, streamed (parameters: path, offset (default 0), length (default 1 MiB, at most 64 GiB))',
  parse(parameters): FileReadInput {
    onlyParameters('file.read', parameters, ['path', 'offset', 'length']);
    return {
      path: pathParameter('file.read', parameters, 'path'),
      offset: integerParameter('file.read', parameters, 'offset', { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 }),
      length: integerParameter('file.read', parameters, 'length', { min: 1, max: MAX_FILE_READ_BYTES, fallback: DEFAULT_FILE_READ_BYTES }),
    };
  },
  async run({ path, offset, length }: FileReadInput) {
    // O_NONBLOCK: opening a FIFO must not hang before fstat refuses it.
    const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
      throw new UserError('FileUnavailable', `Cannot open the file (${error.code ?? 'error'}).`);
    });
    let size: number;
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new UserError('NotARegularFile', 'The path is not a regular file.');
      size = info.size;
    } catch (error) {
      await handle.close();
      throw error;
    }
    let read = 0;
    async function* content(): AsyncGenerator<Buffer> {
      try {
        const wanted = Math.max(0, Math.min(length, size - offset));
        while (read < wanted) {
          const piece = Buffer.allocUnsafe(Math.min(PIECE_BYTES, wanted - read));
          const { bytesRead } = await handle.read(piece, 0, piece.length, offset + read);
          // The file shrank while being read: what was there is the result.
          if (bytesRead === 0) break;
          read += bytesRead;
          yield piece.subarray(0, bytesRead);
        }
      } finally {
        await handle.close();
      }
    }
    return new StreamedOperationResult(content(), () => ({ Path: path, Size: size, Offset: offset, Length: read, Eof: offset + read >= size }));
  },
});
