// One weft agent per node. Two agents on one node would fight over the same device, routes,
// firewall rules, subnet.env and status socket (the second would even unlink the first's
// socket), so the agent takes an exclusive flock(2) on a lock file before it touches anything,
// and `weft uninstall` takes the same lock to know that no agent runs. The kernel drops an
// flock when its holder dies, so a crashed agent never leaves the node locked; the file keeps
// the holder's PID only so that the refusal can name it. libuv opens files O_CLOEXEC, so the
// tools the agent spawns (iptables, nft) never inherit the lock.
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync, constants } from 'node:fs';
import { dirname } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';
import { native } from '../native/native.ts';

export const DEFAULT_LOCK_FILE = '/run/weft/agent.lock';

export interface NodeLock {
  readonly path: string;
  /** Gives the lock up (idempotent). The file stays: unlinking it would let a newcomer lock a different inode. */
  release(): void;
}

/** The lock is held by another process; `holder` is its PID when the file names one. */
export class NodeLockHeldError extends WeftError {
  readonly holder: number | undefined;
  readonly path: string;

  constructor(path: string, holder: number | undefined) {
    super('WEFT_NOT_READY', `another weft agent (PID ${holder ?? 'unknown'}) already runs on this node (it holds ${path}); stop it first, or use its status: weft status`);
    this.name = 'NodeLockHeldError';
    this.path = path;
    this.holder = holder;
  }
}

/** The PID the holder wrote into the file, if it is one. */
function holderOf(path: string): number | undefined {
  try {
    const text = readFileSync(path, 'utf8').slice(0, 32).trim();
    if (/^\d{1,10}$/.test(text)) return Number(text);
  } catch {
    // unreadable: no PID to name
  }
  return undefined;
}

function openLockFile(path: string): number {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    return openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644);
  } catch (e) {
    const code = errnoCode(e);
    const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied (run as root, or pass --lock-file)'
      : code === 'EROFS' ? 'it is on a read-only filesystem (pass --lock-file on a writable one, e.g. under /run)'
        : (e as Error).message;
    throw new WeftError('WEFT_IO', `cannot open the node lock ${path}: ${why}`, { cause: e });
  }
}

/**
 * Takes the node's lock without waiting, and writes this process's PID into it. Throws
 * NodeLockHeldError (a WeftError, code WEFT_NOT_READY) naming the holder when another process has it.
 */
export function acquireNodeLock(path: string): NodeLock {
  const fd = openLockFile(path);
  let locked: boolean;
  try {
    locked = native().flock(fd, 'ex', false);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  if (!locked) {
    closeSync(fd);
    throw new NodeLockHeldError(path, holderOf(path));
  }
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
  } catch {
    // The lock is what matters; the PID is only for the message a second agent prints.
  }
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      try {
        ftruncateSync(fd, 0);
      } catch {
        // best effort: a stale PID in an unlocked file misleads no one (the lock is what counts)
      }
      native().flock(fd, 'un', false);
      closeSync(fd);
    },
  };
}
