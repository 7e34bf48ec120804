// Named network namespaces (the persistent, bind-mounted kind under /run/netns that
// `ip netns` manages), and running commands inside them. Modelled on the CNI project's
// testutils.NewNS / ns.Do, but as child processes: see run.ts for why.
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { constants } from 'node:os';
import { errnoCode, WeftError } from '../errors.ts';
import { run, runOk, type RunOptions, type RunResult } from './run.ts';

export const NETNS_DIR = '/run/netns';

export function netnsPath(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

/** Creates a named namespace with its loopback up (a fresh namespace has `lo` down). */
export async function createNetns(name: string): Promise<void> {
  await runOk(['ip', 'netns', 'add', name]);
  await runOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
}

/** Deletes a named namespace; a namespace that is already gone is not an error. */
export async function deleteNetns(name: string): Promise<void> {
  const r = await run(['ip', 'netns', 'delete', name]);
  if (r.code !== 0 && (await netnsExists(name))) {
    throw new WeftError('WEFT_LAB', `cannot delete network namespace ${name}: ${r.stderr.trim()}`);
  }
}

/** Names of all named namespaces, read from /run/netns (cheaper and simpler than parsing `ip netns list`). */
export async function listNetns(): Promise<string[]> {
  try {
    return (await readdir(NETNS_DIR)).sort();
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return [];
    throw new WeftError('WEFT_LAB', `cannot list ${NETNS_DIR}: ${String(e)}`, { cause: e });
  }
}

export async function netnsExists(name: string): Promise<boolean> {
  return (await listNetns()).includes(name);
}

/** PIDs of every process whose network namespace is `name`. */
export async function netnsPids(name: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', name]);
  if (r.code !== 0) return [];
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim())).map((l) => Number(l.trim()));
}

/** `ip -n <ns> …`: iproute2 inside a namespace; throws on failure. */
export function ipIn(ns: string, args: readonly string[]): Promise<string> {
  return runOk(['ip', '-n', ns, ...args]);
}

/**
 * Runs a command inside a namespace and captures its output. nsenter only switches the
 * network namespace, unlike `ip netns exec`, which also remounts /sys in a new mount namespace.
 */
export function execInNetns(ns: string, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv], options);
}

/** execInNetns, throwing a WeftError that names the command, namespace and stderr on failure. */
export async function execInNetnsOk(ns: string, argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await execInNetns(ns, argv, options);
  if (r.code !== 0) throw new WeftError('WEFT_LAB', `\`${argv.join(' ')}\` in ${ns} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/**
 * Runs a command inside a namespace with our stdio, for people: `ip netns exec` so that
 * /sys/class/net shows the namespace's own interfaces. Resolves to the command's exit code
 * (128 + signal number when it was killed, as shells report it).
 */
export function execInNetnsInteractive(ns: string, argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'inherit', env });
    child.on('error', (e) => reject(new WeftError('WEFT_LAB', `cannot run ip netns exec: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => {
      if (code !== null) return resolve(code);
      resolve(128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}
