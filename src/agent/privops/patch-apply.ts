// `patch.apply`: replaces a file atomically with the request's content, only if its current SHA-256 is the one the request names.
// Must never change a file whose hash differs, nor replace it before its backup and the patch record are durable.
import { UserError } from '../../shared/errors.ts';
import { sha256Hex } from '../../shared/crypto/index.ts';
import { readCurrentFile, replaceFileAtomically } from './atomic-file.ts';
import { onlyParameters, pathParameter, sha256Parameter, stringParameter } from './parameters.ts';
import { defineOperation, type PrivilegedOperationDefinition } from './operation.ts';
import { PATCH_RECORD_VERSION, type PatchBackups } from './patch-backups.ts';

export const MAX_PATCH_BYTES = 16 * 1024 * 1024;
/** Base64 of MAX_PATCH_BYTES, padded. */
export const MAX_PATCH_BASE64_CHARS = Math.ceil(MAX_PATCH_BYTES / 3) * 4;

interface PatchInput { path: string; expectedSha256: string; content: Buffer }

export const hashMismatch = (expected = 'the one the request names') => new UserError('PatchHashMismatch',
  `The file's current SHA-256 is not ${expected}; nothing was changed.`, 409);

export function createPatchApplyOperation(backups: PatchBackups): PrivilegedOperationDefinition<unknown> {
  return defineOperation({
    name: 'patch.apply',
    description: 'replace a regular file atomically if its SHA-256 matches, keeping a backup (parameters: path, expectedSha256, contentBase64 (at most 16 MiB))',
    parse(parameters): PatchInput {
      onlyParameters('patch.apply', parameters, ['path', 'expectedSha256', 'contentBase64']);
      const encoded = stringParameter('patch.apply', parameters, 'contentBase64', { pattern: /^[A-Za-z0-9+/]*={0,2}$/,
        what: 'padded base64 of at most 16 MiB', maxLength: MAX_PATCH_BASE64_CHARS, required: true });
      // Checked apart from the pattern: a grouped repetition over 22 million characters overflows the regex engine's stack.
      if (encoded.length % 4 !== 0) throw new UserError('PrivopInvalidParameters', 'patch.apply: parameter contentBase64 must be padded base64 of at most 16 MiB.');
      return { path: pathParameter('patch.apply', parameters, 'path'), expectedSha256: sha256Parameter('patch.apply', parameters, 'expectedSha256'),
        content: Buffer.from(encoded, 'base64') };
    },
    async run({ path, expectedSha256, content }: PatchInput) {
      const current = await readCurrentFile(path);
      if (current.sha256 !== expectedSha256) throw hashMismatch();
      const newSha256 = sha256Hex(content);
      const backup = await backups.keep({ Version: PATCH_RECORD_VERSION, Path: path, PreviousSha256: current.sha256, NewSha256: newSha256,
        Mode: current.mode, Uid: current.uid, Gid: current.gid, AppliedAt: new Date().toISOString() }, current.content);
      // Checked again just before the rename: a writer may have changed the file while the backup was written.
      await replaceFileAtomically(path, content, current, async () => {
        if ((await readCurrentFile(path)).sha256 !== expectedSha256) throw hashMismatch();
      });
      return { Path: path, Backup: backup, PreviousSha256: current.sha256, NewSha256: newSha256, Size: content.length };
    },
  });
}
