// Property tests for the block map: replicas granting, allocating and reclaiming over a network
// that drops, duplicates and reorders messages and partitions, checked against the invariants
// of an ownership CRDT at every step. A tiny seeded PRNG makes every run reproducible: a failure
// names its seed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BlockMap, compareOwners, pickDonation, type BlockRun } from './block-map.ts';

/** xorshift32: deterministic, good enough to shuffle test schedules. */
class Prng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed * 2654435761) >>> 0 || 1;
  }

  /** A float in [0, 1). */
  next(): number {
    let s = this.#s;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    this.#s = s >>> 0;
    return this.#s / 2 ** 32;
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    assert.ok(items.length > 0);
    return items[this.int(items.length)] as T;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}

const UNIVERSE = '10.32.0.0/20';
const BLOCK = 26; // 64 blocks

/** How one block's entry ranks in the merge order: version, then owner. */
function rank(map: BlockMap, b: number): [number, number, string | null] {
  const e = map.entry(b);
  return [e.epoch, e.counter, e.owner];
}

function compareRank(a: [number, number, string | null], b: [number, number, string | null]): number {
  return a[0] - b[0] || a[1] - b[1] || compareOwners(a[2], b[2]);
}

function merged(a: BlockMap, ...others: BlockMap[]): BlockMap {
  const out = a.clone();
  for (const o of others) out.merge(o.runs());
  return out;
}

/** A random map where equal versions with different owners are common. */
function randomMap(rng: Prng, owners: readonly (string | null)[]): BlockMap {
  const map = BlockMap.create(UNIVERSE, BLOCK);
  const runs: BlockRun[] = [];
  for (let start = 0; start < map.size;) {
    const count = 1 + rng.int(Math.min(6, map.size - start));
    const epoch = rng.int(3);
    const counter = rng.int(3);
    const owner = epoch === 0 && counter === 0 ? null : rng.pick(owners);
    if (rng.chance(0.8)) runs.push({ start, count, owner, epoch, counter });
    start += count;
  }
  map.merge(map.validateRuns(runs));
  return map;
}

describe('merge is a semilattice join', () => {
  const owners = [null, 'a', 'b', 'c', 'aa:bb:cc:dd:ee:ff'];

  it('commutative, associative, idempotent and inflationary, with the same conflicts either way', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Prng(seed);
      const [a, b, c] = [randomMap(rng, owners), randomMap(rng, owners), randomMap(rng, owners)] as [BlockMap, BlockMap, BlockMap];
      const ab = merged(a, b);
      assert.equal(ab.digest(), merged(b, a).digest(), `seed ${seed}: commutative`);
      assert.equal(merged(ab, c).digest(), merged(a, merged(b, c)).digest(), `seed ${seed}: associative`);
      assert.equal(merged(a, a).digest(), a.digest(), `seed ${seed}: idempotent`);
      assert.equal(merged(ab, b).digest(), ab.digest(), `seed ${seed}: absorbs what it merged`);
      for (let blk = 0; blk < a.size; blk++) {
        assert.ok(compareRank(rank(ab, blk), rank(a, blk)) >= 0, `seed ${seed} block ${blk}: a ⊔ b ≥ a`);
        assert.ok(compareRank(rank(ab, blk), rank(b, blk)) >= 0, `seed ${seed} block ${blk}: a ⊔ b ≥ b`);
      }
      const forward = a.clone().merge(b.runs()).conflicts;
      const backward = b.clone().merge(a.runs()).conflicts;
      assert.deepEqual(forward, backward, `seed ${seed}: both sides report the same conflicts`);
      assert.equal(sum(ab.owners().values()), ab.size);
    }
  });

  it('applying the runs of a state one by one, in any order, gives the same bytes', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const rng = new Prng(seed);
      const base = randomMap(rng, owners);
      const deltas = [randomMap(rng, owners), randomMap(rng, owners)].flatMap((m) => m.runs().map((r) => [r]));
      const digests = new Set<string>();
      for (let order = 0; order < 4; order++) {
        const map = base.clone();
        for (const d of rng.shuffle([...deltas, ...deltas.filter(() => rng.chance(0.3))])) map.merge(d);
        digests.add(map.digest());
      }
      assert.equal(digests.size, 1, `seed ${seed}`);
    }
  });
});

