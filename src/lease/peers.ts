// The other nodes' leases, kept current: list, then watch from the listing's revision; when the
// store cannot continue (compaction, v2 "event index cleared") list again and diff the snapshot
// against what we had (docs/flannel-compat.md §1.8). Every change hands the data plane the whole peer set
// (it reconciles against that) plus the delta (for logs). This node's own subnet is never a
// peer. Every lease is untrusted (anyone who can write to etcd writes one), so a lease is
// refused, not handed over, when it is not one (a key that is not a subnet, a value that is not
// a lease, a key the store could not hand over) or when routing it could hurt this node: a
// subnet outside the cluster Network (it could route the underlay or etcd's address into the
// overlay and cut the node off), a subnet larger than a node's (it would swallow other nodes'
// subnets), or a PublicIP that no node can have (0.0.0.0, loopback, link-local, multicast,
// broadcast, reserved, or inside the cluster Network itself). The consumer gets the current set
// of refused keys with every change; each (key, reason) is logged once while it lasts.
import type { Logger } from '../log/logger.ts';
import { cidrContains, cidrContainsCidr, compareIp, formatCidr, tryParseIp, type Cidr } from '../net/cidr.ts';
import { unusablePublicIp } from '../net/public-ip.ts';
import { describeSubnets, parseLeaseKey, parseStoredLease, subnetsId, type LeaseAttrs, type LeaseRecord, type LeaseSubnets } from './lease.ts';
import type { NetworkConfig, SubnetRange } from './network-config.ts';
import type { LeaseStore, SkippedKey, StoredLease, Watch, WatchEvent } from './store.ts';
import { delay, type Timers } from './timers.ts';

export interface PeerLease {
  readonly key: string;
  readonly subnets: LeaseSubnets;
  readonly attrs: LeaseAttrs;
  /** The value as stored: an unchanged value is an unchanged peer. */
  readonly value: string;
  readonly expiresAt: number | null;
}

export interface PeerChange {
  /** Every peer, sorted by subnet. */
  readonly peers: readonly PeerLease[];
  readonly added: readonly PeerLease[];
  /** Peers whose lease value changed (a new VTEP MAC after a restart, a new public IP...). */
  readonly updated: readonly PeerLease[];
  readonly removed: readonly PeerLease[];
  /** Every key refused now (not a lease, or unsafe to route), with why; sorted by key. */
  readonly rejected: readonly RejectedLease[];
  /** What caused it: the first listing, a watch event, a re-list after a reset, or our own subnet changing. */
  readonly cause: 'snapshot' | 'event' | 'reset' | 'own-subnet';
}

export interface RejectedLease {
  /** The key as stored, e.g. "subnets/10.16.85.0-24". */
  readonly key: string;
  readonly reason: string;
}

/** The part of the network config a peer must fit: the Network (and SubnetLen) of each family. */
export type PeerBounds = Pick<NetworkConfig, 'ipv4' | 'ipv6'>;

function checkFamily(family: 4 | 6, range: SubnetRange | undefined, subnet: Cidr | undefined, publicIp: string | null): string | undefined {
  if (!range) return subnet ? `its IPv${family} subnet ${formatCidr(subnet)} is not wanted: the network has no IPv${family}` : undefined;
  const network = formatCidr(range.network);
  if (!subnet) return `it has no IPv${family} subnet, but the network is IPv${family} (${network})`;
  const text = formatCidr(subnet);
  if (!cidrContainsCidr(range.network, subnet)) {
    return `its subnet ${text} is outside the cluster Network ${network}: routing it could send this node's own traffic (underlay, etcd) into the overlay`;
  }
  if (subnet.prefix < range.subnetLen) {
    return `its subnet ${text} is larger than a node's /${range.subnetLen} (SubnetLen): it would swallow other nodes' subnets`;
  }
  const ip = publicIp === null ? undefined : tryParseIp(publicIp);
  const field = family === 4 ? 'PublicIP' : 'PublicIPv6';
  if (!ip || ip.family !== family) return `it has no usable ${field} (${JSON.stringify(publicIp)})`;
  const why = unusablePublicIp(ip);
  if (why) return `its ${field} ${publicIp} ${why}: no node can be reached there`;
  if (cidrContains(range.network, ip)) return `its ${field} ${publicIp} lies inside the cluster Network ${network}: traffic to it would loop into the overlay`;
  return undefined;
}

