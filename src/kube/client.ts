// The only code that talks to the Kubernetes API (besides src/check and the stand-in's tests).
// @kubernetes/client-node is imported lazily in connectKube, so etcd and mesh modes never load
// it. Every call has a timeout (a hung API server cannot hang the agent) and every failure is
// a WeftError naming the server, what failed and what to do (src/kube/errors.ts). The few
// outcomes callers branch on (AlreadyExists, Conflict, NotFound) are return values instead.
import type { CoordinationV1Api, CoreV1Api, KubeConfig, RequestContext, SecurityAuthentication, V1ConfigMap, V1Lease, V1Node } from '@kubernetes/client-node';
import { loadKubeConfig, type ClientNode } from './config.ts';
import { apiFailure, kubeError } from './errors.ts';

export type { V1ConfigMap, V1Lease, V1Node, V1ObjectMeta } from '@kubernetes/client-node';

export interface KubeConnectOptions {
  kubeconfigFile?: string;
  apiUrl?: string;
  /** tests: the directory standing for "/" when looking for var/run/secrets/kubernetes.io/serviceaccount */
  inClusterRoot?: string;
  /** per request (default 15 s); watches use their own inactivity limit */
  requestTimeoutMs?: number;
}

export interface KubeList<T> { items: T[]; resourceVersion: string }

export type WatchEventHandler = (type: string, object: unknown) => void;

const DEFAULT_TIMEOUT_MS = 15_000;

/** The client-node API weft uses (src/kube/client-node.ts), loaded on first use. */
export function loadClientNode(): Promise<ClientNode> {
  return import('./client-node.ts');
}

/** In-cluster (ServiceAccount files + KUBERNETES_SERVICE_HOST/PORT) unless a kubeconfig file is
 *  given, else $KUBECONFIG/~/.kube/config. apiUrl overrides the server. No request is made. */
export async function connectKube(o: KubeConnectOptions = {}): Promise<KubeClient> {
  const k8s = await loadClientNode();
  const loaded = loadKubeConfig(k8s, o);
  return new KubeClient(k8s, loaded.kc, loaded.server, loaded.source, loaded.namespace, o.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS);
}

function is409(e: unknown, reason: string): boolean {
  const f = apiFailure(e);
  return f !== undefined && f.code === 409 && f.reason === reason;
}

const is404 = (e: unknown): boolean => apiFailure(e)?.code === 404;

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;
/** how long one connection pool serves requests before the TLS settings (a rotated CA) are re-read */
const DISPATCHER_REUSE_MS = 10 * 60_000;

/** client-node builds a new connection pool for every request, so every call over HTTPS would
 *  be a new TCP and TLS handshake; reuse one pool for a while instead. */
function reusingDispatcher(config: KubeConfig): SecurityAuthentication {
  let pool: { dispatcher: Dispatcher; since: number } | undefined;
  return {
    getName: () => 'weft: kubeconfig authentication, one connection pool',
    applySecurityAuthentication: async (ctx: RequestContext) => {
      await config.applySecurityAuthentication(ctx);
      const fresh = ctx.getDispatcher();
      if (fresh === undefined) return;
      if (pool === undefined || Date.now() - pool.since > DISPATCHER_REUSE_MS) {
        const old = pool?.dispatcher;
        pool = { dispatcher: fresh, since: Date.now() };
        void old?.close().catch(() => undefined);
        return;
      }
      ctx.setDispatcher(pool.dispatcher);
      void fresh.close().catch(() => undefined);
    },
  };
}

export class KubeClient {
  readonly server: string;
  /** the KubeConfig, for src/check and tests that need other APIs */
  readonly config: KubeConfig;
  /** where the credentials came from ("in-cluster ServiceAccount", "kubeconfig <path>") */
  readonly source: string;
  /** the ServiceAccount's namespace (in a pod) or the kubeconfig context's, if any */
  readonly namespace: string | undefined;
  readonly requestTimeoutMs: number;
  private readonly k8s: ClientNode;
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;

