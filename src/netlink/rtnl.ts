// Rtnetlink: the operations the CNI plugin and the data planes need, over one persistent
// NETLINK_ROUTE socket (optionally opened inside another network namespace). Every method is
// synchronous and costs one round trip to the kernel (two when a link is named rather than
// numbered and the call needs its ifindex). For many changes at once, build requests with the
// *Request functions of link.ts, addr.ts, route.ts and neigh.ts and pass them to batch().
import { constants } from 'node:os';
import { WeftError } from '../errors.ts';
import { addAddressRequest, decodeAddress, deleteAddressRequest, listAddressesRequest, type AddAddressOptions, type Address } from './addr.ts';
import { RTM_F_CLONED, RT_TABLE_MAIN } from './constants.ts';
import { isExists, NetlinkError } from './errors.ts';
import type { IpFamily } from './ip.ts';
import {
  createBridgeRequest, createVethRequest, createVxlanRequest, decodeLink, deleteLinkRequest, describeLink,
  getLinkRequest, listLinksRequest, setHairpinRequest, setLinkRequest,
  type BridgeSpec, type Link, type LinkChange, type LinkRef, type VethSpec, type VxlanSpec,
} from './link.ts';
import {
  decodeFdb, decodeNeighbour, fdbRequest, listFdbRequest, listNeighboursRequest, neighbourRequest,
  type FdbEntry, type FdbSpec, type Neighbour, type NeighbourSpec,
} from './neigh.ts';
import { decodeRoute, listRoutesRequest, routeRequest, type Route, type RouteSpec } from './route.ts';
import { NetlinkSocket, type NetlinkRequest, type NetlinkSocketOptions } from './socket.ts';

export interface AddressFilter {
  link?: LinkRef;
  family?: IpFamily;
}

export interface RouteFilter {
  family?: IpFamily;
  /** A table id, or "all"; default main. */
  table?: number | 'all';
  oif?: number;
}

export interface NeighbourFilter {
  index?: number;
  family?: IpFamily;
}

export class Rtnetlink {
  readonly socket: NetlinkSocket;

  private constructor(socket: NetlinkSocket) {
    this.socket = socket;
  }

  /** Opens a NETLINK_ROUTE socket, inside the namespace at netnsPath (/run/netns/x, /proc/PID/ns/net) if given. */
  static open(netnsPath?: string, options?: NetlinkSocketOptions): Rtnetlink {
    return new Rtnetlink(NetlinkSocket.open(undefined, netnsPath, options));
  }

