// The `trustplane` program: one binary, one subcommand per role or resource.
// Must never let an exception escape as a stack trace: every failure is one line and exit 1.
import { Command } from 'commander';
import { registerServerCommand } from './commands/server.ts';
import { registerKeyCommands, registerSecretCommands } from './commands/key.ts';
import { registerFileCryptoCommands } from './commands/file-crypto.ts';
import { registerReencryptCommand } from './commands/reencrypt.ts';
import { registerIdentityCommands } from './commands/identity.ts';
import { registerAuditCommands } from './commands/audit.ts';
import { registerOperatorCommands } from './commands/operator.ts';
import { registerFleetCommands } from './commands/fleet.ts';
import { registerAttestCommands } from './commands/attest.ts';
import { registerAgentCommand } from './commands/agent.ts';
import { registerPrivopCommands } from './commands/privop.ts';
import { registerProxyCommands } from './commands/proxy.ts';
import { failWith } from './output.ts';

const program = new Command();
program.name('trustplane').description('trustplane: a self-hosted trust plane for fleets of machines')
  .version('0.1.0').showHelpAfterError();

registerServerCommand(program);
registerKeyCommands(program);
registerSecretCommands(program);
registerFileCryptoCommands(program);
registerReencryptCommand(program);
registerIdentityCommands(program);
registerAuditCommands(program);
registerOperatorCommands(program);
registerFleetCommands(program);
registerAttestCommands(program);
registerAgentCommand(program);
registerPrivopCommands(program);
registerProxyCommands(program);

program.parseAsync(process.argv).catch(failWith);
