// LeaseManager: this node's subnet lease over any LeaseStore (docs/flannel-compat.md §1.5–§1.8).
//   acquire()  – flannel's acquisition (src/lease/acquire.ts).
//   start()    – keeps the lease: renews at expiry − margin, retries every retryInterval on
//                failure (a failure is logged, never thrown), and watches our own key.
//   watchPeers – the other nodes' leases (src/lease/peers.ts).
// Revocation: our key deleted (by an operator, or by etcd when the TTL ran out) or rewritten by
// another node means the lease is gone. flanneld exits and lets its supervisor restart it; weft
// emits `revoked`, logs it loudly and, unless reacquireOnRevoke is false, acquires again at once
// with the lost subnet as the preferred one: the same subnet when it is still free, otherwise a
// new one (then `reacquired` has sameSubnet false and the agent must move the node: subnet.env,
// the bridge, the backend). A renewal is never a blind write over an expired lease: once our own
// clock says the lease ran out we take the acquisition path, which checks that the subnet is
// still free (flannel #1289 and its renewal twin).
import { EventEmitter } from 'node:events';
import { WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { formatIp, parseIp, type Cidr } from '../net/cidr.ts';
import { acquireLease, type HeldLease } from './acquire.ts';
import { describeSubnets, formatLeaseValue, parseLeaseValue, subnetsId, type LeaseAttrs } from './lease.ts';
import type { NetworkConfig } from './network-config.ts';
import { watchPeers, type PeerChange, type PeerWatch } from './peers.ts';
import type { LeaseStore, StoredLease, Watch, WatchEvent } from './store.ts';
import { delay, MAX_TIMER_MS, systemTimers, type Timers } from './timers.ts';

export type { HeldLease } from './acquire.ts';

export const DEFAULT_TTL_SECONDS = 24 * 60 * 60;
export const DEFAULT_RENEW_MARGIN_SECONDS = 60 * 60;
export const DEFAULT_RETRY_INTERVAL_SECONDS = 60;

export interface LeaseManagerOptions {
  store: LeaseStore;
  config: NetworkConfig;
  /** This node's IPv4 public IP (flannel's PublicIP); required when the network has IPv4. */
  publicIp?: string | undefined;
  /** Its IPv6 public IP; required when the network has IPv6. */
  publicIpv6?: string | undefined;
  /** "vxlan" or "host-gw": what peers read in BackendType. */
  backendType: string;
  /** Published as BackendData, in the backend's own format (the data plane's PrepareResult.backendData). */
  backendData?: unknown;
  backendV6Data?: unknown;
  /** The subnets of the node's previous subnet.env (a SubnetEnv fits), to get them back if free. */
  previous?: { subnet?: Cidr | undefined; ipv6Subnet?: Cidr | undefined } | undefined;
  ttlSeconds?: number;
  renewMarginSeconds?: number;
  retryIntervalSeconds?: number;
  /** Acquire again after a revocation (default true); false = only emit `revoked` (flannel exits). */
  reacquireOnRevoke?: boolean;
  timers?: Timers;
  /** In [0, 1); picks among free subnets. */
  random?: () => number;
  logger?: Logger;
}

/** expired: not renewed in time; deleted: someone removed the key; taken: another node wrote it. */
export type RevokeReason = 'expired' | 'deleted' | 'taken';

export interface RevokedEvent { lease: HeldLease; reason: RevokeReason; detail: string; reacquiring: boolean }
export interface ReacquiredEvent { lease: HeldLease; previous: HeldLease; sameSubnet: boolean }

export interface LeaseManagerEvents {
  renewed: [lease: HeldLease];
  revoked: [event: RevokedEvent];
  reacquired: [event: ReacquiredEvent];
  /** Our key was rewritten with another value but the same public IP: two nodes sharing an IP? */
  conflict: [event: { lease: HeldLease; value: string }];
  /** A renewal or a re-acquisition failed (it is retried); for status. `renewed`/`reacquired` end it. */
  trouble: [event: { during: 'renew' | 'reacquire'; error: Error }];
}

type State = 'idle' | 'held' | 'reacquiring' | 'revoked';

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new WeftError('WEFT_INVALID_CONFIG', `lease: ${name} ${value} must be a positive number of seconds`);
  return value;
}

