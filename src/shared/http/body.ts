// Reading request bodies with a hard size limit, and parsing them as JSON.
// Must never buffer more than the limit.
import type { IncomingMessage } from 'node:http';
import { UserError } from '../errors.ts';

export async function readBody(request: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limitBytes) {
    request.resume();
    throw new UserError('RequestEntityTooLargeException', `The request body exceeds the limit of ${limitBytes} bytes.`, 413);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of request) {
    total += (chunk as Buffer).length;
    if (total > limitBytes) {
      request.resume();
      throw new UserError('RequestEntityTooLargeException', `The request body exceeds the limit of ${limitBytes} bytes.`, 413);
    }
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
}

/** A request body as JSON; an empty body is {}. Checks no shape: the caller's schema does that. */
export function parseJsonBody(payload: Buffer): unknown {
  if (payload.length === 0) return {};
  try {
    return JSON.parse(payload.toString('utf8'));
  } catch {
    throw new UserError('SerializationException', 'The request body is not valid JSON.');
  }
}

/** readBody, then parseJsonBody. */
export async function readJsonBody(request: IncomingMessage, limitBytes: number): Promise<unknown> {
  return parseJsonBody(await readBody(request, limitBytes));
}
