// What a privileged operation is: a name, a parameter parser and a runner, declared as data.
// Must never hold state between requests: each run starts from its parsed parameters only.
import type { PrivopParameters } from '../../shared/privop-wire.ts';

/** One operation: `parse` checks the request's parameters (a UserError PrivopInvalidParameters), `run` does the work. */
export interface PrivilegedOperationDefinition<Input> {
  name: string;
  description: string;
  parse(parameters: PrivopParameters): Input;
  /** The result (JSON-able), or a StreamedOperationResult for bulk content that must not be held whole. */
  run(input: Input): Promise<unknown>;
}

/**
 * What an operation with bulk content returns: the content, pulled piece by piece as the sealed result is written
 * (so a slow reader slows the operation), and the result JSON, described once the content has gone by.
 */
export class StreamedOperationResult {
  constructor(readonly content: AsyncIterable<Buffer>, readonly describe: () => unknown) {}
}

/** An operation with its parameters parsed, ready to run. */
export type PreparedOperation = () => Promise<unknown>;

export interface PrivilegedOperations {
  names(): string[];
  /** Parses the parameters for `name`; UserError when the operation is unknown or its parameters are wrong. */
  prepare(name: string, parameters: PrivopParameters): PreparedOperation;
}

export function defineOperation<Input>(definition: PrivilegedOperationDefinition<Input>): PrivilegedOperationDefinition<unknown> {
  return definition as PrivilegedOperationDefinition<unknown>;
}
