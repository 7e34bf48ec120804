// The block map: which peer owns which address block of the mesh's range, as a state-based CRDT.
//
// The range (the "universe", an IPv4 CIDR) is cut into 2^k CIDR-aligned blocks, indexed
// 0..2^k-1. Every block always has exactly one entry (owner, epoch, counter); keys are never
// added or removed, so the state is bounded and needs no tombstones. Only the owner of a block
// changes its entry (a grant bumps the counter); the one exception is a reclaim of a dead peer's
// blocks, which bumps the epoch so it wins over whatever the dead peer wrote. Merging takes, per
// block, the entry with the higher (epoch, counter); an equal version with a different owner can
// only come from a bug or a split brain, and is resolved by a fixed rule (the larger owner name
// wins, no owner is smallest) and reported instead of failing, so peers keep talking.
//
// Nothing here reads a clock, draws random numbers or does I/O: the same inputs give the same
// bytes on every peer, which is what lets the digest stand for the whole state in anti-entropy.
//
// Storage is three typed arrays indexed by block plus a small table of owner names, so the
// default /12 in /26 blocks (16,384 blocks) costs 160 KiB and a merge allocates almost nothing.
import { createHash } from 'node:crypto';
import { WeftError } from '../../errors.ts';
import { formatCidr, parseCidr, tryParseIp } from '../../net/cidr.ts';

export interface BlockEntry { readonly owner: string | null; readonly epoch: number; readonly counter: number }
/** A run of consecutive blocks with identical entries: the wire and disk form. */
export interface BlockRun { start: number; count: number; owner: string | null; epoch: number; counter: number }
export interface MergeResult { changed: number; conflicts: { block: number; kept: string | null; dropped: string | null }[] }

/** At most 2^16 blocks per map (blockPrefix - universe prefix ≤ 16). */
export const MAX_BLOCK_BITS = 16;
/** Blocks smaller than a /30 leave no room for a gateway and pods. */
export const MAX_BLOCK_PREFIX = 30;
/** Distinct owners one map may name; a peer cannot make us remember more. */
export const MAX_OWNERS = 4096;
/** Epochs and counters are unsigned 32-bit numbers. */
export const MAX_VERSION = 0xffff_ffff;

// The owner table may briefly hold names no block refers to any more (a merge can name new
// owners before it overwrites old ones); it is compacted when it reaches this many slots, so it
// stays bounded: slot 0 is "no owner", then at most MAX_OWNERS live names plus as many new ones.
const TABLE_SLOTS = 2 * MAX_OWNERS + 1;
const NO_OWNER = 0;

const MAC_NAME = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const PLAIN_NAME = /^[A-Za-z0-9._-]{1,63}$/;

/** A peer name (aa:bb:cc:dd:ee:ff) or a plain name of 1-63 letters, digits, '.', '_' or '-'. */
export function isOwnerName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= 63 && (MAC_NAME.test(value) || PLAIN_NAME.test(value));
}

/** A block map that is wrong, or an operation on it that is refused. */
export function meshStateError(message: string): WeftError {
  return new WeftError('WEFT_MESH_STATE', message);
}

function configError(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', message);
}

