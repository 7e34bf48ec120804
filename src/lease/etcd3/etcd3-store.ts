// LeaseStore over the etcd v3 API (flannel >= v0.18 layout), through etcd's own v3 JSON gateway
// (gateway.ts) rather than a gRPC client: see docs/etcd-v3-client.md for why and for the bounds.
//
// Keys: <prefix>/config and <prefix>/subnets/<k>, <prefix> path-joined as flannel does with
// Go's path.Join (default /coreos.com/network; a trailing slash is harmless).
// - create: /v3/lease/grant + /v3/kv/txn (If Version(key) == 0 Then Put(key, value, lease)); the
//   grant is revoked when the txn loses. ttl null: no lease (a reservation).
// - put: a fresh grant + /v3/kv/put (the old lease is not revoked, like flannel), or a plain put.
// - list: /v3/kv/range in pages of PAGE_LIMIT keys, every page at the first page's revision;
//   a value over MAX_LEASE_VALUE_BYTES is left out by key (LeaseListing.skipped), and values far
//   over it are never even held in memory (bounded-json.ts).
// - hasTtl: the kv's lease id, which every range answer and watch event carries: id 0 (left out)
//   is a reservation (flannel bug #1329 treats it as expired; we do not).
// - expiresAt: from the grant for our own writes (cached by lease id: flannel never extends a
//   lease, it moves the key to a new one). Other clients' leases are looked up (TimeToLive
//   through the gateway, one call per distinct lease id, 128 at a time) only for a listing
//   with { expiry: true }, and for a key this store wrote that someone else rewrote with a
//   lease of theirs; otherwise their expiresAt is null (hasTtl true). A cold start with N
//   leases therefore makes no N extra calls. See docs/etcd-v3-client.md.
// - watch: one /v3/watch stream per watchLeases call (watch.ts).
import { posix } from 'node:path';
import { WeftError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../log/logger.ts';
import { BodyTooLargeError, elidedLength } from '../bounded-json.ts';
import { assertValueFits, MAX_CONFIG_BYTES, MAX_LEASE_VALUE_BYTES, oversizedValue, type LeaseListing, type LeaseStore, type ListLeasesOptions, type SkippedKey, type StoredLease, type Watch, type WatchHandlers } from '../store.ts';
import {
  EtcdGateway, GatewayError, GatewayUnreachableError, GRPC_INVALID_ARGUMENT, GRPC_OUT_OF_RANGE, GRPC_PERMISSION_DENIED, GRPC_UNAUTHENTICATED,
  type CallBounds,
} from './gateway.ts';
import { V3Watch, type GatewayKv } from './watch.ts';

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

/** The most bytes of network config weft reads; flannel's configs are a few hundred. */
/** Keys per range request while listing. */
export const PAGE_LIMIT = 500;
/** Most bytes kept of one range answer (oversized values already left out). */
export const PAGE_MAX_BYTES = 8 * 1024 * 1024;
/** Concurrent TimeToLive requests while listing. */
const TTL_CONCURRENCY = 128;
/** Keys this store remembers having written (our own lease, a few re-acquisitions). */
const MAX_WRITTEN_KEYS = 256;
/** A listing restarts this often when etcd compacts under it. */
const LIST_ATTEMPTS = 3;

/** Characters of base64 for n bytes: a longer string decodes to more than n bytes. */
export const base64Length = (n: number): number => 4 * Math.ceil(n / 3);
/** Values whose base64 is longer are left out while reading: certainly over MAX_LEASE_VALUE_BYTES. */
export const ELIDE_VALUES_OVER = base64Length(MAX_LEASE_VALUE_BYTES);

/** Path-join like Go's path.Join: "/a/b/" + "config" -> "/a/b/config"; "" + "config" -> "config". */
export function joinKey(prefix: string, key: string): string {
  return prefix === '' ? posix.normalize(key) : posix.join(prefix, key);
}

/** "/coreos.com/network/" -> "/coreos.com/network"; "" stays "" (keys then have no leading slash). */
export function normalizePrefix(prefix: string): string {
  const p = posix.normalize(prefix === '' ? '.' : prefix);
  return p === '.' ? '' : p.length > 1 ? p.replace(/\/+$/, '') : p;
}

const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');

export class Etcd3LeaseStore implements LeaseStore {
  readonly kind = 'etcd-v3';
  readonly endpoints: readonly string[];
  /** The normalized prefix, e.g. "/coreos.com/network". */
  readonly prefix: string;
  readonly #gateway: EtcdGateway;
  readonly #log: Logger;
  readonly #subnetsPrefix: Buffer;
  readonly #subnetsEnd: Buffer;
  readonly #expiry: LeaseExpiryCache;
  readonly #watches = new Set<V3Watch>();
  /** Relative keys this store wrote (put, create won): their expiresAt is always exact. */
  readonly #written = new Set<string>();

  constructor(options: Etcd3StoreOptions) {
    if (options.endpoints.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', 'etcd v3: no endpoints given (--etcd-endpoints)');
    this.endpoints = [...options.endpoints];
    this.prefix = normalizePrefix(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.#log = options.logger ?? silentLogger;
    this.#subnetsPrefix = Buffer.from(`${this.#abs('subnets')}/`);
    this.#subnetsEnd = prefixEnd(this.#subnetsPrefix);
    const timeoutMs = options.requestTimeoutMs ?? 10_000;
    const tls = options.tls && (options.tls.ca || (options.tls.cert && options.tls.key)) ? options.tls : undefined;
    this.#gateway = new EtcdGateway({
      endpoints: this.endpoints,
      ...(tls ? { tls } : {}),
      ...(options.username === undefined ? {} : { username: options.username, password: options.password ?? '' }),
      timeoutMs,
    });
    this.#expiry = new LeaseExpiryCache((id) => this.#timeToLive(id));
  }

  async getConfig(): Promise<string | null> {
    const key = this.#abs('config');
    const res = await this.#call('get config', '/v3/kv/range', { key: b64(key) },
      { maxBytes: base64Length(MAX_CONFIG_BYTES) + 64 * 1024, elideValuesOver: base64Length(MAX_CONFIG_BYTES) });
    const kv = rangeKvs(res)[0];
    if (!kv) return null;
    const value = kv.value ?? '';
    const size = typeof value === 'string' ? Buffer.byteLength(value, 'base64') : Math.floor(((elidedLength(value) ?? 0) * 3) / 4);
    if (typeof value !== 'string' || size > MAX_CONFIG_BYTES) {
      throw new WeftError('WEFT_INVALID_CONFIG', `etcd v3: the network config at ${key} is ${typeof value === 'string' ? '' : 'about '}${size} bytes; `
        + `weft reads at most ${MAX_CONFIG_BYTES} (a flannel config is a few hundred). Rewrite it with etcdctl put ${key} '<json>'.`);
    }
    return Buffer.from(value, 'base64').toString('utf8');
  }

  async listLeases(options: ListLeasesOptions = {}): Promise<LeaseListing> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#listOnce(options.expiry === true);
      } catch (e) {
        // Compacted between two pages: start over at the new revision.
        const compacted = e instanceof WeftError && e.cause instanceof GatewayError && e.cause.code === GRPC_OUT_OF_RANGE;
        if (!compacted || attempt >= LIST_ATTEMPTS) throw e;
      }
    }
  }

  async #listOnce(exact: boolean): Promise<LeaseListing> {
    const kvs: GatewayKv[] = [];
    const skipped: SkippedKey[] = [];
    let revision: number | undefined;
    let from = this.#subnetsPrefix;
    let limit = PAGE_LIMIT;
    for (;;) {
      let res: unknown;
      try {
        res = await this.#call('list leases', '/v3/kv/range', {
          key: b64(from), range_end: b64(this.#subnetsEnd), limit: String(limit), ...(revision === undefined ? {} : { revision: String(revision) }),
        }, { maxBytes: PAGE_MAX_BYTES, elideValuesOver: ELIDE_VALUES_OVER });
      } catch (e) {
        // Only huge keys can make a page this large; fewer keys per page gets past them.
        if (!(e instanceof BodyTooLargeError)) throw e;
        if (limit === 1) {
          throw new WeftError('WEFT_DECODE', `etcd v3: a key right after ${JSON.stringify(from.toString('utf8'))} is itself over ${PAGE_MAX_BYTES} bytes; `
            + `weft cannot list ${this.#abs('subnets')}/ past it. Remove it with etcdctl del.`);
        }
        limit = Math.max(1, Math.floor(limit / 8));
        continue;
      }
      revision ??= headerRevision(res);
      const page = rangeKvs(res);
      for (const kv of page) {
        const problem = valueProblem(kv.value);
        if (problem === null) kvs.push(kv);
        else skipped.push({ key: this.#relB64(kv.key), reason: problem });
      }
      if (!(res as { more?: unknown }).more || page.length === 0) break;
      from = Buffer.concat([Buffer.from(page[page.length - 1]!.key, 'base64'), Buffer.from([0])]);
      limit = PAGE_LIMIT;
    }
    for (const s of skipped) this.#log.warn({ key: s.key, reason: s.reason }, 'etcd v3: leaving a lease key out of the listing');
    const keyed = kvs.map((kv) => ({ kv, key: this.#relB64(kv.key), id: leaseIdOf(kv) }));
    this.#expiry.retain(keyed.map((k) => k.id));
    const wanted = keyed.filter((k) => exact || this.#written.has(k.key)).map((k) => k.id);
    const expiries = await this.#expiry.many(wanted).catch((e: unknown) => { throw this.#notReady('list leases (lease TTLs)', e); });
    const leases = keyed.map((k) => this.#stored(k.kv, expiries.get(k.id) ?? this.#expiry.known(k.id)));
    return { leases, revision: revision ?? 0, ...(skipped.length > 0 ? { skipped } : {}) };
  }

  async create(key: string, value: string, ttlSeconds: number | null): Promise<boolean> {
    const abs = b64(this.#abs(key));
    const encoded = encodeValue(key, value);
    const grant = ttlSeconds === null ? null : await this.#grant(ttlSeconds);
    let succeeded: boolean;
    try {
      const res = await this.#call('create', '/v3/kv/txn', {
        compare: [{ key: abs, target: 'VERSION', result: 'EQUAL', version: '0' }],
        success: [{ request_put: { key: abs, value: encoded, ...(grant ? { lease: grant.id } : {}) } }],
      });
      succeeded = (res as { succeeded?: unknown }).succeeded === true;
    } catch (e) {
      if (grant) this.#revoke(grant.id);
      throw e;
    }
    if (!succeeded && grant) this.#revoke(grant.id);
    if (succeeded) this.#remember(key);
    return succeeded;
  }

  async put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease> {
    const abs = b64(this.#abs(key));
    const encoded = encodeValue(key, value);
    const grant = ttlSeconds === null ? null : await this.#grant(ttlSeconds);
    const res = await this.#call('put', '/v3/kv/put', { key: abs, value: encoded, ...(grant ? { lease: grant.id } : {}) });
    this.#remember(key);
    return { key, value, hasTtl: grant !== null, expiresAt: grant?.expiresAt ?? null, version: headerRevision(res) };
  }

  async delete(key: string): Promise<void> {
    await this.#call('delete', '/v3/kv/deleterange', { key: b64(this.#abs(key)) });
    this.#written.delete(key);
  }

  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch {
    const watch = new V3Watch({
      gateway: this.#gateway,
      key: b64(this.#subnetsPrefix),
      rangeEnd: b64(this.#subnetsEnd),
      start: afterRevision + 1,
      elideValuesOver: ELIDE_VALUES_OVER,
      handlers,
      toPut: async (kv, revision) => {
        const problem = valueProblem(kv.value);
        const key = this.#relB64(kv.key);
        if (problem !== null) return { type: 'skip', key, reason: problem, revision };
        const id = leaseIdOf(kv);
        const expiresAt = this.#written.has(key) ? await this.#expiry.one(id) : this.#expiry.known(id);
        return { type: 'put', lease: this.#stored(kv, expiresAt), revision };
      },
      toKey: (b) => this.#relB64(b),
      describe: (e) => this.#notReady('watch', e),
      log: this.#log,
      onClose: (w) => this.#watches.delete(w),
    });
    this.#watches.add(watch);
    return watch;
  }

  async close(): Promise<void> {
    for (const w of this.#watches) w.close();
    this.#gateway.close();
  }

  /** Compacts history up to revision (for tests and maintenance tools). */
  async compact(revision: number): Promise<void> {
    await this.#call('compact', '/v3/kv/compaction', { revision: String(revision), physical: true });
  }

  #stored(kv: GatewayKv, expiresAt: number | null): StoredLease {
    const hasTtl = leaseIdOf(kv) !== NO_LEASE;
    return {
      key: this.#relB64(kv.key),
      value: Buffer.from(typeof kv.value === 'string' ? kv.value : '', 'base64').toString('utf8'),
      hasTtl,
      expiresAt: hasTtl ? expiresAt : null,
      version: toNumber(kv.mod_revision, 'mod_revision'),
    };
  }

  async #grant(ttlSeconds: number): Promise<{ id: string; expiresAt: number }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
      throw new WeftError('WEFT_INVALID_CONFIG', `etcd v3: a lease TTL must be a positive whole number of seconds, not ${ttlSeconds}`);
    }
    const t0 = Date.now();
    const res = await this.#call('grant lease', '/v3/lease/grant', { TTL: String(ttlSeconds) }) as { ID?: unknown; TTL?: unknown; error?: unknown };
    if (typeof res.error === 'string' && res.error !== '') {
      throw new WeftError('WEFT_NOT_READY', `etcd v3 at ${this.endpoints.join(', ')} refused a ${ttlSeconds} s lease: ${res.error}`);
    }
    const id = String(toNumberText(res.ID, 'ID'));
    const grant = { id, expiresAt: t0 + toNumber(res.TTL, 'TTL') * 1000 };
    this.#expiry.remember(grant.id, grant.expiresAt);
    return grant;
  }

  #revoke(id: string): void {
    this.#gateway.call('/v3/lease/revoke', { ID: id }).catch((e: unknown) => {
      // Harmless: an unused lease just runs out.
      this.#log.debug({ lease: id, err: (e as Error).message }, 'etcd v3: could not revoke an unused lease');
    });
  }

  /** A key this store wrote: its expiry stays exact even after another client rewrites it. */
  #remember(key: string): void {
    if (this.#written.size >= MAX_WRITTEN_KEYS && !this.#written.has(key)) {
      const oldest = this.#written.values().next().value;
      if (oldest !== undefined) this.#written.delete(oldest);
    }
    this.#written.add(key);
  }

  async #timeToLive(id: string): Promise<number> {
    const t0 = Date.now();
    const res = await this.#gateway.call('/v3/lease/timetolive', { ID: id }) as { TTL?: unknown };
    const ttl = toNumber(res.TTL ?? '0', 'TTL');
    // TTL -1: the lease is gone (expired or revoked); its keys are being deleted.
    return ttl < 0 ? t0 : t0 + ttl * 1000;
  }

  #abs(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').includes('..')) {
      throw new WeftError('WEFT_INTERNAL', `etcd v3: bad relative key ${JSON.stringify(key)}`);
    }
    return joinKey(this.prefix, key);
  }

  #relB64(key: unknown): string {
    if (typeof key !== 'string') throw new WeftError('WEFT_DECODE', `etcd v3: a key in etcd's answer is not base64 text: ${JSON.stringify(key)}`);
    const s = Buffer.from(key, 'base64').toString('utf8');
    const head = this.prefix === '' || this.prefix.endsWith('/') ? this.prefix : `${this.prefix}/`;
    if (!s.startsWith(head)) throw new WeftError('WEFT_DECODE', `etcd v3: key ${JSON.stringify(s)} is outside the prefix ${this.prefix}`);
    return s.slice(head.length);
  }

  async #call(what: string, path: string, body: unknown, bounds?: CallBounds): Promise<unknown> {
    try {
      return await this.#gateway.call(path, body, bounds);
    } catch (e) {
      if (e instanceof BodyTooLargeError) throw e;
      throw this.#notReady(what, e);
    }
  }

  #notReady(what: string, e: unknown): WeftError {
    if (e instanceof WeftError) return e;
    const err = e as Error;
    const where = `etcd v3 at ${this.endpoints.join(', ')}`;
    if (e instanceof GatewayError && isAuthProblem(e)) {
      return new WeftError('WEFT_INVALID_CONFIG', `${where} refused ${what}: ${err.message}. `
        + 'Check --etcd-username/--etcd-password and the user\'s permissions on the prefix.', { cause: e });
    }
    if (e instanceof GatewayError) {
      return new WeftError('WEFT_NOT_READY', `${where}: ${what} failed: ${err.message} (gRPC code ${e.code}, HTTP ${e.status})`, { cause: e });
    }
    const detail = e instanceof GatewayUnreachableError ? `unreachable (${err.message})` : `${what} failed: ${err?.message ?? String(e)}`;
    return new WeftError('WEFT_NOT_READY', `${where}: ${what}: ${detail}. `
      + 'Check that etcd runs and listens there, the --etcd-endpoints value, and the TLS files '
      + '(--etcd-cafile, --etcd-certfile, --etcd-keyfile).', { cause: e });
  }
}

