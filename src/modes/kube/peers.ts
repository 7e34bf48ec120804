// Peers from the Kubernetes API: each Node's backend data from flannel's annotations, and its
// subnet from spec.podCIDR (when the cluster allocates them) or from the claim it holds. All of
// it is written by other nodes or by whoever can edit Nodes and Leases, so every part is
// checked, and a bad Node is refused by name without touching the others.
import { formatCidr, parseCidr, type Cidr } from '../../net/cidr.ts';
import type { SubnetRange } from '../../lease/network-config.ts';
import { peerProblem } from '../../lease/peers.ts';
import type { Announcement, ControlPlanePeer, PeerSnapshot, RejectedPeer } from '../../agent/control-plane.ts';
import { readClaim, type Claim, type LeaseObject } from './claims.ts';
import type { NodeObject } from '../../kube/objects.ts';

export type { NodeObject } from '../../kube/objects.ts';

/** Larger backend data is refused: a VTEP MAC and a VNI fit in a few dozen bytes. */
export const MAX_BACKEND_DATA = 4096;

/** flannel's annotation names under a prefix (flanneld's --kube-annotation-prefix). */
export function annotationNames(prefix: string) {
  return {
    backendType: `${prefix}/backend-type`,
    backendData: `${prefix}/backend-data`,
    publicIp: `${prefix}/public-ip`,
    subnetManager: `${prefix}/kube-subnet-manager`,
  };
}

/** What this node writes on its Node: what flannel-aware tools read. */
export function announcementAnnotations(prefix: string, a: Announcement): Record<string, string> {
  const n = annotationNames(prefix);
  return {
    [n.backendType]: a.backendType,
    // flannel writes "null" for a backend without data (host-gw).
    [n.backendData]: JSON.stringify(a.backendData ?? null),
    [n.publicIp]: a.publicIp,
    [n.subnetManager]: 'true',
  };
}

/** The backend data a Node announced, for this node's own restart (its VTEP MAC), if it parses. */
export function announcedBackendData(node: NodeObject | undefined, prefix: string, publicIp: string): unknown {
  const a = node?.metadata?.annotations ?? {};
  const n = annotationNames(prefix);
  if (a[n.publicIp] !== publicIp) return undefined;
  const text = a[n.backendData];
  if (typeof text !== 'string' || text.length > MAX_BACKEND_DATA) return undefined;
  try {
    return JSON.parse(text) ?? undefined;
  } catch {
    return undefined;
  }
}

/** A Node's spec.podCIDR, when the cluster set one: flannel's only source of subnets. */
export function podCidrOf(node: NodeObject | undefined): string | undefined {
  const cidr = node?.spec?.podCIDR ?? node?.spec?.podCIDRs?.[0];
  return typeof cidr === 'string' && cidr !== '' ? cidr : undefined;
}

export interface SnapshotInput {
  self: string;
  nodes: Iterable<NodeObject>;
  claims: Iterable<LeaseObject>;
  range: SubnetRange;
  annotationPrefix: string;
}

export interface KubeView {
  snapshot: PeerSnapshot;
  /** Valid claims by Lease name (this node's among them). */
  claims: Map<string, Claim>;
  /** Claims whose owning Node (by uid) is gone: the garbage collector's or the orphan sweep's to delete. */
  orphans: Claim[];
}

interface Candidate { name: string; uid: string; subnet: Cidr; annotations: Record<string, string> }

function nodeSubnet(node: NodeObject, claimsByHolder: Map<string, Claim[]>): { subnet?: Cidr; problem?: string } {
  const podCidr = podCidrOf(node);
  if (podCidr !== undefined) {
    try {
      return { subnet: parseCidr(podCidr) };
    } catch {
      return { problem: `its spec.podCIDR ${JSON.stringify(podCidr.slice(0, 64))} is not a CIDR` };
    }
  }
  // The same choice as the node's own (the claim whose name sorts first), should it hold two.
  const held = (claimsByHolder.get(node.metadata?.name ?? '') ?? []).filter((c) => c.ownerUid === node.metadata?.uid).sort((a, b) => a.name.localeCompare(b.name));
  return held.length > 0 ? { subnet: held[0]!.subnet } : {};
}

function peerOf(c: Candidate, prefix: string, range: SubnetRange): { peer?: ControlPlanePeer; problem?: string } {
  const n = annotationNames(prefix);
  const publicIp = c.annotations[n.publicIp];
  if (publicIp === undefined) return {}; // weft has not started there yet: not a peer, not a fault
  const dataText = c.annotations[n.backendData] ?? 'null';
  if (dataText.length > MAX_BACKEND_DATA) return { problem: `its backend data is ${dataText.length} bytes (at most ${MAX_BACKEND_DATA})` };
  let backendData: unknown;
  try {
    backendData = JSON.parse(dataText) ?? undefined;
  } catch {
    return { problem: `its ${n.backendData} annotation is not JSON` };
  }
  const backendType = (c.annotations[n.backendType] ?? '').slice(0, 32);
  const attrs = { publicIp, publicIpv6: null, backendType, backendData, backendV6Data: undefined };
  const problem = peerProblem({ subnets: { ipv4: c.subnet, ipv6: undefined }, attrs }, { ipv4: range, ipv6: undefined });
  if (problem) return { problem };
  return { peer: { id: c.name, subnets: [formatCidr(c.subnet)], publicIp, backendType, backendData } };
}

/** The peer set and the claims, from the Nodes and Leases the reflectors hold. */
export function kubeView(input: SnapshotInput): KubeView {
  const rejected: RejectedPeer[] = [];
  const claims = new Map<string, Claim>();
  const byHolder = new Map<string, Claim[]>();
  for (const lease of input.claims) {
    const r = readClaim(lease, input.range);
    if (!r.ok) {
      rejected.push({ key: r.key, reason: r.reason });
      continue;
    }
    claims.set(r.claim.name, r.claim);
    byHolder.set(r.claim.holder, [...(byHolder.get(r.claim.holder) ?? []), r.claim]);
  }
  const liveUids = new Set<string>();
  const candidates: Candidate[] = [];
  for (const node of input.nodes) {
    const name = node.metadata?.name;
    if (typeof name !== 'string') continue;
    if (typeof node.metadata?.uid === 'string') liveUids.add(node.metadata.uid);
    if (name === input.self) continue;
    const { subnet, problem } = nodeSubnet(node, byHolder);
    if (problem) rejected.push({ key: name, reason: problem });
    if (subnet) candidates.push({ name, uid: node.metadata?.uid ?? '', subnet, annotations: node.metadata?.annotations ?? {} });
  }
  const peers: ControlPlanePeer[] = [];
  const bySubnet = new Map<string, string>();
  for (const c of candidates.sort((a, b) => a.name.localeCompare(b.name))) {
    const { peer, problem } = peerOf(c, input.annotationPrefix, input.range);
    const key = `${c.name} (${formatCidr(c.subnet)})`;
    if (problem) {
      rejected.push({ key, reason: problem });
      continue;
    }
    if (!peer) continue;
    const first = bySubnet.get(peer.subnets[0]!);
    if (first !== undefined) {
      rejected.push({ key, reason: `its subnet ${peer.subnets[0]} is also ${first}'s` });
      continue;
    }
    bySubnet.set(peer.subnets[0]!, c.name);
    peers.push(peer);
  }
  const orphans = [...claims.values()].filter((c) => !liveUids.has(c.ownerUid));
  return { snapshot: { peers, rejected }, claims, orphans };
}
