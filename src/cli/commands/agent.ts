// `trustplane agent`: the host agent (enrol, follow the key ring push, serve the local socket).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../../shared/errors.ts';
import { createLogger } from '../../shared/log.ts';

interface AgentFlags {
  server?: string; joinToken?: string; state: string; socket: string; socketMode: string; name?: string; tpm?: string; measure: string[];
  operational: boolean; privopTrust?: string; privopLogRoot: string[];
}

export function registerAgentCommand(program: Command): void {
  program.command('agent').description('run the host agent: enrol, hold this host\'s keys, serve local apps on a Unix socket')
    .option('--server <url>', 'the trustplane server to enrol with (first start only)')
    .option('--join-token <token>', 'join token from `trustplane host join-token` (first start only; or $TRUSTPLANE_JOIN_TOKEN); '
      + 'without one, --tpm enrols by the TPM\'s endorsement key (class allow-ek)')
    .option('--state <dir>', 'state directory: identity, host-local key, encrypted key ring cache', '/var/lib/trustplane-agent')
    .option('--socket <path>', 'Unix socket local applications use', '/run/trustplane/agent.sock')
    .option('--socket-mode <octal>', 'permissions of the socket (who may use the keys)', '660')
    .option('--name <name>', 'host name to enrol under (default: this machine\'s hostname)')
    .option('--tpm <tcti>', 'attest with this TPM 2.0 (e.g. device:/dev/tpmrm0, swtpm:host=127.0.0.1,port=2321); without it: software mode')
    .option('--measure <path>', 'a boot component to measure (firmware image, kernel, initrd...); repeatable',
      (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--privop-trust <file>', 'JSON file naming the signers (pinned public keys) that may request privileged operations, and which')
    .option('--privop-log-root <dir>', 'a directory logs.collect may read besides /var/log; repeatable',
      (value: string, previous: string[]) => [...previous, value], [] as string[])
    .option('--no-operational', 'do not report operational parameters (listening ports, modules, executables, users)')
    .action(async (flags: AgentFlags) => {
      const mode = Number.parseInt(flags.socketMode, 8);
      if (!/^[0-7]{3}$/.test(flags.socketMode) || (mode & 0o007) !== 0) {
        throw new UserError('ValidationException', `--socket-mode must be three octal digits with no access for others (e.g. 660, 600); got '${flags.socketMode}'.`);
      }
      const logger = createLogger();
      const { startAgent } = await import('../../agent/index.ts');
      const agent = await startAgent({ server: flags.server, joinToken: flags.joinToken ?? process.env.TRUSTPLANE_JOIN_TOKEN,
        stateDir: flags.state, socketPath: flags.socket, socketMode: mode, name: flags.name, tpm: flags.tpm, measure: flags.measure,
        operational: flags.operational, privopTrust: flags.privopTrust,
        privopLogRoots: flags.privopLogRoot.map((root) => resolve(root)), programPath: process.argv[1] }, logger);
      delete process.env.TRUSTPLANE_JOIN_TOKEN;
      process.stdout.write(`trustplane agent running as host ${agent.hostId}; socket ${flags.socket}\n`);
      const stop = () => { void agent.stop(); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const result = await agent.done;
      if (result.revoked) {
        process.stderr.write(`This host was revoked (${result.revoked}); its keys and identity were wiped.\n`);
        process.exitCode = 3;
      }
    });
}
