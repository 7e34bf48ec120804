// The report `weft check` prints: what each client pod found, placed in the matrix of source
// (a node's pod network or its host network) and target (a responder pod or a node). Every
// probe that was planned shows up: one missing from a client's report counts as failed.
import type { ProbeMethod, ProbeRecord, ProbeReport } from '../probe/types.ts';
import type { CheckNode, SkippedNode } from './nodes.ts';

export const CHECK_KINDS = ['pod-pod-same-node', 'pod-pod-cross-node', 'pod-node', 'pod-remote-node', 'node-pod', 'node-remote-pod'] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];

export interface CheckProbe {
  from_node: string;
  /** pod: from a pod on the pod network; host: from the node's own network (a hostNetwork pod). */
  from: 'pod' | 'host';
  to_node: string;
  /** pod: the responder pod on to_node; node: to_node's InternalIP. */
  to: 'pod' | 'node';
  kind: CheckKind;
  method: ProbeMethod;
  address: string;
  ok: boolean;
  rtt_ms: number | null;
  error: string | null;
  /** tcp, udp: the source address the responder saw. */
  seen: string | null;
}

export interface ClusterCheckReport {
  namespace: string;
  nodes: { name: string; internal_ip: string; server_pod_ip: string | null }[];
  skipped_nodes: SkippedNode[];
  probes: CheckProbe[];
  passed: number;
  failed: number;
  /** Pods that did not start or finish, reports that could not be read: each names its node. */
  problems: string[];
  /** Things that passed but are not as they should be (pod-to-pod traffic masqueraded). */
  warnings: string[];
  /** Paths this check does not test, and what to expect of them. */
  not_tested: string[];
  /** false when the namespace was kept (--keep) or its deletion failed (see problems). */
  namespace_deleted: boolean;
}

export const NOT_TESTED = [
  'API server → pod (admission webhooks, aggregated APIs such as metrics-server, the API server\'s pods/proxy): not tested. On EKS the control plane is outside the overlay and cannot reach pod addresses; that is expected, not a weft fault: run such pods with hostNetwork: true (docs/eks.md).',
];

export interface ClientResult {
  node: CheckNode;
  role: 'client' | 'host-client';
  podIP: string | undefined;
  /** undefined: the pod did not finish or left no readable report (then a problem says why). */
  report: ProbeReport | undefined;
}

interface Planned {
  to: CheckNode;
  target: 'pod' | 'node';
  method: ProbeMethod;
  address: string;
}

function kindOf(role: ClientResult['role'], target: 'pod' | 'node', same: boolean): CheckKind {
  if (role === 'host-client') return same ? 'node-pod' : 'node-remote-pod';
  if (target === 'pod') return same ? 'pod-pod-same-node' : 'pod-pod-cross-node';
  return same ? 'pod-node' : 'pod-remote-node';
}

/** What a client on its node was asked to probe (the same list its --to had). */
export function plannedProbes(role: ClientResult['role'], nodes: readonly CheckNode[], servers: ReadonlyMap<string, string>): Planned[] {
  const out: Planned[] = [];
  for (const to of nodes) {
    const ip = servers.get(to.name);
    if (ip !== undefined) for (const method of ['icmp', 'tcp', 'udp'] as const) out.push({ to, target: 'pod', method, address: ip });
  }
  if (role === 'client') for (const to of nodes) out.push({ to, target: 'node', method: 'icmp', address: to.internalIP });
  return out;
}

const key = (method: string, address: string): string => `${method} ${address}`;

export function buildReport(input: {
  namespace: string;
  nodes: readonly CheckNode[];
  skipped: readonly SkippedNode[];
  /** node name → responder pod IP, for responders that became ready */
  servers: ReadonlyMap<string, string>;
  clients: readonly ClientResult[];
  problems: readonly string[];
  namespaceDeleted: boolean;
}): ClusterCheckReport {
  const probes: CheckProbe[] = [];
  const warnings: string[] = [];
  for (const c of input.clients) {
    if (c.report === undefined) continue;
    const got = new Map<string, ProbeRecord>();
    for (const r of c.report.results) if (!got.has(key(r.method, r.address))) got.set(key(r.method, r.address), r);
    for (const p of plannedProbes(c.role, input.nodes, input.servers)) {
      const r = got.get(key(p.method, p.address));
      probes.push({
        from_node: c.node.name,
        from: c.role === 'client' ? 'pod' : 'host',
        to_node: p.to.name,
        to: p.target,
        kind: kindOf(c.role, p.target, p.to.name === c.node.name),
        method: p.method,
        address: p.address,
        ok: r?.ok ?? false,
        rtt_ms: r?.ok === true ? r.rtt_ms : null,
        error: r === undefined ? "missing from the client's report" : r.error,
        seen: r?.seen ?? null,
      });
      if (r?.ok === true && c.role === 'client' && p.target === 'pod' && r.seen !== null && c.podIP !== undefined && r.seen !== c.podIP && p.method === 'tcp') {
        warnings.push(`${c.node.name} pod → ${p.to.name} pod: the responder saw ${r.seen}, not the client pod's ${c.podIP}: pod-to-pod traffic is masqueraded (NetworkPolicy by pod address will not work)`);
      }
    }
  }
  const passed = probes.filter((p) => p.ok).length;
  return {
    namespace: input.namespace,
    nodes: input.nodes.map((n) => ({ name: n.name, internal_ip: n.internalIP, server_pod_ip: input.servers.get(n.name) ?? null })),
    skipped_nodes: [...input.skipped],
    probes,
    passed,
    failed: probes.length - passed,
    problems: [...input.problems],
    warnings,
    not_tested: NOT_TESTED,
    namespace_deleted: input.namespaceDeleted,
  };
}
