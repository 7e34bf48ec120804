// The Kubernetes calls `weft check` makes, on client-node's CoreV1Api with the credentials
// src/kube found: each with a timeout, each abortable (an interrupted check stops waiting at
// once), each failure a WeftError naming the server and the call (src/kube/errors.ts).
import type { CoreV1Api, V1Namespace, V1Node, V1Pod } from '@kubernetes/client-node';
import { connectKube, loadClientNode, type KubeClient } from '../kube/client.ts';
import { apiFailure, kubeError } from '../kube/errors.ts';

export interface CheckApi {
  readonly server: string;
  listNodes(signal?: AbortSignal): Promise<V1Node[]>;
  createNamespace(ns: V1Namespace, signal?: AbortSignal): Promise<void>;
  /** 'gone' when there was none (404) */
  deleteNamespace(name: string, signal?: AbortSignal): Promise<'deleted' | 'gone'>;
  listNamespaces(labelSelector: string, signal?: AbortSignal): Promise<V1Namespace[]>;
  createPod(namespace: string, pod: V1Pod, signal?: AbortSignal): Promise<void>;
  listPods(namespace: string, labelSelector: string, signal?: AbortSignal): Promise<V1Pod[]>;
  /** at most maxBytes of the container's output (the API's limitBytes, and cut here too) */
  podLog(namespace: string, name: string, container: string, maxBytes: number, signal?: AbortSignal): Promise<string>;
}

const REQUEST_TIMEOUT_MS = 20_000;

class ClientNodeCheckApi implements CheckApi {
  readonly server: string;
  private readonly core: (signal: AbortSignal | undefined) => CoreV1Api;

  constructor(server: string, core: (signal: AbortSignal | undefined) => CoreV1Api) {
    this.server = server;
    this.core = core;
  }

  private async call<T>(what: string, signal: AbortSignal | undefined, fn: (core: CoreV1Api) => Promise<T>): Promise<T> {
    try {
      return await fn(this.core(signal));
    } catch (e) {
      if (signal?.aborted === true) throw signal.reason;
      throw kubeError(this.server, what, e);
    }
  }

  async listNodes(signal?: AbortSignal): Promise<V1Node[]> {
    return (await this.call('list nodes', signal, (c) => c.listNode())).items;
  }

  async createNamespace(ns: V1Namespace, signal?: AbortSignal): Promise<void> {
    await this.call(`create namespace ${ns.metadata?.name ?? '?'}`, signal, (c) => c.createNamespace({ body: ns }));
  }

  async deleteNamespace(name: string, signal?: AbortSignal): Promise<'deleted' | 'gone'> {
    try {
      await this.core(signal).deleteNamespace({ name, body: { propagationPolicy: 'Background' } });
      return 'deleted';
    } catch (e) {
      if (apiFailure(e)?.code === 404) return 'gone';
      if (signal?.aborted === true) throw signal.reason;
      throw kubeError(this.server, `delete namespace ${name}`, e);
    }
  }

  async listNamespaces(labelSelector: string, signal?: AbortSignal): Promise<V1Namespace[]> {
    return (await this.call(`list namespaces (${labelSelector})`, signal, (c) => c.listNamespace({ labelSelector }))).items;
  }

  async createPod(namespace: string, pod: V1Pod, signal?: AbortSignal): Promise<void> {
    await this.call(`create pod ${namespace}/${pod.metadata?.name ?? '?'}`, signal, (c) => c.createNamespacedPod({ namespace, body: pod }));
  }

  async listPods(namespace: string, labelSelector: string, signal?: AbortSignal): Promise<V1Pod[]> {
    return (await this.call(`list pods in ${namespace}`, signal, (c) => c.listNamespacedPod({ namespace, labelSelector }))).items;
  }

  async podLog(namespace: string, name: string, container: string, maxBytes: number, signal?: AbortSignal): Promise<string> {
    const text = await this.call(`read the log of pod ${namespace}/${name}`, signal, (c) => c.readNamespacedPodLog({ namespace, name, container, limitBytes: maxBytes }));
    return typeof text === 'string' ? text.slice(0, maxBytes) : '';
  }
}

/** The API of the cluster `kube` is connected to, with its credentials and TLS settings. */
export async function checkApiFor(kube: KubeClient): Promise<CheckApi> {
  const k8s = await loadClientNode(); // the parts weft uses, not the whole package
  const core = (signal: AbortSignal | undefined): CoreV1Api => {
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const configuration = k8s.createConfiguration({
      baseServer: new k8s.ServerConfiguration(kube.server, {}),
      authMethods: { default: kube.config },
      promiseMiddleware: [{
        pre: async (ctx) => {
          ctx.setHeaderParam('User-Agent', 'weft-check');
          ctx.setSignal(signal === undefined ? timeout : AbortSignal.any([timeout, signal]));
          return ctx;
        },
        post: async (ctx) => ctx,
      }],
    });
    return new k8s.CoreV1Api(configuration);
  };
  return new ClientNodeCheckApi(kube.server, core);
}

export async function connectCheckApi(o: { kubeconfigFile?: string }): Promise<CheckApi> {
  return checkApiFor(await connectKube(o.kubeconfigFile === undefined ? {} : { kubeconfigFile: o.kubeconfigFile }));
}
