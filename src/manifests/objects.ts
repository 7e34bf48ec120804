// The plain objects every mode has: Namespace, ServiceAccount and the ConfigMap.
import type { ManifestOptions } from './options.ts';
import { cniConflist, jsonFile, netConf } from './cni-config.ts';

/** A Kubernetes object as rendered: plain data, validated against the API schemas in the tests. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** The name of the ServiceAccount, (Cluster)Role(Binding) and DaemonSet (docs/manifests.md). */
export const NAME = 'weft';
export const CONFIG_MAP = 'weft-cfg';
/** The DaemonSet's selector label. */
export const APP = { app: 'weft' } as const;

export function labels(): Record<string, string> {
  return { ...APP, 'app.kubernetes.io/name': 'weft' };
}

export function namespaceObject(o: Pick<ManifestOptions, 'namespace'>): K8sObject {
  // hostNetwork, hostPath and added capabilities are outside the baseline Pod Security level.
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: o.namespace, labels: { ...labels(), 'pod-security.kubernetes.io/enforce': 'privileged' } } };
}

export function serviceAccount(o: Pick<ManifestOptions, 'namespace'>): K8sObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: NAME, namespace: o.namespace, labels: labels() } };
}

/**
 * cni-conf.json in every mode; net-conf.json where flannel's format is the config: kube mode
 * reads it from here, etcd mode from <prefix>/config in etcd (this copy is what to put there).
 * Mesh mode has no net-conf.json (its range is IPALLOC_RANGE): a file nothing reads would mislead.
 */
export function configMap(o: Pick<ManifestOptions, 'mode' | 'namespace' | 'network' | 'backend'>): K8sObject {
  const data: Record<string, string> = {};
  if (o.mode !== 'mesh') data['net-conf.json'] = jsonFile(netConf(o));
  data['cni-conf.json'] = jsonFile(cniConflist());
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: CONFIG_MAP, namespace: o.namespace, labels: labels() }, data };
}