  close(): void {
    this.socket.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Sends all requests in one send(); throws NetlinkBatchError naming each failed request. */
  batch(reqs: readonly NetlinkRequest[]): void {
    this.socket.batch(reqs);
  }

  /** Like batch(), but returns each request's error (or undefined) instead of throwing. */
  batchSettled(reqs: readonly NetlinkRequest[]): (NetlinkError | undefined)[] {
    return this.socket.batchSettled(reqs);
  }

  // --- links -----------------------------------------------------------------------------

  /** The link, or null when there is none by that index or name. */
  getLink(ref: LinkRef): Link | null {
    try {
      return this.socket.query(getLinkRequest(ref), decodeLink)[0] ?? null;
    } catch (e) {
      if (e instanceof NetlinkError && e.notFound) return null;
      throw e;
    }
  }

  listLinks(): Link[] {
    return this.socket.dump(listLinksRequest(), decodeLink);
  }

  /** ifindex of ref; throws a not-found NetlinkError naming `operation` when the link is absent. */
  linkIndex(ref: LinkRef, operation = `look up ${describeLink(ref)}`): number {
    if (typeof ref === 'number') return ref;
    const link = this.getLink(ref);
    if (!link) throw new NetlinkError(operation, { errno: constants.errno.ENODEV, message: `no link named ${ref}` });
    return link.index;
  }

  /** Throws NetlinkError with .exists when a link of that name is already there. */
  createBridge(spec: BridgeSpec): void {
    this.socket.request(createBridgeRequest(spec));
  }

  /** Creates the bridge unless it exists; either way returns it. Throws if the name is taken by a non-bridge. */
  ensureBridge(spec: BridgeSpec): Link {
    try {
      this.createBridge(spec);
    } catch (e) {
      if (!isExists(e)) throw e;
    }
    const link = this.getLink(spec.name);
    if (!link) throw new WeftError('WEFT_NETLINK', `ensure bridge ${spec.name}: it vanished right after creation`);
    if (link.kind !== 'bridge') {
      throw new WeftError('WEFT_NETLINK', `ensure bridge ${spec.name}: a link of that name exists but is ${link.kind ?? 'a device'}, not a bridge`);
    }
    return link;
  }

  /** Creates both ends in one request; see VethSpec (peer.netnsFd creates the peer in another namespace). */
  createVeth(spec: VethSpec): void {
    this.socket.request(createVethRequest(spec));
  }

  createVxlan(spec: VxlanSpec): void {
    this.socket.request(createVxlanRequest(spec));
  }

  /** Applies several changes to one link in one request. */
  setLink(ref: LinkRef, change: LinkChange): void {
    this.socket.request(setLinkRequest(ref, change));
  }

  setLinkUp(ref: LinkRef): void {
    this.setLink(ref, { up: true });
  }

  setLinkDown(ref: LinkRef): void {
    this.setLink(ref, { up: false });
  }

  setMtu(ref: LinkRef, mtu: number): void {
    this.setLink(ref, { mtu });
  }

  setMac(ref: LinkRef, mac: string): void {
    this.setLink(ref, { mac });
  }

  /** Enslaves ref to master (a bridge), or releases it with null. */
  setMaster(ref: LinkRef, master: LinkRef | null): void {
    const index = master === null ? null : this.linkIndex(master, `set master of ${describeLink(ref)} to ${describeLink(master)}`);
    this.setLink(ref, { master: index });
  }

  /** Throws NetlinkError with .notFound when there is no such link. */
  deleteLink(ref: LinkRef): void {
    this.socket.request(deleteLinkRequest(ref));
  }

  setHairpin(port: LinkRef, on: boolean): void {
    const index = this.linkIndex(port, `set hairpin ${on ? 'on' : 'off'} on bridge port ${describeLink(port)}`);
    this.socket.request(setHairpinRequest(index, on));
  }

  /** Hairpin mode of a bridge port; null when the link is absent or not a bridge port. */
  getHairpin(port: LinkRef): boolean | null {
    return this.getLink(port)?.hairpin ?? null;
  }

  // --- addresses -------------------------------------------------------------------------

  addAddress(link: LinkRef, cidr: string, options?: AddAddressOptions): void {
    const name = typeof link === 'string' ? link : undefined;
    const index = this.linkIndex(link, `add address ${cidr} to ${describeLink(link)}`);
    this.socket.request(addAddressRequest(index, cidr, options, name));
  }

  deleteAddress(link: LinkRef, cidr: string): void {
    const name = typeof link === 'string' ? link : undefined;
    const index = this.linkIndex(link, `delete address ${cidr} from ${describeLink(link)}`);
    this.socket.request(deleteAddressRequest(index, cidr, name));
  }

  listAddresses(filter: AddressFilter = {}): Address[] {
    const index = filter.link === undefined ? undefined : this.linkIndex(filter.link, `list addresses of ${describeLink(filter.link)}`);
    const all = this.socket.dump(listAddressesRequest(filter.family), decodeAddress);
    return index === undefined ? all : all.filter((a) => a.index === index);
  }

  // --- routes ----------------------------------------------------------------------------

  /** Throws NetlinkError with .exists when the same route is already there. */
  addRoute(spec: RouteSpec): void {
    this.socket.request(routeRequest('add', spec));
  }

  replaceRoute(spec: RouteSpec): void {
    this.socket.request(routeRequest('replace', spec));
  }

  /** Fields left out match any route (as `ip route del`); throws with .notFound when none matches. */
  deleteRoute(spec: RouteSpec): void {
    this.socket.request(routeRequest('delete', spec));
  }

  /** Routes of the main table (or filter.table), without cached clones. */
  listRoutes(filter: RouteFilter = {}): Route[] {
    const table = filter.table ?? RT_TABLE_MAIN;
    return this.socket.dump(listRoutesRequest(filter.family), decodeRoute).filter((r) =>
      (table === 'all' || r.table === table) && (r.flags & RTM_F_CLONED) === 0 &&
      (filter.oif === undefined || r.oif === filter.oif));
  }

  // --- neighbours and FDB (VXLAN data plane) ---------------------------------------------

  /** Adds or replaces a permanent neighbour (ARP/NDP) entry. */
  setNeighbour(spec: NeighbourSpec): void {
    this.socket.request(neighbourRequest('replace', spec));
  }

  deleteNeighbour(spec: Omit<NeighbourSpec, 'mac'>): void {
    this.socket.request(neighbourRequest('delete', { ...spec, mac: '' }));
  }

  listNeighbours(filter: NeighbourFilter = {}): Neighbour[] {
    const all = this.socket.dump(listNeighboursRequest(filter.family), decodeNeighbour);
    return filter.index === undefined ? all : all.filter((n) => n.index === filter.index);
  }

  /** Adds or replaces a permanent FDB entry (NTF_SELF) on a vxlan device. */
  setFdb(spec: FdbSpec): void {
    this.socket.request(fdbRequest('replace', spec));
  }

  /** Adds another destination for the MAC (e.g. 00:00:00:00:00:00 flood entries). */
  appendFdb(spec: FdbSpec): void {
    this.socket.request(fdbRequest('append', spec));
  }

  deleteFdb(spec: FdbSpec): void {
    this.socket.request(fdbRequest('delete', spec));
  }

  listFdb(filter: { index?: number } = {}): FdbEntry[] {
    const all = this.socket.dump(listFdbRequest(), decodeFdb);
    return filter.index === undefined ? all : all.filter((f) => f.index === filter.index);
  }
}
