// The pure half of every backend: from peers to the desired kernel state (planPeers), which
// kernel objects are ours (ownedRoutes, ownedFdb; neighbours in diff), and the operations that
// turn the actual state into the desired one (diff). No I/O here; reconcile.ts reads the
// kernel, calls these and applies the result in one netlink batch.
//
// Peers are untrusted (whoever writes a lease): no route is planned for a prefix outside the
// cluster Network, for an unusable PublicIP, or (vxlan) for a peer on another VNI; a backend
// without a Network plans nothing. Since every route weft installs is ours (below), a route an
// earlier, more trusting pass installed for such a peer is deleted by the next reconcile.
//
// Ownership rule (what a reconcile may change or delete):
// - routes of the main table, unicast, with protocol RTPROT_WEFT (0x57, "weft"): every route
//   weft installs carries it, whatever the device;
// - any other non-kernel route out of our vxlan device (flannel.<VNI> is ours alone; flanneld
//   installs its routes there with protocol boot);
// - protocol-boot routes with a gateway out of the underlay whose destination lies inside the
//   cluster Network (flanneld's host-gw and DirectRouting routes), or, when the Network is not
//   known, whose destination is exactly a desired peer subnet. These are adopted: when one
//   already matches, it is left as it is (a flanneld -> weft switch makes no change).
// - permanent neighbours on our vxlan device; permanent FDB entries with a destination on it.
// Nothing else is touched: the default route, kernel prefix routes and an operator's routes on
// the underlay are never ours.
import { RTPROT_BOOT, RTPROT_KERNEL, type Neighbour, type FdbEntry as KernelFdbEntry, type Route } from '../netlink/index.ts';
import { WeftError } from '../errors.ts';
import {
  cidrContains, cidrContainsCidr, cidrsOverlap, formatCidr, formatIp, networkAddress, parseCidr, parseIp, prefixMask, tryParseIp, type Cidr, type IpAddress,
} from '../net/cidr.ts';
import { unusablePublicIp } from '../net/public-ip.ts';
import type { PeerPath, Peer, ReconcileReport } from './backend.ts';

/** rtm_protocol of the routes weft installs: 0x57 ("W"); unused in iproute2's rt_protos. */
export const RTPROT_WEFT = 0x57;
const NUD_PERMANENT = 0x80;
const ZERO_MAC = '00:00:00:00:00:00';

/** A route weft wants: `<dst> via <gateway> dev <oif> [onlink]`. */
export interface RouteEntry {
  dst: string;
  gateway: string;
  oif: number;
  onlink: boolean;
}

/** A permanent neighbour on the vxlan device: peer subnet's network address -> peer VTEP MAC. */
export interface NeighEntry {
  index: number;
  ip: string;
  mac: string;
}

/** A permanent self FDB entry on the vxlan device: peer VTEP MAC -> peer PublicIP. */
export interface FdbEntry {
  index: number;
  mac: string;
  dst: string;
}

/** What the peers need; `peer` is the id of the peer an entry serves, for error reports. */
export interface DesiredState {
  routes: Map<string, RouteEntry & { peer: string }>;
  neighbours: Map<string, NeighEntry & { peer: string }>;
  fdb: Map<string, FdbEntry & { peer: string }>;
}

/** What the tunnel path needs from a peer, decoded from its BackendData by the backend that owns the format. */
export interface TunnelData {
  /** The peer's tunnel endpoint MAC (vxlan: VtepMAC), lower case. */
  mac: string;
  /** The peer's VNI, when it announces one. */
  vni: number | undefined;
}

export interface PlanContext {
  mode: 'vxlan' | 'host-gw';
  /** vxlan mode: serve peers on the underlay's own subnet with plain routes. */
  directRouting: boolean;
  /**
   * The cluster Network (flannel's "Network"). No peer subnet outside it is ever routed: a
   * lease is untrusted, and a route for the underlay or etcd's address would cut the node off.
   * Without it every peer is refused.
   */
  network: string | undefined;
  /** vxlan mode: our VNI; a peer announcing another is refused. */
  vni?: number;
  /** vxlan mode: decodes a peer's BackendData (the vxlan backend's format), or says why it cannot. */
  decodeTunnel?: (backendData: unknown) => TunnelData | string;
  /** vxlan mode: ifindex of flannel.<VNI>. */
  deviceIndex?: number;
  underlayIndex: number;
  underlayName?: string;
  publicIp: string;
  /** This node's lease subnet: a peer claiming it is skipped. */
  ownSubnet?: string;
  /** The main table (IPv4), to decide which peers the underlay reaches directly. */
  routes: readonly Route[];
}

