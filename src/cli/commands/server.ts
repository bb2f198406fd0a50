// `trustplane server`: runs the control plane in the foreground until SIGTERM or SIGINT.
// Must never print credentials except the dev-mode root credentials meant to be pasted.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { serverConfig } from '../../shared/config.ts';
import { createLogger } from '../../shared/log.ts';
import { startServer } from '../../server.ts';

function readDevCredentials(home: string): { accessKeyId: string; secretAccessKey: string } | undefined {
  const path = join(home, 'credentials');
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  const accessKeyId = /aws_access_key_id\s*=\s*(\S+)/.exec(text)?.[1];
  const secretAccessKey = /aws_secret_access_key\s*=\s*(\S+)/.exec(text)?.[1];
  return accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined;
}

export function registerServerCommand(program: Command): void {
  program.command('server')
    .description('run the trustplane control plane (key service) in the foreground')
    .option('--home <dir>', 'data directory (default $TRUSTPLANE_HOME or ./.trustplane)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8200)')
    .option('--dev', 'development mode: auto-unseal from a file in the home, print root credentials')
    .option('--region <name>', 'region named in ARNs, fixed when the home is created (default us-east-1)')
    .option('--schedule-interval <seconds>', 'how often due rotations and deletions run (default 60)')
    .option('--rate-limit <limits>', 'requests/s per principal: cryptographic=N,management=N (default 50000 and 500)')
    .action(async (options: { home?: string; listen?: string; dev?: boolean; region?: string; scheduleInterval?: string; rateLimit?: string }) => {
      const config = serverConfig({ ...options, scheduleIntervalSeconds: options.scheduleInterval });
      const logger = createLogger();
      const server = await startServer(config, logger);
      const out = process.stdout;
      out.write(`trustplane server listening on ${server.url}${config.dev ? ' (DEV MODE: auto-unseal, not for production)' : ''}\n`);
      out.write(`home: ${server.home}  account: ${server.accountId}  region: ${server.region}\n`);
      const credentials = server.rootCredentials ?? (config.dev ? readDevCredentials(server.home) : undefined);
      if (credentials) {
        out.write(`\nRoot credentials (also in ${join(server.home, 'credentials')}, profile trustplane):\n\n`);
        out.write(`export AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} AWS_REGION=${server.region}\n`);
        out.write(`export AWS_ENDPOINT_URL=${server.url} TRUSTPLANE_ENDPOINT=${server.url}\n\n`);
        out.write(`Try: aws kms create-key --endpoint-url ${server.url}\n`);
      }
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down: sealing the crypto module');
        await server.stop();
        process.exit(0);
      };
      process.on('SIGTERM', () => { void stop('SIGTERM'); });
      process.on('SIGINT', () => { void stop('SIGINT'); });
    });
}
