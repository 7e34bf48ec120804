// A stand-in API server for tests and the lab. It is NOT Kubernetes: it implements only the
// paths and semantics weft relies on, with the real server's rules for each, over real HTTP
// (or HTTPS) so that tests go through @kubernetes/client-node exactly as the agent does.
//
// Implemented: nodes (+ status), namespaces (+ status), configmaps, pods (+ status, + log fed
// by setPodLog), coordination.k8s.io/v1 leases; GET, list, watch, POST, PUT, PATCH (merge,
// strategic merge treated as merge, JSON patch), DELETE. One global resourceVersion; no bump
// on no-op writes; create: server-set uid/creationTimestamp, AlreadyExists, 422 when a
// resourceVersion is given; PUT: Conflict on a stale resourceVersion, 422 without one for
// Leases (Nodes, ConfigMaps, Pods, Namespaces allow it); the status subresource keeps spec and
// accepts metadata, the main endpoint keeps status; Node podCIDR may only go from "" to a value;
// DELETE preconditions (uid, resourceVersion); label selectors (=, ==, !=, in, notin, exists)
// and the field selectors the real server indexes; watch from "0" (synthetic ADDED) or from a
// resourceVersion, 410 Expired as an ERROR event in a 200 stream once the history is exceeded,
// DELETED with the last state at the deletion's resourceVersion, selector transitions as
// ADDED/DELETED, timeoutSeconds, BOOKMARK at the timeout; background GC by ownerReference uid;
// namespace deletion removes its objects; MicroTime (6 fractional digits) on Lease times;
// Status error bodies; bearer token; bounded bodies (413), watches (429) and history.
//
// Not implemented (404/400/415 with a Status saying so): other kinds, discovery (/api,
// /apis; typed clients never call it), server-side apply, dryRun, deletecollection,
// Foreground/Orphan propagation, finalizers and graceful deletion (a Pod goes at once),
// limit/continue paging (lists are whole), resourceVersionMatch, sendInitialEvents, RBAC
// (any valid token may do anything), admission (no defaults beyond pods' Pending phase),
// generation, managedFields, no scheduler and no kubelet (in-process actors play them).
import http from 'node:http';
import https from 'node:https';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { Store, type StoreEvent } from './store.ts';
import { Watches } from './watch.ts';
import { collectGarbage } from './gc.ts';
import { handler } from './http.ts';
import { createObject } from './operations.ts';
import type { StandinResource } from './resources.ts';
import { StatusError } from './status.ts';
import type { KObject } from './validate.ts';

export type { StandinResource } from './resources.ts';
export { StatusError } from './status.ts';

export interface StandinOptions {
  host?: string;
  port?: number;
  /** PEM; plain HTTP otherwise */
  tls?: { cert: string; key: string };
  /** require "Authorization: Bearer <token>" */
  token?: string;
  /** watch events kept; a watch from an older resourceVersion gets ERROR 410 Expired (default 1000) */
  historyLimit?: number;
  /** background GC delay after an owner is deleted (default 200); negative: no GC (a cluster without one) */
  gcDelayMs?: number;
  /** request bodies above this are refused with 413 (default 3 MiB, the real server's limit) */
  maxBodyBytes?: number;
  /** open watches above this are refused with 429 (default 1000) */
  maxWatches?: number;
  /** namespaces that exist at start besides default, kube-system, kube-public, kube-node-lease (default ['weft']) */
  namespaces?: string[];
  /**
   * How late watch events reach open watches (default 0: as the write happens). A real API
   * server's watch cache lags its writes; a client must not take "not in my watch yet" for
   * "deleted" (per resource: { leases: 300 } delays only the Leases' watches).
   */
  watchLagMs?: number | Partial<Record<StandinResource, number>>;
}

const MAX_REQUEST_LOG = 2000;

export class KubeStandin {
  readonly requests: { method: string; path: string; query: string }[] = [];
  private readonly server: http.Server;
  private readonly store: Store;
  private readonly watches: Watches;
  private readonly token: string | undefined;
  private readonly tls: { cert: string; key: string } | undefined;
  private readonly gcDelayMs: number;
  private readonly logs = new Map<string, string>();
  private gcTimer: NodeJS.Timeout | undefined;
  private listeningUrl = '';
  private connectionCount = 0;
  private up = true;
  private closed = false;

