// An Ipam in memory: the second implementation of the seam (ipam.ts), for unit tests of code
// above IPAM, and the proof that the contract (ipam-contract.ts) is about the interface rather
// than the disk store. Same validation and errors as the disk store (request.ts); no files,
// no locks, no legacy owners. Every method runs without an await between reading and changing
// the state, so concurrent calls cannot interleave.
import { type IpAddress, compareIp, formatIp } from '../net/cidr.ts';
import type { Allocation, AllocationRequest, Attachment, Ipam, IpamFactory, RangeSetUsage } from './ipam.ts';
import { type RangeSet, allocationOrder, rangeContains, rangeFor, rangeSetCapacity } from './ranges.ts';
import { checkAttachment, duplicateError, exhaustedError, matchRequested, requireRangeSets, unavailableError } from './request.ts';

interface Held {
  ip: IpAddress;
  owner: Attachment;
}

/** One network's addresses; shared by every MemoryIpam made for that network. */
export class MemoryIpamState {
  /** By formatted address. */
  readonly held = new Map<string, Held>();
  /** Per range set index, the address reserved last (round-robin, as host-local). */
  readonly lastReserved = new Map<number, IpAddress>();
}

const sameAttachment = (a: Attachment, b: Attachment): boolean => a.containerId === b.containerId && a.ifname === b.ifname;
const sorted = (held: Held[]): string[] => held.map((h) => h.ip).sort(compareIp).map(formatIp);

export class MemoryIpam implements Ipam {
  readonly network: string;
  readonly rangeSets: readonly RangeSet[];
  readonly #state: MemoryIpamState;

  constructor(network: string, rangeSets: readonly RangeSet[], state = new MemoryIpamState()) {
    this.network = network;
    this.rangeSets = rangeSets;
    this.#state = state;
  }

  async allocate(req: AllocationRequest): Promise<Allocation[]> {
    requireRangeSets(this.rangeSets, this.network);
    checkAttachment(req);
    const requestedBySet = matchRequested(this.rangeSets, this.network, req.requested ?? []);
    const mine = [...this.#state.held.values()].find((h) => sameAttachment(h.owner, req) && this.#setOf(h.ip) !== -1);
    if (mine) throw duplicateError(formatIp(mine.ip), this.network, req);
    const lastBefore = new Map(this.#state.lastReserved);
    const taken: string[] = [];
    const owner = { containerId: req.containerId, ifname: req.ifname };
    try {
      return this.rangeSets.map((set, index) => {
        const ip = requestedBySet.get(index) ?? this.#next(set, index);
        const key = formatIp(ip);
        if (this.#state.held.has(key)) throw unavailableError(ip, set, this.network);
        this.#state.held.set(key, { ip, owner });
        this.#state.lastReserved.set(index, ip);
        taken.push(key);
        const range = rangeFor(set, ip)!;
        return { family: ip.family, address: key, prefix: range.subnet.prefix, gateway: formatIp(range.gateway), rangeSetIndex: index };
      });
    } catch (e) {
      for (const key of taken) this.#state.held.delete(key);
      this.#state.lastReserved.clear();
      for (const [index, ip] of lastBefore) this.#state.lastReserved.set(index, ip);
      throw e;
    }
  }

  async release(attachment: Attachment): Promise<string[]> {
    const mine = [...this.#state.held.entries()].filter(([, h]) => sameAttachment(h.owner, attachment));
    for (const [key] of mine) this.#state.held.delete(key);
    return sorted(mine.map(([, h]) => h));
  }

  async lookup(attachment: Attachment): Promise<string[]> {
    return sorted([...this.#state.held.values()].filter((h) => sameAttachment(h.owner, attachment)));
  }

  async usage(): Promise<RangeSetUsage[]> {
    return this.rangeSets.map((set) => ({ allocated: this.#countIn(set), capacity: Number(rangeSetCapacity(set)) }));
  }

  async gc(valid: readonly Attachment[]): Promise<string[]> {
    const stale = [...this.#state.held.entries()].filter(([, h]) => !valid.some((v) => sameAttachment(v, h.owner)));
    for (const [key] of stale) this.#state.held.delete(key);
    return sorted(stale.map(([, h]) => h));
  }

  #setOf(ip: IpAddress): number {
    return this.rangeSets.findIndex((set) => rangeFor(set, ip) !== undefined);
  }

  #countIn(set: RangeSet): number {
    let n = 0;
    for (const { ip } of this.#state.held.values()) if (set.some((r) => rangeContains(r, ip) && compareIp(ip, r.gateway) !== 0)) n++;
    return n;
  }

  #next(set: RangeSet, index: number): IpAddress {
    // A full set would make the walk visit every address of the set only to fail.
    if (BigInt(this.#countIn(set)) < rangeSetCapacity(set)) {
      for (const { ip } of allocationOrder(set, this.#state.lastReserved.get(index))) {
        if (!this.#state.held.has(formatIp(ip))) return ip;
      }
    }
    throw exhaustedError(set, this.network);
  }
}

/**
 * An IpamFactory over memory: every Ipam it makes for the same network name shares that
 * network's addresses, as every HostLocalIpam over the same store directory does.
 */
export function memoryIpamFactory(): IpamFactory & { state(network: string): MemoryIpamState } {
  const states = new Map<string, MemoryIpamState>();
  const state = (network: string): MemoryIpamState => {
    let s = states.get(network);
    if (!s) states.set(network, (s = new MemoryIpamState()));
    return s;
  };
  return Object.assign((network: Parameters<IpamFactory>[0]) => new MemoryIpam(network.name, network.rangeSets, state(network.name)), { state });
}
