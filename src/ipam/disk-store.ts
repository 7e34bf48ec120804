// host-local's on-disk store, byte for byte (docs/cni-spec-notes.md §2.2), so a node moving from
// flannel/host-local keeps its pods' addresses and both plugins can share one store:
//
//   <dataDir>/<network>/                 directory, 0755
//   <dataDir>/<network>/lock             empty; exclusive flock around every change
//   <dataDir>/<network>/<ip>             one per allocated address, "<containerID>\r\n<ifname>", 0644
//   <dataDir>/<network>/last_reserved_ip.<rangeSetIndex>   the last address reserved in that set
//
// Crash safety. Creating <ip> with O_CREAT|O_EXCL is the reservation: the kernel lets exactly
// one creator win, so no crash or race can give one address to two owners. The owner is then
// written to the same fd and fdatasync'ed before the file is closed. Crashes therefore leave:
//   - an empty (or, in theory, partial) <ip> file: reserved but owned by nobody. It never
//     causes a duplicate; it leaks one address until gc() removes it. Every writer (weft and
//     host-local) creates and fills files while holding the lock, so a file without a valid
//     owner seen under the lock can only be left over from a crash.
//   - a reservation in one range set but not the next (dual stack): the file names its owner,
//     so the runtime's DEL after the failed ADD (or gc) frees it.
//   - after power loss, a lost directory entry (we do not fsync the directory): the address
//     becomes free again, which is correct because every pod sandbox died with the node.
//     Syncing the file's data, however, matters: without it the entry could survive with no
//     content, and DEL could no longer find and free it.
//   - a torn last_reserved_ip file: read back as "none", which only restarts round-robin at
//     rangeStart (host-local writes it the same non-atomic way).
//
// A reservation that fails part-way (ENOSPC while writing the owner or last_reserved_ip) is
// undone before the error is returned: the address file is removed and last_reserved_ip gets
// back its previous content (or is removed if this reservation created it).
//
// Every file is read with a bound (MAX_STORE_FILE_BYTES): weft and host-local write a few dozen
// bytes, so a bigger file was written by something else. It is reported (the `warn` callback),
// its address stays taken, and every other ADD and DEL goes on working.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate } from 'node:timers/promises';
import { WeftError, errnoCode } from '../errors.ts';
import { type IpAddress, formatIp, tryParseIp } from '../net/cidr.ts';
import { withStoreLock } from './store-lock.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';
const LOCK_FILE = 'lock';
const LAST_RESERVED_PREFIX = 'last_reserved_ip.';
const LINE_BREAK = '\r\n';
/** Owner files read between two yields to the event loop. */
const READ_BATCH = 32;
/**
 * The largest address or last_reserved_ip file we read. An owner is a container ID (at most a
 * few hundred bytes in practice: runtimes use 64 hex digits) plus "\r\n" and a 15-byte ifname.
 */
export const MAX_STORE_FILE_BYTES = 4096;
/** O_NOFOLLOW: a symlink swapped in is not ours to follow; O_NONBLOCK: a FIFO must not hang us. */
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const readBuffer = Buffer.allocUnsafe(MAX_STORE_FILE_BYTES + 1);

/** How the store writes file content; a seam so tests can make writes fail (ENOSPC and the like). */
export interface StoreIo {
  write(path: string, handle: FileHandle, data: string): Promise<void>;
}

export const defaultStoreIo: StoreIo = {
  write: async (_path, handle, data) => {
    await handle.writeFile(data);
  },
};

/** What undo() needs to take a reservation back. */
export interface Reservation {
  ip: IpAddress;
  file: string;
  rangeSetIndex: number;
  /** last_reserved_ip.<n> before this reservation; undefined if there was none (or it was unreadable). */
  previousLastReserved: string | undefined;
}

/** Who holds an address. ifname is undefined for legacy files that hold only the container ID. */
export interface Owner {
  containerId: string;
  ifname: string | undefined;
}

