// The lab's shape and addresses, computed up front as plain data (no side effects), so the
// builder, `status`, `check` and `down` all read the same plan, and it can be unit-tested.
//
//   outside 203.0.113.2 ── router ──┬── az-a bridge 172.31.1.0/24 ── n1, n3, …
//           (203.0.113.0/24)  .1    └── az-b bridge 172.31.2.0/24 ── n2, n4, …
//
// Nodes alternate between zones (or all sit in zone a with `zones: 1`, which host-gw needs:
// its routes point at the peer node itself, so every node must be on one L2 segment). Each
// node routes by default via the router (.1 of its zone); only the router forwards, and only
// the router reaches 203.0.113.0/24. The outside host routes 172.31.0.0/16 back via the
// router but knows nothing of the cluster network, so a pod reaches it only when its node
// masquerades (the `pod-outside` probe). With `store: 'etcd'` an etcd member sits on zone a's
// segment (172.31.1.5), and the nodes' pod subnets are not planned: their agents lease them.
// With `store: 'mesh'` there is no etcd: the agents share blocks of the IPALLOC range
// (the cluster network) among themselves over their mesh.
import { WeftError } from '../errors.ts';
import { etcdNs, nodeNs, outsideNs, podNs, routerNs, zoneNs } from './names.ts';
import { KUBE_API_PORT, type StoreKind } from './store-kinds.ts';

export const CLUSTER_NETWORK = '10.16.0.0/16';
export const POD_MTU = 1450;
export const ZONES = ['a', 'b'] as const;
export const UNDERLAY_NETWORK = '172.31.0.0/16';
export const OUTSIDE_SUBNET = '203.0.113.0/24';
export const ROUTER_OUTSIDE_ADDRESS = '203.0.113.1';
export const OUTSIDE_ADDRESS = '203.0.113.2';
export const ZONE_BRIDGE = 'br0';
export const MAX_NODES = 64;
export const MAX_PODS_PER_NODE = 100;
export const ETCD_ADDRESS = '172.31.1.5';
export const ETCD_CLIENT_PORT = 2379;

export type Zone = (typeof ZONES)[number];

export interface ZonePlan {
  zone: Zone;
  ns: string;
  /** e.g. 172.31.1.0/24 */
  subnet: string;
  /** The router's address in this zone, every node's default gateway. */
  gateway: string;
  /** The router's interface facing this zone. */
  routerIf: string;
}

export interface PodPlan {
  index: number;
  name: string;
  ns: string;
  /** CNI_CONTAINERID: unique per lab, derivable from the namespace name alone. */
  containerId: string;
}

export interface NodePlan {
  index: number;
  name: string;
  ns: string;
  zone: Zone;
  /** The node's eth0 address on its zone's subnet, without prefix. */
  address: string;
  gateway: string;
  /**
   * This node's pod subnet, e.g. 10.16.1.0/24, and its first address (the cni0 gateway);
   * null with the etcd store, where the node's agent leases a subnet (see LabState.leases).
   */
  podSubnet: string | null;
  podGateway: string | null;
  /** /run/weft/lab/<lab>/n<i>: this node's private files. */
  dir: string;
  pods: PodPlan[];
}

export interface EtcdPlan {
  ns: string;
  zone: Zone;
  /** Its address on the zone's subnet, without prefix. */
  address: string;
  gateway: string;
  /** What agents get as --etcd-endpoints. */
  clientUrl: string;
  /** Data dir and log, in the lab's state directory. */
  dir: string;
}

export interface Topology {
  name: string;
  clusterNetwork: string;
  zones: ZonePlan[];
  /** How many zones nodes are spread over (1: all in zone a). Absent in labs made before it existed: 2. */
  nodeZones?: number;
  router: { ns: string; outsideIf: string; outsideAddress: string };
  outside: { ns: string; address: string; subnet: string };
  /** The control-plane host: the etcd member with the etcd store, the API server with the kube store; null (or absent, in older labs) otherwise. */
  etcd?: EtcdPlan | null;
  nodes: NodePlan[];
}

export interface TopologyOptions {
  name: string;
  nodes: number;
  podsPerNode: number;
  labDir: string;
  /** Zones the nodes alternate over: 2 (default) or 1 (all in zone a). */
  zones?: number;
  store?: StoreKind;
  /** The cluster network (default 10.16.0.0/16; with the mesh store its IPALLOC range). */
  clusterNetwork?: string;
}

