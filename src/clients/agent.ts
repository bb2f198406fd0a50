// A client of the host agent's Unix socket (what `--agent PATH` and local apps use): JSON in and
// out, binary fields base64, typed errors as the agent sends them; or JSON in and a byte stream out (callToStream).
import { request, type IncomingMessage } from 'node:http';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UserError } from '../shared/errors.ts';

export class AgentClient {
  readonly #socketPath: string;

  constructor(socketPath: string) {
    this.#socketPath = socketPath;
  }

  async call<T = Record<string, unknown>>(operation: string, body: Record<string, unknown> = {}): Promise<T> {
    const wire = Object.fromEntries(Object.entries(body).filter(([, value]) => value !== undefined)
      .map(([name, value]) => [name, value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value]));
    const isStatus = operation === 'status';
    const payload = isStatus ? Buffer.alloc(0) : Buffer.from(JSON.stringify(wire));
    return new Promise<T>((resolve, reject) => {
      const req = request({ socketPath: this.#socketPath, path: isStatus ? '/v1/status' : `/v1/${operation}`, method: isStatus ? 'GET' : 'POST',
        headers: isStatus ? {} : { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          let parsed: Record<string, unknown>;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch {
            reject(new UserError('AgentError', `The agent at ${this.#socketPath} answered HTTP ${res.statusCode} without JSON.`));
            return;
          }
          if (res.statusCode === 200) resolve(parsed as T);
          else reject(new UserError(String(parsed.__type ?? 'AgentError'), String(parsed.message ?? `HTTP ${res.statusCode}`), res.statusCode ?? 500));
        });
      });
      req.on('error', (error: NodeJS.ErrnoException) => reject(new UserError('AgentUnavailable',
        `No agent answers on ${this.#socketPath} (${error.code ?? error.message}); is \`trustplane agent\` running, and may you use its socket?`)));
      req.end(isStatus ? undefined : payload);
    });
  }

  /**
   * Calls an operation that answers with a byte stream (a sealed result) and pipes it into `destination` with
   * backpressure; resolves once it all arrived, rejects with the agent's typed error (nothing written) or, when the
   * stream is cut, AgentStreamCut. `end: false` leaves `destination` open (stdout).
   */
  async callToStream(operation: string, body: Record<string, unknown>, destination: Writable, options: { end?: boolean } = {}): Promise<void> {
    const payload = Buffer.from(JSON.stringify(body));
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ socketPath: this.#socketPath, path: `/v1/${operation}`, method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': payload.length } }, resolve);
      req.on('error', (error: NodeJS.ErrnoException) => reject(new UserError('AgentUnavailable',
        `No agent answers on ${this.#socketPath} (${error.code ?? error.message}); is \`trustplane agent\` running, and may you use its socket?`)));
      req.end(payload);
    });
    if (response.statusCode !== 200 || response.headers['content-type'] !== 'application/octet-stream') {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        throw new UserError('AgentError', `The agent at ${this.#socketPath} answered HTTP ${response.statusCode} without JSON.`);
      }
      throw new UserError(String(parsed.__type ?? 'AgentError'), String(parsed.message ?? `HTTP ${response.statusCode}`), response.statusCode ?? 500);
    }
    try {
      await pipeline(response, destination, { end: options.end ?? true });
    } catch (error) {
      if (error instanceof UserError) throw error;
      throw new UserError('AgentStreamCut', `The agent's answer was cut short (${(error as NodeJS.ErrnoException).code ?? 'error'}): nothing complete arrived.`, 502);
    }
  }
}
