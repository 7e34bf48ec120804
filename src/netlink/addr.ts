// Addresses (RTM_*ADDR): struct ifaddrmsg + IFA_* attributes, IPv4 and IPv6 in one path.
import {
  IFADDRMSG_LEN, IFA_ADDRESS, IFA_BROADCAST, IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_FLAGS, IFA_LABEL, IFA_LOCAL,
  AF_UNSPEC, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR,
} from './constants.ts';
import { attrString, attrU32, parseAttrs, readU32, requireLength, type NlMessage, type NlWriter } from './codec.ts';
import { afOf, familyOfAf, formatIp, parseCidr, type Cidr, type IpFamily } from './ip.ts';
import type { NetlinkRequest } from './socket.ts';

export interface Address {
  /** ifindex of the link holding it. */
  index: number;
  family: IpFamily;
  address: string;
  prefixLen: number;
  /** address/prefixLen, e.g. "10.1.2.3/24". */
  cidr: string;
  scope: number;
  /** IFA_F_* flags (IFA_FLAGS when present, which carries the bits above 8). */
  flags: number;
  label?: string;
}

export interface AddAddressOptions {
  /** IPv6: skip duplicate address detection (IFA_F_NODAD), so the address is usable at once. */
  noDad?: boolean;
  /** Do not add the prefix route the kernel adds by default (IFA_F_NOPREFIXROUTE). */
  noPrefixRoute?: boolean;
  /** Replace an existing address instead of failing with EEXIST. */
  replace?: boolean;
  /** IPv4: set the broadcast address (default: yes when the prefix is shorter than /31, as iproute2's "brd +"). */
  broadcast?: boolean;
}

function writeIfaddr(w: NlWriter, family: number, prefixLen: number, flags: number, index: number): void {
  w.u8(family);
  w.u8(prefixLen);
  w.u8(flags & 0xff);
  w.u8(0); // scope: the kernel derives it from the address
  w.u32(index);
}

function broadcastOf(c: Cidr): Buffer {
  const out = Buffer.from(c.bytes);
  for (let bit = c.prefixLen; bit < 32; bit++) out[bit >> 3] = (out[bit >> 3] as number) | (0x80 >> (bit & 7));
  return out;
}

/** linkName only names the link in error messages. */
export function addAddressRequest(index: number, cidr: string, options: AddAddressOptions = {}, linkName?: string): NetlinkRequest {
  const c = parseCidr(cidr);
  const flags = (options.noDad && c.family === 6 ? IFA_F_NODAD : 0) | (options.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0);
  const broadcast = c.family === 4 && (options.broadcast ?? c.prefixLen < 31);
  return {
    type: RTM_NEWADDR,
    flags: NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL),
    what: `add address ${cidr} to link ${linkName ?? `#${index}`}`,
    write(w) {
      writeIfaddr(w, afOf(c.family), c.prefixLen, flags, index);
      w.attrBytes(IFA_LOCAL, c.bytes);
      w.attrBytes(IFA_ADDRESS, c.bytes);
      if (broadcast) w.attrBytes(IFA_BROADCAST, broadcastOf(c));
      if (flags) w.attrU32(IFA_FLAGS, flags);
    },
  };
}

export function deleteAddressRequest(index: number, cidr: string, linkName?: string): NetlinkRequest {
  const c = parseCidr(cidr);
  return {
    type: RTM_DELADDR,
    what: `delete address ${cidr} from link ${linkName ?? `#${index}`}`,
    write(w) {
      writeIfaddr(w, afOf(c.family), c.prefixLen, 0, index);
      w.attrBytes(IFA_LOCAL, c.bytes);
      w.attrBytes(IFA_ADDRESS, c.bytes);
    },
  };
}

/** Dump of all addresses of one family, or both. (Filtering by link happens after decoding.) */
export function listAddressesRequest(family?: IpFamily): NetlinkRequest {
  return {
    type: RTM_GETADDR,
    what: `list ${family ? `IPv${family} ` : ''}addresses`,
    write: (w) => writeIfaddr(w, family ? afOf(family) : AF_UNSPEC, 0, 0, 0),
  };
}

export function decodeAddress(msg: NlMessage): Address | undefined {
  if (msg.type !== RTM_NEWADDR) return undefined;
  requireLength(msg, IFADDRMSG_LEN, 'RTM_NEWADDR');
  const family = familyOfAf(msg.data[0] as number);
  if (!family) return undefined;
  const a = parseAttrs(msg.data, IFADDRMSG_LEN);
  // IFA_LOCAL is our address; IFA_ADDRESS is the peer's on point-to-point links (and ours otherwise).
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!raw) return undefined;
  const address = formatIp(raw);
  const prefixLen = msg.data[1] as number;
  const flagsAttr = a.get(IFA_FLAGS);
  const label = a.get(IFA_LABEL);
  const out: Address = {
    index: readU32(msg.data, 4),
    family,
    address,
    prefixLen,
    cidr: `${address}/${prefixLen}`,
    scope: msg.data[3] as number,
    flags: flagsAttr ? attrU32(flagsAttr) : (msg.data[2] as number),
  };
  if (label) out.label = attrString(label);
  return out;
}
