// One peer of the mesh: its records, the ring's block map, and the gossip that keeps them
// equal everywhere without a store.
// - Dissemination: a change (a record, a grant) is flooded over the partial view: each peer
//   forwards what was news to it to its other neighbours. Heartbeats are not flooded; they
//   spread by anti-entropy, which also repairs anything a flood missed: every few seconds one
//   random neighbour gets our digests, and only the difference is sent.
// - IPAM: the first seeding is Paxos over the electors' records (paxos.ts) or a fixed seed list;
//   a peer without a ring adopts the first ring it hears of and never seeds its own while one
//   exists. Space moves only by its owner's grant: a peer that needs blocks says so in its
//   record, and the donor every peer would pick (the reachable one with the most free blocks)
//   grants them. Blocks holding pods are never given away, and are defended if a merge would
//   take them. A ring seeded apart is never merged: its peers are refused and reported.
import { createHash } from 'node:crypto';
import { WeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { LogThrottle } from '../log/throttle.ts';
import { Connections, controlAddress, formatTarget, type Target } from './connections.ts';
import { BlockMap, MAX_VERSION, pickDonation, type BlockRun } from './crdt/block-map.ts';
import { loadIdentity, type LocalIdentity } from './identity.ts';
import { decodeMessage, encodeMessage, type MeshMessage, type RingInfo } from './messages.ts';
import { chosenValue, electorsHeard, paxosStep, propose, quorumOf } from './paxos.ts';
import { compareVersions, parseRecord, type PaxosState, type PeerRecord } from './record.ts';
import { loadMeshState, saveMeshState, type PersistedMesh } from './state-file.ts';
import type { MeshStatus } from './status/types.ts';
import type { Channel } from './wire/index.ts';
import { MESH_PROTOCOL } from './wire/index.ts';

export type IpallocInit = { mode: 'consensus'; peers: number } | { mode: 'seed'; names: string[] } | { mode: 'observer' };

export interface MeshNodeOptions {
  dir: string;
  name?: string;
  nickname: string;
  listenHost: string;
  port: number;
  targets: readonly Target[];
  /** null: plaintext control plane. */
  psks: readonly Buffer[] | null;
  universe: string;
  blockPrefix: number;
  init: IpallocInit;
  connLimit: number;
  version: string;
  log: Logger;
  timing?: Partial<MeshTiming>;
  /** The most peers remembered (a bound on what a hostile peer can make us hold). */
  maxPeers?: number;
}

export interface MeshTiming {
  tickMs: number;
  heartbeatMs: number;
  antiEntropyMs: number;
  /** A peer not connected and not heard from for this long is unreachable. */
  deadAfterMs: number;
  /** How long grow() waits for a grant. */
  growWaitMs: number;
}

const DEFAULT_TIMING: MeshTiming = { tickMs: 1000, heartbeatMs: 15_000, antiEntropyMs: 5000, deadAfterMs: 90_000, growWaitMs: 15_000 };
const ACTIVE_VIEW = 6;
const DEFAULT_MAX_PEERS = 4096;
/** Times a block holding pods is re-asserted against another claimant before the node gives up and reports it. */
const MAX_DEFENSES = 3;
const MAX_REFUSED = 1000;
/** Runs per block-state message: a fully fragmented /12 map (16,384 runs) is about 1.2 MB of JSON, over a frame. */
const RUNS_PER_CHUNK = 4096;
/** Bytes of records per message, well under a frame (a record is at most 64 KiB). */
const CHUNK_BYTES = 512 * 1024;
/** Blocks a peer asks for first, and each time it runs short. */
export const INITIAL_WANT = 4;
export const GROW_WANT = 2;

export interface Announcement {
  publicIp: string;
  backendType: string;
  backendData: unknown;
}

export interface DataPlanePeer extends Announcement {
  id: string;
  subnets: string[];
}

export function ringIdOf(universe: string, blockPrefix: number, seeds: readonly string[]): string {
  return createHash('sha256').update(`weft-ring-v1|${universe}|${blockPrefix}|${[...seeds].sort().join(',')}`).digest('hex').slice(0, 32);
}

export function meshIdOf(universe: string, blockPrefix: number): string {
  return createHash('sha256').update(`weft-mesh-v1|${universe}|${blockPrefix}`).digest('hex').slice(0, 32);
}

type Origin = Channel | null;

export class MeshNode {
  readonly #o: MeshNodeOptions;
  readonly #t: MeshTiming;
  readonly #log: Logger;
  readonly #throttle: LogThrottle;
  #id!: LocalIdentity;
  /**
   * Seconds since the epoch at start (or the saved one + 1 if higher): a node whose state.json
   * was lost or set aside still outranks the record peers hold of its previous run.
   */
  #incarnation = Math.floor(Date.now() / 1000);
  #seq = 0;
  readonly #records = new Map<string, PeerRecord>();
  readonly #heardAt = new Map<string, number>();
  readonly #refused = new Map<string, string>();
  #ring: RingInfo | null = null;
  #map: BlockMap | null = null;
  readonly #foreignRings = new Map<string, { seeds: string[]; members: Set<string> }>();
  #active = new Set<number>();
  #paxos: PaxosState = { promise: null, accepted: null };
  #wants = 0;
  #announcement: Announcement | null = null;
  #lastPaxosChange = 0;
  /** After a clean leave: every later record says so, and no blocks are asked for. */
  #left = false;
  readonly #defended = new Map<number, number>();
  #conflicts = 0;
  #collision: string | undefined;
  readonly #grantedFor = new Map<string, string>();
  readonly #pendingRecords = new Map<string, Origin>();
  readonly #pendingBlocks = new Map<number, Origin>();
  #flushQueued = false;
  #connections!: Connections;
  #listenPort = 0;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #listeners = new Set<() => void>();
  #stopped = false;
  #recordsHash: string | undefined;
  readonly #traffic = { bytesIn: 0, bytesOut: 0, messagesIn: 0, messagesOut: 0 };
  #targets: readonly Target[];

  constructor(o: MeshNodeOptions) {
    this.#o = o;
    this.#targets = o.targets;
    this.#t = { ...DEFAULT_TIMING, ...o.timing };
    this.#log = o.log;
    this.#throttle = new LogThrottle(o.log, 60_000);
  }

  get name(): string {
    return this.#id.name;
  }

  get port(): number {
    return this.#listenPort;
  }

  /** Loads identity and state, listens and starts meshing; the own record is published on announce(). */
  async start(): Promise<void> {
    const o = this.#o;
    this.#id = loadIdentity(o.dir, { ...(o.name ? { name: o.name } : {}), nickname: o.nickname });
    const saved = loadMeshState(o.dir, { name: this.#id.name, universe: o.universe, blockPrefix: o.blockPrefix }, this.#log);
    if (saved) this.#restore(saved);
    if (!this.#ring && o.init.mode === 'seed') this.#createRing(o.init.names, 'the seed list');
    this.#save();
    const targets = (): readonly Target[] => this.#targets;
    this.#connections = new Connections({
      self: { name: this.#id.name, uid: this.#id.uid, nickname: this.#id.nickname, port: o.port },
      channel: { meshId: meshIdOf(o.universe, o.blockPrefix), meshDescription: `IPALLOC_RANGE ${o.universe}, /${o.blockPrefix} blocks`, psks: o.psks },
      // Read on every tick, so setTargets() takes effect without a restart.
      listenHost: o.listenHost, listenPort: o.port, get targets() { return targets(); }, connLimit: o.connLimit, activeTarget: Math.min(ACTIVE_VIEW, o.connLimit),
      log: this.#log,
      onChannel: (ch) => this.#onChannel(ch),
      onClosed: (ch, why) => this.#log.info({ peer: `${ch.remote.name}(${ch.remote.nickname})`, why: why?.message }, 'mesh connection closed'),
      onCollision: (remote, address) => this.#reportCollision(`peer ${address} uses this node's name ${remote.name} (its nickname ${remote.nickname}, another uid)`),
    });
    this.#listenPort = await this.#connections.start();
    this.#lastPaxosChange = Date.now();
    this.#log.info({ name: this.#id.name, nickname: this.#id.nickname, fresh: this.#id.fresh, port: this.#listenPort, ring: this.#ring?.id ?? null, blocks: this.ownBlocks().length }, 'mesh peer started');
    this.#timers.push(setInterval(() => this.#tick(), this.#t.tickMs));
    this.#timers.push(setInterval(() => this.#heartbeat(), this.#t.heartbeatMs));
    this.#timers.push(setInterval(() => this.#antiEntropy(), this.#t.antiEntropyMs));
    this.#connections.tick([]);
  }

  #restore(s: PersistedMesh): void {
    this.#incarnation = Math.max(s.incarnation + 1, this.#incarnation);
    this.#paxos = s.paxos ?? this.#paxos;
    this.#announcement = s.announcement;
    if (s.ring) {
      try {
        const map = BlockMap.seed(this.#o.universe, this.#o.blockPrefix, s.ring.seeds);
        map.merge(map.validateRuns(s.runs));
        this.#map = map;
        this.#ring = s.ring;
      } catch (e) {
        this.#log.warn({ err: (e as Error).message }, 'the saved block map is unusable; it will be learned again from peers');
      }
    }
    const map = this.#map;
    this.#active = new Set(map ? s.active.filter((b) => b < map.size && map.entry(b).owner === this.#id.name) : []);
  }

  #save(): void {
    saveMeshState(this.#o.dir, {
      format: 1, name: this.#id.name, incarnation: this.#incarnation, universe: this.#o.universe, blockPrefix: this.#o.blockPrefix,
      ring: this.#ring, runs: this.#map?.runs() ?? [], paxos: this.#paxos, active: [...this.#active].sort((a, b) => a - b),
      announcement: this.#announcement,
    });
  }

  /** What this node announced before its restart (its VTEP MAC), if anything. */
  previousAnnouncement(): Announcement | null {
    return this.#announcement;
  }

  /** Publishes where to reach this node; the first call makes it a member (and an elector). */
  announce(a: Announcement): void {
    this.#announcement = a;
    this.#save();
    this.#publish();
  }

  /**
   * Replaces the peer list (a discovery source saw nodes come and go). New targets are dialed on
   * the next tick; connections to dropped ones stay (they are mesh peers like any other).
   */
  setTargets(targets: readonly Target[]): void {
    const unique = new Map(targets.map((t) => [formatTarget(t), { host: t.host, port: t.port }]));
    this.#targets = [...unique.values()];
  }

  get targets(): readonly Target[] {
    return this.#targets;
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }

  // ---- own record -------------------------------------------------------------------------

  #ownFree(): number {
    return this.ownBlocks().filter((b) => !this.#active.has(b)).length;
  }

  #ownRecord(): PeerRecord | undefined {
    const a = this.#announcement;
    if (!a) return undefined;
    const owned = this.ownBlocks().length;
    return {
      name: this.#id.name, uid: this.#id.uid, nickname: this.#id.nickname, incarnation: this.#incarnation, seq: this.#seq,
      addr: `${a.publicIp}:${this.#listenPort || this.#o.port}`, publicIp: a.publicIp, backendType: a.backendType, backendData: a.backendData,
      // Once there is a ring the vote is history (kept on disk, not gossiped): a record stays a few
      // hundred bytes instead of carrying every seed's name, which at 200 peers made each full
      // state most of a megabyte.
      ring: this.#ring?.id ?? null, elector: this.#o.init.mode === 'consensus' && !this.#ring,
      paxos: this.#o.init.mode === 'consensus' && !this.#ring ? this.#paxos : null,
      owned, free: this.#ownFree(), wants: this.#wants, left: this.#left, heartbeat: this.#records.get(this.#id.name)?.heartbeat ?? 0,
    };
  }

  /** A new version of our record; flooded unless only the heartbeat moved. */
  #publish(options: { lazy?: boolean } = {}): void {
    if (!this.#announcement) return;
    this.#seq++;
    const r = this.#ownRecord()!;
    if (options.lazy) r.heartbeat++;
    this.#records.set(r.name, r);
    this.#recordsHash = undefined;
    if (!options.lazy) this.#queueRecord(r.name, null);
  }

  #heartbeat(): void {
    this.#publish({ lazy: true });
  }

  // ---- gossip -----------------------------------------------------------------------------

  #send(ch: Channel, m: MeshMessage): void {
    if (m.t === 'state' && m.records && m.records.length > 1) {
      const chunks = chunkByBytes(m.records, CHUNK_BYTES);
      if (chunks.length > 1) {
        for (const records of chunks) this.#send(ch, { t: 'state', records });
        if (m.ring) this.#send(ch, { ...m, records: [] });
        return;
      }
    }
    const bytes = encodeMessage(m);
    this.#traffic.bytesOut += bytes.length;
    this.#traffic.messagesOut++;
    try {
      ch.send(bytes);
    } catch (e) {
      // Only a message over a frame can throw; records and runs are chunked to stay well below it.
      this.#throttle.error(`send ${m.t}`, { peer: ch.remote.name, bytes: bytes.length }, `a mesh ${m.t} message could not be sent: ${(e as Error).message}`);
    }
  }

  #onChannel(ch: Channel): void {
    this.#log.info({ peer: `${ch.remote.name}(${ch.remote.nickname})`, address: ch.remoteAddress, outbound: ch.outbound, encrypted: ch.encrypted }, 'mesh connection established');
    ch.onMessage((bytes) => this.#onMessage(ch, bytes));
    // Full state on every new connection: a joiner learns everything at once.
    this.#send(ch, { t: 'state', records: [...this.#records.values()] });
    this.#sendBlocks(ch, true);
    this.#changed();
  }

  /** The whole block map, in chunks that fit a frame; the last chunk carries our digest when asked. */
  #sendBlocks(ch: Channel, withDigest: boolean): void {
    const map = this.#map;
    const ring = this.#ring;
    if (!map || !ring) return;
    const runs = map.runs();
    for (let i = 0; i < runs.length; i += RUNS_PER_CHUNK) {
      const last = i + RUNS_PER_CHUNK >= runs.length;
      this.#send(ch, { t: 'state', ring, runs: runs.slice(i, i + RUNS_PER_CHUNK), ...(last && withDigest ? { digest: map.digest() } : {}) });
    }
  }

  #onMessage(ch: Channel, bytes: Buffer): void {
    if (this.#stopped) return;
    this.#traffic.bytesIn += bytes.length;
    this.#traffic.messagesIn++;
    let m: MeshMessage;
    try {
      m = decodeMessage(bytes);
    } catch (e) {
      this.#throttle.warn(`garbage ${ch.remote.name}`, { peer: ch.remote.name }, `mesh peer ${ch.remote.name}(${ch.remote.nickname}) sent ${(e as Error).message}; closing the connection`);
      ch.close('malformed message');
      return;
    }
    // One peer's message must never end the agent: anything unforeseen closes only its connection.
    try {
      if (m.t === 'state') this.#onState(ch, m);
      else if (m.t === 'digest') this.#onDigest(ch, m);
      else this.#onVector(ch, m);
    } catch (e) {
      this.#throttle.error(`handler ${ch.remote.name}`, { peer: ch.remote.name, err: (e as Error).message }, `a ${m.t} message from ${ch.remote.name}(${ch.remote.nickname}) could not be handled: ${(e as Error).message}; closing the connection`);
      ch.close('message could not be handled');
    }
  }

  #onState(ch: Channel, m: Extract<MeshMessage, { t: 'state' }>): void {
    let changed = false;
    if (m.ring) changed = this.#onBlocks(ch, m.ring, m.runs ?? [], m.digest) || changed;
    for (const raw of m.records ?? []) changed = this.#onRecord(ch, raw) || changed;
    if (changed) this.#afterChange();
  }

  #refuse(key: string, reason: string): void {
    if (this.#refused.get(key) === reason) return;
    if (this.#refused.size >= MAX_REFUSED && !this.#refused.has(key)) return;
    this.#refused.set(key, reason);
    this.#throttle.warn(`refused ${key}`, { peer: key, reason }, `mesh: refused ${key}: ${reason}`);
  }

  #onRecord(ch: Channel, raw: unknown): boolean {
    const parsed = parseRecord(raw);
    if ('error' in parsed) {
      const name = typeof raw === 'object' && raw && typeof (raw as { name?: unknown }).name === 'string' ? String((raw as { name: string }).name).slice(0, 63) : `from ${ch.remote.name}`;
      this.#refuse(name, parsed.error);
      return false;
    }
    const r = parsed.record;
    if (r.name === this.#id.name) {
      if (r.uid !== this.#id.uid && r.incarnation >= this.#incarnation) this.#reportCollision(`peer ${r.addr} (nickname ${r.nickname}) uses this node's name ${r.name}`);
      return false;
    }
    const known = this.#records.get(r.name);
    if (known && compareVersions(r, known) <= 0) return false;
    const maxPeers = this.#o.maxPeers ?? DEFAULT_MAX_PEERS;
    if (!known && this.#records.size >= maxPeers) {
      this.#refuse(`more peers than ${maxPeers}`, `the mesh already has ${maxPeers} peers; ${r.name} and any further ones are ignored`);
      return false;
    }
    this.#refused.delete(r.name);
    this.#records.set(r.name, r);
    this.#heardAt.set(r.name, Date.now());
    this.#recordsHash = undefined;
    if (this.#ring && r.ring && r.ring !== this.#ring.id) this.#noteForeign(r.ring, null, r.name, r.addr);
    if (JSON.stringify(known?.paxos ?? null) !== JSON.stringify(r.paxos)) this.#lastPaxosChange = Date.now();
    const onlyHeartbeat = known && known.incarnation === r.incarnation && sameExceptHeartbeat(known, r);
    if (!onlyHeartbeat) this.#queueRecord(r.name, ch);
    return true;
  }

  #onBlocks(ch: Channel, ring: RingInfo, rawRuns: unknown[], theirDigest: string | undefined): boolean {
    const o = this.#o;
    if (ringIdOf(o.universe, o.blockPrefix, ring.seeds) !== ring.id) {
      this.#refuse(`ring from ${ch.remote.name}`, `its ring id ${ring.id} does not match its seed list`);
      return false;
    }
    if (this.#ring && ring.id !== this.#ring.id) {
      this.#noteForeign(ring.id, ring.seeds, ch.remote.name);
      return false;
    }
    let adopted = false;
    if (!this.#ring) {
      let seeded: BlockMap;
      try {
        seeded = BlockMap.seed(o.universe, o.blockPrefix, ring.seeds);
      } catch (e) {
        this.#refuse(`ring from ${ch.remote.name}`, `its ring cannot be built from its seed list: ${(e as Error).message}`);
        return false;
      }
      this.#map = seeded;
      this.#ring = ring;
      adopted = true;
      this.#log.info({ ring: ring.id, seeds: ring.seeds, from: ch.remote.name }, 'joined the existing IPAM ring');
    }
    const map = this.#map!;
    let runs: BlockRun[];
    try {
      runs = map.validateRuns(rawRuns);
    } catch (e) {
      this.#refuse(`blocks from ${ch.remote.name}`, (e as Error).message);
      return adopted;
    }
    let result: ReturnType<BlockMap['merge']>;
    try {
      result = map.merge(runs);
    } catch (e) {
      this.#refuse(`blocks from ${ch.remote.name}`, (e as Error).message);
      return adopted;
    }
    for (const c of result.conflicts) {
      this.#conflicts++;
      this.#throttle.error(`conflict ${c.block}`, { block: map.blockCidr(c.block), kept: c.kept, dropped: c.dropped }, `IPAM conflict on ${map.blockCidr(c.block)}: two owners at one version (kept ${c.kept}, dropped ${c.dropped})`);
    }
    const defended = this.#defendActive(runs);
    if (result.changed > 0 || defended.length > 0) {
      for (const run of runs) for (let b = run.start; b < run.start + run.count; b++) this.#queueBlock(b, ch);
      for (const b of defended) this.#queueBlock(b, null);
      this.#save();
    }
    // A full state that lacked something of ours: send ours back (without a digest: no ping-pong).
    if (theirDigest !== undefined && theirDigest !== map.digest()) this.#sendBlocks(ch, false);
    return adopted || result.changed > 0 || defended.length > 0;
  }

  /**
   * Blocks holding our pods are ours whatever a merge says: only their owner (us) could have
   * written a newer version, so a newer one that names someone else is a forgery, a peer's
   * rmpeer of us while we were cut off, or split state. Keep them, re-assert them above the
   * version we received, and say so loudly.
   */
  #defendActive(runs: readonly BlockRun[]): number[] {
    const map = this.#map!;
    const lost: number[] = [];
    for (const b of this.#active) {
      if (map.entry(b).owner === this.#id.name) continue;
      // Two nodes that both hold pods in a block (an rmpeer while one was cut off) would re-assert
      // it against each other for ever: defend each block a few times, then say so and stop.
      const n = (this.#defended.get(b) ?? 0) + 1;
      this.#defended.set(b, n);
      if (n <= MAX_DEFENSES) lost.push(b);
      else if (n === MAX_DEFENSES + 1) {
        this.#log.error({ block: map.blockCidr(b), owner: map.entry(b).owner }, `address block ${map.blockCidr(b)} holds pods here and on ${map.entry(b).owner}: both claim it; no longer defended. Pods in it may share addresses: drain one of the two nodes and recreate its pods`);
      }
    }
    if (lost.length === 0) return [];
    lost.sort((a, b) => a - b);
    const assert: BlockRun[] = lost.map((b) => {
      const e = map.entry(b);
      return e.counter < MAX_VERSION ? { start: b, count: 1, owner: this.#id.name, epoch: e.epoch, counter: e.counter + 1 }
        : { start: b, count: 1, owner: this.#id.name, epoch: e.epoch + 1, counter: 0 };
    });
    map.merge(assert);
    const first = lost[0]!;
    const claimant = runs.find((r) => first >= r.start && first < r.start + r.count)?.owner ?? 'unknown';
    this.#throttle.error(`defend ${claimant}`, { blocks: lost.map((b) => map.blockCidr(b)), claimant },
      `${claimant} claimed ${lost.length} address block(s) that hold pods on this node (${map.blockCidr(first)}...); refused and re-asserted. If ${claimant} ran 'weft rmpeer' on this node while it was cut off, its new pods there may duplicate ours: recreate them`);
    return lost;
  }

  #noteForeign(ringId: string, seeds: string[] | null, member: string, addr?: string): void {
    // Heard of only by a record: dial that peer, whose block state then proves its ring (see yieldsTo).
    if (!seeds && addr && !this.#foreignRings.get(ringId)?.seeds.length) this.#connections.dial(addr);
    let f = this.#foreignRings.get(ringId);
    if (!f) {
      if (this.#foreignRings.size >= 16) return;
      f = { seeds: seeds ?? [], members: new Set() };
      this.#foreignRings.set(ringId, f);
      this.#log.error({ ours: this.#ring?.id, theirs: ringId, seeds }, `IPAM ring conflict: peer ${member} belongs to ring ${ringId}, seeded apart from ours (${this.#ring?.id}); the rings are never merged and its peers are not routed. Make one side join the other: stop its agents, delete their mesh state (${this.#o.dir}/state.json) and start them again`);
    }
    if (seeds && f.seeds.length === 0) f.seeds = seeds;
    if (f.members.size < 1024) f.members.add(member);
  }

  #reportCollision(message: string): void {
    if (this.#collision === message) return;
    this.#collision = message;
    this.#log.error({}, `peer name collision: ${message}; give one of them a new identity (remove ${this.#o.dir}/identity.json there, or set --name) and restart it`);
  }

  #queueRecord(name: string, origin: Origin): void {
    this.#pendingRecords.set(name, origin);
    this.#queueFlush();
  }

  #queueBlock(block: number, origin: Origin): void {
    this.#pendingBlocks.set(block, origin);
    this.#queueFlush();
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    setImmediate(() => this.#flush());
  }

  /** Sends what changed since the last flush to every neighbour but the one it came from. */
  #flush(): void {
    this.#flushQueued = false;
    if (this.#stopped) return;
    const records = [...this.#pendingRecords];
    const blocks = [...this.#pendingBlocks];
    this.#pendingRecords.clear();
    this.#pendingBlocks.clear();
    for (const ch of this.#connections.established()) {
      const rs = records.filter(([, origin]) => origin !== ch).map(([n]) => this.#records.get(n)).filter((r): r is PeerRecord => !!r);
      const bs = blocks.filter(([, origin]) => origin !== ch).map(([b]) => b);
      const runs = this.#map && this.#ring && bs.length > 0 ? this.#map.runsOf(bs) : undefined;
      if (rs.length === 0 && !runs) continue;
      if (rs.length > 0) this.#send(ch, { t: 'state', records: rs });
      for (let i = 0; runs && i < runs.length; i += RUNS_PER_CHUNK) this.#send(ch, { t: 'state', ring: this.#ring!, runs: runs.slice(i, i + RUNS_PER_CHUNK) });
    }
  }

  #hashRecords(): string {
    this.#recordsHash ??= createHash('sha256').update([...this.#records.values()].map((r) => `${r.name}/${r.incarnation}/${r.seq}`).sort().join(',')).digest('hex');
    return this.#recordsHash;
  }

  #antiEntropy(): void {
    const chans = this.#connections.established();
    const ch = chans[Math.floor(Math.random() * chans.length)];
    if (!ch) return;
    this.#send(ch, { t: 'digest', records: this.#hashRecords(), blocks: this.#map?.digest() ?? null, ring: this.#ring?.id ?? null });
  }

  #onDigest(ch: Channel, m: Extract<MeshMessage, { t: 'digest' }>): void {
    if (m.records !== this.#hashRecords()) this.#send(ch, { t: 'vector', versions: this.#vector(), reply: true });
    if (this.#map && this.#ring && (m.ring === null || m.ring === this.#ring.id) && m.blocks !== this.#map.digest()) {
      this.#sendBlocks(ch, true);
    }
  }

  #vector(): [string, number, number][] {
    return [...this.#records.values()].map((r) => [r.name, r.incarnation, r.seq]);
  }

  #onVector(ch: Channel, m: Extract<MeshMessage, { t: 'vector' }>): void {
    const theirs = new Map<string, { incarnation: number; seq: number }>();
    for (const [name, incarnation, seq] of m.versions) theirs.set(name, { incarnation, seq });
    const newer = [...this.#records.values()].filter((r) => {
      const t = theirs.get(r.name);
      return !t || compareVersions(r, t) > 0;
    });
    if (newer.length > 0) this.#send(ch, { t: 'state', records: newer });
    if (!m.reply) return;
    const lacking = [...theirs].some(([name, t]) => {
      const mine = this.#records.get(name);
      return name !== this.#id.name && (!mine || compareVersions(t, mine) > 0);
    });
    if (lacking) this.#send(ch, { t: 'vector', versions: this.#vector(), reply: false });
  }

  // ---- IPAM -------------------------------------------------------------------------------

  #createRing(seeds: readonly string[], why: string): void {
    const sorted = [...new Set(seeds)].sort();
    const ring = { id: ringIdOf(this.#o.universe, this.#o.blockPrefix, sorted), seeds: sorted };
    this.#map = BlockMap.seed(this.#o.universe, this.#o.blockPrefix, sorted);
    this.#ring = ring;
    this.#log.info({ ring: ring.id, seeds: sorted, owned: this.ownBlocks().length }, `IPAM ring seeded from ${why}`);
    this.#save();
    for (let b = 0; b < this.#map.size; b++) this.#pendingBlocks.set(b, null);
    this.#queueFlush();
  }

  get #quorum(): number {
    return this.#o.init.mode === 'consensus' ? quorumOf(this.#o.init.peers) : Infinity;
  }

  /** Paxos while there is no ring: vote, propose when it is our turn, seed when a value is chosen. */
  #seed(now: number): void {
    if (this.#ring || this.#o.init.mode !== 'consensus' || !this.#announcement) return;
    const chosen = chosenValue(this.#records.values(), this.#quorum);
    if (chosen) {
      try {
        this.#createRing(chosen, `consensus of ${chosen.length} peers`);
      } catch (e) {
        this.#throttle.error('seed', { err: (e as Error).message }, `the agreed seed list cannot make a ring: ${(e as Error).message}`);
        return;
      }
      this.#publish();
      return;
    }
    let next = paxosStep(this.#paxos, this.#id.name, this.#records.values(), this.#quorum);
    if (!next && this.#myTurnToPropose(now)) next = propose(this.#paxos, this.#id.name, this.#records.values());
    if (!next) return;
    this.#paxos = next;
    this.#lastPaxosChange = now;
    this.#save();
    this.#publish();
  }

  /**
   * Proposers take turns by rank among the electors heard (the lowest name first), each waiting
   * longer after the last Paxos activity, so one proposal usually wins without a duel.
   */
  #myTurnToPropose(now: number): boolean {
    const heard = electorsHeard(this.#records.values());
    if (heard.length < this.#quorum) return false;
    const rank = Math.max(0, heard.indexOf(this.#id.name));
    return now - this.#lastPaxosChange > 500 * (rank + 1) + Math.random() * 250;
  }

  /** Grants blocks to every peer that wants some and would pick us as its donor. */
  #grant(): void {
    const map = this.#map;
    const ring = this.#ring;
    if (!map || !ring || !this.#announcement) return;
    for (const r of this.#records.values()) {
      if (r.name === this.#id.name || r.wants === 0 || r.left || r.ring !== ring.id || !this.reachable(r.name)) continue;
      const key = `${r.incarnation}/${r.seq}`;
      if (this.#grantedFor.get(r.name) === key || this.#donorFor(r.name) !== this.#id.name) continue;
      const blocks = pickDonation(map, this.#id.name, r.wants, this.#active);
      if (blocks.length === 0) continue;
      let runs: BlockRun[];
      try {
        runs = map.grant(this.#id.name, blocks, r.name);
      } catch (e) {
        this.#grantedFor.set(r.name, key);
        this.#throttle.error(`grant ${r.name}`, { to: r.name, err: (e as Error).message }, `cannot grant blocks to ${r.name}(${r.nickname}): ${(e as Error).message}`);
        continue;
      }
      this.#grantedFor.set(r.name, key);
      this.#save();
      for (const run of runs) for (let b = run.start; b < run.start + run.count; b++) this.#queueBlock(b, null);
      this.#log.info({ to: `${r.name}(${r.nickname})`, blocks: map.cidrsOf(r.name).length, granted: blocks.length }, `granted ${blocks.length} address block(s) to ${r.nickname || r.name}`);
      this.#publish();
    }
  }

  /** The donor every peer picks for a requester: the reachable ring member with the most free blocks (then the lowest name). */
  #donorFor(requester: string): string | undefined {
    let best: PeerRecord | undefined;
    for (const r of this.#records.values()) {
      if (r.name === requester || r.left || r.ring !== this.#ring?.id || r.free < 2 || !this.reachable(r.name)) continue;
      if (!best || r.free > best.free || (r.free === best.free && r.name < best.name)) best = r;
    }
    return best?.name;
  }

  #afterChange(): void {
    const now = Date.now();
    this.#seed(now);
    const owned = this.ownBlocks().length;
    if (this.#wants > 0 && this.#map && owned > this.#ownedAtRequest) {
      this.#wants = 0;
      this.#publish();
    }
    this.#grant();
    this.#changed();
  }

  #ownedAtRequest = 0;

  #tick(): void {
    if (this.#stopped) return;
    try {
      this.#connections.tick(this.#dialCandidates());
      this.#healPartitions();
      this.#afterChange();
    } catch (e) {
      this.#throttle.error('tick', { err: (e as Error).message }, `the mesh's periodic work failed: ${(e as Error).message}`);
    }
  }

  #dialCandidates(): string[] {
    const out: string[] = [];
    for (const r of this.#records.values()) if (r.name !== this.#id.name && !r.left) out.push(r.addr);
    return out;
  }

  /** A known peer we have not heard from for a while may be on the other side of a partition: dial it directly. */
  #healPartitions(): void {
    const now = Date.now();
    for (const r of this.#records.values()) {
      if (r.name === this.#id.name || r.left || this.#connections.channelTo(r.name)) continue;
      if (now - (this.#heardAt.get(r.name) ?? 0) > this.#t.heartbeatMs * 2) this.#connections.dial(r.addr);
    }
    for (const t of this.#targets) {
      const address = formatTarget(t);
      if (!this.#connections.established().some((ch) => controlAddress(ch) === address)) this.#connections.dial(address);
    }
  }

  ownBlocks(): number[] {
    return this.#map?.ownedBy(this.#id.name) ?? [];
  }

  get map(): BlockMap | null {
    return this.#map;
  }

  get ring(): RingInfo | null {
    return this.#ring;
  }

  activeBlocks(): number[] {
    return [...this.#active].sort((a, b) => a - b);
  }

  /** From now on the block holds pods: it is never given away. Saved before it is used. */
  activate(block: number): void {
    if (this.#map?.entry(block).owner !== this.#id.name) throw new WeftError('WEFT_IPAM_EXHAUSTED', `address block ${this.#map?.blockCidr(block) ?? block} is not this node's`);
    if (this.#active.has(block)) return;
    this.#active.add(block);
    try {
      this.#save();
    } catch (e) {
      // Not on disk = not active: after a restart it could be given away while pods use it.
      this.#active.delete(block);
      throw e;
    }
    this.#publish();
  }

  /** Asks the mesh for `count` more blocks; they arrive by a donor's grant (see #grant). */
  requestBlocks(count: number): void {
    if (this.#wants >= count || this.#left) return;
    this.#ownedAtRequest = this.ownBlocks().length;
    this.#wants = count;
    this.#publish();
  }

  get wants(): number {
    return this.#wants;
  }

  reachable(name: string): boolean {
    if (name === this.#id.name) return true;
    const r = this.#records.get(name);
    if (!r || r.left) return false;
    if (this.#connections?.channelTo(name)) return true;
    return Date.now() - (this.#heardAt.get(name) ?? 0) < this.#t.deadAfterMs;
  }

  #resolvePeer(who: string): PeerRecord | undefined {
    const all = [...this.#records.values()];
    return all.find((r) => r.name === who) ?? all.find((r) => r.nickname === who);
  }

  /** rmpeer: takes over every block of a dead peer (an epoch bump, so the takeover wins every merge). */
  rmpeer(who: string): { addresses: number; peer: string } {
    const map = this.#map;
    if (!map || !this.#ring) throw new WeftError('WEFT_NOT_READY', 'there is no IPAM ring yet, so there is nothing to take over');
    const r = this.#resolvePeer(who);
    const name = r?.name ?? (map.owners().has(who) ? who : undefined);
    if (!name) throw new WeftError('WEFT_INVALID_CONFIG', `no peer named ${JSON.stringify(who)} is known (see 'weft status peers')`);
    if (name === this.#id.name) throw new WeftError('WEFT_INVALID_CONFIG', 'a peer cannot rmpeer itself; run it on another node');
    if (r && this.reachable(name)) {
      throw new WeftError('WEFT_INVALID_CONFIG', `peer ${name}(${r.nickname}) is alive (connected or heard from in the last ${this.#t.deadAfterMs / 1000} s); stop it for good before taking its address blocks`);
    }
    const runs = map.reclaim(this.#id.name, name);
    const blocks = runs.reduce((n, run) => n + run.count, 0);
    this.#save();
    for (const run of runs) for (let b = run.start; b < run.start + run.count; b++) this.#queueBlock(b, null);
    this.#publish();
    this.#changed();
    const addresses = blocks * 2 ** (32 - this.#o.blockPrefix);
    this.#log.warn({ peer: name, blocks, addresses }, `${addresses} IPs taken over from ${name}`);
    return { addresses, peer: `${name}(${r?.nickname ?? ''})` };
  }

  /** A clean leave: every block goes to a reachable heir, and the record says we left. */
  leave(): { addresses: number; heir: string | null } {
    const map = this.#map;
    const mine = this.ownBlocks();
    const heir = [...this.#records.values()].filter((r) => r.name !== this.#id.name && !r.left && r.ring === this.#ring?.id && this.reachable(r.name))
      .sort((a, b) => (a.name < b.name ? -1 : 1))[0];
    if (map && heir && mine.length > 0) {
      const runs = map.grant(this.#id.name, mine, heir.name);
      this.#active.clear();
      this.#save();
      for (const run of runs) for (let b = run.start; b < run.start + run.count; b++) this.#queueBlock(b, null);
    }
    this.#left = true;
    this.#wants = 0;
    this.#publish();
    this.#flush();
    return { addresses: heir ? mine.length * 2 ** (32 - this.#o.blockPrefix) : 0, heir: heir?.name ?? null };
  }

  /** Peers for the data plane (same ring, announced, owning blocks) and the ones refused, with why. */
  dataPlanePeers(): { peers: DataPlanePeer[]; rejected: { key: string; reason: string }[] } {
    const peers: DataPlanePeer[] = [];
    const rejected: { key: string; reason: string }[] = [];
    for (const [key, reason] of this.#refused) rejected.push({ key, reason });
    for (const r of this.#records.values()) {
      if (r.name === this.#id.name || r.left) continue;
      if (this.#ring && r.ring && r.ring !== this.#ring.id) {
        rejected.push({ key: `${r.name}(${r.nickname})`, reason: `belongs to IPAM ring ${r.ring}, seeded apart from ours (${this.#ring.id}); not routed` });
        continue;
      }
      const subnets = this.#map?.cidrsOf(r.name) ?? [];
      if (subnets.length === 0 || !r.backendType) continue;
      peers.push({ id: r.name, subnets, publicIp: r.publicIp, backendType: r.backendType, backendData: r.backendData });
    }
    return { peers, rejected };
  }

  /**
   * When two rings meet, one must stop handing out addresses, or a new pod in each could get the
   * same one. Every peer of both rings picks the same survivor: the ring seeded by more peers,
   * then the lower id. The other one (non-null here) keeps its pods but starts no new ones
   * until its peers are reset to join the survivor. Only a verified foreign ring counts (its id
   * matched its seed list), not a mere record that names one.
   */
  yieldsTo(): { ring: string; seeds: string[] } | null {
    const ours = this.#ring;
    if (!ours) return null;
    let winner: { ring: string; seeds: string[] } | null = null;
    for (const [ring, f] of this.#foreignRings) {
      if (f.seeds.length === 0) continue;
      const beatsUs = f.seeds.length > ours.seeds.length || (f.seeds.length === ours.seeds.length && ring < ours.id);
      if (beatsUs && (!winner || f.seeds.length > winner.seeds.length || (f.seeds.length === winner.seeds.length && ring < winner.ring))) winner = { ring, seeds: f.seeds };
    }
    return winner;
  }

  ringConflicts(): { ring: string; seeds: string[]; members: string[] }[] {
    return [...this.#foreignRings].map(([ring, f]) => ({ ring, seeds: f.seeds, members: [...f.members] }));
  }

  get collision(): string | undefined {
    return this.#collision;
  }

  get conflicts(): number {
    return this.#conflicts;
  }

  traffic(): { bytesIn: number; bytesOut: number; messagesIn: number; messagesOut: number } {
    return { ...this.#traffic };
  }

  /** Weave's IPAM status, in its precedence. */
  ipamStatus(): string {
    const winner = this.yieldsTo();
    if (winner) {
      return `ring conflict: this ring (${this.#ring!.seeds.length} seeds) yields to ring ${winner.ring} (${winner.seeds.length} seeds) - no new addresses here; reset these peers' mesh state to join it`;
    }
    if (this.#ring && this.#map) {
      if (this.#wants === 0) return 'ready';
      const reachableSpare = [...this.#records.values()].some((r) => r.name !== this.#id.name && r.ring === this.#ring!.id && r.free >= 2 && this.reachable(r.name));
      const unreachableOwners = [...this.#map.owners().keys()].some((o) => o !== null && o !== this.#id.name && !this.reachable(o));
      if (!reachableSpare && unreachableOwners) return "all IP ranges owned by unreachable peers - use 'weft rmpeer' if they are dead";
      return 'waiting for IP(s) to become available';
    }
    if (this.#o.init.mode === 'observer') return 'priming (waiting to join an existing ring)';
    if (this.#o.init.mode === 'seed') return 'idle';
    const heard = electorsHeard(this.#records.values());
    const names = heard.map((n) => `${n}(${this.#records.get(n)?.nickname ?? ''})`);
    const heardAddrs = new Set([...this.#records.values()].map((r) => r.addr.split(':')[0]));
    const missing = this.#targets.filter((t) => !heardAddrs.has(t.host)).map(formatTarget);
    return `awaiting consensus (quorum: ${this.#quorum}, known: ${heard.length}): heard from ${names.join(', ') || 'nobody'}${missing.length ? `; not yet from ${missing.join(', ')}` : ''}`;
  }

  status(extra: { activeAddresses?: number } = {}): MeshStatus {
    const o = this.#o;
    const size = 2 ** (32 - o.blockPrefix);
    const owners: MeshStatus['ipam']['owners'] = [];
    if (this.#map) {
      for (const [owner, blocks] of this.#map.owners()) {
        if (owner === null) continue;
        const self = owner === this.#id.name;
        owners.push({
          name: owner, nickname: self ? this.#id.nickname : this.#records.get(owner)?.nickname ?? '', addresses: blocks * size, self,
          reachable: this.reachable(owner), ...(self && extra.activeAddresses !== undefined ? { active: extra.activeAddresses } : {}),
        });
      }
      owners.sort((a, b) => (a.self !== b.self ? (a.self ? -1 : 1) : a.name < b.name ? -1 : 1));
    }
    const connections = this.#connections?.status() ?? [];
    const peers: MeshStatus['peers'] = [...this.#records.values()].filter((r) => !r.left || r.name === this.#id.name).map((r) => ({
      name: r.name, nickname: r.nickname, self: r.name === this.#id.name, reachable: this.reachable(r.name),
      connections: r.name !== this.#id.name ? [] : connections.filter((c) => c.state === 'established' && c.peer).map((c) => ({
        direction: c.direction, address: c.address, peer: c.peer!, state: 'established' as const,
      })),
    }));
    if (!this.#records.has(this.#id.name)) peers.unshift({ name: this.#id.name, nickname: this.#id.nickname, self: true, reachable: true, connections: [] });
    return {
      version: o.version, protocol: { ...MESH_PROTOCOL }, name: this.#id.name, nickname: this.#id.nickname,
      encryption: o.psks !== null, peerDiscovery: true, targets: this.#targets.map(formatTarget), connections, peers, trustedSubnets: [],
      ipam: {
        status: this.ipamStatus(), range: o.universe, defaultSubnet: o.universe, blockPrefix: o.blockPrefix, ringId: this.#ring?.id ?? null,
        owners, blocksOwned: this.ownBlocks().length, blocksFree: this.#ownFree(),
      },
      dataPlaneEncrypted: false,
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#listeners.clear();
    await this.#connections?.stop();
  }
}

function sameExceptHeartbeat(a: PeerRecord, b: PeerRecord): boolean {
  return JSON.stringify({ ...a, seq: 0, heartbeat: 0 }) === JSON.stringify({ ...b, seq: 0, heartbeat: 0 });
}

/** Splits records into runs of at most `limit` bytes of JSON each (a record bigger than that alone). */
function chunkByBytes(records: readonly unknown[], limit: number): unknown[][] {
  const chunks: unknown[][] = [];
  let current: unknown[] = [];
  let size = 0;
  for (const r of records) {
    const n = JSON.stringify(r).length + 1;
    if (current.length > 0 && size + n > limit) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(r);
    size += n;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
