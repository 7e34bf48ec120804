// Routes (RTM_*ROUTE): struct rtmsg + RTA_* attributes, IPv4 and IPv6 in one path. Defaults
// follow iproute2, so `weft` routes look like ones made with `ip route add`.
import { WeftError } from '../errors.ts';
import {
  NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTA_DST, RTA_GATEWAY, RTA_METRICS, RTA_MULTIPATH, RTA_OIF,
  RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTAX_MTU, RTMSG_LEN, RTM_DELROUTE, RTM_GETROUTE, RTM_NEWROUTE,
  RTNH_F_ONLINK, RTPROT_BOOT, RTPROT_UNSPEC, RT_SCOPE_HOST, RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE, RT_SCOPE_SITE, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RT_TABLE_UNSPEC, AF_UNSPEC,
} from './constants.ts';
import { attrU32, forEachAttr, parseAttrs, readU16, readI32, readU32, requireLength, type NlMessage } from './codec.ts';
import { addressLength, afOf, familyOfAf, formatIp, parseCidr, parseIp, type IpFamily } from './ip.ts';
import type { NetlinkRequest } from './socket.ts';

export type RouteScope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';
export type RouteType = 'unspec' | 'unicast' | 'local' | 'broadcast' | 'anycast' | 'multicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'throw';

const SCOPES: Record<RouteScope, number> = {
  universe: RT_SCOPE_UNIVERSE, site: RT_SCOPE_SITE, link: RT_SCOPE_LINK, host: RT_SCOPE_HOST, nowhere: RT_SCOPE_NOWHERE,
};
// RTN_* in order, from 0 (RTN_UNSPEC).
const TYPES: readonly RouteType[] = ['unspec', 'unicast', 'local', 'broadcast', 'anycast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw'];

export interface RouteSpec {
  /** Destination CIDR ("10.1.0.0/16", "fd00::/64"), or "default" (then family comes from gateway or `family`). */
  dst: string;
  family?: IpFamily;
  gateway?: string;
  /** ifindex of the output device (RTA_OIF). */
  oif?: number;
  /** Default: "link" without a gateway, "universe" with one (as iproute2); any scope when deleting. */
  scope?: RouteScope;
  /** Use the gateway even if no address on oif covers it (RTNH_F_ONLINK). */
  onlink?: boolean;
  /** RTPROT_*; default RTPROT_BOOT when adding, any when deleting. */
  protocol?: number;
  /** Routing table; default main (254). */
  table?: number;
  /** Metric (RTA_PRIORITY). */
  priority?: number;
  /** Path MTU for the route (RTA_METRICS / RTAX_MTU). */
  mtu?: number;
  /** Preferred source address (RTA_PREFSRC). */
  src?: string;
  /** Default "unicast" when adding, any when deleting. */
  type?: RouteType;
}

export interface NextHop {
  gateway?: string;
  oif?: number;
  onlink: boolean;
}

export interface Route {
  family: IpFamily;
  /** Destination as a CIDR; the default route is "0.0.0.0/0" or "::/0". */
  dst: string;
  gateway?: string;
  oif?: number;
  scope: RouteScope | number;
  onlink: boolean;
  protocol: number;
  table: number;
  priority?: number;
  mtu?: number;
  src?: string;
  type: RouteType | number;
  flags: number;
  /** ECMP routes (RTA_MULTIPATH); gateway/oif above are then absent. */
  nexthops?: NextHop[];
}

export type RouteOp = 'add' | 'replace' | 'delete';

function invalid(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', message);
}

function describeRoute(op: RouteOp, r: RouteSpec): string {
  const parts = [`${op} route ${r.dst}`];
  if (r.gateway) parts.push(`via ${r.gateway}`);
  if (r.oif !== undefined) parts.push(`dev #${r.oif}`);
  if (r.table !== undefined && r.table !== RT_TABLE_MAIN) parts.push(`table ${r.table}`);
  if (r.onlink) parts.push('onlink');
  return parts.join(' ');
}