/** Why a parsed lease must not be routed to, or undefined when it may. */
export function peerProblem(record: Pick<LeaseRecord, 'subnets' | 'attrs'>, bounds: PeerBounds): string | undefined {
  return checkFamily(4, bounds.ipv4, record.subnets.ipv4, record.attrs.publicIp)
    ?? checkFamily(6, bounds.ipv6, record.subnets.ipv6, record.attrs.publicIpv6);
}

export interface PeerWatch {
  /** Resolves once the first snapshot was delivered. */
  readonly ready: Promise<void>;
  /** Delivers what changed when the own-lease filter changed (this node moved to another subnet). */
  refresh(): void;
  close(): void;
}

function firstCidr(s: LeaseSubnets): Cidr {
  return (s.ipv4 ?? s.ipv6) as Cidr;
}

function byPeerSubnet(a: PeerLease, b: PeerLease): number {
  return compareIp({ family: firstCidr(a.subnets).family, value: firstCidr(a.subnets).network },
    { family: firstCidr(b.subnets).family, value: firstCidr(b.subnets).network });
}

/**
 * The pure part: all leases by subnet identity, the keys refused and why, and what was last
 * delivered. `reset` and `apply` update them; `delta` says what changed for the consumer since
 * last time.
 */
export class PeerSet {
  readonly #all = new Map<string, PeerLease>();
  #delivered = new Map<string, PeerLease>();
  #rejected = new Map<string, string>();
  /** Bumped whenever the refused set changes, so a delivery sorts it only then (a store full of junk keys costs once, not per event). */
  #rejectedVersion = 0;
  #deliveredRejectedVersion = -1;
  #rejectedSorted: RejectedLease[] | undefined;
  readonly #logger: Logger;
  readonly #bounds: PeerBounds;

  constructor(logger: Logger, bounds: PeerBounds) {
    this.#logger = logger;
    this.#bounds = bounds;
  }

  #parse(stored: StoredLease): { id: string; peer: PeerLease } | string {
    const parsed = parseStoredLease(stored);
    if (!parsed.ok) {
      // parseStoredLease names the key; the rejection carries it already.
      const prefix = `${stored.key}: `;
      return parsed.reason.startsWith(prefix) ? parsed.reason.slice(prefix.length) : parsed.reason;
    }
    const problem = peerProblem(parsed.value, this.#bounds);
    if (problem) return problem;
    const { key, subnets, attrs, value, expiresAt } = parsed.value;
    return { id: subnetsId(subnets), peer: { key, subnets, attrs, value, expiresAt } };
  }

  /** Records a refusal; logs it only when this key was not already refused for this reason. */
  #reject(key: string, reason: string, into: Map<string, string> = this.#rejected, before: Map<string, string> = this.#rejected): void {
    if (before.get(key) !== reason) this.#logger.warn({ key, reason }, `skipping ${key}: ${reason}`);
    if (into === this.#rejected && into.get(key) !== reason) this.#rejectedChanged(); // reset() compares its new set whole
    into.set(key, reason);
  }

  /** Replaces everything with a listing (and the keys the store could not hand over). */
  reset(leases: readonly StoredLease[], skipped: readonly SkippedKey[] = []): void {
    this.#all.clear();
    const rejected = new Map<string, string>();
    for (const s of skipped) this.#reject(s.key, s.reason, rejected);
    for (const stored of leases) {
      const p = this.#parse(stored);
      if (typeof p === 'string') this.#reject(stored.key, p, rejected);
      else this.#all.set(p.id, p.peer);
    }
    if (rejected.size !== this.#rejected.size || [...rejected].some(([k, r]) => this.#rejected.get(k) !== r)) this.#rejectedChanged();
    this.#rejected = rejected;
  }

  #rejectedChanged(): void {
    this.#rejectedVersion++;
    this.#rejectedSorted = undefined;
  }

  #unreject(key: string): void {
    if (this.#rejected.delete(key)) this.#rejectedChanged();
  }

  apply(event: WatchEvent): void {
    if (event.type === 'delete' || event.type === 'skip') {
      if (event.type === 'skip') this.#reject(event.key, event.reason);
      else this.#unreject(event.key);
      this.#forget(event.key);
      return;
    }
    const p = this.#parse(event.lease);
    if (typeof p !== 'string') {
      this.#unreject(event.lease.key);
      this.#all.set(p.id, p.peer);
      return;
    }
    this.#reject(event.lease.key, p);
    // A lease rewritten with garbage can no longer be routed to: it is gone for the data plane.
    this.#forget(event.lease.key);
  }

