// `trustplane proxy s3`: the encrypting S3 zone proxy, configured by one YAML file.
// Must never print a credential from the configuration, nor keep running after a failed start.
import type { Command } from 'commander';
import { createLogger } from '../../shared/log.ts';

export function registerProxyCommands(program: Command): void {
  const proxy = program.command('proxy').description('zone proxies: encrypt what leaves this zone with keys that never leave it');
  proxy.command('s3').description('an S3-compatible proxy that encrypts objects into backing S3 zones, under data policies')
    .requiredOption('--config <file>', 'zone.yaml: listen, zone, kms, clients, zones, defaultZone, policies (see the README)')
    .action(async (flags: { config: string }) => {
      const { loadZoneConfig, startZoneS3Proxy } = await import('../../services/zones/index.ts');
      const config = loadZoneConfig(flags.config);
      const logger = createLogger();
      const running = await startZoneS3Proxy(config, logger);
      const zones = [...config.zones.keys()].join(', ');
      process.stdout.write(`trustplane S3 zone proxy listening on ${running.url} (zone ${config.zone})\n`
        + `backing zones: ${zones} (default ${config.defaultZone}); ${config.rules.length} policy rule${config.rules.length === 1 ? '' : 's'}\n`);
      const stop = () => { void running.close().then(() => process.exit(0)); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
