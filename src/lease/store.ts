// The seam between lease policy (src/lease/manager.ts) and a key-value store (etcd v2, etcd v3,
// or the in-memory store for unit tests). A store knows keys, values, TTLs and revisions; it
// knows nothing of subnets, public IPs or backends. Keys are relative to the store's prefix
// (default /coreos.com/network): "config", "subnets/10.16.85.0-24".
import { WeftError } from '../errors.ts';

/** One key under <prefix>/subnets/. */
export interface StoredLease {
  /** Relative key, e.g. "subnets/10.16.85.0-24". */
  key: string;
  /** The lease JSON exactly as stored. */
  value: string;
  /**
   * Whether the key has a TTL. false: a reservation (flannel's word), never renewed, never
   * expiring, never taken by anyone else. Always exact, whatever the listing options: tell
   * reservations apart with this, not with expiresAt.
   */
  hasTtl: boolean;
  /**
   * When the key expires, in ms since the epoch (Date.now() scale). null when the key has no TTL
   * (hasTtl false), and also when it has one the store did not look up (see ListLeasesOptions).
   * Always exact in put()'s answer, for keys this store wrote itself (our own lease, in listings
   * and watch events alike), and in a listing made with { expiry: true }.
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

/** The most bytes the network config at <prefix>/config may have (flannel's are a few hundred). */
export const MAX_CONFIG_BYTES = 64 * 1024;

/** Why a lease value of `bytes` bytes (at least, when `atLeast`) cannot be handed over, or null when it fits. */
export function oversizedValue(bytes: number, atLeast = false): string | null {
  if (bytes <= MAX_LEASE_VALUE_BYTES) return null;
  return `its value is ${atLeast ? 'at least ' : ''}${bytes} bytes, over the ${MAX_LEASE_VALUE_BYTES}-byte bound on a lease (flannel's are under 300); `
    + 'remove or rewrite the key with etcdctl';
}

/** What a store writes is bounded as what it reads: weft never writes a lease it would refuse. */
export function assertValueFits(store: string, key: string, value: string): void {
  const size = Buffer.byteLength(value);
  if (size > MAX_LEASE_VALUE_BYTES) {
    throw new WeftError('WEFT_INTERNAL', `${store}: refusing to write ${size} bytes to ${key}: a lease value is at most ${MAX_LEASE_VALUE_BYTES} bytes`);
  }
}

/** A key a store could not hand over (too large, not decodable), named with why. */
export interface SkippedKey {
  key: string;
  reason: string;
}

export interface ListLeasesOptions {
  /**
   * true: every key's exact expiresAt, even when finding it costs a call per key (etcd v3 has no
   * batch TimeToLive). Default false: a store may leave expiresAt null for a key with a TTL that
   * some other client wrote (hasTtl still says it has one), so a cold listing of N leases makes no
   * N extra calls. Nothing in the agent needs other nodes' expiry: acquisition only tells
   * reservations (hasTtl false) from leases, peers are routed to whatever their expiry, and our
   * own lease's expiry comes from our own writes.
   */
  expiry?: boolean;
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
  /** Every key under <prefix>/subnets/; expiresAt as ListLeasesOptions says. */
  listLeases(options?: ListLeasesOptions): Promise<LeaseListing>;
  /**
   * Creates key with value only if it does not exist (v3 txn version==0, v2 prevExist=false).
   * ttlSeconds null = no TTL. Returns false when the key already exists (a lost race).
   */
  create(key: string, value: string, ttlSeconds: number | null): Promise<boolean>;
  /** Writes unconditionally (renewal, reuse): a fresh TTL, or none when ttlSeconds is null. */
  put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease>;
  /** Removes key; a missing key is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Events for keys under <prefix>/subnets/ after `revision` (exclusive). A put's lease has
   * expiresAt as a listing without { expiry: true } would (exact for keys this store wrote).
   */
  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch;
  close(): Promise<void>;
}
