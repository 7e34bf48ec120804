// CNI CHECK: small validators over what ADD created and prevResult recorded (docs/cni-spec-notes.md §1.7).
// Each failure names the object and what is wrong with it.
import { WeftError } from '../errors.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import type { PluginConfig } from './config.ts';
import type { CniEnv } from './env.ts';
import type { PodNetworkPlan } from './plan.ts';
import { readPrevResult } from './result.ts';

export interface CheckInput {
  node: Rtnetlink;
  pod: Rtnetlink;
  env: CniEnv;
  config: PluginConfig;
  plan: PodNetworkPlan;
  /** Addresses IPAM holds for (containerId, ifname), without prefix. */
  ipamAddresses: string[];
  /** The pod interface's addresses, "ip/prefix". */
  podAddresses: string[];
}

const failed = (what: string): WeftError => new WeftError('WEFT_CHECK_FAILED', what);

export function checkAttachment(c: CheckInput): void {
  const prev = readPrevResult(c.config.prevResult);
  if (!prev || prev.interfaces.length === 0) {
    throw new WeftError('WEFT_INVALID_CONFIG', 'CHECK needs the prevResult of the ADD in the network config');
  }
  // The bridge and its gateway addresses.
  const bridge = c.node.getLink(c.config.bridge);
  if (!bridge || bridge.kind !== 'bridge') throw failed(`bridge ${c.config.bridge} is missing on the node`);
  const bridgeAddrs = c.node.listAddresses({ link: bridge.index }).map((a) => a.cidr);
  for (const gw of c.plan.gateways) if (!bridgeAddrs.includes(gw)) throw failed(`bridge ${c.config.bridge} lacks its gateway address ${gw}`);

  // The pod's interface: present, up, with the recorded addresses.
  const podLink = c.pod.getLink(c.env.ifname);
  if (!podLink) throw failed(`interface ${c.env.ifname} is missing in ${c.env.netns}`);
  if (!podLink.up) throw failed(`interface ${c.env.ifname} in ${c.env.netns} is down`);
  const podIndex = prev.interfaces.findIndex((i) => i.name === c.env.ifname && i.sandbox);
  for (const ip of prev.ips.filter((i) => i.interface === undefined || i.interface === podIndex)) {
    if (!c.podAddresses.includes(ip.address)) throw failed(`interface ${c.env.ifname} lacks its address ${ip.address}`);
    const bare = ip.address.split('/')[0] as string;
    if (!c.ipamAddresses.includes(bare)) throw failed(`address ${bare} is not allocated to ${c.env.containerId}/${c.env.ifname} in IPAM`);
  }
  // Routes from the result (later chained plugins may add more; that is fine).
  const routes = c.pod.listRoutes();
  for (const r of prev.routes) {
    const found = routes.some((x) => x.dst === r.dst && (r.gw === undefined || x.gateway === r.gw));
    if (!found) throw failed(`route to ${r.dst}${r.gw ? ` via ${r.gw}` : ''} is missing in ${c.env.netns}`);
  }
  // The host end: on the bridge, the pod interface's peer, hairpin as configured.
  const hostName = prev.interfaces.find((i) => !i.sandbox && i.name !== c.config.bridge)?.name;
  if (hostName) {
    const host = c.node.getLink(hostName);
    if (!host) throw failed(`host veth ${hostName} is missing on the node`);
    if (host.master !== bridge.index) throw failed(`host veth ${hostName} is not attached to bridge ${c.config.bridge}`);
    if (podLink.peerIndex !== undefined && podLink.peerIndex !== host.index) throw failed(`host veth ${hostName} is not the peer of ${c.env.ifname}`);
    if (c.config.hairpinMode && host.hairpin === false) throw failed(`hairpin mode is off on ${hostName}`);
  }
}
