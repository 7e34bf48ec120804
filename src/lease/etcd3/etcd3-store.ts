// LeaseStore over the etcd v3 API (flannel >= v0.18 layout), with the `etcd3` client.
//
// Keys: <prefix>/config and <prefix>/subnets/<k>, <prefix> path-joined as flannel does with
// Go's path.Join (default /coreos.com/network; a trailing slash is harmless).
// - create: Grant(ttl) + Txn(If Version(key) == 0 Then Put(key, value, lease)); the grant is
//   revoked when the txn loses. ttl null: no lease (a reservation).
// - put: a fresh Grant + Put (the old lease is not revoked, like flannel), or a plain Put.
// - expiresAt: from the grant for our own writes, else TimeToLive per distinct lease id
//   (cached: flannel never extends a lease, it moves the key to a new one). Lease id 0 means a
//   reservation: expiresAt null (flannel bug #1329 treats it as expired).
// - watch: one gRPC watch stream per watchLeases call, from revision + 1 with a prefix range;
//   on stream errors it reconnects with backoff 100 ms -> 5 s from the last revision it
//   delivered; a compacted revision ends the watch with onReset.
import {
  Etcd3, EtcdAuthenticationFailedError, EtcdLeaseInvalidError, EtcdPermissionDeniedError, GRPCUnauthenticatedError, isRecoverableError,
  type IKeyValue, type IOptions, type IWatchResponse, type IDuplexStream, type IWatchRequest } from 'etcd3';
