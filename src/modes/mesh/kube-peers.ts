// `--store mesh --kube-peers`: the mesh's peers come from the Kubernetes Node list, and a
// deleted Node's address blocks are reclaimed by exactly one peer (kube-reclaim.ts). What it
// keeps in the API: one Lease per peer (which Node it runs on) and one for the ring's seed list
// (kube-records.ts), all in weft's namespace. An API outage never stops the mesh: the last
// targets stay (in memory and on disk), the problem is reported, and the watches recover.
import { WeftError, isWeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import type { ControlPlaneEvents } from '../../agent/control-plane.ts';
import type { ModeMetric } from '../../agent/metrics.ts';
import type { Target } from '../../mesh/connections.ts';
import { loadIdentity } from '../../mesh/identity.ts';
import type { IpallocInit, MeshNodeOptions } from '../../mesh/node.ts';
import { loadMeshState } from '../../mesh/state-file.ts';
import type { KubeClient } from '../../kube/client.ts';
import { Reflector } from '../../kube/reflector.ts';
import { slimFor } from '../../kube/slim.ts';
import type { MeshPeerHost, MeshPeerSource } from './mesh-control-plane.ts';
import { parseIpallocInit } from './options.ts';
import { CLAIM_LABEL, PEER_CLAIM, RECORDS_SELECTOR, RING_CLAIM, parsePeerRecord, recordName, type KubePeersApi, type LeaseLike, type ListLike, type NodeLike, type PeerRecordLease } from './kube-objects.ts';
import { Reclaimer } from './kube-reclaim.ts';
import { ensureOwnRecord, parseRingRecord, ringSeeds } from './kube-records.ts';
import { chooseTargets, defaultRefuse, loadTargets, rendezvousScore, saveTargets, type TargetChoice } from './kube-targets.ts';

/** A list+watch of one kind that hands over the whole current set (src/kube's Reflector). */
export interface SyncSource<T> {
  start(h: { onSync(objects: ReadonlyMap<string, T>): void; onError(message: string): void; onHealthy(): void }): void;
  stop(): Promise<void>;
}

export interface WatchSpec<T> {
  path: string;
  labelSelector?: string;
  list(): Promise<ListLike<T>>;
}

export type WatchFactory = <T extends NodeLike | LeaseLike>(client: KubeClient, spec: WatchSpec<T>) => SyncSource<T>;

export function reflectorWatch(log: Logger): WatchFactory {
  // The Reflector hands over objects as the server sent them; ours are read through the validating parsers.
  return (client, spec) => new Reflector({ client, log, ...spec, slim: slimFor(spec.path) } as ConstructorParameters<typeof Reflector>[0]) as unknown as SyncSource<never>;
}

export interface KubePeersTiming {
  /** The periodic reconcile (records vs Nodes), besides the one after every change. */
  scanMs: number;
  retryMs: number;
  staleAfterMs?: number;
  rankDelayMs?: number;
  /** Waiting for the API in open(): first and longest pause. */
  openRetryMs: [number, number];
}

export interface KubePeersOptions {
  /** connectKube with the agent's options; called on first use (open()), retried while it fails. */
  connect(): Promise<KubeClient>;
  /** Default: src/kube's Reflector. */
  watch?: WatchFactory;
  namespace: string;
  nodeName: string;
  port: number;
  /** --peers: dialed as well. */
  staticTargets: readonly Target[];
  /** IPALLOC_INIT as given; undefined or '': the ring is seeded from the cluster's ring record. */
  ipallocInit: string | undefined;
  log: Logger;
  timing?: Partial<KubePeersTiming>;
  targetCount?: number;
  /** Tests: which addresses are refused (default: not IPv4 unicast, or this host's own). */
  refuse?: (address: string) => string | undefined;
  /** Tests: several peers on one host, one port each. */
  portFor?: (node: string) => number;
}

const DEFAULT_TIMING: KubePeersTiming = { scanMs: 30_000, retryMs: 5000, openRetryMs: [500, 30_000] };
const MAX_REPORTED = 50;
const PROBLEM = 'kube-peers';

export class KubePeers implements MeshPeerSource {
  readonly #o: KubePeersOptions;
  readonly #watch: WatchFactory;
  readonly #t: KubePeersTiming;
  readonly #log: Logger;
  readonly #refuse: (address: string) => string | undefined;
  #events: ControlPlaneEvents | undefined;
  #client: KubeClient | undefined;
  #host: MeshPeerHost | undefined;
  #dir = '';
  #peer = '';
  #choice: TargetChoice | undefined;
  #targetsKey = '';
  readonly #scores = new Map<string, string>();
  #records = new Map<string, PeerRecordLease>();
  #ringLease: LeaseLike | null = null;
  #synced = { nodes: false, records: false };
  #reclaimer: Reclaimer | undefined;
  readonly #watches: SyncSource<unknown>[] = [];
  readonly #problems = new Map<string, string>();
  readonly #logged = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #reconcileQueued = false;
  #inflight: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(o: KubePeersOptions) {
    this.#o = o;
    this.#watch = o.watch ?? reflectorWatch(o.log);
    this.#t = { ...DEFAULT_TIMING, ...o.timing };
    this.#log = o.log;
    this.#refuse = o.refuse ?? defaultRefuse();
  }

  readonly metrics: readonly ModeMetric[] = [
    { name: 'weft_mesh_kube_reclaims_total', help: "dead peers (deleted or rebuilt Nodes) whose address blocks this node took over", kind: 'counter', read: () => this.#reclaimer?.reclaimed ?? 0 },
    { name: 'weft_mesh_kube_reclaims_in_progress', help: 'reclaims this node is working on', kind: 'gauge', read: () => this.#reclaimer?.tasks().length ?? 0 },
    { name: 'weft_mesh_kube_nodes', help: 'Nodes in the Kubernetes Node list', kind: 'gauge', read: () => this.#choice?.nodes.size ?? 0 },
    { name: 'weft_mesh_kube_api_problems', help: 'Kubernetes API problems now (the mesh keeps its last targets meanwhile)', kind: 'gauge', read: () => this.#problems.size },
  ];

  // ---- before the mesh starts ---------------------------------------------------------------

  async prepare(node: Readonly<MeshNodeOptions>, events: ControlPlaneEvents): Promise<Partial<Pick<MeshNodeOptions, 'targets' | 'init'>>> {
    this.#events = events;
    this.#dir = node.dir;
    this.#peer = loadIdentity(node.dir, { ...(node.name ? { name: node.name } : {}), nickname: node.nickname }).name;
    const savedRing = loadMeshState(node.dir, { name: this.#peer, universe: node.universe, blockPrefix: node.blockPrefix }, this.#log)?.ring?.seeds ?? null;
    let pause = this.#t.openRetryMs[0];
    while (!this.#stopped) {
      try {
        return await this.#prepareOnline(savedRing);
      } catch (e) {
        if (isWeftError(e, 'WEFT_INVALID_CONFIG')) throw e;
        const message = (e as Error).message;
        if (savedRing) return this.#prepareOffline(savedRing, message);
        events.onPhase('waiting-for-store', `mesh peers come from the Kubernetes Node list: ${message}`);
        await this.#pause(pause);
        pause = Math.min(this.#t.openRetryMs[1], pause * 2);
      }
    }
    throw new WeftError('WEFT_NOT_READY', 'stopped while waiting for the Kubernetes API');
  }

  async #prepareOnline(savedRing: readonly string[] | null): Promise<Partial<Pick<MeshNodeOptions, 'targets' | 'init'>>> {
    this.#client ??= await this.#o.connect();
    const nodes = await this.#client.listNodes();
    this.#applyNodes(nodes.items);
    const choice = this.#choice!;
    let init: IpallocInit;
    if (this.#o.ipallocInit === undefined || this.#o.ipallocInit === '') {
      init = { mode: 'seed', names: await this.#clusterRing(this.#client, savedRing) };
    } else {
      // consensus without a number counts the whole cluster: every Node, this one included.
      init = parseIpallocInit(this.#o.ipallocInit, choice.nodes.size + (choice.nodes.has(this.#o.nodeName) ? 0 : 1));
    }
    this.#log.info({ nodes: choice.nodes.size, targets: this.#targets().map((t) => `${t.host}:${t.port}`), init: init.mode }, 'mesh peers from the Kubernetes Node list');
    return { targets: this.#targets(), init };
  }

  /** The ring record's seeds. A node with a saved ring keeps it whatever the record says (and reports a difference). */
  async #clusterRing(client: KubeClient, savedRing: readonly string[] | null): Promise<string[]> {
    let ring: { seeds: string[]; created: boolean };
    try {
      ring = await ringSeeds(client, this.#o.namespace, savedRing ?? [this.#peer], this.#o.nodeName);
    } catch (e) {
      if (!savedRing || !isWeftError(e, 'WEFT_MESH_STATE')) throw e;
      this.#problem('ring', `${(e as Error).message}; this node keeps its saved ring`);
      return [...savedRing];
    }
    if (ring.created) this.#log.info({ seeds: ring.seeds }, `created the cluster's ring record ${this.#o.namespace}/mesh-ring`);
    if (savedRing && ring.seeds.join(',') !== [...savedRing].sort().join(',')) this.#ringMismatch(ring.seeds, savedRing);
    return ring.seeds;
  }

  /** The API is down but this node has a ring: run on the targets saved last time, and recover later. */
  #prepareOffline(savedRing: readonly string[], message: string): Partial<Pick<MeshNodeOptions, 'targets' | 'init'>> {
    const saved = loadTargets(this.#dir, this.#refuse) ?? [];
    this.#targetsKey = keyOf(saved);
    // No Nodes known yet: nothing is reclaimed until the watch has listed them.
    this.#choice = { targets: saved, nodes: new Map(), refused: [], candidates: saved.length };
    this.#problem('api', `kubernetes API: ${message}; the mesh runs on the ${saved.length} peer(s) saved last time until it is back`);
    const targets = uniqueTargets([...this.#o.staticTargets, ...saved]);
    const init = this.#o.ipallocInit ? parseIpallocInit(this.#o.ipallocInit, targets.length + 1) : { mode: 'seed' as const, names: [...savedRing] };
    return { targets, init };
  }

  // ---- while it runs ------------------------------------------------------------------------

  start(host: MeshPeerHost): void {
    this.#host = host;
    this.#reclaimer = new Reclaimer({
      api: {
        getNode: (n) => this.#api().getNode(n), getLease: (ns, n) => this.#api().getLease(ns, n),
        replaceLease: (ns, l) => this.#api().replaceLease(ns, l), deleteLease: (ns, n, p) => this.#api().deleteLease(ns, n, p),
      },
      namespace: this.#o.namespace, self: { peer: host.name, node: this.#o.nodeName },
      selfNodeUid: () => this.#choice?.nodes.get(this.#o.nodeName),
      rmpeer: (peer) => host.rmpeer(peer), log: this.#log, retryMs: this.#t.retryMs,
      ...(this.#t.staleAfterMs !== undefined ? { staleAfterMs: this.#t.staleAfterMs } : {}),
      ...(this.#t.rankDelayMs !== undefined ? { rankDelayMs: this.#t.rankDelayMs } : {}),
    });
    this.#timer = setInterval(() => this.#queueReconcile(), this.#t.scanMs);
    void this.#connectAndWatch();
  }

  #api(): KubePeersApi {
    if (!this.#client) throw new WeftError('WEFT_NOT_READY', 'not connected to the Kubernetes API yet');
    return this.#client;
  }

  async #connectAndWatch(): Promise<void> {
    let pause = this.#t.openRetryMs[0];
    while (!this.#client && !this.#stopped) {
      try {
        this.#client = await this.#o.connect();
      } catch (e) {
        this.#problem('api', `kubernetes API: ${(e as Error).message}; the mesh keeps its current peers`);
        await this.#pause(pause);
        pause = Math.min(this.#t.openRetryMs[1], pause * 2);
      }
    }
    const client = this.#client;
    if (!client || this.#stopped) return;
    const nodes = this.#watch<NodeLike>(client, { path: '/api/v1/nodes', list: () => client.listNodes() });
    const records = this.#watch<LeaseLike>(client, {
      path: `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`, labelSelector: RECORDS_SELECTOR,
      list: () => client.listLeases(this.#o.namespace, RECORDS_SELECTOR),
    });
    this.#watches.push(nodes as SyncSource<unknown>, records as SyncSource<unknown>);
    nodes.start({
      onSync: (objects) => this.#guard(() => {
        const first = !this.#synced.nodes;
        this.#synced.nodes = true;
        this.#applyNodes(objects.values());
        if (first) this.#queueReconcile();
      }),
      onError: (m) => this.#problem('nodes', `watching Nodes: ${m}; the mesh keeps its last ${this.#targets().length} target(s)`),
      onHealthy: () => this.#recovered('nodes'),
    });
    records.start({
      onSync: (objects) => this.#guard(() => {
        this.#synced.records = true;
        this.#applyRecords(objects.values());
      }),
      onError: (m) => this.#problem('records', `watching mesh peer records: ${m}; reclaims wait until it is back`),
      onHealthy: () => this.#recovered('records'),
    });
  }

  /** Every Node update lands here (kubelets update their Node often): only a change of membership or targets costs more than a pass. */
  #applyNodes(nodes: Iterable<NodeLike>): void {
    const choice = chooseTargets(nodes, {
      selfNode: this.#o.nodeName, port: this.#o.port, refuse: this.#refuse, score: (n) => this.#score(n),
      ...(this.#o.targetCount !== undefined ? { count: this.#o.targetCount } : {}), ...(this.#o.portFor ? { portFor: this.#o.portFor } : {}),
    });
    const membershipChanged = !sameEntries(this.#choice?.nodes, choice.nodes);
    this.#choice = choice;
    if (membershipChanged) for (const n of this.#scores.keys()) if (!choice.nodes.has(n)) this.#scores.delete(n);
    this.#recovered('api');
    for (const r of choice.refused) this.#logOnce(`node ${r.node} ${r.reason}`, { node: r.node, reason: r.reason }, `Node ${r.node} is not dialed as a mesh peer: ${r.reason}`);
    const key = keyOf(choice.targets);
    if (key !== this.#targetsKey) {
      this.#targetsKey = key;
      this.#host?.setTargets(this.#targets());
      if (choice.targets.length > 0) {
        try {
          saveTargets(this.#dir, choice.targets);
        } catch (e) {
          this.#logOnce('save targets', { err: (e as Error).message }, `the mesh peer list could not be saved in ${this.#dir}: ${(e as Error).message}`);
        }
      }
      if (this.#host) this.#log.info({ targets: choice.targets.map((t) => `${t.host}:${t.port}`), nodes: choice.nodes.size }, 'mesh peer targets changed with the Node list');
    }
    if (membershipChanged) this.#queueReconcile();
  }

  #score(node: string): string {
    let s = this.#scores.get(node);
    if (s === undefined) {
      s = rendezvousScore(this.#o.nodeName, node);
      this.#scores.set(node, s);
    }
    return s;
  }

  #targets(): Target[] {
    return uniqueTargets([...this.#o.staticTargets, ...(this.#choice?.targets ?? [])]);
  }

  #applyRecords(leases: Iterable<LeaseLike>): void {
    const records = new Map<string, PeerRecordLease>();
    this.#ringLease = null;
    for (const lease of leases) {
      const claim = lease.metadata?.labels?.[CLAIM_LABEL];
      if (claim === RING_CLAIM && lease.metadata?.name === 'mesh-ring') this.#ringLease = lease;
      if (claim !== PEER_CLAIM) continue;
      const r = parsePeerRecord(lease);
      if ('error' in r) {
        this.#logOnce(`record ${lease.metadata?.name} ${r.error}`, { record: lease.metadata?.name, reason: r.error }, `mesh peer record ${lease.metadata?.name} is ignored: ${r.error}`);
        continue;
      }
      records.set(r.peer, r);
    }
    this.#records = records;
    this.#queueReconcile();
  }

  /** One pass at a time; a change during a pass queues one more after it. */
  #queueReconcile(): void {
    if (this.#inflight) {
      this.#again = true;
      return;
    }
    if (this.#reconcileQueued || this.#stopped) return;
    this.#reconcileQueued = true;
    setImmediate(() => {
      this.#reconcileQueued = false;
      if (this.#inflight) return;
      this.#inflight = this.#reconcile().finally(() => {
        this.#inflight = undefined;
        if (this.#again) {
          this.#again = false;
          this.#queueReconcile();
        }
      });
    });
  }

  /** Level-triggered: own record, ring record, then the reclaims; each pass reads only caches unless something differs. */
  async #reconcile(): Promise<void> {
    if (this.#stopped || !this.#client || !this.#host || !this.#synced.nodes || !this.#synced.records) return;
    try {
      const nodeUid = this.#choice?.nodes.get(this.#o.nodeName);
      if (!nodeUid) {
        this.#problem('own-node', `this node's Node ${JSON.stringify(this.#o.nodeName)} is not in the Node list: set NODE_NAME (or --node-name) to spec.nodeName from the downward API; meanwhile this peer has no record and reclaims nothing`);
      } else {
        this.#recovered('own-node');
        const self = { peer: this.#host.name, node: this.#o.nodeName, nodeUid };
        const result = await ensureOwnRecord(this.#client, this.#o.namespace, self, this.#records.get(self.peer)?.lease ?? null);
        if (typeof result === 'object') this.#problem('record', `mesh peer record collision: ${result.collision}`);
        else {
          this.#recovered('record');
          if (result !== 'unchanged') this.#log.info({ record: recordName(self.peer), node: self.node, uid: nodeUid }, `mesh peer record ${result}`);
        }
      }
      await this.#ensureRingRecord();
      this.#reclaimer?.reconcile({ nodes: this.#choice?.nodes ?? new Map(), records: this.#records });
      this.#recovered('reconcile');
    } catch (e) {
      this.#problem('reconcile', `mesh peer records: ${(e as Error).message}`);
    }
  }

  async #ensureRingRecord(): Promise<void> {
    const seeds = this.#host?.ringSeeds();
    if (!seeds || !this.#client || this.#o.ipallocInit) return;
    if (this.#ringLease) {
      const theirs = parseRingRecord(this.#ringLease);
      const mismatch = 'error' in theirs || theirs.join(',') !== [...seeds].sort().join(',');
      if (mismatch) this.#ringMismatch('error' in theirs ? [theirs.error] : theirs, seeds);
      else this.#recovered('ring');
      return;
    }
    const ring = await ringSeeds(this.#client, this.#o.namespace, seeds, this.#o.nodeName);
    if (ring.created) this.#log.warn({ seeds: ring.seeds }, `the cluster's ring record ${this.#o.namespace}/mesh-ring was missing; re-created from this node's ring`);
  }

  #ringMismatch(cluster: readonly string[], ours: readonly string[]): void {
    this.#problem('ring', `the cluster's ring record ${this.#o.namespace}/mesh-ring says seeds ${cluster.slice(0, 5).join(',')}, but this node's saved ring was seeded by ${ours.slice(0, 5).join(',')}; this node keeps its ring (a ring conflict will show if they meet)`);
  }

  // ---- reporting ----------------------------------------------------------------------------

  #guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.#problem('internal', `mesh kube peers: ${(e as Error).message}`);
    }
  }

  #problem(key: string, message: string): void {
    if (this.#stopped || this.#problems.get(key) === message) return;
    this.#problems.set(key, message);
    // The runtime logs it (once) and lists it in the status.
    this.#events?.onProblem(`${PROBLEM}-${key}`, message);
  }

  #recovered(key: string): void {
    if (this.#stopped || !this.#problems.delete(key)) return;
    this.#log.info({ key }, 'mesh kube peers: recovered');
    this.#events?.onRecovered(`${PROBLEM}-${key}`);
  }

  #logOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.#logged.has(key)) return;
    if (this.#logged.size > 1000) this.#logged.clear();
    this.#logged.add(key);
    this.#log.warn(fields, message);
  }

  status(): unknown {
    const c = this.#choice;
    return {
      server: this.#client?.server ?? null, namespace: this.#o.namespace, node: this.#o.nodeName, nodeUid: c?.nodes.get(this.#o.nodeName) ?? null,
      synced: { ...this.#synced }, nodes: c?.nodes.size ?? 0, candidates: c?.candidates ?? 0,
      targets: this.#targets().map((t) => `${t.host}:${t.port}`), refused: (c?.refused ?? []).slice(0, MAX_REPORTED),
      records: this.#records.size, problems: [...this.#problems.values()],
      reclaims: { done: this.#reclaimer?.reclaimed ?? 0, addresses: this.#reclaimer?.addresses ?? 0, inProgress: this.#reclaimer?.tasks() ?? [] },
    };
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake?.();
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all(this.#watches.map((w) => w.stop()));
    await this.#inflight;
    await this.#reclaimer?.stop();
  }
}

function uniqueTargets(targets: readonly Target[]): Target[] {
  return [...new Map(targets.map((t) => [`${t.host}:${t.port}`, t])).values()];
}

function sameEntries(a: ReadonlyMap<string, string> | undefined, b: ReadonlyMap<string, string>): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [k, v] of b) if (a.get(k) !== v) return false;
  return true;
}

function keyOf(targets: readonly Target[]): string {
  return targets.map((t) => `${t.host}:${t.port}`).join(',');
}
