// host-local IPAM semantics (docs/cni-spec-notes.md §2.2) over the shared on-disk store: one address
// per range set, round-robin from the last reserved address, requested addresses honoured when
// free. Deliberate differences from host-local, each safer and invisible to a correct caller:
//   - the whole ADD (every range set, and any rollback) runs under one hold of the lock, so no
//     other process sees half of a dual-stack allocation;
//   - a failed ADD releases exactly the addresses it took, never older ones of the same owner;
//   - (containerId, ifname) already holding an address in a range set fails even when an
//     address is requested (host-local checks only unrequested allocations);
//   - requested addresses are checked up front (range, gateway, one per range set) before
//     anything is reserved.
import { type IpAddress, compareIp, formatIp } from '../net/cidr.ts';
import { DEFAULT_DATA_DIR, DiskStore, type Owner, type Reservation, type StoreIo, type StoredAddress } from './disk-store.ts';
import type { Allocation, AllocationRequest, Attachment, Ipam, IpamFactory, RangeSetUsage } from './ipam.ts';
import { type RangeSet, allocationOrder, rangeContains, rangeFor, rangeSetCapacity } from './ranges.ts';
import {
  checkAttachment, duplicateError, exhaustedError, matchRequested, requireRangeSets, unavailableError,
} from './request.ts';

export type { Allocation, AllocationRequest, Attachment, RangeSetUsage } from './ipam.ts';

export interface HostLocalIpamOptions {
  /** Defaults to /var/lib/cni/networks, host-local's default. */
  dataDir?: string;
  network: string;
  /** Validated range sets, from parseRangeSets(). */
  rangeSets: readonly RangeSet[];
  lockTimeoutMs?: number;
  /**
   * Told about store files that cannot be owner files (oversized, unreadable), each time a
   * request meets one; such a file's address stays reserved and other requests go on working.
   * Throttle it per message if it goes to a log.
   */
  warn?: (problem: string) => void;
  /** How the store writes files; tests replace it to inject write failures. */
  io?: StoreIo;
}

function ownedBy(owner: Owner | undefined, a: Attachment): boolean {
  return owner !== undefined && owner.containerId === a.containerId && owner.ifname === a.ifname;
}

function ownedByLegacy(owner: Owner | undefined, a: Attachment): boolean {
  return owner !== undefined && owner.containerId === a.containerId && owner.ifname === undefined;
}

function sortedAddresses(stored: { ip: IpAddress }[]): string[] {
  return stored.map((s) => s.ip).sort(compareIp).map(formatIp);
}

export class HostLocalIpam implements Ipam {
  readonly network: string;
  readonly rangeSets: readonly RangeSet[];
  readonly #store: DiskStore;