function isAuthProblem(e: GatewayError): boolean {
  if (e.code === GRPC_UNAUTHENTICATED || e.code === GRPC_PERMISSION_DENIED) return true;
  return e.code === GRPC_INVALID_ARGUMENT && /authentication failed|user name|auth/.test(e.message);
}

/** Why a value cannot be handed over, or null when it can. */
export function valueProblem(value: unknown): string | null {
  if (value === undefined) return null; // the empty value: etcd leaves it out
  const elided = elidedLength(value);
  // Left out as base64 of `elided` characters: about three quarters of that in bytes.
  if (elided !== null) return oversizedValue(Math.max(MAX_LEASE_VALUE_BYTES + 1, Math.floor((elided * 3) / 4)), true);
  if (typeof value !== 'string') return 'its value is not base64 text in etcd\'s answer';
  return oversizedValue(Buffer.byteLength(value, 'base64'));
}

function encodeValue(key: string, value: string): string {
  assertValueFits('etcd v3', key, value);
  return Buffer.from(value, 'utf8').toString('base64');
}

function rangeKvs(res: unknown): GatewayKv[] {
  const kvs = (res as { kvs?: unknown }).kvs;
  if (kvs === undefined) return [];
  if (!Array.isArray(kvs)) throw new WeftError('WEFT_DECODE', 'etcd v3: a range answer\'s kvs is not a list');
  return kvs as GatewayKv[];
}

