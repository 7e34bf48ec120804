// IPv4 and IPv6 address and CIDR arithmetic on bigint. Both families share one code path;
// `family` only decides the width (32 or 128 bits) and the text form. Values are plain data
// so they can be compared, stored in maps (by formatIp) and passed between modules freely.
//
// Parsing is strict on purpose: a config with "10.1.2.300" or "10.01.2.3" must fail loudly
// instead of being read as something the operator did not mean. Leading zeros are rejected
// because some parsers treat them as octal (Go's net.ParseIP rejects them too).
import { WeftError } from '../errors.ts';

export type IpFamily = 4 | 6;

/** One address, e.g. 10.1.2.3 or fd00::1. */
export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** A network: `network` has no host bits set (10.1.2.0/24). */
export interface Cidr {
  readonly family: IpFamily;
  readonly network: bigint;
  readonly prefix: number;
}

/** An interface-style address with its prefix length (10.1.2.3/24); host bits are expected. */
export interface AddressWithPrefix {
  readonly family: IpFamily;
  readonly address: bigint;
  readonly prefix: number;
}

export function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function allOnes(family: IpFamily): bigint {
  return (1n << BigInt(familyBits(family))) - 1n;
}

/** The netmask for a prefix length, as a number of the family's width (/24 → 0xffffff00). */
export function prefixMask(family: IpFamily, prefix: number): bigint {
  const hostBits = BigInt(familyBits(family) - prefix);
  return allOnes(family) ^ ((1n << hostBits) - 1n);
}

function invalid(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', message);
}

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Why text is not an IPv4 address, or its value. */
function parseIpv4(text: string): bigint | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'an IPv4 address has 4 dot-separated octets';
  let value = 0n;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) return `octet "${part}" is not a decimal number without leading zeros`;
    const octet = Number(part);
    if (octet > 255) return `octet ${octet} is out of range 0-255`;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseHexGroups(text: string): bigint[] | string {
  if (text === '') return [];
  const groups: bigint[] = [];
  for (const group of text.split(':')) {
    if (!HEX_GROUP.test(group)) return `group "${group}" is not 1-4 hex digits`;
    groups.push(BigInt(`0x${group}`));
  }
  return groups;
}

