// Block IPAM: pod addresses from a growing, possibly non-contiguous set of CIDR blocks that a
// mode hands this node (mesh mode: /26 blocks of IPALLOC_RANGE), over the same on-disk store and
// lock as host-local (allocator.ts), so DEL, CHECK, GC and a host-local process on the same
// store all keep working. Each block is one range with its own gateway (its first address): a
// pod in 10.32.1.64/26 gets 10.32.1.66/26 via 10.32.1.65.
//
// A block with a pod in it must never be given away, so the source is told (activate) before
// the first address of a block is reserved, and allocation prefers blocks already active: it
// tries the active blocks first and opens one more block only when they are full. The
// activate-then-allocate step runs under one mutex per factory, so two ADDs cannot each open a
// block for one pod's worth of need. When every owned block is full the source is asked to
// grow once; a background grow starts early, when few free addresses are left.
//
// The blocks replace the network's range set of their family (subnet.env's FLANNEL_SUBNET, which
// in mesh mode is only the node's first block); range sets of the other family pass through.
import { WeftError, isWeftError } from '../errors.ts';
import {
  type IpAddress, type IpFamily, addressOf, compareIp, formatIp, parseAddressWithPrefix, prefixMask, tryParseIp,
} from '../net/cidr.ts';
import { HostLocalIpam } from './allocator.ts';
import { DiskStore } from './disk-store.ts';
import type { Allocation, AllocationRequest, Attachment, Ipam, IpamFactory, IpamNetwork, RangeSetUsage } from './ipam.ts';
import { type IpRange, type RangeSet, formatRangeSet, parseRange, rangeContains, rangeSetCapacity } from './ranges.ts';
import { checkAttachment, exhaustedError, requireRangeSets } from './request.ts';

/** What a mode that hands out growing blocks offers the node's pod allocator (structural; the mesh control plane implements it). */
export interface BlockSource {
  /** CIDRs this node owns and may allocate pod addresses from, in preference order (stable). */
  blocks(): readonly string[];
  /** The pool must never give this block away from now on (called before the first allocation in it). */
  activate(block: string): void;
  /** Blocks already activated (persisted by the source). */
  active(): readonly string[];
  /** Asks for more space; resolves when blocks() grew, rejects (WeftError WEFT_IPAM_EXHAUSTED with why) when none can be had now. */
  grow(): Promise<void>;
}

export interface BlockIpamOptions {
  /** Free addresses across the owned blocks below which a grow() starts in the background; default 8. */
  growThreshold?: number;
  /** How long an ADD waits for grow() before it fails as exhausted; default 30 s. */
  growTimeoutMs?: number;
}

/**
 * An Ipam whose ranges change under it: the range sets it allocates from now (the bridge keeps
 * the gateways of all of them, and CHECK finds a pod's gateway in them).
 */
export interface DynamicRangeIpam extends Ipam {
  currentRangeSets(): RangeSet[];
}

/** The Ipam's current range sets when they are not simply the network's (block IPAM); else undefined. */
export function currentRangeSetsOf(ipam: Ipam): readonly RangeSet[] | undefined {
  const dynamic = ipam as Partial<DynamicRangeIpam>;
  return typeof dynamic.currentRangeSets === 'function' ? dynamic.currentRangeSets() : undefined;
}

const DEFAULT_GROW_THRESHOLD = 8;
const DEFAULT_GROW_TIMEOUT_MS = 30_000;
/** An exhaustion message lists at most this many blocks; a node may own thousands. */
const LISTED_BLOCKS = 4;

interface Block {
  cidr: string;
  range: IpRange;
}

/** Runs callers one after another, in call order. */
class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/** What every BlockIpam of one factory shares: the source, the mutex, parsed blocks, the grow in flight. */
class BlockPool {
  readonly source: BlockSource;
  readonly mutex = new Mutex();
  readonly growThreshold: number;
  readonly growTimeoutMs: number;
  #parsed = new Map<string, IpRange | Error>();
  #growing: Promise<void> | undefined;
  /** Counts the grows that succeeded: a usage reading taken before one is stale. */
  grows = 0;

