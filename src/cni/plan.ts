// What a pod on this node gets, derived from the plugin config and the node's subnet.env:
// the address ranges, the bridge's gateway addresses, the pod's routes and MTU, and whether
// the plugin itself must masquerade. Pure: no I/O, so it is unit-tested exhaustively.
//
// subnet.env names one subnet, hence one gateway, per family. With block IPAM a node has many
// blocks, each with its own gateway, so once the pod's addresses are known the plan is
// narrowed to them (withAllocationGateways): the bridge must hold the pod's block's gateway,
// and the pod's routes go via it.
import { formatCidr, formatIp, type Cidr, type IpFamily } from '../net/cidr.ts';
import { parseRangeSets, type RangeSet } from '../ipam/ranges.ts';
import type { SubnetEnv } from '../subnet/subnet-env.ts';
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
