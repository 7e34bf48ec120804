// The `weft` command. Each subcommand lives in its own module and registers itself here;
// this file only wires them together and turns errors into exit codes and messages.
import { Command, CommanderError } from 'commander';
import { WeftError } from '../errors.ts';
import { registerCommands } from './commands.ts';

// The CNI server deletes pods' veths on libuv's thread pool (src/netlink/off-thread.ts); the
// kernel keeps each such call ~20 ms, so a burst of DELs needs more than libuv's 4 threads to
// overlap. The pool starts on first use, after this line.
process.env.UV_THREADPOOL_SIZE ??= '64';

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
