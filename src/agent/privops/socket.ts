// The agent's PrivilegedOperation socket operation: a courier on this host hands over a request file and gets back
// only the sealed result. The judging and running is the executor's, shared with the server relay.
// Must never answer anything but the sealed result for an accepted request.
import { z } from 'zod';
import { parseInput } from '../../shared/http/index.ts';
import type { SocketOperation } from '../socket-api.ts';
import type { PrivopExecutor } from './executor.ts';

const schema = z.object({ Request: z.unknown() }).strict();

export function privilegedOperations(executor: PrivopExecutor): Record<string, SocketOperation> {
  return {
    PrivilegedOperation: async (body) => {
      const input = parseInput(schema, body);
      const accepted = await executor.accept(input.Request, 'socket');
      const parts: Buffer[] = [];
      for await (const part of accepted.run()) parts.push(part);
      const sealed = Buffer.concat(parts);
      return { Sealed: sealed.toString('base64'), RequestDigest: accepted.parsed.digest.toString('base64url') };
    },
  };
}
