// What weft reads of a Node, for the reflectors' caches: a real Node object is 10-50 KiB,
// mostly status.images, status.conditions and managedFields, none of which weft reads. The
// kube store reads the name, uid, annotations and spec.podCIDR(s); mesh mode's peer discovery
// the addresses.
import type { V1Node } from '@kubernetes/client-node';

export const NODES_PATH = '/api/v1/nodes';

/**
 * Annotations longer than this are dropped (kubectl's last-applied-configuration, say): weft's
 * own are far shorter. Above the stores' own bound on backend data (4 KiB), so that an
 * oversized one is still seen, and refused by name.
 */
export const MAX_KEPT_ANNOTATION = 16_384;

function shortAnnotations(a: Record<string, string> | undefined): Record<string, string> | undefined {
  if (a === undefined) return undefined;
  return Object.fromEntries(Object.entries(a).filter(([, v]) => typeof v === 'string' && v.length <= MAX_KEPT_ANNOTATION));
}

export function slimNode<T>(obj: T): T {
  const n = obj as V1Node;
  const m = n.metadata ?? {};
  const annotations = shortAnnotations(m.annotations);
  return {
    metadata: { name: m.name, uid: m.uid, resourceVersion: m.resourceVersion, ...(annotations ? { annotations } : {}) },
    spec: { ...(n.spec?.podCIDR ? { podCIDR: n.spec.podCIDR } : {}), ...(n.spec?.podCIDRs ? { podCIDRs: n.spec.podCIDRs } : {}) },
    status: { ...(n.status?.addresses ? { addresses: n.status.addresses } : {}) },
  } as T;
}

/** The slimming for a watched path, if weft slims it (Nodes only: Leases are read back for updates). */
export function slimFor<T>(path: string): ((obj: T) => T) | undefined {
  return path === NODES_PATH ? slimNode : undefined;
}
