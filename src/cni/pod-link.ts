// Inside the pod's namespace: the addresses and routes of its interface, in two batches
// (addresses first: a route via the gateway needs the connected route an address brings).
import { addAddressRequest, routeRequest, setLinkRequest, type Rtnetlink } from '../netlink/index.ts';
import type { Route } from './config.ts';
import { native } from '../native/native.ts';
import { WeftError, errnoCode } from '../errors.ts';

export interface PodInterfaceSpec {
  ifname: string;
  /** "10.16.1.5/24" */
  addresses: string[];
  routes: Route[];
}

export function configurePodInterface(nl: Rtnetlink, spec: PodInterfaceSpec): void {
  const index = nl.linkIndex(spec.ifname);
  // IPv6 without DAD: the address is usable at once, not seconds later (kubernetes#54651).
  nl.batch([
    setLinkRequest(index, { up: true }),
    ...spec.addresses.map((a) => addAddressRequest(index, a, { noDad: true }, spec.ifname)),
  ]);
  nl.batch(spec.routes.map((r) => routeRequest('add', { dst: r.dst, ...(r.gw ? { gateway: r.gw } : {}), oif: index })));
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
      native().writeInNetns(netnsPath, file, value);
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw new WeftError('WEFT_NETNS', `cannot set ${file} in ${netnsPath}: ${(e as Error).message}`, { cause: e });
    }
  }
}
