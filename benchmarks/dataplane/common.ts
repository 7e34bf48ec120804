// Shared by bench:dataplane and bench:control: statistics, the BENCHMARKS.md section writer,
// machine facts, and the cleanup registry (labs, namespaces and processes this run created,
// and nothing else).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { labDown } from '../../src/lab/index.ts';
import { alive, median, percentile } from '../stats.ts';

export { median, percentile };


/** Three significant digits, or n/a. */
export function num(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (x === 0) return '0';
  const a = Math.abs(x);
  const d = a >= 100 ? 0 : a >= 10 ? Math.max(0, digits - 2) : a >= 1 ? digits - 1 : digits;
  return x.toFixed(d);
}

/** `median (min–max)` over rounds. */
export function withRange(xs: readonly number[], f: (x: number) => string = num): string {
  const ok = xs.filter(Number.isFinite);
  if (ok.length === 0) return 'n/a';
  const m = median(ok);
  return ok.length > 1 ? `${f(m)} (${f(Math.min(...ok))}–${f(Math.max(...ok))})` : f(m);
}

/** Replaces the bench:NAME section of file (or appends it); everything outside the markers stays. */
export function writeSection(file: string, name: string, body: string): void {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = `${start}\n${body.trim()}\n${end}`;
  if (!existsSync(file)) {
    writeFileSync(file, `# Benchmarks\n\nGenerated sections are rewritten by their benchmark; edit outside the markers.\n\n${section}\n`);
    return;
  }
  const text = readFileSync(file, 'utf8');
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) writeFileSync(file, `${text.slice(0, i)}${section}${text.slice(j + end.length)}`);
  else writeFileSync(file, `${text.trimEnd()}\n\n${section}\n`);
}

function tryRun(file: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(file, args, { stdio: ['ignore', 'pipe', 'ignore'], ...(cwd ? { cwd } : {}) }).toString().trim();
  } catch {
    return '';
  }
}

export function machineFacts(root: string): string {
  const head = tryRun('git', ['rev-parse', '--short', 'HEAD'], root);
  const dirty = tryRun('git', ['status', '--porcelain'], root).split('\n').filter(Boolean).length;
  const iperf = tryRun('iperf3', ['--version']).split('\n')[0] ?? '';
  return [
    `nproc ${cpus().length}`,
    `cpu ${(cpus()[0]?.model ?? '?').replace(/\s+\d+-Core Processor.*$/, '').trim()}`,
    `kernel ${release()}`,
    `node ${process.version}`,
    ...(iperf ? [iperf.replace(/\s*\(.*$/, '')] : []),
    `weft ${head || '?'}${dirty > 0 ? ` + ${dirty} uncommitted paths` : ''}`,
  ].join('; ');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const hrMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// --- cleanup registry ------------------------------------------------------------------------

const children = new Map<number, string>();
const labs = new Set<string>();
const namespaces = new Set<string>();
let cleaning: Promise<void> | undefined;

/** Remembers a child by PID, so cleanup can stop it (and only it). */
export function track(child: ChildProcess, what: string): number {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${what}`);
  children.set(pid, what);
  child.once('exit', () => children.delete(pid));
  return pid;
}

export const trackLab = (name: string): void => void labs.add(name);
export const untrackLab = (name: string): void => void labs.delete(name);
export const trackNamespace = (name: string): void => void namespaces.add(name);
export const untrackNamespace = (name: string): void => void namespaces.delete(name);


/** Stops our children (SIGTERM, then SIGKILL), brings our labs down and deletes our namespaces. */
export function cleanup(tag: string): Promise<void> {
  cleaning ??= (async () => {
    for (const [pid] of children) if (alive(pid)) process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 40 && [...children.keys()].some(alive); i++) await sleep(50);
    for (const [pid, what] of children) {
      if (alive(pid)) {
        process.stderr.write(`${tag}: killing ${what} (pid ${pid})\n`);
        process.kill(pid, 'SIGKILL');
      }
    }
    for (const ns of namespaces) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        process.stderr.write(`${tag}: could not delete namespace ${ns}\n`);
      }
    }
    for (const name of labs) {
      try {
        await labDown(name);
      } catch (e) {
        process.stderr.write(`${tag}: lab down ${name} failed: ${(e as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

/** SIGINT/SIGTERM/SIGHUP: clean up, then exit with the conventional code. */
export function cleanupOnSignals(tag: string): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(signal, () => {
      process.stderr.write(`\n${tag}: ${signal}: cleaning up\n`);
      void cleanup(tag).finally(() => process.exit(code));
    });
  }
}

export interface Output { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Runs argv (tracked), collects its output; kills it (by PID) after timeoutMs. */
export function runCmd(argv: readonly string[], timeoutMs = 120_000, stdin?: string): Promise<Output> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = argv as [string, ...string[]];
    const child = spawn(file, args, { stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const pid = track(child, argv.slice(0, 6).join(' '));
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    if (stdin !== undefined) child.stdin?.end(stdin);
    const timer = setTimeout(() => {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
  });
}

export async function mustRun(argv: readonly string[], timeoutMs = 120_000, stdin?: string): Promise<string> {
  const r = await runCmd(argv, timeoutMs, stdin);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** argv run inside a namespace of /run/netns (network namespace only, as the lab's own helpers do). */
export const inNs = (ns: string, argv: readonly string[]): string[] => ['nsenter', `--net=/run/netns/${ns}`, ...argv];

/**
 * The one way a benchmark's main runs: cleanup on signals, a broken run reported with its stack,
 * cleanup (labs, namespaces, children, then `after`) whatever happens, and main's exit code.
 */
export async function runBench(tag: string, main: () => Promise<number>, after: () => void = () => undefined): Promise<never> {
  cleanupOnSignals(tag);
  let exitCode = 1;
  try {
    exitCode = await main();
  } catch (e) {
    process.stderr.write(`\n${tag}: BROKEN RUN: ${(e as Error).stack ?? (e as Error).message}\n`);
  } finally {
    await cleanup(tag);
    after();
  }
  process.exit(exitCode);
}