/** A short, safe rendering of an untrusted value for an error message. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'undefined') return String(value);
  return `a ${typeof value}`;
}

/** Orders owners for the tie-break: no owner first, then names by code unit. */
export function compareOwners(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

interface Geometry { universe: string; network: number; blockPrefix: number; size: number; blockAddresses: number }

function geometry(universe: string, blockPrefix: number): Geometry {
  if (typeof universe !== 'string') throw configError(`the address range must be a CIDR string, got ${describe(universe)}`);
  const cidr = parseCidr(universe);
  if (cidr.family !== 4) throw configError(`the address range ${universe} is IPv6; mesh mode allocates from an IPv4 range`);
  if (!Number.isInteger(blockPrefix) || blockPrefix < cidr.prefix || blockPrefix > MAX_BLOCK_PREFIX) {
    throw configError(`block size /${String(blockPrefix)} does not fit the range ${universe}: use a prefix from /${cidr.prefix} to /${MAX_BLOCK_PREFIX}`);
  }
  const bits = blockPrefix - cidr.prefix;
  if (bits > MAX_BLOCK_BITS) {
    throw configError(`the range ${universe} in /${blockPrefix} blocks makes ${2 ** bits} blocks, more than the ${2 ** MAX_BLOCK_BITS} supported: use blocks of /${cidr.prefix + MAX_BLOCK_BITS} or larger, or a smaller range`);
  }
  return { universe: formatCidr(cidr), network: Number(cidr.network), blockPrefix, size: 2 ** bits, blockAddresses: 2 ** (32 - blockPrefix) };
}

/** Checks untrusted runs for a map of `size` blocks; copies them when `copy` (else returns the input). */
function checkRuns(raw: unknown, size: number, maxRuns: number, copy: boolean): BlockRun[] {
  if (!Array.isArray(raw)) throw meshStateError(`block runs must be an array, got ${describe(raw)}`);
  if (raw.length > maxRuns) throw meshStateError(`${raw.length} block runs is more than the ${maxRuns} allowed for this map`);
  const out: BlockRun[] = copy ? [] : (raw as BlockRun[]);
  const owners = new Set<string>();
  let end = 0;
  for (let i = 0; i < raw.length; i++) {
    const run: unknown = raw[i];
    const at = `block run ${i}`;
    if (typeof run !== 'object' || run === null || Array.isArray(run)) throw meshStateError(`${at} must be an object, got ${describe(run)}`);
    const fields = run as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (key !== 'start' && key !== 'count' && key !== 'owner' && key !== 'epoch' && key !== 'counter') {
        throw meshStateError(`${at} has an unknown field ${describe(key)}`);
      }
    }
    const { start, count, owner, epoch, counter } = fields;
    if (!Number.isInteger(start) || (start as number) < 0 || (start as number) >= size) {
      throw meshStateError(`${at}: "start" must be an integer from 0 to ${size - 1}, got ${describe(start)}`);
    }
    const s = start as number;
    if (s < end) throw meshStateError(`${at} starts at block ${s}, inside or before the previous run (which ends before ${end}): runs must be sorted and must not overlap`);
    if (!Number.isInteger(count) || (count as number) < 1 || (count as number) > size - s) {
      throw meshStateError(`${at}: "count" must be an integer from 1 to ${size - s} (the map has ${size} blocks), got ${describe(count)}`);
    }
    for (const [name, value] of [['epoch', epoch], ['counter', counter]] as const) {
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_VERSION) {
        throw meshStateError(`${at}: "${name}" must be an integer from 0 to ${MAX_VERSION}, got ${describe(value)}`);
      }
    }
    if (owner !== null) {
      if (!isOwnerName(owner)) throw meshStateError(`${at}: "owner" must be null or a peer name (aa:bb:cc:dd:ee:ff or 1-63 of A-Z a-z 0-9 . _ -), got ${describe(owner)}`);
      if (epoch === 0 && counter === 0) throw meshStateError(`${at}: version (0,0) is the initial unowned state, but names owner ${owner}`);
      owners.add(owner);
      if (owners.size > MAX_OWNERS) throw meshStateError(`block runs name more than ${MAX_OWNERS} distinct owners`);
    }
    end = s + (count as number);
    if (copy) out.push({ start: s, count: count as number, owner: owner as string | null, epoch: epoch as number, counter: counter as number });
  }
  return out;
}

export class BlockMap {
  /** The range, canonical text ("10.32.0.0/12"). */
  readonly universe: string;
  readonly blockPrefix: number;
  /** Number of blocks. */
  readonly size: number;
  readonly #network: number;
  readonly #blockAddresses: number;
  #owner: Uint16Array;
  readonly #epoch: Uint32Array;
  readonly #counter: Uint32Array;
  // Owner table: slot 0 is "no owner"; #counts[i] = blocks naming slot i; #live = slots > 0 with blocks.
  #names: (string | null)[] = [null];
  #slots = new Map<string, number>();
  #counts: number[] = [0];
  #live = 0;

  private constructor(g: Geometry) {
    this.universe = g.universe;
    this.blockPrefix = g.blockPrefix;
    this.size = g.size;
    this.#network = g.network;
    this.#blockAddresses = g.blockAddresses;
    this.#owner = new Uint16Array(g.size);
    this.#epoch = new Uint32Array(g.size);
    this.#counter = new Uint32Array(g.size);
    this.#counts[NO_OWNER] = g.size;
  }