export interface Plan {
  desired: DesiredState;
  paths: Map<string, PeerPath>;
  errors: ReconcileReport['errors'];
  warnings: ReconcileReport['warnings'];
}

/** The lease backend type each mode serves; other peers are ignored, as flanneld does. */
const SERVES: Record<PlanContext['mode'], string> = { vxlan: 'vxlan', 'host-gw': 'host-gw' };

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A MAC as the kernel prints it (lower case), or undefined when text is not one. */
export function normalizeMac(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const mac = text.toLowerCase();
  return MAC.test(mac) ? mac : undefined;
}

function parseNetwork(text: string): Cidr | string {
  try {
    const c = parseCidr(text);
    return c.family === 4 ? c : `subnet ${text} is not IPv4 (weft's etcd mode is IPv4 only)`;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The main table parsed once, for the two questions planPeers asks of every peer. Asking them
 * of the raw route list costs peers × routes parses: with 5,000 peers (and so 5,000 routes of
 * ours) an in-sync reconcile spent about 18 s of JavaScript there, blocking the event loop.
 * Built once per plan, each question is a few map lookups.
 */
export class RouteIndex {
  /** Per family: prefix lengths present, longest first, and per prefix the best route by network. */
  private readonly byPrefix = new Map<number, { prefixes: number[]; routes: Map<number, Map<bigint, Route>> }>();
  /** Directly connected (kernel, unicast, no gateway) routes, parsed. */
  private readonly connected: { net: Cidr; route: Route }[] = [];

  constructor(routes: readonly Route[]) {
    for (const r of routes) {
      let c: Cidr;
      try {
        c = parseCidr(r.dst);
      } catch {
        continue;
      }
      if (r.protocol === RTPROT_KERNEL && r.type === 'unicast' && r.gateway === undefined) this.connected.push({ net: c, route: r });
      if (r.family !== c.family) continue;
      let family = this.byPrefix.get(c.family);
      if (!family) {
        family = { prefixes: [], routes: new Map() };
        this.byPrefix.set(c.family, family);
      }
      let bucket = family.routes.get(c.prefix);
      if (!bucket) {
        bucket = new Map();
        family.routes.set(c.prefix, bucket);
        family.prefixes.push(c.prefix);
      }
      // Among routes to the same destination, the kernel prefers the lowest metric; the first such wins.
      const have = bucket.get(c.network);
      if (!have || (r.priority ?? 0) < (have.priority ?? 0)) bucket.set(c.network, r);
    }
    for (const f of this.byPrefix.values()) f.prefixes.sort((a, b) => b - a);
  }

  /** The main table's longest-prefix match for ip (lowest metric among equals), as the kernel picks it. */
  lookup(ip: IpAddress): Route | undefined {
    const family = this.byPrefix.get(ip.family);
    if (!family) return undefined;
    for (const prefix of family.prefixes) {
      const hit = family.routes.get(prefix)?.get(ip.value & prefixMask(ip.family, prefix));
      if (hit) return hit;
    }
    return undefined;
  }

  /** See directlyReachable. */
  directlyReachable(underlayIndex: number, ip: string): boolean {
    const target = tryParseIp(ip);
    const best = target && this.lookup(target);
    return best !== undefined && best.type === 'unicast' && best.gateway === undefined && best.nexthops === undefined
      && best.oif === underlayIndex;
  }

  /** A directly connected (kernel) route other than on our device that overlaps net, described, or undefined. */
  connectedOverlap(net: Cidr, deviceIndex: number | undefined): string | undefined {
    for (const { net: c, route: r } of this.connected) {
      if (r.oif === deviceIndex) continue;
      if (cidrsOverlap(c, net)) return `the connected network ${r.dst} on link #${r.oif ?? '?'}`;
    }
    return undefined;
  }
}

/**
 * Whether the kernel would send to ip straight out of the underlay: the longest-prefix match
 * of the main table is a unicast route out of the underlay with no gateway (a directly
 * connected subnet). The same answer `ip route get <ip>` gives for the main table, which is
 * what flanneld's DirectRouting asks. (For many questions, build one RouteIndex.)
 */
export function directlyReachable(routes: readonly Route[], underlayIndex: number, ip: string): boolean {
  return new RouteIndex(routes).directlyReachable(underlayIndex, ip);
}

/** A peer's subnets, validated and canonical, or why one of them cannot be routed (with that subnet). */
function peerSubnets(peer: Peer, network: Cidr, ctx: PlanContext, table: RouteIndex): { dst: string; net: Cidr }[] | { error: string; subnet: string } | 'own' {
  if (peer.subnets.length === 0) return { error: 'the peer has no subnet', subnet: '' };
  const out: { dst: string; net: Cidr }[] = [];
  for (const text of peer.subnets) {
    const net = parseNetwork(text);
    if (typeof net === 'string') return { error: net, subnet: text };
    const dst = formatCidr(net);
    if (ctx.ownSubnet !== undefined && dst === ctx.ownSubnet) {
      if (peer.subnets.length === 1) return 'own';
      return { error: `the peer claims our own lease subnet ${dst} among its subnets`, subnet: dst };
    }
    if (!cidrContainsCidr(network, net)) {
      return { error: `subnet ${dst} is outside the cluster Network ${formatCidr(network)}: routing it could send this node's own traffic (underlay, etcd) into the overlay`, subnet: dst };
    }
    if (net.prefix === network.prefix) {
      return { error: `subnet ${dst} is the whole cluster Network: no one node holds all of it`, subnet: dst };
    }
    if (ctx.ownSubnet !== undefined && cidrsOverlap(net, parseCidr(ctx.ownSubnet))) {
      return { error: `subnet ${dst} overlaps our own lease subnet ${ctx.ownSubnet}: a route to it would take our own pods' traffic`, subnet: dst };
    }
    const clash = net.prefix === 0 ? 'the default route' : table.connectedOverlap(net, ctx.deviceIndex);
    if (clash) return { error: `subnet ${dst} overlaps ${clash}: a route to it would break this node's own networking`, subnet: dst };
    if (out.some((o) => cidrsOverlap(o.net, net))) return { error: `the peer lists overlapping subnets (${dst})`, subnet: dst };
    out.push({ dst, net });
  }
  return out;
}

/** Why the peer's PublicIP cannot be sent to, or its canonical form. */
function peerAddress(peer: Peer, network: Cidr, ctx: PlanContext): { ip: string } | { error: string } {
  const publicIp = tryParseIp(peer.publicIp);
  if (!publicIp || publicIp.family !== 4) return { error: `the peer's PublicIP ${JSON.stringify(peer.publicIp)} is not an IPv4 address` };
  const ip = formatIp(publicIp);
  const why = unusablePublicIp(publicIp);
  if (why) return { error: `the peer's PublicIP ${ip} ${why}: no node can be reached there` };
  if (cidrContains(network, publicIp)) return { error: `the peer's PublicIP ${ip} lies inside the cluster Network ${formatCidr(network)}: traffic to it would loop into the overlay` };
  if (ip === ctx.publicIp) return { error: `the peer announces our own PublicIP ${ctx.publicIp}: two nodes cannot share one public IP (set --public-ip on one of them)` };
  return { ip };
}

/** The desired kernel state for peers, with each peer's path (by id) and what could not be planned. */
export function planPeers(peers: readonly Peer[], ctx: PlanContext): Plan {
  const planner = new PeerPlanner(ctx);
  for (const peer of peers) planner.add(peer);
  return planner.plan;
}

/**
 * planPeers one peer at a time, so that a caller can yield to the event loop between peers;
 * peers are decided in the order added (the first claimant of a subnet or a VtepMAC wins).
 */
/** The strict supernets of net, from one bit shorter down to `downTo` (the Network's prefix), canonical. */
function supernets(net: Cidr, downTo: number): string[] {
  const out: string[] = [];
  for (let p = net.prefix - 1; p >= downTo; p--) {
    out.push(formatCidr({ family: net.family, network: net.network & prefixMask(net.family, p), prefix: p }));
  }
  return out;
}

export class PeerPlanner {
  readonly plan: Plan = {
    desired: { routes: new Map(), neighbours: new Map(), fdb: new Map() },
    paths: new Map(),
    errors: [],
    warnings: [],
  };
  private readonly ctx: PlanContext;
  private readonly serves: string;
  private readonly network: Cidr | string | undefined;
  private readonly table: RouteIndex;
  /** VtepMACs some peer already announced: one MAC leads to one node. */
  private readonly fdbOwner = new Map<string, string>();
  /** Subnets some peer already claimed (programmed or not): a second claimant is refused. */
  private readonly claimed = new Map<string, string>();
  /** Every strict supernet of a claimed subnet, down to the Network: a newcomer that covers one overlaps a claim. */
  private readonly covering = new Map<string, string>();

  constructor(ctx: PlanContext) {
    this.ctx = ctx;
    this.serves = SERVES[ctx.mode];
    this.network = ctx.network === undefined ? undefined : parseNetwork(ctx.network);
    this.table = new RouteIndex(ctx.routes);
  }

  /**
   * A claimed subnet that overlaps net, if any. CIDRs overlap only when one contains the other,
   * so it is enough to look net and its supernets up among the claims, and net among the claims'
   * supernets: O(prefix length) per subnet, not O(peers).
   */
  private overlappingClaim(net: Cidr, network: Cidr): { peer: string; subnet: string } | undefined {
    const self = formatCidr(net);
    for (const dst of [self, ...supernets(net, network.prefix)]) {
      const peer = this.claimed.get(dst);
      if (peer !== undefined) return { peer, subnet: dst };
    }
    const inside = this.covering.get(self);
    return inside === undefined ? undefined : { peer: this.claimed.get(inside) ?? '?', subnet: inside };
  }

  add(peer: Peer): void {
    const { plan, ctx, serves, network, table, fdbOwner, claimed } = this;
    const first = peer.subnets[0] ?? '';
    if (plan.paths.has(peer.id)) {
      plan.errors.push({ peer: peer.id, subnet: first, error: `another peer has the same id ${JSON.stringify(peer.id)}; this duplicate is skipped` });
      return;
    }
    const fail = (error: string, subnet = first): void => {
      plan.errors.push({ peer: peer.id, subnet, error });
      plan.paths.set(peer.id, 'unreachable');
    };
    if (typeof network !== 'object') {
      fail(`this backend was set up without a valid cluster Network${typeof network === 'string' ? ` (${network})` : ''}: no peer is routed without one`);
      return;
    }
    const subnets = peerSubnets(peer, network, ctx, table);
    if (subnets === 'own') {
      plan.warnings.push({ peer: peer.id, subnet: first, warning: 'ignored: this is our own lease subnet' });
      plan.paths.set(peer.id, 'ignored');
      return;
    }
    if (!Array.isArray(subnets)) {
      fail(subnets.error, subnets.subnet);
      return;
    }
    for (const s of subnets) {
      const holder = this.overlappingClaim(s.net, network);
      if (holder) {
        fail(holder.subnet === s.dst
          ? `another peer (${holder.peer}) already has subnet ${s.dst}; this duplicate is skipped`
          : `another peer (${holder.peer}) already has ${holder.subnet}, which overlaps ${s.dst}; the later claim is skipped`, s.dst);
        return;
      }
    }
    for (const s of subnets) {
      claimed.set(s.dst, peer.id);
      for (const sup of supernets(s.net, network.prefix)) if (!this.covering.has(sup)) this.covering.set(sup, s.dst);
    }
    if (peer.backendType !== serves) {
      plan.warnings.push({ peer: peer.id, subnet: first, warning: `ignored: the peer's BackendType is "${peer.backendType}", this node serves "${serves}" peers only` });
      plan.paths.set(peer.id, 'ignored');
      return;
    }
    const address = peerAddress(peer, network, ctx);
    if ('error' in address) {
      fail(address.error);
      return;
    }
    const peerIp = address.ip;
    const direct = table.directlyReachable(ctx.underlayIndex, peerIp);
    if (ctx.mode === 'host-gw' || (ctx.directRouting && direct)) {
      if (!direct) {
        const via = ctx.underlayName ?? `link #${ctx.underlayIndex}`;
        fail(`host-gw cannot reach ${peerIp}: it is not on a subnet directly connected to ${via}, and host-gw needs every node on one L2 segment (use the vxlan or auto backend)`);
        return;
      }
      for (const { dst } of subnets) plan.desired.routes.set(dst, { dst, gateway: peerIp, oif: ctx.underlayIndex, onlink: false, peer: peer.id });
      plan.paths.set(peer.id, 'direct');
      return;
    }
    if (ctx.deviceIndex === undefined || !ctx.decodeTunnel) throw new WeftError('WEFT_INTERNAL', 'planPeers: vxlan mode needs deviceIndex and decodeTunnel');
    const tunnel = ctx.decodeTunnel(peer.backendData);
    if (typeof tunnel === 'string') {
      fail(tunnel);
      return;
    }
    if (tunnel.vni !== undefined && ctx.vni !== undefined && tunnel.vni !== ctx.vni) {
      fail(`the peer announces VNI ${tunnel.vni} but this node uses VNI ${ctx.vni}: its traffic would be dropped, so it is not programmed until both agree (the config's Backend.VNI)`);
      return;
    }
    const other = fdbOwner.get(tunnel.mac);
    if (other !== undefined) {
      fail(`VtepMAC ${tunnel.mac} is also announced by ${other}; one MAC can lead to one node only`);
      return;
    }
    fdbOwner.set(tunnel.mac, peer.id);
    // One neighbour and one FDB entry per peer; every subnet of the peer is routed via the
    // network address of its FIRST subnet. That address is flanneld's choice for its only
    // subnet (so a flanneld peer sees exactly flanneld's entries), and the peer holds it on its
    // device; the neighbour only gives the inner frame the peer's MAC, and the peer routes by
    // the inner destination, so one gateway serves all its subnets.
    const gateway = formatIp(networkAddress((subnets[0] as { net: Cidr }).net));
    plan.desired.neighbours.set(gateway, { index: ctx.deviceIndex, ip: gateway, mac: tunnel.mac, peer: peer.id });
    plan.desired.fdb.set(tunnel.mac, { index: ctx.deviceIndex, mac: tunnel.mac, dst: peerIp, peer: peer.id });
    for (const { dst } of subnets) plan.desired.routes.set(dst, { dst, gateway, oif: ctx.deviceIndex, onlink: true, peer: peer.id });
    plan.paths.set(peer.id, 'vxlan');
  }
}

export interface OwnershipContext {
  /** vxlan mode: ifindex of our device. */
  deviceIndex?: number;
  underlayIndex: number;
  /** The cluster Network (flannel's "Network"), to adopt flanneld's routes on the underlay. */
  network?: string;
  /** Destinations we want: without `network`, the only protocol-boot routes we adopt. */
  desired: ReadonlySet<string>;
}

function inside(network: Cidr | undefined, dst: string): boolean {
  if (!network) return false;
  try {
    return cidrContainsCidr(network, parseCidr(dst));
  } catch {
    return false;
  }
}

/** The routes (of the main table) that are ours, by the rule at the top of this file. */
export function ownedRoutes(routes: readonly Route[], ctx: OwnershipContext): Route[] {
  const network = ctx.network === undefined ? undefined : parseCidr(ctx.network);
  return routes.filter((r) => {
    // Never a default route, whatever its protocol: no peer subnet is /0.
    if (r.type !== 'unicast' || r.dst.endsWith('/0')) return false;
    if (r.protocol === RTPROT_WEFT) return true;
    if (r.protocol === RTPROT_KERNEL) return false;
    if (ctx.deviceIndex !== undefined && r.oif === ctx.deviceIndex) return true;
    return r.protocol === RTPROT_BOOT && r.oif === ctx.underlayIndex && r.gateway !== undefined
      && (network ? inside(network, r.dst) : ctx.desired.has(r.dst));
  });
}

/** Permanent unicast FDB entries with a destination on our device (not learned ones, not a bridge's). */
export function ownedFdb(entries: readonly KernelFdbEntry[], deviceIndex: number): KernelFdbEntry[] {
  return entries.filter((f) => f.index === deviceIndex && f.dst !== undefined && f.master === undefined
    && (f.state & NUD_PERMANENT) !== 0 && f.mac !== ZERO_MAC);
}

/** One kernel change. `peer` names whom it serves (a peer id), or the stale entry itself ("route 10.1.2.0/24"). */
export type Operation =
  | { kind: 'route'; action: 'replace'; route: RouteEntry; peer: string }
  | { kind: 'route'; action: 'delete'; route: Route; peer: string }
  | { kind: 'neigh'; action: 'replace'; neigh: NeighEntry; peer: string }
  | { kind: 'neigh'; action: 'delete'; neigh: Omit<NeighEntry, 'mac'>; peer: string }
  | { kind: 'fdb'; action: 'replace' | 'delete'; fdb: FdbEntry; peer: string };

export interface ActualState {
  /** Owned routes only (see ownedRoutes). */
  routes: readonly Route[];
  /** Neighbours on our device (permanent or not: a desired IP with a kernel-made entry is fixed). */
  neighbours: readonly Neighbour[];
  /** Owned FDB entries, in the kernel's dump order. */
  fdb: readonly KernelFdbEntry[];
}

function sameRoute(actual: Route, want: RouteEntry): boolean {
  return (actual.priority ?? 0) === 0 && actual.nexthops === undefined && actual.gateway === want.gateway
    && actual.oif === want.oif && actual.onlink === want.onlink;
}

/**
 * The operations that turn actual into desired, in a safe order for one batch: stale routes
 * first (no route points at an entry about to go), then neighbours and FDB entries, then new or
 * changed routes last (so the kernel never resolves a gateway before its neighbour exists, as
 * flanneld orders it). In sync means an empty list.
 */
export function diff(desired: DesiredState, actual: ActualState): Operation[] {
  const routeDeletes: Operation[] = [];
  const routeReplaces: Operation[] = [];
  const neighOps: Operation[] = [];
  const fdbOps: Operation[] = [];

  const routesByDst = groupBy(actual.routes, (r) => r.dst);
  for (const [dst, mine] of routesByDst) {
    const want = desired.routes.get(dst);
    if (!want) {
      for (const r of mine) routeDeletes.push({ kind: 'route', action: 'delete', route: r, peer: `route ${dst}` });
      continue;
    }
    const exact = mine.find((r) => sameRoute(r, want));
    // A replace rewrites the route with the same destination and metric 0; others must go.
    const keep = exact ?? mine.find((r) => (r.priority ?? 0) === 0);
    for (const r of mine) if (r !== keep) routeDeletes.push({ kind: 'route', action: 'delete', route: r, peer: want.peer });
  }
  for (const [dst, want] of desired.routes) {
    if (routesByDst.get(dst)?.some((r) => sameRoute(r, want))) continue;
    routeReplaces.push({ kind: 'route', action: 'replace', route: strip(want), peer: want.peer });
  }

  const neighByIp = new Map(actual.neighbours.filter((n) => n.family === 4).map((n) => [n.ip, n]));
  for (const [ip, want] of desired.neighbours) {
    const have = neighByIp.get(ip);
    if (have && have.index === want.index && have.mac === want.mac && (have.state & NUD_PERMANENT) !== 0) continue;
    neighOps.push({ kind: 'neigh', action: 'replace', neigh: strip(want), peer: want.peer });
  }
  for (const n of actual.neighbours) {
    if (n.family !== 4 || (n.state & NUD_PERMANENT) === 0 || desired.neighbours.has(n.ip)) continue;
    neighOps.unshift({ kind: 'neigh', action: 'delete', neigh: { index: n.index, ip: n.ip }, peer: `neighbour ${n.ip}` });
  }

  // A MAC may carry several destinations (appended); a replace rewrites the first one (the
  // kernel's dump order), so keep an exact match if there is one, else replace the first.
  const fdbByMac = groupBy(actual.fdb, (f) => f.mac);
  for (const [mac, entries] of fdbByMac) {
    const want = desired.fdb.get(mac);
    const keep = want ? (entries.find((f) => f.dst === want.dst) ?? entries[0]) : undefined;
    for (const f of entries) {
      if (f === keep) continue;
      fdbOps.push({ kind: 'fdb', action: 'delete', fdb: { index: f.index, mac: f.mac, dst: f.dst ?? '' }, peer: want?.peer ?? `fdb entry ${mac}` });
    }
  }
  for (const [mac, want] of desired.fdb) {
    if (fdbByMac.get(mac)?.some((f) => f.dst === want.dst && f.index === want.index)) continue;
    fdbOps.push({ kind: 'fdb', action: 'replace', fdb: strip(want), peer: want.peer });
  }
  return [...routeDeletes, ...neighOps, ...fdbOps, ...routeReplaces];
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

function strip<T extends { peer: string }>(entry: T): Omit<T, 'peer'> {
  const { peer: _peer, ...rest } = entry;
  return rest;
}

/** Addresses to add and remove so that exactly `want` (e.g. "10.16.85.0/32") is on the device (IPv4). */
export function diffAddresses(actual: readonly string[], want: string): { add: string | undefined; remove: string[] } {
  return { add: actual.includes(want) ? undefined : want, remove: actual.filter((a) => a !== want) };
}

/** "10.16.85.0/24" -> "10.16.85.0/32": the vxlan device's address for a lease subnet. */
export function deviceAddress(subnet: string): string {
  const c = parseCidr(subnet);
  return `${formatIp(networkAddress(c))}/32`;
}

/** Validates an IPv4 lease subnet (no host bits) and returns it in canonical form. */
export function canonicalSubnet(text: string): string {
  const c = parseNetwork(text);
  if (typeof c === 'string') throw new WeftError('WEFT_INVALID_CONFIG', c);
  return formatCidr(c);
}

/** Validates an IPv4 address and returns it in canonical form. */
export function canonicalIp(text: string): string {
  return formatIp(parseIp(text));
}
