// Where the Kubernetes credentials come from: an explicit kubeconfig file (flanneld's
// --kubeconfig-file), else the pod's ServiceAccount (token, ca.crt, namespace files plus
// KUBERNETES_SERVICE_HOST/PORT), else $KUBECONFIG or ~/.kube/config. apiUrl overrides the
// server. Problems are named with the file or variable to fix, never client-node's
// fallback to http://localhost:8080.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { WeftError } from '../errors.ts';

export type ClientNode = typeof import('./client-node.ts');
export const SERVICE_ACCOUNT_DIR = 'var/run/secrets/kubernetes.io/serviceaccount';

export interface LoadedConfig {
  kc: KubeConfig;
  server: string;
  /** "in-cluster", "kubeconfig <path>" */
  source: string;
  /** the ServiceAccount's namespace file, or the kubeconfig context's namespace */
  namespace: string | undefined;
}

export interface LoadOptions { kubeconfigFile?: string | undefined; apiUrl?: string | undefined; inClusterRoot?: string | undefined }

function loadFile(k8s: ClientNode, path: string): KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (e) {
    throw new WeftError('WEFT_INVALID_CONFIG', `kubeconfig ${path} cannot be used: ${(e as Error).message}; pass a readable kubeconfig with --kubeconfig-file`, { cause: e });
  }
  return kc;
}

function loadInCluster(k8s: ClientNode, root: string, apiUrl: string | undefined): KubeConfig {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (apiUrl === undefined && (host === undefined || host === '' || port === undefined || port === '')) {
    throw new WeftError('WEFT_INVALID_ENV', `a ServiceAccount token is mounted (${join(root, SERVICE_ACCOUNT_DIR)}) but KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set; run in a pod, or pass --kube-api-url`);
  }
  const kc = new k8s.KubeConfig();
  // without the variables the server is a placeholder that apiUrl replaces; client-node joins the prefix and the absolute /var/run/... path as strings
  kc.loadFromCluster(root === '/' ? '' : root.replace(/\/+$/, ''));
  return kc;
}

function loadDefault(k8s: ClientNode): { kc: KubeConfig; source: string } {
  const env = process.env.KUBECONFIG;
  if (env !== undefined && env !== '') {
    const kc = new k8s.KubeConfig();
    try {
      kc.loadFromDefault();
    } catch (e) {
      throw new WeftError('WEFT_INVALID_CONFIG', `KUBECONFIG=${env} cannot be used: ${(e as Error).message}`, { cause: e });
    }
    return { kc, source: `kubeconfig $KUBECONFIG (${env})` };
  }
  const path = join(process.env.HOME ?? homedir(), '.kube', 'config');
  if (!existsSync(path)) {
    throw new WeftError('WEFT_INVALID_CONFIG', `no Kubernetes credentials: not in a pod (no ServiceAccount token at /${SERVICE_ACCOUNT_DIR}/token), no --kubeconfig-file, no $KUBECONFIG and no ${path}`);
  }
  return { kc: loadFile(k8s, path), source: `kubeconfig ${path}` };
}

/** client-node refuses http:// unless skipTLSVerify is set, although plain HTTP has no TLS to verify. */
function withServer(k8s: ClientNode, kc: KubeConfig, source: string, apiUrl: string | undefined): { kc: KubeConfig; server: string } {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new WeftError('WEFT_INVALID_CONFIG', `${source} has no current context with a cluster; set current-context`);
  const server = apiUrl ?? cluster.server;
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new WeftError('WEFT_INVALID_CONFIG', `kubernetes API server "${server}" (from ${apiUrl === undefined ? source : '--kube-api-url'}) is not a URL; use https://HOST:PORT`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WeftError('WEFT_INVALID_CONFIG', `kubernetes API server "${server}" must be an http:// or https:// URL`);
  }
  const fixed = { ...cluster, server: server.replace(/\/+$/, ''), skipTLSVerify: cluster.skipTLSVerify || url.protocol === 'http:' };
  const next = new k8s.KubeConfig();
  next.loadFromOptions({
    clusters: kc.getClusters().map((c) => (c.name === cluster.name ? fixed : c)),
    users: kc.getUsers(), contexts: kc.getContexts(), currentContext: kc.getCurrentContext(),
  });
  return { kc: next, server: fixed.server };
}

export function loadKubeConfig(k8s: ClientNode, o: LoadOptions): LoadedConfig {
  let kc: KubeConfig;
  let source: string;
  let namespace: string | undefined;
  const root = o.inClusterRoot ?? '/';
  const tokenFile = join(root, SERVICE_ACCOUNT_DIR, 'token');
  if (o.kubeconfigFile !== undefined && o.kubeconfigFile !== '') {
    kc = loadFile(k8s, o.kubeconfigFile);
    source = `kubeconfig ${o.kubeconfigFile}`;
  } else if (existsSync(tokenFile)) {
    kc = loadInCluster(k8s, root, o.apiUrl);
    source = 'in-cluster ServiceAccount';
    const nsFile = join(root, SERVICE_ACCOUNT_DIR, 'namespace');
    if (existsSync(nsFile)) namespace = readFileSync(nsFile, 'utf8').trim() || undefined;
  } else {
    ({ kc, source } = loadDefault(k8s));
  }
  namespace ??= kc.getContextObject(kc.getCurrentContext())?.namespace;
  const fixed = withServer(k8s, kc, source, o.apiUrl);
  return { kc: fixed.kc, server: fixed.server, source, namespace };
}
