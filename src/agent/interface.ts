// flanneld's choice of the external interface and public IP (docs/flannel-compat.md §3.1): each --iface
// (a name or an address) in order, then each --iface-regex (matched against addresses, then
// names), else the interface of the default route. The public IP is --public-ip, else the
// interface's first IPv4 address.
import { WeftError } from '../errors.ts';
import type { Address, Link, Route } from '../netlink/index.ts';
import { tryParseIp } from '../net/cidr.ts';

export interface ExternalInterface {
  name: string;
  index: number;
  mtu: number;
  /** The interface's own IPv4 address. */
  address: string;
  /** What peers send to: --public-ip, else `address`. */
  publicIp: string;
}

/** What selection reads from the kernel; a snapshot so the choice is a pure function. */
export interface InterfaceSnapshot {
  links: Link[];
  addresses: Address[];
  routes: Route[];
}

export interface InterfaceCriteria {
  iface: string[];
  ifaceRegex: string[];
  publicIp: string | undefined;
}

export function selectExternalInterface(s: InterfaceSnapshot, c: InterfaceCriteria): ExternalInterface {
  const v4 = (link: Link): Address | undefined => s.addresses.find((a) => a.index === link.index && a.family === 4 && a.scope === 0);
  const usable = s.links.filter((l) => l.name !== 'lo' && v4(l) !== undefined);
  const pick = (link: Link): ExternalInterface => {
    const address = v4(link)!.address;
    if (c.publicIp !== undefined && tryParseIp(c.publicIp)?.family !== 4) {
      throw new WeftError('WEFT_INVALID_CONFIG', `--public-ip=${JSON.stringify(c.publicIp)} is not an IPv4 address`);
    }
    return { name: link.name, index: link.index, mtu: link.mtu, address, publicIp: c.publicIp ?? address };
  };

  for (const wanted of c.iface) {
    const byAddress = tryParseIp(wanted) ? usable.find((l) => s.addresses.some((a) => a.index === l.index && a.address === wanted)) : undefined;
    const link = byAddress ?? usable.find((l) => l.name === wanted);
    if (link) return pick(link);
  }
  for (const pattern of c.ifaceRegex) {
    const re = new RegExp(pattern);
    const link = usable.find((l) => s.addresses.some((a) => a.index === l.index && a.family === 4 && re.test(a.address))) ?? usable.find((l) => re.test(l.name));
    if (link) return pick(link);
  }
  const names = usable.map((l) => `${l.name} (${v4(l)!.address})`).join(', ') || 'none with an IPv4 address';
  if (c.iface.length > 0 || c.ifaceRegex.length > 0) {
    const asked = [...c.iface.map((i) => `--iface ${i}`), ...c.ifaceRegex.map((r) => `--iface-regex ${r}`)].join(', ');
    throw new WeftError('WEFT_INVALID_CONFIG', `no interface matches ${asked}; interfaces here: ${names}`);
  }
  const defaults = s.routes.filter((r) => r.family === 4 && r.dst === '0.0.0.0/0' && r.oif !== undefined)
    .sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0));
  for (const route of defaults) {
    const link = usable.find((l) => l.index === route.oif);
    if (link) return pick(link);
  }
  throw new WeftError('WEFT_INVALID_CONFIG', `no default route to choose the external interface from; pass --iface (interfaces here: ${names})`);
}
