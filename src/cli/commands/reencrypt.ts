// `trustplane reencrypt PATH...`: brings files made by `trustplane encrypt` under older key versions
// to their key's default version, resumably. Must never leave a partial file in an original's place, nor modify a file it did not make.
import { createReadStream, unlinkSync, type Stats } from 'node:fs';
import { lstat, open, readdir, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { handleWriter } from '../../shared/fs.ts';
import { pipeline } from 'node:stream/promises';
import { isDeepStrictEqual } from 'node:util';
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { explainConnectionError, type KeyServiceClient } from '../../clients/kms.ts';
import { withClient, type ClientFlags } from '../client.ts';
import {
  ciphertextLength, createDecryptStream, createEncryptStream, parseCiphertextBlob, randomBytes, readFileHeader, zeroize,
  type ChunkedFileHeader, type EncryptionContext,
} from '../../shared/crypto/index.ts';
import { CiphertextError, UserError } from '../../shared/errors.ts';
import { printResult } from '../output.ts';

interface ReencryptFlags extends ClientFlags {
  recursive?: boolean;
  progress?: boolean;
  dryRun?: boolean;
}

interface ReencryptReport {
  Reencrypted: string[];
  Current: string[];
  Skipped: Array<{ Path: string; Reason: string }>;
  Failed: Array<{ Path: string; Error: string }>;
  /** Temporary files of interrupted runs, removed before this run (found only, with --dry-run). */
  StaleTemporaryFiles: string[];
  /** Only with --dry-run: what a real run would re-encrypt. */
  WouldReencrypt?: string[];
  DryRun?: true;
}

type Outcome =
  | { kind: 'reencrypted' | 'would-reencrypt'; keyId: string; from: number; to: number }
  | { kind: 'current'; version: number }
  | { kind: 'skipped'; reason: string };

/** A file to process: the path as the user will read it, and the real path it is replaced at. */
interface Target {
  shown: string;
  real: string;
}

const MAGIC_LENGTH = 5;
const FIRST_READ = 64 * 1024;
const STREAM_BUFFER = 1024 * 1024;
// `.NAME.<12 hex>.tp-reencrypt` beside the original: hidden, recognisable, and never a name `encrypt` writes.
const TEMPORARY_SUFFIX = '.tp-reencrypt';
const TEMPORARY_PATTERN = /^\..*\.[0-9a-f]{12}\.tp-reencrypt$/s;
const NAME_BYTES_IN_TEMPORARY = 200;
/** Failures that would repeat for every file: the run stops instead of failing each one. */
const ABORTING_CODES = new Set(['ConnectionError', 'MissingCredentials', 'InvalidEndpoint', 'UnrecognizedClientException',
  'InvalidSignatureException', 'ExpiredTokenException', 'UnsupportedKeyService']);

function isTemporaryName(name: string): boolean {
  return TEMPORARY_PATTERN.test(name);
}

/** The original's name, cut at a character boundary so the temporary name stays within NAME_MAX (255 bytes). */
function temporaryPathFor(path: string): string {
  let name = '';
  for (const character of basename(path)) {
    if (Buffer.byteLength(name + character) > NAME_BYTES_IN_TEMPORARY) break;
    name += character;
  }
  return join(dirname(path), `.${name}.${randomBytes(6).toString('hex')}${TEMPORARY_SUFFIX}`);
}

function errorCode(error: unknown): string | undefined {
  const record = error as { code?: unknown; name?: unknown };
  if (error instanceof UserError || error instanceof CiphertextError) return error.code;
  if (typeof record.code === 'string') return record.code;
  return typeof record.name === 'string' && record.name !== 'Error' ? record.name : undefined;
}

/** One line for the report: the error's code and its message, never a stack. */
function describeError(error: unknown): string {
  // Raised locally by the chunked stream (the key service's own refusals arrive as SDK errors).
  if (error instanceof CiphertextError) {
    return `${error.code}: a chunk of the file failed authentication: it is corrupt, truncated or was tampered with.`;
  }
  const code = errorCode(error);
  const message = ((error as { message?: unknown }).message ?? String(error)).toString().replace(/\s+/g, ' ').trim();
  return code && !message.startsWith(code) ? `${code}: ${message}` : message;
}

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** The default version of each key, asked once per key id per run. */
class DefaultVersions {
  readonly #client: KeyServiceClient;
  readonly #known = new Map<string, Promise<number>>();

  constructor(client: KeyServiceClient) {
    this.#client = client;
  }

  of(keyId: string): Promise<number> {
    let version = this.#known.get(keyId);
    if (!version) {
      version = this.#describe(keyId);
      // A failure is remembered too: every file under a missing key fails with the same reason, with one call.
      version.catch(() => undefined);
      this.#known.set(keyId, version);
    }
    return version;
  }

  async #describe(keyId: string): Promise<number> {
    // DescribeKey through the signed JSON call, not the SDK: CurrentKeyVersion is trustplane's extension to KeyMetadata.
    const described = await this.#client.call<{ KeyMetadata?: { CurrentKeyVersion?: unknown } }>('TrentService.DescribeKey', 'kms', { KeyId: keyId });
    const version = described.KeyMetadata?.CurrentKeyVersion;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) {
      throw new UserError('UnsupportedKeyService', `the key service at ${this.#client.endpoint} does not report key versions (KeyMetadata.CurrentKeyVersion); reencrypt needs a trustplane server.`);
    }
    return version;
  }
}

