// CNI CHECK: small validators over what ADD created and prevResult recorded (docs/cni-spec-notes.md §1.7).
// Each failure names the object and what is wrong with it.
import { WeftError } from '../errors.ts';
import type { Link, Rtnetlink } from '../netlink/index.ts';
import type { PluginConfig } from './config.ts';
import type { CniEnv } from './env.ts';
import type { PodNetworkPlan } from './plan.ts';
import { readPrevResult } from './result.ts';
import { NUD_PERMANENT, RTPROT_WEFT_POD } from './routed-link.ts';

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
  // The ADD's result says how the pod was linked: a bridged pod's lists the bridge. Not
  // subnet.env, which may have switched since (routed-link.ts, migration).
  const bridged = prev.interfaces.some((i) => !i.sandbox && i.name === c.config.bridge);
  const bridge = bridged ? checkBridge(c) : undefined;

  // The pod's interface: present, up, with the recorded addresses.
  const podLink = c.pod.getLink(c.env.ifname);
  if (!podLink) throw failed(`interface ${c.env.ifname} is missing in ${c.env.netns}`);
  if (!podLink.up) throw failed(`interface ${c.env.ifname} in ${c.env.netns} is down`);
  const podIndex = prev.interfaces.findIndex((i) => i.name === c.env.ifname && i.sandbox);
  const podIps = prev.ips.filter((i) => i.interface === undefined || i.interface === podIndex);
  for (const ip of podIps) {
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
  // The host end: the pod interface's peer; on the bridge (hairpin as configured), or routed.
  const hostEntry = prev.interfaces.find((i) => !i.sandbox && i.name !== c.config.bridge);
  if (!hostEntry) return;
  const host = c.node.getLink(hostEntry.name);
  if (!host) throw failed(`host veth ${hostEntry.name} is missing on the node`);
  if (podLink.peerIndex !== undefined && podLink.peerIndex !== host.index) throw failed(`host veth ${hostEntry.name} is not the peer of ${c.env.ifname}`);
  if (bridge) {
    if (host.master !== bridge.index) throw failed(`host veth ${hostEntry.name} is not attached to bridge ${c.config.bridge}`);
    if (c.config.hairpinMode && host.hairpin === false) throw failed(`hairpin mode is off on ${hostEntry.name}`);
    return;
  }
  checkRouted(c, { host, podLink, podIps: podIps.map((i) => ({ address: i.address.split('/')[0] as string, gateway: i.gateway })) });
}

/** The bridge and its gateway addresses. */
function checkBridge(c: CheckInput): Link {
  const bridge = c.node.getLink(c.config.bridge);
  if (!bridge || bridge.kind !== 'bridge') throw failed(`bridge ${c.config.bridge} is missing on the node`);
  const bridgeAddrs = c.node.listAddresses({ link: bridge.index }).map((a) => a.cidr);
  for (const gw of c.plan.gateways) if (!bridgeAddrs.includes(gw)) throw failed(`bridge ${c.config.bridge} lacks its gateway address ${gw}`);
  return bridge;
}

/**
 * A routed pod (routed-link.ts): the host end up and on no bridge, a host route and a permanent
 * neighbour per address on it; in the pod, a permanent neighbour for each gateway with the host end's MAC.
 */
function checkRouted(c: CheckInput, o: { host: Link; podLink: Link; podIps: { address: string; gateway?: string }[] }): void {
  const { host } = o;
  if (!host.up) throw failed(`host veth ${host.name} is down`);
  if (host.master !== undefined) throw failed(`host veth ${host.name} of a routed pod is attached to a bridge`);
  const hostRoutes = c.node.listRoutes({ oif: host.index });
  const hostNeighbours = c.node.listNeighbours({ index: host.index });
  for (const { address } of o.podIps) {
    const dst = `${address}/${address.includes(':') ? 128 : 32}`;
    if (!hostRoutes.some((r) => r.dst === dst && r.protocol === RTPROT_WEFT_POD)) throw failed(`the node's route to ${dst} via ${host.name} is missing`);
    const n = hostNeighbours.find((x) => x.ip === address);
    if (!n || (n.state & NUD_PERMANENT) === 0 || n.mac !== o.podLink.mac) throw failed(`the node's neighbour entry for ${address} on ${host.name} is missing or wrong`);
  }
  const podNeighbours = c.pod.listNeighbours({ index: o.podLink.index });
  for (const gw of new Set(o.podIps.map((i) => i.gateway).filter((g) => g !== undefined))) {
    const n = podNeighbours.find((x) => x.ip === gw);
    if (!n || (n.state & NUD_PERMANENT) === 0 || n.mac !== host.mac) throw failed(`the neighbour entry for gateway ${gw} in ${c.env.netns} is missing or wrong`);
  }
}
