// The routed pod link (WEFT_POD_LINK=routed): the pod's veth meets the node on no bridge. The
// pod holds its addresses as /32 (/128) and sends everything via a link-local gateway
// (plan.ts ROUTED_GATEWAY) whose permanent neighbour is the host end's MAC; the node reaches
// the pod through a /32 host route on the host end, tagged with weft's route protocol, and a
// permanent neighbour for the pod's MAC. No ARP either way, no bridge, no bridge netfilter:
// plain kernel routing (docs/dataplane.md).
//
// The kernel is the record: listRoutedPods() finds every routed pod from its route and
// neighbour, so an agent restart or a fast path (src/fastpath) needs no state of its own.
//
// Migration on a live node: bridge pods see their whole /24 as on-link and ARP for a routed
// neighbour on cni0; proxy ARP on cni0 answers for every address routed elsewhere, i.e. the
// routed pods, so both kinds reach each other until the bridge pods are recreated.
import { readFileSync, writeFileSync } from 'node:fs';
import { WeftError, errnoCode } from '../errors.ts';
import { isExists, isNotFound, type Rtnetlink } from '../netlink/index.ts';
import { writeNetSysctl } from './pod-link.ts';

/**
 * rtm_protocol of a routed pod's host route ("proto 88" in `ip route`), free in iproute2's
 * rt_protos. Not the data plane's 87 (src/dataplane/plan.ts RTPROT_WEFT): it reconciles
 * every proto-87 route as a peer route of its own and would delete the pods' /32s.
 */
export const RTPROT_WEFT_POD = 88;

/** ndm_state of a neighbour that never expires (NUD_PERMANENT). */
export const NUD_PERMANENT = 0x80;

export interface RoutedPod {
  hostIfindex: number;
  hostIfname: string;
  hostMac: string;
  podMac: string;
  ipv4?: string;
  ipv6?: string;
}

/** Every routed pod on this node, from the kernel: proto-88 routes on veth devices + the permanent neighbour. */
export function listRoutedPods(nl: Rtnetlink): RoutedPod[] {
  const routes = nl.listRoutes().filter((r) => r.protocol === RTPROT_WEFT_POD && r.oif !== undefined);
  if (routes.length === 0) return [];
  const veths = new Map(nl.listLinks().filter((l) => l.kind === 'veth').map((l) => [l.index, l]));
  const macs = new Map(nl.listNeighbours().filter((n) => (n.state & NUD_PERMANENT) !== 0 && n.mac !== undefined)
    .map((n) => [`${n.index}/${n.ip}`, n.mac as string]));
  const pods = new Map<number, RoutedPod>();
  for (const r of routes) {
    const link = veths.get(r.oif as number);
    const [ip, prefix] = r.dst.split('/') as [string, string];
    const podMac = macs.get(`${r.oif}/${ip}`);
    if (!link || !podMac || Number(prefix) !== (r.family === 4 ? 32 : 128)) continue;
    let pod = pods.get(link.index);
    if (!pod) {
      pod = { hostIfindex: link.index, hostIfname: link.name, hostMac: link.mac ?? '', podMac };
      pods.set(link.index, pod);
    }
    if (r.family === 4) pod.ipv4 ??= ip;
    else pod.ipv6 ??= ip;
  }
  return [...pods.values()];
}

/** Whether any routed pod's host route exists (one IPv4 route dump). */
export function hasRoutedPods(nl: Rtnetlink): boolean {
  return nl.listRoutes({ family: 4 }).some((r) => r.protocol === RTPROT_WEFT_POD);
}

export interface HostRouteSpec {
  hostIndex: number;
  hostName: string;
  podMac: string;
  /** The pod's addresses, without prefix. */
  ips: string[];
}

/**
 * The node's way to the pod: a permanent neighbour, then the host route (last, so the pod is
 * listed only once it is reachable). Each step pushes its undo; deleting the veth would remove
 * both too, but a failed ADD must not depend on that.
 */
export function routeToPod(node: Rtnetlink, spec: HostRouteSpec, undo: (() => unknown)[]): void {
  for (const ip of spec.ips) {
    node.setNeighbour({ index: spec.hostIndex, ip, mac: spec.podMac });
    undo.push(() => quietlyGone(() => node.deleteNeighbour({ index: spec.hostIndex, ip })));
  }
  for (const ip of spec.ips) {
    const dst = `${ip}/${ip.includes(':') ? 128 : 32}`;
    try {
      node.addRoute({ dst, oif: spec.hostIndex, scope: 'link', protocol: RTPROT_WEFT_POD });
    } catch (e) {
      if (!isExists(e)) throw e;
      throw new WeftError('WEFT_NETLINK', `the node already has a route to ${dst} (${describeRouteTo(node, dst)}), so pod address ${ip} would be unreachable; ` +
        `remove the stale route (ip route del ${dst}) or the pod that holds it`, { cause: e });
    }
    undo.push(() => quietlyGone(() => node.deleteRoute({ dst, oif: spec.hostIndex, protocol: RTPROT_WEFT_POD })));
  }
}

function describeRouteTo(node: Rtnetlink, dst: string): string {
  const route = node.listRoutes({ family: dst.includes(':') ? 6 : 4 }).find((r) => r.dst === dst);
  const dev = route?.oif === undefined ? undefined : node.getLink(route.oif)?.name;
  return `${dev ? `dev ${dev}` : 'another device'}${route ? `, proto ${route.protocol}` : ''}`;
}

function quietlyGone(step: () => void): void {
  try {
    step();
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/** The host end answers no ARP of its own (a node-wide default could say otherwise); the pod has its gateway's MAC. */
export function setHostVethKnobs(hostName: string): void {
  setIpv4ConfKnob(hostName, 'proxy_arp', '0');
}

/**
 * Proxy ARP on the bridge, so bridge pods (their whole subnet on-link) reach routed pods on the
 * same node. Quiet when the bridge has no IPv4 config (it is gone). Written only when it differs.
 */
export function enableBridgeProxyArp(bridge: string): void {
  try {
    setIpv4ConfKnob(bridge, 'proxy_arp', '1');
  } catch (e) {
    if (errnoCode((e as Error).cause) !== 'ENOENT') throw e;
  }
}

function setIpv4ConfKnob(ifname: string, knob: string, value: string): void {
  const file = `/proc/sys/net/ipv4/conf/${ifname}/${knob}`;
  try {
    if (readFileSync(file, 'utf8').trim() === value) return;
    writeNetSysctl(file, (path) => writeFileSync(path, value));
  } catch (e) {
    throw new WeftError('WEFT_NETLINK', `cannot set ${file} to ${value}: ${(e as Error).message}`, { cause: e });
  }
}
