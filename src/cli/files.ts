// Files the CLI reads on the user's behalf (keys, certificates, request and result files), with one-line errors
// that name the file and what it was for. Must never print a file's content in an error.
import { readFileSync } from 'node:fs';
import { pemCertificatesToDer, PrivopKeyError } from '../shared/crypto/index.ts';
import { UserError } from '../shared/errors.ts';

/** The bytes of `path`; FileUnavailable naming `what` (e.g. "the request file") when it cannot be read. */
export function readInputFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UserError('FileUnavailable', `Cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'}).`);
  }
}

/** Runs `use` on a key read from `path`; a key it rejects (PrivopKeyError) is InvalidKey naming the file. */
export function asInvalidKey<T>(path: string, use: () => T): T {
  try {
    return use();
  } catch (error) {
    if (error instanceof PrivopKeyError) throw new UserError('InvalidKey', `${path}: ${error.message}`);
    throw error;
  }
}

/** Reads a key file and hands its text to `use`; a key it rejects (PrivopKeyError) is InvalidKey naming the file. */
export function readKeyFile<T>(path: string, use: (text: string) => T): T {
  const text = readInputFile(path, 'the key file').toString('utf8');
  return asInvalidKey(path, () => use(text));
}

/** The certificates (DER) of a PEM file; ValidationException naming `label` when it holds none. */
export function readCertificatesFile(path: string, what: string, label: string = path): Buffer[] {
  const certificates = pemCertificatesToDer(readInputFile(path, what).toString('utf8'));
  if (certificates.length === 0) throw new UserError('ValidationException', `${label} holds no PEM certificate.`);
  return certificates;
}

/** Repeated `--param NAME=VALUE` as a record; a name given twice is refused. */
export function parameterRecord(flag: string, pairs: string[]): Record<string, string> {
  const record: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UserError('ValidationException', `--${flag} must be NAME=VALUE; got '${pair}'.`);
    const name = pair.slice(0, at);
    if (Object.hasOwn(record, name)) throw new UserError('ValidationException', `--${flag} ${name} is given twice.`);
    record[name] = pair.slice(at + 1);
  }
  return record;
}
