// The agent's side of the privileged-operation relay: told of a relayed request on the push stream, it fetches the
// request file over mutual TLS, has the executor judge it, reports a refusal, or streams the sealed result back in slices.
// Must never run a relay twice at once, hold a whole result in memory, nor send anything of a result but its sealed bytes.
import { UserError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import type { PrivopExecutor } from './executor.ts';

/** Slices uploaded per call (the server's bound per call is 1 MiB). */
const UPLOAD_SLICE_BYTES = 1024 * 1024;
/** Relays run at once by this agent: the rest wait their turn. */
const MAX_CONCURRENT_RELAYS = 2;

type Call = (path: string, body: unknown) => Promise<Record<string, unknown>>;

export class PrivopRelayWorker {
  readonly #executor: PrivopExecutor;
  readonly #call: Call;
  readonly #logger: Logger;
  /** Relays announced and not yet done here: a second announcement (a reconnect) is ignored. */
  readonly #known = new Set<string>();
  readonly #queue: string[] = [];
  #running = 0;
  #stopped = false;

  constructor(options: { executor: PrivopExecutor; call: Call; logger: Logger }) {
    this.#executor = options.executor;
    this.#call = options.call;
    this.#logger = options.logger;
  }

  /** A `privop` event from the push stream; returns at once (the key-ring stream is never held up). */
  announced(data: Record<string, unknown>): void {
    const relayId = data.RelayId;
    if (this.#stopped || typeof relayId !== 'string' || this.#known.has(relayId)) return;
    this.#known.add(relayId);
    this.#queue.push(relayId);
    this.#next();
  }

  stop(): void {
    this.#stopped = true;
    this.#queue.length = 0;
  }

  #next(): void {
    while (this.#running < MAX_CONCURRENT_RELAYS && this.#queue.length > 0) {
      const relayId = this.#queue.shift() as string;
      this.#running += 1;
      void this.#handle(relayId)
        .catch((error: unknown) => this.#logger.warn({ relayId, err: error instanceof Error ? error.message : String(error) }, 'relayed request failed'))
        .finally(() => {
          this.#running -= 1;
          this.#known.delete(relayId);
          this.#next();
        });
    }
  }

  async #handle(relayId: string): Promise<void> {
    let fetched: Record<string, unknown>;
    try {
      fetched = await this.#call('/v1/agent/privop/fetch', { RelayId: relayId });
    } catch (error) {
      // Finished or gone (a late announcement): nothing to do.
      if (error instanceof UserError && (error.code === 'PrivopRelayFinished' || error.code === 'NotFoundException')) return;
      throw error;
    }
    let accepted: Awaited<ReturnType<PrivopExecutor['accept']>>;
    try {
      accepted = await this.#executor.accept(fetched.Request, 'relay');
    } catch (error) {
      const refusal = error instanceof UserError ? { Code: error.code, Message: error.message }
        : { Code: 'InternalError', Message: 'The host could not judge the request.' };
      if (!(error instanceof UserError)) this.#logger.error({ err: error, relayId }, 'relayed request could not be judged');
      await this.#call('/v1/agent/privop/refused', { RelayId: relayId, ...refusal });
      this.#logger.info({ relayId, code: refusal.Code }, 'relayed request refused');
      return;
    }
    let offset = 0;
    try {
      for await (const part of accepted.run()) {
        for (let start = 0; start < part.length; start += UPLOAD_SLICE_BYTES) {
          const slice = part.subarray(start, start + UPLOAD_SLICE_BYTES);
          await this.#call('/v1/agent/privop/result', { RelayId: relayId, Offset: offset, Data: slice.toString('base64') });
          offset += slice.length;
        }
      }
      await this.#call('/v1/agent/privop/result', { RelayId: relayId, Offset: offset, Data: '', Final: true, TotalBytes: offset });
    } catch (error) {
      // The nonce is spent, so the relay can never complete: say so (best effort) rather than leave the courier waiting until it expires.
      if (!(error instanceof UserError && error.code === 'PrivopResultTooLarge')) {
        await this.#call('/v1/agent/privop/refused', { RelayId: relayId, Code: 'PrivopResultNotDelivered',
          Message: 'The host accepted the request but could not deliver its sealed result; sign a new request to try again.' }).catch(() => undefined);
      }
      throw error;
    }
    this.#logger.info({ relayId, bytes: offset, operation: accepted.parsed.request.Operation }, 'relayed request ran; sealed result uploaded');
  }
}
