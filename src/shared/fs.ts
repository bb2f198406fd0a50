// Durable file writes for the few files trustplane keeps outside its store, and directory fsync.
// Must never leave a half-written file: write a temporary file, fsync it, rename, fsync the folder.
import { close, closeSync, fsync, fsyncSync, open, openSync, renameSync, writeSync } from 'node:fs';
import { open as openFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';

// A directory cannot be opened for fsync on Windows (nor does it need to be for a rename to last).
const DIRECTORIES_SYNC = process.platform !== 'win32';

/** fsync of a directory, so a file created or renamed in it stays after a power loss. */
export function syncDirectorySync(path: string): void {
  if (!DIRECTORIES_SYNC) return;
  const folder = openSync(path, 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}

/** syncDirectorySync on libuv's thread pool, off the event loop. */
export function syncDirectory(path: string): Promise<void> {
  return new Promise((done, fail) => {
    if (!DIRECTORIES_SYNC) { done(); return; }
    open(path, 'r', (openError, fd) => {
      if (openError) { fail(openError); return; }
      fsync(fd, (syncError) => close(fd, () => (syncError ? fail(syncError) : done())));
    });
  });
}

export function writeFileDurably(path: string, content: string | Buffer, mode = 0o600): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = openSync(temporary, 'wx', mode);
  try {
    writeSync(file, typeof content === 'string' ? Buffer.from(content) : content);
    fsyncSync(file);
  } finally {
    closeSync(file);
  }
  renameSync(temporary, path);
  syncDirectorySync(dirname(path));
}

/**
 * Writes a file that appears whole or not at all, from content too large to hold: `write` fills a temporary file beside
 * `path` (created with `mode`), which is then fsynced and renamed over `path`; if `write` or the sync fails it is removed.
 */
export async function writeFileAtomically(path: string, write: (file: FileHandle) => Promise<void>, mode = 0o600): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await openFile(temporary, 'wx', mode);
  try {
    try {
      await write(file);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(dirname(path));
}

/** Writes all of `bytes` at the handle's position (one write may take fewer bytes than asked). */
export async function writeAll(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
}

/**
 * A sink that writes to an open handle and leaves it open, so the caller can fsync and close it (a FileHandle's own
 * write stream with autoClose off holds a reference that makes close() wait forever). `bufferBytes` bounds write-behind.
 */
export function handleWriter(handle: FileHandle, bufferBytes: number): Writable {
  return new Writable({ highWaterMark: bufferBytes, write(chunk: Buffer, _encoding, done) { writeAll(handle, chunk).then(() => done(), done); } });
}