  private constructor(o: StandinOptions) {
    this.token = o.token;
    this.tls = o.tls;
    this.gcDelayMs = o.gcDelayMs ?? 200;
    this.store = new Store(o.historyLimit ?? 1000);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease', ...(o.namespaces ?? ['weft'])]) {
      if (this.store.get('namespaces', undefined, ns) === undefined) createObject(this.store, 'namespaces', undefined, { metadata: { name: ns } }, true);
    }
    this.watches = new Watches(this.store, o.maxWatches ?? 1000, o.watchLagMs ?? 0);
    const h = handler({
      store: this.store, watches: this.watches, token: o.token, maxBodyBytes: o.maxBodyBytes ?? 3 * 1024 * 1024,
      available: () => this.up,
      podLog: (ns, name) => this.logs.get(`${ns}/${name}`),
      record: (method, path, query) => {
        this.requests.push({ method, path, query });
        if (this.requests.length > MAX_REQUEST_LOG) this.requests.splice(0, this.requests.length - MAX_REQUEST_LOG);
      },
    });
    this.server = o.tls === undefined ? http.createServer(h) : https.createServer({ cert: o.tls.cert, key: o.tls.key }, h);
    this.server.on('connection', () => void this.connectionCount++);
    this.store.subscribe((e) => this.maybeScheduleGc(e));
  }

  /** TCP connections accepted so far (clients should reuse theirs) */
  get connections(): number {
    return this.connectionCount;
  }

  static async start(o: StandinOptions = {}): Promise<KubeStandin> {
    const s = new KubeStandin(o);
    const host = o.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(o.port ?? 0, host, () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    const { port } = s.server.address() as AddressInfo;
    s.listeningUrl = `${o.tls === undefined ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    return s;
  }

  get url(): string {
    return this.listeningUrl;
  }

  kubeconfigYaml(): string {
    const cluster: Record<string, unknown> = { server: this.url };
    if (this.tls === undefined) cluster['insecure-skip-tls-verify'] = true;
    else cluster['certificate-authority-data'] = Buffer.from(this.tls.cert).toString('base64');
    return stringify({
      apiVersion: 'v1', kind: 'Config',
      clusters: [{ name: 'weft-standin', cluster }],
      users: [{ name: 'weft-standin', user: this.token === undefined ? {} : { token: this.token } }],
      contexts: [{ name: 'weft-standin', context: { cluster: 'weft-standin', user: 'weft-standin' } }],
      'current-context': 'weft-standin',
    });
  }

  writeKubeconfig(path: string): void {
    writeFileSync(path, this.kubeconfigYaml(), { mode: 0o600 });
  }

  // In-process actors (kubelet, controllers, kubectl) write through the same store as HTTP
  // clients: every write bumps the global resourceVersion and reaches the watches. Errors are
  // StatusError (with .code and .status) as the API would answer them.

  create(resource: StandinResource, obj: object): object {
    const ns = (obj as Partial<KObject>).metadata?.namespace;
    return createObject(this.store, resource, ns, obj, false);
  }

  /** unconditional replace of the whole object, status included */
  update(resource: StandinResource, obj: object): object {
    return this.store.replace(resource, structuredClone(obj) as KObject, undefined);
  }

  get(resource: StandinResource, namespace: string | undefined, name: string): object | undefined {
    return this.store.get(resource, namespace, name);
  }

  list(resource: StandinResource, namespace?: string): object[] {
    return this.store.list(resource, namespace);
  }

  delete(resource: StandinResource, namespace: string | undefined, name: string): boolean {
    try {
      this.store.remove(resource, namespace, name);
      return true;
    } catch (e) {
      if (e instanceof StatusError && e.code === 404) return false;
      throw e;
    }
  }

  /** a kubelet registering its Node */
  addNode(name: string, o: { internalIP?: string; podCIDR?: string; labels?: Record<string, string> } = {}): object {
    const addresses = [{ type: 'Hostname', address: name }];
    if (o.internalIP !== undefined) addresses.unshift({ type: 'InternalIP', address: o.internalIP });
    const spec: Record<string, unknown> = {};
    if (o.podCIDR !== undefined) Object.assign(spec, { podCIDR: o.podCIDR, podCIDRs: [o.podCIDR] });
    return this.create('nodes', {
      metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', ...o.labels } },
      spec,
      status: { addresses, conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] },
    });
  }

  /** what GET pods/<name>/log answers (a kubelet's view of the container output) */
  setPodLog(namespace: string, name: string, text: string): void {
    this.logs.set(`${namespace}/${name}`, text);
  }

  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  /** forget history: a watch from any older resourceVersion gets ERROR 410 */
  compact(): void {
    this.store.compact();
  }

  /** close every open watch stream cleanly, as a server-side timeout does */
  endWatches(): void {
    this.watches.endAll();
  }

  get openWatches(): number {
    return this.watches.count;
  }

  /** false: every request answers 503 and open watches drop (an API outage) */
  setAvailable(up: boolean): void {
    this.up = up;
    if (!up) this.watches.destroyAll();
  }

  /** run the garbage collector now; returns how many objects it deleted */
  collectGarbage(): number {
    if (this.gcTimer !== undefined) clearTimeout(this.gcTimer);
    this.gcTimer = undefined;
    return collectGarbage(this.store);
  }

  /** for --state: everything stored, and its restore */
  dump(): ReturnType<Store['dump']> {
    return this.store.dump();
  }

  restore(d: ReturnType<Store['dump']>): void {
    this.store.restore(d);
  }

  onChange(fn: (e: { type: string; resource: StandinResource }) => void): () => void {
    return this.store.subscribe((e) => fn({ type: e.type, resource: e.resource }));
  }

  /** deletions, and writes that set owner references (an owner may never have existed) */
  private maybeScheduleGc(e: StoreEvent): void {
    if (this.gcDelayMs < 0 || this.closed || this.gcTimer !== undefined) return;
    if (e.type !== 'DELETED' && (e.object.metadata.ownerReferences ?? []).length === 0) return;
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      collectGarbage(this.store);
    }, this.gcDelayMs);
    this.gcTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.gcTimer !== undefined) clearTimeout(this.gcTimer);
    this.watches.destroyAll();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

