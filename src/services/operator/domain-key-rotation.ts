// Domain key rotation: a new domain key becomes active at once, then every stored record is
// rewrapped under it in the background, in batches, while requests go on; the old key is
// destroyed only when nothing references it. Resumes after a crash from what the store says.
// Must never retire a domain key a stored record or an in-flight request may still need.
import { setTimeout as delay } from 'node:timers/promises';
import {
  rewrapBatch, type CryptoModule, type DomainKeyStore, type WrappedRecordCursor, type WrappedRecordStore,
} from '../../shared/crypto/index.ts';
import { SealedError, UserError } from '../../shared/errors.ts';
import { StoreConflictError } from '../../shared/store/index.ts';
import type { Logger } from '../../shared/log.ts';

export interface DomainKeyRotationProgress {
  State: 'Idle' | 'Rewrapping' | 'Retiring' | 'Paused' | 'Stuck';
  ActiveDomainKeyId?: string;
  RetiringDomainKeyIds: string[];
  /** Records under retiring keys when this pass began. */
  Total: number;
  Rewrapped: number;
  Remaining: number;
  /** Records that do not unwrap (corrupt or tampered): they keep their old key from retiring. */
  Unreadable: number;
  StartedAt?: Date;
  Message?: string;
}

export interface DomainKeyRotationOptions {
  module: CryptoModule;
  store: DomainKeyStore & WrappedRecordStore;
  logger: Logger;
  batchSize?: number;
  /** Pause between batches, so a big store's rewrap leaves room for requests. */
  batchPauseMs?: number;
  /** How long a drained key is kept before it is destroyed, for requests that read a row just before it was rewrapped. */
  retireGraceMs?: number;
}

export class DomainKeyRotation {
  readonly #options: Required<Omit<DomainKeyRotationOptions, 'logger' | 'module' | 'store'>> & DomainKeyRotationOptions;
  #progress: DomainKeyRotationProgress = { State: 'Idle', RetiringDomainKeyIds: [], Total: 0, Rewrapped: 0, Remaining: 0, Unreadable: 0 };
  #running: Promise<void> | undefined;
  #stopping = false;
  #resumeAfterStop = false;

  constructor(options: DomainKeyRotationOptions) {
    this.#options = { batchSize: 100, batchPauseMs: 0, retireGraceMs: 2000, ...options };
  }

  progress(): DomainKeyRotationProgress {
    return { ...this.#progress, RetiringDomainKeyIds: [...this.#progress.RetiringDomainKeyIds],
      ActiveDomainKeyId: this.#options.module.status().activeDomainKeyId };
  }

  get running(): boolean {
    return this.#running !== undefined;
  }

  /** Makes a new active domain key and starts rewrapping under it; refused while a rewrap is still due. */
  async rotate(): Promise<DomainKeyRotationProgress> {
    // The store decides, not this process's memory: another server may be mid-rewrap.
    if (this.#running || (await this.#retiringKeyIds()).length > 0) {
      throw new UserError('ConflictException', 'A domain key rotation is still rewrapping; wait for it to finish.', 409);
    }
    const id = await this.#options.module.rotateDomainKey();
    this.#options.logger.info({ domainKeyId: id }, 'domain key rotated; rewrapping stored records in the background');
    const retiring = await this.#retiringKeyIds();
    const total = await this.#remainingUnder(retiring);
    this.#progress = { State: 'Rewrapping', RetiringDomainKeyIds: retiring, Total: total, Rewrapped: 0, Remaining: total,
      Unreadable: 0, StartedAt: new Date() };
    this.resume();
    return this.progress();
  }

