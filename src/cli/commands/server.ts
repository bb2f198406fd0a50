// `trustplane server`: runs the control plane in the foreground until SIGTERM or SIGINT.
// Must never print credentials except the dev-mode root credentials meant to be pasted.
import { join } from 'node:path';
import type { Command } from 'commander';
import { serverConfig, type ServerFlags } from '../../shared/config.ts';
import { createLogger } from '../../shared/log.ts';
import { AWS_PROFILE, CREDENTIALS_FILE } from '../../shared/home-files.ts';

export function registerServerCommand(program: Command): void {
  program.command('server')
    .description('run the trustplane control plane (key service) in the foreground')
    .option('--home <dir>', 'data directory (default $TRUSTPLANE_HOME or ./.trustplane)')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:8200)')
    .option('--dev', 'development mode: auto-unseal from a file in the home, print root credentials')
    .option('--region <name>', 'region named in ARNs, fixed when the home is created (default us-east-1)')
    .option('--schedule-interval <seconds>', 'how often due rotations and deletions run (default 60)')
    .option('--rate-limit <limits>', 'requests/s per principal: cryptographic=N,management=N (default 50000 and 500)')
    .option('--seal <kind>', 'crypto module: software (Shamir-unsealed root key, default) or pkcs11 (an HSM token)')
    .option('--pkcs11-module <path>', 'PKCS#11 library of the HSM (e.g. /usr/lib/softhsm/libsofthsm2.so)')
    .option('--pkcs11-token <label>', 'label of the token holding the domain keys')
    .option('--pkcs11-pin-file <file>', 'file holding the token PIN (or set TRUSTPLANE_PKCS11_PIN)')
    .option('--key-cache-size <n>', 'unwrapped customer key versions kept in memory (default 10000)')
    .option('--key-cache-ttl <seconds>', 'how long an unwrapped key version stays in memory; 0 disables the cache (default 60)')
    .option('--rewrap-batch-size <n>', 'records rewrapped per transaction after a domain key rotation (default 100)')
    .option('--rewrap-pause <ms>', 'pause between rewrap batches, to leave room for requests (default 0)')
    .option('--fleet-listen <host:port>', 'mutual-TLS listener for host agents (default: the --listen port + 1; port 0 = any free port)')
    .option('--host-certificate-lifetime <duration>', 'lifetime of host certificates, e.g. 30d, 12h (default 30d); agents renew at two thirds')
    .option('--public-url <url>', 'the URL relying parties reach this server at: issuer of attestation (EAR) tokens (default: the listen URL)')
    .option('--ek-ca <file>', 'PEM certificate(s) of a TPM manufacturer\'s EK CA; TPM hosts must then show an EK certificate chained to one (repeatable)',
      (value: string, previous: string[] = []) => [...previous, value])
    .option('--attested-certificate-lifetime <duration>', 'lifetime of certificates issued to attested hosts on a CSR (default 24h)')
    .option('--privop-max-result-bytes <bytes>', 'largest sealed privileged-operation result the relay keeps (default 1 GiB)')
    .action(async (options: Omit<ServerFlags, 'scheduleIntervalSeconds'> & { scheduleInterval?: string }) => {
      const config = serverConfig({ ...options, scheduleIntervalSeconds: options.scheduleInterval });
      const logger = createLogger();
      // Loaded here, not at start-up: every other command would pay for the server's modules (native addons among them).
      const { startServer } = await import('../../server.ts');
      const server = await startServer(config, logger);
      const out = process.stdout;
      out.write(`trustplane server listening on ${server.url}${config.dev ? ' (DEV MODE: auto-unseal, not for production)' : ''}\n`);
      out.write(`home: ${server.home}  account: ${server.accountId}  region: ${server.region}  host agents: port ${server.fleetPort} (mutual TLS)\n`);
      const sealStatus = await server.operator.status();
      if (!sealStatus.Initialized) {
        out.write(`\nThe crypto module (${sealStatus.Module}) is not initialised. Run:\n  trustplane operator init --endpoint ${server.url}${sealStatus.Module === 'software' ? ' --shares 5 --threshold 3' : ''}\n`);
      } else if (sealStatus.Sealed) {
        out.write(`\nThe crypto module is SEALED${sealStatus.SealedReason ? ` (${sealStatus.SealedReason})` : ''}: key operations fail until it is unsealed.\n`);
        if (sealStatus.Module === 'software') out.write(`Unseal with ${sealStatus.Threshold} shares: trustplane operator unseal --endpoint ${server.url}\n`);
      }
      const credentials = server.rootCredentials;
      if (credentials) {
        out.write(`\nRoot credentials (also in ${join(server.home, CREDENTIALS_FILE)}, profile ${AWS_PROFILE}):\n\n`);
        out.write(`export AWS_ACCESS_KEY_ID=${credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${credentials.secretAccessKey} AWS_REGION=${server.region}\n`);
        out.write(`export AWS_ENDPOINT_URL=${server.url} TRUSTPLANE_ENDPOINT=${server.url}\n\n`);
        out.write(`Try: aws kms create-key --endpoint-url ${server.url}\n`);
      }
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down: sealing the crypto module');
        try {
          await server.stop();
        } catch (error) {
          logger.error({ err: error }, 'shutdown did not complete cleanly (the crypto module was sealed)');
          process.exit(1);
        }
        process.exit(0);
      };
      process.on('SIGTERM', () => { void stop('SIGTERM'); });
      process.on('SIGINT', () => { void stop('SIGINT'); });
    });
}
