// The stand-in's storage: one global resourceVersion counter shared by every kind (the etcd
// revision), a bounded event history for watches, and create/replace/remove with the checks
// every write path shares (AlreadyExists, stale resourceVersion, DELETE preconditions).
// No-op writes return the stored object without bumping the counter or emitting an event.
import { randomUUID } from 'node:crypto';
import { RESOURCES, apiVersionOf, type ResourceInfo, type StandinResource } from './resources.ts';
import { alreadyExists, conflict, failure, modifiedConflict, notFound } from './status.ts';
import type { KObject } from './validate.ts';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';
export interface StoreEvent { type: EventType; resource: StandinResource; rv: number; object: KObject; previous?: KObject }
export interface Preconditions { uid?: string; resourceVersion?: string }

/** JSON with sorted keys: two encodings of one object compare equal, as Go's struct encoding does. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export class Store {
  private rv: number;
  /** every event with rv > floor is still in history */
  private floor: number;
  private history: StoreEvent[] = [];
  private readonly objects = new Map<StandinResource, Map<string, KObject>>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private readonly historyLimit: number;

  constructor(historyLimit: number, startRv = 1000) {
    this.historyLimit = Math.max(1, historyLimit);
    this.rv = startRv;
    this.floor = startRv;
    for (const r of Object.keys(RESOURCES) as StandinResource[]) this.objects.set(r, new Map());
  }

  get resourceVersion(): number {
    return this.rv;
  }

  /** the oldest resourceVersion a watch may start from */
  get oldestWatchable(): number {
    return this.floor;
  }

  private bucket(r: StandinResource): Map<string, KObject> {
    const b = this.objects.get(r);
    if (b === undefined) throw new Error(`unknown resource ${r}`);
    return b;
  }

  private static key(ns: string | undefined, name: string): string {
    return ns === undefined || ns === '' ? name : `${ns}/${name}`;
  }

  get(r: StandinResource, ns: string | undefined, name: string): KObject | undefined {
    const o = this.bucket(r).get(Store.key(RESOURCES[r].namespaced ? ns : undefined, name));
    return o === undefined ? undefined : structuredClone(o);
  }

  list(r: StandinResource, ns?: string): KObject[] {
    const out: KObject[] = [];
    for (const o of this.bucket(r).values()) if (ns === undefined || o.metadata.namespace === ns) out.push(structuredClone(o));
    return out.sort((a, b) => Store.key(a.metadata.namespace, a.metadata.name).localeCompare(Store.key(b.metadata.namespace, b.metadata.name)));
  }

  /** every stored object, for the garbage collector (not copies: read only) */
  *entries(): Generator<[StandinResource, Readonly<KObject>]> {
    for (const [r, b] of this.objects) for (const o of b.values()) yield [r, o];
  }

  create(r: StandinResource, input: KObject): KObject {
    const info = RESOURCES[r];
    const m = input.metadata;
    if (info.namespaced && this.get('namespaces', undefined, m.namespace ?? '') === undefined) {
      throw notFound(RESOURCES.namespaces, m.namespace ?? '');
    }
    const key = Store.key(info.namespaced ? m.namespace : undefined, m.name);
    if (this.bucket(r).has(key)) throw alreadyExists(info, m.name);
    const obj = structuredClone(input);
    obj.apiVersion = apiVersionOf(info);
    obj.kind = info.kind;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = now();
    if (!info.namespaced) delete obj.metadata.namespace;
    delete obj.metadata.generateName;
    return this.commit(info, key, 'ADDED', obj, undefined);
  }

  /** expectRv: the caller's metadata.resourceVersion when the write is conditional */
  replace(r: StandinResource, input: KObject, expectRv: string | undefined): KObject {
    const info = RESOURCES[r];
    const key = Store.key(info.namespaced ? input.metadata.namespace : undefined, input.metadata.name);
    const old = this.bucket(r).get(key);
    if (old === undefined) throw notFound(info, input.metadata.name);
    if (expectRv !== undefined && expectRv !== '' && expectRv !== old.metadata.resourceVersion) throw modifiedConflict(info, input.metadata.name);
    const obj = structuredClone(input);
    obj.apiVersion = apiVersionOf(info);
    obj.kind = info.kind;
    obj.metadata.uid = old.metadata.uid;
    obj.metadata.creationTimestamp = old.metadata.creationTimestamp;
    obj.metadata.resourceVersion = old.metadata.resourceVersion;
    if (info.namespaced) obj.metadata.namespace = old.metadata.namespace;
    else delete obj.metadata.namespace;
    if (canonical(obj) === canonical(old)) return structuredClone(old);
    return this.commit(info, key, 'MODIFIED', obj, old);
  }

  remove(r: StandinResource, ns: string | undefined, name: string, pre: Preconditions = {}): KObject {
    const info = RESOURCES[r];
    const key = Store.key(info.namespaced ? ns : undefined, name);
    const old = this.bucket(r).get(key);
    if (old === undefined) throw notFound(info, name);
    if (pre.uid !== undefined && pre.uid !== old.metadata.uid) {
      throw conflict(info, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid ?? ''}`);
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(info, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion ?? ''}`);
    }
    if (r === 'namespaces') this.removeContents(name);
    this.bucket(r).delete(key);
    const last = structuredClone(old);
    this.rv++;
    last.metadata.resourceVersion = String(this.rv);
    this.emit({ type: 'DELETED', resource: r, rv: this.rv, object: last, previous: old });
    return structuredClone(last);
  }

  private removeContents(ns: string): void {
    for (const [r, info] of Object.entries(RESOURCES) as [StandinResource, ResourceInfo][]) {
      if (!info.namespaced) continue;
      for (const o of this.list(r, ns)) this.remove(r, ns, o.metadata.name);
    }
  }

  private commit(info: ResourceInfo, key: string, type: EventType, obj: KObject, previous: KObject | undefined): KObject {
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    this.bucket(info.name).set(key, obj);
    const ev: StoreEvent = { type, resource: info.name, rv: this.rv, object: obj };
    if (previous !== undefined) ev.previous = previous;
    this.emit(ev);
    return structuredClone(obj);
  }

  private emit(ev: StoreEvent): void {
    this.history.push(ev);
    while (this.history.length > this.historyLimit) {
      const dropped = this.history.shift();
      if (dropped !== undefined) this.floor = dropped.rv;
    }
    for (const l of [...this.listeners]) l(ev);
  }

  /** events after rv, or 410 Expired if some of them are no longer kept */
  eventsSince(rv: number): StoreEvent[] {
    if (rv < this.floor) throw failure(410, 'Expired', `too old resource version: ${rv} (${this.floor})`);
    if (rv > this.rv) {
      throw failure(504, 'Timeout', `Too large resource version: ${rv}, current: ${this.rv}`, { causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }], retryAfterSeconds: 1 });
    }
    return this.history.filter((e) => e.rv > rv);
  }

  compact(): void {
    this.history = [];
    this.floor = this.rv;
  }

  subscribe(fn: (e: StoreEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** a snapshot for --state, and its restore (history starts empty: older watches get 410) */
  dump(): { resourceVersion: number; objects: [StandinResource, KObject][] } {
    return { resourceVersion: this.rv, objects: [...this.entries()].map(([r, o]) => [r, structuredClone(o)]) };
  }

  restore(d: { resourceVersion: number; objects: [StandinResource, KObject][] }): void {
    for (const b of this.objects.values()) b.clear();
    for (const [r, o] of d.objects) {
      if (!Object.hasOwn(RESOURCES, r)) continue;
      this.bucket(r).set(Store.key(RESOURCES[r].namespaced ? o.metadata.namespace : undefined, o.metadata.name), o);
    }
    this.rv = d.resourceVersion;
    this.compact();
  }
}
