// Text <-> bytes for IP addresses, CIDRs and MAC addresses. The public API speaks strings
// ("10.1.2.3", "10.1.2.0/24", "fd00::1", "aa:bb:cc:dd:ee:ff"); the kernel speaks bytes.
// IPv4 and IPv6 share one path parameterised by family, as everything above does.
import { isIPv4, isIPv6 } from 'node:net';
import { WeftError } from '../errors.ts';
import { AF_INET, AF_INET6 } from './constants.ts';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  bytes: Buffer;
}

export interface Cidr extends IpAddress {
  prefixLen: number;
}

function invalid(what: string, value: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `invalid ${what}: ${JSON.stringify(value)}`);
}

export function afOf(family: IpFamily): number {
  return family === 4 ? AF_INET : AF_INET6;
}

export function familyOfAf(af: number): IpFamily | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

export function addressLength(family: IpFamily): number {
  return family === 4 ? 4 : 16;
}

function parseV4Into(text: string, out: Buffer, at: number): void {
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

/** Parses "10.1.2.3" or "fd00::1" (no zone index) into bytes. */
export function parseIp(text: string): IpAddress {
  if (isIPv4(text)) {
    const bytes = Buffer.alloc(4);
    parseV4Into(text, bytes, 0);
    return { family: 4, bytes };
  }
  if (!isIPv6(text) || text.includes('%')) throw invalid('IP address', text);
  const bytes = Buffer.alloc(16);
  let tail = text;
  let tailBytes = 16;
  // An embedded IPv4 address ("::ffff:10.1.2.3") fills the last 4 bytes.
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    parseV4Into(text.slice(lastColon + 1), bytes, 12);
    tail = text.slice(0, lastColon + 1);
    if (tail.endsWith(':') && !tail.endsWith('::')) tail = tail.slice(0, -1);
    tailBytes = 12;
  }
  const [head = '', rest] = tail.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  headGroups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), i * 2));
  const restStart = tailBytes - restGroups.length * 2;
  restGroups.forEach((g, i) => bytes.writeUInt16BE(parseInt(g, 16), restStart + i * 2));
  return { family: 6, bytes };
}

/** Parses "10.1.2.0/24" (or a bare address, meaning /32 or /128). Host bits are kept. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  const max = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefixLen: max };
  const p = text.slice(slash + 1);
  const prefixLen = /^\d{1,3}$/.test(p) ? Number(p) : NaN;
  if (!(prefixLen <= max)) throw invalid('CIDR', text);
  return { ...ip, prefixLen };
}

/** Formats 4 or 16 bytes as text; IPv6 in RFC 5952 form (as iproute2 prints it). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new WeftError('WEFT_DECODE', `netlink: an IP address of ${bytes.length} bytes`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // The longest run (>= 2) of zero words becomes "::"; the first one wins a tie.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  // IPv4-mapped addresses keep their dotted tail, as inet_ntop(3) prints them.
  if (bestStart === 0 && bestLen === 5 && words[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  const hexWords = words.map((w) => w.toString(16));
  if (bestStart < 0) return hexWords.join(':');
  return `${hexWords.slice(0, bestStart).join(':')}::${hexWords.slice(bestStart + bestLen).join(':')}`;
}

/** The network address of a CIDR (host bits cleared), e.g. for a route's destination. */
export function networkOf(cidr: Cidr): Buffer {
  const out = Buffer.from(cidr.bytes);
  for (let bit = cidr.prefixLen; bit < out.length * 8; bit++) {
    out[bit >> 3] = (out[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  }
  return out;
}

export function parseMac(text: string): Buffer {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) throw invalid('MAC address', text);
  return Buffer.from(text.replaceAll(':', ''), 'hex');
}

/** Formats a link-layer address as lower-case hex pairs ("aa:bb:cc:dd:ee:ff"). */
export function formatMac(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex').replace(/(..)(?!$)/g, '$1:');
}
