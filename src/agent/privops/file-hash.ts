// `file.hash`: the SHA-256 and size of one regular file.
// Must never hash what is not a regular file (a device or FIFO would never end).
import { stat } from 'node:fs/promises';
import { UserError } from '../../shared/errors.ts';
import { measureFile } from '../operational.ts';
import { onlyParameters, pathParameter } from './parameters.ts';
import { defineOperation } from './operation.ts';

export const fileHashOperation = defineOperation({
  name: 'file.hash',
  description: 'SHA-256 and size of a regular file (parameter: path)',
  parse(parameters) {
    onlyParameters('file.hash', parameters, ['path']);
    return { path: pathParameter('file.hash', parameters, 'path') };
  },
  async run({ path }: { path: string }) {
    const before = await stat(path).catch((error: NodeJS.ErrnoException) => {
      throw new UserError('FileUnavailable', `Cannot stat the file (${error.code ?? 'error'}).`);
    });
    if (!before.isFile()) throw new UserError('NotARegularFile', 'The path is not a regular file.');
    const measured = await measureFile(path);
    return { Path: path, Size: before.size, Sha256: measured.Sha256 };
  },
});