  /** Starts (or keeps) the background rewrap if any key is still retiring: after a rotation, an unseal or a restart. */
  resume(): void {
    if (this.#options.module.status().sealed) return;
    if (this.#running) {
      // A seal and an unseal in quick succession: the stopping run ends, then this one starts.
      if (this.#stopping) this.#resumeAfterStop = true;
      return;
    }
    this.#stopping = false;
    this.#running = this.#run().catch((error: unknown) => {
      if (error instanceof SealedError) {
        this.#progress = { ...this.#progress, State: 'Paused', Message: 'The crypto module is sealed; the rewrap resumes after unseal.' };
      } else {
        this.#options.logger.error({ err: error }, 'domain key rewrap failed; it resumes at the next unseal or restart');
        this.#progress = { ...this.#progress, State: 'Paused', Message: 'The rewrap failed; see the server log. It resumes at the next restart.' };
      }
    }).finally(() => {
      this.#running = undefined;
      if (this.#resumeAfterStop) {
        this.#resumeAfterStop = false;
        this.resume();
      }
    });
  }

  /** Stops after the batch in progress (shutdown, seal); what is done stays done. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#resumeAfterStop = false;
    await this.#running;
  }

  async #retiringKeyIds(): Promise<string[]> {
    const kind = this.#options.module.kind;
    return (await this.#options.store.listDomainKeys()).filter((key) => key.state === 'retiring' && key.module === kind).map((key) => key.id);
  }

  async #remainingUnder(ids: string[]): Promise<number> {
    const counts = await this.#options.store.countWrappedRecords();
    return ids.reduce((sum, id) => sum + (counts.get(id) ?? 0), 0);
  }

  async #run(): Promise<void> {
    const { module, store, logger, batchSize, batchPauseMs, retireGraceMs } = this.#options;
    while (!this.#stopping) {
      const retiring = await this.#retiringKeyIds();
      if (retiring.length === 0) {
        this.#progress = { ...this.#progress, State: 'Idle', RetiringDomainKeyIds: [], Remaining: 0, Message: undefined };
        return;
      }
      const total = await this.#remainingUnder(retiring);
      this.#progress = { State: 'Rewrapping', RetiringDomainKeyIds: retiring, Total: total, Rewrapped: 0, Remaining: total,
        Unreadable: 0, StartedAt: this.#progress.State === 'Idle' ? new Date() : this.#progress.StartedAt ?? new Date() };
      let cursor: WrappedRecordCursor | undefined;
      let unreadable = 0;
      do {
        const batch = await rewrapBatch({ store, source: module, target: module, fromDomainKeyIds: retiring, after: cursor, limit: batchSize });
        cursor = batch.next;
        unreadable += batch.unreadable.length;
        for (const record of batch.unreadable) {
          logger.error({ source: record.source, rowId: record.rowId, domainKeyId: record.material.domainKeyId },
            'stored record does not unwrap; its domain key cannot retire');
        }
        this.#progress = { ...this.#progress, Rewrapped: this.#progress.Rewrapped + batch.rewrapped,
          Remaining: Math.max(0, this.#progress.Remaining - batch.rewrapped - batch.skipped), Unreadable: unreadable };
        if (batchPauseMs > 0) await delay(batchPauseMs);
        else await new Promise((resolve) => setImmediate(resolve));
      } while (cursor && !this.#stopping);
      if (this.#stopping) return;

      const remaining = await this.#remainingUnder(retiring);
      this.#progress = { ...this.#progress, Remaining: remaining };
      if (remaining > 0) {
        if (remaining <= unreadable) {
          this.#progress = { ...this.#progress, State: 'Stuck',
            Message: `${remaining} stored record(s) do not unwrap; the old domain key stays until they are repaired or deleted.` };
          return;
        }
        continue; // rows written under the old key during the pass: another pass picks them up
      }
      this.#progress = { ...this.#progress, State: 'Retiring' };
      await delay(retireGraceMs);
      if (this.#stopping) return;
      if (await this.#remainingUnder(retiring) > 0) continue;
      try {
        for (const id of retiring) {
          await module.retireDomainKey(id);
          logger.info({ domainKeyId: id }, 'domain key retired: nothing references it any more');
        }
      } catch (error) {
        // A row written under the old key since the last count (another server that had not yet
        // seen the rotation): the store refused the retirement; another pass rewraps it.
        if (!(error instanceof StoreConflictError)) throw error;
      }
    }
  }
}
