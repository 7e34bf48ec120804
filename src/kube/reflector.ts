// Our own list+watch loop on client-node's Watch, instead of its informer (which in 1.x stops
// on any error, never backs off, asks for no server timeout or bookmarks, and fires its error
// callback on stop()). Level-triggered: onSync always gets the whole current set.
//
//   list → remember the list's resourceVersion → watch from it (allowWatchBookmarks, a
//   jittered timeoutSeconds) → every event (BOOKMARKs too) advances the resourceVersion.
//   A clean end of the stream → watch again from the last resourceVersion, no relist.
//   ERROR 410 Expired → relist (objects missing from the new list vanish) and watch from it.
//   Any other failure → report it, back off, relist. A watchdog relists when nothing arrived
//   for longer than the watch timeout + 60 s (a half-open connection).
//
// Objects are plain JSON as the server sent them (list items are converted too, so
// timestamps are strings whichever way an object arrived). Each must have metadata.name;
// malformed ones are skipped and reported once. At most maxObjects are cached.
import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.ts';
import { WeftError } from '../errors.ts';
import type { KubeClient, KubeList } from './client.ts';
import { apiFailure, statusObjectFailure } from './errors.ts';

export interface ReflectorOptions<T> {
  client: KubeClient;
  /** '/api/v1/nodes', '/apis/coordination.k8s.io/v1/namespaces/weft/leases' */
  path: string;
  labelSelector?: string;
  /** must apply the same selector */
  list(): Promise<KubeList<T>>;
  log: Logger;
  /** bound: refuse (onError) beyond it; default 10_000 */
  maxObjects?: number;
  /** jittered watch timeout; default [300, 600) */
  timeoutSeconds?: [number, number];
  /** default [500, 30_000] */
  backoffMs?: [number, number];
  /** tests: silence after which the watchdog relists; default the watch timeout + 60 s */
  watchdogMs?: number;
  /**
   * What of each object to keep (its metadata.name and namespace must stay): a real Node is
   * 10-50 KiB, mostly its image list, of which a store reads a few fields; keeping whole
   * Nodes would cost every agent tens of MiB in a large cluster.
   */
  slim?: (obj: T) => T;
}

export interface ReflectorHandlers<T> {
  onSync(objects: ReadonlyMap<string, T>): void;
  onError(message: string): void;
  onHealthy(): void;
}

type WatchEnd = 'ended' | 'expired' | 'watchdog';
const STOPPED = Symbol('stopped');
const MAX_MALFORMED_REPORTS = 100;

export class Reflector<T extends { metadata?: V1ObjectMeta }> {
  readonly stats = { lists: 0, watches: 0, events: 0 };
  private readonly o: ReflectorOptions<T>;
  private readonly maxObjects: number;
  private h: ReflectorHandlers<T> | undefined;
  private objects = new Map<string, T>();
  private rv = '';
  private isSynced = false;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private watchAbort: AbortController | undefined;
  private stopSignal!: () => void;
  private readonly stopPromise = new Promise<typeof STOPPED>((resolve) => (this.stopSignal = () => resolve(STOPPED)));
  private syncPending: NodeJS.Immediate | undefined;
  private unhealthy = false;
  private readonly reported = new Set<string>();
  private readonly malformed = new Set<string>();
  private boundReported = false;

  constructor(o: ReflectorOptions<T>) {
    this.o = o;
    this.maxObjects = o.maxObjects ?? 10_000;
  }

  get synced(): boolean {
    return this.isSynced;
  }

  /** the resourceVersion the next watch starts from */
  get resourceVersion(): string {
    return this.rv;
  }

  start(h: ReflectorHandlers<T>): void {
    if (this.h !== undefined) throw new WeftError('WEFT_INTERNAL', `reflector for ${this.o.path} started twice`);
    this.h = h;
    this.loop = this.run();
  }

