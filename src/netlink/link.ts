// Links (RTM_*LINK): request builders and the decoder of struct ifinfomsg + IFLA_* attributes.
// Builders return NetlinkRequests, so callers can send them one by one or batch them.
import {
  AF_BRIDGE, AF_UNSPEC, IFF_UP, IFINFOMSG_LEN, IFLA_ADDRESS, IFLA_BRPORT_MODE, IFLA_IFNAME, IFLA_INFO_DATA,
  IFLA_INFO_KIND, IFLA_INFO_SLAVE_DATA, IFLA_INFO_SLAVE_KIND, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_LINKINFO,
  IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD, IFLA_OPERSTATE, IFLA_PROTINFO, IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING,
  IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, IFLA_VXLAN_PORT, IFLA_VXLAN_GBP, IF_OPER_UP,
  NLM_F_CREATE, NLM_F_EXCL, RTM_DELLINK, RTM_GETLINK, RTM_NEWLINK, RTM_SETLINK, VETH_INFO_PEER,
} from './constants.ts';
import {
  attrBe16, attrI32, attrString, attrU32, attrU8, parseAttrs, readI32, readU32, requireLength,
  type NlMessage, type NlWriter,
} from './codec.ts';
import { formatIp, formatMac, parseIp, parseMac } from './ip.ts';
import type { NetlinkRequest } from './socket.ts';

/** A link by ifindex or by name. */
export type LinkRef = number | string;

export interface Link {
  index: number;
  name: string;
  /** Link-layer address ("aa:bb:cc:dd:ee:ff"); absent for links without one. */
  mac?: string;
  mtu: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Operationally up (IFLA_OPERSTATE is IF_OPER_UP). */
  operUp: boolean;
  flags: number;
  /** ifindex of the bridge (or other master) this link is enslaved to. */
  master?: number;
  /** IFLA_INFO_KIND: "veth", "bridge", "vxlan"...; absent for physical devices and lo. */
  kind?: string;
  /** IFLA_LINK: a veth's peer ifindex (in the namespace netnsId names, when set), a vxlan's underlay. */
  peerIndex?: number;
  /** IFLA_LINK_NETNSID: the peer's namespace, as an nsid of this namespace. */
  netnsId?: number;
  /** Bridge ports only: hairpin mode (IFLA_BRPORT_MODE). */
  hairpin?: boolean;
  /** vxlan links only. */
  vxlan?: VxlanInfo;
}

export interface VxlanInfo {
  vni: number;
  local?: string;
  port?: number;
  underlay?: number;
  learning?: boolean;
}

/** Attributes shared by every link we create. */
export interface NewLinkAttrs {
  name: string;
  mtu?: number;
  mac?: string;
  /** Bring it up in the same request. */
  up?: boolean;
}

export type BridgeSpec = NewLinkAttrs;

export interface VethSpec extends NewLinkAttrs {
  /** ifindex of a bridge to enslave the host end to. */
  master?: number;
  /**
   * The peer cannot be brought up in the creating request: the kernel opens it before the pair
   * is joined and refuses with ENOTCONN. Set it up afterwards, from its own namespace.
   */
  peer: Omit<NewLinkAttrs, 'up'> & {
    /** Create the peer directly in this network namespace: an fd from fs.openSync(netnsPath, 'r'). */
    netnsFd?: number;
  };
}

export interface VxlanSpec extends NewLinkAttrs {
  vni: number;
  /** Source address of the tunnel (IPv4 or IPv6). */
  local?: string;
  /** ifindex of the underlay device. */
  underlay?: number;
  /** UDP destination port (the kernel's default is 8472; IANA's is 4789). */
  port?: number;
  /** Learn remote MACs from traffic (default false: the control plane programs the FDB). */
  learning?: boolean;
  /** Group Based Policy extension. */
  gbp?: boolean;
}

/** What setLink changes; absent fields are left alone. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** A master's ifindex, or null to release the link from its master. */
  master?: number | null;
}

interface IfInfo { family?: number; index?: number; flags?: number; change?: number }

function writeIfinfo(w: NlWriter, info: IfInfo): void {
  w.u8(info.family ?? AF_UNSPEC);
  w.u8(0);
  w.u16(0); // ifi_type
  w.i32(info.index ?? 0);
  w.u32(info.flags ?? 0);
  w.u32(info.change ?? 0);
}

/** ifinfomsg naming ref: by index, or index 0 plus IFLA_IFNAME (the kernel looks the name up). */
function writeRef(w: NlWriter, ref: LinkRef, info: IfInfo = {}): void {
  writeIfinfo(w, { ...info, index: typeof ref === 'number' ? ref : 0 });
  if (typeof ref === 'string') w.attrString(IFLA_IFNAME, ref);
}

