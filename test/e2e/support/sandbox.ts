// Shared plumbing for the end-to-end tests that drive real container runtimes (podman, ctr)
// against the weft CNI plugin. Everything with a host-side effect happens inside a scratch
// network namespace that the test creates: the runtime itself runs under
// `nsenter --net=/run/netns/<scratch>`, so the bridge, veths, routes and ip_forward the plugin
// sets up land there and never in the root namespace (docs/cni-spec-notes.md §3.1). `ip netns exec` is not
// used for runtimes because it remounts /sys, which hides the cgroup mounts runc needs.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const REPO = resolve(import.meta.dirname, '../../..');
/** The static C front end that runtimes exec as the plugin. */
export const WEFT_CNI = join(REPO, 'build', 'weft-cni');
/** The CLI (`weft cni-server`, and the front end's standalone fallback `weft cni`). */
export const WEFT_BIN = join(REPO, 'bin', 'weft');

export const rand = (): string => randomBytes(4).toString('hex');

export interface RunResult { code: number; stdout: string; stderr: string }
export interface RunOptions { env?: NodeJS.ProcessEnv; input?: string }

/** Runs a command to completion; never rejects on a non-zero exit (see mustRun). */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new Error('run: empty argv');
    const child = spawn(cmd, args, { env: options.env ?? process.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({
      code: code ?? (signal ? 128 : 1),
      stdout: Buffer.concat(out).toString(),
      stderr: Buffer.concat(err).toString(),
    }));
    child.stdin?.on('error', () => undefined); // a command that exits without reading its input
    child.stdin?.end(options.input);
  });
}

