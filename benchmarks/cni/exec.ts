// Process helpers for the CNI benchmark: run a tool and collect its output, and exec a CNI
// plugin exactly as a runtime does (CNI_* variables + config on stdin), timed from spawn to exit.
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from just before spawn() to the 'close' event (exit + stdio drained). */
  ms: number;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  stdin?: string;
  /** The child is killed (by its PID) after this long; the result then has signal SIGKILL. */
  timeoutMs?: number;
}

/** Spawns file with args, feeds stdin, and resolves when it has exited and its output is read. */
export function run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(file, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

/** Runs a tool that must succeed; throws with its stderr otherwise. */
export async function must(file: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  const r = await run(file, args, options);
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
  return r.stdout;
}

export type CniCommand = 'ADD' | 'DEL' | 'VERSION';

export interface CniCall {
  plugin: string;
  command: CniCommand;
  containerId: string;
  netns: string;
  /** The network configuration, as the runtime writes it to the plugin's stdin. */
  config: Record<string, unknown>;
}

/**
 * The environment a runtime gives a plugin: a plain PATH and the CNI_* variables, identical
 * for every variant (CNI_PATH is where Debian installs the reference plugins; the bridge
 * plugin execs host-local from there, weft ignores it).
 */
export function cniEnv(call: Omit<CniCall, 'plugin' | 'config'>): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/usr/lib/cni',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${call.containerId};K8S_POD_INFRA_CONTAINER_ID=${call.containerId}`,
  };
}

export function execPlugin(call: CniCall): Promise<RunResult> {
  return run(call.plugin, [], { env: cniEnv(call), stdin: JSON.stringify(call.config) });
}
