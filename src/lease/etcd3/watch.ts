// One etcd v3 watch over the JSON gateway: POST /v3/watch with a create_request, then one JSON
// document per line for as long as the stream lasts ({"result": WatchResponse} or
// {"error": {...}}). Lines are read through ElidingJsonScanner, so a put of a huge value costs
// a bounded buffer and is delivered as a `skip` event naming the key.
//
// - created: the watch runs; the reconnect backoff starts over.
// - compact_revision set (etcd cancels the watch): history is gone past our start: onReset.
// - canceled otherwise, an error document, the stream ending or failing: onError, then a
//   reconnect after 100 ms -> 5 s backoff from the revision after the last one delivered.
// - a line over the bound (thousands of events in one answer): onReset, as the events in it
//   cannot be delivered one by one; a re-list has them.
// Responses are handled strictly in order through a promise chain, because a put may need a
// TimeToLive lookup first.
import { WeftError, isWeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import { BodyTooLargeError } from '../bounded-json.ts';
import type { Watch, WatchEvent, WatchHandlers } from '../store.ts';
import { isTokenRefused, GatewayError, type EtcdGateway, type GatewayStream } from './gateway.ts';

/** A key-value as the gateway writes it: base64 key and value, int64s as strings, zeros left out. */
export interface GatewayKv {
  key: string;
  /** base64; undefined for an empty value; a negative number when left out for size (bounded-json.ts). */
  value?: unknown;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  /** The etcd lease id; undefined (0) for none. */
  lease?: string;
}

interface WatchResponse {
  header?: { revision?: string };
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: { type?: string; kv?: GatewayKv }[];
}

/** Most bytes of one watch message kept (oversized values already left out). */
export const WATCH_LINE_MAX_BYTES = 8 * 1024 * 1024;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
/**
 * etcd sends a progress notification on an idle watch (every 10 minutes by default); a stream
 * silent for longer than this is a member that stopped answering: reconnect from where we are.
 */
const IDLE_MS = 15 * 60 * 1000;

export interface V3WatchOptions {
  gateway: EtcdGateway;
  /** base64 range of the watch. */
  key: string;
  rangeEnd: string;
  start: number;
  elideValuesOver: number;
  handlers: WatchHandlers;
  /** The event for a put (a skip when its value cannot be handed over). */
  toPut(kv: GatewayKv, revision: number): Promise<WatchEvent>;
  /** A base64 key as a relative key. */
  toKey(key: unknown): string;
  describe(e: unknown): WeftError;
  log: Logger;
  onClose(w: V3Watch): void;
}

export class V3Watch implements Watch {
  readonly #o: V3WatchOptions;
  /** The revision the next (re)connection starts from. */
  #next: number;
  #closed = false;
  /** Bumped on every (re)connection; work for an older generation is dropped. */
  #generation = 0;
  #stream: GatewayStream | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_MIN_MS;
  #chain: Promise<void> = Promise.resolve();
  #idle: NodeJS.Timeout | undefined;

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
    const request = { create_request: { key: this.#o.key, range_end: this.#o.rangeEnd, start_revision: String(this.#next), progress_notify: true } };
    let stream: GatewayStream;
    try {
      stream = await this.#o.gateway.stream('/v3/watch', request, {
        onMessage: (doc) => {
          this.#watchIdle(generation);
          this.#chain = this.#chain.then(() => this.#handle(generation, doc)).catch((e: unknown) => this.#undecodable(generation, e));
        },
        onEnd: (e) => {
          // After what came before it has been handled.
          this.#chain = this.#chain.then(() => this.#ended(generation, e));
        },
      }, { maxBytes: WATCH_LINE_MAX_BYTES, elideValuesOver: this.#o.elideValuesOver });
    } catch (e) {
      this.#fail(generation, e);
      return;
    }
    if (this.#closed || generation !== this.#generation) {
      stream.close();
      return;
    }
    this.#stream = stream;
    this.#watchIdle(generation);
  }

  #watchIdle(generation: number): void {
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.#fail(generation, new Error(`etcd sent nothing on the watch for ${IDLE_MS / 60_000} minutes`)), IDLE_MS);
    this.#idle.unref();
  }

  /**
   * A message we cannot decode would come back on every reconnect from the same revision (a
   * poison pill): re-list instead, which refuses bad keys one by one.
   */
  #undecodable(generation: number, e: unknown): void {
    if (this.#closed || generation !== this.#generation) return;
    if (!isWeftError(e, 'WEFT_DECODE')) {
      this.#fail(generation, e);
      return;
    }
    this.close();
    this.#o.handlers.onReset(`etcd sent a watch event weft cannot decode (${e.message}); listing again`);
  }

  async #handle(generation: number, doc: unknown): Promise<void> {
    if (this.#closed || generation !== this.#generation) return;
    const d = doc as { result?: WatchResponse; error?: { message?: unknown; grpc_code?: unknown; http_code?: unknown } };
    if (d.error !== undefined) {
      const message = typeof d.error.message === 'string' ? d.error.message : JSON.stringify(d.error);
      const code = typeof d.error.grpc_code === 'number' ? d.error.grpc_code : -1;
      const err = new GatewayError(typeof d.error.http_code === 'number' ? d.error.http_code : 200, code, message);
      if (isTokenRefused(err)) this.#o.gateway.invalidateToken();
      this.#fail(generation, err);
      return;
    }
    const res = d.result;
    if (!res) return;
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
    const events = res.events ?? [];
    for (const ev of events) {
      const kv = ev.kv;
      if (!kv) continue;
      const revision = Number(kv.mod_revision);
      if (!Number.isSafeInteger(revision)) throw new WeftError('WEFT_DECODE', `etcd v3 watch: an event without a mod_revision: ${JSON.stringify(kv).slice(0, 200)}`);
      const event: WatchEvent = ev.type === 'DELETE'
        ? { type: 'delete', key: this.#o.toKey(kv.key), revision }
        : await this.#o.toPut(kv, revision);
      if (this.#closed || generation !== this.#generation) return;
      this.#next = revision + 1;
      if (event.type === 'skip') this.#o.log.warn({ key: event.key, reason: event.reason, revision }, 'etcd v3 watch: leaving a lease key out');
      this.#o.handlers.onEvent(event);
    }
    // A progress notification: every event up to the header revision has been delivered.
    const header = Number(res.header?.revision);
    if (events.length === 0 && Number.isSafeInteger(header)) this.#next = Math.max(this.#next, header + 1);
  }

  #ended(generation: number, e: Error | undefined): void {
    if (this.#closed || generation !== this.#generation) return;
    if (e instanceof BodyTooLargeError) {
      const reason = `etcd sent a watch message over ${WATCH_LINE_MAX_BYTES} bytes (after leaving out oversized values); re-list instead`;
      this.close();
      this.#o.handlers.onReset(reason);
      return;
    }
    this.#fail(generation, e ?? new Error('etcd ended the watch stream'));
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
    clearTimeout(this.#idle);
    const s = this.#stream;
    this.#stream = undefined;
    s?.close();
  }
}
