// Processes the lab starts (one `weft cni-server` or `weft agent` per node, an etcd) and stopping them again. The
// lab only ever signals PIDs it recorded (after checking they are still its own) or PIDs
// found inside its own namespaces: everything in a lab namespace belongs to the lab.
import { spawn } from 'node:child_process';
import { access, open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WeftError } from '../errors.ts';
import { netnsPath } from './netns.ts';

export interface StartDaemonOptions {
  ns: string;
  argv: string[];
  /** Ready once this file exists (removed before the start)… */
  readyFile?: string;
  /** …or once this resolves true (asked every `pollMs`), e.g. a health check. */
  isReady?: () => Promise<boolean>;
  /** What readiness means, for the timeout message (default: "create <readyFile>"). */
  readyMeans?: string;
  pollMs?: number;
  logFile: string;
  /** The daemon's environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for readiness. */
  timeoutMs?: number;
  /** Called with the PID as soon as the process exists, before waiting for readiness. */
  onStarted?: (pid: number) => Promise<void>;
}

/**
 * Starts a long-running process inside `ns`, in its own session (detached: it outlives the
 * `lab up` that started it), output appended to `logFile`; resolves with its PID once it is
 * ready (`readyFile` exists, or `isReady` says so). nsenter execs the program, so the PID is
 * the program's own.
 */
export async function startDaemon(o: StartDaemonOptions): Promise<number> {
  const readyFile = o.readyFile;
  if (readyFile === undefined && o.isReady === undefined) throw new WeftError('WEFT_INTERNAL', 'startDaemon needs readyFile or isReady');
  if (readyFile !== undefined) await rm(readyFile, { force: true });
  const isReady = o.isReady ?? (() => exists(readyFile ?? ''));
  const means = o.readyMeans ?? `create ${readyFile}`;
  const log = await open(o.logFile, 'a');
  let exited: string | undefined;
  let pid: number | undefined;
  try {
    const child = spawn('nsenter', [`--net=${netnsPath(o.ns)}`, '--', ...o.argv], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: o.env ?? process.env,
    });
    child.on('exit', (code, signal) => (exited = signal === null ? `exited with code ${code}` : `was killed by ${signal}`));
    child.on('error', (e) => (exited = `could not start: ${e.message}`));
    child.unref();
    pid = child.pid;
  } finally {
    await log.close();
  }
  if (pid === undefined) {
    await sleep(0); // let the 'error' event arrive
    throw new WeftError('WEFT_LAB', `\`${o.argv.join(' ')}\` in ${o.ns} ${exited ?? 'did not start'}; see ${o.logFile}`);
  }
  await o.onStarted?.(pid);
  const deadline = Date.now() + (o.timeoutMs ?? 20_000);
  for (;;) {
    if (await isReady()) return pid;
    if (exited !== undefined) {
      throw new WeftError('WEFT_LAB', `\`${o.argv.join(' ')}\` in ${o.ns} ${exited} before it was ready; see ${o.logFile}`);
    }
    if (Date.now() > deadline) {
      throw new WeftError('WEFT_LAB', `\`${o.argv.join(' ')}\` in ${o.ns} did not ${means} within ${(o.timeoutMs ?? 20_000) / 1000} s; see ${o.logFile}`);
    }
    await sleep(o.pollMs ?? 25);
  }
}

/** True while `pid` exists and is not a zombie (a zombie has exited; it only awaits its parent). */
export async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The process's command line, or undefined when it is gone. */
export async function cmdline(pid: number): Promise<string | undefined> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL whatever is still alive after `graceMs`; resolves with the PIDs signalled. */
export async function stopProcesses(pids: Iterable<number>, graceMs = 3000): Promise<number[]> {
  const targets = [...new Set(pids)].filter((p) => Number.isInteger(p) && p > 1 && p !== process.pid);
  const signalled: number[] = [];
  for (const pid of targets) if (signal(pid, 'SIGTERM')) signalled.push(pid);
  if (!(await waitAllDead(signalled, graceMs))) {
    for (const pid of signalled) if (await isAlive(pid)) signal(pid, 'SIGKILL');
    await waitAllDead(signalled, 5000);
  }
  return signalled;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // already gone
  }
}

async function waitAllDead(pids: number[], ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alive = (await Promise.all(pids.map(isAlive))).some(Boolean);
    if (!alive) return true;
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
