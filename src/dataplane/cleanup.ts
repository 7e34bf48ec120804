// Removing weft's kernel state without a running agent: at start-up, the weft-owned routes that
// lie outside the cluster Network (a route a bad lease got programmed, say for etcd's address,
// must not survive a restart and keep the node from reaching etcd again), and on uninstall
// every weft-owned route. Weft-owned: protocol RTPROT_WEFT (only weft uses 0x57), or a
// non-kernel route out of a flannel.<N> vxlan device (that device is the overlay's alone).
import { WeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { cidrContainsCidr, parseCidr, type Cidr } from '../net/cidr.ts';
import { routeRequest, RT_TABLE_MAIN, RTPROT_KERNEL, type Link, type Route, type Rtnetlink } from '../netlink/index.ts';
import { RTPROT_WEFT } from './plan.ts';
import { VXLAN_DEVICE } from './vxlan/index.ts';


/** ifindexes of the flannel.<N> vxlan devices. */
export function overlayDevices(links: readonly Link[]): Set<number> {
  return new Set(links.filter((l) => l.kind === 'vxlan' && VXLAN_DEVICE.test(l.name)).map((l) => l.index));
}

/** Whether a route is weft's to remove (see the top of this file). */
export function weftOwnedRoute(r: Route, devices: ReadonlySet<number>): boolean {
  if (r.type !== 'unicast') return false;
  if (r.protocol === RTPROT_WEFT) return true;
  return r.protocol !== RTPROT_KERNEL && r.table === RT_TABLE_MAIN && r.oif !== undefined && devices.has(r.oif);
}

function parseNetworks(networks: readonly string[]): Cidr[] {
  return networks.map((n) => {
    try {
      return parseCidr(n);
    } catch (e) {
      throw new WeftError('WEFT_INVALID_CONFIG', `removeRoutesOutside: network ${JSON.stringify(n)} is not a CIDR: ${(e as Error).message}`);
    }
  });
}

/**
 * The pure selection: weft-owned routes whose destination is not inside any of networks. With
 * no network at all nothing is selected (nothing to judge against; the caller has no previous
 * subnet.env).
 */
export function routesOutside(routes: readonly Route[], devices: ReadonlySet<number>, networks: readonly string[]): Route[] {
  const nets = parseNetworks(networks);
  if (nets.length === 0) return [];
  return routes.filter((r) => {
    if (!weftOwnedRoute(r, devices)) return false;
    let dst: Cidr;
    try {
      dst = parseCidr(r.dst);
    } catch {
      return true; // a destination we cannot read is not inside anything we route
    }
    return !nets.some((n) => cidrContainsCidr(n, dst));
  });
}

function deleteRoutes(nl: Rtnetlink, routes: readonly Route[], log: Logger | undefined, why: string): number {
  if (routes.length === 0) return 0;
  const results = nl.batchSettled(routes.map((r) => routeRequest('delete', {
    dst: r.dst, family: r.family, table: r.table, protocol: r.protocol,
    ...(r.gateway !== undefined ? { gateway: r.gateway } : {}), ...(r.oif !== undefined ? { oif: r.oif } : {}),
    ...(r.priority !== undefined ? { priority: r.priority } : {}),
  })));
  let removed = 0;
  results.forEach((error, i) => {
    const r = routes[i] as Route;
    if (error) log?.warn({ dst: r.dst, err: error.message }, `could not remove route ${r.dst}: ${error.message}`);
    else {
      removed++;
      log?.warn({ dst: r.dst, gateway: r.gateway, oif: r.oif }, `removed route ${r.dst}: ${why}`);
    }
  });
  return removed;
}

/**
 * Deletes the weft-owned routes (protocol RTPROT_WEFT, or on a flannel.<N> vxlan device) whose
 * destination is not inside any of networks; returns how many went. Meant for start-up, before
 * the agent connects to etcd, with the Network of the last subnet.env.
 */
export function removeRoutesOutside(nl: Rtnetlink, networks: readonly string[], log?: Logger): number {
  const outside = routesOutside(nl.listRoutes(), overlayDevices(nl.listLinks()), networks);
  return deleteRoutes(nl, outside, log, `it lies outside the cluster Network (${networks.join(', ')})`);
}

/** Deletes every route with protocol RTPROT_WEFT (any table, any family); returns how many went. */
export function removeWeftRoutes(nl: Rtnetlink, log?: Logger): number {
  return deleteRoutes(nl, nl.listRoutes().filter((r) => r.protocol === RTPROT_WEFT), log, 'uninstall');
}
