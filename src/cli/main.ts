// The `weft` command. Each subcommand lives in its own module and registers itself here;
// this file only wires them together and turns errors into exit codes and messages.
import { Command, CommanderError } from 'commander';
import { WeftError } from '../errors.ts';
import { registerCommands } from './commands.ts';

const program = new Command('weft')
  .description('weft: a Kubernetes pod network (CNI plugin + node agent)')
  .showHelpAfterError()
  .exitOverride();

registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode);
  if (e instanceof WeftError) {
    process.stderr.write(`weft: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
