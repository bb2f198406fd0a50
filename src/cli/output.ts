// How every client command reports: --json for machines, one-line errors with a code on stderr.
// Must never print a secret unless the command exists to print it.
import { UserError } from '../shared/errors.ts';

export interface OutputOptions {
  json?: boolean;
}

export function printResult(options: OutputOptions, json: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

/** One line, "trustplane: Code: message", and a non-zero exit. */
export function failWith(error: unknown): never {
  const record = error as { name?: string; code?: string; message?: string; Code?: string };
  let code = error instanceof UserError ? error.code : record.name ?? 'Error';
  if (code === 'Error' && record.code) code = String(record.code);
  const message = (record.message ?? String(error)).replace(/\s+/g, ' ').trim();
  process.stderr.write(`trustplane: ${code}: ${message}\n`);
  process.exit(1);
}
