// Sealed privileged-operation result files as the CLI opens and writes them: version 2 (streamed, checked in two passes)
// and version 1 (one JSON document). Must never write content anywhere but a temporary file renamed once every check passed.
import { closeSync, createReadStream, openSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { checkEndorsementCertificate, describeCertificate, pemCertificatesToDer } from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';
import { withClient, type ClientFlags } from './client.ts';
import { readCertificatesFile, readInputFile } from './files.ts';
import { handleWriter, writeAll, writeFileAtomically } from '../shared/fs.ts';
import { openPrivopResult, type PrivopRequest, type PrivopResultPlaintext } from '../shared/privop-wire.ts';
import {
  isSealedResultStream, openSealedPrivopResult, verifySealedPrivopResult, PRIVOP_RESULT_STREAM_MAGIC,
} from '../shared/privop-result-stream.ts';

export interface OpenSealedFileOptions {
  privateKey: Buffer;
  publicKey: Buffer;
  /** The request it answers: digest, host (or class) and result key are checked. */
  request?: PrivopRequest;
  /** Where bulk content goes; without it, content up to MAX_EMBEDDED_CONTENT_BYTES comes back base64 in the JSON. */
  out?: string;
  checkCertificate?: (der: Buffer) => string | undefined;
}

/** Bulk content up to this size may be printed base64 in the result JSON; above it, `open` needs --out. */
export const MAX_EMBEDDED_CONTENT_BYTES = 16 * 1024 * 1024;
const READ_CHUNK_BYTES = 1024 * 1024;
/** What may wait in memory for the disk while the socket goes on reading. */
const WRITE_BEHIND_BYTES = 4 * 1024 * 1024;

/** The first bytes of a file (fewer if it is shorter). */
function fileStart(path: string, length: number): Buffer {
  let descriptor: number;
  try {
    descriptor = openSync(path, 'r');
  } catch (error) {
    throw new UserError('FileUnavailable', `Cannot read the sealed result ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
  try {
    const start = Buffer.alloc(length);
    return start.subarray(0, readSync(descriptor, start, 0, length, 0));
  } finally {
    closeSync(descriptor);
  }
}

/**
 * Opens a version 2 sealed result in two streaming passes: the structure and host signature first, then decryption.
 * Bulk content goes to `out` (a temporary file renamed only once every check passed) or, when small, into the JSON.
 */
async function openStream(path: string, options: { privateKey: Buffer; publicKey: Buffer; request?: PrivopRequest; out?: string;
  checkCertificate?: (der: Buffer) => string | undefined }): Promise<PrivopResultPlaintext> {
  const source = () => createReadStream(path, { highWaterMark: READ_CHUNK_BYTES }) as AsyncIterable<Buffer>;
  const verified = await verifySealedPrivopResult(source(), options);
  const open = (onContent: (piece: Buffer) => Promise<void>) => openSealedPrivopResult(source(), { verified, privateKey: options.privateKey, onContent });
  if (options.out) {
    let plaintext: PrivopResultPlaintext | undefined;
    const failed = new UserError('PrivopOperationFailed', 'the operation failed');
    await writeFileAtomically(options.out, async (file) => {
      plaintext = await open((piece) => writeAll(file, piece));
      // A failed operation's partial content is not kept.
      if (plaintext.Error) throw failed;
    }).catch((error: unknown) => { if (error !== failed) throw error; });
    const opened = plaintext as PrivopResultPlaintext;
    return opened.Content && !opened.Error ? { ...opened, Content: { ...opened.Content, File: options.out } } : opened;
  }
  const pieces: Buffer[] = [];
  let bytes = 0;
  const plaintext = await open(async (piece) => {
    bytes += piece.length;
    if (bytes > MAX_EMBEDDED_CONTENT_BYTES) {
      throw new UserError('PrivopOutRequired', `The result carries more than ${MAX_EMBEDDED_CONTENT_BYTES / 1024 / 1024} MiB of content: give --out FILE for it.`);
    }
    pieces.push(Buffer.from(piece));
  });
  const content = Buffer.concat(pieces);
  return plaintext.Content && !plaintext.Error ? { ...plaintext, Content: { ...plaintext.Content, Base64: content.toString('base64') } } : plaintext;
}

/** Opens a sealed result file of either version; a UserError says which check failed. */
export async function openSealedResultFile(path: string, options: OpenSealedFileOptions): Promise<PrivopResultPlaintext> {
  if (isSealedResultStream(fileStart(path, PRIVOP_RESULT_STREAM_MAGIC.length))) return openStream(path, options);
  return (await openPrivopResult({ sealed: readInputFile(path, 'the sealed result'), ...options })).plaintext;
}

/** A check that a host certificate was issued by one of the account's CAs and is valid now (for `checkCertificate`). */
export function issuedByAccountCa(authorities: Buffer[]): (der: Buffer) => string | undefined {
  return (der) => checkEndorsementCertificate(der, describeCertificate(der).publicKeyDer, authorities, new Date());
}

export interface HostTrustFlags extends ClientFlags {
  ca?: string;
  insecureSkipHostCheck?: boolean;
}

function readAuthorities(path: string, from: string): Buffer[] {
  return readCertificatesFile(path, `the account CA certificate (${from})`, `${path} (${from})`);
}

/**
 * How the host certificate in a sealed result is judged. Anyone can seal to a result key, so only a certificate from
 * the account CA says which host made a result: --ca FILE, else $TRUSTPLANE_ACCOUNT_CA, else the CA fetched from the
 * server (which issues host certificates anyway). Without any, opening is refused unless --insecure-skip-host-check.
 */
export async function hostCertificateCheck(flags: HostTrustFlags): Promise<((der: Buffer) => string | undefined) | undefined> {
  if (flags.ca) return issuedByAccountCa(readAuthorities(flags.ca, '--ca'));
  const fromEnvironment = process.env.TRUSTPLANE_ACCOUNT_CA;
  if (fromEnvironment) return issuedByAccountCa(readAuthorities(fromEnvironment, '$TRUSTPLANE_ACCOUNT_CA'));
  if (flags.insecureSkipHostCheck) {
    process.stderr.write('trustplane: warning: --insecure-skip-host-check: anyone could have made this result; its host is not known\n');
    return undefined;
  }
  let pem: string;
  try {
    pem = (await withClient(flags, (client) => client.fleet<{ Certificate: string }>('GetAccountCa', {}))).Certificate;
  } catch (error) {
    const reason = error instanceof UserError ? `${error.code}: ${error.message}` : String(error);
    throw new UserError('PrivopHostUnverified', 'Cannot tell which host made this result without the account CA: give --ca account-ca.pem '
      + `(from \`trustplane host ca --out account-ca.pem\`) or set TRUSTPLANE_ACCOUNT_CA (fetching it from the server failed: ${reason}); `
      + '--insecure-skip-host-check opens it anyway.');
  }
  return issuedByAccountCa(pemCertificatesToDer(pem));
}

/** A sink over an open file that leaves it open (to be fsynced), holding at most 4 MiB for the disk. */
export function fileWriter(file: FileHandle): Writable {
  return handleWriter(file, WRITE_BEHIND_BYTES);
}
