// Which connectivity probes `lab check` runs. Each kind has a planner that lists its probes
// from a view of the lab; kinds are a registry. The cross-node kinds need an overlay, so they
// are in the default set only of labs whose nodes run agents (store etcd or mesh). Nothing here
// assumes one subnet per node: a pod's gateway is the one its ADD result gave it (with the mesh
// store each block of a node has its own), and probes address pods by the address they got.
import { firstIPv4 } from './cni-exec.ts';
import { DEFAULT_KINDS, PROBE_KINDS, type ProbeKind } from './probe-kinds.ts';
import type { LabState } from './state.ts';
import { hasAgents } from './store-kinds.ts';

export { PROBE_KINDS, SAME_NODE_KINDS, CROSS_NODE_KINDS, DEFAULT_KINDS, isProbeKind, type ProbeKind } from './probe-kinds.ts';

export interface Probe {
  kind: ProbeKind;
  /** Short member names, as `lab exec` takes them; a node's bridge address is `<node>:cni0`. */
  from: string;
  to: string;
  /** The namespace the probe runs in. */
  fromNs: string;
  address: string;
  /** pod-outside: the source address the outside host must see (the pod's node, masquerading). */
  expectSource?: string;
}

/** The lab as probes see it: nodes and the pods that have an address. */
export interface ProbeView {
  nodes: {
    name: string;
    ns: string;
    zone: string;
    address: string;
    /** The pods' gateway (cni0's address); null when not known (no planned subnet and no lease on record). */
    gateway: string | null;
    pods: { name: string; ns: string; address: string; gateway: string | null }[];
  }[];
  outsideAddress: string;
}

/**
 * Nodes that take part: not those removed (`lab node remove`), nor, in mesh labs, those whose
 * agent was never started (`lab up --start`): with no agent nothing routes to or from them.
 */
function probedNodes(state: LabState): LabState['topology']['nodes'] {
  const removed = new Set(state.removedNodes ?? []);
  return state.topology.nodes.filter((n) => !removed.has(n.name) && (state.store !== 'mesh' || state.daemonPids[n.name] !== undefined));
}

export function probeView(state: LabState): ProbeView {
  return {
    outsideAddress: state.topology.outside.address,
    nodes: probedNodes(state).map((n) => ({
      name: n.name,
      ns: n.ns,
      zone: n.zone,
      address: n.address,
      gateway: n.podGateway ?? state.leases?.[n.name]?.gateway ?? null,
      pods: n.pods.flatMap((p) => {
        const pod = state.pods[p.name];
        const address = firstIPv4(pod?.addresses ?? []);
        const gateway = resultGateway(pod?.result) ?? n.podGateway ?? state.leases?.[n.name]?.gateway ?? null;
        return address === undefined ? [] : [{ name: p.name, ns: p.ns, address, gateway }];
      }),
    })),
  };
}

/** ips[0].gateway of a CNI ADD result: the gateway the pod was given. */
function resultGateway(result: Record<string, unknown> | undefined): string | undefined {
  const ips = result?.ips;
  const first: unknown = Array.isArray(ips) ? ips[0] : undefined;
  const gateway = typeof first === 'object' && first !== null ? (first as { gateway?: unknown }).gateway : undefined;
  return typeof gateway === 'string' ? gateway : undefined;
}

type Node = ProbeView['nodes'][number];
type Planner = (v: ProbeView) => Probe[];

const pairs = (v: ProbeView, keep: (a: Node, b: Node) => boolean): [Node, Node][] =>
  v.nodes.flatMap((a) => v.nodes.filter((b) => keep(a, b)).map((b): [Node, Node] => [a, b]));

const podToPods = (kind: ProbeKind, keep: (a: Node, b: Node) => boolean): Planner => (v) =>
  pairs(v, keep).flatMap(([a, b]) =>
    a.pods.flatMap((p) => b.pods.filter((q) => q !== p).map((q) => ({ kind, from: p.name, fromNs: p.ns, to: q.name, address: q.address }))),
  );

const isLinkLocal = (address: string): boolean => address.startsWith('169.254.') || /^fe[89ab]/i.test(address);