/**
 * Reads a file's chunked-format header. A file that does not start with the format's magic is
 * foreign (null); one that does but whose header is malformed or cut short is a UserError.
 */
async function readHeaderOf(path: string): Promise<ChunkedFileHeader | null> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    let bytes = Buffer.alloc(Math.min(size, FIRST_READ));
    let filled = (await handle.read(bytes, 0, bytes.length, 0)).bytesRead;
    if (filled < MAGIC_LENGTH) return null;
    try {
      readFileHeader(bytes.subarray(0, MAGIC_LENGTH));
    } catch {
      return null;
    }
    for (;;) {
      let read;
      try {
        read = readFileHeader(bytes.subarray(0, filled));
      } catch {
        throw new UserError('MalformedFile', 'starts like a trustplane encrypted file but its header is malformed or of an unknown format version.');
      }
      if (read.complete) return read.header;
      if (read.bytesNeeded > size) throw new UserError('MalformedFile', 'starts like a trustplane encrypted file but is cut short inside its header.');
      const grown = Buffer.alloc(read.bytesNeeded);
      bytes.copy(grown, 0, 0, filled);
      bytes = grown;
      while (filled < bytes.length) {
        const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, filled);
        if (bytesRead === 0) throw new UserError('MalformedFile', 'changed size while its header was being read.');
        filled += bytesRead;
      }
    }
  } finally {
    await handle.close();
  }
}

/** The key id and version named by a header's wrapped data key, which must be a trustplane ciphertext blob. */
function wrappingKeyOf(header: ChunkedFileHeader): { keyId: string; keyVersion: number } {
  try {
    const { keyId, keyVersion } = parseCiphertextBlob(header.wrappedDataKey);
    return { keyId, keyVersion };
  } catch {
    throw new UserError('UnsupportedWrappedKey', 'its wrapped data key is not a trustplane key service ciphertext, so its key version cannot be read.');
  }
}

class ByteCounter extends Transform {
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}

function contextOrUndefined(context: EncryptionContext): EncryptionContext | undefined {
  return Object.keys(context).length > 0 ? context : undefined;
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/** Makes durable a rename in `directory`; where a directory cannot be fsynced the rename is as durable as the system makes it. */
async function syncDirectory(directory: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(directory, 'r');
    await handle.sync();
  } catch (error) {
    if (!['EISDIR', 'EINVAL', 'EPERM', 'EACCES', 'ENOTSUP'].includes(errnoOf(error) ?? '')) throw error;
  } finally {
    await handle?.close();
  }
}

interface Reencryptor {
  client: KeyServiceClient;
  versions: DefaultVersions;
  dryRun: boolean;
  /** The temporary file being written, for the interrupt handler to remove. */
  inFlight?: string;
}

