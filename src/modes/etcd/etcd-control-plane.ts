// etcd mode behind the runtime's control-plane seam: flannel's leases in etcd (v2 or v3), kept
// by the LeaseManager, the peers from the other leases, and the network config at
// <prefix>/config, polled so that a running node hears about a change.
import { WeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import { formatCidr, parseCidr } from '../../net/cidr.ts';
import type {
  Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, ControlPlaneStatus, NodeRanges, PeerSnapshot,
} from '../../agent/control-plane.ts';
import { findOwnLeases } from '../../lease/acquire.ts';
import { LeaseManager, type HeldLease } from '../../lease/manager.ts';
import { configNotFoundMessage, parseNetworkConfig, type NetworkConfig } from '../../lease/network-config.ts';
import { clusterConfigOf } from '../cluster-config.ts';
import { untilReady } from '../until-ready.ts';
import type { OpenedLeaseStore } from '../../lease/open-store.ts';
import type { PeerChange, PeerLease, PeerWatch } from '../../lease/peers.ts';
import type { LeaseListing, LeaseStore } from '../../lease/store.ts';

export interface EtcdControlPlaneOptions {
  /** Opens the store (openLeaseStore, or an in-memory store in tests); retried while it fails with WEFT_NOT_READY. */
  openStore: () => Promise<LeaseStore & { readonly selection?: OpenedLeaseStore['selection'] }>;
  endpoints: readonly string[];
  prefix: string;
  /** The previous subnet.env's subnet, to get it back when it is free. */
  previousSubnet: string | undefined;
  ttlSeconds: number;
  renewMarginSeconds: number;
  /** How often the config is read again to notice a change. */
  configPollMs: number;
  retryDelayMs?: number;
  log: Logger;
}

function toPeer(p: PeerLease): PeerSnapshot['peers'][number] | undefined {
  if (!p.subnets.ipv4) return undefined;
  return { id: p.key, subnets: [formatCidr(p.subnets.ipv4)], publicIp: p.attrs.publicIp, backendType: p.attrs.backendType ?? '', backendData: p.attrs.backendData };
}

export function peerSnapshot(change: Pick<PeerChange, 'peers' | 'rejected'>): PeerSnapshot {
  const peers = change.peers.map(toPeer).filter((p): p is NonNullable<typeof p> => p !== undefined);
  return { peers, rejected: change.rejected };
}

function rangesOf(lease: HeldLease): NodeRanges {
  return { subnets: lease.subnets.ipv4 ? [formatCidr(lease.subnets.ipv4)] : [], expiresAt: lease.expiresAt };
}

export class EtcdControlPlane implements ControlPlane {
  readonly mode = 'etcd';
  readonly #o: EtcdControlPlaneOptions;
  #events: ControlPlaneEvents | undefined;
  #store: (LeaseStore & { readonly selection?: OpenedLeaseStore['selection'] }) | undefined;
  #config: NetworkConfig | undefined;
  #configText: string | null = null;
  #manager: LeaseManager | undefined;
  #watch: PeerWatch | undefined;
  #poll: ReturnType<typeof setInterval> | undefined;
  #stopped = false;
  /** The one start-up listing, handed to the next listLeases() once (see #primedStore). */
  #primed: LeaseListing | undefined;
  #serveListing = false;
  #primedUses = 0;

  constructor(options: EtcdControlPlaneOptions) {
    this.#o = options;
  }

  async open(events: ControlPlaneEvents): Promise<ClusterConfig> {
    this.#events = events;
    this.#store = await this.#untilReady(() => 'waiting-for-store', () => this.#o.openStore());
    const selection = this.#store.selection;
    if (selection) this.#o.log.info({ api: selection.api, why: selection.reason }, 'etcd API chosen');
    const store = this.#store;
    let storeAnswered = false;
    // An unreachable store is still "waiting for the store", even though opening it was lazy.
    this.#config = await this.#untilReady(() => (storeAnswered ? 'waiting-for-config' : 'waiting-for-store'), async () => {
      storeAnswered = false;
      const text = await store.getConfig();
      storeAnswered = true;
      if (text === null) throw new WeftError('WEFT_NOT_READY', configNotFoundMessage(store.kind, this.#o.prefix));
      this.#configText = text;
      return parseNetworkConfig(text);
    });
    return clusterConfigOf(this.#config);
  }

  /** Retries attempt while the store is not ready, reporting each new reason once. */
  #untilReady<T>(phase: () => 'waiting-for-store' | 'waiting-for-config', attempt: () => Promise<T>): Promise<T> {
    const events = this.#events;
    return untilReady({
      delayMs: this.#o.retryDelayMs ?? 1000, log: this.#o.log, stopped: () => this.#stopped, phase,
      onPhase: (p, reason) => events?.onPhase(p, reason),
    }, attempt);
  }

  async previousBackendData(publicIp: string): Promise<unknown> {
    const listing = await this.#requireStore().listLeases();
    this.#primed = listing;
    const own = findOwnLeases(this.#requireConfig(), { publicIp, publicIpv6: null, backendType: undefined, backendData: undefined, backendV6Data: undefined }, listing.leases);
    return own[0]?.attrs.backendData;
  }

  async acquire(a: Announcement): Promise<NodeRanges> {
    const config = this.#requireConfig();
    this.#events?.onPhase('acquiring-lease', `acquiring a subnet lease in ${this.#o.prefix}/subnets`);
    const previous = this.#o.previousSubnet;
    const manager = new LeaseManager({
      store: this.#primedStore(), config, publicIp: a.publicIp, backendType: a.backendType, backendData: a.backendData,
      previous: previous === undefined ? undefined : { subnet: parseCidr(previous) },
      ttlSeconds: this.#o.ttlSeconds, renewMarginSeconds: this.#o.renewMarginSeconds,
      retryIntervalSeconds: Math.min(60, Math.max(1, this.#o.renewMarginSeconds / 4)), logger: this.#o.log,
    });
    this.#serveListing = true;
    const lease = await manager.acquire();
    this.#manager = manager;
    this.#o.log.info({ subnet: rangesOf(lease).subnets[0], how: lease.how, expiresAt: lease.expiresAt }, 'lease acquired');
    return rangesOf(lease);
  }

  async announce(a: Announcement): Promise<void> {
    await this.#requireManager().republish(a.backendType, a.backendData);
  }

  async start(): Promise<void> {
    const manager = this.#requireManager();
    const events = this.#events!;
    manager.on('revoked', (e) => events.onRanges(null, `lease ${rangesOf(e.lease).subnets[0]} revoked (${e.reason}): ${e.detail}`));
    manager.on('reacquired', (e) => events.onRanges(rangesOf(e.lease), e.sameSubnet ? 'the same subnet re-acquired' : `moved from ${rangesOf(e.previous).subnets[0]}`));
    manager.on('renewed', (l) => {
      events.onRecovered('lease-renewal');
      events.onRanges(rangesOf(l), 'renewed');
    });
    manager.on('trouble', (e) => events.onProblem('lease-renewal', `${e.during === 'renew' ? 'renewing the lease' : 're-acquiring a lease'} failed: ${e.error.message}`));
    manager.on('conflict', (e) => events.onProblem('lease-conflict', `our lease key ${e.lease.key} was rewritten by another writer with our public IP: two nodes sharing one IP?`));
    manager.start(this.#primed ? { watchFrom: this.#primed.revision } : {});
    this.#serveListing = true;
    this.#watch = manager.watchPeers((change) => events.onPeers(peerSnapshot(change)));
    await this.#watch.ready;
    this.#poll = setInterval(() => void this.#pollConfig(), this.#o.configPollMs);
  }

  /**
   * The store, except that the listing made at start (previousBackendData) serves the
   * acquisition's first look and the peer watch's first snapshot, and the lease monitor
   * watches from its revision: one listing at start, not four. Safe: an acquisition only
   * creates with compare-and-swap (a stale view loses a race and looks again, live), and the
   * watches start from that listing's revision, so they see every change made since, our own
   * lease's write included.
   */
  #primedStore(): LeaseStore {
    const store = this.#requireStore();
    const listLeases = async (): Promise<LeaseListing> => {
      const primed = this.#primed;
      const serve = this.#serveListing;
      this.#serveListing = false;
      if (serve && primed) {
        if (++this.#primedUses >= 2) this.#primed = undefined; // acquisition and peer watch served: let it go
        return primed;
      }
      return store.listLeases();
    };
    return {
      kind: store.kind,
      getConfig: () => store.getConfig(),
      listLeases,
      create: (key, value, ttl) => store.create(key, value, ttl),
      put: (key, value, ttl) => store.put(key, value, ttl),
      delete: (key) => store.delete(key),
      watchLeases: (after, handlers) => store.watchLeases(after, handlers),
      close: async () => undefined, // the control plane closes the store itself
    };
  }

  async #pollConfig(): Promise<void> {
    if (this.#stopped) return;
    const events = this.#events!;
    let text: string | null;
    try {
      text = await this.#requireStore().getConfig();
    } catch (e) {
      events.onProblem('config-read', `reading ${this.#o.prefix}/config failed: ${(e as Error).message}`);
      return;
    }
    events.onRecovered('config-read');
    if (this.#stopped || text === this.#configText) return;
    if (text === null) {
      events.onProblem('config', `${this.#o.prefix}/config was deleted; still running on the last config`);
      return;
    }
    let parsed: NetworkConfig;
    let cluster: ClusterConfig;
    try {
      parsed = parseNetworkConfig(text);
      cluster = clusterConfigOf(parsed);
    } catch (e) {
      events.onProblem('config', `${this.#o.prefix}/config changed and is invalid now (${(e as Error).message}); still running on the last valid config`);
      return;
    }
    this.#configText = text;
    this.#config = parsed;
    events.onRecovered('config');
    events.onConfig(cluster);
  }

  status(): ControlPlaneStatus {
    return { kind: this.#store?.kind ?? 'etcd', endpoints: [...this.#o.endpoints], prefix: this.#o.prefix };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#poll) clearInterval(this.#poll);
    this.#watch?.close();
    this.#manager?.stop();
    await this.#store?.close();
  }

  #requireStore(): LeaseStore {
    if (!this.#store) throw new Error('etcd control plane: open() first');
    return this.#store;
  }

  #requireConfig(): NetworkConfig {
    if (!this.#config) throw new Error('etcd control plane: open() first');
    return this.#config;
  }

  #requireManager(): LeaseManager {
    if (!this.#manager) throw new Error('etcd control plane: acquire() first');
    return this.#manager;
  }
}