export function describeLink(ref: LinkRef): string {
  return typeof ref === 'number' ? `link #${ref}` : `link ${ref}`;
}

const upFlags = (up: boolean | undefined): IfInfo => (up === undefined ? {} : { flags: up ? IFF_UP : 0, change: IFF_UP });

function writeNewLinkAttrs(w: NlWriter, spec: NewLinkAttrs): void {
  w.attrString(IFLA_IFNAME, spec.name);
  if (spec.mtu !== undefined) w.attrU32(IFLA_MTU, spec.mtu);
  if (spec.mac !== undefined) w.attrBytes(IFLA_ADDRESS, parseMac(spec.mac));
}

function createRequest(what: string, spec: NewLinkAttrs, kind: string, writeExtra: (w: NlWriter) => void, data?: (w: NlWriter) => void): NetlinkRequest {
  // Validate text fields now, so a bad MAC fails before anything is sent.
  if (spec.mac !== undefined) parseMac(spec.mac);
  return {
    type: RTM_NEWLINK,
    flags: NLM_F_CREATE | NLM_F_EXCL,
    what,
    write(w) {
      writeIfinfo(w, upFlags(spec.up));
      writeNewLinkAttrs(w, spec);
      writeExtra(w);
      const info = w.beginNest(IFLA_LINKINFO);
      w.attrString(IFLA_INFO_KIND, kind);
      if (data) {
        const d = w.beginNest(IFLA_INFO_DATA);
        data(w);
        w.endNest(d);
      }
      w.endNest(info);
    },
  };
}

export function createBridgeRequest(spec: BridgeSpec): NetlinkRequest {
  return createRequest(`create bridge ${spec.name}`, spec, 'bridge', () => {});
}

/** Both ends in one request; the peer is born in spec.peer.netnsFd's namespace when given. */
export function createVethRequest(spec: VethSpec): NetlinkRequest {
  const peer = { mtu: spec.mtu, ...spec.peer };
  if (peer.mac !== undefined) parseMac(peer.mac);
  return createRequest(`create veth ${spec.name} with peer ${peer.name}`, spec, 'veth', (w) => {
    if (spec.master !== undefined) w.attrU32(IFLA_MASTER, spec.master);
  }, (w) => {
    // VETH_INFO_PEER holds a whole ifinfomsg followed by the peer's own IFLA_* attributes.
    const p = w.beginNest(VETH_INFO_PEER);
    writeIfinfo(w, {});
    writeNewLinkAttrs(w, peer);
    if (peer.netnsFd !== undefined) w.attrU32(IFLA_NET_NS_FD, peer.netnsFd);
    w.endNest(p);
  });
}

export function createVxlanRequest(spec: VxlanSpec): NetlinkRequest {
  const local = spec.local === undefined ? undefined : parseIp(spec.local);
  return createRequest(`create vxlan ${spec.name} (VNI ${spec.vni})`, spec, 'vxlan', () => {}, (w) => {
    w.attrU32(IFLA_VXLAN_ID, spec.vni);
    if (local) w.attrBytes(local.family === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, local.bytes);
    if (spec.underlay !== undefined) w.attrU32(IFLA_VXLAN_LINK, spec.underlay);
    if (spec.port !== undefined) w.attrBe16(IFLA_VXLAN_PORT, spec.port);
    w.attrU8(IFLA_VXLAN_LEARNING, spec.learning ? 1 : 0);
    if (spec.gbp) w.attrFlag(IFLA_VXLAN_GBP);
  });
}

export function setLinkRequest(ref: LinkRef, change: LinkChange): NetlinkRequest {
  if (change.mac !== undefined) parseMac(change.mac);
  // Worded like `ip link set`: "set link eth0 up mtu 1400 nomaster".
  const parts: string[] = [];
  if (change.up !== undefined) parts.push(change.up ? 'up' : 'down');
  if (change.mtu !== undefined) parts.push(`mtu ${change.mtu}`);
  if (change.mac !== undefined) parts.push(`address ${change.mac}`);
  if (change.master !== undefined) parts.push(change.master === null ? 'nomaster' : `master #${change.master}`);
  return {
    type: RTM_SETLINK,
    what: `set ${describeLink(ref)} ${parts.join(' ')}`,
    write(w) {
      writeRef(w, ref, upFlags(change.up));
      if (change.mtu !== undefined) w.attrU32(IFLA_MTU, change.mtu);
      if (change.mac !== undefined) w.attrBytes(IFLA_ADDRESS, parseMac(change.mac));
      if (change.master !== undefined) w.attrU32(IFLA_MASTER, change.master ?? 0);
    },
  };
}