/**
 * The body must be encrypted again, not only the wrapped data key: every chunk's associated data
 * holds SHA-256 of the whole header, wrapped key included. The new body gets a fresh data key
 * (GenerateDataKey) and salt, so nothing in the new file depends on the old key version.
 */
async function reencryptFile(path: string, run: Reencryptor): Promise<Outcome> {
  const before = await stat(path);
  if (!before.isFile()) return { kind: 'skipped', reason: 'not a regular file' };
  const header = await readHeaderOf(path);
  if (!header) return { kind: 'skipped', reason: 'not a trustplane encrypted file (left untouched)' };
  const { keyId, keyVersion } = wrappingKeyOf(header);
  const defaultVersion = await run.versions.of(keyId);
  if (keyVersion >= defaultVersion) return { kind: 'current', version: keyVersion };
  if (before.nlink > 1) {
    throw new UserError('HardLinked', `has ${before.nlink} hard links; replacing it would leave the other names under key version ${keyVersion}. Re-encrypt a copy instead.`);
  }
  if (run.dryRun) return { kind: 'would-reencrypt', keyId, from: keyVersion, to: defaultVersion };

  const context = contextOrUndefined(header.context);
  const opened = await run.client.kms.send(new DecryptCommand({ CiphertextBlob: header.wrappedDataKey, EncryptionContext: context, KeyId: keyId }));
  const oldDataKey = Buffer.from(opened.Plaintext!);
  zeroize(opened.Plaintext);
  let newDataKey: Buffer | undefined;
  const temporary = temporaryPathFor(path);
  let handle: FileHandle | undefined;
  try {
    const generated = await run.client.kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    newDataKey = Buffer.from(generated.Plaintext!);
    zeroize(generated.Plaintext);
    const wrapped = Buffer.from(generated.CiphertextBlob!);
    const now = wrappingKeyOf({ ...header, wrappedDataKey: wrapped });
    if (now.keyId !== keyId || now.keyVersion < defaultVersion) {
      throw new UserError('UnexpectedDataKey', `the key service wrapped the new data key under ${now.keyId} version ${now.keyVersion}, not ${keyId} version ${defaultVersion} or later.`);
    }

    run.inFlight = temporary;
    handle = await open(temporary, 'wx', 0o600);
    const decryptor = createDecryptStream({
      resolveDataKey: (seen) => {
        if (!seen.bytes.equals(header.bytes)) throw new UserError('FileChanged', 'changed while being re-encrypted; left as it was.');
        return Buffer.from(oldDataKey);
      },
      maxChunkSize: header.chunkSize,
    });
    const plaintext = new ByteCounter();
    const encryptor = createEncryptStream({ dataKey: newDataKey, wrappedDataKey: wrapped, context, chunkSize: header.chunkSize });
    zeroize(newDataKey);
    await pipeline(createReadStream(path, { highWaterMark: STREAM_BUFFER }), decryptor, plaintext, encryptor, handleWriter(handle, STREAM_BUFFER));
    await handle.chmod(before.mode & 0o777);
    await handle.sync();
    await handle.close();
    handle = undefined;

    // The new file must be whole before it replaces the only other copy: its header names the new version
    // and the same context, and its length is exactly what that many plaintext bytes encrypt to.
    const written = await readHeaderOf(temporary);
    const writtenKey = written && wrappingKeyOf(written);
    const expectedLength = written ? ciphertextLength(plaintext.bytes, written.chunkSize, written.length) : -1;
    if (!written || writtenKey?.keyVersion !== now.keyVersion || writtenKey.keyId !== keyId
      || !isDeepStrictEqual(written.context, header.context) || (await stat(temporary)).size !== expectedLength) {
      throw new UserError('VerificationFailed', 'the re-encrypted copy did not verify; the original is unchanged.');
    }
    if (!sameFile(before, await stat(path))) throw new UserError('FileChanged', 'changed while being re-encrypted; left as it was.');
    await rename(temporary, path);
    run.inFlight = undefined;
    await syncDirectory(dirname(path));
    return { kind: 'reencrypted', keyId, from: keyVersion, to: now.keyVersion };
  } catch (error) {
    await handle?.close().catch(() => undefined);
    if (run.inFlight === temporary) {
      await unlink(temporary).catch(() => undefined);
      run.inFlight = undefined;
    }
    throw error;
  } finally {
    zeroize(oldDataKey, newDataKey);
  }
}

