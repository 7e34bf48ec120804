// Just enough address arithmetic for the firewall: parse a CIDR, mask host bits, and print it
// the way iptables-save and nft print it (dotted quad; RFC 5952 for IPv6), so that desired
// rules and rules read back from the kernel compare as plain strings.
import { isIPv4, isIPv6 } from 'node:net';
import { WeftError } from '../errors.ts';

export type IpFamily = 'ipv4' | 'ipv6';

export interface Cidr {
  family: IpFamily;
  addr: bigint;
  prefix: number;
}

const bitsOf = (family: IpFamily): number => (family === 'ipv4' ? 32 : 128);

function invalid(text: string, why: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `invalid address or CIDR "${text}": ${why}`);
}

function parseV4(text: string): bigint {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number.parseInt(part, 10)), 0n);
}

function parseV6(text: string): bigint {
  const [head = '', tail] = text.split('::');
  const groups = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const zeros = tail === undefined ? 0 : 8 - h.length - t.length;
  return [...h, ...Array<string>(zeros).fill('0'), ...t].reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** Parses "a.b.c.d/len", "x::y/len" or a bare address (which gets /32 or /128). */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  let family: IpFamily;
  if (isIPv4(addrText)) family = 'ipv4';
  else if (isIPv6(addrText) && !addrText.includes('.') && !addrText.includes('%')) family = 'ipv6';
  else throw invalid(text, 'not an IPv4 or IPv6 address');
  const bits = bitsOf(family);
  const prefixText = slash < 0 ? String(bits) : text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > bits) throw invalid(text, `prefix length must be 0-${bits}`);
  return { family, addr: family === 'ipv4' ? parseV4(addrText) : parseV6(addrText), prefix };
}

/** The network the CIDR lies in: host bits cleared ("10.244.1.7/24" → 10.244.1.0/24). */
export function networkOf(c: Cidr): Cidr {
  const bits = BigInt(bitsOf(c.family));
  const hostMask = (1n << (bits - BigInt(c.prefix))) - 1n;
  return { ...c, addr: c.addr & ~hostMask };
}

/** The single address as a host route (/32 or /128). */
export function hostOf(c: Cidr): Cidr {
  return { ...c, prefix: bitsOf(c.family) };
}

export function formatAddr(family: IpFamily, addr: bigint): string {
  if (family === 'ipv4') return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => Number((addr >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (≥2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Always prints the prefix, as iptables-save does (10.0.0.1/32). */
export function formatCidr(c: Cidr): string {
  return `${formatAddr(c.family, c.addr)}/${c.prefix}`;
}

/** Parse then print: the canonical spelling of a CIDR or address, without masking. */
export function canonicalCidr(text: string): string {
  return formatCidr(parseCidr(text));
}
