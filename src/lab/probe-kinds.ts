// The kinds of probe `lab check` knows, as plain constants (the CLI needs them for --help
// without loading the rest of the lab).
export const PROBE_KINDS = [
  // Same node: what a CNI plugin alone must provide.
  'pod-pod-same-node', // pod → another pod on its node, over the node's bridge
  'pod-gateway', // pod → its node's bridge address (the pods' default gateway)
  'pod-node', // pod → its node's eth0 address
  'node-pod', // node → each of its pods
  // Cross node: needs the overlay, i.e. an agent per node (`lab up --store etcd`).
  'pod-pod-same-zone', // pod → pod on another node in the same zone (same L2 underlay)
  'pod-pod-other-zone', // pod → pod on a node in the other zone (underlay routed by the router)
  'pod-remote-node', // pod → another node's eth0
  'node-remote-pod', // node → a pod on another node
  // pod → the outside host over UDP; passes only when outside saw the pod's node address as the
  // source (the node masqueraded) and its answer came back.
  'pod-outside',
] as const;

export type ProbeKind = (typeof PROBE_KINDS)[number];

export const SAME_NODE_KINDS: readonly ProbeKind[] = ['pod-pod-same-node', 'pod-gateway', 'pod-node', 'node-pod'];
export const CROSS_NODE_KINDS: readonly ProbeKind[] = ['pod-pod-same-zone', 'pod-pod-other-zone', 'pod-remote-node', 'node-remote-pod', 'pod-outside'];
/** The default without agents (store none); with them `lab check` runs every kind. */
export const DEFAULT_KINDS = SAME_NODE_KINDS;

export function isProbeKind(s: string): s is ProbeKind {
  return (PROBE_KINDS as readonly string[]).includes(s);
}