export const PLANNERS: Record<ProbeKind, Planner> = {
  'pod-pod-same-node': podToPods('pod-pod-same-node', (a, b) => a === b),
  // A routed pod's gateway (169.254.1.1) is only a next hop that nothing on the node owns: not pinged.
  'pod-gateway': (v) =>
    v.nodes.flatMap((n) =>
      n.pods.flatMap((p) => (p.gateway === null || isLinkLocal(p.gateway) ? [] : [{ kind: 'pod-gateway' as const, from: p.name, fromNs: p.ns, to: `${n.name}:cni0`, address: p.gateway }])),
    ),
  'pod-node': (v) =>
    v.nodes.flatMap((n) => n.pods.map((p) => ({ kind: 'pod-node' as const, from: p.name, fromNs: p.ns, to: n.name, address: n.address }))),
  'node-pod': (v) =>
    v.nodes.flatMap((n) => n.pods.map((p) => ({ kind: 'node-pod' as const, from: n.name, fromNs: n.ns, to: p.name, address: p.address }))),
  'pod-pod-same-zone': podToPods('pod-pod-same-zone', (a, b) => a !== b && a.zone === b.zone),
  'pod-pod-other-zone': podToPods('pod-pod-other-zone', (a, b) => a.zone !== b.zone),
  'pod-remote-node': (v) =>
    pairs(v, (a, b) => a !== b).flatMap(([a, b]) =>
      a.pods.map((p) => ({ kind: 'pod-remote-node' as const, from: p.name, fromNs: p.ns, to: b.name, address: b.address })),
    ),
  'node-remote-pod': (v) =>
    pairs(v, (a, b) => a !== b).flatMap(([a, b]) =>
      b.pods.map((q) => ({ kind: 'node-remote-pod' as const, from: a.name, fromNs: a.ns, to: q.name, address: q.address })),
    ),
  'pod-outside': (v) =>
    v.nodes.flatMap((n) =>
      n.pods.map((p) => ({ kind: 'pod-outside' as const, from: p.name, fromNs: p.ns, to: 'outside', address: v.outsideAddress, expectSource: n.address })),
    ),
};

/** What `lab check` runs without --kinds: everything when the nodes run agents (etcd or mesh store), else the same-node kinds. */
export function defaultKinds(state: Pick<LabState, 'store'>): readonly ProbeKind[] {
  return hasAgents(state.store) ? PROBE_KINDS : DEFAULT_KINDS;
}

export function planProbes(view: ProbeView, kinds: readonly ProbeKind[] = DEFAULT_KINDS): Probe[] {
  return kinds.flatMap((k) => PLANNERS[k](view));
}

/** A probe kind `lab check` did not run, and why: reported instead of passing silently with fewer probes. */
export interface SkippedKind {
  kind: ProbeKind;
  reason: string;
}

const CROSS_NODE: ReadonlySet<ProbeKind> = new Set(['pod-pod-same-zone', 'pod-pod-other-zone', 'pod-remote-node', 'node-remote-pod']);

/** Why a selected kind planned no probe in this lab. */
function whyNoProbes(kind: ProbeKind, v: ProbeView): string {
  const pods = v.nodes.reduce((n, node) => n + node.pods.length, 0);
  if (pods === 0) return 'the lab has no pods (lab up --pods-per-node)'; // every kind probes from or to a pod
  if (CROSS_NODE.has(kind) && v.nodes.length < 2) return 'the lab has one node (lab up --nodes 2 or more)';
  if (kind === 'pod-pod-same-node') return 'no node has two pods (lab up --pods-per-node 2)';
  if (kind === 'pod-pod-same-zone') return 'no two nodes share a zone (lab up --nodes 3 or more, or --zones 1)';
  if (kind === 'pod-pod-other-zone') return 'all nodes are in one zone (lab up --zones 2 with 2 or more nodes)';
  if (kind === 'pod-gateway') {
    return v.nodes.some((n) => n.pods.some((p) => p.gateway !== null && isLinkLocal(p.gateway)))
      ? "the pods' gateway is a link-local next hop that no node address answers (routed pod links); pod-node probes the node"
      : "no pod's gateway is known";
  }
  return 'no probe of this kind fits the lab';
}

/**
 * The kinds that will not run: those left out of the default selection (a lab without agents
 * has nothing routing between nodes) and those selected that plan no probe in this lab.
 */
export function skippedKinds(v: ProbeView, state: Pick<LabState, 'store'>, requested: readonly ProbeKind[] | undefined): SkippedKind[] {
  const selected = requested ?? defaultKinds(state);
  return PROBE_KINDS.flatMap((kind): SkippedKind[] => {
    if (!selected.includes(kind)) {
      return requested === undefined
        ? [{ kind, reason: 'not run by default: the nodes run no agent (lab up --store none), so nothing routes between them or masquerades; --kinds all runs it anyway' }]
        : [];
    }
    return PLANNERS[kind](v).length === 0 ? [{ kind, reason: whyNoProbes(kind, v) }] : [];
  });
}
