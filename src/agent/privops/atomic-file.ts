// Replacing a file atomically for patch.apply and patch.rollback: temp file in the same directory, fsync, rename, fsync the directory.
// Must never leave a half-written file at the target path, nor follow a symbolic link at it.
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes, sha256Hex } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { syncDirectory } from '../../shared/fs.ts';

/** The largest file patch.apply will read to hash and back up. */
const MAX_PATCH_TARGET_BYTES = 64 * 1024 * 1024;

export interface CurrentFile { content: Buffer; sha256: string; mode: number; uid: number; gid: number }

/** The file's bytes, hash and ownership; refuses a symbolic link, a non-regular file and one over the cap. */
export async function readCurrentFile(path: string): Promise<CurrentFile> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    throw new UserError('FileUnavailable', error.code === 'ELOOP' ? 'The path is a symbolic link; patch the file it points to.'
      : `Cannot open the file (${error.code ?? 'error'}).`);
  });
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UserError('NotARegularFile', 'The path is not a regular file.');
    if (info.size > MAX_PATCH_TARGET_BYTES) throw new UserError('FileTooLarge', `The file is larger than ${MAX_PATCH_TARGET_BYTES} bytes.`);
    const content = await handle.readFile();
    return { content, sha256: sha256Hex(content), mode: info.mode & 0o7777, uid: info.uid, gid: info.gid };
  } finally {
    await handle.close();
  }
}

/**
 * Writes `content` to a temp file beside `path` with the given mode (and owner, when this process may set it), syncs it,
 * calls `beforeRename` (a last check; throwing there leaves the target untouched) and renames it over `path`.
 */
export async function replaceFileAtomically(path: string, content: Buffer, attributes: { mode: number; uid?: number; gid?: number },
  beforeRename: () => Promise<void> = async () => {}): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.trustplane-${randomBytes(6).toString('hex')}`);
  const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    .catch((error: NodeJS.ErrnoException) => { throw new UserError('FileUnavailable', `Cannot create a file beside the target (${error.code ?? 'error'}).`); });
  let renamed = false;
  try {
    try {
      await handle.writeFile(content);
      if (attributes.uid !== undefined && attributes.gid !== undefined && process.getuid?.() === 0) await handle.chown(attributes.uid, attributes.gid);
      // After chown: chown clears set-id bits.
      await handle.chmod(attributes.mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await beforeRename();
    await rename(temp, path);
    renamed = true;
    await syncDirectory(dirname(path));
  } finally {
    if (!renamed) await unlink(temp).catch(() => {});
  }
}
