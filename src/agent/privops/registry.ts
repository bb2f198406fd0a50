// The closed list of privileged operations a signed request may name, each a module declared as data
// (name, parameter parsing, run). Must never run an operation whose parameters did not parse.
import { UserError } from '../../shared/errors.ts';
import type { PrivilegedOperationDefinition, PrivilegedOperations } from './operation.ts';
import { fileHashOperation } from './file-hash.ts';
import { fileReadOperation } from './file-read.ts';
import { processListOperation } from './process-list.ts';
import { createLogsCollectOperation } from './logs-collect.ts';
import { createPatchApplyOperation } from './patch-apply.ts';
import { PatchBackups } from './patch-backups.ts';
import type { ProtectedResources } from './protected-resources.ts';
import { createPatchRollbackOperation } from './patch-rollback.ts';
import { processDumpOperation } from './process-dump.ts';
import { processMemoryReadOperation } from './process-memory-read.ts';
import { systemSnapshotOperation } from './system-snapshot.ts';

/**
 * The operations this host offers. `stateDir` holds patch backups (without it patch.apply and patch.rollback are absent:
 * a patch is never applied without a place for its backup); `logRoots` adds to /var/log for logs.collect.
 */
export function hostOperations(options: { stateDir?: string; logRoots?: string[] } = {}): Array<PrivilegedOperationDefinition<unknown>> {
  const backups = options.stateDir ? new PatchBackups(options.stateDir) : undefined;
  return [
    systemSnapshotOperation, processListOperation, fileHashOperation, fileReadOperation, processMemoryReadOperation, processDumpOperation,
    createLogsCollectOperation({ roots: options.logRoots }),
    ...(backups ? [createPatchApplyOperation(backups), createPatchRollbackOperation(backups)] : []),
  ];
}

/** `protect`: what no request may name (see ProtectedResources), checked on every operation's pid and path parameters. */
export function createOperationRegistry(definitions: Array<PrivilegedOperationDefinition<unknown>> = hostOperations(),
  protect?: ProtectedResources): PrivilegedOperations {
  const byName = new Map(definitions.map((definition) => [definition.name, definition]));
  return {
    names: () => [...byName.keys()].sort(),
    prepare(name, parameters) {
      const definition = byName.get(name);
      if (!definition) {
        throw new UserError('PrivopUnknownOperation', `This agent has no privileged operation '${name}' (it has ${[...byName.keys()].sort().join(', ')}).`);
      }
      const input = definition.parse(parameters);
      protect?.check(name, parameters);
      return () => definition.run(input);
    },
  };
}
