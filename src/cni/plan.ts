// What a pod on this node gets, derived from the plugin config and the node's subnet.env:
// the address ranges, the bridge's gateway addresses, the pod's routes and MTU, and whether
// the plugin itself must masquerade. Pure: no I/O, so it is unit-tested exhaustively.
//
// subnet.env names one subnet, hence one gateway, per family. With block IPAM a node has many
// blocks, each with its own gateway, so once the pod's addresses are known the plan is
// narrowed to them (withAllocationGateways): the bridge must hold the pod's block's gateway,
// and the pod's routes go via it.
//
// A routed pod (WEFT_POD_LINK=routed) has no bridge: its addresses are /32 (/128) and every
// route goes via a link-local gateway that the node's end of the veth answers for
// (routedPodAddressing; the link itself is routed-link.ts).
import { formatCidr, formatIp, type Cidr, type IpFamily } from '../net/cidr.ts';
import { parseRangeSets, type RangeSet } from '../ipam/ranges.ts';
import type { PodLink, SubnetEnv } from '../subnet/subnet-env.ts';
import type { PluginConfig, Route } from './config.ts';

export interface PodNetworkPlan {
  rangeSets: RangeSet[];
  /** The bridge's addresses, one per family, e.g. "10.16.1.1/24". */
  gateways: string[];
  routes: Route[];
  mtu: number;
  /**
   * flannel's rule (docs/flannel-compat.md §6.1): the plugin masquerades a pod's traffic only when the
   * node agent does not (FLANNEL_IPMASQ=false); an explicit ipMasq in the config wins.
   */
  podMasq: boolean;
  /** The cluster networks (FLANNEL_NETWORK and FLANNEL_IPV6_NETWORK). */
  networks: Cidr[];
  /** How this pod meets the node (subnet.env's WEFT_POD_LINK). */
  podLink: PodLink;
}

const DEFAULT_ROUTE = { 4: '0.0.0.0/0', 6: '::/0' } as const;

const routeFamily = (dst: string): IpFamily => (dst.includes(':') ? 6 : 4);

export function planPodNetwork(config: PluginConfig, env: SubnetEnv): PodNetworkPlan {
  const subnets = [env.subnet, env.ipv6Subnet].filter((s): s is Cidr => s !== undefined);
  const rangeSets = parseRangeSets(subnets.map((s) => [{ subnet: formatCidr(s) }]), 'subnet.env FLANNEL_SUBNET');
  const networks = [...env.networks, ...env.ipv6Networks];
  const gateways: string[] = [];
  const routes: Route[] = [];
  for (const set of rangeSets) {
    const range = set[0]!;
    const gw = formatIp(range.gateway);
    gateways.push(`${gw}/${range.subnet.prefix}`);
    if (config.isDefaultGateway) routes.push({ dst: DEFAULT_ROUTE[range.subnet.family], gw });
    for (const n of networks) if (n.family === range.subnet.family) routes.push({ dst: formatCidr(n), gw });
  }
  for (const r of config.routes) {
    if (routes.some((x) => x.dst === r.dst)) continue;
    const family = routeFamily(r.dst);
    const gw = r.gw ?? gateways.find((g) => g.includes(':') === (family === 6))?.split('/')[0];
    routes.push(gw ? { dst: r.dst, gw } : { dst: r.dst });
  }
  return {
    rangeSets,
    gateways,
    routes,
    mtu: config.mtu ?? env.mtu,
    podMasq: config.ipMasq ?? !env.ipMasq,
    networks,
    podLink: env.podLink,
  };
}

/** What withAllocationGateways needs of an allocation (ipam.ts Allocation fits). */
export interface AllocatedGateway {
  family: IpFamily;
  gateway: string;
  prefix: number;
}

/**
 * The plan for one pod whose addresses are known: each family's gateway (bridge address and
 * route gateway) is the one of the pod's own allocation, in place of subnet.env's. A route via
 * another address (a config route naming its own gw) keeps it; a family without an allocation
 * keeps subnet.env's gateway. In etcd mode the allocation's gateway is subnet.env's: nothing changes.
 */
export function withAllocationGateways(plan: PodNetworkPlan, allocations: readonly AllocatedGateway[]): PodNetworkPlan {
  const planGateway = new Map(plan.rangeSets.map((set) => [set[0]!.subnet.family, formatIp(set[0]!.gateway)] as const));
  const podGateway = new Map<IpFamily, AllocatedGateway>();
  for (const a of allocations) if (!podGateway.has(a.family)) podGateway.set(a.family, a);
  const gateways = plan.gateways.map((g) => {
    const a = podGateway.get(g.includes(':') ? 6 : 4);
    return a ? `${a.gateway}/${a.prefix}` : g;
  });
  for (const [family, a] of podGateway) {
    if (!planGateway.has(family)) gateways.push(`${a.gateway}/${a.prefix}`);
  }
  const routes = plan.routes.map((r) => {
    const family = routeFamily(r.dst);
    const to = podGateway.get(family)?.gateway;
    return r.gw !== undefined && to !== undefined && r.gw === planGateway.get(family) ? { ...r, gw: to } : r;
  });
  return { ...plan, gateways, routes };
}

/** The gateway a routed pod's routes go via, per family: no address of the pod network, never taken by a pod. */
export const ROUTED_GATEWAY = { 4: '169.254.1.1', 6: 'fe80::1' } as const;

/** A routed pod's addresses and routes, from its allocations ("10.16.1.5/24") and the plan's routes. */
export interface RoutedPodAddressing {
  /** "10.16.1.5/32", "fd10::5/128". */
  addresses: string[];
  /** Every route via its family's ROUTED_GATEWAY. */
  routes: Route[];
  /** The link-local gateways the pod needs, one per family it has an address in. */
  gateways: string[];
}

/**
 * The pod's addresses as host addresses (nothing is on-link: all goes to the node), and each route
 * via the link-local gateway of its family, also a route that named its own gateway, which a pod
 * without on-link neighbours could not reach. A route of a family the pod has no address in is dropped.
 */
export function routedPodAddressing(addresses: readonly string[], routes: readonly Route[]): RoutedPodAddressing {
  const families = new Set<IpFamily>();
  const hostAddresses: string[] = [];
  for (const a of addresses) {
    const family = routeFamily(a);
    families.add(family);
    hostAddresses.push(`${a.split('/')[0]}/${family === 4 ? 32 : 128}`);
  }
  const out: Route[] = [];
  for (const r of routes) {
    const family = routeFamily(r.dst);
    if (families.has(family) && !out.some((x) => x.dst === r.dst)) out.push({ dst: r.dst, gw: ROUTED_GATEWAY[family] });
  }
  const gateways = ([4, 6] as const).filter((f) => families.has(f)).map((f) => ROUTED_GATEWAY[f]);
  return { addresses: hostAddresses, routes: out, gateways };
}
