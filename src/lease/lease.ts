// A lease as flannel stores it (docs/flannel-compat.md §1.2, §1.4): the subnet lives only in the key
// ("subnets/10.16.85.0-24", dual stack "subnets/10.244.1.0-24&2001:cafe:42:1::-64"), the rest in
// a JSON value whose field names and order are flannel's:
//   {"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}
// PublicIPv6 is written as null, never omitted; BackendType/BackendData/BackendV6Data are
// omitted when empty. Readers accept old leases (no PublicIPv6) and, as Go does, keys in any case.
// BackendData is opaque here: its format belongs to the backend that wrote it (src/dataplane).
import {
  cidrContainsCidr, formatCidr, formatIp, hasHostBits, parseAddressWithPrefix, tryParseIp, type Cidr, type IpAddress,
} from '../net/cidr.ts';
import type { SubnetRange, NetworkConfig } from './network-config.ts';
import type { StoredLease } from './store.ts';

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** The subnets a key names. An IPv6-only lease has no IPv4 part (its key reads "0.0.0.0-0&…"). */
export interface LeaseSubnets {
  readonly ipv4: Cidr | undefined;
  readonly ipv6: Cidr | undefined;
}

export interface LeaseAttrs {
  /** Dotted IPv4; "0.0.0.0" when the node has none. */
  readonly publicIp: string;
  readonly publicIpv6: string | null;
  /** "vxlan", "host-gw", ... or undefined (omitted in the JSON). */
  readonly backendType: string | undefined;
  /** Backend JSON value as read or to be written; undefined = omitted. */
  readonly backendData: unknown;
  readonly backendV6Data: unknown;
}

/** A stored lease with its key and value parsed. */
export interface LeaseRecord {
  /** The key exactly as stored, e.g. "subnets/10.16.85.0-24". */
  readonly key: string;
  readonly subnets: LeaseSubnets;
  readonly attrs: LeaseAttrs;
  /** The value exactly as stored. */
  readonly value: string;
  /** ms since the epoch; null for a reservation. */
  readonly expiresAt: number | null;
  readonly version: number;
}

export const SUBNETS_DIR = 'subnets/';
const NO_IPV4 = '0.0.0.0-0';

// Four dotted decimals, "-", a prefix; optionally "&", an IPv6 address, "-", a prefix.
const KEY = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})-(\d{1,3})(?:&([0-9a-fA-F:.]+)-(\d{1,3}))?$/;

/** "10.16.85.0-24", "10.244.1.0-24&2001:cafe:42:1::-64", or "0.0.0.0-0&fd00::-64" for IPv6 only. */
export function formatSubnetName(subnets: LeaseSubnets): string {
  const v4 = subnets.ipv4 ? formatCidr(subnets.ipv4).replace('/', '-') : NO_IPV4;
  return subnets.ipv6 ? `${v4}&${formatCidr(subnets.ipv6).replace('/', '-')}` : v4;
}

/** The relative store key: "subnets/<name>". */
export function leaseKey(subnets: LeaseSubnets): string {
  return SUBNETS_DIR + formatSubnetName(subnets);
}

/** A canonical identity for comparing subnets named by keys that may be spelled differently. */
export function subnetsId(subnets: LeaseSubnets): string {
  return formatSubnetName(subnets);
}

function parseNet(text: string, prefix: string, family: 4 | 6): Cidr | string {
  let a;
  try {
    a = parseAddressWithPrefix(`${text}/${prefix}`);
  } catch (e) {
    return (e as Error).message;
  }
  if (a.family !== family) return `"${text}" is not an IPv${family} address`;
  if (hasHostBits(a)) return `"${text}-${prefix}" has host bits set`;
  return { family, network: a.address, prefix: a.prefix };
}

/** Parses a relative key ("subnets/…") or a bare subnet name; non-subnet keys come back with a reason. */
export function parseLeaseKey(key: string): Parsed<LeaseSubnets> {
  const name = key.startsWith(SUBNETS_DIR) ? key.slice(SUBNETS_DIR.length) : key;
  const m = KEY.exec(name);
  if (!m) return { ok: false, reason: `"${name}" is not a subnet key (expected e.g. 10.16.85.0-24 or 10.244.1.0-24&2001:cafe:42:1::-64)` };
  const [, v4ip = '', v4len = '', v6ip, v6len = ''] = m;
  const noV4 = `${v4ip}-${v4len}` === NO_IPV4;
  const ipv4 = noV4 ? undefined : parseNet(v4ip, v4len, 4);
  if (typeof ipv4 === 'string') return { ok: false, reason: `"${name}": ${ipv4}` };
  let ipv6: Cidr | undefined;
  if (v6ip !== undefined) {
    const parsed = parseNet(v6ip, v6len, 6);
    if (typeof parsed === 'string') return { ok: false, reason: `"${name}": ${parsed}` };
    ipv6 = parsed;
  }
  if (!ipv4 && !ipv6) return { ok: false, reason: `"${name}" names no subnet` };
  return { ok: true, value: { ipv4, ipv6 } };
}