import { posix } from 'node:path';
import { WeftError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../log/logger.ts';
import type { LeaseListing, LeaseStore, StoredLease, Watch, WatchEvent, WatchHandlers } from '../store.ts';
import { LeanLeaseTtlClient } from './lease-ttl.ts';

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';

export interface EtcdTlsMaterial {
  /** PEM CA bundle to verify the server; the system roots when absent. */
  ca?: Buffer;
  /** PEM client certificate and key; used only when both are set. */
  cert?: Buffer;
  key?: Buffer;
}

export interface Etcd3StoreOptions {
  /** Validated client URLs, all http:// or all https:// (see parseEndpoints in ../open-store.ts). */
  endpoints: string[];
  prefix?: string;
  tls?: EtcdTlsMaterial;
  username?: string;
  password?: string;
  logger?: Logger;
  /** Deadline of each unary request; default 10 s. */
  requestTimeoutMs?: number;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** Concurrent TimeToLive requests while listing. */
const TTL_CONCURRENCY = 256;

/** Path-join like Go's path.Join: "/a/b/" + "config" -> "/a/b/config"; "" + "config" -> "config". */
export function joinKey(prefix: string, key: string): string {
  return prefix === '' ? posix.normalize(key) : posix.join(prefix, key);
}

/** "/coreos.com/network/" -> "/coreos.com/network"; "" stays "" (keys then have no leading slash). */
export function normalizePrefix(prefix: string): string {
  const p = posix.normalize(prefix === '' ? '.' : prefix);
  return p === '.' ? '' : p.length > 1 ? p.replace(/\/+$/, '') : p;
}

export class Etcd3LeaseStore implements LeaseStore {
  readonly kind = 'etcd-v3';
  readonly endpoints: readonly string[];
  /** The normalized prefix, e.g. "/coreos.com/network". */
  readonly prefix: string;
  readonly #client: Etcd3;
  readonly #log: Logger;
  readonly #subnetsPrefix: Buffer;
  readonly #subnetsEnd: Buffer;
  readonly #expiry: LeaseExpiryCache;
  readonly #watches = new Set<V3Watch>();
  readonly #lean: LeanLeaseTtlClient;
  /** Consecutive failures of the lean TimeToLive path; past 3 it is not used any more. */
  #leanFailures = 0;
  #token: Promise<string | undefined> | undefined;

  constructor(options: Etcd3StoreOptions) {
    if (options.endpoints.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', 'etcd v3: no endpoints given (--etcd-endpoints)');
    this.endpoints = [...options.endpoints];
    this.prefix = normalizePrefix(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.#log = options.logger ?? silentLogger;
    this.#subnetsPrefix = Buffer.from(`${this.#abs('subnets')}/`);
    this.#subnetsEnd = prefixEnd(this.#subnetsPrefix);
    const timeout = options.requestTimeoutMs ?? 10_000;
    const clientOptions: IOptions = {
      hosts: [...this.endpoints],
      dialTimeout: timeout,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': BACKOFF_MIN_MS,
        'grpc.max_reconnect_backoff_ms': BACKOFF_MAX_MS,
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.use_local_subchannel_pool': 1,
      },
      // No circuit breaker (our callers retry on their own schedule); a failed call moves on to
      // the next endpoint, once per endpoint.
      faultHandling: { host: () => passThroughPolicy(1), global: passThroughPolicy(this.endpoints.length) },
    };
    const tls = options.tls;
    if (tls && (tls.ca || (tls.cert && tls.key))) {
      const useClientCert = tls.cert !== undefined && tls.key !== undefined;
      clientOptions.credentials = {
        rootCertificate: tls.ca ?? (null as unknown as Buffer), // null: the system roots
        privateKey: useClientCert ? tls.key : undefined,
        certChain: useClientCert ? tls.cert : undefined,
      };
    }
    if (options.username !== undefined) clientOptions.auth = { username: options.username, password: options.password ?? '' };
    this.#client = new Etcd3(clientOptions);
    this.#expiry = new LeaseExpiryCache((id) => this.#timeToLive(id));
    const username = options.username;
    const password = options.password ?? '';
    this.#lean = new LeanLeaseTtlClient({
      endpoints: this.endpoints,
      ...(tls ? { tls } : {}),
      timeoutMs: timeout,
      ...(username === undefined ? {} : {
        token: () => (this.#token ??= this.#client.auth.authenticate({ name: username, password }).then((r) => r.token)),
        invalidateToken: () => { this.#token = undefined; },
      }),
    });
  }

  async getConfig(): Promise<string | null> {
    const res = await this.#call('get config', () => this.#client.kv.range({ key: Buffer.from(this.#abs('config')) }));
    const kv = res.kvs[0];
    return kv ? kv.value.toString('utf8') : null;
  }

  async listLeases(): Promise<LeaseListing> {
    const res = await this.#call('list leases', () => this.#client.kv.range({ key: this.#subnetsPrefix, range_end: this.#subnetsEnd }));
    const revision = toNumber(res.header.revision, 'header.revision');
    this.#expiry.retain(res.kvs.map((kv) => kv.lease));
    const expiries = await this.#call('list leases (lease TTLs)', () => this.#expiry.many(res.kvs.map((kv) => kv.lease)));
    const leases = res.kvs.map((kv) => this.#stored(kv, expiries.get(kv.lease) ?? null));
    return { leases, revision };
  }

  async create(key: string, value: string, ttlSeconds: number | null): Promise<boolean> {
    const abs = Buffer.from(this.#abs(key));
    const grant = ttlSeconds === null ? null : await this.#grant(ttlSeconds);
    let succeeded: boolean;
    try {
      const res = await this.#call('create', () => this.#client.kv.txn({
        compare: [{ key: abs, target: 'Version', result: 'Equal', version: 0 }],
        success: [{ request_put: { key: abs, value: Buffer.from(value), lease: grant?.id ?? 0 } }],
        failure: [],
      }));
      succeeded = res.succeeded;
    } catch (e) {
      if (grant) this.#revoke(grant.id);
      throw e;
    }
    if (!succeeded && grant) this.#revoke(grant.id);
    return succeeded;
  }

  async put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease> {
    const abs = Buffer.from(this.#abs(key));
    const grant = ttlSeconds === null ? null : await this.#grant(ttlSeconds);
    const res = await this.#call('put', () => this.#client.kv.put({ key: abs, value: Buffer.from(value), lease: grant?.id ?? 0 }));
    return { key, value, expiresAt: grant?.expiresAt ?? null, version: toNumber(res.header.revision, 'header.revision') };
  }

  async delete(key: string): Promise<void> {
    await this.#call('delete', () => this.#client.kv.deleteRange({ key: Buffer.from(this.#abs(key)) }));
  }

  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch {
    const watch = new V3Watch({
      client: this.#client,
      key: this.#subnetsPrefix,
      rangeEnd: this.#subnetsEnd,
      start: afterRevision + 1,
      handlers,
      toEvent: (type, kv) => this.#event(type, kv),
      describe: (e) => this.#notReady('watch', e),
      log: this.#log,
      onClose: (w) => this.#watches.delete(w),
    });
    this.#watches.add(watch);
    return watch;
  }

  async close(): Promise<void> {
    for (const w of this.#watches) w.close();
    this.#lean.close();
    this.#client.close();
  }

  /** Compacts history up to revision (for tests and maintenance tools). */
  async compact(revision: number): Promise<void> {
    await this.#call('compact', () => this.#client.kv.compact({ revision, physical: true }));
  }

  async #event(type: 'PUT' | 'DELETE', kv: IKeyValue): Promise<WatchEvent> {
    const revision = toNumber(kv.mod_revision, 'mod_revision');
    if (type === 'DELETE') return { type: 'delete', key: this.#rel(kv.key), revision };
    const expiresAt = await this.#expiry.one(kv.lease);
    return { type: 'put', lease: this.#stored(kv, expiresAt), revision };
  }

  #stored(kv: IKeyValue, expiresAt: number | null): StoredLease {
    return { key: this.#rel(kv.key), value: kv.value.toString('utf8'), expiresAt, version: toNumber(kv.mod_revision, 'mod_revision') };
  }

  async #grant(ttlSeconds: number): Promise<{ id: string; expiresAt: number }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new WeftError('WEFT_INVALID_CONFIG', `etcd v3: a lease TTL must be a positive whole number of seconds, not ${ttlSeconds}`);
    }
    const t0 = Date.now();
    const res = await this.#call('grant lease', () => this.#client.leaseClient.leaseGrant({ TTL: ttlSeconds }));
    if (res.error) throw new WeftError('WEFT_NOT_READY', `etcd v3 at ${this.endpoints.join(', ')} refused a ${ttlSeconds} s lease: ${res.error}`);
    const grant = { id: res.ID, expiresAt: t0 + toNumber(res.TTL, 'TTL') * 1000 };
    this.#expiry.remember(grant.id, grant.expiresAt);
    return grant;
  }

  #revoke(id: string): void {
    this.#client.leaseClient.leaseRevoke({ ID: id }).catch((e: unknown) => {
      // Harmless: an unused lease just runs out.
      this.#log.debug({ lease: id, err: (e as Error).message }, 'etcd v3: could not revoke an unused lease');
    });
  }

  async #timeToLive(id: string): Promise<number> {
    const t0 = Date.now();
    let ttl: number | undefined;
    if (this.#leanFailures < 3) {
      try {
        ttl = await this.#lean.timeToLive(id);
        this.#leanFailures = 0;
      } catch (e) {
        this.#leanFailures++;
        this.#log.debug({ lease: id, err: (e as Error).message }, 'etcd v3: lean TimeToLive failed; asking through the etcd3 client');
      }
    }
    if (ttl === undefined) {
      try {
        ttl = toNumber((await this.#client.leaseClient.leaseTimeToLive({ ID: id })).TTL, 'TTL');
      } catch (e) {
        if (!(e instanceof EtcdLeaseInvalidError)) throw e;
        ttl = -1;
      }
    }
    // TTL -1: the lease is gone (expired or revoked); its keys are being deleted.
    return ttl < 0 ? t0 : t0 + ttl * 1000;
  }

  #abs(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').includes('..')) {
      throw new WeftError('WEFT_INTERNAL', `etcd v3: bad relative key ${JSON.stringify(key)}`);
    }
    return joinKey(this.prefix, key);
  }

  #rel(key: Buffer): string {
    const s = key.toString('utf8');
    const head = this.prefix === '' || this.prefix.endsWith('/') ? this.prefix : `${this.prefix}/`;
    if (!s.startsWith(head)) throw new WeftError('WEFT_DECODE', `etcd v3: key ${JSON.stringify(s)} is outside the prefix ${this.prefix}`);
    return s.slice(head.length);
  }

  async #call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw this.#notReady(what, e);
    }
  }

  #notReady(what: string, e: unknown): WeftError {
    if (e instanceof WeftError) return e;
    const err = e as Error;
    if (e instanceof EtcdAuthenticationFailedError || e instanceof EtcdPermissionDeniedError || e instanceof GRPCUnauthenticatedError) {
      return new WeftError('WEFT_INVALID_CONFIG', `etcd v3 at ${this.endpoints.join(', ')} refused ${what}: ${err.message}. `
        + 'Check --etcd-username/--etcd-password and the user\'s permissions on the prefix.', { cause: e });
    }
    return new WeftError('WEFT_NOT_READY', `etcd v3 at ${this.endpoints.join(', ')}: ${what} failed: ${err?.message ?? String(e)}. `
      + 'Check that etcd runs and listens there, the --etcd-endpoints value, and the TLS files '
      + '(--etcd-cafile, --etcd-certfile, --etcd-keyfile).', { cause: e });
  }
}