describe('an equal-version conflict', () => {
  it('two heirs reclaiming the same dead peer: the larger name wins, everywhere, and both report it', () => {
    const seeded = BlockMap.seed(UNIVERSE, BLOCK, ['aa:00:00:00:00:01', 'aa:00:00:00:00:02', 'aa:00:00:00:00:03', 'aa:00:00:00:00:04']);
    const low = seeded.clone();
    const high = seeded.clone();
    const fromLow = low.reclaim('aa:00:00:00:00:01', 'aa:00:00:00:00:04');
    const fromHigh = high.reclaim('aa:00:00:00:00:03', 'aa:00:00:00:00:04');
    assert.deepEqual(fromLow.map((r) => [r.start, r.count, r.epoch, r.counter]), fromHigh.map((r) => [r.start, r.count, r.epoch, r.counter]));
    const atLow = low.merge(fromHigh);
    const atHigh = high.merge(fromLow);
    const expected = Array.from({ length: 16 }, (_, i) => ({ block: 48 + i, kept: 'aa:00:00:00:00:03', dropped: 'aa:00:00:00:00:01' }));
    assert.deepEqual(atLow, { changed: 16, conflicts: expected });
    assert.deepEqual(atHigh, { changed: 0, conflicts: expected });
    assert.equal(low.digest(), high.digest());
    assert.deepEqual(low.cidrsOf('aa:00:00:00:00:03'), ['10.32.8.0/21']);
    // A third peer hearing both, in either order, ends the same.
    const third1 = seeded.clone();
    third1.merge(fromLow);
    third1.merge(fromHigh);
    const third2 = seeded.clone();
    third2.merge(fromHigh);
    third2.merge(fromLow);
    assert.equal(third1.digest(), low.digest());
    assert.equal(third2.digest(), low.digest());
  });
});

// ---------------------------------------------------------------------------------------------
// The replica simulation.

interface Replica {
  name: string;
  map: BlockMap;
  /** Blocks holding pods: taken only from blocks this replica owns in its view, never given away. */
  inUse: Set<number>;
  alive: boolean;
  /** Versions last seen, to check they never go down. */
  seen: [number, number][];
}

interface Message { from: string; to: string; payload: string }

interface SimOptions { seed: number; replicas: number; steps: number }

class Sim {
  readonly rng: Prng;
  readonly replicas: Replica[];
  readonly initial: BlockMap;
  /** Every delta and full state ever sent, to replay in other orders. */
  readonly sent: BlockRun[][] = [];
  readonly stats = { grants: 0, reclaims: 0, delivered: 0, dropped: 0, duplicated: 0, fullStates: 0, deaths: 0, allocations: 0 };
  #queue: Message[] = [];
  #group = new Map<string, number>(); // partition group per replica; empty = fully connected
  readonly #seed: number;

  constructor(o: SimOptions) {
    this.#seed = o.seed;
    this.rng = new Prng(o.seed);
    const names = new Set<string>();
    while (names.size < o.replicas) {
      names.add(this.rng.chance(0.5)
        ? Array.from({ length: 6 }, () => this.rng.int(256).toString(16).padStart(2, '0')).join(':')
        : `node-${this.rng.int(1000)}`);
    }
    const all = [...names];
    // Some replicas are seeds; the others start with the same (seeded) map but own nothing.
    const seeds = all.filter((_, i) => i === 0 || this.rng.chance(0.5));
    this.initial = BlockMap.seed(UNIVERSE, BLOCK, seeds);
    this.replicas = all.map((name) => ({ name, map: this.initial.clone(), inUse: new Set(), alive: true, seen: versions(this.initial) }));
  }

  get live(): Replica[] {
    return this.replicas.filter((r) => r.alive);
  }

