// Child-process helpers. Everything the lab does to the kernel goes through iproute2,
// nsenter or a CNI plugin run as a child: Node has no per-thread setns, and switching the
// event-loop thread's namespace would affect every concurrent task (docs/cni-spec-notes.md §3.3).
import { spawn } from 'node:child_process';
import { WeftError } from '../errors.ts';

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** The complete environment of the child (not merged with ours). */
  env?: NodeJS.ProcessEnv;
  /** Kill the child (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and captures its output; never throws for a non-zero exit. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new WeftError('WEFT_INTERNAL', 'run() needs a command');
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => reject(new WeftError('WEFT_LAB', `cannot run ${cmd}: ${e.message}; is it installed?`, { cause: e })));
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    // A child that exits without reading stdin makes the write fail with EPIPE; its exit status says more.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
  });
}

/** Runs a command and throws a WeftError naming the command and its stderr when it fails. */
export async function runOk(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await run(argv, options);
  if (r.code !== 0) {
    const why = r.signal !== null ? `killed by ${r.signal}` : `exit ${r.code}`;
    throw new WeftError('WEFT_LAB', `\`${argv.join(' ')}\` failed (${why}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}