/** The first key after every key that starts with prefix (etcd's WithPrefix range end). */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function toNumber(s: string | number, field: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new WeftError('WEFT_DECODE', `etcd v3: ${field} is not an integer: ${JSON.stringify(s)}`);
  return n;
}

type FaultPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A cockatiel-shaped policy: runs fn, retrying recoverable errors up to attempts times in all. */
function passThroughPolicy(attempts: number): FaultPolicy {
  const none = () => ({ dispose: () => undefined });
  const policy = {
    onSuccess: none,
    onFailure: none,
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      const context = { signal: signal ?? new AbortController().signal };
      for (let attempt = 1; ; attempt++) {
        try {
          return await fn(context);
        } catch (e) {
          if (attempt >= attempts || !(e instanceof Error) || !isRecoverableError(e)) throw e;
        }
      }
    },
  };
  return policy as unknown as FaultPolicy;
}

/**
 * Expiry times of etcd leases, by lease id. flannel never extends a lease (renewal moves the
 * key to a new one), so an answer stays right until the lease ends; concurrent lookups of
 * one id share a request.
 */
class LeaseExpiryCache {
  readonly #known = new Map<string, number>();
  readonly #pending = new Map<string, Promise<number>>();
  readonly #lookup: (id: string) => Promise<number>;