function headerRevision(res: unknown): number {
  return toNumber((res as { header?: { revision?: unknown } }).header?.revision ?? '0', 'header.revision');
}

function toNumberText(s: unknown, field: string): string {
  if ((typeof s !== 'string' && typeof s !== 'number') || !/^-?\d+$/.test(String(s))) {
    throw new WeftError('WEFT_DECODE', `etcd v3: ${field} is not an integer: ${JSON.stringify(s)}`);
  }
  return String(s);
}

export function toNumber(s: unknown, field: string): number {
  const n = Number(toNumberText(s, field));
  if (!Number.isSafeInteger(n)) throw new WeftError('WEFT_DECODE', `etcd v3: ${field} is not a safe integer: ${JSON.stringify(s)}`);
  return n;
}

/** etcd's "no lease": the gateway leaves the zero out. */
const NO_LEASE = '0';

function leaseIdOf(kv: GatewayKv): string {
  const id = kv.lease;
  return id === undefined || id === '' ? NO_LEASE : String(id);
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

  /** The expiry already known (our own grants, earlier lookups), without asking; null when none. */
  known(id: string): number | null {
    return this.#known.get(id) ?? null;
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
    const unknown: string[] = [];
    for (const id of distinct) {
      const known = id === '0' || id === '' ? null : this.#known.get(id);
      if (known === undefined) unknown.push(id);
      else out.set(id, known);
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < unknown.length) {
        const id = unknown[next++]!;
        out.set(id, await this.one(id));
      }
    };
    await Promise.all(Array.from({ length: Math.min(TTL_CONCURRENCY, unknown.length) }, worker));
    return out;
  }

  #prune(): void {
    const cutoff = Date.now() - 60_000;
    for (const [id, at] of this.#known) if (at < cutoff) this.#known.delete(id);
  }
}
