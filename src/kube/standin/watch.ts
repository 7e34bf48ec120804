// Watch streams: HTTP 200, headers flushed at once (client-node waits for them), one
// {"type","object"} JSON line per event. RV unset or "0": synthetic ADDED for every current
// object first; a concrete RV: only events after it; an RV older than the kept history: one
// ERROR event carrying a 410 Expired Status, then the end, as the real watch cache does.
// Selector transitions become ADDED/DELETED; the server-side timeout ends the stream cleanly
// (after a BOOKMARK when the client allows them). Slow readers are cut off, not buffered.
import type { ServerResponse } from 'node:http';
import { RESOURCES, apiVersionOf, type StandinResource } from './resources.ts';
import type { Matcher } from './selectors.ts';
import { StatusError, failure } from './status.ts';
import type { Store, StoreEvent } from './store.ts';
import type { KObject } from './validate.ts';

export interface WatchRequest {
  resource: StandinResource;
  namespace: string | undefined;
  matches: Matcher;
  resourceVersion: string | undefined;
  timeoutSeconds: number | undefined;
  bookmarks: boolean;
}

/** the real server's default when the client asks for no timeout: [30, 60) minutes */
const defaultTimeoutSeconds = (): number => 1800 + Math.floor(Math.random() * 1800);
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export class Watches {
  /** each open stream, with what stops its subscription */
  private readonly open = new Map<ServerResponse, () => void>();
  private readonly store: Store;
  private readonly max: number;
  private readonly lag: number | Partial<Record<string, number>>;

  constructor(store: Store, max: number, lag: number | Partial<Record<string, number>> = 0) {
    this.store = store;
    this.max = max;
    this.lag = lag;
  }

  private lagOf(resource: string): number {
    return typeof this.lag === 'number' ? this.lag : this.lag[resource] ?? 0;
  }

  get count(): number {
    return this.open.size;
  }

  /** Throws a StatusError before any byte is sent (too many watches, RV ahead of the server). */
  serve(res: ServerResponse, w: WatchRequest): void {
    if (this.open.size >= this.max) throw failure(429, 'TooManyRequests', `too many open watches (the stand-in allows ${this.max})`, { retryAfterSeconds: 1 });
    let backlog: StoreEvent[] | 'initial' | StatusError;
    if (w.resourceVersion === undefined || w.resourceVersion === '' || w.resourceVersion === '0') backlog = 'initial';
    else {
      const rv = Number(w.resourceVersion);
      if (!Number.isSafeInteger(rv) || rv < 0) throw failure(400, 'BadRequest', `invalid resourceVersion "${w.resourceVersion}"`);
      try {
        backlog = this.store.eventsSince(rv);
      } catch (e) {
        if (!(e instanceof StatusError) || e.code !== 410) throw e;
        backlog = e;
      }
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    if (backlog instanceof StatusError) {
      res.end(JSON.stringify({ type: 'ERROR', object: backlog.status }) + '\n');
      return;
    }
    let unsubscribe = (): void => undefined;
    const finish = (): void => {
      clearTimeout(timer);
      unsubscribe();
      this.open.delete(res);
    };
    const send = (type: string, object: unknown): void => {
      if (res.writableEnded || res.destroyed) return;
      if (res.writableLength > MAX_BUFFERED_BYTES) {
        finish();
        res.destroy();
        return;
      }
      res.write(JSON.stringify({ type, object }) + '\n');
    };
    const onEvent = (e: StoreEvent): void => {
      const out = this.translate(e, w);
      if (out !== undefined) send(out.type, out.object);
    };
    const timer = setTimeout(() => {
      if (w.bookmarks) send('BOOKMARK', this.bookmark(w.resource));
      finish();
      res.end();
    }, (w.timeoutSeconds ?? defaultTimeoutSeconds()) * 1000);
    const lag = this.lagOf(w.resource);
    // Equal delays fire in order, so a lagging watch still sees events in resourceVersion order.
    unsubscribe = this.store.subscribe(lag > 0 ? (e) => void setTimeout(() => onEvent(e), lag) : onEvent);
    this.open.set(res, finish);
    res.on('close', finish);
    if (backlog === 'initial') {
      for (const o of this.store.list(w.resource, w.namespace)) if (w.matches(o)) send('ADDED', o);
    } else {
      for (const e of backlog) onEvent(e);
    }
  }

  private translate(e: StoreEvent, w: WatchRequest): { type: string; object: KObject } | undefined {
    if (e.resource !== w.resource) return undefined;
    if (w.namespace !== undefined && e.object.metadata.namespace !== w.namespace) return undefined;
    const now = w.matches(e.object);
    if (e.type === 'ADDED') return now ? { type: 'ADDED', object: e.object } : undefined;
    if (e.type === 'DELETED') return now ? { type: 'DELETED', object: e.object } : undefined;
    const before = e.previous !== undefined && w.matches(e.previous);
    if (now) return { type: before ? 'MODIFIED' : 'ADDED', object: e.object };
    if (!before || e.previous === undefined) return undefined;
    // stopped matching: the last state that matched, at this event's resourceVersion
    const last = structuredClone(e.previous);
    last.metadata.resourceVersion = String(e.rv);
    return { type: 'DELETED', object: last };
  }

  private bookmark(r: StandinResource): object {
    const info = RESOURCES[r];
    return { kind: info.kind, apiVersion: apiVersionOf(info), metadata: { resourceVersion: String(this.store.resourceVersion) } };
  }

  /** end every stream cleanly, as a server-side timeout does */
  endAll(): void {
    for (const [res, finish] of [...this.open]) {
      finish();
      res.end();
    }
  }

  /** drop every stream without a clean end, as a crashed server or a cut link does */
  destroyAll(): void {
    for (const [res, finish] of [...this.open]) {
      finish();
      res.destroy();
    }
  }
}