/** Flannel's field order; Go omits empty RawMessages (omitempty) but never a nil PublicIPv6. */
export function formatLeaseValue(attrs: LeaseAttrs): string {
  const out: Record<string, unknown> = { PublicIP: attrs.publicIp, PublicIPv6: attrs.publicIpv6 };
  if (attrs.backendType) out.BackendType = attrs.backendType;
  if (attrs.backendData !== undefined && attrs.backendData !== null) out.BackendData = attrs.backendData;
  if (attrs.backendV6Data !== undefined && attrs.backendV6Data !== null) out.BackendV6Data = attrs.backendV6Data;
  return JSON.stringify(out);
}

/** Case-insensitive lookup of a JSON object's field, the last spelling winning (Go's rule). */
export function getField(obj: Record<string, unknown>, name: string): unknown {
  let found: unknown;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) found = v;
  return found;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function address(value: unknown, field: string, family: 4 | 6): IpAddress | string {
  if (typeof value !== 'string') return `${field} ${JSON.stringify(value)} is not a string`;
  const ip = tryParseIp(value);
  if (!ip || ip.family !== family) return `${field} "${value}" is not an IPv${family} address`;
  return ip;
}

/** Parses a lease value; tolerates missing fields (old leases); rejects wrong types. */
export function parseLeaseValue(text: string): Parsed<LeaseAttrs> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `not JSON (${(e as Error).message})` };
  }
  if (!isObject(raw)) return { ok: false, reason: 'not a JSON object' };
  const v4 = getField(raw, 'PublicIP');
  const v6 = getField(raw, 'PublicIPv6');
  const backendType = getField(raw, 'BackendType');
  let publicIp = '0.0.0.0';
  if (v4 !== undefined) {
    const ip = address(v4, 'PublicIP', 4);
    if (typeof ip === 'string') return { ok: false, reason: ip };
    publicIp = formatIp(ip);
  }
  let publicIpv6: string | null = null;
  if (v6 !== undefined && v6 !== null) {
    const ip = address(v6, 'PublicIPv6', 6);
    if (typeof ip === 'string') return { ok: false, reason: ip };
    publicIpv6 = formatIp(ip);
  }
  if (backendType !== undefined && backendType !== null && typeof backendType !== 'string') {
    return { ok: false, reason: `BackendType ${JSON.stringify(backendType)} is not a string` };
  }
  return {
    ok: true,
    value: {
      publicIp,
      publicIpv6,
      backendType: backendType || undefined,
      backendData: getField(raw, 'BackendData') ?? undefined,
      backendV6Data: getField(raw, 'BackendV6Data') ?? undefined,
    },
  };
}

/** Key and value of a stored lease, or why it is not one (the caller logs and skips it). */
export function parseStoredLease(stored: StoredLease): Parsed<LeaseRecord> {
  const key = parseLeaseKey(stored.key);
  if (!key.ok) return key;
  const attrs = parseLeaseValue(stored.value);
  if (!attrs.ok) return { ok: false, reason: `${stored.key}: value is not a flannel lease: ${attrs.reason}` };
  return {
    ok: true,
    value: { key: stored.key, subnets: key.value, attrs: attrs.value, value: stored.value, expiresAt: stored.expiresAt, version: stored.version },
  };
}

/** The subnet has the range's length and lies in [SubnetMin, SubnetMax]. */
export function subnetFitsRange(range: SubnetRange, subnet: Cidr): boolean {
  return subnet.prefix === range.subnetLen && cidrContainsCidr(range.network, subnet)
    && subnet.network >= range.subnetMin.network && subnet.network <= range.subnetMax.network;
}

/**
 * Whether a lease's subnets fit the config (flannel's reuse rule): for each enabled family the
 * subnet has the configured length and lies in [SubnetMin, SubnetMax]; a disabled family has none.
 */
export function subnetsCompatible(config: NetworkConfig, subnets: LeaseSubnets): boolean {
  for (const [range, subnet] of [[config.ipv4, subnets.ipv4], [config.ipv6, subnets.ipv6]] as const) {
    if (range ? !subnet || !subnetFitsRange(range, subnet) : subnet !== undefined) return false;
  }
  return true;
}

/** "10.16.85.0/24", "10.244.1.0/24 + 2001:cafe:42:1::/64": for logs and messages. */
export function describeSubnets(subnets: LeaseSubnets): string {
  return [subnets.ipv4, subnets.ipv6].filter((c) => c !== undefined).map(formatCidr).join(' + ');
}
