// The seam between lease policy (src/lease/manager.ts) and a key-value store (etcd v2, etcd v3,
// or the in-memory store for unit tests). A store knows keys, values, TTLs and revisions; it
// knows nothing of subnets, public IPs or backends. Keys are relative to the store's prefix
// (default /coreos.com/network): "config", "subnets/10.16.85.0-24".

/** One key under <prefix>/subnets/. */
export interface StoredLease {
  /** Relative key, e.g. "subnets/10.16.85.0-24". */
  key: string;
  /** The lease JSON exactly as stored. */
  value: string;
  /**
   * When the key expires, in ms since the epoch (Date.now() scale); null for a key with no TTL,
   * which flannel calls a reservation and which is never taken by anyone else.
   */
  expiresAt: number | null;
  /** The store's version of this key (v3 mod_revision, v2 modifiedIndex): compare-and-swap token. */
  version: number;
}

/**
 * The most bytes one stored value may have. flannel's leases are under 300 bytes; anything
 * far larger is hostile or broken, and must not be able to push a listing over a client's
 * message limit. A store refuses such a key by name (SkippedKey) instead of failing whole.
 */
export const MAX_LEASE_VALUE_BYTES = 8 * 1024;

/** A key a store could not hand over (too large, not decodable), named with why. */
export interface SkippedKey {
  key: string;
  reason: string;
}

export interface LeaseListing {
  leases: StoredLease[];
  /** The store revision of the listing; watch from revision + 1. */
  revision: number;
  /** Keys left out of `leases`, each with why (an oversized value, say); absent when none. */
  skipped?: SkippedKey[];
}

export type WatchEvent =
  | { type: 'put'; lease: StoredLease; revision: number }
  | { type: 'delete'; key: string; revision: number }
  /** A key was written with a value the store refuses to hand over: treat it as gone, and report it. */
  | { type: 'skip'; key: string; reason: string; revision: number };

export interface WatchHandlers {
  onEvent(event: WatchEvent): void;
  /**
   * The store cannot continue from the asked revision (v3 compaction, v2 "event index
   * cleared"): the caller must re-list and start a new watch.
   */
  onReset(reason: string): void;
  /** Connection trouble; the store keeps retrying with backoff. For logs and status. */
  onError?(error: Error): void;
}

export interface Watch {
  close(): void;
}

export interface LeaseStore {
  readonly kind: 'etcd-v2' | 'etcd-v3' | 'memory';
  /** The network config JSON at <prefix>/config, or null when the key does not exist. */
  getConfig(): Promise<string | null>;
  /** Every key under <prefix>/subnets/. */
  listLeases(): Promise<LeaseListing>;
  /**
   * Creates key with value only if it does not exist (v3 txn version==0, v2 prevExist=false).
   * ttlSeconds null = no TTL. Returns false when the key already exists (a lost race).
   */
  create(key: string, value: string, ttlSeconds: number | null): Promise<boolean>;
  /** Writes unconditionally (renewal, reuse): a fresh TTL, or none when ttlSeconds is null. */
  put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease>;
  /** Removes key; a missing key is not an error. */
  delete(key: string): Promise<void>;
  /** Events for keys under <prefix>/subnets/ after `revision` (exclusive). */
  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch;
  close(): Promise<void>;
}
