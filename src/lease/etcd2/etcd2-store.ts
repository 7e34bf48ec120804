// LeaseStore over the etcd v2 keys API (flannel <= v0.17), plain HTTP/JSON with node:http(s).
// Needs etcd 3.4+ started with --enable-v2=true; the v2 keyspace is separate from v3's.
//
// - config: GET /v2/keys/<prefix>/config?quorum=true
// - list:   GET /v2/keys/<prefix>/subnets?recursive=true&quorum=true; revision = X-Etcd-Index
// - create: PUT …/subnets/<k>?prevExist=false[&ttl=N] (form value=…); 412 errorCode 105 = exists
// - put:    PUT …/subnets/<k>[?ttl=N]: a plain set replaces the node, so without ttl it also
//           drops an earlier TTL (checked against etcd 3.4)
// - delete: DELETE …; errorCode 100 (not found) is fine
// - watch:  GET …/subnets?wait=true&recursive=true&waitIndex=N+1, one long poll per event;
//           set/create/update/compareAndSwap = put, delete/expire/compareAndDelete = delete;
//           errorCode 401 (event index cleared: more than 1000 events behind) = onReset.
// expiresAt comes from the node's `expiration` (RFC 3339, nanoseconds), null without one: every
// listing and event carries it, so expiries are always exact here (ListLeasesOptions.expiry is moot).
//
// Bounds: every reply is read through ElidingJsonScanner (../bounded-json.ts): a value string
// longer than any lease value can be (in JSON escapes) is never held, only its length; a value
// over MAX_LEASE_VALUE_BYTES is left out by key (LeaseListing.skipped, a `skip` watch event). A
// listing reply may keep at most V2_LIST_MAX_BYTES, any other reply V2_REPLY_MAX_BYTES; the
// network config at most MAX_CONFIG_BYTES.
import http from 'node:http';
import { describeNetError, loadHttps } from '../http.ts';
import { posix } from 'node:path';
import { WeftError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../log/logger.ts';
import { BodyTooLargeError, elidedLength, ElidingJsonScanner, scanBody } from '../bounded-json.ts';
import { assertValueFits, MAX_CONFIG_BYTES, MAX_LEASE_VALUE_BYTES, oversizedValue, type LeaseListing, type LeaseStore, type SkippedKey, type StoredLease, type Watch, type WatchEvent, type WatchHandlers } from '../store.ts';

/** node:https (and node:tls with it, ~5 MB RSS) only for https:// endpoints. */

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';

/** The most bytes of network config weft reads; flannel's configs are a few hundred. */
/** Most bytes kept of a listing reply (v2 cannot page; about 100,000 flannel leases). */
export const V2_LIST_MAX_BYTES = 32 * 1024 * 1024;
/** Most bytes kept of any other reply. */
export const V2_REPLY_MAX_BYTES = 1024 * 1024;
/** JSON writes a byte as at most 6 characters (\u00XX): a longer value string is certainly too large. */
const jsonLength = (bytes: number): number => 6 * bytes;
/**
 * A lease value is ASCII JSON, which JSON-in-JSON writes in at most 2 characters a byte (\").
 * Leaving out anything longer keeps a listing's kept bytes per key at 16 KiB, not 48 KiB, so
 * junk keys push the one unpaged v2 listing towards its bound three times more slowly. (A value
 * with control characters that needs more is not a lease anyway: it is refused by key.)
 */
const LEASE_JSON_MAX_CHARS = 2 * MAX_LEASE_VALUE_BYTES;

export interface Etcd2StoreOptions {
  /** Validated client URLs, e.g. http://127.0.0.1:2379 (see parseEndpoints in ../open-store.ts). */
  endpoints: string[];
  prefix?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  username?: string;
  password?: string;
  logger?: Logger;
  /** Deadline of each request other than watch long polls; default 10 s. */
  requestTimeoutMs?: number;
  /** A watch long poll is re-issued after this long without an event; default 60 s. */
  watchPollMs?: number;
}

/** An etcd v2 node as the keys API returns it. */
export interface V2Node {
  key: string;
  /** The value; a negative number when it was left out for size (see bounded-json.ts). */
  value?: string | number;
  dir?: boolean;
  nodes?: V2Node[];
  expiration?: string;
  ttl?: number;
  modifiedIndex: number;
  createdIndex: number;
}

interface V2Reply {
  status: number;
  /** X-Etcd-Index, when the server sent it. */
  index: number | null;
  text: string;
}

/** A keys API error body: {"errorCode":100,"message":"Key not found","cause":"/a","index":5}. */
export class Etcd2ApiError extends Error {
  readonly errorCode: number;
  readonly status: number;
  readonly index: number | null;

  constructor(status: number, body: { errorCode: number; message?: string; cause?: string; index?: number }) {
    super(`etcd v2 error ${body.errorCode}: ${body.message ?? 'unknown'}${body.cause ? ` (${body.cause})` : ''}`);
    this.name = 'Etcd2ApiError';
    this.errorCode = body.errorCode;
    this.status = status;
    this.index = typeof body.index === 'number' ? body.index : null;
  }
}

const ERR_KEY_NOT_FOUND = 100;
const ERR_NODE_EXIST = 105;
const ERR_EVENT_INDEX_CLEARED = 401;

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;

const PUT_ACTIONS = new Set(['set', 'create', 'update', 'compareAndSwap']);
const DELETE_ACTIONS = new Set(['delete', 'expire', 'compareAndDelete']);

/** "/coreos.com/network/" -> "/coreos.com/network"; v2 keys are always rooted. */
function rootedPrefix(prefix: string): string {
  const p = posix.normalize(`/${prefix}`);
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

export class Etcd2LeaseStore implements LeaseStore {
  readonly kind = 'etcd-v2';
  readonly endpoints: readonly string[];
  /** The rooted prefix, e.g. "/coreos.com/network". */
  readonly prefix: string;
  readonly #urls: URL[];
  readonly #agent: http.Agent;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #watches = new Set<V2Watch>();
  /** The endpoint that answered last; tried first. */
  #preferred = 0;

  constructor(options: Etcd2StoreOptions) {
    if (options.endpoints.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', 'etcd v2: no endpoints given (--etcd-endpoints)');
    this.endpoints = [...options.endpoints];
    this.#urls = this.endpoints.map((e) => new URL(e));
    this.prefix = rootedPrefix(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.#timeoutMs = options.requestTimeoutMs ?? 10_000;
    this.#pollMs = options.watchPollMs ?? 60_000;
    this.#log = options.logger ?? silentLogger;
    const secure = this.#urls.some((u) => u.protocol === 'https:');
    if (secure) {
      const tls = options.tls ?? {};
      const clientCert = tls.cert !== undefined && tls.key !== undefined;
      this.#agent = new (loadHttps().Agent)({
        keepAlive: true,
        minVersion: 'TLSv1.2',
        ...(tls.ca ? { ca: tls.ca } : {}),
        ...(clientCert ? { cert: tls.cert, key: tls.key } : {}),
      });
    } else {
      this.#agent = new http.Agent({ keepAlive: true });
    }
    if (options.username !== undefined) {
      this.#authorization = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;
    }
  }

  async getConfig(): Promise<string | null> {
    const reply = await this.request('GET', this.#abs('config'), { quorum: 'true' }, undefined, { elideValuesOver: jsonLength(MAX_CONFIG_BYTES) });
    if (isError(reply, ERR_KEY_NOT_FOUND)) return null;
    const node = this.#node(reply, 'get config');
    if (node.dir) throw new WeftError('WEFT_DECODE', `etcd v2: ${node.key} is a directory, not the network config`);
    const value = node.value ?? '';
    if (typeof value !== 'string' || Buffer.byteLength(value) > MAX_CONFIG_BYTES) {
      const size = typeof value === 'string' ? `${Buffer.byteLength(value)} bytes` : `over ${jsonLength(MAX_CONFIG_BYTES)} characters of JSON`;
      throw new WeftError('WEFT_INVALID_CONFIG', `etcd v2: the network config at ${node.key} is ${size}; weft reads at most ${MAX_CONFIG_BYTES} bytes `
        + `(a flannel config is a few hundred). Rewrite it with etcdctl set ${node.key} '<json>'.`);
    }
    return value;
  }

  async listLeases(): Promise<LeaseListing> {
    let reply: V2Reply;
    try {
      reply = await this.request('GET', this.#abs('subnets'), { recursive: 'true', quorum: 'true' }, undefined, { maxBytes: V2_LIST_MAX_BYTES });
    } catch (e) {
      if (!(e instanceof BodyTooLargeError)) throw e;
      throw new WeftError('WEFT_DECODE', `etcd v2: the listing of ${this.#abs('subnets')} is over ${V2_LIST_MAX_BYTES} bytes even without oversized values; `
        + 'the v2 API cannot page it. Move the cluster to the v3 API (--etcd-api v3), which weft lists in pages.', { cause: e });
    }
    if (isError(reply, ERR_KEY_NOT_FOUND)) return { leases: [], revision: this.#revision(reply) };
    const dir = this.#node(reply, 'list leases');
    const leases: StoredLease[] = [];
    const skipped: SkippedKey[] = [];
    const walk = (n: V2Node): void => {
      for (const child of n.nodes ?? []) {
        if (child.dir) {
          walk(child);
          continue;
        }
        const problem = valueProblem(child.value);
        if (problem === null) leases.push(this.#stored(child));
        else skipped.push({ key: this.#rel(child.key), reason: problem });
      }
    };
    walk(dir);
    for (const k of skipped) this.#log.warn({ key: k.key, reason: k.reason }, 'etcd v2: leaving a lease key out of the listing');
    return { leases, revision: this.#revision(reply), ...(skipped.length > 0 ? { skipped } : {}) };
  }

  async create(key: string, value: string, ttlSeconds: number | null): Promise<boolean> {
    const reply = await this.request('PUT', this.#abs(key), { prevExist: 'false', ...ttlQuery(ttlSeconds) }, { value: checkedValue(key, value) });
    if (isError(reply, ERR_NODE_EXIST)) return false;
    this.#node(reply, 'create');
    return true;
  }

  async put(key: string, value: string, ttlSeconds: number | null): Promise<StoredLease> {
    const reply = await this.request('PUT', this.#abs(key), ttlQuery(ttlSeconds), { value: checkedValue(key, value) });
    return this.#stored(this.#node(reply, 'put'));
  }

  async delete(key: string): Promise<void> {
    const reply = await this.request('DELETE', this.#abs(key), {});
    if (isError(reply, ERR_KEY_NOT_FOUND)) return;
    this.#node(reply, 'delete');
  }

  watchLeases(afterRevision: number, handlers: WatchHandlers): Watch {
    const watch = new V2Watch(this, afterRevision + 1, handlers, this.#log, this.#pollMs);
    this.#watches.add(watch);
    return watch;
  }

  async close(): Promise<void> {
    for (const w of this.#watches) w.close();
    this.#watches.clear();
    this.#agent.destroy();
  }

  /** @internal for V2Watch */
  forget(w: V2Watch): void {
    this.#watches.delete(w);
  }

  /** @internal: the absolute key of the subnets directory. */
  get subnetsDir(): string {
    return this.#abs('subnets');
  }

  /** @internal: decodes one watch reply into an event (null: not a lease event) or a reset. */
  decodeWatchReply(reply: V2Reply): { next: number; event: WatchEvent | null; reset?: string } {
    if (isError(reply, ERR_EVENT_INDEX_CLEARED)) {
      return { next: 0, event: null, reset: `etcd v2 cleared its event history past the watch index (${errorOf(reply)?.message ?? ''})` };
    }
    const body = parseBody(reply.text);
    if (reply.status >= 300) throw this.#apiError(reply, body, 'watch');
    if (!isRecord(body) || typeof body.action !== 'string' || !isNode(body.node)) {
      throw new WeftError('WEFT_DECODE', `etcd v2 watch: unexpected reply ${reply.text.slice(0, 200)}`);
    }
    const node = body.node;
    const next = node.modifiedIndex + 1;
    if (node.dir) {
      if (DELETE_ACTIONS.has(body.action)) return { next, event: null, reset: `etcd v2: directory ${node.key} was removed` };
      return { next, event: null };
    }
    const key = this.#rel(node.key);
    if (PUT_ACTIONS.has(body.action)) {
      const problem = valueProblem(node.value);
      if (problem !== null) return { next, event: { type: 'skip', key, reason: problem, revision: node.modifiedIndex } };
      return { next, event: { type: 'put', lease: this.#stored(node), revision: node.modifiedIndex } };
    }
    if (DELETE_ACTIONS.has(body.action)) return { next, event: { type: 'delete', key, revision: node.modifiedIndex } };
    return { next, event: null };
  }

  /**
   * One keys API request, tried on each endpoint in turn (the last one that answered first)
   * until one answers. HTTP error statuses are answers; only transport failures move on.
   */
  async request(method: string, key: string, query: Record<string, string>, form?: Record<string, string>,
    options: { signal?: AbortSignal; onHeaders?: (index: number | null) => void; maxBytes?: number; elideValuesOver?: number } = {}): Promise<V2Reply> {
    const path = `/v2/keys${key.split('/').map(encodeURIComponent).join('/')}`;
    const qs = new URLSearchParams(query).toString();
    const body = form ? new URLSearchParams(form).toString() : undefined;
    const failures: string[] = [];
    for (let i = 0; i < this.#urls.length; i++) {
      const at = (this.#preferred + i) % this.#urls.length;
      const url = new URL(`${path}${qs ? `?${qs}` : ''}`, this.#urls[at]);
      const signal = options.signal ?? AbortSignal.timeout(this.#timeoutMs);
      try {
        const bounds = { maxBytes: options.maxBytes ?? V2_REPLY_MAX_BYTES, elideValuesOver: options.elideValuesOver ?? LEASE_JSON_MAX_CHARS };
        const reply = await this.#send(method, url, body, signal, bounds, options.onHeaders);
        this.#preferred = at;
        return reply;
      } catch (e) {
        if (options.signal?.aborted || e instanceof BodyTooLargeError) throw e;
        failures.push(`${this.endpoints[at]}: ${describeNetError(e)}`);
      }
    }
    throw new WeftError('WEFT_NOT_READY', `etcd v2 is unreachable at ${this.endpoints.join(', ')} (${failures.join('; ')}). `
      + 'Check that etcd runs and listens there, the --etcd-endpoints value, and the TLS files '
      + '(--etcd-cafile, --etcd-certfile, --etcd-keyfile).');
  }

  #send(method: string, url: URL, body: string | undefined, signal: AbortSignal, bounds: { maxBytes: number; elideValuesOver: number },
    onHeaders?: (index: number | null) => void): Promise<V2Reply> {
    const mod = url.protocol === 'https:' ? loadHttps() : http;
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
    if (body !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['content-length'] = Buffer.byteLength(body);
    }
    if (this.#authorization) headers.authorization = this.#authorization;
    return new Promise<V2Reply>((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent: this.#agent, signal }, (res) => {
        const index = headerIndex(res.headers['x-etcd-index']);
        onHeaders?.(index);
        // Bounded: oversized values are left out as they stream in (see bounded-json.ts).
        scanBody(res, req, new ElidingJsonScanner(bounds))
          .then((kept) => resolve({ status: res.statusCode ?? 0, index, text: kept.toString('utf8') }), reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  #node(reply: V2Reply, what: string): V2Node {
    const body = parseBody(reply.text);
    if (reply.status >= 300) throw this.#apiError(reply, body, what);
    if (!isRecord(body) || !isNode(body.node)) {
      throw new WeftError('WEFT_DECODE', `etcd v2 ${what}: unexpected reply (HTTP ${reply.status}): ${reply.text.slice(0, 200)}`);
    }
    return body.node;
  }

  #apiError(reply: V2Reply, body: unknown, what: string): WeftError {
    const where = `etcd v2 at ${this.endpoints.join(', ')}`;
    const err = errorBody(body);
    if (!err) {
      if (reply.status === 404) {
        return new WeftError('WEFT_NOT_READY', `${where} does not serve the v2 keys API (${what}: HTTP 404 ${reply.text.trim().slice(0, 80)}). `
          + 'etcd 3.4+ serves it only with --enable-v2=true; flannel >= v0.18 and weft default to the v3 API.');
      }
      if (reply.status === 401 || reply.status === 403) {
        return new WeftError('WEFT_INVALID_CONFIG', `${where} refused ${what} (HTTP ${reply.status} ${reply.text.trim().slice(0, 80)}). `
          + 'Check --etcd-username/--etcd-password.');
      }
      return new WeftError('WEFT_DECODE', `${where}: ${what}: unexpected HTTP ${reply.status}: ${reply.text.slice(0, 200)}`);
    }
    const cause = new Etcd2ApiError(reply.status, err);
    if (reply.status === 401 || reply.status === 403) {
      return new WeftError('WEFT_INVALID_CONFIG', `${where} refused ${what}: ${cause.message}. Check --etcd-username/--etcd-password.`, { cause });
    }
    return new WeftError('WEFT_NOT_READY', `${where}: ${what} failed: ${cause.message}`, { cause });
  }

  #revision(reply: V2Reply): number {
    if (reply.index !== null) return reply.index;
    const err = errorOf(reply);
    if (err?.index !== undefined) return err.index;
    throw new WeftError('WEFT_DECODE', 'etcd v2: the reply has no X-Etcd-Index header');
  }

  #stored(node: V2Node): StoredLease {
    const at = expiresAt(node);
    return { key: this.#rel(node.key), value: typeof node.value === 'string' ? node.value : '', hasTtl: at !== null, expiresAt: at, version: node.modifiedIndex };
  }

  #abs(key: string): string {
    if (key === '' || key.startsWith('/') || key.split('/').includes('..')) {
      throw new WeftError('WEFT_INTERNAL', `etcd v2: bad relative key ${JSON.stringify(key)}`);
    }
    return posix.join(this.prefix, key);
  }

  #rel(key: string): string {
    const head = this.prefix.endsWith('/') ? this.prefix : `${this.prefix}/`;
    if (!key.startsWith(head)) throw new WeftError('WEFT_DECODE', `etcd v2: key ${JSON.stringify(key)} is outside the prefix ${this.prefix}`);
    return key.slice(head.length);
  }
}

/**
 * The long-poll loop of one watch. Each poll waits for the first event at or after waitIndex;
 * a poll without an event for watchPollMs is re-issued from after the index the server
 * reported when the poll began (any earlier match would have been answered at once), so a
 * quiet watch does not fall more than 1000 events behind other writers.
 */
class V2Watch implements Watch {
  readonly #store: Etcd2LeaseStore;
  readonly #handlers: WatchHandlers;
  readonly #log: Logger;
  readonly #pollMs: number;
  #waitIndex: number;
  #closed = false;
  #abort = new AbortController();
  #backoff = BACKOFF_MIN_MS;

  constructor(store: Etcd2LeaseStore, waitIndex: number, handlers: WatchHandlers, log: Logger, pollMs: number) {
    this.#store = store;
    this.#waitIndex = waitIndex;
    this.#handlers = handlers;
    this.#log = log;
    this.#pollMs = pollMs;
    void this.#loop();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.#store.forget(this);
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      const poll = new AbortController();
      const onClose = (): void => poll.abort();
      this.#abort.signal.addEventListener('abort', onClose, { once: true });
      let startIndex: number | null = null;
      const timer = setTimeout(() => poll.abort(), this.#pollMs);
      try {
        const reply = await this.#store.request('GET', this.#store.subnetsDir,
          { wait: 'true', recursive: 'true', waitIndex: String(this.#waitIndex) }, undefined,
          { signal: poll.signal, onHeaders: (i) => { startIndex = i; } });
        if (this.#closed) return;
        const { next, event, reset } = this.#store.decodeWatchReply(reply);
        this.#backoff = BACKOFF_MIN_MS;
        if (reset !== undefined) {
          this.close();
          this.#handlers.onReset(reset);
          return;
        }
        this.#waitIndex = Math.max(this.#waitIndex, next);
        if (event) this.#handlers.onEvent(event);
      } catch (e) {
        if (this.#closed) return;
        if (poll.signal.aborted && startIndex !== null) {
          // A quiet poll ran its course: nothing for us up to startIndex.
          this.#waitIndex = Math.max(this.#waitIndex, (startIndex as number) + 1);
          continue;
        }
        const error = e instanceof WeftError ? e : new WeftError('WEFT_NOT_READY', `etcd v2 watch failed: ${(e as Error).message}`, { cause: e });
        this.#log.warn({ err: error.message, retryInMs: this.#backoff, waitIndex: this.#waitIndex }, 'etcd v2 watch failed; retrying');
        this.#handlers.onError?.(error);
        await delay(this.#backoff, this.#abort.signal);
        this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
      } finally {
        clearTimeout(timer);
        this.#abort.signal.removeEventListener('abort', onClose);
      }
    }
  }
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Why a node's value cannot be handed over as a lease, or null when it can. */
function valueProblem(value: string | number | undefined): string | null {
  const elided = elidedLength(value);
  // A value left out as JSON text of `elided` characters has at least a sixth of that in bytes.
  if (elided !== null) return oversizedValue(Math.max(MAX_LEASE_VALUE_BYTES + 1, Math.ceil(elided / 6)), true);
  return oversizedValue(typeof value === 'string' ? Buffer.byteLength(value) : 0);
}

function checkedValue(key: string, value: string): string {
  assertValueFits('etcd v2', key, value);
  return value;
}

function ttlQuery(ttlSeconds: number | null): Record<string, string> {
  if (ttlSeconds === null) return {};
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) {
    throw new WeftError('WEFT_INVALID_CONFIG', `etcd v2: a TTL must be a positive whole number of seconds, not ${ttlSeconds}`);
  }
  return { ttl: String(ttlSeconds) };
}

function expiresAt(node: V2Node): number | null {
  if (node.expiration !== undefined) {
    const t = Date.parse(node.expiration);
    if (Number.isFinite(t)) return t;
  }
  if (typeof node.ttl === 'number') return Date.now() + node.ttl * 1000;
  return null;
}

function headerIndex(h: string | string[] | undefined): number | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

function parseBody(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNode(v: unknown): v is V2Node {
  return isRecord(v) && typeof v.key === 'string' && typeof v.modifiedIndex === 'number'
    && (v.value === undefined || typeof v.value === 'string' || typeof v.value === 'number')
    && (v.nodes === undefined || (Array.isArray(v.nodes) && v.nodes.every(isNode)));
}

function errorBody(v: unknown): { errorCode: number; message?: string; cause?: string; index?: number } | undefined {
  if (!isRecord(v) || typeof v.errorCode !== 'number') return undefined;
  return {
    errorCode: v.errorCode,
    ...(typeof v.message === 'string' ? { message: v.message } : {}),
    ...(typeof v.cause === 'string' ? { cause: v.cause } : {}),
    ...(typeof v.index === 'number' ? { index: v.index } : {}),
  };
}

function errorOf(reply: V2Reply): ReturnType<typeof errorBody> {
  return reply.status >= 300 ? errorBody(parseBody(reply.text)) : undefined;
}

function isError(reply: V2Reply, code: number): boolean {
  return errorOf(reply)?.errorCode === code;
}

