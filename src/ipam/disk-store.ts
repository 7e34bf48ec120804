// host-local's on-disk store, byte for byte (research cni.md §2.2), so a node moving from
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
import { constants, readFileSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
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

/** Who holds an address. ifname is undefined for legacy files that hold only the container ID. */
export interface Owner {
  containerId: string;
  ifname: string | undefined;
}

export interface StoredAddress {
  ip: IpAddress;
  /** The file's name, which is the address as the writer formatted it. */
  file: string;
  /** undefined when the file is empty: a reservation whose writer crashed. */
  owner: Owner | undefined;
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

export class DiskStore {
  readonly dir: string;
  readonly #lockTimeoutMs: number | undefined;
  #locked = false;

  constructor(dataDir: string, network: string, lockTimeoutMs?: number) {
    if (!NETWORK_NAME.test(network)) {
      throw new WeftError('WEFT_INVALID_CONFIG', `network name "${network}" must start with a letter or digit and contain only letters, digits, "_", "." and "-"`);
    }
    this.dir = join(dataDir, network);
    this.#lockTimeoutMs = lockTimeoutMs;
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
   * Reserves ip for (containerId, ifname) in range set rangeSetIndex. Returns false if the address
   * is already taken. Also records it as the set's last reserved address, as host-local does.
   */
  async reserve(ip: IpAddress, owner: { containerId: string; ifname: string }, rangeSetIndex: number): Promise<boolean> {
    this.#assertLocked();
    const path = join(this.dir, formatIp(ip));
    let handle;
    try {
      handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (e) {
      if (errnoCode(e) === 'EEXIST') return false;
      throw ioError('create', path, e);
    }
    try {
      await handle.writeFile(`${owner.containerId}${LINE_BREAK}${owner.ifname}`);
      await handle.datasync();
      await handle.close();
    } catch (e) {
      // Nobody else can own this file yet (we created it under the lock), so undo the reservation.
      await handle.close().catch(() => undefined);
      await rm(path, { force: true }).catch(() => undefined);
      throw ioError('write', path, e);
    }
    const lastPath = join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSetIndex}`);
    try {
      await writeFile(lastPath, formatIp(ip), { mode: 0o644 });
    } catch (e) {
      throw ioError('write', lastPath, e);
    }
    return true;
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

  async lastReserved(rangeSetIndex: number): Promise<IpAddress | undefined> {
    const path = join(this.dir, `${LAST_RESERVED_PREFIX}${rangeSetIndex}`);
    try {
      return tryParseIp((await readFile(path, 'utf8')).trim());
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') return undefined;
      throw ioError('read', path, e);
    }
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
      // Synchronous reads of these tiny, freshly written files are ~8x faster than fs/promises
      // (no thread-pool round trips), which matters because every ADD and DEL reads them all while
      // holding the lock. Yielding between batches keeps each blocking stretch well under a ms.
      if (i > 0) await setImmediate();
      for (const { ip, file } of addresses.slice(i, i + READ_BATCH)) {
        const path = join(this.dir, file);
        try {
          result.push({ ip, file, owner: parseOwner(readFileSync(path, 'utf8')) });
        } catch (e) {
          if (errnoCode(e) !== 'ENOENT') throw ioError('read', path, e);
        }
      }
    }
    return result;
  }
}
