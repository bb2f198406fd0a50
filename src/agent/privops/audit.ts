// The host's record of every privileged-operation request it accepted or refused: JSON lines in the state directory.
// Must never record parameter values (only their names) nor anything from a result.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.ts';
import type { PrivopChannel } from './executor.ts';

export const PRIVOP_AUDIT_FILE = 'privop-audit.jsonl';

export interface PrivopAuditEntry {
  Time: string;
  /** aborted: accepted and started, but the sealed result did not leave whole (the courier went away, or sealing failed). */
  Outcome: 'accepted' | 'refused' | 'failed' | 'aborted';
  /** How the request reached the host: its local socket or the server relay. */
  Channel?: PrivopChannel;
  /** The request came encrypted to the host's request key. */
  Encrypted?: boolean;
  /** The refusal's or the failure's error code. */
  Code?: string;
  Reason?: string;
  RequestDigest?: string;
  Operation?: string;
  ParameterNames?: string[];
  Target?: Record<string, string>;
  Requester?: string;
  Signer?: string;
  SignerKeyId?: string;
  Nonce?: string;
  NotAfter?: string;
}

export class PrivopAudit {
  readonly #path: string;
  readonly #logger: Logger;

  constructor(stateDir: string, logger: Logger) {
    this.#path = join(stateDir, PRIVOP_AUDIT_FILE);
    this.#logger = logger;
  }

  record(entry: PrivopAuditEntry): void {
    this.#logger.info({ privop: entry }, `privileged operation ${entry.Outcome}`);
    try {
      appendFileSync(this.#path, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    } catch (error) {
      this.#logger.error({ err: error, path: this.#path }, 'cannot write the privileged-operation audit log');
      throw error;
    }
  }
}
