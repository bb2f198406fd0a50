// `trustplane encrypt` / `decrypt`: envelope encryption of files of any size, one data key per
// file from the key service, chunked AEAD in constant memory. Never leaves a partial OUT file.
import { createReadStream, createWriteStream, existsSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { DecryptCommand, GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { collect, parseKeyValuePairs, withClient } from '../client.ts';
import { AgentClient } from '../../clients/agent.ts';
import { createDecryptStream, createEncryptStream, randomBytes, zeroize } from '../../shared/crypto/index.ts';
import { UserError } from '../../shared/errors.ts';
import { printResult } from '../output.ts';

interface FileFlags {
  endpoint?: string;
  /** The host agent's socket: data keys come from the agent's cached keys instead of the key service. */
  agent?: string;
  json?: boolean;
  force?: boolean;
  progress?: boolean;
}

function parseContext(pairs: string[] | undefined): Record<string, string> | undefined {
  if (!pairs || pairs.length === 0) return undefined;
  return Object.fromEntries(parseKeyValuePairs('context', pairs));
}

function openInput(path: string): { stream: Readable; size?: number } {
  if (path === '-') return { stream: process.stdin };
  if (!existsSync(path)) throw new UserError('NoSuchFile', `${path} does not exist.`);
  const stats = statSync(path);
  if (!stats.isFile()) throw new UserError('NotAFile', `${path} is not a regular file.`);
  return { stream: createReadStream(path, { highWaterMark: 1024 * 1024 }), size: stats.size };
}

interface Output {
  stream: Writable;
  /** Moves the finished temporary file into place. */
  commit(): void;
  /** Removes the temporary file after a failure. */
  discard(): void;
}

/** Files are written beside OUT under a temporary name and renamed only once complete. */
function openOutput(path: string, force: boolean | undefined): Output {
  if (path === '-') return { stream: process.stdout, commit: () => undefined, discard: () => undefined };
  if (existsSync(path) && !force) throw new UserError('FileExists', `${path} exists; pass --force to replace it.`);
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
  const stream = createWriteStream(temporary, { mode: 0o600, highWaterMark: 1024 * 1024 });
  return {
    stream,
    commit: () => renameSync(temporary, path),
    discard: () => { try { unlinkSync(temporary); } catch { /* already gone */ } },
  };
}

/** Counts bytes through a pipeline and drives a progress bar on an interactive terminal. */
class ByteCounter extends Transform {
  bytes = 0;
  readonly #bar?: SingleBar;

  constructor(total: number | undefined, show: boolean) {
    super();
    if (show && process.stderr.isTTY && total !== undefined && total > 0) {
      this.#bar = new SingleBar({ stream: process.stderr, format: '{bar} {percentage}% | {value}/{total} MiB | ETA {eta}s',
        hideCursor: true, clearOnComplete: true }, undefined);
      this.#bar.start(Math.ceil(total / 1048576), 0);
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.bytes += chunk.length;
    this.#bar?.update(Math.floor(this.bytes / 1048576));
    this.push(chunk);
    callback();
  }

  stop(): void {
    this.#bar?.stop();
  }
}

async function runPipeline(input: { stream: Readable; size?: number }, transform: Transform, output: Output,
  flags: FileFlags): Promise<{ bytesIn: number; bytesOut: number }> {
  const counterIn = new ByteCounter(input.size, flags.progress !== false && !flags.json);
  const counterOut = new ByteCounter(undefined, false);
  try {
    await pipeline(input.stream, counterIn, transform, counterOut, output.stream);
    output.commit();
  } catch (error) {
    output.discard();
    throw error;
  } finally {
    counterIn.stop();
  }
  return { bytesIn: counterIn.bytes, bytesOut: counterOut.bytes };
}

/** Where data keys come from: the key service, or the host agent's socket (same ciphertext format either way). */
interface DataKeySource {
  generate(keyId: string, context: Record<string, string> | undefined): Promise<{ plaintext: Buffer; wrapped: Buffer; keyId: string }>;
  decrypt(wrapped: Buffer, context: Record<string, string>): Promise<{ plaintext: Buffer; keyId: string }>;
}

async function withDataKeys<T>(flags: FileFlags, work: (source: DataKeySource) => Promise<T>): Promise<T> {
  if (flags.agent) {
    if (flags.endpoint) throw new UserError('ValidationException', '--agent and --endpoint exclude each other.');
    const agent = new AgentClient(flags.agent);
    return work({
      generate: async (keyId, context) => {
        const reply = await agent.call<{ Plaintext: string; CiphertextBlob: string; KeyId: string }>('GenerateDataKey',
          { KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context });
        return { plaintext: Buffer.from(reply.Plaintext, 'base64'), wrapped: Buffer.from(reply.CiphertextBlob, 'base64'), keyId: reply.KeyId };
      },
      decrypt: async (wrapped, context) => {
        const reply = await agent.call<{ Plaintext: string; KeyId: string }>('Decrypt', { CiphertextBlob: wrapped, EncryptionContext: context });
        return { plaintext: Buffer.from(reply.Plaintext, 'base64'), keyId: reply.KeyId };
      },
    });
  }
  return withClient(flags, (client) => work({
    generate: async (keyId, context) => {
      const dataKey = await client.kms.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
      const plaintext = Buffer.from(dataKey.Plaintext!);
      zeroize(dataKey.Plaintext);
      return { plaintext, wrapped: Buffer.from(dataKey.CiphertextBlob!), keyId: dataKey.KeyId! };
    },
    decrypt: async (wrapped, context) => {
      const result = await client.kms.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: context }));
      const plaintext = Buffer.from(result.Plaintext!);
      zeroize(result.Plaintext);
      return { plaintext, keyId: result.KeyId! };
    },
  }));
}

