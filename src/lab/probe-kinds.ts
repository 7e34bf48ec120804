// The kinds of probe `lab check` knows, as plain constants (the CLI needs them for --help
// without loading the rest of the lab).
export const PROBE_KINDS = [
  // Same node: what a CNI plugin alone must provide.
  'pod-pod-same-node', // pod → another pod on its node, over the node's bridge
  'pod-gateway', // pod → its node's bridge address (the pods' default gateway)
  'pod-node', // pod → its node's eth0 address
  'node-pod', // node → each of its pods
  // Cross node: needs the overlay (agents, etcd) of a later issue.
  'pod-pod-same-zone', // pod → pod on another node in the same zone (same L2 underlay)
  'pod-pod-other-zone', // pod → pod on a node in the other zone (underlay routed by the router)
  'pod-remote-node', // pod → another node's eth0
  'node-remote-pod', // node → a pod on another node
  // A reply from outside proves masquerading: outside routes the node subnets back, never the pod network.
  'pod-outside',
] as const;

export type ProbeKind = (typeof PROBE_KINDS)[number];

export const SAME_NODE_KINDS: readonly ProbeKind[] = ['pod-pod-same-node', 'pod-gateway', 'pod-node', 'node-pod'];
export const CROSS_NODE_KINDS: readonly ProbeKind[] = ['pod-pod-same-zone', 'pod-pod-other-zone', 'pod-remote-node', 'node-remote-pod', 'pod-outside'];
export const DEFAULT_KINDS = SAME_NODE_KINDS;

export function isProbeKind(s: string): s is ProbeKind {
  return (PROBE_KINDS as readonly string[]).includes(s);
}