  constructor(opts: HostLocalIpamOptions) {
    // No range sets is allowed: DEL, CHECK and GC only need the store, and must work even
    // when the node's subnet is unknown (subnet.env gone). Only allocate() needs ranges.
    this.network = opts.network;
    this.rangeSets = opts.rangeSets;
    this.#store = new DiskStore(opts.dataDir ?? DEFAULT_DATA_DIR, opts.network, {
      ...(opts.lockTimeoutMs === undefined ? {} : { lockTimeoutMs: opts.lockTimeoutMs }),
      ...(opts.io ? { io: opts.io } : {}),
      ...(opts.warn ? { warn: opts.warn } : {}),
    });
  }

  /** The store directory, <dataDir>/<network>. */
  get storeDir(): string {
    return this.#store.dir;
  }

  /**
   * Allocates one address per range set for a new attachment (CNI ADD). `requested` holds
   * addresses asked for via CNI_ARGS IP=, args.cni.ips or runtimeConfig.ips ("10.1.2.3" or
   * "10.1.2.3/24"); each must fall in a different range set and is used for that set.
   */
  async allocate(req: AllocationRequest): Promise<Allocation[]> {
    requireRangeSets(this.rangeSets, this.network);
    checkAttachment(req);
    const requestedBySet = matchRequested(this.rangeSets, this.network, req.requested ?? []);
    return this.#store.locked(async () => {
      const stored = await this.#store.list();
      this.#refuseDuplicate(stored, req);
      const taken = new Set(stored.map((s) => formatIp(s.ip)));
      const reserved: Reservation[] = [];
      try {
        const allocations: Allocation[] = [];
        for (const [index, set] of this.rangeSets.entries()) {
          const requested = requestedBySet.get(index);
          const reservation = requested
            ? await this.#reserveRequested(requested, set, index, req, stored)
            : await this.#reserveNext(set, index, req, stored, taken);
          reserved.push(reservation);
          const { ip } = reservation;
          const range = rangeFor(set, ip)!;
          allocations.push({ family: ip.family, address: formatIp(ip), prefix: range.subnet.prefix, gateway: formatIp(range.gateway), rangeSetIndex: index });
        }
        return allocations;
      } catch (e) {
        // Newest first, so each last_reserved_ip gets back what it held before this ADD. Best
        // effort: a file we fail to remove still names its owner, so the DEL a runtime sends
        // after a failed ADD (or gc) frees it. The original error is the one to report.
        for (const r of reserved.reverse()) await this.#store.undo(r).catch(() => undefined);
        throw e;
      }
    });
  }

  /**
   * Frees every address of the attachment (CNI DEL). Idempotent: nothing to free returns [].
   * IDs are not validated here, so a DEL can never fail on them.
   */
  async release(req: Attachment): Promise<string[]> {
    return this.#store.locked(async () => {
      const stored = await this.#store.list();
      let mine = stored.filter((s) => ownedBy(s.owner, req));
      // Like host-local: files holding only the container ID are freed when no current-format file matched.
      if (mine.length === 0) mine = stored.filter((s) => ownedByLegacy(s.owner, req));
      for (const s of mine) await this.#store.remove(s.file);
      return sortedAddresses(mine);
    });
  }

  /** The attachment's addresses (CNI CHECK), legacy container-ID-only files included. */
  async lookup(req: Attachment): Promise<string[]> {
    return this.#store.locked(async () => {
      const stored = await this.#store.list();
      return sortedAddresses(stored.filter((s) => ownedBy(s.owner, req) || ownedByLegacy(s.owner, req)));
    });
  }

  /**
   * Frees every address not held by one of the valid attachments (CNI 1.1 GC), in or outside the
   * current ranges. Legacy files survive if their container ID is valid; files without an owner
   * (left by a crash mid-reservation) are freed. Returns the freed addresses.
   */
  async gc(valid: readonly Attachment[]): Promise<string[]> {
    const key = (containerId: string, ifname: string): string => JSON.stringify([containerId, ifname]);
    const keys = new Set(valid.map((a) => key(a.containerId, a.ifname)));
    const containers = new Set(valid.map((a) => a.containerId));
    return this.#store.locked(async () => {
      const stale = (await this.#store.list()).filter(({ owner, problem }) => {
        // A file we cannot read is not ours to judge; warn() has named it.
        if (problem !== undefined) return false;
        if (owner === undefined) return true;
        if (owner.ifname === undefined) return !containers.has(owner.containerId);
        return !keys.has(key(owner.containerId, owner.ifname));
      });
      for (const s of stale) await this.#store.remove(s.file);
      return sortedAddresses(stale);
    });
  }

  /** Allocated and total addresses per range set (CNI STATUS). Reads without the lock. */
  async usage(): Promise<RangeSetUsage[]> {
    const addresses = await this.#store.listAddresses();
    return this.rangeSets.map((set) => ({
      allocated: countInSet(set, addresses),
      capacity: Number(rangeSetCapacity(set)),
    }));
  }

  #refuseDuplicate(stored: StoredAddress[], req: Attachment): void {
    for (const s of stored) {
      if (!ownedBy(s.owner, req) && !ownedByLegacy(s.owner, req)) continue;
      const index = this.rangeSets.findIndex((set) => rangeFor(set, s.ip) !== undefined);
      if (index !== -1) {
        throw duplicateError(formatIp(s.ip), this.network, req);
      }
    }
  }

  async #reserveRequested(ip: IpAddress, set: RangeSet, index: number, owner: Attachment, stored: StoredAddress[]): Promise<Reservation> {
    const reservation = await this.#store.reserve(ip, owner, index);
    if (reservation) return reservation;
    const problem = stored.find((s) => compareIp(s.ip, ip) === 0)?.problem;
    throw unavailableError(ip, set, this.network, problem);
  }

  async #reserveNext(set: RangeSet, index: number, owner: Attachment, stored: StoredAddress[], taken: Set<string>): Promise<Reservation> {
    // A full set would make the walk below visit every address of the set only to fail.
    if (BigInt(countInSet(set, stored)) < rangeSetCapacity(set)) {
      for (const { ip } of allocationOrder(set, this.#store.lastReserved(index))) {
        // The directory listing spares a syscall per taken address; O_EXCL still decides.
        if (taken.has(formatIp(ip))) continue;
        const reservation = await this.#store.reserve(ip, owner, index);
        if (reservation) return reservation;
      }
    }
    throw exhaustedError(set, this.network);
  }
}

/** Stored addresses that the set could have handed out (inside a range, not its gateway). */
function countInSet(set: RangeSet, addresses: readonly { ip: IpAddress }[]): number {
  return addresses.filter(({ ip }) => set.some((r) => rangeContains(r, ip) && compareIp(ip, r.gateway) !== 0)).length;
}

/** The default IpamFactory: host-local's disk store under the config's dataDir. */
export const hostLocalIpamFactory: IpamFactory = (network) => new HostLocalIpam({
  dataDir: network.dataDir,
  network: network.name,
  rangeSets: network.rangeSets,
  ...(network.warn ? { warn: network.warn } : {}),
});
