// The resources the stand-in serves, and the per-kind rules of the real API server that weft
// depends on (which kinds allow an update without a resourceVersion, which are namespaced).
export type StandinResource = 'nodes' | 'configmaps' | 'leases' | 'pods' | 'namespaces';

export interface ResourceInfo {
  name: StandinResource;
  kind: string;
  group: '' | 'coordination.k8s.io';
  version: 'v1';
  namespaced: boolean;
  /** the kind's strategy allows PUT with an empty resourceVersion (last writer wins) */
  unconditionalUpdate: boolean;
  /** subresources with a strategy of their own: status keeps spec, the main endpoint keeps status */
  statusSubresource: boolean;
  /** field selectors the real server accepts beyond metadata.name/metadata.namespace */
  extraFields: readonly string[];
}

export const RESOURCES: Readonly<Record<StandinResource, ResourceInfo>> = {
  nodes: { name: 'nodes', kind: 'Node', group: '', version: 'v1', namespaced: false, unconditionalUpdate: true, statusSubresource: true, extraFields: ['spec.unschedulable'] },
  namespaces: { name: 'namespaces', kind: 'Namespace', group: '', version: 'v1', namespaced: false, unconditionalUpdate: true, statusSubresource: true, extraFields: ['status.phase'] },
  configmaps: { name: 'configmaps', kind: 'ConfigMap', group: '', version: 'v1', namespaced: true, unconditionalUpdate: true, statusSubresource: false, extraFields: [] },
  pods: { name: 'pods', kind: 'Pod', group: '', version: 'v1', namespaced: true, unconditionalUpdate: true, statusSubresource: true, extraFields: ['spec.nodeName', 'status.phase'] },
  leases: { name: 'leases', kind: 'Lease', group: 'coordination.k8s.io', version: 'v1', namespaced: true, unconditionalUpdate: false, statusSubresource: false, extraFields: [] },
};

export function apiVersionOf(r: ResourceInfo): string {
  return r.group === '' ? r.version : `${r.group}/${r.version}`;
}

export function isStandinResource(s: string): s is StandinResource {
  return Object.hasOwn(RESOURCES, s);
}
