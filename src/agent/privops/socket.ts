// The agent's PrivilegedOperation socket operation: a courier on this host hands over a request file and gets back
// only the sealed result, streamed as the HTTP body as it is made. The judging and running is the executor's, shared with
// the server relay. Must never answer anything but the sealed result for an accepted request (refusals: typed JSON errors).
import { z } from 'zod';
import { parseInput } from '../../shared/http/index.ts';
import { SocketStreamReply, type SocketOperation } from '../socket-api.ts';
import type { PrivopExecutor } from './executor.ts';

const schema = z.object({ Request: z.unknown() }).strict();

export function privilegedOperations(executor: PrivopExecutor): Record<string, SocketOperation> {
  return {
    PrivilegedOperation: async (body) => {
      const input = parseInput(schema, body);
      const accepted = await executor.accept(input.Request, 'socket');
      return new SocketStreamReply(accepted.run());
    },
  };
}