function parseIpv6(text: string): bigint | string {
  let rest = text;
  const trailing: bigint[] = [];
  // An embedded IPv4 address (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) fills the last 32 bits.
  const lastColon = rest.lastIndexOf(':');
  if (rest.includes('.')) {
    const v4 = parseIpv4(rest.slice(lastColon + 1));
    if (typeof v4 === 'string') return `embedded IPv4 part: ${v4}`;
    trailing.push(v4 >> 16n, v4 & 0xffffn);
    rest = rest.slice(0, lastColon + 1);
    // "::1.2.3.4" leaves "::", "1::1.2.3.4" leaves "1::", "1:2:3:4:5:6:1.2.3.4" leaves "...6:".
    if (rest.endsWith(':') && !rest.endsWith('::')) rest = rest.slice(0, -1);
  }
  const gap = rest.indexOf('::');
  let groups: bigint[];
  if (gap === -1) {
    const all = parseHexGroups(rest);
    if (typeof all === 'string') return all;
    groups = [...all, ...trailing];
    if (groups.length !== 8) return 'an IPv6 address without "::" has 8 groups';
  } else {
    if (rest.indexOf('::', gap + 1) !== -1) return '"::" may appear only once';
    const head = parseHexGroups(rest.slice(0, gap));
    if (typeof head === 'string') return head;
    const tail = parseHexGroups(rest.slice(gap + 2));
    if (typeof tail === 'string') return tail;
    const known = head.length + tail.length + trailing.length;
    if (known > 7) return 'too many groups for "::" to stand for any';
    groups = [...head, ...new Array<bigint>(8 - known).fill(0n), ...tail, ...trailing];
  }
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

function parseIpReason(text: string): IpAddress | string {
  if (text.includes(':')) {
    const v = parseIpv6(text);
    return typeof v === 'string' ? v : { family: 6, value: v };
  }
  const v = parseIpv4(text);
  return typeof v === 'string' ? v : { family: 4, value: v };
}

/** Parses an address, or returns undefined (for scanning names that may not be addresses). */
export function tryParseIp(text: string): IpAddress | undefined {
  const parsed = parseIpReason(text);
  return typeof parsed === 'string' ? undefined : parsed;
}

/** Parses "10.1.2.3" or "fd00::1"; throws WEFT_INVALID_CONFIG naming the text and the reason. */
export function parseIp(text: string): IpAddress {
  const parsed = parseIpReason(text);
  if (typeof parsed === 'string') throw invalid(`"${text}" is not a valid IP address: ${parsed}`);
  return parsed;
}

/** Builds an address from a family and value, checking that the value fits the family. */
export function ipFromValue(family: IpFamily, value: bigint): IpAddress {
  if (value < 0n || value > allOnes(family)) {
    throw new RangeError(`value ${value} does not fit an IPv${family} address`);
  }
  return { family, value };
}

/** Text form: dotted quad, or RFC 5952 canonical IPv6 (lowercase, longest zero run of 2+ groups as "::"). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((ip.value >> shift) & 0xffn)).join('.');
  }
  const groups: bigint[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push((ip.value >> shift) & 0xffffn);
  // Longest run of zero groups; the first one wins a tie; a single zero group stays "0".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0n) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0n) j++;
    if (j - i > bestLength) { bestStart = i; bestLength = j - i; }
    i = j;
  }
  const hex = (gs: bigint[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

function parsePrefixed(text: string): AddressWithPrefix {
  const slash = text.indexOf('/');
  if (slash === -1) throw invalid(`"${text}" is not in CIDR notation (address/prefix)`);
  const ip = parseIpReason(text.slice(0, slash));
  if (typeof ip === 'string') throw invalid(`"${text}" is not valid CIDR notation: ${ip}`);
  const prefixText = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) {
    throw invalid(`"${text}" is not valid CIDR notation: prefix "${prefixText}" is not a decimal number`);
  }
  const prefix = Number(prefixText);
  if (prefix > familyBits(ip.family)) {
    throw invalid(`"${text}" is not valid CIDR notation: prefix ${prefix} is longer than ${familyBits(ip.family)}`);
  }
  return { family: ip.family, address: ip.value, prefix };
}

/** Parses "10.1.2.3/24" (host bits allowed). */
export function parseAddressWithPrefix(text: string): AddressWithPrefix {
  return parsePrefixed(text);
}

/** Parses a network such as "10.1.2.0/24"; host bits set ("10.1.2.3/24") is an error naming the network. */
export function parseCidr(text: string): Cidr {
  const parsed = parsePrefixed(text);
  if (hasHostBits(parsed)) {
    throw invalid(`"${text}" has host bits set: the network for a /${parsed.prefix} is ${formatCidr(maskToNetwork(parsed))}`);
  }
  return { family: parsed.family, network: parsed.address, prefix: parsed.prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

export function formatAddressWithPrefix(a: AddressWithPrefix): string {
  return `${formatIp({ family: a.family, value: a.address })}/${a.prefix}`;
}

export function hasHostBits(a: AddressWithPrefix): boolean {
  return (a.address & ~prefixMask(a.family, a.prefix)) !== 0n;
}

/** The network an interface address lives in: 10.16.85.1/24 → 10.16.85.0/24. */
export function maskToNetwork(a: AddressWithPrefix): Cidr {
  return { family: a.family, network: a.address & prefixMask(a.family, a.prefix), prefix: a.prefix };
}

/** The address part of an AddressWithPrefix. */
export function addressOf(a: AddressWithPrefix): IpAddress {
  return { family: a.family, value: a.address };
}

/** Number of addresses in the network, network and broadcast included. */
export function cidrSize(cidr: Cidr): bigint {
  return 1n << BigInt(familyBits(cidr.family) - cidr.prefix);
}

export function networkAddress(cidr: Cidr): IpAddress {
  return { family: cidr.family, value: cidr.network };
}

/** The highest address in the network (all host bits set). */
export function lastAddress(cidr: Cidr): IpAddress {
  return { family: cidr.family, value: cidr.network + cidrSize(cidr) - 1n };
}

/** IPv4 broadcast address; undefined for IPv6 (no broadcast) and for /31 and /32 (RFC 3021). */
export function broadcastAddress(cidr: Cidr): IpAddress | undefined {
  if (cidr.family !== 4 || cidr.prefix > 30) return undefined;
  return lastAddress(cidr);
}

export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  return ip.family === cidr.family && (ip.value & prefixMask(cidr.family, cidr.prefix)) === cidr.network;
}

/** True when every address of inner is inside outer. */
export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix
    && cidrContains(outer, networkAddress(inner));
}

/** True when the two networks share any address (CIDR blocks either nest or are disjoint). */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

/** ip + offset (offset may be negative); throws RangeError when the result leaves the family. */
export function addToIp(ip: IpAddress, offset: bigint | number): IpAddress {
  return ipFromValue(ip.family, ip.value + BigInt(offset));
}

/** Orders IPv4 before IPv6, then by value. */
export function compareIp(a: IpAddress, b: IpAddress): -1 | 0 | 1 {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function ipEquals(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}