export class LeaseManager extends EventEmitter<LeaseManagerEvents> {
  readonly #store: LeaseStore;
  readonly #config: NetworkConfig;
  #attrs: LeaseAttrs;
  readonly #previous: LeaseManagerOptions['previous'];
  readonly #ttl: number;
  readonly #marginMs: number;
  readonly #retryMs: number;
  readonly #reacquire: boolean;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #log: Logger;
  #state: State = 'idle';
  #lease: HeldLease | undefined;
  #running = false;
  /** Bumped whenever the current renew/monitor/re-acquire work must stop. */
  #gen = 0;
  #timer: unknown;
  #watch: Watch | undefined;
  #wait: { cancel(): void } | undefined;
  #conflictValue: string | undefined;
  /** Values this node published before a republish: seen on our key, they are our own late writes. */
  readonly #superseded = new Set<string>();
  #writes: Promise<unknown> = Promise.resolve();
  readonly #peerWatches = new Set<PeerWatch>();

  constructor(options: LeaseManagerOptions) {
    super();
    this.#store = options.store;
    this.#config = options.config;
    const ip = (text: string | undefined, family: 4 | 6, name: string): string | null => {
      if (text === undefined || text === '') return null;
      const parsed = parseIp(text);
      if (parsed.family !== family) throw new WeftError('WEFT_INVALID_CONFIG', `lease: ${name} "${text}" is not an IPv${family} address`);
      return formatIp(parsed);
    };
    const publicIp = ip(options.publicIp, 4, 'publicIp');
    const publicIpv6 = ip(options.publicIpv6, 6, 'publicIpv6');
    if (this.#config.ipv4 && publicIp === null) throw new WeftError('WEFT_INVALID_CONFIG', 'lease: the network has IPv4, so this node needs an IPv4 public IP (publicIp)');
    if (this.#config.ipv6 && publicIpv6 === null) throw new WeftError('WEFT_INVALID_CONFIG', 'lease: the network has IPv6 ("EnableIPv6"), so this node needs an IPv6 public IP (publicIpv6)');
    this.#attrs = {
      publicIp: publicIp ?? '0.0.0.0',
      publicIpv6,
      backendType: options.backendType,
      backendData: options.backendData,
      backendV6Data: options.backendV6Data,
    };
    this.#previous = options.previous;
    this.#ttl = positive('ttlSeconds', options.ttlSeconds ?? DEFAULT_TTL_SECONDS);
    const margin = positive('renewMarginSeconds', options.renewMarginSeconds ?? DEFAULT_RENEW_MARGIN_SECONDS);
    if (margin >= this.#ttl) throw new WeftError('WEFT_INVALID_CONFIG', `lease: renewMarginSeconds ${margin} must be less than ttlSeconds ${this.#ttl}`);
    this.#marginMs = margin * 1000;
    this.#retryMs = positive('retryIntervalSeconds', options.retryIntervalSeconds ?? DEFAULT_RETRY_INTERVAL_SECONDS) * 1000;
    this.#reacquire = options.reacquireOnRevoke ?? true;
    this.#timers = options.timers ?? systemTimers;
    this.#random = options.random ?? Math.random;
    this.#log = options.logger ?? silentLogger;
  }

  /** The lease held now (undefined before acquire() and while re-acquiring). */
  get lease(): HeldLease | undefined {
    return this.#state === 'held' ? this.#lease : undefined;
  }

  /** The value this node publishes. */
  get value(): string {
    return formatLeaseValue(this.#attrs);
  }

  /**
   * Publishes new backend attributes (a live backend change) for the lease held now: the next
   * write of the key carries them, and that write happens at once.
   */
  async republish(backendType: string, backendData: unknown): Promise<void> {
    this.#attrs = { ...this.#attrs, backendType, backendData };
    const lease = this.#lease;
    if (!lease || this.#state !== 'held') return; // a re-acquisition picks the new attributes up
    // Our own key's watch compares against the held value: switch to the new one before writing
    // it, and remember the old one, whose write may still be landing (a renewal in flight).
    this.#superseded.add(lease.value);
    if (this.#superseded.size > 4) this.#superseded.delete(this.#superseded.values().next().value as string);
    this.#lease = { ...lease, attrs: this.#attrs, value: formatLeaseValue(this.#attrs) };
    const { lease: written, stored } = await this.#write();
    written.expiresAt = stored.expiresAt;
    this.#emit('renewed', written);
  }

  /**
   * Writes the held lease as it is when the write starts. Writes run one at a time, so the
   * last one issued lands last: a renewal in flight cannot put an older value over a newer one.
   */
  #write(): Promise<{ lease: HeldLease; stored: StoredLease }> {
    const run = this.#writes.then(async () => {
      const lease = this.#lease;
      if (!lease || this.#state !== 'held') throw new WeftError('WEFT_NOT_READY', 'lease: no lease is held any more (revoked meanwhile)');
      const stored = await this.#store.put(lease.key, lease.value, lease.expiresAt === null ? null : this.#ttl);
      return { lease, stored };
    });
    this.#writes = run.then(() => undefined, () => undefined);
    return run;
  }

  async acquire(): Promise<HeldLease> {
    if (this.#running) throw new WeftError('WEFT_INTERNAL', 'lease: acquire() while started; the manager keeps the lease itself');
    const lease = await acquireLease(this.#store, this.#request(this.#previous));
    this.#lease = lease;
    this.#state = 'held';
    return lease;
  }

  /**
   * Renews and watches the lease until stop(). `watchFrom`: the revision of the listing the
   * acquisition used, so that the watch on our own key needs no listing of its own.
   */
  start(options: { watchFrom?: number } = {}): void {
    if (this.#running) return;
    if (this.#state !== 'held') throw new WeftError('WEFT_INTERNAL', 'lease: start() before acquire()');
    this.#running = true;
    const gen = ++this.#gen;
    void this.#monitor(gen, options.watchFrom);
    this.#scheduleRenew(gen);
  }

  stop(): void {
    this.#running = false;
    this.#halt();
    for (const w of this.#peerWatches) w.close();
    this.#peerWatches.clear();
  }

  /**
   * Watches the other nodes' leases. Filtered out as this node's own: the subnet it holds (or
   * just lost), and any lease carrying its public IP (a lease being re-acquired, a stale one);
   * a route to ourselves over the underlay makes no sense either way. Leases outside the
   * config's Network (or otherwise unsafe to route) are refused and listed in `rejected`.
   */
  watchPeers(onChange: (change: PeerChange) => void): PeerWatch {
    const inner = watchPeers({
      store: this.#store,
      isOwn: (id, peer) => (this.#lease !== undefined && id === subnetsId(this.#lease.subnets)) || this.#isOurs(peer.attrs),
      bounds: this.#config,
      timers: this.#timers,
      retryIntervalMs: this.#retryMs,
      logger: this.#log,
    }, onChange);
    const handle: PeerWatch = {
      ready: inner.ready,
      refresh: () => inner.refresh(),
      close: () => { inner.close(); this.#peerWatches.delete(handle); },
    };
    this.#peerWatches.add(handle);
    return handle;
  }

  /** A lease value carries our identity (the IPv4 public IP, or the IPv6 one on an IPv6-only network). */
  #isOurs(a: LeaseAttrs): boolean {
    return this.#config.ipv4 ? a.publicIp === this.#attrs.publicIp : a.publicIpv6 === this.#attrs.publicIpv6;
  }

  #request(previous: LeaseManagerOptions['previous']) {
    return { config: this.#config, attrs: this.#attrs, previous, ttlSeconds: this.#ttl, random: this.#random, clock: this.#timers, logger: this.#log };
  }

  #halt(): void {
    this.#gen++;
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#watch?.close();
    this.#watch = undefined;
    this.#wait?.cancel();
    this.#wait = undefined;
  }

  #emit<K extends keyof LeaseManagerEvents>(event: K, ...args: LeaseManagerEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: LeaseManagerEvents[K]) => boolean)(event, ...args);
    } catch (e) {
      this.#log.error({ err: e, event }, `a "${event}" listener failed`);
    }
  }

  // ---- renewal ----

  #scheduleRenew(gen: number): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    const lease = this.#lease;
    if (gen !== this.#gen || !lease) return;
    if (lease.expiresAt === null) {
      this.#log.info({ key: lease.key }, `lease ${describeSubnets(lease.subnets)} is a reservation (no TTL): nothing to renew`);
      return;
    }
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, lease.expiresAt - this.#marginMs - this.#timers.now()));
    this.#timer = this.#timers.setTimeout(() => void this.#renew(gen), wait);
  }

  async #renew(gen: number): Promise<void> {
    const lease = this.#lease;
    if (gen !== this.#gen || !lease || lease.expiresAt === null) return;
    const now = this.#timers.now();
    if (now >= lease.expiresAt) {
      this.#revoke('expired', `it expired at ${new Date(lease.expiresAt).toISOString()} before a renewal got through`);
      return;
    }
    let stored: StoredLease;
    let written: HeldLease;
    try {
      ({ lease: written, stored } = await this.#write());
    } catch (e) {
      if (gen !== this.#gen) return;
      const left = lease.expiresAt - this.#timers.now();
      const wait = Math.max(0, Math.min(this.#retryMs, left));
      this.#log.error({ err: e, key: lease.key, expiresInSeconds: Math.round(left / 1000) },
        `renewing lease ${describeSubnets(lease.subnets)} failed; retrying in ${Math.round(wait / 1000)} s`);
      this.#emit('trouble', { during: 'renew', error: e as Error });
      this.#timer = this.#timers.setTimeout(() => void this.#renew(gen), wait);
      return;
    }
    if (gen !== this.#gen) return;
    written.expiresAt = stored.expiresAt;
    this.#log.info({ key: written.key, expiresAt: stored.expiresAt }, `renewed lease ${describeSubnets(written.subnets)}`);
    this.#emit('renewed', written);
    this.#scheduleRenew(gen);
  }

  // ---- own-lease monitoring ----

  /**
   * Watches our own key. `from` is a revision at or before our acquisition's write (the
   * listing the acquisition looked at): watching from there delivers that write and all
   * after it, so no listing is needed first.
   */
  async #monitor(gen: number, from?: number): Promise<void> {
    for (;;) {
      if (gen !== this.#gen) return;
      try {
        let revision = from;
        if (revision === undefined) {
          const listing = await this.#store.listLeases();
          if (gen !== this.#gen || !this.#lease) return;
          const key = this.#lease.key;
          this.#checkOwn(listing.leases.find((l) => l.key === key), gen);
          if (gen !== this.#gen) return;
          revision = listing.revision;
        }
        from = undefined; // a reset lists again
        this.#watch = this.#store.watchLeases(revision, {
          onEvent: (event) => { if (gen === this.#gen) this.#onEvent(event, gen); },
          onReset: (reason) => {
            if (gen !== this.#gen) return;
            this.#log.warn({ reason }, 'own lease watch fell behind; listing again');
            this.#watch?.close();
            void this.#monitor(gen);
          },
          onError: (error) => this.#log.warn({ err: error }, 'own lease watch: store trouble (retrying)'),
        });
        return;
      } catch (e) {
        this.#log.warn({ err: e }, `checking our own lease failed; retrying in ${this.#retryMs / 1000} s`);
        const w = delay(this.#timers, this.#retryMs);
        this.#wait = w;
        if (!(await w.done)) return;
      }
    }
  }

  #onEvent(event: WatchEvent, gen: number): void {
    if (!this.#lease) return;
    if (event.type === 'delete' || event.type === 'skip') {
      // A value the store refuses to hand over is no lease of ours any more.
      if (event.key === this.#lease.key) this.#checkOwn(undefined, gen);
    } else if (event.lease.key === this.#lease.key) {
      this.#checkOwn(event.lease, gen);
    }
  }

  /** Our key as the store has it now: missing, someone else's, or ours (maybe with a new TTL). */
  #checkOwn(stored: StoredLease | undefined, gen: number): void {
    const lease = this.#lease;
    if (!lease || this.#state !== 'held') return;
    if (!stored) {
      // Inside the renewal window the likely cause is the TTL; before it, someone deleted the key.
      const late = lease.expiresAt !== null && this.#timers.now() >= lease.expiresAt - this.#marginMs;
      this.#revoke(late ? 'expired' : 'deleted', late ? 'the store expired it (renewals did not get through)' : 'its key was deleted from the store');
      return;
    }
    if (stored.value !== lease.value && !this.#superseded.has(stored.value)) {
      const attrs = parseLeaseValue(stored.value);
      if (!attrs.ok || !this.#isOurs(attrs.value)) {
        const who = attrs.ok ? `a node with public IP ${this.#config.ipv4 ? attrs.value.publicIp : attrs.value.publicIpv6}` : 'an unreadable value';
        this.#revoke('taken', `its key was overwritten by ${who}`);
        return;
      }
      if (this.#conflictValue !== stored.value) {
        this.#conflictValue = stored.value;
        this.#log.error({ key: lease.key, ours: lease.value, theirs: stored.value },
          `our lease ${describeSubnets(lease.subnets)} was rewritten with another value for the same public IP: do two nodes share public IP ${this.#attrs.publicIp}? Give each its own (--public-ip)`);
        this.#emit('conflict', { lease, value: stored.value });
      }
    }
    // A key with a TTL whose expiry the store did not look up says nothing about our expiry:
    // only a key without a TTL is a reservation.
    const expiresAt = stored.hasTtl ? stored.expiresAt ?? lease.expiresAt : null;
    if (expiresAt !== lease.expiresAt) {
      if (expiresAt === null) this.#log.info({ key: lease.key }, `lease ${describeSubnets(lease.subnets)} became a reservation`);
      lease.expiresAt = expiresAt;
      this.#scheduleRenew(gen);
    }
  }

  // ---- revocation ----

  #revoke(reason: RevokeReason, detail: string): void {
    const lost = this.#lease;
    if (!lost || this.#state !== 'held') return;
    this.#halt();
    const gen = this.#gen;
    this.#state = this.#reacquire ? 'reacquiring' : 'revoked';
    this.#log.error({ key: lost.key, reason }, `LEASE REVOKED: lease ${describeSubnets(lost.subnets)} is gone: ${detail}. ` +
      (this.#reacquire ? 'Acquiring a lease again (the same subnet if it is still free).' : 'Not acquiring again (reacquireOnRevoke is off).'));
    this.#emit('revoked', { lease: lost, reason, detail, reacquiring: this.#reacquire });
    if (this.#reacquire) void this.#reacquireLoop(lost, gen);
  }

  async #reacquireLoop(lost: HeldLease, gen: number): Promise<void> {
    for (;;) {
      if (gen !== this.#gen) return;
      let lease: HeldLease;
      try {
        lease = await acquireLease(this.#store, this.#request({ subnet: lost.subnets.ipv4, ipv6Subnet: lost.subnets.ipv6 }));
      } catch (e) {
        if (gen !== this.#gen) return;
        this.#log.error({ err: e }, `re-acquiring a lease failed; retrying in ${this.#retryMs / 1000} s`);
        this.#emit('trouble', { during: 'reacquire', error: e as Error });
        const w = delay(this.#timers, this.#retryMs);
        this.#wait = w;
        if (!(await w.done)) return;
        continue;
      }
      if (gen !== this.#gen) return;
      this.#lease = lease;
      this.#state = 'held';
      this.#conflictValue = undefined;
      const sameSubnet = subnetsId(lease.subnets) === subnetsId(lost.subnets);
      if (sameSubnet) {
        this.#log.warn({ key: lease.key }, `re-acquired the same subnet ${describeSubnets(lease.subnets)} after the revocation`);
      } else {
        this.#log.error({ key: lease.key, previous: lost.key },
          `re-acquired a DIFFERENT subnet: ${describeSubnets(lost.subnets)} -> ${describeSubnets(lease.subnets)}; ` +
          'pods still holding addresses of the old subnet lose connectivity until they are recreated');
      }
      this.#emit('reacquired', { lease, previous: lost, sameSubnet });
      for (const w of this.#peerWatches) w.refresh();
      if (this.#running) {
        void this.#monitor(gen);
        this.#scheduleRenew(gen);
      }
      return;
    }
  }
}
