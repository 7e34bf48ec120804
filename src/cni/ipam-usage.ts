// The node's pod address usage for the agent's metric (weft_ipam_addresses), read at scrape time
// without a directory scan per scrape: a cached total, refreshed in the background
//   - after every request that may have changed it (ADD, DEL, GC), coalesced so a burst of
//     requests costs at most one scan in flight and one after it;
//   - when a scrape finds it older than the TTL (other writers: host-local side by side);
//   - for free by STATUS, which computes usage anyway.
// A scrape therefore never waits, and sees a value at most one refresh old. Nothing is scanned
// until the first get() (a process without metrics, like the standalone plugin, pays nothing),
// so the very first scrape may find no value yet; it starts the first scan. The network
// reported is the one the latest request with known ranges served: the server learns which
// network and ranges it serves only from requests, so before the first one there is nothing.
import type { Ipam, RangeSetUsage } from '../ipam/ipam.ts';
import { totalUsage } from '../ipam/ipam.ts';

export interface IpamUsageTotals {
  used: number;
  free: number;
}

export interface IpamUsageCacheOptions {
  /** A scrape older than this starts a refresh. */
  ttlMs: number;
  clock: () => number;
  /** A refresh failed (the store cannot be listed); the last value stays. */
  onError: (e: Error) => void;
}

interface Target {
  key: string;
  ipam: Ipam;
}

export class IpamUsageCache {
  readonly #o: IpamUsageCacheOptions;
  #target: Target | undefined;
  #value: IpamUsageTotals | undefined;
  #fetchedAt = -Infinity;
  #refreshing: Promise<void> | undefined;
  #again = false;
  /** Whether anyone reads the usage; until then nothing is scanned. */
  #wanted = false;

  constructor(options: IpamUsageCacheOptions) {
    this.#o = options;
  }

  /** A request served this network (key: store and ranges); it becomes the one reported. */
  served(key: string, ipam: Ipam): void {
    if (this.#target?.key === key) {
      this.#target.ipam = ipam;
      return;
    }
    this.#target = { key, ipam };
    this.#value = undefined;
    this.#fetchedAt = -Infinity;
    this.#refresh();
  }

  /** A request may have changed the addresses in use. */
  changed(): void {
    if (this.#target) this.#refresh();
  }

  /** A reading someone took anyway (STATUS), for the network under key. */
  record(key: string, usage: readonly RangeSetUsage[]): void {
    if (this.#target?.key !== key) return;
    this.#value = totalUsage(usage);
    this.#fetchedAt = this.#o.clock();
  }

  /** The latest total; undefined until a request has told which network is served. Never waits. */
  get(): IpamUsageTotals | undefined {
    this.#wanted = true;
    if (this.#target && this.#o.clock() - this.#fetchedAt >= this.#o.ttlMs) this.#refresh();
    return this.#value;
  }

  /** Resolves once no refresh is in flight (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#refreshing) await this.#refreshing;
  }

  #refresh(): void {
    if (!this.#wanted) return;
    if (this.#refreshing) {
      // The scan in flight may have read the store before this change: one more after it.
      this.#again = true;
      return;
    }
    const target = this.#target;
    if (!target) return;
    this.#refreshing = target.ipam.usage().then(
      (usage) => {
        if (this.#target?.key !== target.key) return;
        this.#value = totalUsage(usage);
        this.#fetchedAt = this.#o.clock();
      },
      (e: unknown) => {
        // Not retried before the TTL: a broken store must not turn every scrape into a scan.
        this.#fetchedAt = this.#o.clock();
        this.#o.onError(e as Error);
      },
    ).finally(() => {
      this.#refreshing = undefined;
      if (this.#again) {
        this.#again = false;
        this.#refresh();
      }
    });
  }
}