export function deleteLinkRequest(ref: LinkRef): NetlinkRequest {
  return { type: RTM_DELLINK, what: `delete ${describeLink(ref)}`, write: (w) => writeRef(w, ref) };
}

export function getLinkRequest(ref: LinkRef): NetlinkRequest {
  return { type: RTM_GETLINK, what: `get ${describeLink(ref)}`, write: (w) => writeRef(w, ref) };
}

export function listLinksRequest(): NetlinkRequest {
  return { type: RTM_GETLINK, what: 'list links', write: (w) => writeIfinfo(w, {}) };
}

/** Hairpin on a bridge port: RTM_SETLINK, AF_BRIDGE, IFLA_PROTINFO { IFLA_BRPORT_MODE }. */
export function setHairpinRequest(index: number, on: boolean): NetlinkRequest {
  return {
    type: RTM_SETLINK,
    what: `set hairpin ${on ? 'on' : 'off'} on bridge port ${describeLink(index)}`,
    write(w) {
      writeIfinfo(w, { family: AF_BRIDGE, index });
      const p = w.beginNest(IFLA_PROTINFO);
      w.attrU8(IFLA_BRPORT_MODE, on ? 1 : 0);
      w.endNest(p);
    },
  };
}

function decodeVxlan(data: Buffer): VxlanInfo {
  const a = parseAttrs(data);
  const id = a.get(IFLA_VXLAN_ID);
  const local = a.get(IFLA_VXLAN_LOCAL) ?? a.get(IFLA_VXLAN_LOCAL6);
  const port = a.get(IFLA_VXLAN_PORT);
  const underlay = a.get(IFLA_VXLAN_LINK);
  const learning = a.get(IFLA_VXLAN_LEARNING);
  const out: VxlanInfo = { vni: id ? attrU32(id) : 0 };
  if (local) out.local = formatIp(local);
  if (port) out.port = attrBe16(port);
  if (underlay) out.underlay = attrU32(underlay);
  if (learning) out.learning = attrU8(learning) !== 0;
  return out;
}

function decodeLinkInfo(link: Link, linkinfo: Buffer): void {
  const info = parseAttrs(linkinfo);
  const kind = info.get(IFLA_INFO_KIND);
  if (kind) link.kind = attrString(kind);
  const data = info.get(IFLA_INFO_DATA);
  if (data && link.kind === 'vxlan') link.vxlan = decodeVxlan(data);
  const slaveKind = info.get(IFLA_INFO_SLAVE_KIND);
  const slaveData = info.get(IFLA_INFO_SLAVE_DATA);
  if (slaveKind && slaveData && attrString(slaveKind) === 'bridge') {
    const mode = parseAttrs(slaveData).get(IFLA_BRPORT_MODE);
    if (mode) link.hairpin = attrU8(mode) !== 0;
  }
}

/** Decodes an RTM_NEWLINK message (a reply to get/list); strings and numbers only, no views kept. */
export function decodeLink(msg: NlMessage): Link | undefined {
  if (msg.type !== RTM_NEWLINK) return undefined;
  requireLength(msg, IFINFOMSG_LEN, 'RTM_NEWLINK');
  const flags = readU32(msg.data, 8);
  const a = parseAttrs(msg.data, IFINFOMSG_LEN);
  const name = a.get(IFLA_IFNAME);
  const mtu = a.get(IFLA_MTU);
  const oper = a.get(IFLA_OPERSTATE);
  const link: Link = {
    index: readI32(msg.data, 4),
    name: name ? attrString(name) : '',
    mtu: mtu ? attrU32(mtu) : 0,
    up: (flags & IFF_UP) !== 0,
    operUp: oper ? attrU8(oper) === IF_OPER_UP : false,
    flags,
  };
  const mac = a.get(IFLA_ADDRESS);
  if (mac && mac.length > 0) link.mac = formatMac(mac);
  const master = a.get(IFLA_MASTER);
  if (master) link.master = attrU32(master);
  const peer = a.get(IFLA_LINK);
  if (peer) link.peerIndex = attrU32(peer);
  const nsid = a.get(IFLA_LINK_NETNSID);
  if (nsid) link.netnsId = attrI32(nsid);
  const linkinfo = a.get(IFLA_LINKINFO);
  if (linkinfo) decodeLinkInfo(link, linkinfo);
  return link;
}
