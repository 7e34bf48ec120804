// Neighbours and bridge/VXLAN forwarding entries (RTM_*NEIGH, struct ndmsg + NDA_*), for the
// VXLAN data plane: a permanent ARP/NDP entry per remote VTEP MAC, and an FDB entry (family
// AF_BRIDGE, NTF_SELF) telling the vxlan device which underlay IP owns that MAC.
import {
  AF_BRIDGE, AF_UNSPEC, NDA_DST, NDA_LLADDR, NDA_MASTER, NDA_PORT, NDA_VLAN, NDA_VNI, NDMSG_LEN,
  NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE, NTF_SELF, NUD_PERMANENT, RTM_DELNEIGH, RTM_GETNEIGH, RTM_NEWNEIGH,
} from './constants.ts';
import { attrBe16, attrU16, attrU32, parseAttrs, readI32, readU16, requireLength, type NlMessage, type NlWriter } from './codec.ts';
import { afOf, familyOfAf, formatIp, formatMac, parseIp, parseMac, type IpFamily } from './ip.ts';
import type { NetlinkRequest } from './socket.ts';

export interface NeighbourSpec {
  /** ifindex of the device the neighbour is reached through. */
  index: number;
  ip: string;
  mac: string;
}

export interface Neighbour {
  index: number;
  family: IpFamily;
  ip: string;
  mac?: string;
  /** NUD_* state bits (NUD_PERMANENT = 0x80). */
  state: number;
  flags: number;
}

export interface FdbSpec {
  /** ifindex of the vxlan (or bridge port) device. */
  index: number;
  mac: string;
  /** Remote tunnel endpoint (NDA_DST). */
  dst?: string;
  vni?: number;
  port?: number;
}

export interface FdbEntry {
  index: number;
  mac: string;
  dst?: string;
  vlan?: number;
  vni?: number;
  port?: number;
  master?: number;
  state: number;
  flags: number;
}

export type NeighOp = 'replace' | 'delete';
/** FDB "append" adds another destination for the same MAC (flooding lists for all-zero MACs). */
export type FdbOp = NeighOp | 'append';

function writeNdmsg(w: NlWriter, family: number, index: number, state: number, flags: number): void {
  w.u8(family);
  w.u8(0);
  w.u16(0);
  w.i32(index);
  w.u16(state);
  w.u8(flags);
  w.u8(0); // ndm_type
}

const opFlags = (op: FdbOp): number =>
  op === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : op === 'append' ? NLM_F_CREATE | NLM_F_APPEND : 0;

/** A permanent neighbour entry ("ip neigh replace IP lladdr MAC dev X nud permanent"). */
export function neighbourRequest(op: NeighOp, spec: NeighbourSpec): NetlinkRequest {
  const ip = parseIp(spec.ip);
  const mac = op === 'delete' ? undefined : parseMac(spec.mac);
  return {
    type: op === 'delete' ? RTM_DELNEIGH : RTM_NEWNEIGH,
    flags: opFlags(op),
    what: `${op} neighbour ${spec.ip}${mac ? ` lladdr ${spec.mac}` : ''} on link #${spec.index}`,
    write(w) {
      writeNdmsg(w, afOf(ip.family), spec.index, NUD_PERMANENT, 0);
      w.attrBytes(NDA_DST, ip.bytes);
      if (mac) w.attrBytes(NDA_LLADDR, mac);
    },
  };
}

/** An FDB entry on a vxlan device ("bridge fdb replace MAC dev X dst IP self permanent"). */
export function fdbRequest(op: FdbOp, spec: FdbSpec): NetlinkRequest {
  const mac = parseMac(spec.mac);
  const dst = spec.dst === undefined ? undefined : parseIp(spec.dst);
  return {
    type: op === 'delete' ? RTM_DELNEIGH : RTM_NEWNEIGH,
    flags: opFlags(op),
    what: `${op} fdb entry ${spec.mac}${dst ? ` dst ${spec.dst}` : ''} on link #${spec.index}`,
    write(w) {
      writeNdmsg(w, AF_BRIDGE, spec.index, NUD_PERMANENT, NTF_SELF);
      w.attrBytes(NDA_LLADDR, mac);
      if (dst) w.attrBytes(NDA_DST, dst.bytes);
      if (spec.vni !== undefined) w.attrU32(NDA_VNI, spec.vni);
      if (spec.port !== undefined) w.attrBe16(NDA_PORT, spec.port);
    },
  };
}

export function listNeighboursRequest(family?: IpFamily): NetlinkRequest {
  return {
    type: RTM_GETNEIGH,
    what: `list ${family ? `IPv${family} ` : ''}neighbours`,
    write: (w) => writeNdmsg(w, family ? afOf(family) : AF_UNSPEC, 0, 0, 0),
  };
}

export function listFdbRequest(): NetlinkRequest {
  return { type: RTM_GETNEIGH, what: 'list fdb entries', write: (w) => writeNdmsg(w, AF_BRIDGE, 0, 0, 0) };
}

function header(msg: NlMessage): { family: number; index: number; state: number; flags: number } {
  requireLength(msg, NDMSG_LEN, 'RTM_NEWNEIGH');
  const d = msg.data;
  return { family: d[0] as number, index: readI32(d, 4), state: readU16(d, 8), flags: d[10] as number };
}

export function decodeNeighbour(msg: NlMessage): Neighbour | undefined {
  if (msg.type !== RTM_NEWNEIGH) return undefined;
  const h = header(msg);
  const family = familyOfAf(h.family);
  if (!family) return undefined;
  const a = parseAttrs(msg.data, NDMSG_LEN);
  const dst = a.get(NDA_DST);
  if (!dst) return undefined;
  const out: Neighbour = { index: h.index, family, ip: formatIp(dst), state: h.state, flags: h.flags };
  const mac = a.get(NDA_LLADDR);
  if (mac) out.mac = formatMac(mac);
  return out;
}

export function decodeFdb(msg: NlMessage): FdbEntry | undefined {
  if (msg.type !== RTM_NEWNEIGH) return undefined;
  const h = header(msg);
  if (h.family !== AF_BRIDGE) return undefined;
  const a = parseAttrs(msg.data, NDMSG_LEN);
  const mac = a.get(NDA_LLADDR);
  if (!mac) return undefined;
  const out: FdbEntry = { index: h.index, mac: formatMac(mac), state: h.state, flags: h.flags };
  const dst = a.get(NDA_DST);
  if (dst) out.dst = formatIp(dst);
  const vlan = a.get(NDA_VLAN);
  if (vlan) out.vlan = attrU16(vlan);
  const vni = a.get(NDA_VNI);
  if (vni) out.vni = attrU32(vni);
  const port = a.get(NDA_PORT);
  if (port) out.port = attrBe16(port);
  const master = a.get(NDA_MASTER);
  if (master) out.master = attrU32(master);
  return out;
}