  constructor(k8s: ClientNode, config: KubeConfig, server: string, source: string, namespace: string | undefined, requestTimeoutMs: number) {
    this.k8s = k8s;
    this.config = config;
    this.server = server;
    this.source = source;
    this.namespace = namespace;
    this.requestTimeoutMs = requestTimeoutMs;
    const configuration = k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(server, {}),
      authMethods: { default: reusingDispatcher(config) },
      promiseMiddleware: [{
        pre: async (ctx) => {
          ctx.setHeaderParam('User-Agent', 'weft');
          ctx.setSignal(AbortSignal.timeout(requestTimeoutMs));
          return ctx;
        },
        post: async (ctx) => ctx,
      }],
    });
    this.core = new k8s.CoreV1Api(configuration);
    this.coordination = new k8s.CoordinationV1Api(configuration);
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw kubeError(this.server, what, e);
    }
  }

  private async orNull<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
    try {
      return await fn();
    } catch (e) {
      if (is404(e)) return null;
      throw kubeError(this.server, what, e);
    }
  }

  getNode(name: string): Promise<V1Node | null> {
    return this.orNull(`GET node ${name}`, () => this.core.readNode({ name }));
  }

  async listNodes(labelSelector?: string): Promise<KubeList<V1Node>> {
    const list = await this.call('list nodes', () => this.core.listNode(labelSelector === undefined ? {} : { labelSelector }));
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** merge patch of metadata.annotations on nodes/<name>/status (null deletes a key); needs only nodes/status patch RBAC */
  async patchNodeAnnotations(name: string, annotations: Record<string, string | null>): Promise<void> {
    const options = this.k8s.setHeaderOptions('Content-Type', this.k8s.PatchStrategy.MergePatch);
    await this.call(`patch annotations of node ${name} (nodes/status)`, () =>
      this.core.patchNodeStatus({ name, body: { metadata: { annotations } } }, options));
  }

  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | null> {
    return this.orNull(`GET configmap ${namespace}/${name}`, () => this.core.readNamespacedConfigMap({ namespace, name }));
  }

  getLease(namespace: string, name: string): Promise<V1Lease | null> {
    return this.orNull(`GET lease ${namespace}/${name}`, () => this.coordination.readNamespacedLease({ namespace, name }));
  }

  async listLeases(namespace: string, labelSelector: string): Promise<KubeList<V1Lease>> {
    const list = await this.call(`list leases in ${namespace} (${labelSelector})`, () => this.coordination.listNamespacedLease({ namespace, labelSelector }));
    return { items: list.items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  /** 'exists' on 409 AlreadyExists. Lease times must be V1MicroTime (see microTime()). */
  async createLease(namespace: string, lease: V1Lease): Promise<V1Lease | 'exists'> {
    try {
      return await this.coordination.createNamespacedLease({ namespace, body: lease });
    } catch (e) {
      if (is409(e, 'AlreadyExists')) return 'exists';
      throw kubeError(this.server, `create lease ${namespace}/${lease.metadata?.name ?? '?'}`, e);
    }
  }

  /** PUT with metadata.resourceVersion; 'conflict' on 409 Conflict (someone else wrote first) */
  async replaceLease(namespace: string, lease: V1Lease): Promise<V1Lease | 'conflict'> {
    const name = lease.metadata?.name ?? '';
    try {
      return await this.coordination.replaceNamespacedLease({ namespace, name, body: lease });
    } catch (e) {
      if (is409(e, 'Conflict')) return 'conflict';
      throw kubeError(this.server, `update lease ${namespace}/${name}`, e);
    }
  }

  /** DELETE with optional preconditions; 'gone' on 404, 'conflict' on a failed precondition */
  async deleteLease(namespace: string, name: string, preconditions?: { uid?: string; resourceVersion?: string }): Promise<'deleted' | 'gone' | 'conflict'> {
    try {
      await this.coordination.deleteNamespacedLease({ namespace, name, body: preconditions === undefined ? {} : { preconditions } });
      return 'deleted';
    } catch (e) {
      if (is404(e)) return 'gone';
      if (is409(e, 'Conflict')) return 'conflict';
      throw kubeError(this.server, `delete lease ${namespace}/${name}`, e);
    }
  }

  /** A V1MicroTime for Lease acquireTime/renewTime: the API refuses anything but 6 fractional digits. */
  microTime(at: Date = new Date()): Date {
    return new this.k8s.V1MicroTime(at.getTime());
  }

  /** One watch request (client-node's Watch): resolves once the stream is open or has failed;
   *  done is called exactly once. inactivityMs: client-node aborts a stream silent for longer. */
  watch(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: WatchEventHandler, done: (err: unknown) => void, inactivityMs?: number): Promise<AbortController> {
    const w = new this.k8s.Watch(this.config);
    // 2.0.x aborts a watch after 30 s of silence; our reflector runs its own, longer watchdog
    const settable = w as unknown as { requestTimeoutMs?: unknown };
    if (inactivityMs !== undefined && typeof settable.requestTimeoutMs === 'number') settable.requestTimeoutMs = inactivityMs;
    return w.watch(path, query, (type, obj) => onEvent(type, obj), done);
  }

  /** the error a failed watch or list becomes, as for every other call */
  describeError(what: string, e: unknown): Error {
    return kubeError(this.server, what, e);
  }
}
