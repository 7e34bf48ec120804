// What each mode's agent may do with the Kubernetes API: exactly the calls it makes, nothing
// more. Every rule says which call needs it (docs/manifests.md has the same table).
import type { ManifestMode, ManifestOptions } from './options.ts';
import type { K8sObject } from './objects.ts';
import { CONFIG_MAP, NAME, labels } from './objects.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
  /** Why the agent needs it: rendered into docs, never into the object. */
  why: string;
}

const NODES_READ: PolicyRule = {
  apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'],
  why: 'get: its own Node (uid, spec.podCIDR, addresses); list+watch: every Node, the source of peers',
};

/** Cluster-scoped rules (ClusterRole weft). */
export function clusterRules(mode: ManifestMode): PolicyRule[] {
  switch (mode) {
    // etcd mode keeps everything in etcd and reads nothing from the API: no rules, and the pod
    // gets no token at all (automountServiceAccountToken: false).
    case 'etcd': return [];
    case 'kube': return [
      NODES_READ,
      {
        apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'],
        why: "patch: publish this node's backend-type, backend-data, public-ip and subnet annotations (flannel's names); only the status subresource, so no Node spec can be changed",
      },
    ];
    // Mesh peers find each other from the Node list (InternalIP) and publish nothing on Nodes.
    case 'mesh': return [NODES_READ];
  }
}

/** Rules in weft's namespace only (Role weft): the claims and the config. */
export function namespaceRules(mode: ManifestMode): PolicyRule[] {
  const leases: PolicyRule = {
    apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'],
    why: mode === 'kube'
      ? 'subnet claims: create (AlreadyExists = taken), get, list+watch (peers), update (resourceVersion compare-and-swap), delete (orphaned claims, with a uid precondition)'
      : 'mesh peer records: create, get, list+watch (reclaim), update (resourceVersion compare-and-swap: one reclaimer), delete (a reclaimed peer\'s record)',
  };
  switch (mode) {
    case 'etcd': return [];
    case 'kube': return [
      leases,
      {
        apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: [CONFIG_MAP],
        why: `get ${CONFIG_MAP} only (net-conf.json, polled): no other ConfigMap is readable`,
      },
    ];
    case 'mesh': return [leases];
  }
}

const rule = ({ why: _why, ...r }: PolicyRule): Omit<PolicyRule, 'why'> => r;

export function rbacObjects(o: Pick<ManifestOptions, 'mode' | 'namespace'>): K8sObject[] {
  const subjects = [{ kind: 'ServiceAccount', name: NAME, namespace: o.namespace }];
  const out: K8sObject[] = [];
  const cluster = clusterRules(o.mode);
  if (cluster.length > 0) {
    out.push(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: NAME, labels: labels() }, rules: cluster.map(rule) },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: NAME, labels: labels() },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: NAME }, subjects,
      },
    );
  }
  const namespaced = namespaceRules(o.mode);
  if (namespaced.length > 0) {
    out.push(
      { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: NAME, namespace: o.namespace, labels: labels() }, rules: namespaced.map(rule) },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: NAME, namespace: o.namespace, labels: labels() },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: NAME }, subjects,
      },
    );
  }
  return out;
}
