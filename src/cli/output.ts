// How every client command reports: --json for machines, one-line errors with a code on stderr.
// Must never print a secret unless the command exists to print it.
import { UserError } from '../shared/errors.ts';

export interface OutputOptions {
  json?: boolean;
}

export function printResult(options: OutputOptions, json: unknown, human: () => string): void {
  process.stdout.write(options.json ? `${JSON.stringify(json, null, 2)}\n` : `${human()}\n`);
}

/** A time as the AWS JSON protocol sends it (epoch seconds), as ISO 8601; '' when absent. */
export function epochToIso(seconds: unknown): string {
  return seconds === undefined || seconds === null ? '' : new Date(Number(seconds) * 1000).toISOString();
}

/** One line, "trustplane: Code: message", and a non-zero exit. */
export function failWith(error: unknown): never {
  const record = error as { name?: string; code?: unknown; message?: string };
  // Our errors carry a stable string code; AWS SDK errors carry the AWS error name.
  const code = error instanceof UserError || (typeof record.code === 'string' && /^[A-Z]/.test(record.code))
    ? String(record.code) : record.name ?? 'Error';
  const message = (record.message ?? String(error)).replace(/\s+/g, ' ').trim();
  process.stderr.write(`trustplane: ${code}: ${message}\n`);
  process.exit(1);
}
