// `logs.collect`: the last N lines of a log file, or of each log file in a directory, under the roots this host allows.
// Must never read outside the allowed roots (symbolic links are resolved before the check), nor more than the byte caps.
import { constants } from 'node:fs';
import { open, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../shared/errors.ts';
import { integerParameter, onlyParameters, pathParameter, stringParameter } from './parameters.ts';
import { defineOperation, type PrivilegedOperationDefinition } from './operation.ts';
import { within } from './protected-resources.ts';

/** Always allowed; the agent's --privop-log-root adds more (the host owner decides, not the request). */
export const DEFAULT_LOG_ROOTS = ['/var/log'];
export const MAX_LOG_LINES = 100_000;
export const DEFAULT_LOG_LINES = 1000;
const MAX_FILE_TAIL_BYTES = 16 * 1024 * 1024;
const MAX_TOTAL_BYTES = 64 * 1024 * 1024;
const MAX_FILES = 1000;
const CHUNK_BYTES = 64 * 1024;
const COMPRESSED = /\.(gz|xz|bz2|zst|lz4|zip)$/;

interface LogsInput { path: string; lines: number; since?: Date }

interface CollectedFile { Path: string; Size: number; ModifiedAt: string; Lines: number; Truncated: boolean; Text: string }

const refused = (message: string) => new UserError('LogPathNotAllowed', message, 403);


/** The last `lines` lines of an open file (and whether the byte cap cut them short). */
async function tail(handle: Awaited<ReturnType<typeof open>>, size: number, lines: number, maxBytes: number) {
  const chunks: Buffer[] = [];
  let position = size;
  let newlines = 0;
  let bytes = 0;
  // A final newline ends the last line; it does not start another.
  let skipFinal = true;
  while (position > 0 && bytes < maxBytes) {
    const length = Math.min(CHUNK_BYTES, position, maxBytes - bytes);
    position -= length;
    const chunk = Buffer.alloc(length);
    const { bytesRead } = await handle.read(chunk, 0, length, position);
    chunks.unshift(chunk.subarray(0, bytesRead));
    bytes += bytesRead;
    for (let index = bytesRead - 1; index >= 0; index--) {
      if (chunk[index] !== 0x0a) continue;
      if (skipFinal && position + index === size - 1) continue;
      newlines++;
      if (newlines === lines) {
        chunks[0] = chunks[0].subarray(index + 1);
        return { text: Buffer.concat(chunks), truncated: false };
      }
    }
    skipFinal = false;
  }
  return { text: Buffer.concat(chunks), truncated: position > 0 };
}

export function createLogsCollectOperation(options: { roots?: string[] } = {}): PrivilegedOperationDefinition<unknown> {
  const roots = [...DEFAULT_LOG_ROOTS, ...(options.roots ?? [])];
  return defineOperation({
    name: 'logs.collect',
    description: `the last lines of a log file or of each file in a log directory (parameters: path, lines (default ${DEFAULT_LOG_LINES}, at most ${MAX_LOG_LINES}), `
      + 'since (ISO time: skip files not modified since)); only under /var/log and the agent\'s --privop-log-root directories',
    parse(parameters): LogsInput {
      onlyParameters('logs.collect', parameters, ['path', 'lines', 'since']);
      const since = stringParameter('logs.collect', parameters, 'since', { pattern: /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/,
        what: 'an ISO 8601 time with a zone', maxLength: 40 });
      if (since !== undefined && !Number.isFinite(Date.parse(since))) {
        throw new UserError('PrivopInvalidParameters', 'logs.collect: parameter since must be a valid time.');
      }
      return {
        path: pathParameter('logs.collect', parameters, 'path'),
        lines: integerParameter('logs.collect', parameters, 'lines', { min: 1, max: MAX_LOG_LINES, fallback: DEFAULT_LOG_LINES }),
        ...(since === undefined ? {} : { since: new Date(since) }),
      };
    },
    async run({ path, lines, since }: LogsInput) {
      const allowed = (await Promise.all(roots.map((root) => realpath(root).catch(() => undefined)))).filter((root): root is string => !!root);
      const resolve = async (candidate: string) => {
        const real = await realpath(candidate).catch((error: NodeJS.ErrnoException) => {
          throw new UserError('FileUnavailable', `Cannot resolve the path (${error.code ?? 'error'}).`);
        });
        if (!allowed.some((root) => within(real, root))) {
          throw refused(`The path is not under an allowed log root (${roots.join(', ')}); the agent's --privop-log-root adds roots.`);
        }
        return real;
      };
      const real = await resolve(path);
      const top = await open(real, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
        throw new UserError('FileUnavailable', `Cannot open the path (${error.code ?? 'error'}).`);
      });
      const topInfo = await top.stat().finally(() => top.close());
      let candidates: string[];
      if (topInfo.isDirectory()) {
        const entries = await readdir(real, { withFileTypes: true });
        candidates = entries.filter((entry) => entry.isFile() || entry.isSymbolicLink()).map((entry) => join(real, entry.name)).sort();
      } else if (topInfo.isFile()) {
        candidates = [real];
      } else {
        throw new UserError('NotARegularFile', 'The path is neither a regular file nor a directory.');
      }

      const files: CollectedFile[] = [];
      const skipped: Array<{ Path: string; Reason: string }> = [];
      let total = 0;
      let truncated = false;
      for (const candidate of candidates) {
        if (files.length >= MAX_FILES || total >= MAX_TOTAL_BYTES) { truncated = true; break; }
        if (COMPRESSED.test(candidate)) { skipped.push({ Path: candidate, Reason: 'compressed' }); continue; }
        let resolved: string;
        try {
          resolved = await resolve(candidate);
        } catch (error) {
          skipped.push({ Path: candidate, Reason: error instanceof UserError ? error.code : 'unavailable' });
          continue;
        }
        const handle = await open(resolved, constants.O_RDONLY | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => error);
        if (!('stat' in handle)) { skipped.push({ Path: candidate, Reason: handle.code ?? 'unavailable' }); continue; }
        try {
          const info = await handle.stat();
          if (!info.isFile()) { skipped.push({ Path: candidate, Reason: 'not a regular file' }); continue; }
          if (since && info.mtime < since) { skipped.push({ Path: candidate, Reason: 'not modified since' }); continue; }
          const { text, truncated: cut } = await tail(handle, info.size, lines, Math.min(MAX_FILE_TAIL_BYTES, MAX_TOTAL_BYTES - total));
          total += text.length;
          const decoded = text.toString('utf8');
          files.push({ Path: candidate, Size: info.size, ModifiedAt: info.mtime.toISOString(),
            Lines: decoded === '' ? 0 : decoded.split('\n').length - (decoded.endsWith('\n') ? 1 : 0), Truncated: cut, Text: decoded });
        } finally {
          await handle.close();
        }
      }
      return { Path: path, Lines: lines, ...(since ? { Since: since.toISOString() } : {}), Files: files, Skipped: skipped, Truncated: truncated };
    },
  });
}