  constructor(source: BlockSource, options: BlockIpamOptions) {
    this.source = source;
    this.growThreshold = options.growThreshold ?? DEFAULT_GROW_THRESHOLD;
    this.growTimeoutMs = options.growTimeoutMs ?? DEFAULT_GROW_TIMEOUT_MS;
  }

  /**
   * The owned blocks, active ones first (each group in the source's order), with the active
   * set. A block that cannot be a range (a source bug) is skipped and reported to warn.
   */
  blocks(warn: (problem: string) => void): { ordered: Block[]; active: Set<string>; family: IpFamily } {
    const owned = [...new Set(this.source.blocks())];
    const active = new Set(this.source.active());
    const parsed = new Map<string, IpRange | Error>();
    const valid: Block[] = [];
    for (const cidr of owned) {
      const range = this.#parsed.get(cidr) ?? parseBlock(cidr);
      parsed.set(cidr, range);
      if (range instanceof Error) warn(`ignoring block ${JSON.stringify(cidr)} of the block source: ${range.message}`);
      else valid.push({ cidr, range });
    }
    // Only the blocks owned now are kept, so the cache never outgrows the source.
    this.#parsed = parsed;
    const family = valid[0]?.range.subnet.family ?? 4;
    const ofFamily = valid.filter((b) => {
      if (b.range.subnet.family === family) return true;
      warn(`ignoring block ${b.cidr} of the block source: its blocks are IPv${family}`);
      return false;
    });
    const ordered = [...ofFamily.filter((b) => active.has(b.cidr)), ...ofFamily.filter((b) => !active.has(b.cidr))];
    return { ordered, active, family };
  }