export interface StoredAddress {
  ip: IpAddress;
  /** The file's name, which is the address as the writer formatted it. */
  file: string;
  /** undefined when the file is empty (a reservation whose writer crashed) or unreadable. */
  owner: Owner | undefined;
  /** Set when the file cannot be an owner file (too big, not readable): it names the file and what to do. */
  problem?: string;
}

/** Network names become a directory name, so they follow the CNI spec's character set. */
const NETWORK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Reads a file's content the way host-local compares it: trimmed, "cid\r\nifname" or legacy "cid". */
export function parseOwner(content: string): Owner | undefined {
  const text = content.trim();
  if (text === '') return undefined;
  const split = text.indexOf(LINE_BREAK);
  if (split === -1) return { containerId: text, ifname: undefined };
  return { containerId: text.slice(0, split), ifname: text.slice(split + LINE_BREAK.length) };
}

function ioError(action: string, path: string, e: unknown): WeftError {
  return new WeftError('WEFT_IO', `cannot ${action} ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
}

type BoundedRead = { text: string } | { missing: true } | { problem: string };

/**
 * Reads a small store file synchronously, at most MAX_STORE_FILE_BYTES + 1 bytes of it.
 * Synchronous reads of these tiny files are ~8x faster than fs/promises (no thread-pool round
 * trips), which matters because every ADD and DEL reads them all while holding the lock.
 */
export function readStoreFile(path: string): BoundedRead {
  let fd;
  try {
    fd = openSync(path, READ_FLAGS);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return { missing: true };
    return { problem: `cannot read IPAM file ${path}: ${errnoCode(e) ?? String(e)}` };
  }
  try {
    let size = 0;
    for (;;) {
      const n = readSync(fd, readBuffer, size, readBuffer.length - size, null);
      if (n === 0) break;
      size += n;
      if (size > MAX_STORE_FILE_BYTES) {
        return { problem: `IPAM file ${path} is larger than ${MAX_STORE_FILE_BYTES} bytes, so neither weft nor host-local wrote it; its address stays reserved: remove the file if no pod uses that address` };
      }
    }
    return { text: readBuffer.toString('utf8', 0, size) };
  } catch (e) {
    return { problem: `cannot read IPAM file ${path}: ${errnoCode(e) ?? String(e)}` };
  } finally {
    closeSync(fd);
  }
}

export class DiskStore {
  readonly dir: string;
  readonly #lockTimeoutMs: number | undefined;
  readonly #io: StoreIo;
  readonly #warn: (problem: string) => void;
  #locked = false;

  constructor(dataDir: string, network: string, options: { lockTimeoutMs?: number; io?: StoreIo; warn?: (problem: string) => void } = {}) {
    if (!NETWORK_NAME.test(network)) {
      throw new WeftError('WEFT_INVALID_CONFIG', `network name "${network}" must start with a letter or digit and contain only letters, digits, "_", "." and "-"`);
    }
    this.dir = join(dataDir, network);
    this.#lockTimeoutMs = options.lockTimeoutMs;
    this.#io = options.io ?? defaultStoreIo;
    this.#warn = options.warn ?? (() => undefined);
  }

  /** Runs fn holding the store lock; every other method except listAddresses() must run inside. */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw ioError('create IPAM store directory', this.dir, e);
    }
    return withStoreLock(join(this.dir, LOCK_FILE), async () => {
      this.#locked = true;
      try {
        return await fn();
      } finally {
        this.#locked = false;
      }
    }, this.#lockTimeoutMs);
  }

  #assertLocked(): void {
    if (!this.#locked) throw new WeftError('WEFT_INTERNAL', `IPAM store ${this.dir} changed without holding its lock`);
  }

  /**
   * Reserves ip for (containerId, ifname) in range set rangeSetIndex. Returns undefined if the
   * address is already taken. Also records it as the set's last reserved address, as host-local
   * does. If any write fails, nothing of this reservation is left behind.
   */
  async reserve(ip: IpAddress, owner: { containerId: string; ifname: string }, rangeSetIndex: number): Promise<Reservation | undefined> {
    this.#assertLocked();
    const file = formatIp(ip);
    const path = join(this.dir, file);
    let handle;
    try {
      handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') return undefined;
      throw ioError('create', path, e);
    }
    try {
      await this.#io.write(path, handle, `${owner.containerId}${LINE_BREAK}${owner.ifname}`);
      await handle.datasync();
      await handle.close();
    } catch (e) {
      // Nobody else can own this file yet (we created it under the lock), so undo the reservation.
      await handle.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw ioError('write', path, e);
    }
    const reservation: Reservation = { ip, file, rangeSetIndex, previousLastReserved: this.#readLastReserved(rangeSetIndex) };
    const lastPath = this.#lastReservedPath(rangeSetIndex);
    try {
      await this.#writeWhole(lastPath, file);
    } catch (e) {
      await this.undo(reservation).catch(() => undefined);
      throw ioError('write', lastPath, e);
    }
    return reservation;
  }

  /** Takes a reservation back: removes its address file and restores last_reserved_ip.<n>. */
  async undo(reservation: Reservation): Promise<void> {
    this.#assertLocked();
    const lastPath = this.#lastReservedPath(reservation.rangeSetIndex);
    const previous = reservation.previousLastReserved;
    // Both steps are tried even if the first fails; the first failure is reported.
    const results = await Promise.allSettled([
      this.remove(reservation.file),
      previous === undefined ? rm(lastPath, { force: true }) : this.#writeWhole(lastPath, previous),
    ]);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason instanceof WeftError ? failed.reason : ioError('restore', lastPath, failed.reason);
  }

  #lastReservedPath(rangeSetIndex: number): string {
    return join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSetIndex}`);
  }

  /** Replaces a file's content in place (truncate, write), as host-local writes last_reserved_ip. */
  async #writeWhole(path: string, data: string): Promise<void> {
    const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
    try {
      await this.#io.write(path, handle, data);
    } finally {
      await handle.close();
    }
  }

  /** The raw content of last_reserved_ip.<n>, or undefined if it is missing or unreadable. */
  #readLastReserved(rangeSetIndex: number): string | undefined {
    const read = readStoreFile(this.#lastReservedPath(rangeSetIndex));
    if ('problem' in read) this.#warn(read.problem);
    return 'text' in read ? read.text : undefined;
  }

  /** Deletes the file of one stored address; a file that is already gone is fine. */
  async remove(file: string): Promise<void> {
    this.#assertLocked();
    const path = join(this.dir, file);
    try {
      await rm(path, { force: true });
    } catch (e) {
      throw ioError('remove', path, e);
    }
  }

  /** The set's last reserved address; undefined (round-robin restarts) if missing, torn or unreadable. */
  lastReserved(rangeSetIndex: number): IpAddress | undefined {
    const text = this.#readLastReserved(rangeSetIndex);
    return text === undefined ? undefined : tryParseIp(text.trim());
  }

  /** Address files only (names, not owners): cheap enough for status reports, no lock needed. */
  async listAddresses(): Promise<{ ip: IpAddress; file: string }[]> {
    let entries;
    try {
      entries = await readdir(this.dir, { withFileTypes: true });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return [];
      throw ioError('list', this.dir, e);
    }
    const found: { ip: IpAddress; file: string }[] = [];
    for (const entry of entries) {
      const ip = entry.isFile() ? tryParseIp(entry.name) : undefined;
      if (ip) found.push({ ip, file: entry.name });
    }
    return found;
  }

  /** Every stored address with its owner. */
  async list(): Promise<StoredAddress[]> {
    this.#assertLocked();
    const addresses = await this.listAddresses();
    const result: StoredAddress[] = [];
    for (let i = 0; i < addresses.length; i += READ_BATCH) {
      // The reads are synchronous (see readStoreFile); yielding between batches keeps each
      // blocking stretch well under a ms.
      if (i > 0) await setImmediate();
      for (const { ip, file } of addresses.slice(i, i + READ_BATCH)) {
        const read = readStoreFile(join(this.dir, file));
        if ('text' in read) {
          result.push({ ip, file, owner: parseOwner(read.text) });
        } else if ('problem' in read) {
          this.#warn(read.problem);
          result.push({ ip, file, owner: undefined, problem: read.problem });
        }
      }
    }
    return result;
  }
}
