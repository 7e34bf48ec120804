// The `weft` command. Each subcommand lives in its own module and registers itself here;
// this file only wires them together and turns errors into exit codes and messages:
//   0  done (also --help and --version)
//   1  the command ran and failed (a WeftError: its one-line message, never a stack trace)
//   2  the command line is wrong (unknown or unsupported flag, missing or invalid argument):
//      one line saying what, and which --help to read; not the whole help.
import { Command, CommanderError } from 'commander';
import pkg from '../../package.json' with { type: 'json' };
import { WeftError } from '../errors.ts';
import { registerCommands } from './commands.ts';
import { UsageError, normalizeAgentArgs } from './flanneld-args.ts';

export const USAGE_EXIT_CODE = 2;

// The CNI server deletes pods' veths on libuv's thread pool (src/netlink/off-thread.ts); the
// kernel keeps each such call ~20 ms, so a burst of DELs needs more than libuv's 4 threads to
// overlap. The pool starts on first use, after this line.
process.env.UV_THREADPOOL_SIZE ??= '64';

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Every command: errors as one line plus where the help is, and no process.exit inside commander. */
function configureErrors(cmd: Command): void {
  const path = commandPath(cmd);
  cmd.showHelpAfterError(false).exitOverride().configureOutput({
    outputError: (text, write) => write(`${path}: ${text.trim().replace(/^error: /, '')}\nsee \`${path} --help\`\n`),
  });
  for (const sub of cmd.commands) configureErrors(sub);
}

/** flanneld's spellings of `weft agent`'s flags (and `-version` anywhere) as commander takes them. */
function normalizeArgv(argv: readonly string[]): string[] {
  const [node = '', script = '', ...args] = argv;
  if (args[0] === 'agent') return [node, script, 'agent', ...normalizeAgentArgs(args.slice(1))];
  if (args[0] === '-version') return [node, script, '--version', ...args.slice(1)];
  return [...argv];
}

const program = new Command('weft')
  .description('weft: a Kubernetes pod network (CNI plugin + node agent)')
  .version(pkg.version, '-V, --version', "print weft's version")
  // Options belong to the command they follow: `weft status peers --json` is the view's --json.
  .enablePositionalOptions();

registerCommands(program, pkg.version);
configureErrors(program);

try {
  await program.parseAsync(normalizeArgv(process.argv));
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version printed on request are success; everything else commander throws is a usage error.
    process.exit(e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : USAGE_EXIT_CODE);
  }
  if (e instanceof UsageError) {
    process.stderr.write(`${e.command}: ${e.message}\nsee \`${e.command} --help\`\n`);
    process.exit(USAGE_EXIT_CODE);
  }
  if (e instanceof WeftError) {
    process.stderr.write(`weft: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