export function routeRequest(op: RouteOp, spec: RouteSpec): NetlinkRequest {
  const what = describeRoute(op, spec);
  const gateway = spec.gateway === undefined ? undefined : parseIp(spec.gateway);
  const src = spec.src === undefined ? undefined : parseIp(spec.src);
  const dst = spec.dst === 'default' ? undefined : parseCidr(spec.dst);
  const family = dst?.family ?? spec.family ?? gateway?.family ?? src?.family;
  if (!family) throw invalid(`${what}: a default route needs a gateway or an explicit family`);
  for (const [name, ip] of [['gateway', gateway], ['source', src]] as const) {
    if (ip && ip.family !== family) throw invalid(`${what}: the ${name} is not IPv${family} like the destination`);
  }
  const adding = op !== 'delete';
  const type = spec.type ?? (adding ? 'unicast' : 'unspec');
  const scope = spec.scope ?? (!adding ? 'nowhere' : gateway || type !== 'unicast' ? 'universe' : 'link');
  const table = spec.table ?? RT_TABLE_MAIN;
  const protocol = spec.protocol ?? (adding ? RTPROT_BOOT : RTPROT_UNSPEC);
  return {
    type: adding ? RTM_NEWROUTE : RTM_DELROUTE,
    flags: op === 'add' ? NLM_F_CREATE | NLM_F_EXCL : op === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : 0,
    what,
    write(w) {
      w.u8(afOf(family));
      w.u8(dst?.prefixLen ?? 0);
      w.u8(0); // src_len
      w.u8(0); // tos
      w.u8(table < 256 ? table : RT_TABLE_UNSPEC); // larger ids only fit RTA_TABLE
      w.u8(protocol);
      w.u8(SCOPES[scope]);
      w.u8(TYPES.indexOf(type));
      w.u32(spec.onlink ? RTNH_F_ONLINK : 0);
      w.attrU32(RTA_TABLE, table);
      if (dst && dst.prefixLen > 0) w.attrBytes(RTA_DST, dst.bytes);
      if (gateway) w.attrBytes(RTA_GATEWAY, gateway.bytes);
      if (spec.oif !== undefined) w.attrU32(RTA_OIF, spec.oif);
      if (spec.priority !== undefined) w.attrU32(RTA_PRIORITY, spec.priority);
      if (src) w.attrBytes(RTA_PREFSRC, src.bytes);
      if (spec.mtu !== undefined) {
        const m = w.beginNest(RTA_METRICS);
        w.attrU32(RTAX_MTU, spec.mtu);
        w.endNest(m);
      }
    },
  };
}

/** Dump of the routes of one family (or both); table filtering happens after decoding. */
export function listRoutesRequest(family?: IpFamily): NetlinkRequest {
  return {
    type: RTM_GETROUTE,
    what: `list ${family ? `IPv${family} ` : ''}routes`,
    write(w) {
      w.u8(family ? afOf(family) : AF_UNSPEC);
      for (let i = 0; i < 7; i++) w.u8(0);
      w.u32(0);
    },
  };
}

function decodeNexthops(data: Buffer, family: IpFamily): NextHop[] {
  // struct rtnexthop { u16 len; u8 flags; u8 hops; s32 ifindex; } followed by RTA_* attributes.
  const out: NextHop[] = [];
  for (let at = 0; data.length - at >= 8;) {
    const len = readU16(data, at);
    if (len < 8 || len > data.length - at) break;
    const hop: NextHop = { onlink: ((data[at + 2] as number) & RTNH_F_ONLINK) !== 0 };
    const oif = readI32(data, at + 4);
    if (oif > 0) hop.oif = oif;
    forEachAttr(data, at + 8, (type, value) => {
      if (type === RTA_GATEWAY && value.length === addressLength(family)) hop.gateway = formatIp(value);
    }, at + len);
    out.push(hop);
    at += (len + 3) & ~3;
  }
  return out;
}

export function decodeRoute(msg: NlMessage): Route | undefined {
  if (msg.type !== RTM_NEWROUTE) return undefined;
  requireLength(msg, RTMSG_LEN, 'RTM_NEWROUTE');
  const d = msg.data;
  const family = familyOfAf(d[0] as number);
  if (!family) return undefined;
  const a = parseAttrs(d, RTMSG_LEN);
  const prefixLen = d[1] as number;
  const dst = a.get(RTA_DST);
  const table = a.get(RTA_TABLE);
  const scope = d[6] as number;
  const type = d[7] as number;
  const flags = readU32(d, 8);
  const route: Route = {
    family,
    dst: `${formatIp(dst ?? Buffer.alloc(addressLength(family)))}/${prefixLen}`,
    scope: (Object.keys(SCOPES) as RouteScope[]).find((k) => SCOPES[k] === scope) ?? scope,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    protocol: d[5] as number,
    table: table ? attrU32(table) : (d[4] as number),
    type: TYPES[type] ?? type,
    flags,
  };
  const gateway = a.get(RTA_GATEWAY);
  if (gateway) route.gateway = formatIp(gateway);
  const oif = a.get(RTA_OIF);
  if (oif) route.oif = attrU32(oif);
  const priority = a.get(RTA_PRIORITY);
  if (priority) route.priority = attrU32(priority);
  const src = a.get(RTA_PREFSRC);
  if (src) route.src = formatIp(src);
  const metrics = a.get(RTA_METRICS);
  const mtu = metrics ? parseAttrs(metrics).get(RTAX_MTU) : undefined;
  if (mtu) route.mtu = attrU32(mtu);
  const multipath = a.get(RTA_MULTIPATH);
  if (multipath) route.nexthops = decodeNexthops(multipath, family);
  return route;
}
