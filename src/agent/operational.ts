// The agent's operational parameters for attestation: listening ports, kernel modules, running executables' hashes and login users, read from /proc and /etc.
// Must never shell out, follow a process's file anywhere but through /proc, or send an unbounded report.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, readlink, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { UserError } from '../shared/errors.ts';

/** What the agent reports; src/services/attest/domain/operational.ts has the same shape (ReportedOperational). */
export interface OperationalReport {
  ListeningPorts: string[];
  Modules: string[];
  Executables: Array<{ Path: string; Sha256: string }>;
  Users: string[];
  /** Present (true) when a list hit its cap, so the verifier knows the report is incomplete. */
  Truncated?: boolean;
}

export interface MeasuredFile {
  Path: string;
  Sha256: string;
}

// Keep these in step with the verifier's parser (src/services/attest/domain/operational.ts), which
// refuses anything larger: a report the verifier rejects is worse than a truncated one.
const MAX_LIST_ENTRIES = 2048;
const MAX_STRING_LENGTH = 4096;
/** The hard ceiling on executables; equal to the hash cache so a full report can come from the cache. */
export const MAX_EXECUTABLES = 2000;
export const DEFAULT_MAX_EXECUTABLES = 500;

const HASH_CACHE_ENTRIES = 2000;
const READ_CHUNK_BYTES = 64 * 1024;

/** Collects the current operational parameters; processes that vanish or deny access are skipped. */
export async function collectOperational(options: { maxExecutables?: number } = {}): Promise<OperationalReport> {
  const maxExecutables = options.maxExecutables ?? DEFAULT_MAX_EXECUTABLES;
  if (!Number.isSafeInteger(maxExecutables) || maxExecutables < 0 || maxExecutables > MAX_EXECUTABLES) {
    throw new UserError('ValidationException', `maxExecutables must be an integer from 0 to ${MAX_EXECUTABLES}.`);
  }
  const [ports, modules, executables, users] = await Promise.all([
    listListeningPorts(), listModules(), listExecutables(maxExecutables), listLoginUsers(),
  ]);
  const cappedPorts = capList(ports);
  const cappedModules = capList(modules);
  const cappedUsers = capList(users);
  const report: OperationalReport = {
    ListeningPorts: cappedPorts.values,
    Modules: cappedModules.values,
    Executables: executables.values,
    Users: cappedUsers.values,
  };
  if (cappedPorts.truncated || cappedModules.truncated || executables.truncated || cappedUsers.truncated) report.Truncated = true;
  return report;
}

/** Streaming sha256 of one file (for boot-chain measurements); the error names the path. */
export async function measureFile(path: string): Promise<MeasuredFile> {
  let handle: FileHandle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new UserError('MeasurementException', `Cannot measure '${path}': ${describeFsError(error)}.`);
  }
  try {
    return { Path: path, Sha256: await hashHandle(handle) };
  } catch (error) {
    throw new UserError('MeasurementException', `Cannot measure '${path}': ${describeFsError(error)}.`);
  } finally {
    await handle.close();
  }
}

// ---- listening sockets ---------------------------------------------------------------------

const TCP_LISTEN = '0A';

async function listListeningPorts(): Promise<string[]> {
  const found = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    await eachSocket(file, (socket) => {
      if (socket.state === TCP_LISTEN && socket.localPort !== 0) found.add(`tcp/${socket.localPort}`);
    });
  }
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    // UDP has no listen state: a bound socket with no peer (remote port 0) is the one that accepts datagrams.
    await eachSocket(file, (socket) => {
      if (socket.remotePort === 0 && socket.localPort !== 0) found.add(`udp/${socket.localPort}`);
    });
  }
  return [...found].sort(comparePorts);
}

interface SocketLine { localPort: number; remotePort: number; state: string }

/** Reads a /proc/net socket table line by line: on a busy server it can hold many thousand connections. */
async function eachSocket(file: string, visit: (socket: SocketLine) => void): Promise<void> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  // Without IPv6 (or in some sandboxes) the *6 tables do not exist; that is no sockets, not a failure.
  const opened = await new Promise<boolean>((resolve, reject) => {
    stream.once('open', () => resolve(true));
    stream.once('error', (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? resolve(false) : reject(error)));
  });
  if (!opened) return;
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let header = true;
  for await (const line of lines) {
    if (header) { header = false; continue; }
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const localPort = portOf(fields[1]);
    const remotePort = portOf(fields[2]);
    if (localPort === undefined || remotePort === undefined) continue;
    visit({ localPort, remotePort, state: fields[3].toUpperCase() });
  }
}

function portOf(address: string | undefined): number | undefined {
  const hex = address?.split(':')[1];
  if (hex === undefined || !/^[0-9A-Fa-f]{1,4}$/.test(hex)) return undefined;
  return Number.parseInt(hex, 16);
}