  constructor(lookup: (id: string) => Promise<number>) {
    this.#lookup = lookup;
  }

  remember(id: string, expiresAt: number): void {
    this.#known.set(id, expiresAt);
  }

  /** Forgets every lease not in ids (leases no listed key uses any more). */
  retain(ids: readonly string[]): void {
    const keep = new Set(ids);
    for (const id of this.#known.keys()) if (!keep.has(id)) this.#known.delete(id);
  }

  async one(id: string): Promise<number | null> {
    if (id === '0' || id === '') return null;
    const known = this.#known.get(id);
    if (known !== undefined) return known;
    let p = this.#pending.get(id);
    if (!p) {
      p = this.#lookup(id).finally(() => this.#pending.delete(id));
      this.#pending.set(id, p);
    }
    const at = await p;
    this.#known.set(id, at);
    if (this.#known.size > 100_000) this.#prune();
    return at;
  }

  async many(ids: readonly string[]): Promise<Map<string, number | null>> {
    const distinct = [...new Set(ids)];
    const out = new Map<string, number | null>();
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < distinct.length) {
        const id = distinct[next++]!;
        out.set(id, await this.one(id));
      }
    };
    await Promise.all(Array.from({ length: Math.min(TTL_CONCURRENCY, distinct.length) }, worker));
    return out;
  }

  #prune(): void {
    const cutoff = Date.now() - 60_000;
    for (const [id, at] of this.#known) if (at < cutoff) this.#known.delete(id);
  }
}