  #fail(message: string): never {
    assert.fail(`seed ${this.#seed}: ${message}`);
  }

  #send(from: Replica, to: Replica, runs: BlockRun[]): void {
    this.sent.push(runs);
    if (!this.#connected(from, to)) return;
    this.#queue.push({ from: from.name, to: to.name, payload: JSON.stringify(runs) });
  }

  #broadcast(from: Replica, runs: BlockRun[]): void {
    for (const to of this.live) if (to !== from) this.#send(from, to, runs);
  }

  #connected(a: Replica, b: Replica): boolean {
    return this.#group.size === 0 || this.#group.get(a.name) === this.#group.get(b.name);
  }

  #receive(to: Replica, payload: string): void {
    const runs = to.map.validateRuns(JSON.parse(payload) as unknown);
    const result = to.map.merge(runs);
    if (result.conflicts.length > 0) this.#fail(`${to.name} saw conflicts ${JSON.stringify(result.conflicts)} though only one heir reclaims`);
    this.#check(to);
  }

  /** Invariants of one replica's view after it changed. */
  #check(r: Replica): void {
    const now = versions(r.map);
    for (let b = 0; b < now.length; b++) {
      const [e, c] = now[b] as [number, number];
      const [pe, pc] = r.seen[b] as [number, number];
      if (e < pe || (e === pe && c < pc)) this.#fail(`${r.name}: block ${b} went from (${pe},${pc}) back to (${e},${c})`);
    }
    r.seen = now;
    // Conservation: every block has one entry, the runs tile the range, owner counts sum to it.
    let next = 0;
    for (const run of r.map.runs()) {
      if (run.start !== next) this.#fail(`${r.name}: runs leave a gap or overlap at ${next}`);
      next += run.count;
    }
    if (next !== r.map.size || sum(r.map.owners().values()) !== r.map.size) this.#fail(`${r.name}: blocks are not conserved`);
  }

  /** Invariants across live replicas, at every step. */
  checkGlobal(): void {
    const believers = new Map<number, string>();
    for (const r of this.live) {
      for (const b of r.map.ownedBy(r.name)) {
        const other = believers.get(b);
        if (other !== undefined) this.#fail(`block ${b} is believed owned by both ${other} and ${r.name}`);
        believers.set(b, r.name);
      }
      for (const b of r.inUse) {
        if (r.map.entry(b).owner !== r.name) this.#fail(`${r.name} lost block ${b}, which holds its pods, to ${r.map.entry(b).owner}`);
      }
    }
  }

  step(): void {
    const action = this.rng.next();
    if (action < 0.15) this.#allocate();
    else if (action < 0.22) this.#free();
    else if (action < 0.36) this.#grant();
    else if (action < 0.44) this.#gossipFull();
    else if (action < 0.86) this.#deliver();
    else if (action < 0.91) this.#repartition();
    else if (action < 0.93) this.#kill();
    else this.#reclaim();
    this.checkGlobal();
  }

  #allocate(): void {
    const r = this.rng.pick(this.live);
    const free = r.map.ownedBy(r.name).filter((b) => !r.inUse.has(b));
    if (free.length === 0) return;
    r.inUse.add(this.rng.pick(free));
    this.stats.allocations++;
  }

  #free(): void {
    const r = this.rng.pick(this.live);
    if (r.inUse.size === 0) return;
    r.inUse.delete(this.rng.pick([...r.inUse]));
  }

  #grant(): void {
    const live = this.live;
    if (live.length < 2) return;
    const donor = this.rng.pick(live);
    const to = this.rng.pick(live.filter((r) => r !== donor));
    // Mostly the donation policy; sometimes any set of free blocks, to stress the merge.
    let blocks = pickDonation(donor.map, donor.name, 1 + this.rng.int(8), donor.inUse);
    if (this.rng.chance(0.3)) blocks = donor.map.ownedBy(donor.name).filter((b) => !donor.inUse.has(b) && this.rng.chance(0.3));
    if (blocks.length === 0) return;
    for (const b of blocks) if (donor.inUse.has(b)) this.#fail(`${donor.name} was offered block ${b}, which is in use`);
    const delta = donor.map.grant(donor.name, blocks, to.name);
    this.stats.grants++;
    this.#check(donor);
    this.#send(donor, to, delta); // the answer to the requester
    if (this.rng.chance(0.7)) this.#broadcast(donor, delta);
  }

  #gossipFull(): void {
    const live = this.live;
    if (live.length < 2) return;
    const from = this.rng.pick(live);
    this.#send(from, this.rng.pick(live.filter((r) => r !== from)), from.map.runs());
    this.stats.fullStates++;
  }

  #deliver(): void {
    if (this.#queue.length === 0) return;
    const i = this.rng.int(this.#queue.length); // any message: reordering
    const m = this.#queue[i] as Message;
    const roll = this.rng.next();
    if (roll >= 0.15) this.#queue.splice(i, 1); // else it stays queued: a duplicate later
    else this.stats.duplicated++;
    const to = this.replicas.find((r) => r.name === m.to) as Replica;
    const from = this.replicas.find((r) => r.name === m.from) as Replica;
    if (roll > 0.9 || !to.alive || !this.#connected(from, to)) {
      this.stats.dropped++;
      return;
    }
    this.#receive(to, m.payload);
    this.stats.delivered++;
  }

  #repartition(): void {
    this.#group.clear();
    if (this.rng.chance(0.4)) return; // healed
    const groups = 2 + this.rng.int(2);
    for (const r of this.replicas) this.#group.set(r.name, this.rng.int(groups));
  }

  #kill(): void {
    const live = this.live;
    if (live.length <= 2) return;
    const r = this.rng.pick(live);
    r.alive = false;
    r.inUse.clear(); // its pods are gone with it
    // What it had not sent is lost with it.
    this.#queue = this.#queue.filter((m) => m.from !== r.name);
    this.stats.deaths++;
  }

  /**
   * The reclaim authority (Kubernetes deleting a Node, in weft): the lowest-named live replica is
   * the one heir, and it acts only once no live replica knows more about the dead peer's blocks
   * than the heir does (it has heard from everyone since the death).
   */
  #reclaim(): void {
    const dead = this.replicas.filter((r) => !r.alive);
    if (dead.length === 0) return;
    const heir = [...this.live].sort((a, b) => compareOwners(a.name, b.name))[0] as Replica;
    const victim = this.rng.pick(dead);
    const blocks = heir.map.ownedBy(victim.name);
    if (blocks.length === 0) return;
    for (const b of blocks) {
      const mine = rank(heir.map, b);
      for (const r of this.live) if (compareRank(rank(r.map, b), mine) > 0) return; // not yet
    }
    const delta = heir.map.reclaim(heir.name, victim.name);
    this.stats.reclaims++;
    this.#check(heir);
    this.#broadcast(heir, delta);
  }

  /** Heal, deliver what is queued, then one anti-entropy round of full states between all live replicas. */
  heal(): void {
    this.#group.clear();
    for (const m of this.rng.shuffle(this.#queue)) {
      const to = this.replicas.find((r) => r.name === m.to) as Replica;
      if (to.alive) this.#receive(to, m.payload);
    }
    this.#queue = [];
    this.checkGlobal();
    const states = this.live.map((r) => ({ from: r, runs: JSON.stringify(r.map.runs()) }));
    for (const to of this.live) {
      for (const s of this.rng.shuffle(states)) if (s.from !== to) this.#receive(to, s.runs);
    }
    this.checkGlobal();
  }
}