/** tcp before udp, then by port number, so the report reads naturally and compares stably. */
function comparePorts(a: string, b: string): number {
  const [protoA, portA] = a.split('/');
  const [protoB, portB] = b.split('/');
  return protoA === protoB ? Number(portA) - Number(portB) : protoA < protoB ? -1 : 1;
}

// ---- kernel modules ------------------------------------------------------------------------

async function listModules(): Promise<string[]> {
  let text: string;
  try {
    text = await readFile('/proc/modules', 'utf8');
  } catch (error) {
    // Containers and kernels built without module support have no /proc/modules.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const name = line.split(' ', 1)[0];
    if (name) names.add(capText(name));
  }
  return [...names].sort();
}

// ---- running executables -------------------------------------------------------------------

interface CachedHash { key: string; sha256: string }

/**
 * Hashes keyed by path and file identity. ctime joins the brief's (dev, ino, size, mtime) because
 * mtime can be set back with utimes(2) after a same-size rewrite; ctime cannot be set by a user.
 * A Map keeps insertion order, so re-inserting on use makes the first key the least recently used.
 */
const hashCache = new Map<string, CachedHash>();

function cachedHash(path: string, key: string): string | undefined {
  const entry = hashCache.get(path);
  if (!entry || entry.key !== key) return undefined;
  hashCache.delete(path);
  hashCache.set(path, entry);
  return entry.sha256;
}

function rememberHash(path: string, key: string, sha256: string): void {
  hashCache.delete(path);
  hashCache.set(path, { key, sha256 });
  while (hashCache.size > HASH_CACHE_ENTRIES) {
    const oldest = hashCache.keys().next().value;
    if (oldest === undefined) break;
    hashCache.delete(oldest);
  }
}

async function listExecutables(max: number): Promise<{ values: MeasuredFile[]; truncated: boolean }> {
  const pids = (await readdir('/proc')).filter((name) => /^[0-9]+$/.test(name)).sort((a, b) => Number(a) - Number(b));
  const byPath = new Map<string, MeasuredFile>();
  let truncated = false;
  for (const pid of pids) {
    let path: string;
    try {
      path = capText(await readlink(`/proc/${pid}/exe`));
    } catch {
      continue; // a kernel thread, a process that exited, or one we may not inspect
    }
    // Unique by path: the first process seen speaks for it, and later ones cost no I/O.
    if (byPath.has(path)) continue;
    if (byPath.size >= max) { truncated = true; break; }
    const sha256 = await hashProcessExecutable(pid, path);
    if (sha256 !== undefined) byPath.set(path, { Path: path, Sha256: sha256 });
  }
  const values = [...byPath.values()].sort((a, b) => (a.Path < b.Path ? -1 : a.Path > b.Path ? 1 : 0));
  return { values, truncated };
}

/**
 * Hashes a process's executable through /proc/PID/exe rather than its path: that is the file
 * actually running, even when the path was replaced, deleted, or lies in another mount namespace.
 * Returns undefined for processes that exit or deny access in the meantime.
 */
async function hashProcessExecutable(pid: string, path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(`/proc/${pid}/exe`, 'r');
  } catch {
    return undefined;
  }
  try {
    // The identity comes from the open file, so it describes exactly the bytes we would hash.
    const stat = await handle.stat();
    const key = `${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeMs}:${stat.ctimeMs}`;
    const cached = cachedHash(path, key);
    if (cached !== undefined) return cached;
    const sha256 = await hashHandle(handle);
    rememberHash(path, key, sha256);
    return sha256;
  } catch {
    return undefined;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Streaming sha256 of an open file. The crypto module (src/shared/crypto) offers only one-shot
 * hashes of in-memory bytes, and an executable can be hundreds of megabytes; hashing public file
 * contents involves no key material, so node:crypto's createHash is used directly here.
 */
async function hashHandle(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  let position = 0;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
  return hash.digest('hex');
}

// ---- users ---------------------------------------------------------------------------------

const NON_LOGIN_SHELLS = new Set(['nologin', 'false']);

async function listLoginUsers(): Promise<string[]> {
  let text: string;
  try {
    text = await readFile('/etc/passwd', 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const users = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    const name = fields[0];
    if (!name || fields.length < 7) continue;
    // An empty shell field means /bin/sh to login(1), so it counts as a login user.
    if (NON_LOGIN_SHELLS.has(basename(fields[6].trim()))) continue;
    users.add(capText(name));
  }
  return [...users].sort();
}

// ---- bounds --------------------------------------------------------------------------------

function capList(values: string[]): { values: string[]; truncated: boolean } {
  return values.length > MAX_LIST_ENTRIES
    ? { values: values.slice(0, MAX_LIST_ENTRIES), truncated: true }
    : { values, truncated: false };
}

function capText(value: string): string {
  return value.length > MAX_STRING_LENGTH ? value.slice(0, MAX_STRING_LENGTH) : value;
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'it is a directory';
    default: return code ?? (error instanceof Error ? error.message : 'unreadable');
  }
}