interface V3WatchOptions {
  client: Etcd3;
  key: Buffer;
  rangeEnd: Buffer;
  start: number;
  handlers: WatchHandlers;
  toEvent(type: 'PUT' | 'DELETE', kv: IKeyValue): Promise<WatchEvent>;
  describe(e: unknown): WeftError;
  log: Logger;
  onClose(w: V3Watch): void;
}

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

/**
 * One watch: a gRPC stream, re-established after errors from the revision after the last one
 * delivered. Responses are handled strictly in order through a promise chain, because a put
 * event may need a TimeToLive lookup first.
 */
class V3Watch implements Watch {
  readonly #o: V3WatchOptions;
  /** The revision the next (re)connection starts from. */
  #next: number;
  #closed = false;
  /** Bumped on every (re)connection; work for an older generation is dropped. */
  #generation = 0;
  #stream: WatchStream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_MIN_MS;
  #chain: Promise<void> = Promise.resolve();

  constructor(options: V3WatchOptions) {
    this.#o = options;
    this.#next = options.start;
    void this.#connect();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#drop();
    this.#o.onClose(this);
  }

  async #connect(): Promise<void> {
    this.#timer = undefined;
    if (this.#closed) return;
    const generation = ++this.#generation;
    let stream: WatchStream;
    try {
      stream = await this.#o.client.watchClient.watch();
    } catch (e) {
      this.#fail(generation, e);
      return;
    }
    if (this.#closed || generation !== this.#generation) {
      quietCancel(stream);
      return;
    }
    this.#stream = stream;
    stream.on('data', (res: IWatchResponse) => {
      this.#chain = this.#chain.then(() => this.#handle(generation, res)).catch((e: unknown) => this.#fail(generation, e));
    });
    stream.on('error', (e: Error) => this.#fail(generation, e));
    stream.on('end', () => this.#fail(generation, new Error('the etcd watch stream ended')));
    stream.write({ create_request: { key: this.#o.key, range_end: this.#o.rangeEnd, start_revision: this.#next, progress_notify: true } });
  }

  async #handle(generation: number, res: IWatchResponse): Promise<void> {
    if (this.#closed || generation !== this.#generation) return;
    if (res.compact_revision && res.compact_revision !== '0') {
      const reason = `etcd compacted its history to revision ${res.compact_revision}, past the watch's start ${this.#next}`;
      this.close();
      this.#o.handlers.onReset(reason);
      return;
    }
    if (res.canceled) {
      this.#fail(generation, new Error(`etcd cancelled the watch: ${res.cancel_reason || 'no reason given'}`));
      return;
    }
    if (res.created) {
      this.#backoff = BACKOFF_MIN_MS;
      return;
    }
    for (const ev of res.events) {
      // The proto's enum names (PUT, DELETE), whatever case etcd3's typings say.
      const event = await this.#o.toEvent(String(ev.type).toUpperCase() === 'DELETE' ? 'DELETE' : 'PUT', ev.kv);
      if (this.#closed || generation !== this.#generation) return;
      this.#next = event.revision + 1;
      this.#o.handlers.onEvent(event);
    }
    // A progress notification: every event up to the header revision has been delivered.
    if (res.events.length === 0) this.#next = Math.max(this.#next, Number(res.header.revision) + 1);
  }

  #fail(generation: number, e: unknown): void {
    if (this.#closed || generation !== this.#generation) return;
    this.#generation++;
    this.#drop();
    const error = this.#o.describe(e);
    this.#o.log.warn({ err: error.message, retryInMs: this.#backoff, fromRevision: this.#next }, 'etcd v3 watch failed; reconnecting');
    this.#o.handlers.onError?.(error);
    this.#timer = setTimeout(() => void this.#connect(), this.#backoff);
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
  }

  #drop(): void {
    const s = this.#stream;
    this.#stream = undefined;
    if (s) quietCancel(s);
  }
}

/**
 * Cancels a watch stream. Ending our side first keeps etcd3 from treating the CANCELLED status
 * as a failed host (which would reset every client on that endpoint).
 */
function quietCancel(stream: WatchStream): void {
  try {
    stream.end();
    stream.cancel();
  } catch {
    // already gone
  }
}