export function validateCounts(nodes: number, podsPerNode: number): void {
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
    throw new WeftError('WEFT_LAB', `--nodes must be a whole number from 1 to ${MAX_NODES}, got ${nodes}`);
  }
  if (!Number.isInteger(podsPerNode) || podsPerNode < 0 || podsPerNode > MAX_PODS_PER_NODE) {
    throw new WeftError('WEFT_LAB', `--pods-per-node must be a whole number from 0 to ${MAX_PODS_PER_NODE}, got ${podsPerNode}`);
  }
}

export function validateZones(zones: number): void {
  if (!Number.isInteger(zones) || zones < 1 || zones > ZONES.length) {
    throw new WeftError('WEFT_LAB', `--zones must be 1 or ${ZONES.length}, got ${zones}`);
  }
}

export function zoneOfNode(index: number, zones: number = ZONES.length): Zone {
  return ZONES[(index - 1) % zones] as Zone;
}

export function calcTopology(o: TopologyOptions): Topology {
  validateCounts(o.nodes, o.podsPerNode);
  const zoneCount = o.zones ?? ZONES.length;
  validateZones(zoneCount);
  const planned = (o.store ?? 'none') === 'none';
  const zones: ZonePlan[] = ZONES.map((zone, z) => ({
    zone,
    ns: zoneNs(o.name, zone),
    subnet: `172.31.${z + 1}.0/24`,
    gateway: `172.31.${z + 1}.1`,
    routerIf: `eth-${zone}`,
  }));
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= o.nodes; i++) {
    const zone = zoneOfNode(i, zoneCount);
    const z = ZONES.indexOf(zone) + 1;
    const name = `n${i}`;
    const pods: PodPlan[] = [];
    for (let k = 1; k <= o.podsPerNode; k++) {
      const ns = podNs(o.name, i, k);
      pods.push({ index: k, name: `${name}-p${k}`, ns, containerId: ns });
    }
    nodes.push({
      index: i,
      name,
      ns: nodeNs(o.name, i),
      zone,
      address: `172.31.${z}.${10 + i}`,
      gateway: `172.31.${z}.1`,
      podSubnet: planned ? `10.16.${i}.0/24` : null,
      podGateway: planned ? `10.16.${i}.1` : null,
      dir: `${o.labDir}/${name}`,
      pods,
    });
  }
  return {
    name: o.name,
    clusterNetwork: o.clusterNetwork ?? CLUSTER_NETWORK,
    zones,
    nodeZones: zoneCount,
    router: { ns: routerNs(o.name), outsideIf: 'eth-out', outsideAddress: ROUTER_OUTSIDE_ADDRESS },
    outside: { ns: outsideNs(o.name), address: OUTSIDE_ADDRESS, subnet: OUTSIDE_SUBNET },
    // The control-plane host: etcd's member, or with store kube the API server (same host, same namespace).
    etcd: o.store === 'etcd'
      ? { ns: etcdNs(o.name), zone: 'a', address: ETCD_ADDRESS, gateway: '172.31.1.1', clientUrl: `http://${ETCD_ADDRESS}:${ETCD_CLIENT_PORT}`, dir: `${o.labDir}/etcd` }
      : o.store === 'kube'
        ? { ns: etcdNs(o.name), zone: 'a', address: ETCD_ADDRESS, gateway: '172.31.1.1', clientUrl: `http://${ETCD_ADDRESS}:${KUBE_API_PORT}`, dir: `${o.labDir}/apiserver` }
        : null,
    nodes,
  };
}

/** A node's pod subnet and its gateway (the subnet's first address), once known. */
export interface NodeSubnet {
  podSubnet: string;
  podGateway: string;
}

/** The subnet the lab planned for a node (store none); throws for a node whose agent leases one (etcd, mesh). */
export function plannedSubnet(node: NodePlan): NodeSubnet {
  if (node.podSubnet === null || node.podGateway === null) {
    throw new WeftError('WEFT_INTERNAL', `node ${node.name} has no planned pod subnet: its agent leases one`);
  }
  return { podSubnet: node.podSubnet, podGateway: node.podGateway };
}

export function zonePlan(t: Topology, zone: Zone): ZonePlan {
  const z = t.zones.find((p) => p.zone === zone);
  if (z === undefined) throw new WeftError('WEFT_INTERNAL', `no zone ${zone} in the lab plan`);
  return z;
}
