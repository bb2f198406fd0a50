// The backups patch.apply keeps in the agent's state directory, and the record of each patch that patch.rollback needs.
// Must never store a backup or record readable by others, nor trust a backup whose bytes no longer match its name.
import { mkdirSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { UserError } from '../../shared/errors.ts';
import { sha256Hex } from '../../shared/crypto/index.ts';
import { replaceFileAtomically } from './atomic-file.ts';

export const PATCH_RECORD_VERSION = 1;

const recordSchema = z.object({
  Version: z.literal(PATCH_RECORD_VERSION), Path: z.string(), PreviousSha256: z.string(), NewSha256: z.string(),
  Mode: z.number().int(), Uid: z.number().int(), Gid: z.number().int(), AppliedAt: z.string(),
}).strict();
export type PatchRecord = z.infer<typeof recordSchema>;

/**
 * `<state>/privop-backups/<sha256>`: the bytes a patch replaced, named by their hash (so one copy serves every file that had them);
 * `<sha256>-<hash of the path, 16 hex>.json`: what patch.apply did to that path (the hash rollback must find, mode and owner to restore).
 */
export class PatchBackups {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'privop-backups');
  }

  private recordPath(previousSha256: string, path: string) {
    return join(this.dir, `${previousSha256}-${sha256Hex(path).slice(0, 16)}.json`);
  }

  backupPath(sha256: string) {
    return join(this.dir, sha256);
  }

  /** Stores the previous bytes (if not stored yet) and the record; both durable before the patch is applied. */
  async keep(record: PatchRecord, previous: Buffer): Promise<string> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const backup = this.backupPath(record.PreviousSha256);
    const existing = await stat(backup).catch(() => undefined);
    if (!existing || sha256Hex(await readFile(backup)) !== record.PreviousSha256) await replaceFileAtomically(backup, previous, { mode: 0o600 });
    await replaceFileAtomically(this.recordPath(record.PreviousSha256, record.Path), Buffer.from(`${JSON.stringify(record)}\n`), { mode: 0o600 });
    return backup;
  }

  /** The record and backed-up bytes of the patch of `path` that replaced content hashing to `backupSha256`. */
  async find(path: string, backupSha256: string): Promise<{ record: PatchRecord; content: Buffer; backup: string }> {
    const text = await readFile(this.recordPath(backupSha256, path), 'utf8').catch(() => {
      throw new UserError('PatchBackupNotFound', 'This agent kept no backup with that hash for that path.', 404);
    });
    const record = recordSchema.safeParse(JSON.parse(text));
    if (!record.success || record.data.Path !== path || record.data.PreviousSha256 !== backupSha256) {
      throw new UserError('PatchBackupCorrupt', 'The record of that patch is damaged; nothing was changed.', 500);
    }
    const backup = this.backupPath(backupSha256);
    const content = await readFile(backup).catch(() => { throw new UserError('PatchBackupNotFound', 'The backup file is missing.', 404); });
    if (sha256Hex(content) !== backupSha256) throw new UserError('PatchBackupCorrupt', 'The backup no longer hashes to its name; nothing was changed.', 500);
    return { record: record.data, content, backup };
  }
}
