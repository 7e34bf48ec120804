// Mesh mode's control plane: no store. The cluster config is the agent's own flags (the same
// on every node, as Weave's env vars were), the node's pod ranges are the address blocks it owns
// in the mesh's ring, and its peers are the mesh members of the same ring. The node's first
// block is its "subnet" (subnet.env, the bridge's first gateway) and is never given away;
// further blocks arrive through the CNI server's block allocator (podBlocks).
import { WeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import type { ModeMetric } from '../../agent/metrics.ts';
import type {
  Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, ControlPlaneStatus, NodeRanges, PodBlockSource,
} from '../../agent/control-plane.ts';
import { UnknownCommandError } from '../../agent/status.ts';
import { coalesce } from '../../mesh/crdt/block-map.ts';
import type { Target } from '../../mesh/connections.ts';
import { GROW_WANT, INITIAL_WANT, MeshNode, type MeshNodeOptions } from '../../mesh/node.ts';

/** rmpeer as data: taken over (how many addresses), or not possible yet and why. */
export type RmpeerOutcome = { done: true; addresses: number } | { done: false; reason: string };

/** What a peer source (kube-peers.ts) may do to the running mesh. */
export interface MeshPeerHost {
  readonly name: string;
  setTargets(targets: readonly Target[]): void;
  /** Takes a dead peer's blocks, or says why not yet (alive, no ring, a view that may be stale). */
  rmpeer(peer: string): RmpeerOutcome;
  /** The seed list of this node's ring, once it has one. */
  ringSeeds(): readonly string[] | null;
}

/**
 * Where peers come from besides --peers (the Kubernetes Node list), and who reclaims dead ones.
 * prepare() runs in open() before the mesh starts and may set its targets and IPAM init; it waits
 * (reporting via onPhase) like any store does. The mesh itself knows nothing of Kubernetes.
 */
export interface MeshPeerSource {
  prepare(node: Readonly<MeshNodeOptions>, events: ControlPlaneEvents): Promise<Partial<Pick<MeshNodeOptions, 'targets' | 'init'>>>;
  start(host: MeshPeerHost): void;
  status(): unknown;
  readonly metrics: readonly ModeMetric[];
  stop(): Promise<void>;
}

export interface MeshModeOptions {
  node: MeshNodeOptions;
  /** The Backend section every node uses (Type, Port 6784, MTU). */
  backend: Readonly<Record<string, unknown>>;
  nftables: boolean;
  log: Logger;
  /** How long grow() waits for a grant. */
  growWaitMs?: number;
  peerSource?: MeshPeerSource;
}

const DEFAULT_DEAD_AFTER_MS = 90_000;

export class MeshControlPlane implements ControlPlane {
  readonly mode = 'mesh';
  #o: MeshModeOptions;
  #node: MeshNode;
  #openedAt = 0;
  #events: ControlPlaneEvents | undefined;
  #lastPeers = '';
  #lastRanges = '';
  #lastPhase = '';
  readonly #reported = new Set<string>();
  #home: number | undefined;
  #stopped = false;
  #podUsage: () => { used: number; free: number } | undefined = () => undefined;
  readonly podBlocks: PodBlockSource;
  readonly metrics: readonly ModeMetric[];

  constructor(o: MeshModeOptions) {
    this.#o = o;
    this.#node = new MeshNode(o.node);
    this.podBlocks = {
      blocks: () => this.#allocatableBlocks(),
      activate: (cidr) => this.#node.activate(this.#blockIndex(cidr)),
      active: () => this.#node.activeBlocks().map((b) => this.#node.map!.blockCidr(b)),
      grow: () => this.#grow(),
    };
    // Read at scrape time: open() may replace the node (a peer source set its targets and init).
    const status = (): ReturnType<MeshNode['status']> => this.#node.status();
    const node = (): MeshNode => this.#node;
    this.metrics = [
      { name: 'weft_mesh_peers', help: 'mesh peers known, this node included', kind: 'gauge', read: () => status().peers.length },
      { name: 'weft_mesh_peers_unreachable', help: 'mesh peers neither connected nor heard from lately', kind: 'gauge', read: () => status().peers.filter((p) => !p.reachable).length },
      { name: 'weft_mesh_connections', help: 'established control-plane connections', kind: 'gauge', read: () => status().connections.filter((c) => c.state === 'established').length },
      { name: 'weft_mesh_gossip_received_bytes_total', help: 'gossip bytes received', kind: 'counter', read: () => node().traffic().bytesIn },
      { name: 'weft_mesh_gossip_sent_bytes_total', help: 'gossip bytes sent', kind: 'counter', read: () => node().traffic().bytesOut },
      { name: 'weft_mesh_ipam_blocks_owned', help: 'address blocks this node owns', kind: 'gauge', read: () => node().ownBlocks().length },
      { name: 'weft_mesh_ipam_blocks_free', help: 'owned address blocks without pods (the ones it may give away)', kind: 'gauge', read: () => status().ipam.blocksFree },
      { name: 'weft_mesh_ring_conflicts', help: 'IPAM rings seeded apart from ours that this node has met', kind: 'gauge', read: () => node().ringConflicts().length },
      { name: 'weft_mesh_ipam_conflicts_total', help: 'equal-version block conflicts settled by the tie-break', kind: 'counter', read: () => node().conflicts },
      ...(o.peerSource?.metrics ?? []),
    ];
  }

  get node(): MeshNode {
    return this.#node;
  }

  #config(): ClusterConfig {
    const n = this.#o.node;
    return {
      network: n.universe, backend: this.#o.backend, nftables: this.#o.nftables,
      restartKey: JSON.stringify([n.universe, n.blockPrefix]),
      warnings: n.psks ? [] : ['the mesh control plane runs without a password: peers are not authenticated and gossip is plaintext (set WEAVE_PASSWORD or --password-file)'],
    };
  }

  async open(events: ControlPlaneEvents): Promise<ClusterConfig> {
    this.#events = events;
    const source = this.#o.peerSource;
    if (source) {
      const patch = await source.prepare(this.#o.node, events);
      this.#o = { ...this.#o, node: { ...this.#o.node, ...patch } };
      this.#node = new MeshNode(this.#o.node);
    }
    await this.#node.start();
    this.#openedAt = Date.now();
    source?.start(this.#host());
    return this.#config();
  }

  #host(): MeshPeerHost {
    return {
      name: this.#node.name,
      setTargets: (targets) => this.#node.setTargets(targets),
      rmpeer: (peer) => this.#tryRmpeer(peer),
      ringSeeds: () => this.#node.ring?.seeds ?? null,
    };
  }

  /**
   * An automatic rmpeer (the peer source decided the peer's node is gone) is stricter than the
   * operator's: it also waits until this agent has run for the liveness window and is connected,
   * since a fresh or isolated view of the block map could hand out blocks the dead peer granted away.
   */
  #tryRmpeer(peer: string): RmpeerOutcome {
    const node = this.#node;
    const deadAfterMs = this.#o.node.timing?.deadAfterMs ?? DEFAULT_DEAD_AFTER_MS;
    if (!node.ring || !node.map) return { done: false, reason: 'this node has no IPAM ring yet' };
    if (peer === node.name) return { done: false, reason: 'a peer never reclaims itself' };
    if (Date.now() - this.#openedAt < deadAfterMs) return { done: false, reason: `this agent started less than ${deadAfterMs / 1000} s ago; its view of the blocks may be incomplete` };
    if (!node.status().connections.some((c) => c.state === 'established')) return { done: false, reason: 'this node is connected to no peer; its view of the blocks may be stale' };
    if (node.reachable(peer)) return { done: false, reason: `${peer} still looks alive (connected or heard from in the last ${deadAfterMs / 1000} s)` };
    if (!node.map.owners().has(peer)) return { done: true, addresses: 0 };
    try {
      return { done: true, addresses: node.rmpeer(peer).addresses };
    } catch (e) {
      return { done: false, reason: (e as Error).message };
    }
  }

  async previousBackendData(publicIp: string): Promise<unknown> {
    const a = this.#node.previousAnnouncement();
    return a && a.publicIp === publicIp ? a.backendData : undefined;
  }

  /** Waits for a ring and at least one block of our own; asks for blocks when the ring gave us none. */
  async acquire(a: Announcement): Promise<NodeRanges> {
    this.#node.announce(a);
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.#stopped) {
          off();
          reject(new WeftError('WEFT_NOT_READY', 'stopped while waiting for address blocks'));
          return;
        }
        if (this.#node.ring && this.#node.ownBlocks().length > 0) {
          off();
          resolve();
          return;
        }
        if (this.#node.ring && this.#node.wants === 0) this.#node.requestBlocks(INITIAL_WANT);
        const status = this.#node.ipamStatus();
        if (status !== this.#lastPhase) {
          this.#lastPhase = status;
          this.#events?.onPhase('acquiring-lease', `IPAM: ${status}`);
        }
      };
      const timer = setInterval(check, 1000);
      const unsubscribe = this.#node.onChange(check);
      const off = (): void => {
        clearInterval(timer);
        unsubscribe();
      };
      check();
    });
    const active = this.#node.activeBlocks();
    this.#home = active[0] ?? this.#node.ownBlocks()[0]!;
    this.#node.activate(this.#home);
    return this.#ranges();
  }

  #ranges(): NodeRanges {
    const map = this.#node.map!;
    const owned = this.#node.ownBlocks();
    const home = this.#home !== undefined && owned.includes(this.#home) ? this.#home : owned[0];
    if (home === undefined) return { subnets: [], expiresAt: null };
    return { subnets: [map.blockCidr(home), ...coalesce(map, owned.filter((b) => b !== home))], expiresAt: null };
  }

  async announce(a: Announcement): Promise<void> {
    this.#node.announce(a);
  }

  async start(): Promise<void> {
    this.#node.onChange(() => this.#emit());
    this.#emit();
  }

  #emit(): void {
    const events = this.#events;
    if (!events || this.#stopped) return;
    const snapshot = this.#node.dataPlanePeers();
    const key = JSON.stringify(snapshot);
    if (key !== this.#lastPeers) {
      this.#lastPeers = key;
      events.onPeers(snapshot);
    }
    const yielding = this.#node.yieldsTo() !== null;
    const ranges = this.#ranges();
    const rangesKey = JSON.stringify([yielding, ranges.subnets]);
    if (rangesKey !== this.#lastRanges) {
      const first = this.#lastRanges === '';
      this.#lastRanges = rangesKey;
      if (yielding) events.onRanges(null, `IPAM ${this.#node.ipamStatus()}`);
      else if (!first) events.onRanges(ranges.subnets.length > 0 ? ranges : null, ranges.subnets.length > 0 ? 'the address blocks this node owns changed' : 'this node no longer owns any address block');
    }
    this.#problem('ring-conflict', this.#node.ringConflicts().map((c) => `IPAM ring conflict: ${c.members.length} peer(s) (${c.members.slice(0, 3).join(', ')}) belong to ring ${c.ring}, seeded apart from ours; never merged, not routed`).join('; '));
    this.#problem('name-collision', this.#node.collision ? `peer name collision: ${this.#node.collision}` : '');
  }

  #problem(key: string, message: string): void {
    if (message && !this.#reported.has(`${key}:${message}`)) {
      this.#reported.add(`${key}:${message}`);
      this.#events?.onProblem(key, message);
    }
  }

  #blockIndex(cidr: string): number {
    const map = this.#node.map;
    const b = map?.blockOf(cidr.split('/')[0]!);
    if (!map || b === undefined || map.blockCidr(b) !== cidr) throw new WeftError('WEFT_IPAM_EXHAUSTED', `${cidr} is not an address block of this mesh`);
    return b;
  }

  /** The blocks pods may take addresses from: those in use first, then a few spare ones (lowest first). */
  #allocatableBlocks(): string[] {
    const map = this.#node.map;
    // A ring that yields to another starts no new pods: their addresses could be the other ring's too.
    if (!map || this.#node.yieldsTo()) return [];
    const active = this.#node.activeBlocks();
    const spare = this.#node.ownBlocks().filter((b) => !active.includes(b)).slice(0, 4);
    return [...active, ...spare].map((b) => map.blockCidr(b));
  }

  async #grow(): Promise<void> {
    if (this.#node.yieldsTo()) throw new WeftError('WEFT_IPAM_EXHAUSTED', `IPAM ${this.#node.ipamStatus()}`);
    const before = this.#node.ownBlocks().length;
    this.#node.requestBlocks(GROW_WANT);
    const deadline = Date.now() + (this.#o.growWaitMs ?? 15_000);
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (this.#node.ownBlocks().length > before) {
          clearInterval(timer);
          resolve();
        } else if (this.#stopped || Date.now() > deadline) {
          clearInterval(timer);
          reject(new WeftError('WEFT_IPAM_EXHAUSTED', `no free address block could be had: ${this.#node.ipamStatus()}`));
        }
      }, 200);
    });
  }

  async command(name: string, body: unknown): Promise<unknown> {
    const peer = typeof body === 'object' && body !== null ? (body as { peer?: unknown }).peer : undefined;
    if (name === 'rmpeer') {
      if (typeof peer !== 'string' || peer === '') throw new WeftError('WEFT_INVALID_CONFIG', 'rmpeer needs a peer name or nickname');
      return this.#node.rmpeer(peer);
    }
    if (name === 'leave') return this.#node.leave();
    throw new UnknownCommandError(name);
  }

  observePodUsage(read: () => { used: number; free: number } | undefined): void {
    this.#podUsage = read;
  }

  status(): ControlPlaneStatus {
    const used = this.#podUsage()?.used;
    return {
      kind: 'mesh', endpoints: this.#node.targets.map((t) => `${t.host}:${t.port}`), prefix: this.#o.node.dir,
      details: {
        mesh: this.#node.status(used === undefined ? {} : { activeAddresses: used }),
        ...(this.#o.peerSource ? { kubePeers: this.#o.peerSource.status() } : {}),
      },
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#o.peerSource?.stop();
    await this.#node.stop();
  }
}