function versions(map: BlockMap): [number, number][] {
  return Array.from({ length: map.size }, (_, b) => {
    const e = map.entry(b);
    return [e.epoch, e.counter];
  });
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

describe('replicas under drops, duplicates, reordering and partitions', () => {
  it('keep every invariant at every step and converge to identical bytes after healing', () => {
    const totals = { grants: 0, reclaims: 0, delivered: 0, dropped: 0, duplicated: 0, fullStates: 0, deaths: 0, allocations: 0 };
    for (let seed = 1; seed <= 60; seed++) {
      const sim = new Sim({ seed, replicas: 5 + (seed % 4), steps: 600 });
      for (let i = 0; i < 600; i++) sim.step();
      sim.heal();
      const digests = new Set(sim.live.map((r) => r.map.digest()));
      assert.equal(digests.size, 1, `seed ${seed}: live replicas disagree after anti-entropy`);
      // Order independence: every delta and full state ever sent, replayed onto the start state
      // in other orders (with duplicates), gives the same bytes as in the order they were sent.
      const inOrder = sim.initial.clone();
      for (const runs of sim.sent) inOrder.merge(runs);
      for (let order = 0; order < 3; order++) {
        const replay = sim.initial.clone();
        for (const runs of sim.rng.shuffle([...sim.sent, ...sim.sent.filter(() => sim.rng.chance(0.2))])) replay.merge(runs);
        assert.equal(replay.digest(), inOrder.digest(), `seed ${seed}: replay order ${order}`);
      }
      // Whatever the live replicas agreed on includes everything that was sent and they heard.
      const [converged] = digests;
      const agreed = sim.live[0]?.map as BlockMap;
      assert.equal(agreed.digest(), converged);
      assert.equal(merged(agreed, ...sim.live.map((r) => r.map)).digest(), converged);
      for (const [k, v] of Object.entries(sim.stats)) totals[k as keyof typeof totals] += v;
    }
    // The schedules must actually exercise what they claim to.
    if (process.env.WEFT_SIM_STATS) console.log(totals);
    for (const [k, v] of Object.entries(totals)) assert.ok(v > 20, `only ${v} ${k} across all seeds`);
  });
});
