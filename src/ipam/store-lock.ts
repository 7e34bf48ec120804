// The exclusive lock around every change to an IPAM store. It is an flock(2) on the store's
// `lock` file, the same file and lock type host-local's go-filemutex uses, so weft and
// host-local processes serialize against each other on a shared store.
//
// flock with wait=true would block the whole Node thread, and a daemon serving many CNI
// requests must keep its event loop running. So we try-lock and, while another process holds
// the lock, retry with a short, growing, jittered delay. Callers in the same process queue on a
// promise chain first, so they do not poll against each other. The kernel drops an flock when
// its holder dies, so a crashed holder can never leave the store locked. (libuv opens every
// file O_CLOEXEC, so a spawned child never inherits the lock.)
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WeftError, errnoCode } from '../errors.ts';
import { native } from '../native/native.ts';

export const DEFAULT_LOCK_TIMEOUT_MS = 60_000;
const FIRST_RETRY_MS = 1;
const MAX_RETRY_MS = 10;

/** Same-process waiters per lock file, so only one of them polls flock at a time. */
const localQueues = new Map<string, Promise<unknown>>();

/** Mode of a new lock file: what go-filemutex gives host-local's (observed on Debian's 1.1.1). */
const LOCK_FILE_MODE = 0o750;

/** Runs fn while holding the exclusive flock on lockPath (created if missing). */
export async function withStoreLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = DEFAULT_LOCK_TIMEOUT_MS): Promise<T> {
  const previous = localQueues.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(() => lockAndRun(lockPath, fn, timeoutMs));
  const tail = run.catch(() => undefined);
  localQueues.set(lockPath, tail);
  try {
    return await run;
  } finally {
    // Forget the chain once nobody queued behind us, so the map does not grow without bound.
    if (localQueues.get(lockPath) === tail) localQueues.delete(lockPath);
  }
}

async function lockAndRun<T>(lockPath: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  let handle;
  try {
    handle = await open(lockPath, constants.O_RDWR | constants.O_CREAT, LOCK_FILE_MODE);
  } catch (e) {
    throw new WeftError('WEFT_IO', `cannot open IPAM lock file ${lockPath}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  try {
    await acquire(handle.fd, lockPath, timeoutMs);
    try {
      return await fn();
    } finally {
      native().flock(handle.fd, 'un', false);
    }
  } finally {
    await handle.close();
  }
}

async function acquire(fd: number, lockPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = FIRST_RETRY_MS;
  while (!native().flock(fd, 'ex', false)) {
    if (Date.now() >= deadline) {
      throw new WeftError('WEFT_IO', `timed out after ${timeoutMs} ms waiting for IPAM lock ${lockPath}: another weft or host-local process holds it`);
    }
    // Jitter keeps several waiting processes from retrying in lockstep.
    await sleep(delay * (0.5 + Math.random()));
    delay = Math.min(delay * 2, MAX_RETRY_MS);
  }
}
