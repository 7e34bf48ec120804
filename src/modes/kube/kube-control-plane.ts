// kube mode (`--store kube`) behind the runtime's control-plane seam: no etcd to run. The
// network config is net-conf.json in a ConfigMap; a node's subnet is its Node's spec.podCIDR
// when the cluster assigns them (as flannel's kube subnet manager uses), and otherwise a claim:
// a Lease named after the subnet, created by name, owned by the Node (claims.ts). Peers come
// from the Nodes (flannel's annotations) and the claims, both watched. docs/kube-store.md.
import { WeftError, isWeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import { cidrContainsCidr, formatCidr, parseCidr, type Cidr } from '../../net/cidr.ts';
import { freeSubnets, RACE_RETRIES } from '../../lease/acquire.ts';
import { parseNetworkConfig, type NetworkConfig, type SubnetRange } from '../../lease/network-config.ts';
import type {
  Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, ControlPlaneStatus, NodeRanges,
} from '../../agent/control-plane.ts';
import type { KubeClient } from '../../kube/client.ts';
import type { Reflector } from '../../kube/reflector.ts';
import { clusterConfigOf } from '../cluster-config.ts';
import { untilReady } from '../until-ready.ts';
import { CLAIM_SELECTOR, SUBNET_ANNOTATION, candidateOrder, claimLease, claimName, readClaim, type Claim, type LeaseObject } from './claims.ts';
import { announcedBackendData, announcementAnnotations, kubeView, podCidrOf, type KubeView, type NodeObject } from './peers.ts';

/** The key net-conf.json lives under in the ConfigMap (kube-flannel's name). */
export const NET_CONF_KEY = 'net-conf.json';

/** What to watch: one collection, listed the same way (with the same selector) as it is watched. */
export interface WatchTarget<T> {
  path: string;
  labelSelector?: string;
  list: () => Promise<{ items: T[]; resourceVersion: string }>;
}

/** A connection to the API: the client, and how to watch a collection through it. */
export interface KubeSession {
  client: KubeClient;
  reflect<T extends { metadata?: { name?: string } }>(what: WatchTarget<T>): Reflector<T>;
}

export interface KubeControlPlaneOptions {
  connect: () => Promise<KubeSession>;
  nodeName: string;
  namespace: string;
  configMap: string;
  annotationPrefix: string;
  /** The previous subnet.env's subnet, to claim again first. */
  previousSubnet: string | undefined;
  configPollMs: number;
  retryDelayMs?: number;
  /** How long a claim must stay ownerless before this node deletes it (the GC normally does it first). */
  orphanGraceMs?: number;
  log: Logger;
}

type Held = { source: 'podCIDR'; subnet: Cidr } | { source: 'claim'; claim: Claim };

export class KubeControlPlane implements ControlPlane {
  readonly mode = 'kube';
  readonly #o: KubeControlPlaneOptions;
  #events: ControlPlaneEvents | undefined;
  #session: KubeSession | undefined;
  #config: NetworkConfig | undefined;
  #configText: string | undefined;
  #node: NodeObject | undefined;
  #held: Held | undefined;
  #announcement: Announcement | undefined;
  #nodes: Reflector<NodeObject> | undefined;
  #claims: Reflector<LeaseObject> | undefined;
  #nodeSet: ReadonlyMap<string, NodeObject> = new Map();
  #claimSet: ReadonlyMap<string, LeaseObject> = new Map();
  #lastSnapshot = '';
  #orphanSince = new Map<string, number>();
  #reacquiring = false;
  #verifying = false;
  /** Settles start() if stop() comes before the first view. */
  #settleStart: (() => void) | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(options: KubeControlPlaneOptions) {
    this.#o = options;
  }

  #wait<T>(phase: () => 'waiting-for-store' | 'waiting-for-config' | 'acquiring-lease', attempt: () => Promise<T>): Promise<T> {
    const events = this.#events;
    return untilReady({
      delayMs: this.#o.retryDelayMs ?? 1000, log: this.#o.log, stopped: () => this.#stopped, phase,
      onPhase: (p, reason) => events?.onPhase(p, reason),
    }, attempt);
  }

  async open(events: ControlPlaneEvents): Promise<ClusterConfig> {
    this.#events = events;
    this.#session = await this.#wait(() => 'waiting-for-store', () => this.#o.connect());
    this.#node = await this.#wait(() => 'waiting-for-store', () => this.#ownNode());
    const text = await this.#wait(() => 'waiting-for-config', () => this.#readConfig());
    this.#configText = text;
    this.#config = parseNetworkConfig(text);
    return clusterConfigOf(this.#config);
  }

  async #ownNode(): Promise<NodeObject> {
    const node = await this.#requireClient().getNode(this.#o.nodeName);
    if (!node) {
      throw new WeftError('WEFT_NOT_READY', `Node ${JSON.stringify(this.#o.nodeName)} is not registered with the API server: ` +
        'check --node-name (env NODE_NAME, from spec.nodeName in the DaemonSet) and that the kubelet has registered the node');
    }
    return node as NodeObject;
  }

  #where(): string {
    return `ConfigMap ${this.#o.namespace}/${this.#o.configMap}`;
  }

  async #readConfig(): Promise<string> {
    const cm = await this.#requireClient().getConfigMap(this.#o.namespace, this.#o.configMap);
    const text = cm?.data?.[NET_CONF_KEY];
    if (cm === null || cm === undefined) throw new WeftError('WEFT_NOT_READY', `${this.#where()} not found: apply weft's manifest (it holds ${NET_CONF_KEY})`);
    if (typeof text !== 'string') throw new WeftError('WEFT_NOT_READY', `${this.#where()} has no ${NET_CONF_KEY} key: add the network config there (flannel's format)`);
    return text;
  }

  async previousBackendData(publicIp: string): Promise<unknown> {
    return announcedBackendData(this.#node, this.#o.annotationPrefix, publicIp);
  }

  async acquire(a: Announcement): Promise<NodeRanges> {
    this.#announcement = a;
    this.#events?.onPhase('acquiring-lease', `claiming a subnet in ${this.#o.namespace} (Leases labelled ${CLAIM_SELECTOR})`);
    const held = await this.#wait(() => 'acquiring-lease', () => this.#hold(this.#o.previousSubnet));
    this.#held = held;
    await this.#wait(() => 'acquiring-lease', () => this.#publish(a));
    const ranges = rangesOf(held);
    this.#o.log.info({ subnet: ranges.subnets[0], how: held.source }, 'subnet held');
    return ranges;
  }

  async announce(a: Announcement): Promise<void> {
    this.#announcement = a;
    await this.#publish(a);
  }

  async #publish(a: Announcement): Promise<void> {
    const held = this.#held;
    const subnet = held ? formatCidr(held.source === 'podCIDR' ? held.subnet : held.claim.subnet) : null;
    await this.#requireClient().patchNodeAnnotations(this.#o.nodeName, { ...announcementAnnotations(this.#o.annotationPrefix, a), [SUBNET_ANNOTATION]: subnet });
  }

  /** This node's subnet: its podCIDR, its existing claim, or a new claim (`preferred` first). */
  async #hold(preferred: string | undefined): Promise<Held> {
    const range = this.#range();
    const node = await this.#ownNode();
    this.#node = node;
    const podCidr = podCidrOf(node);
    if (podCidr !== undefined) return { source: 'podCIDR', subnet: this.#checkPodCidr(podCidr, range) };
    const uid = node.metadata?.uid ?? '';
    for (let round = 0; round < RACE_RETRIES; round++) {
      const view = await this.#listView();
      const own = [...view.claims.values()].filter((c) => c.holder === this.#o.nodeName && c.ownerUid === uid);
      if (own.length > 0) {
        // Two claims of one Node (two agents raced on it, say during an update with surge): keep
        // the one peers route (the first by name), give the others back.
        const [keep, ...extra] = own.sort((x, y) => x.name.localeCompare(y.name));
        for (const c of extra) {
          await this.#requireClient().deleteLease(this.#o.namespace, c.name, { uid: c.uid });
          this.#o.log.warn({ kept: keep!.name, released: c.name }, 'this Node held two subnet claims; released the second');
        }
        return { source: 'claim', claim: keep! };
      }
      const taken = [...view.claims.values()].map((c) => c.subnet).concat(this.#podCidrs());
      const { free, total } = freeSubnets(range, taken);
      if (free.length === 0 && view.orphans.length > 0) {
        // Deleted Nodes' claims: the garbage collector frees them within seconds (or our sweep after its grace).
        this.#sweepOrphans(view);
        throw new WeftError('WEFT_NOT_READY', `every subnet is claimed, ${view.orphans.length} of them by Nodes that no longer exist: waiting for their claims to be collected`);
      }
      if (free.length === 0) throw exhausted(range, total, view.claims.size);
      for (const subnet of candidateOrder(free, this.#o.nodeName, preferred === undefined ? undefined : parseCidr(preferred))) {
        const created = await this.#requireClient().createLease(this.#o.namespace, claimLease(this.#o.namespace, subnet, { name: this.#o.nodeName, uid }) as never).catch((e: unknown) => {
          if (isWeftError(e, 'WEFT_KUBE') && /\b404\b|not found/i.test(e.message)) {
            throw new WeftError('WEFT_NOT_READY', `namespace ${JSON.stringify(this.#o.namespace)} for subnet claims does not exist: apply weft's manifest, or set --kube-namespace (env POD_NAMESPACE) (${e.message})`);
          }
          throw e;
        });
        if (created === 'exists') continue; // another node won this one: the next candidate
        const claim = { name: claimName(subnet), uid: (created as LeaseObject).metadata?.uid ?? '', subnet, holder: this.#o.nodeName, ownerUid: uid };
        this.#o.log.info({ subnet: formatCidr(subnet), claim: claim.name }, 'subnet claimed');
        return { source: 'claim', claim };
      }
    }
    throw new WeftError('WEFT_NOT_READY', `every free subnet was claimed by another node while this one tried (${RACE_RETRIES} rounds); retrying`);
  }

  #checkPodCidr(text: string, range: SubnetRange): Cidr {
    let cidr: Cidr;
    try {
      cidr = parseCidr(text);
    } catch {
      throw new WeftError('WEFT_INVALID_CONFIG', `Node ${this.#o.nodeName} has spec.podCIDR ${JSON.stringify(text)}, which is not a CIDR`);
    }
    if (!cidrContainsCidr(range.network, cidr)) {
      throw new WeftError('WEFT_INVALID_CONFIG', `Node ${this.#o.nodeName} has spec.podCIDR ${text}, outside the Network ${formatCidr(range.network)} in ${this.#where()}: ` +
        "set Network to the cluster's pod CIDR (kube-controller-manager --cluster-cidr)");
    }
    return cidr;
  }

  /** Subnets the cluster assigned to Nodes (a mixed cluster): never claimed by anyone. */
  #podCidrs(): Cidr[] {
    const out: Cidr[] = [];
    for (const node of this.#nodeSet.values()) {
      const text = podCidrOf(node);
      if (text === undefined) continue;
      try {
        out.push(parseCidr(text));
      } catch {
        // refused in the peer snapshot; it takes nothing here
      }
    }
    return out;
  }

  async #listView(): Promise<KubeView> {
    const client = this.#requireClient();
    const [claims, nodes] = await Promise.all([client.listLeases(this.#o.namespace, CLAIM_SELECTOR), client.listNodes()]);
    this.#nodeSet = new Map(nodes.items.map((n) => [n.metadata?.name ?? '', n as NodeObject]));
    return this.#view(nodes.items as NodeObject[], claims.items as LeaseObject[]);
  }

  #view(nodes: Iterable<NodeObject>, claims: Iterable<LeaseObject>): KubeView {
    return kubeView({ self: this.#o.nodeName, nodes, claims, range: this.#range(), annotationPrefix: this.#o.annotationPrefix });
  }

  async start(): Promise<void> {
    const client = this.#requireClient();
    const session = this.#session!;
    const claimsPath = `/apis/coordination.k8s.io/v1/namespaces/${this.#o.namespace}/leases`;
    this.#nodes = session.reflect<NodeObject>({ path: '/api/v1/nodes', list: async () => client.listNodes() as never });
    this.#claims = session.reflect<LeaseObject>({
      path: claimsPath, labelSelector: CLAIM_SELECTOR, list: async () => client.listLeases(this.#o.namespace, CLAIM_SELECTOR) as never,
    });
    let resolveFirst: () => void = () => undefined;
    const first = new Promise<void>((r) => { resolveFirst = r; });
    this.#settleStart = () => resolveFirst();
    // Both sets must have arrived before the first view: a view with the Nodes but not yet the
    // claims would take this node's own claim for deleted.
    const arrived = new Set<string>();
    const watch = (key: string, set: (m: ReadonlyMap<string, never>) => void) => ({
      onSync: (objects: ReadonlyMap<string, never>) => {
        if (this.#stopped) return;
        set(objects);
        arrived.add(key);
        if (arrived.size === 2 && this.#onSync()) resolveFirst();
      },
      onError: (message: string) => { if (!this.#stopped) this.#events?.onProblem(key, message); },
      onHealthy: () => { if (!this.#stopped) this.#events?.onRecovered(key); },
    });
    this.#nodes.start(watch('kube-nodes', (m) => { this.#nodeSet = m; }));
    this.#claims.start(watch('kube-claims', (m) => { this.#claimSet = m; }));
    await first;
    this.#poll = setInterval(() => {
      void this.#pollConfig();
      // Orphans wait out their grace whether or not anything else changes.
      if (!this.#stopped && this.#orphanSince.size > 0) this.#sweepOrphans(this.#view(this.#nodeSet.values(), this.#claimSet.values()));
    }, this.#o.configPollMs);
  }

  /** One sync of both watches: the peer snapshot, our own claim, orphans. True once delivered. */
  #onSync(): boolean {
    const view = this.#view(this.#nodeSet.values(), this.#claimSet.values());
    const own = this.#nodeSet.get(this.#o.nodeName);
    if (own) this.#node = own;
    this.#checkOwnClaim(view);
    this.#sweepOrphans(view);
    const text = JSON.stringify(view.snapshot);
    if (text !== this.#lastSnapshot) {
      this.#lastSnapshot = text;
      this.#events?.onPeers(view.snapshot);
    }
    return true;
  }

  /**
   * Our claim missing from the watched set, or no longer ours, is confirmed with a read before
   * the ranges are given up: a lagging claims watch (or a Nodes event arriving first) must never
   * make the node drop a subnet it still holds, nor take a second one.
   */
  #checkOwnClaim(view: KubeView): void {
    const held = this.#held;
    if (held?.source !== 'claim' || this.#reacquiring || this.#verifying) return;
    const now = view.claims.get(held.claim.name);
    const uid = this.#node?.metadata?.uid;
    if (now && now.holder === this.#o.nodeName && now.ownerUid === held.claim.ownerUid && now.ownerUid === uid) return;
    this.#verifying = true;
    void this.#verifyOwnClaim(held.claim).finally(() => { this.#verifying = false; });
  }

  async #verifyOwnClaim(claim: Claim): Promise<void> {
    let lease: LeaseObject | null;
    let node: NodeObject;
    try {
      [lease, node] = await Promise.all([this.#requireClient().getLease(this.#o.namespace, claim.name) as Promise<LeaseObject | null>, this.#ownNode()]);
    } catch (e) {
      if (!this.#stopped) this.#events?.onProblem('kube-claim', `checking this node's claim ${claim.name} failed: ${(e as Error).message}`);
      return;
    }
    if (this.#stopped || this.#held?.source !== 'claim' || this.#held.claim.name !== claim.name) return;
    this.#node = node;
    const read = lease === null ? undefined : readClaim(lease, this.#range());
    const uid = node.metadata?.uid;
    if (read?.ok && read.claim.holder === this.#o.nodeName && read.claim.ownerUid === claim.ownerUid && claim.ownerUid === uid) return; // the watch lags
    const why = lease === null ? `claim ${claim.name} was deleted`
      : read?.ok && read.claim.ownerUid !== uid ? `claim ${claim.name} belongs to an earlier Node ${this.#o.nodeName} (it was deleted and registered again)`
        : `claim ${claim.name} is no longer this Node's`;
    this.#held = undefined;
    this.#events?.onRanges(null, `${why}; claiming a subnet again`);
    void this.#reacquire(claim.subnet);
  }

  async #reacquire(previous: Cidr): Promise<void> {
    if (this.#reacquiring) return;
    this.#reacquiring = true;
    const delay = this.#o.retryDelayMs ?? 1000;
    try {
      while (!this.#stopped) {
        try {
          const held = await this.#hold(formatCidr(previous));
          if (this.#stopped) return;
          this.#held = held;
          if (this.#announcement) await this.#publish(this.#announcement);
          if (this.#stopped) return;
          const ranges = rangesOf(held);
          this.#events?.onRecovered('kube-claim');
          this.#events?.onRanges(ranges, ranges.subnets[0] === formatCidr(previous) ? 'the same subnet claimed again' : `moved from ${formatCidr(previous)}`);
          return;
        } catch (e) {
          if (this.#stopped) return;
          this.#events?.onProblem('kube-claim', `claiming a subnet again failed: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, delay));
        }
      }
    } finally {
      this.#reacquiring = false;
    }
  }

  /** Claims whose Node is gone: the GC deletes them; this sweep covers a cluster where it does not. */
  #sweepOrphans(view: KubeView): void {
    const now = Date.now();
    const grace = this.#o.orphanGraceMs ?? 60_000;
    const current = new Set(view.orphans.map((c) => c.name));
    for (const name of this.#orphanSince.keys()) if (!current.has(name)) this.#orphanSince.delete(name);
    for (const orphan of view.orphans) {
      const since = this.#orphanSince.get(orphan.name) ?? now;
      this.#orphanSince.set(orphan.name, since);
      if (now - since < grace) continue;
      this.#orphanSince.delete(orphan.name);
      void this.#deleteOrphan(orphan);
    }
  }

  /** Deletes an orphaned claim once a read confirms its Node is gone (a stale Nodes watch must never cost a live node its subnet). */
  async #deleteOrphan(orphan: Claim): Promise<void> {
    const client = this.#requireClient();
    try {
      const node = await client.getNode(orphan.holder);
      if (this.#stopped || (node !== null && node.metadata?.uid === orphan.ownerUid)) return;
      const r = await client.deleteLease(this.#o.namespace, orphan.name, { uid: orphan.uid });
      if (r === 'deleted') this.#o.log.info({ claim: orphan.name, node: orphan.holder }, 'deleted the claim of a Node that is gone');
    } catch (e) {
      this.#o.log.warn({ claim: orphan.name, err: (e as Error).message }, 'could not delete an orphaned claim; retrying later');
    }
  }

  async #pollConfig(): Promise<void> {
    if (this.#stopped) return;
    const events = this.#events!;
    let text: string;
    try {
      text = await this.#readConfig();
    } catch (e) {
      if (!this.#stopped) events.onProblem('config', `${(e as Error).message}; still running on the last config`);
      return;
    }
    if (this.#stopped) return;
    events.onRecovered('config');
    if (text === this.#configText) return;
    let parsed: NetworkConfig;
    let cluster: ClusterConfig;
    try {
      parsed = parseNetworkConfig(text);
      cluster = clusterConfigOf(parsed);
    } catch (e) {
      events.onProblem('config', `${this.#where()} changed and is invalid now (${(e as Error).message}); still running on the last valid config`);
      return;
    }
    this.#configText = text;
    this.#config = parsed;
    events.onConfig(cluster);
  }

  status(): ControlPlaneStatus {
    const held = this.#held;
    return {
      kind: 'kube', endpoints: this.#session ? [this.#session.client.server] : [], prefix: `${this.#o.namespace}/${this.#o.configMap}`,
      summary: held === undefined ? 'no subnet held' : held.source === 'claim' ? `subnet from claim ${this.#o.namespace}/${held.claim.name}` : `subnet from Node ${this.#o.nodeName} spec.podCIDR`,
      details: {
        node: this.#o.nodeName,
        subnetSource: held?.source ?? null,
        claim: held?.source === 'claim' ? held.claim.name : null,
        watches: { nodes: this.#nodes?.synced ?? false, claims: this.#claims?.synced ?? false },
      },
    };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#settleStart?.();
    if (this.#poll) clearInterval(this.#poll);
    await Promise.all([this.#nodes?.stop(), this.#claims?.stop()]);
  }

  #range(): SubnetRange {
    const range = this.#config?.ipv4;
    if (!range) throw new Error('kube control plane: open() first');
    return range;
  }

  #requireClient(): KubeClient {
    if (!this.#session) throw new Error('kube control plane: open() first');
    return this.#session.client;
  }
}

function rangesOf(held: Held): NodeRanges {
  return { subnets: [formatCidr(held.source === 'podCIDR' ? held.subnet : held.claim.subnet)], expiresAt: null };
}

function exhausted(range: SubnetRange, total: bigint, claims: number): WeftError {
  return new WeftError('WEFT_IPAM_EXHAUSTED',
    `out of subnets: all ${total} subnets of ${formatCidr(range.network)} between ${formatCidr(range.subnetMin)} and ` +
    `${formatCidr(range.subnetMax)} are claimed (${claims} claims). A deleted Node's claim is freed by the garbage collector ` +
    'within seconds; otherwise make room in net-conf.json (a larger Network, a longer SubnetLen).');
}
