// The other nodes' leases, kept current: list, then watch from the listing's revision; when the
// store cannot continue (compaction, v2 "event index cleared") list again and diff the snapshot
// against what we had (flannel.md §1.8). Every change hands the data plane the whole peer set
// (it reconciles against that) plus the delta (for logs). This node's own subnet is never a
// peer; a key that is not a subnet, or a value that is not a lease, is skipped with a warning.
import type { Logger } from '../log/logger.ts';
import { compareIp, type Cidr } from '../net/cidr.ts';
import { describeSubnets, parseLeaseKey, parseStoredLease, subnetsId, type LeaseAttrs, type LeaseSubnets } from './lease.ts';
import type { LeaseStore, StoredLease, Watch, WatchEvent } from './store.ts';
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
  /** What caused it: the first listing, a watch event, a re-list after a reset, or our own subnet changing. */
  readonly cause: 'snapshot' | 'event' | 'reset' | 'own-subnet';
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
 * The pure part: all leases by subnet identity, and what was last delivered. `reset` and
 * `apply` update the leases; `delta` says what changed for the consumer since last time.
 */
export class PeerSet {
  readonly #all = new Map<string, PeerLease>();
  #delivered = new Map<string, PeerLease>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  #parse(stored: StoredLease): { id: string; peer: PeerLease } | string {
    const parsed = parseStoredLease(stored);
    if (!parsed.ok) return parsed.reason;
    const { key, subnets, attrs, value, expiresAt } = parsed.value;
    return { id: subnetsId(subnets), peer: { key, subnets, attrs, value, expiresAt } };
  }

  #skip(key: string, reason: string): void {
    this.#logger.warn({ key }, `skipping ${key}: ${reason}`);
  }

  /** Replaces everything with a listing. */
  reset(leases: readonly StoredLease[]): void {
    this.#all.clear();
    for (const stored of leases) {
      const p = this.#parse(stored);
      if (typeof p === 'string') this.#skip(stored.key, p);
      else this.#all.set(p.id, p.peer);
    }
  }

  apply(event: WatchEvent): void {
    if (event.type === 'delete' || event.type === 'skip') {
      if (event.type === 'skip') this.#skip(event.key, event.reason);
      const key = parseLeaseKey(event.key);
      if (key.ok) this.#all.delete(subnetsId(key.value));
      return;
    }
    const p = this.#parse(event.lease);
    if (typeof p !== 'string') {
      this.#all.set(p.id, p.peer);
      return;
    }
    this.#skip(event.lease.key, p);
    // A lease rewritten with garbage can no longer be routed to: it is gone for the data plane.
    const key = parseLeaseKey(event.lease.key);
    if (key.ok) this.#all.delete(subnetsId(key.value));
  }

  /** What changed since the last delivery, with this node's own leases filtered out; marks it delivered. */
  delta(isOwn: (id: string, peer: PeerLease) => boolean): Omit<PeerChange, 'cause'> {
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
    return { peers: [...now.values()].sort(byPeerSubnet), added, updated, removed };
  }
}

export interface WatchPeersOptions {
  store: LeaseStore;
  /** Whether a lease (by subnetsId, and its value) is this node's own; asked at every delivery. */
  isOwn: (id: string, peer: PeerLease) => boolean;
  timers: Timers;
  retryIntervalMs: number;
  logger: Logger;
}

export function watchPeers(options: WatchPeersOptions, onChange: (change: PeerChange) => void): PeerWatch {
  const { store, timers, logger } = options;
  const set = new PeerSet(logger);
  let closed = false;
  let generation = 0;
  let watch: Watch | undefined;
  let wait: { cancel(): void } | undefined;
  let first = true;
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => { markReady = resolve; });

  const deliver = (cause: PeerChange['cause']): void => {
    const d = set.delta(options.isOwn);
    if (cause !== 'snapshot' && d.added.length + d.updated.length + d.removed.length === 0) return;
    const describe = (ps: readonly PeerLease[]): string[] => ps.map((p) => describeSubnets(p.subnets));
    logger.info({ cause, peers: d.peers.length, added: describe(d.added), updated: describe(d.updated), removed: describe(d.removed) }, 'peer leases changed');
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
        set.reset(listing.leases);
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