  /** The grow in flight, or a new one; settles within growTimeoutMs. */
  grow(): Promise<void> {
    this.#growing ??= this.#boundedGrow().then(() => {
      this.grows++;
    }).finally(() => {
      this.#growing = undefined;
    });
    return this.#growing;
  }

  async #boundedGrow(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new WeftError('WEFT_IPAM_EXHAUSTED',
        `the block source did not answer a request for more address space within ${this.growTimeoutMs} ms`)), this.growTimeoutMs);
      timer.unref();
    });
    try {
      // A source that throws instead of rejecting is handled the same way.
      await Promise.race([Promise.resolve().then(() => this.source.grow()), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function parseBlock(cidr: string): IpRange | Error {
  try {
    return parseRange({ subnet: cidr }, `block ${cidr}`);
  } catch (e) {
    return e as Error;
  }
}

/** The network's range sets with the blocks' set in place of the set(s) of their family. */
function withBlockSet(rangeSets: readonly RangeSet[], family: IpFamily, blockSet: RangeSet): RangeSet[] {
  const at = rangeSets.findIndex((set) => set[0]?.subnet.family === family);
  if (at === -1) return [blockSet, ...rangeSets];
  return rangeSets.flatMap((set, i) => (i === at ? [blockSet] : set[0]?.subnet.family === family ? [] : [set]));
}

/** host-local's exhaustion error, with the list of blocks cut short when there are many. */
function blocksExhausted(set: RangeSet, network: string): WeftError {
  if (set.length === 0) return new WeftError('WEFT_IPAM_EXHAUSTED', `no IP addresses available in network ${network}: this node owns no address block yet`);
  if (set.length <= LISTED_BLOCKS) return exhaustedError(set, network);
  return new WeftError('WEFT_IPAM_EXHAUSTED',
    `no IP addresses available in range set ${formatRangeSet(set.slice(0, LISTED_BLOCKS))},... (${set.length} blocks) of network ${network}`);
}

function growFailed(exhausted: WeftError, why: unknown): WeftError {
  const reason = why instanceof Error ? why.message : String(why);
  return new WeftError('WEFT_IPAM_EXHAUSTED', `${exhausted.message}, and no more address space can be had now: ${reason}`, { cause: why });
}

function parseRequestedIp(text: string): IpAddress | undefined {
  if (!text.includes('/')) return tryParseIp(text);
  try {
    return addressOf(parseAddressWithPrefix(text));
  } catch {
    return undefined;
  }
}

/** Addresses a set could hand out that are stored (inside a range, not its gateway). */
function countInRanges(addresses: readonly IpAddress[], find: (ip: IpAddress) => IpRange | undefined): number {
  let n = 0;
  for (const ip of addresses) {
    const range = find(ip);
    if (range && rangeContains(range, ip) && compareIp(ip, range.gateway) !== 0) n++;
  }
  return n;
}

/** A lookup of the block holding an address, by masking it with each block length present. */
function blockFinder(blocks: readonly Block[]): (ip: IpAddress) => IpRange | undefined {
  const byNetwork = new Map<string, IpRange>();
  const prefixes = new Set<number>();
  for (const { range } of blocks) {
    byNetwork.set(`${range.subnet.family} ${range.subnet.network}/${range.subnet.prefix}`, range);
    prefixes.add(range.subnet.prefix);
  }
  return (ip) => {
    for (const prefix of prefixes) {
      const found = byNetwork.get(`${ip.family} ${ip.value & prefixMask(ip.family, prefix)}/${prefix}`);
      if (found) return found;
    }
    return undefined;
  };
}

type Attempt = { allocations: Allocation[] } | { exhausted: WeftError };

export class BlockIpam implements DynamicRangeIpam {
  readonly network: string;
  readonly #n: IpamNetwork;
  readonly #pool: BlockPool;
  /** For release, lookup and gc, which need no ranges. */
  readonly #store: HostLocalIpam;

  constructor(network: IpamNetwork, pool: BlockPool) {
    this.network = network.name;
    this.#n = network;
    this.#pool = pool;
    this.#store = this.#hostLocal([]);
  }

  #warn(problem: string): void {
    this.#n.warn?.(problem);
  }

  #hostLocal(rangeSets: readonly RangeSet[]): HostLocalIpam {
    return new HostLocalIpam({
      dataDir: this.#n.dataDir,
      network: this.#n.name,
      rangeSets,
      ...(this.#n.warn ? { warn: this.#n.warn } : {}),
    });
  }

  /** The range sets allocate() may use now: every owned block (active first), then the other family's sets. */
  currentRangeSets(): RangeSet[] {
    if (this.#n.rangeSets.length === 0) return [];
    const { ordered, family } = this.#pool.blocks((p) => this.#warn(p));
    return withBlockSet(this.#n.rangeSets, family, ordered.map((b) => b.range));
  }

  async allocate(req: AllocationRequest): Promise<Allocation[]> {
    requireRangeSets(this.#n.rangeSets, this.network);
    checkAttachment(req);
    const allocations = await this.#pool.mutex.run(() => this.#allocateLocked(req));
    void this.#growIfLow();
    return allocations;
  }

  async #allocateLocked(req: AllocationRequest): Promise<Allocation[]> {
    const first = await this.#fromOwnedBlocks(req);
    if ('allocations' in first) return first.allocations;
    try {
      await this.#pool.grow();
    } catch (e) {
      throw growFailed(first.exhausted, e);
    }
    const second = await this.#fromOwnedBlocks(req);
    if ('allocations' in second) return second.allocations;
    throw second.exhausted;
  }

  /**
   * Tries the active blocks, then opens the other owned blocks one at a time (activating each
   * before anything is reserved in it) until one has room. Requested addresses in an owned
   * block open exactly that block.
   */
  async #fromOwnedBlocks(req: AllocationRequest): Promise<Attempt> {
    const { ordered, active, family } = this.#pool.blocks((p) => this.#warn(p));
    const inUse = ordered.filter((b) => active.has(b.cidr));
    const unopened = ordered.filter((b) => !active.has(b.cidr));
    const requested = (req.requested ?? []).map(parseRequestedIp).filter((ip): ip is IpAddress => ip?.family === family);
    if (requested.length > 0) {
      const wanted: Block[] = [];
      for (const ip of requested) {
        const block = ordered.find((b) => rangeContains(b.range, ip));
        if (!block) {
          throw new WeftError('WEFT_IPAM_CONFLICT', `requested IP address ${formatIp(ip)} is not in any range of network ${this.network}: no block this node owns holds it`);
        }
        if (!active.has(block.cidr) && !wanted.includes(block)) wanted.push(block);
      }
      for (const b of wanted) this.#pool.source.activate(b.cidr);
      return this.#attempt(req, family, [...inUse, ...wanted].map((b) => b.range));
    }
    const set = inUse.map((b) => b.range);
    let last: Attempt = { exhausted: blocksExhausted(set, this.network) };
    if (set.length > 0) {
      last = await this.#attempt(req, family, set);
      if ('allocations' in last) return last;
    }
    for (const block of unopened) {
      // Before the first reservation: from here on the block cannot be given away.
      this.#pool.source.activate(block.cidr);
      set.push(block.range);
      last = await this.#attempt(req, family, set);
      if ('allocations' in last) return last;
    }
    return last;
  }

  /** One ADD through the disk allocator over these blocks; exhaustion of the blocks is a result, anything else throws. */
  async #attempt(req: AllocationRequest, family: IpFamily, blockSet: RangeSet): Promise<Attempt> {
    try {
      return { allocations: await this.#hostLocal(withBlockSet(this.#n.rangeSets, family, blockSet)).allocate(req) };
    } catch (e) {
      // The same function made the message, so equality tells the blocks' set from another family's.
      if (isWeftError(e, 'WEFT_IPAM_EXHAUSTED') && e.message === exhaustedError(blockSet, this.network).message) {
        return { exhausted: blocksExhausted(blockSet, this.network) };
      }
      throw e;
    }
  }

  /** Starts a grow in the background when the owned blocks are nearly full; never throws. */
  async #growIfLow(reading?: { usage: RangeSetUsage; grows: number }): Promise<void> {
    try {
      const { usage, grows } = reading ?? await this.#blockUsage();
      // A grow that finished while the store was read made the reading stale.
      if (grows !== this.#pool.grows || usage.capacity - usage.allocated >= this.#pool.growThreshold) return;
      await this.#pool.grow();
    } catch (e) {
      this.#warn(`cannot get more address space for network ${this.network} ahead of need: ${(e as Error).message}`);
    }
  }

  async #blockUsage(): Promise<{ usage: RangeSetUsage; grows: number; ordered: Block[]; family: IpFamily; addresses: IpAddress[] }> {
    const grows = this.#pool.grows;
    const { ordered, family } = this.#pool.blocks((p) => this.#warn(p));
    const store = new DiskStore(this.#n.dataDir, this.#n.name, this.#n.warn ? { warn: this.#n.warn } : {});
    const addresses = (await store.listAddresses()).map((a) => a.ip);
    const set = ordered.map((b) => b.range);
    const usage = { allocated: countInRanges(addresses, blockFinder(ordered)), capacity: Number(rangeSetCapacity(set)) };
    return { usage, grows, ordered, family, addresses };
  }

  async release(attachment: Attachment): Promise<string[]> {
    return this.#store.release(attachment);
  }

  async lookup(attachment: Attachment): Promise<string[]> {
    return this.#store.lookup(attachment);
  }

  async gc(valid: readonly Attachment[]): Promise<string[]> {
    return this.#store.gc(valid);
  }

  /** Per range set, as the disk allocator; the blocks' set counts over every owned block. Reads without the lock. */
  async usage(): Promise<RangeSetUsage[]> {
    if (this.#n.rangeSets.length === 0) return [];
    const reading = await this.#blockUsage();
    const { usage, ordered, family, addresses } = reading;
    void this.#growIfLow(reading);
    const blockSet = ordered.map((b) => b.range);
    return withBlockSet(this.#n.rangeSets, family, blockSet).map((set) => set === blockSet
      ? usage
      : { allocated: countInRanges(addresses, (ip) => set.find((r) => rangeContains(r, ip))), capacity: Number(rangeSetCapacity(set)) });
  }
}

/**
 * An IpamFactory over a BlockSource: every Ipam it makes shares the source, one allocation
 * mutex and the grow in flight; addresses live in host-local's store under the config's dataDir.
 */
export function blockIpamFactory(source: BlockSource, options: BlockIpamOptions = {}): IpamFactory {
  const pool = new BlockPool(source, options);
  return (network) => new BlockIpam(network, pool);
}
