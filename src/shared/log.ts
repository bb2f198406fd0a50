// Structured logging (pino) with redaction of anything secret-shaped.
// Must never print key material, plaintext or credentials, even at debug.
import pino, { type Logger } from 'pino';

const redactedPaths = [
  '*.secret', '*.secretAccessKey', '*.SecretAccessKey', '*.Plaintext', '*.plaintext',
  '*.authorization', '*.headers.authorization', '*.key', '*.password', '*.token',
];

export type { Logger };

export function createLogger(options: { level?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const level = options.level ?? process.env.TRUSTPLANE_LOG_LEVEL ?? 'info';
  return pino({ level, redact: { paths: redactedPaths, censor: '[redacted]' }, base: undefined },
    options.destination ?? pino.destination(2));
}
