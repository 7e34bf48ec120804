// Inside the pod's namespace: the addresses and routes of its interface, in two batches
// (addresses first: a route via the gateway needs the connected route an address brings).
// A routed pod's /32 brings no connected route: its gateway gets an on-link route and a
// permanent neighbour first, in the same batch as the routes via it (the kernel applies a
// batch in order).
import { addAddressRequest, neighbourRequest, routeRequest, setLinkRequest, type NetlinkRequest, type Rtnetlink } from '../netlink/index.ts';
import type { Route } from './config.ts';
import { native } from '../native/native.ts';
import { WeftError, errnoCode } from '../errors.ts';
import { existsSync } from 'node:fs';

export interface PodInterfaceSpec {
  ifname: string;
  /** "10.16.1.5/24" */
  addresses: string[];
  routes: Route[];
  /** On-link gateways (routed pods): a scope-link route and a permanent neighbour each, before the routes. */
  gateways?: { ip: string; mac: string }[];
}

export function configurePodInterface(nl: Rtnetlink, spec: PodInterfaceSpec): void {
  const index = nl.linkIndex(spec.ifname);
  // IPv6 without DAD: the address is usable at once, not seconds later (kubernetes#54651).
  nl.batch([
    setLinkRequest(index, { up: true }),
    ...spec.addresses.map((a) => addAddressRequest(index, a, { noDad: true }, spec.ifname)),
  ]);
  const gateways: NetlinkRequest[] = (spec.gateways ?? []).flatMap((g) => [
    routeRequest('add', { dst: `${g.ip}/${g.ip.includes(':') ? 128 : 32}`, oif: index, scope: 'link' }),
    neighbourRequest('replace', { index, ip: g.ip, mac: g.mac }),
  ]);
  nl.batch([...gateways, ...spec.routes.map((r) => routeRequest('add', { dst: r.dst, ...(r.gw ? { gateway: r.gw } : {}), oif: index }))]);
}

/** The interface's global addresses as "ip/prefix"; [] when it does not exist. */
export function podAddresses(nl: Rtnetlink, ifname: string): string[] {
  const link = nl.getLink(ifname);
  if (!link) return [];
  return nl.listAddresses({ link: link.index }).filter((a) => a.scope === 0).map((a) => a.cidr);
}

/**
 * Like the bridge plugin: announce the pod's MAC on link up (arp_notify), so neighbours drop a
 * stale entry for a reused address at once; and no duplicate address detection, so the
 * interface's IPv6 addresses are usable at once. Knobs that do not exist (IPv6 disabled in
 * the pod) are skipped.
 */
export function setPodInterfaceKnobs(netnsPath: string, ifname: string): void {
  const knobs: [string, string][] = [
    [`/proc/sys/net/ipv4/conf/${ifname}/arp_notify`, '1'],
    [`/proc/sys/net/ipv6/conf/${ifname}/accept_dad`, '0'],
  ];
  for (const [file, value] of knobs) {
    try {
      writeNetSysctl(file, (path) => native().writeInNetns(netnsPath, path, value));
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw new WeftError('WEFT_NETNS', `cannot set ${file} in ${netnsPath}: ${(e as Error).message}`, { cause: e });
    }
  }
}

/**
 * Where a container's /proc/sys is read-only (any unprivileged one, such as weft's DaemonSet pod;
 * kubelet cannot mount inside /proc), weft's manifests mount the node's /proc/sys/net here. A
 * knob under /proc/sys/net belongs to the writer's network namespace whichever procfs mount it
 * is reached through, so the same relative path works (docs/manifests.md, Privileges).
 */
export const HOST_PROC_SYS_NET = '/host/proc/sys/net';

/** write(file) for a /proc/sys/net knob; where /proc/sys is read-only, write() through HOST_PROC_SYS_NET. */
export function writeNetSysctl(file: string, write: (path: string) => void, hostDir = HOST_PROC_SYS_NET): void {
  try {
    write(file);
  } catch (e) {
    if (errnoCode(e) !== 'EROFS' || !file.startsWith('/proc/sys/net/')) throw e;
    if (!existsSync(hostDir)) {
      throw Object.assign(new Error(`${file}: read-only file system (an unprivileged container: mount the node's /proc/sys/net at ${hostDir}, as weft's manifests do)`), { code: 'EROFS', cause: e });
    }
    write(`${hostDir}${file.slice('/proc/sys/net'.length)}`);
  }
}