  /** A map with every block unowned at version (0,0). Throws WEFT_INVALID_CONFIG for a bad range or block size. */
  static create(universe: string, blockPrefix: number): BlockMap {
    return new BlockMap(geometry(universe, blockPrefix));
  }

  /**
   * The first allocation: the sorted, de-duplicated owners split the range by recursive
   * halving (the first floor(n/2) take the lower half, the rest the upper half), so each owner
   * gets one CIDR-aligned range; 3 owners get 50/25/25 %. Every entry is at version (0,1).
   */
  static seed(universe: string, blockPrefix: number, owners: readonly string[]): BlockMap {
    const map = BlockMap.create(universe, blockPrefix);
    for (const owner of owners) {
      if (!isOwnerName(owner)) throw configError(`seed owner ${describe(owner)} is not a peer name (aa:bb:cc:dd:ee:ff or 1-63 of A-Z a-z 0-9 . _ -)`);
    }
    const sorted = [...new Set(owners)].sort();
    if (sorted.length === 0) throw configError('the first allocation needs at least one peer to own the range');
    if (sorted.length > map.size) {
      throw configError(`the range ${map.universe} is too small for ${sorted.length} peers: it has only ${map.size} /${blockPrefix} blocks; use a larger range or smaller blocks`);
    }
    if (sorted.length > MAX_OWNERS) throw configError(`the first allocation names ${sorted.length} peers; at most ${MAX_OWNERS} are supported`);
    const split = (names: readonly string[], start: number, count: number): void => {
      if (names.length === 1) {
        const slot = map.#intern(names[0] as string);
        for (let b = start; b < start + count; b++) map.#write(b, slot, 0, 1);
        return;
      }
      const lower = Math.floor(names.length / 2);
      split(names.slice(0, lower), start, count / 2);
      split(names.slice(lower), start + count / 2, count / 2);
    };
    split(sorted, 0, map.size);
    return map;
  }

  /** A map from untrusted runs (validated; throws WEFT_MESH_STATE); blocks not covered stay unowned at (0,0). */
  static fromRuns(universe: string, blockPrefix: number, runs: readonly unknown[]): BlockMap {
    const map = BlockMap.create(universe, blockPrefix);
    map.merge(map.validateRuns(runs));
    return map;
  }