interface Collected {
  targets: Target[];
  stale: string[];
}

/** Expands PATH arguments into files, noting what is not processed and every stale temporary file met. */
async function collectTargets(paths: string[], recursive: boolean, report: ReencryptReport): Promise<Collected> {
  const targets: Target[] = [];
  const stale = new Set<string>();
  const seen = new Set<string>();
  const scannedDirectories = new Set<string>();

  const addTarget = (shown: string, real: string) => {
    if (seen.has(real)) return;
    seen.add(real);
    targets.push({ shown, real });
  };
  const scanForStale = async (shownDirectory: string, realDirectory: string) => {
    if (scannedDirectories.has(realDirectory)) return;
    scannedDirectories.add(realDirectory);
    for (const name of (await readdir(realDirectory)).sort()) {
      if (isTemporaryName(name)) stale.add(join(shownDirectory, name));
    }
  };
  const walk = async (shownDirectory: string, realDirectory: string): Promise<void> => {
    await scanForStale(shownDirectory, realDirectory);
    const entries = (await readdir(realDirectory, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const shown = join(shownDirectory, entry.name);
      const real = join(realDirectory, entry.name);
      if (isTemporaryName(entry.name)) continue;
      if (entry.isDirectory()) await walk(shown, real);
      else if (entry.isFile()) addTarget(shown, real);
      else if (entry.isSymbolicLink()) report.Skipped.push({ Path: shown, Reason: 'symbolic link, not followed with --recursive' });
      else report.Skipped.push({ Path: shown, Reason: 'not a regular file' });
    }
  };

  for (const path of paths) {
    let real: string;
    let stats: Stats;
    try {
      await lstat(path);
      real = await realpath(path);
      stats = await stat(real);
    } catch (error) {
      const code = errnoOf(error);
      report.Failed.push({ Path: path, Error: code === 'ENOENT' ? 'does not exist (or is a broken link)' : describeError(error) });
      continue;
    }
    if (stats.isDirectory()) {
      if (!recursive) report.Skipped.push({ Path: path, Reason: 'is a directory (pass --recursive to re-encrypt the files under it)' });
      else await walk(path, real);
    } else if (stats.isFile()) {
      if (isTemporaryName(basename(real))) {
        stale.add(path);
        continue;
      }
      await scanForStale(dirname(path), dirname(real));
      addTarget(path, real);
    } else {
      report.Skipped.push({ Path: path, Reason: 'not a regular file' });
    }
  }
  return { targets, stale: [...stale] };
}

function humanLine(path: string, outcome: Outcome): string | undefined {
  switch (outcome.kind) {
    case 'reencrypted': return `re-encrypted     ${path} (key ${outcome.keyId} version ${outcome.from} -> ${outcome.to})`;
    case 'would-reencrypt': return `would re-encrypt ${path} (key ${outcome.keyId} version ${outcome.from} -> ${outcome.to})`;
    case 'skipped': return `skipped          ${path}: ${outcome.reason}`;
    case 'current': return undefined;
  }
}

function summaryLine(report: ReencryptReport, dryRun: boolean): string {
  const done = dryRun ? `dry run: would re-encrypt ${report.WouldReencrypt?.length ?? 0}` : `re-encrypted ${report.Reencrypted.length}`;
  return `${done}, already current ${report.Current.length}, skipped ${report.Skipped.length}, failed ${report.Failed.length}`;
}

export function registerReencryptCommand(program: Command): void {
  program.command('reencrypt <paths...>')
    .description('re-encrypt files made by `trustplane encrypt` under older key versions to the key\'s default version (resumable)')
    .option('-r, --recursive', 'also re-encrypt the files under directories (symbolic links are not followed)')
    .option('--dry-run', 'report what would be re-encrypted; change nothing')
    .option('--no-progress', 'no progress bar')
    .option('--endpoint <url>', 'key service URL (default $TRUSTPLANE_ENDPOINT or http://127.0.0.1:8200)')
    .option('--json', 'machine-readable report on stdout')
    .action(async (paths: string[], flags: ReencryptFlags) => {
      const dryRun = flags.dryRun === true;
      const report: ReencryptReport = { Reencrypted: [], Current: [], Skipped: [], Failed: [], StaleTemporaryFiles: [],
        ...(dryRun ? { WouldReencrypt: [], DryRun: true as const } : {}) };
      const { targets, stale } = await collectTargets(paths, flags.recursive === true, report);
      for (const path of stale) {
        if (!dryRun) {
          try {
            await unlink(path);
          } catch (error) {
            if (errnoOf(error) !== 'ENOENT') throw new UserError('CleanupFailed', `cannot remove the stale temporary file ${path}: ${describeError(error)}`);
          }
        }
        report.StaleTemporaryFiles.push(path);
      }

      const lines: string[] = [];
      const bar = flags.progress !== false && !flags.json && process.stderr.isTTY && targets.length > 0
        ? new SingleBar({ stream: process.stderr, format: '{bar} {value}/{total} files | ETA {eta}s', hideCursor: true, clearOnComplete: true }, undefined)
        : undefined;
      const say = (line: string | undefined) => {
        if (line === undefined || flags.json) return;
        if (bar) lines.push(line);
        else process.stdout.write(`${line}\n`);
      };
      for (const path of report.StaleTemporaryFiles) say(`${dryRun ? 'would remove    ' : 'removed         '} ${path} (temporary file of an interrupted run)`);
      for (const skipped of report.Skipped) say(`skipped          ${skipped.Path}: ${skipped.Reason}`);
      for (const failed of report.Failed) say(`failed           ${failed.Path}: ${failed.Error}`);

      await withClient(flags, async (client) => {
        const run: Reencryptor = { client, versions: new DefaultVersions(client), dryRun };
        // Ctrl-C between the temporary file's creation and its rename removes it; a harder stop leaves it for the next run.
        const interrupted = (signal: NodeJS.Signals) => {
          if (run.inFlight) { try { unlinkSync(run.inFlight); } catch { /* already gone */ } }
          bar?.stop();
          process.stderr.write(`trustplane: Interrupted: stopped by ${signal}; run the same command again to resume.\n`);
          process.exit(130);
        };
        process.once('SIGINT', interrupted);
        process.once('SIGTERM', interrupted);
        bar?.start(targets.length, 0);
        try {
          for (const target of targets) {
            let outcome: Outcome;
            try {
              outcome = await reencryptFile(target.real, run);
            } catch (error) {
              const explained = explainConnectionError(error, client.endpoint);
              if (ABORTING_CODES.has(errorCode(explained) ?? '')) throw explained;
              report.Failed.push({ Path: target.shown, Error: describeError(explained) });
              say(`failed           ${target.shown}: ${describeError(explained)}`);
              bar?.increment();
              continue;
            }
            switch (outcome.kind) {
              case 'reencrypted': report.Reencrypted.push(target.shown); break;
              case 'would-reencrypt': report.WouldReencrypt!.push(target.shown); break;
              case 'current': report.Current.push(target.shown); break;
              case 'skipped': report.Skipped.push({ Path: target.shown, Reason: outcome.reason }); break;
            }
            say(humanLine(target.shown, outcome));
            bar?.increment();
          }
        } finally {
          bar?.stop();
          process.off('SIGINT', interrupted);
          process.off('SIGTERM', interrupted);
          for (const line of lines) process.stdout.write(`${line}\n`);
        }
      });

      printResult(flags, report, () => summaryLine(report, dryRun));
      if (report.Failed.length > 0) {
        throw new UserError('ReencryptFailed', `${report.Failed.length} path(s) failed, listed in the report; each was left as it was.`);
      }
    });
}
