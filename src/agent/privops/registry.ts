// The closed list of privileged operations a signed request may name, each a module declared as data
// (name, parameter parsing, run). Must never run an operation whose parameters did not parse.
import { UserError } from '../../shared/errors.ts';
import type { PrivilegedOperationDefinition, PrivilegedOperations } from './operation.ts';
import { fileHashOperation } from './file-hash.ts';
import { fileReadOperation } from './file-read.ts';
import { processListOperation } from './process-list.ts';
import { systemSnapshotOperation } from './system-snapshot.ts';

export function createOperationRegistry(definitions: Array<PrivilegedOperationDefinition<unknown>> = [
  systemSnapshotOperation, processListOperation, fileHashOperation, fileReadOperation,
]): PrivilegedOperations {
  const byName = new Map(definitions.map((definition) => [definition.name, definition]));
  return {
    names: () => [...byName.keys()].sort(),
    prepare(name, parameters) {
      const definition = byName.get(name);
      if (!definition) {
        throw new UserError('PrivopUnknownOperation', `This agent has no privileged operation '${name}' (it has ${[...byName.keys()].sort().join(', ')}).`);
      }
      const input = definition.parse(parameters);
      return () => definition.run(input);
    },
  };
}