export function describeRun(argv: readonly string[], r: RunResult): string {
  return `\`${argv.join(' ')}\` exited with ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

/** Runs a command and resolves with its stdout; rejects with everything it printed otherwise. */
export async function mustRun(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await run(argv, options);
  if (r.code !== 0) throw new Error(describeRun(argv, r));
  return r.stdout;
}

/** argv run inside a network namespace created with `ip netns add`. */
export const inNetns = (ns: string, argv: readonly string[]): string[] => ['nsenter', `--net=/run/netns/${ns}`, ...argv];

/** Undo steps, run last-in first-out; one failing step does not stop the others. */
export class Cleanup {
  readonly #steps: { what: string; fn: () => unknown }[] = [];

  push(what: string, fn: () => unknown): void {
    this.#steps.push({ what, fn });
  }

  async run(): Promise<void> {
    const errors: string[] = [];
    for (let step = this.#steps.pop(); step; step = this.#steps.pop()) {
      try {
        await step.fn();
      } catch (e) {
        errors.push(`${step.what}: ${(e as Error).message}`);
      }
    }
    if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
  }
}

/** Why these tests cannot run here (not root, a tool missing), or false. */
export function prerequisiteProblem(tools: readonly string[], files: readonly string[] = []): string | false {
  if (process.getuid?.() !== 0) return 'needs root (creates network namespaces and runs a rootful container runtime)';
  const missing = tools.filter((t) => !onPath(t));
  if (missing.length > 0) return `needs ${missing.join(', ')} on PATH (see scripts/ci-apt-packages.txt)`;
  for (const f of files) {
    try {
      accessSync(f, constants.X_OK);
    } catch {
      return `needs ${f}${f === WEFT_CNI ? ' (run `npm run build:native`)' : ''}`;
    }
  }
  return false;
}

function onPath(tool: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

/** A private temporary directory, removed by `cleanup` (after unmounting anything left under it). */
export function scratchDir(cleanup: Cleanup, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  cleanup.push(`remove ${dir}`, async () => {
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Lazily unmounts mounts below dir (a container's shm a crashed runtime left), deepest first. */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run(['umount', '-l', m]);
}

/** A new network namespace with lo up, deleted by `cleanup`. */
export async function scratchNetns(cleanup: Cleanup, prefix = 'weft-rt'): Promise<string> {
  const ns = `${prefix}-${rand()}`;
  await mustRun(['ip', 'netns', 'add', ns]);
  cleanup.push(`delete netns ${ns}`, () => mustRun(['ip', 'netns', 'delete', ns]));
  await mustRun(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  return ns;
}

export interface LinkInfo { ifname: string; master?: string; mtu: number; operstate?: string; linkinfo?: { info_kind?: string } }
export interface AddrInfo { ifname: string; mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] }

/** The links of a namespace (`ns` undefined: the namespace of this process). */
export async function links(ns: string | undefined): Promise<LinkInfo[]> {
  const argv = ['ip', '-j', '-d', 'link', 'show'];
  return JSON.parse(await mustRun(ns === undefined ? argv : inNetns(ns, argv))) as LinkInfo[];
}

export async function addresses(ns: string, ifname: string): Promise<AddrInfo | undefined> {
  const out = await run(inNetns(ns, ['ip', '-j', 'addr', 'show', 'dev', ifname]));
  if (out.code !== 0) return undefined;
  return (JSON.parse(out.stdout) as AddrInfo[])[0];
}

export const veths = (all: LinkInfo[]): LinkInfo[] => all.filter((l) => l.linkinfo?.info_kind === 'veth');

/** Whether a unix socket with this abstract name is bound in the namespace (/proc/net is per netns). */
export async function abstractSocketBound(ns: string, name: string): Promise<boolean> {
  const table = await mustRun(inNetns(ns, ['cat', '/proc/net/unix']));
  return table.split('\n').some((l) => l.trim().endsWith(` @${name}`));
}

/** host-local style store: <dataDir>/<network>/<ip> files, not the lock or last_reserved_ip.N. */
export function ipamAddressFiles(dataDir: string, network: string): string[] {
  const dir = join(dataDir, network);
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip.') && !f.startsWith('.')).sort();
}

/** What the root namespace looks like, to prove a test left it alone. */
export interface RootNetSnapshot { links: string[]; ipForward: string }

export async function rootNetSnapshot(): Promise<RootNetSnapshot> {
  return {
    links: (await links(undefined)).map((l) => l.ifname).filter((n) => n === 'cni0' || n.startsWith('veth')).sort(),
    ipForward: readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(),
  };
}

export interface CniServer { pid: number; log(): string; stop(): Promise<void> }

/**
 * `weft cni-server` inside the namespace, so the weft-cni front end that the runtime execs there
 * finds it on the abstract socket @weft-cni. nsenter execs (no --fork for a net namespace only)
 * and bin/weft execs node, so the child's PID is the server's.
 */
export async function startCniServer(ns: string, dir: string, cleanup: Cleanup): Promise<CniServer> {
  const readyFile = join(dir, `cni-server-${rand()}.ready`);
  const env: NodeJS.ProcessEnv = { ...process.env, WEFT_LOG_LEVEL: 'info' };
  delete env.WEFT_CNI_SOCKET;
  const child: ChildProcess = spawn('nsenter', [`--net=/run/netns/${ns}`, WEFT_BIN, 'cni-server', '--ready-file', readyFile],
    { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout?.on('data', (c: Buffer) => { log += c.toString(); });
  child.stderr?.on('data', (c: Buffer) => { log += c.toString(); });
  let exited: number | string | null | undefined;
  const exit = new Promise<void>((resolvePromise) => child.on('exit', (code, signal) => {
    exited = code ?? signal;
    resolvePromise();
  }));
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start weft cni-server');
  const stop = async (): Promise<void> => {
    if (exited !== undefined) return;
    process.kill(pid, 'SIGTERM');
    await exit;
  };
  cleanup.push(`stop cni-server ${pid}`, stop);
  // Wait for the ready file however long start-up takes; only the server dying ends the wait early.
  while (!existsSync(readyFile)) {
    if (exited !== undefined) throw new Error(`weft cni-server exited (${String(exited)}) before it was ready:\n${log}`);
    await sleep(50);
  }
  return { pid, log: () => log, stop };
}

/** libcni's result cache (podman and ctr keep one file per attachment here). */
export const CNI_CACHE_DIR = '/var/lib/cni/results';

/**
 * Runtimes create directories of their own outside our scratch dirs (libcni's
 * /var/lib/cni/results, containerd's /run/containerd/s for shim sockets). Returns an undo step
 * that removes those of `dirs` that did not exist when this was called and are empty again.
 */
export function tidyCreatedDirs(dirs: readonly string[]): () => void {
  const created = dirs.filter((d) => !existsSync(d));
  return () => {
    for (const d of [...created].reverse()) {
      try {
        if (readdirSync(d).length === 0) rmdirSync(d);
      } catch {
        // gone already, or someone else's files are in it now: leave it
      }
    }
  };
}

/** The directories libcni's cache creates, parents first. */
export const tidyCniCacheDirs = (): (() => void) => tidyCreatedDirs(['/var/lib/cni', CNI_CACHE_DIR]);

/**
 * Waits until `check` returns a value other than undefined. Not a timing assertion: `limitMs`
 * is only a guard against hanging forever, far above anything a healthy run needs, and
 * `abort` ends the wait early with its message (e.g. the process we wait for died).
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined,
  options: { abort?: () => string | undefined; limitMs?: number } = {}): Promise<T> {
  const limit = Date.now() + (options.limitMs ?? 300_000);
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    const why = options.abort?.();
    if (why !== undefined) throw new Error(`gave up waiting for ${what}: ${why}`);
    if (Date.now() > limit) throw new Error(`gave up waiting for ${what} after ${options.limitMs ?? 300_000} ms`);
    await sleep(100);
  }
}

/** Mount points currently under any of `paths` in this mount namespace. */
export function mountsAt(paths: readonly string[]): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && paths.some((p) => m === p || m.startsWith(`${p}/`)))
    .sort();
}