  #forget(key: string): void {
    const parsed = parseLeaseKey(key);
    if (parsed.ok) this.#all.delete(subnetsId(parsed.value));
  }

  /** The keys refused now, sorted. */
  get rejected(): RejectedLease[] {
    this.#rejectedSorted ??= [...this.#rejected].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, reason]) => ({ key, reason }));
    return this.#rejectedSorted;
  }

  /**
   * What changed since the last delivery, with this node's own leases filtered out; marks it
   * delivered. `rejectedChanged` says whether the set of refused keys differs from the last one.
   */
  delta(isOwn: (id: string, peer: PeerLease) => boolean): Omit<PeerChange, 'cause'> & { rejectedChanged: boolean } {
    const now = new Map([...this.#all].filter(([id, peer]) => !isOwn(id, peer)));
    const added: PeerLease[] = [];
    const updated: PeerLease[] = [];
    const removed: PeerLease[] = [];
    for (const [id, peer] of now) {
      const before = this.#delivered.get(id);
      if (!before) added.push(peer);
      else if (before.value !== peer.value || before.key !== peer.key) updated.push(peer);
    }
    for (const [id, peer] of this.#delivered) if (!now.has(id)) removed.push(peer);
    this.#delivered = now;
    const rejected = this.rejected;
    const rejectedChanged = this.#rejectedVersion !== this.#deliveredRejectedVersion;
    this.#deliveredRejectedVersion = this.#rejectedVersion;
    return { peers: [...now.values()].sort(byPeerSubnet), added, updated, removed, rejected, rejectedChanged };
  }
}

export interface WatchPeersOptions {
  store: LeaseStore;
  /** Whether a lease (by subnetsId, and its value) is this node's own; asked at every delivery. */
  isOwn: (id: string, peer: PeerLease) => boolean;
  /** The Network and SubnetLen of each family (the NetworkConfig fits): leases outside are refused. */
  bounds: PeerBounds;
  timers: Timers;
  retryIntervalMs: number;
  logger: Logger;
}

export function watchPeers(options: WatchPeersOptions, onChange: (change: PeerChange) => void): PeerWatch {
  const { store, timers, logger } = options;
  const set = new PeerSet(logger, options.bounds);
  let closed = false;
  let generation = 0;
  let watch: Watch | undefined;
  let wait: { cancel(): void } | undefined;
  let first = true;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { markReady = resolve; });

  const deliver = (cause: PeerChange['cause']): void => {
    const { rejectedChanged, ...d } = set.delta(options.isOwn);
    const peersChanged = d.added.length + d.updated.length + d.removed.length > 0;
    if (cause !== 'snapshot' && !peersChanged && !rejectedChanged) return;
    const describe = (ps: readonly PeerLease[]): string[] => ps.map((p) => describeSubnets(p.subnets));
    if (cause === 'snapshot' || peersChanged) {
      logger.info({ cause, peers: d.peers.length, added: describe(d.added), updated: describe(d.updated), removed: describe(d.removed), rejected: d.rejected.length }, 'peer leases changed');
    }
    try {
      onChange({ ...d, cause });
    } catch (e) {
      logger.error({ err: e }, 'the peer change handler failed');
    }
  };

  const start = async (cause: 'snapshot' | 'reset'): Promise<void> => {
    const gen = ++generation;
    watch?.close();
    watch = undefined;
    for (;;) {
      if (closed || gen !== generation) return;
      try {
        const listing = await store.listLeases();
        if (closed || gen !== generation) return;
        set.reset(listing.leases, listing.skipped);
        deliver(first ? 'snapshot' : cause);
        if (first) { first = false; markReady(); }
        watch = store.watchLeases(listing.revision, {
          onEvent: (event) => {
            if (closed || gen !== generation) return;
            set.apply(event);
            deliver('event');
          },
          onReset: (reason) => {
            if (closed || gen !== generation) return;
            logger.warn({ reason }, 'peer lease watch fell behind; listing again');
            void start('reset');
          },
          onError: (error) => logger.warn({ err: error }, 'peer lease watch: store trouble (retrying)'),
        });
        return;
      } catch (e) {
        logger.warn({ err: e }, `listing peer leases failed; retrying in ${options.retryIntervalMs / 1000} s`);
        const w = delay(timers, options.retryIntervalMs);
        wait = w;
        await w.done;
      }
    }
  };

  void start('snapshot');
  return {
    ready,
    refresh: () => { if (!closed && !first) deliver('own-subnet'); },
    close: () => {
      closed = true;
      watch?.close();
      wait?.cancel();
    },
  };
}
