// `patch.rollback`: puts back, atomically, the content a patch.apply replaced, only if the file still holds what that patch wrote.
// Must never overwrite a file changed since the patch, nor restore bytes that do not hash to the backup's name.
import { readCurrentFile, replaceFileAtomically } from './atomic-file.ts';
import { onlyParameters, pathParameter, sha256Parameter } from './parameters.ts';
import { defineOperation, type PrivilegedOperationDefinition } from './operation.ts';
import type { PatchBackups } from './patch-backups.ts';
import { hashMismatch } from './patch-apply.ts';

interface RollbackInput { path: string; backupSha256: string }

export function createPatchRollbackOperation(backups: PatchBackups): PrivilegedOperationDefinition<unknown> {
  return defineOperation({
    name: 'patch.rollback',
    description: 'restore the content a patch.apply replaced, if the file still holds the patched content (parameters: path, backupSha256 = the PreviousSha256 patch.apply returned)',
    parse(parameters): RollbackInput {
      onlyParameters('patch.rollback', parameters, ['path', 'backupSha256']);
      return { path: pathParameter('patch.rollback', parameters, 'path'), backupSha256: sha256Parameter('patch.rollback', parameters, 'backupSha256') };
    },
    async run({ path, backupSha256 }: RollbackInput) {
      const { record, content, backup } = await backups.find(path, backupSha256);
      const current = await readCurrentFile(path);
      if (current.sha256 !== record.NewSha256) throw hashMismatch('the one the patch wrote (it was changed since, or rolled back already)');
      await replaceFileAtomically(path, content, { mode: record.Mode, uid: record.Uid, gid: record.Gid }, async () => {
        if ((await readCurrentFile(path)).sha256 !== record.NewSha256) throw hashMismatch('the one the patch wrote (it was changed since, or rolled back already)');
      });
      return { Path: path, Backup: backup, RestoredSha256: backupSha256, ReplacedSha256: current.sha256 };
    },
  });
}
