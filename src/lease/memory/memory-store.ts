// An in-memory LeaseStore for unit tests of lease policy: TTLs run on an injected clock, and
// tests can compact history (to exercise re-list) or fail the next calls. The real stores
// (src/lease/etcd2, src/lease/etcd3) pass the same contract tests against a real etcd.
import { WeftError } from '../../errors.ts';
import { assertValueFits, MAX_CONFIG_BYTES, oversizedValue, type LeaseListing, type LeaseStore, type SkippedKey, type StoredLease, type Watch, type WatchEvent, type WatchHandlers } from '../store.ts';

/** The most bytes of network config the stores read (as the etcd stores do). */
/** Why a value cannot be handed over as a lease (as the etcd stores judge it), or null. */
const valueProblem = (value: string): string | null => oversizedValue(Buffer.byteLength(value));

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

interface Entry { value: string; expiresAt: number | null; version: number }

export class MemoryLeaseStore implements LeaseStore {
  readonly kind = 'memory';
  readonly #clock: Clock;
  readonly #keys = new Map<string, Entry>();
  readonly #history: { revision: number; event: WatchEvent }[] = [];
  readonly #watchers = new Set<{ after: number; handlers: WatchHandlers }>();
  #revision = 0;
  #compacted = 0;
  #config: string | null;
  /** Makes the next n calls fail, as an unreachable etcd would. */
  failNext = 0;

  constructor(options: { config?: string | null; clock?: Clock } = {}) {
    this.#config = options.config ?? null;
    this.#clock = options.clock ?? systemClock;
  }

  setConfig(config: string | null): void {
    this.#config = config;
  }

  /** Expires keys whose TTL has run out, emitting delete events, as etcd does. */
  expire(): void {
    const now = this.#clock.now();
    for (const [key, e] of this.#keys) {
      if (e.expiresAt !== null && e.expiresAt <= now) {
        this.#keys.delete(key);
        if (key.startsWith('subnets/')) this.#emit({ type: 'delete', key, revision: ++this.#revision });
      }
    }
  }

  /** Forgets history up to now: watchers from an older revision must re-list. */
  compact(): void {
    this.#compacted = this.#revision;
    this.#history.length = 0;
    for (const w of this.#watchers) w.handlers.onReset('compacted');
  }

  async getConfig(): Promise<string | null> {
    this.#maybeFail();
    if (this.#config !== null && Buffer.byteLength(this.#config) > MAX_CONFIG_BYTES) {
      throw new WeftError('WEFT_INVALID_CONFIG', `memory store: the network config is ${Buffer.byteLength(this.#config)} bytes; weft reads at most ${MAX_CONFIG_BYTES}`);
    }
    return this.#config;
  }

  /** Always exact expiries: they cost nothing here. */
  async listLeases(): Promise<LeaseListing> {
    this.#maybeFail();
    this.expire();
    const leases: StoredLease[] = [];
    const skipped: SkippedKey[] = [];
    for (const [key, e] of this.#keys) {
      if (!key.startsWith('subnets/')) continue;
      const reason = valueProblem(e.value);
      if (reason === null) leases.push(this.#stored(key, e));
      else skipped.push({ key, reason });
    }
    return { leases, revision: this.#revision, ...(skipped.length > 0 ? { skipped } : {}) };
  }

  async create(key: string, value: string, ttlSeconds: number | null): Promise<boolean> {
    this.#maybeFail();
    this.expire();
    if (this.#keys.has(key)) return false;
    this.#write(key, checked(key, value), ttlSeconds);
    return true;
  }

  async put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease> {
    this.#maybeFail();
    this.expire();
    return this.#write(key, checked(key, value), ttlSeconds);
  }

  /** Writes any value, as another etcd client could (tests of oversized values). */
  writeRaw(key: string, value: string, ttlSeconds: number | null): void {
    this.expire();
    this.#write(key, value, ttlSeconds);
  }

  async delete(key: string): Promise<void> {
    this.#maybeFail();
    if (this.#keys.delete(key) && key.startsWith('subnets/')) this.#emit({ type: 'delete', key, revision: ++this.#revision });
  }

  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch {
    const watcher = { after: afterRevision, handlers };
    if (afterRevision < this.#compacted) {
      queueMicrotask(() => handlers.onReset('compacted'));
      return { close: () => undefined };
    }
    this.#watchers.add(watcher);
    const backlog = this.#history.filter((h) => h.revision > afterRevision);
    queueMicrotask(() => {
      for (const h of backlog) if (this.#watchers.has(watcher)) handlers.onEvent(h.event);
    });
    return { close: () => void this.#watchers.delete(watcher) };
  }

  async close(): Promise<void> {
    this.#watchers.clear();
  }

  #write(key: string, value: string, ttlSeconds: number | null): StoredLease {
    const entry: Entry = { value, expiresAt: ttlSeconds === null ? null : this.#clock.now() + ttlSeconds * 1000, version: ++this.#revision };
    this.#keys.set(key, entry);
    const lease = this.#stored(key, entry);
    const reason = valueProblem(value);
    if (key.startsWith('subnets/')) {
      this.#emit(reason === null ? { type: 'put', lease, revision: entry.version } : { type: 'skip', key, reason, revision: entry.version });
    }
    return lease;
  }

  #stored(key: string, e: Entry): StoredLease {
    return { key, value: e.value, hasTtl: e.expiresAt !== null, expiresAt: e.expiresAt, version: e.version };
  }

  #emit(event: WatchEvent): void {
    this.#history.push({ revision: event.revision, event });
    for (const w of this.#watchers) queueMicrotask(() => { if (this.#watchers.has(w)) w.handlers.onEvent(event); });
  }

  #maybeFail(): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('memory store: injected failure (store unreachable)');
    }
  }
}

function checked(key: string, value: string): string {
  assertValueFits('memory store', key, value);
  return value;
}