  entry(block: number): BlockEntry {
    this.#checkIndex(block);
    return { owner: this.#names[this.#owner[block] as number] as string | null, epoch: this.#epoch[block] as number, counter: this.#counter[block] as number };
  }

  blockCidr(block: number): string {
    this.#checkIndex(block);
    return this.#cidr(block, this.blockPrefix);
  }

  /** The block holding an IPv4 address of the range, or undefined (not an address, or outside the range). */
  blockOf(address: string): number | undefined {
    const ip = tryParseIp(address);
    if (ip === undefined || ip.family !== 4) return undefined;
    const offset = Number(ip.value) - this.#network;
    if (offset < 0 || offset >= this.size * this.#blockAddresses) return undefined;
    return Math.floor(offset / this.#blockAddresses);
  }

  /** The peer's blocks, ascending. */
  ownedBy(peer: string): number[] {
    const slot = this.#slots.get(peer);
    const out: number[] = [];
    if (slot === undefined || this.#counts[slot] === 0) return out;
    for (let b = 0; b < this.size; b++) if (this.#owner[b] === slot) out.push(b);
    return out;
  }

  /** The peer's blocks coalesced into the fewest CIDRs, sorted by address. */
  cidrsOf(peer: string): string[] {
    return coalesce(this, this.ownedBy(peer));
  }

  /** Block count per owner (null = unowned): owners with no block are left out; null first, then names sorted. */
  owners(): Map<string | null, number> {
    const out = new Map<string | null, number>();
    if ((this.#counts[NO_OWNER] as number) > 0) out.set(null, this.#counts[NO_OWNER] as number);
    const named: [string, number][] = [];
    for (let slot = 1; slot < this.#names.length; slot++) {
      const count = this.#counts[slot] as number;
      if (count > 0) named.push([this.#names[slot] as string, count]);
    }
    named.sort((a, b) => compareOwners(a[0], b[0]));
    for (const [name, count] of named) out.set(name, count);
    return out;
  }

  /**
   * self gives these blocks (every one must be self's in this view) to `to`: counter+1, owner
   * `to`. Returns the delta runs to broadcast. Giving to self re-asserts the blocks at a higher
   * version. Throws WEFT_MESH_STATE, changing nothing, when a block is not self's.
   */
  grant(self: string, blocks: readonly number[], to: string): BlockRun[] {
    this.#checkName(self, 'granting peer');
    this.#checkName(to, 'receiving peer');
    const selfSlot = this.#slots.get(self);
    const unique = [...new Set(blocks)].sort((a, b) => a - b);
    for (const block of unique) {
      if (!Number.isInteger(block) || block < 0 || block >= this.size) {
        throw meshStateError(`cannot grant block ${describe(block)}: blocks of ${this.universe} in /${this.blockPrefix} are numbered 0 to ${this.size - 1}`);
      }
      if (selfSlot === undefined || this.#owner[block] !== selfSlot) {
        const owner = this.#names[this.#owner[block] as number];
        throw meshStateError(`${self} cannot grant block ${block} (${this.#cidr(block, this.blockPrefix)}): it is owned by ${owner ?? 'nobody'} in this view`);
      }
      if (this.#counter[block] === MAX_VERSION) throw meshStateError(`block ${block} (${this.#cidr(block, this.blockPrefix)}) has used up its version counter; it can change hands only by a reclaim`);
    }
    if (unique.length === 0) return [];
    this.#ensureRoom([to], unique.length === this.#counts[selfSlot as number] ? 1 : 0);
    const toSlot = this.#intern(to);
    for (const block of unique) this.#write(block, toSlot, this.#epoch[block] as number, (this.#counter[block] as number) + 1);
    return this.runsOf(unique);
  }

  /** A clean leave: hand these blocks to the heir (the same as grant). */
  release(self: string, blocks: readonly number[], heir: string): BlockRun[] {
    return this.grant(self, blocks, heir);
  }

  /** A clean leave: hand every block of self to the heir. */
  giveAll(self: string, heir: string): BlockRun[] {
    return this.grant(self, this.ownedBy(self), heir);
  }

  /**
   * self takes every block `dead` owns in this view, at epoch+1 and counter 0, so the reclaim
   * wins over anything the dead peer wrote. Only the one authorised heir may call this for a
   * peer known to be gone for good: two reclaimers produce equal versions (a reported conflict).
   */
  reclaim(self: string, dead: string): BlockRun[] {
    this.#checkName(self, 'reclaiming peer');
    if (dead === null || dead === undefined) throw meshStateError('cannot reclaim the unowned blocks: name the dead peer whose blocks to take');
    this.#checkName(dead, 'dead peer');
    if (dead === self) throw meshStateError(`${self} cannot reclaim its own blocks`);
    const blocks = this.ownedBy(dead);
    if (blocks.length === 0) return [];
    for (const block of blocks) {
      if (this.#epoch[block] === MAX_VERSION) throw meshStateError(`block ${block} (${this.#cidr(block, this.blockPrefix)}) has used up its epochs and cannot be reclaimed`);
    }
    this.#ensureRoom([self], 1); // dead's slot empties
    const selfSlot = this.#intern(self);
    for (const block of blocks) this.#write(block, selfSlot, (this.#epoch[block] as number) + 1, 0);
    return this.runsOf(blocks);
  }

  /**
   * Applies runs (a delta or a full state) with the per-block merge: the higher (epoch, counter)
   * wins; an equal version with another owner keeps the larger owner name and is reported.
   * The result does not depend on the order runs arrive in. The runs are checked again (cheaply)
   * and a bad set changes nothing (WEFT_MESH_STATE), as does one that would name more than
   * MAX_OWNERS owners.
   */
  merge(runs: readonly BlockRun[]): MergeResult {
    checkRuns(runs, this.size, this.size, false);
    this.#ensureRoomForMerge(runs);
    let changed = 0;
    const conflicts: MergeResult['conflicts'] = [];
    for (const run of runs) {
      let slot = -1; // interned on the run's first winning block
      for (let b = run.start; b < run.start + run.count; b++) {
        const order = this.#compareIncoming(b, run);
        if (order === 0 && run.owner !== this.#names[this.#owner[b] as number]) {
          // Reported whichever side wins, so both peers see the same conflict.
          const ours = this.#names[this.#owner[b] as number] as string | null;
          const theirsWins = compareOwners(run.owner, ours) > 0;
          conflicts.push({ block: b, kept: theirsWins ? run.owner : ours, dropped: theirsWins ? ours : run.owner });
          if (!theirsWins) continue;
        } else if (order <= 0) {
          continue;
        }
        if (slot === -1) slot = run.owner === null ? NO_OWNER : this.#intern(run.owner);
        this.#write(b, slot, run.epoch, run.counter);
        changed++;
      }
    }
    return { changed, conflicts };
  }

  /** Validates untrusted runs against this map: bounds, order, owner names, numbers. Throws WEFT_MESH_STATE. */
  validateRuns(raw: unknown, maxRuns: number = this.size): BlockRun[] {
    return checkRuns(raw, this.size, maxRuns, true);
  }

  /** The canonical form: maximal runs of identical entries, sorted by start, covering every block. */
  runs(): BlockRun[] {
    const out: BlockRun[] = [];
    let start = 0;
    for (let b = 1; b <= this.size; b++) {
      if (b < this.size && this.#sameEntry(b, b - 1)) continue;
      out.push(this.#runAt(start, b - start));
      start = b;
    }
    return out;
  }

  /** The entries of these blocks as maximal runs (a delta to send), sorted; duplicates are ignored. */
  runsOf(blocks: readonly number[]): BlockRun[] {
    const sorted = [...new Set(blocks)].sort((a, b) => a - b);
    for (const b of sorted) this.#checkIndex(b);
    const out: BlockRun[] = [];
    let i = 0;
    while (i < sorted.length) {
      const start = sorted[i] as number;
      let j = i + 1;
      while (j < sorted.length && sorted[j] === start + (j - i) && this.#sameEntry(sorted[j] as number, start)) j++;
      out.push(this.#runAt(start, j - i));
      i = j;
    }
    return out;
  }

  /** sha256 (hex) of the canonical encoding: equal states, and only those, give equal digests. */
  digest(): string {
    // Encoding: "weft-block-map/1 <universe> <blockPrefix>\n", then per canonical run
    // start, count, epoch, counter (u32 big-endian each), owner length (u8, 0 = none), owner bytes.
    const hash = createHash('sha256');
    hash.update(`weft-block-map/1 ${this.universe} ${this.blockPrefix}\n`);
    const record = Buffer.alloc(17 + 63);
    for (const run of this.runs()) {
      record.writeUInt32BE(run.start, 0);
      record.writeUInt32BE(run.count, 4);
      record.writeUInt32BE(run.epoch, 8);
      record.writeUInt32BE(run.counter, 12);
      const owner = run.owner ?? '';
      record.writeUInt8(owner.length, 16);
      record.write(owner, 17, 'latin1');
      hash.update(record.subarray(0, 17 + owner.length));
    }
    return hash.digest('hex');
  }

  clone(): BlockMap {
    const copy = new BlockMap({ universe: this.universe, network: this.#network, blockPrefix: this.blockPrefix, size: this.size, blockAddresses: this.#blockAddresses });
    copy.#owner.set(this.#owner);
    copy.#epoch.set(this.#epoch);
    copy.#counter.set(this.#counter);
    copy.#names = [...this.#names];
    copy.#slots = new Map(this.#slots);
    copy.#counts = [...this.#counts];
    copy.#live = this.#live;
    return copy;
  }

  /** Bytes this map holds in typed arrays and its owner table (an estimate for the table). */
  approxBytes(): number {
    let names = 0;
    for (const name of this.#names) names += name === null ? 8 : 64 + 2 * name.length;
    return this.#owner.byteLength + this.#epoch.byteLength + this.#counter.byteLength + names + 8 * this.#counts.length;
  }

  #checkIndex(block: number): void {
    if (!Number.isInteger(block) || block < 0 || block >= this.size) throw new RangeError(`block ${block} is not in 0..${this.size - 1}`);
  }

  #checkName(name: string, role: string): void {
    if (!isOwnerName(name)) throw meshStateError(`the ${role} ${describe(name)} is not a peer name (aa:bb:cc:dd:ee:ff or 1-63 of A-Z a-z 0-9 . _ -)`);
  }

  #cidr(block: number, prefix: number): string {
    return formatCidr({ family: 4, network: BigInt(this.#network + block * this.#blockAddresses), prefix });
  }

  /** > 0 when the run's entry beats block b's, 0 for an equal version, < 0 when it loses. */
  #compareIncoming(b: number, run: BlockRun): number {
    const epoch = this.#epoch[b] as number;
    if (run.epoch !== epoch) return run.epoch - epoch;
    return run.counter - (this.#counter[b] as number);
  }

  #sameEntry(a: number, b: number): boolean {
    return this.#owner[a] === this.#owner[b] && this.#epoch[a] === this.#epoch[b] && this.#counter[a] === this.#counter[b];
  }

  #runAt(start: number, count: number): BlockRun {
    return { start, count, owner: this.#names[this.#owner[start] as number] as string | null, epoch: this.#epoch[start] as number, counter: this.#counter[start] as number };
  }

  #write(block: number, slot: number, epoch: number, counter: number): void {
    const old = this.#owner[block] as number;
    if (old !== slot) {
      this.#counts[old] = (this.#counts[old] as number) - 1;
      if (old !== NO_OWNER && this.#counts[old] === 0) this.#live--;
      if (slot !== NO_OWNER && this.#counts[slot] === 0) this.#live++;
      this.#counts[slot] = (this.#counts[slot] as number) + 1;
      this.#owner[block] = slot;
    }
    this.#epoch[block] = epoch;
    this.#counter[block] = counter;
  }

  /** The slot for a name, adding it (compacting the table first when it is full). */
  #intern(name: string): number {
    const known = this.#slots.get(name);
    if (known !== undefined) return known;
    if (this.#names.length >= TABLE_SLOTS) this.#compact();
    if (this.#names.length >= TABLE_SLOTS) throw meshStateError(`the block map cannot name more than ${MAX_OWNERS} owners`);
    this.#names.push(name);
    this.#counts.push(0);
    this.#slots.set(name, this.#names.length - 1);
    return this.#names.length - 1;
  }

  /** Drops names no block refers to, renumbering the rest (order kept, so this is invisible). */
  #compact(): void {
    const renumber = new Uint16Array(this.#names.length);
    const names: (string | null)[] = [null];
    const counts: number[] = [this.#counts[NO_OWNER] as number];
    this.#slots.clear();
    for (let slot = 1; slot < this.#names.length; slot++) {
      if (this.#counts[slot] === 0) continue;
      renumber[slot] = names.length;
      this.#slots.set(this.#names[slot] as string, names.length);
      names.push(this.#names[slot] as string);
      counts.push(this.#counts[slot] as number);
    }
    for (let b = 0; b < this.size; b++) this.#owner[b] = renumber[this.#owner[b] as number] as number;
    this.#names = names;
    this.#counts = counts;
  }

  /** Refuses (before any change) an operation that would leave more than MAX_OWNERS owners. */
  #ensureRoom(newOwners: readonly string[], emptied: number): void {
    let added = 0;
    for (const name of newOwners) {
      const slot = this.#slots.get(name);
      if (slot === undefined || this.#counts[slot] === 0) added++;
    }
    if (this.#live + added - emptied > MAX_OWNERS) {
      throw meshStateError(`the block map already names ${this.#live} owners, the most it may (${MAX_OWNERS}); refusing to add ${newOwners.join(', ')}`);
    }
  }

  /** The owner count after a merge, computed without changing anything; throws when it is too many. */
  #ensureRoomForMerge(runs: readonly BlockRun[]): void {
    // Only named owners matter; net block gains and losses per owner decide who stays live.
    const delta = new Map<string, number>();
    const add = (name: string | null, n: number): void => {
      if (name !== null) delta.set(name, (delta.get(name) ?? 0) + n);
    };
    for (const run of runs) {
      for (let b = run.start; b < run.start + run.count; b++) {
        const order = this.#compareIncoming(b, run);
        const ours = this.#names[this.#owner[b] as number] as string | null;
        if (order < 0 || ours === run.owner || (order === 0 && compareOwners(run.owner, ours) < 0)) continue;
        add(ours, -1);
        add(run.owner, 1);
      }
    }
    if (delta.size === 0) return;
    let live = this.#live;
    for (const [name, change] of delta) {
      const slot = this.#slots.get(name);
      const before = slot === undefined ? 0 : (this.#counts[slot] as number);
      if (before === 0 && change > 0) live++;
      if (before > 0 && before + change === 0) live--;
    }
    if (live > MAX_OWNERS) throw meshStateError(`merging these block runs would name ${live} owners, more than the ${MAX_OWNERS} a block map may; the update is refused`);
  }
}

/** Splits sorted, distinct block indices into maximal CIDR-aligned power-of-two chunks. */
export function alignedChunks(blocks: readonly number[]): { start: number; count: number }[] {
  const sorted = [...new Set(blocks)].sort((a, b) => a - b);
  const out: { start: number; count: number }[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i + 1;
    while (j < sorted.length && sorted[j] === (sorted[i] as number) + (j - i)) j++;
    let start = sorted[i] as number;
    const end = (sorted[i] as number) + (j - i);
    while (start < end) {
      let count = 1;
      while (start % (count * 2) === 0 && start + count * 2 <= end) count *= 2;
      out.push({ start, count });
      start += count;
    }
    i = j;
  }
  return out;
}

/** Block indices of the map as the fewest CIDRs, sorted by address ("10.32.0.0/25", ...). */
export function coalesce(map: BlockMap, blocks: readonly number[]): string[] {
  return alignedChunks(blocks).map(({ start, count }) => {
    const first = map.blockCidr(start);
    return `${first.slice(0, first.indexOf('/'))}/${map.blockPrefix - Math.log2(count)}`;
  });
}

/**
 * Which blocks a donor should give to a peer asking for `wanted`: only blocks the donor owns
 * and does not use, at most half of its free blocks and at most `wanted`, and never its last
 * free block (a donor keeps a spare). Gives one CIDR-aligned chunk (a power of two, so one
 * route): the largest that fits within those bounds in any free run, taken from the longest run
 * holding one that large, at the top of that run so the donor keeps its lower blocks together.
 * Returns ascending indices; [] when it cannot give.
 */
export function pickDonation(map: BlockMap, donor: string, wanted: number, inUse: ReadonlySet<number>): number[] {
  const free = map.ownedBy(donor).filter((b) => !inUse.has(b));
  const limit = Math.min(Number.isFinite(wanted) ? Math.floor(wanted) : 0, Math.floor(free.length / 2));
  if (limit < 1) return [];
  let best: { start: number; size: number; runLength: number } | undefined;
  let i = 0;
  while (i < free.length) {
    let j = i + 1;
    while (j < free.length && free[j] === (free[i] as number) + (j - i)) j++;
    const runStart = free[i] as number;
    const runEnd = runStart + (j - i);
    const chunk = topAlignedChunk(runStart, runEnd, limit);
    const better = best === undefined || chunk.size > best.size
      || (chunk.size === best.size && (j - i > best.runLength || (j - i === best.runLength && chunk.start > best.start)));
    if (better) best = { ...chunk, runLength: j - i };
    i = j;
  }
  const out: number[] = [];
  if (best !== undefined) for (let b = best.start; b < best.start + best.size; b++) out.push(b);
  return out;
}

/** The largest aligned power-of-two chunk (≤ limit blocks) inside [start, end), the highest one of that size. */
function topAlignedChunk(start: number, end: number, limit: number): { start: number; size: number } {
  let size = 1;
  while (size * 2 <= limit && size * 2 <= end - start) size *= 2;
  for (; size >= 1; size /= 2) {
    const top = Math.floor((end - size) / size) * size;
    if (top >= start) return { start: top, size };
  }
  return { start: end - 1, size: 1 };
}