export function registerFileCryptoCommands(program: Command): void {
  program.command('encrypt <in> <out>')
    .description('encrypt a file of any size (IN/OUT may be - for stdin/stdout) under a data key from KEY')
    .requiredOption('--key <key>', 'key id, ARN, alias/NAME or alias ARN')
    .option('--context <key=value>', 'encryption context, stored in the file and required by decrypt (repeatable)', collect)
    .option('--force', 'replace OUT if it exists')
    .option('--no-progress', 'no progress bar')
    .option('--endpoint <url>', 'key service URL (default $TRUSTPLANE_ENDPOINT or http://127.0.0.1:8200)')
    .option('--agent <socket>', 'use the host agent on this socket (keys cached on this host) instead of the key service')
    .option('--json', 'machine-readable summary on stdout (not with OUT = -)')
    .action(async (inPath: string, outPath: string, flags: FileFlags & { key: string; context?: string[] }) => {
      const context = parseContext(flags.context);
      const input = openInput(inPath);
      await withDataKeys(flags, async (source) => {
        const dataKey = await source.generate(flags.key, context);
        const encryptor = createEncryptStream({ dataKey: dataKey.plaintext, wrappedDataKey: dataKey.wrapped, context });
        zeroize(dataKey.plaintext);
        const output = openOutput(outPath, flags.force);
        const counts = await runPipeline(input, encryptor, output, flags);
        if (outPath !== '-' || flags.json) {
          printResult(flags, { KeyId: dataKey.keyId, EncryptionContext: context ?? {}, BytesIn: counts.bytesIn, BytesOut: counts.bytesOut },
            () => `encrypted ${counts.bytesIn} bytes under ${dataKey.keyId} -> ${outPath}`);
        }
      });
    });

  program.command('decrypt <in> <out>')
    .description('decrypt a file made by `trustplane encrypt` (IN/OUT may be - for stdin/stdout)')
    .option('--force', 'replace OUT if it exists')
    .option('--no-progress', 'no progress bar')
    .option('--endpoint <url>', 'key service URL (default $TRUSTPLANE_ENDPOINT or http://127.0.0.1:8200)')
    .option('--agent <socket>', 'use the host agent on this socket (keys cached on this host) instead of the key service')
    .option('--json', 'machine-readable summary on stdout (not with OUT = -)')
    .action(async (inPath: string, outPath: string, flags: FileFlags) => {
      const input = openInput(inPath);
      let keyId: string | undefined;
      let context: Record<string, string> = {};
      await withDataKeys(flags, async (source) => {
        const decryptor = createDecryptStream({
          resolveDataKey: async (header) => {
            context = header.context;
            const result = await source.decrypt(Buffer.from(header.wrappedDataKey), header.context);
            keyId = result.keyId;
            return result.plaintext;
          },
        });
        const output = openOutput(outPath, flags.force);
        const counts = await runPipeline(input, decryptor, output, flags);
        if (outPath !== '-' || flags.json) {
          printResult(flags, { KeyId: keyId, EncryptionContext: context, BytesIn: counts.bytesIn, BytesOut: counts.bytesOut },
            () => `decrypted ${counts.bytesOut} bytes (key ${keyId}) -> ${outPath}`);
        }
      });
    });
}