  /** No callback after this resolves; an in-flight list is abandoned, not awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopSignal();
    this.watchAbort?.abort();
    if (this.syncPending !== undefined) clearImmediate(this.syncPending);
    this.syncPending = undefined;
    await this.loop;
  }

  private async run(): Promise<void> {
    let failures = 0;
    let needList = true;
    let expiredInRow = 0;
    let quickEnds = 0;
    while (!this.stopped) {
      try {
        if (needList) {
          if ((await this.untilStopped(this.relist())) === STOPPED) return;
          needList = false;
        }
        const started = Date.now();
        const eventsBefore = this.stats.events;
        const end = await this.untilStopped(this.watchOnce());
        if (end === STOPPED) return;
        failures = 0;
        if (end === 'ended') {
          expiredInRow = 0;
          // a server or proxy that ends every stream at once must not make us spin
          quickEnds = Date.now() - started < 1000 && this.stats.events === eventsBefore ? quickEnds + 1 : 0;
          if (quickEnds > 1 && (await this.sleep(this.backoff(quickEnds - 2))) === STOPPED) return;
          continue;
        }
        needList = true;
        if (end === 'watchdog') {
          expiredInRow = 0;
          this.o.log.warn({ path: this.o.path }, 'kubernetes watch silent for too long: relisting');
        } else if (expiredInRow++ > 0) {
          // expired again right after a relist: the server is not keeping up; do not hot-loop
          if ((await this.sleep(this.backoff(expiredInRow - 2))) === STOPPED) return;
        }
      } catch (e) {
        if (this.stopped) return;
        this.report(e instanceof Error ? e.message : String(e));
        needList = true;
        if ((await this.sleep(this.backoff(failures++))) === STOPPED) return;
      }
    }
  }

  private untilStopped<R>(p: Promise<R>): Promise<R | typeof STOPPED> {
    p.catch(() => undefined); // an abandoned call must not become an unhandled rejection
    return Promise.race([p, this.stopPromise]);
  }

  private backoff(n: number): number {
    const [min, max] = this.o.backoffMs ?? [500, 30_000];
    const d = Math.min(max, min * 2 ** Math.min(n, 30));
    return d / 2 + Math.random() * (d / 2);
  }

  private async sleep(ms: number): Promise<void | typeof STOPPED> {
    let timer: NodeJS.Timeout | undefined;
    const slept = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    const r = await Promise.race([slept, this.stopPromise]);
    clearTimeout(timer);
    return r;
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const list = await this.o.list();
    if (this.stopped) return;
    if (list.items.length > this.maxObjects) {
      throw new WeftError('WEFT_KUBE', `kubernetes API ${this.o.client.server}: ${this.o.path} lists ${list.items.length} objects, more than weft's bound of ${this.maxObjects}; refusing the list`);
    }
    const next = new Map<string, T>();
    for (const item of list.items) {
      const plain = this.slimmed(JSON.parse(JSON.stringify(item)) as T);
      const key = this.keyOf(plain);
      if (key !== undefined) next.set(key, plain);
    }
    this.objects = next;
    this.rv = list.resourceVersion;
    this.isSynced = true;
    this.boundReported = false;
    if (this.unhealthy) {
      this.unhealthy = false;
      this.reported.clear();
      this.h?.onHealthy();
    }
    this.scheduleSync();
  }

  private watchOnce(): Promise<WatchEnd> {
    const [lo, hi] = this.o.timeoutSeconds ?? [300, 600];
    const timeoutSeconds = Math.floor(lo + Math.random() * Math.max(0, hi - lo));
    const watchdogMs = this.o.watchdogMs ?? (timeoutSeconds + 60) * 1000;
    this.stats.watches++;
    return new Promise<WatchEnd>((resolve, reject) => {
      let outcome: WatchEnd | Error | undefined;
      let controller: AbortController | undefined;
      const abort = (): void => controller?.abort();
      let dog = setTimeout(() => fire('watchdog'), watchdogMs);
      const fire = (o: WatchEnd | Error): void => {
        outcome ??= o;
        abort();
      };
      const onEvent = (type: string, obj: unknown): void => {
        if (this.stopped || outcome !== undefined) return;
        clearTimeout(dog);
        dog = setTimeout(() => fire('watchdog'), watchdogMs);
        this.stats.events++;
        const err = this.apply(type, obj);
        if (err !== undefined) fire(err);
      };
      const done = (err: unknown): void => {
        clearTimeout(dog);
        if (this.watchAbort === controller) this.watchAbort = undefined;
        if (outcome instanceof Error) reject(outcome);
        else if (outcome !== undefined) resolve(outcome);
        else if (this.stopped || err === null || err === undefined) resolve('ended');
        else if ((err as { name?: unknown }).name === 'TimeoutError') resolve('watchdog');
        else if (apiFailure(err)?.code === 410) resolve('expired');
        else reject(this.o.client.describeError(`watch ${this.o.path}`, err));
      };
      const query: Record<string, string | number | boolean | undefined> = {
        allowWatchBookmarks: true, timeoutSeconds, resourceVersion: this.rv === '' ? undefined : this.rv, labelSelector: this.o.labelSelector,
      };
      this.o.client.watch(this.o.path, query, onEvent, done, watchdogMs + 30_000).then((c) => {
        controller = c;
        this.watchAbort = c;
        if (this.stopped || outcome !== undefined) c.abort();
      }, (e: unknown) => {
        clearTimeout(dog);
        reject(this.o.client.describeError(`watch ${this.o.path}`, e));
      });
    });
  }

  /** One watch event into the cache; an Error (or 'expired') ends this watch. */
  private apply(type: string, obj: unknown): WatchEnd | Error | undefined {
    if (type === 'ERROR') {
      const f = statusObjectFailure(obj);
      if (f.code === 410) return 'expired';
      return new WeftError(f.code >= 500 || f.code === 429 ? 'WEFT_NOT_READY' : 'WEFT_KUBE',
        `kubernetes API ${this.o.client.server}: watch ${this.o.path} failed: HTTP ${f.code}${f.reason === undefined ? '' : ' ' + f.reason}${f.message === undefined ? '' : ': ' + f.message}`);
    }
    const rv = (obj as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (typeof rv === 'string' && rv !== '') this.rv = rv;
      return undefined;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return undefined;
    const key = this.keyOf(obj);
    if (typeof rv === 'string' && rv !== '') this.rv = rv;
    if (key === undefined) return undefined;
    if (type === 'DELETED') this.objects.delete(key);
    else if (this.objects.has(key) || this.objects.size < this.maxObjects) this.objects.set(key, this.slimmed(obj as T));
    else if (!this.boundReported) {
      this.boundReported = true;
      this.report(`kubernetes API ${this.o.client.server}: ${this.o.path} has more than weft's bound of ${this.maxObjects} objects; ignoring the rest`);
    }
    this.scheduleSync();
    return undefined;
  }

  private slimmed(obj: T): T {
    return this.o.slim === undefined ? obj : this.o.slim(obj);
  }

  private keyOf(obj: unknown): string | undefined {
    const meta = typeof obj === 'object' && obj !== null ? (obj as { metadata?: unknown }).metadata : undefined;
    const m = typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>) : {};
    const { name, namespace } = m;
    if (typeof name === 'string' && name !== '' && name.length <= 253 && (namespace === undefined || (typeof namespace === 'string' && namespace.length <= 253))) {
      return namespace === undefined || namespace === '' ? name : `${namespace}/${name}`;
    }
    const what = typeof name === 'string' ? `name "${name.slice(0, 64)}"` : 'no metadata.name';
    if (this.malformed.size < MAX_MALFORMED_REPORTS && !this.malformed.has(what)) {
      this.malformed.add(what);
      this.h?.onError(`kubernetes API ${this.o.client.server}: ${this.o.path} sent a malformed object (${what}); skipping it`);
    }
    return undefined;
  }

  private report(message: string): void {
    this.unhealthy = true;
    if (this.reported.has(message) || this.stopped) return;
    if (this.reported.size > 100) this.reported.clear();
    this.reported.add(message);
    this.o.log.warn({ path: this.o.path }, message);
    this.h?.onError(message);
  }

  private scheduleSync(): void {
    if (this.syncPending !== undefined || this.stopped) return;
    this.syncPending = setImmediate(() => {
      this.syncPending = undefined;
      if (!this.stopped) this.h?.onSync(new Map(this.objects));
    });
  }
}
