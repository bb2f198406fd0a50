// What every client command shares: --endpoint and --json, and a client that explains
// connection failures. Must never print credentials.
import type { Command } from 'commander';
import { explainConnectionError, KeyServiceClient } from '../clients/kms.ts';
import { UserError } from '../shared/errors.ts';

export interface ClientFlags {
  endpoint?: string;
  json?: boolean;
}

export function withClientFlags(command: Command): Command {
  return command.option('--endpoint <url>', 'trustplane URL (default $TRUSTPLANE_ENDPOINT or http://127.0.0.1:8200)')
    .option('--json', 'machine-readable output');
}

export async function withClient<T>(flags: ClientFlags, work: (client: KeyServiceClient) => Promise<T>): Promise<T> {
  const client = new KeyServiceClient({ endpoint: flags.endpoint });
  try {
    return await work(client);
  } catch (error) {
    throw explainConnectionError(error, client.endpoint);
  } finally {
    client.destroy();
  }
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Repeated `--flag KEY=VALUE` options as pairs; a value may itself contain '='. */
export function parseKeyValuePairs(flag: string, pairs: string[]): Array<[string, string]> {
  return pairs.map((pair) => {
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new UserError('InvalidArgument', `--${flag} expects KEY=VALUE, got '${pair}'.`);
    return [pair.slice(0, equals), pair.slice(equals + 1)];
  });
}
