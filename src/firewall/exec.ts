// Running the firewall tools. Everything goes through a Runner so that tests and the lab can
// point the library at a scratch network namespace (netnsRunner) while production runs the
// tools in the agent's own namespace (localRunner). Node cannot setns() one thread, so a
// namespace is entered by the child process (`ip netns exec`), never by us.
import { spawn } from 'node:child_process';
import { WeftError } from '../errors.ts';

export interface RunResult {
  /** Exit status; 127 when the program does not exist (as a shell reports it). */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] with the rest as arguments, feeding `input` to stdin. Never rejects on exit status. */
export type Runner = (argv: readonly string[], input?: string) => Promise<RunResult>;

export const localRunner: Runner = (argv, input) =>
  new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      reject(new WeftError('WEFT_INTERNAL', 'firewall runner called with an empty command'));
      return;
    }
    // LC_ALL=C: we parse tool output, and some messages are translated.
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => {}); // EPIPE if the tool exits early; its exit status tells the story
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') resolve({ code: 127, stdout: '', stderr: `${cmd}: command not found` });
      else reject(new WeftError('WEFT_FIREWALL', `could not start ${cmd}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString('utf8'), stderr: signal ? `${stderr}killed by ${signal}` : stderr });
    });
    child.stdin.end(input ?? '');
  });

/** Runs every command inside the named network namespace (`ip netns exec <ns> …`). */
export function netnsRunner(netns: string, base: Runner = localRunner): Runner {
  return async (argv, input) => {
    const r = await base(['ip', 'netns', 'exec', netns, ...argv], input);
    // `ip netns exec` exits 1 (not 127) when the program is missing; normalise for callers.
    if (r.code !== 0 && /^exec of ".*" failed: No such file or directory/m.test(r.stderr)) return { ...r, code: 127 };
    return r;
  };
}

/**
 * The stdout of a finished command, or a WEFT_FIREWALL error naming the command, its stderr
 * and what to do next. `what` says what we were doing ("rebuild the ipv4 rules").
 */
export function expectSuccess(r: RunResult, argv: readonly string[], what: string, input?: string): string {
  if (r.code === 0) return r.stdout;
  const stderr = r.stderr.trim() || '(no output)';
  const hint = r.code === 127
    ? `install ${argv[0]} or choose the other firewall backend`
    : 'check that weft runs with NET_ADMIN and that the kernel has the needed netfilter modules' +
      (input === undefined ? '' : '; the input given to the tool is in the error details');
  throw new WeftError('WEFT_FIREWALL', `${argv.join(' ')} failed (exit ${r.code}) while trying to ${what}: ${stderr}; ${hint}`,
    input === undefined ? {} : { details: input });
}

/** Runs a command that must succeed (see expectSuccess). */
export async function runChecked(run: Runner, argv: readonly string[], what: string, input?: string): Promise<string> {
  return expectSuccess(await run(argv, input), argv, what, input);
}
