// The firewall's view of addresses: src/net/cidr.ts's arithmetic, spelled the way iptables-save
// and nft print addresses (dotted quad; RFC 5952 for IPv6; always with a prefix), so desired
// rules and rules read back from the kernel compare as plain strings.
import { WeftError } from '../errors.ts';
import { familyBits, formatIp, maskToNetwork, parseAddressWithPrefix, parseIp, type AddressWithPrefix } from '../net/cidr.ts';

export type IpFamily = 'ipv4' | 'ipv6';

export interface Cidr {
  family: IpFamily;
  addr: bigint;
  prefix: number;
}

const numeric = (family: IpFamily): 4 | 6 => (family === 'ipv4' ? 4 : 6);

/** Parses "a.b.c.d/len", "x::y/len" or a bare address (which gets /32 or /128). */
export function parseCidr(text: string): Cidr {
  let a: AddressWithPrefix;
  try {
    if (text.includes('/')) a = parseAddressWithPrefix(text);
    else {
      const ip = parseIp(text);
      a = { family: ip.family, address: ip.value, prefix: familyBits(ip.family) };
    }
  } catch (e) {
    throw new WeftError('WEFT_INVALID_CONFIG', `invalid address or CIDR "${text}": ${(e as Error).message}`);
  }
  // iptables and nft would print an IPv4-mapped address differently: refuse it up front.
  if (a.family === 6 && text.includes('.')) throw new WeftError('WEFT_INVALID_CONFIG', `invalid address or CIDR "${text}": IPv4-mapped IPv6 addresses are not supported here`);
  return { family: a.family === 4 ? 'ipv4' : 'ipv6', addr: a.address, prefix: a.prefix };
}

/** The network the CIDR lies in: host bits cleared ("10.244.1.7/24" → 10.244.1.0/24). */
export function networkOf(c: Cidr): Cidr {
  const n = maskToNetwork({ family: numeric(c.family), address: c.addr, prefix: c.prefix });
  return { ...c, addr: n.network };
}

/** The single address as a host route (/32 or /128). */
export function hostOf(c: Cidr): Cidr {
  return { ...c, prefix: familyBits(numeric(c.family)) };
}

export function formatAddr(family: IpFamily, addr: bigint): string {
  return formatIp({ family: numeric(family), value: addr });
}

/** Always prints the prefix, as iptables-save does (10.0.0.1/32). */
export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.family, c.addr)}/${c.prefix}`;
}

/** Parse then print: the canonical spelling of a CIDR or address, without masking. */
export function canonicalCidr(text: string): string {
  return formatCidr(parseCidr(text));
}
