// host-local's `ipam.ranges`: a list of range sets, each a list of ranges. One address is
// allocated per range set, so [[v4 ranges], [v6 ranges]] is dual stack. This module turns the
// JSON into validated, defaulted ranges and defines the order in which addresses are tried.
//
// Defaults follow host-local (docs/cni-spec-notes.md §2.2): gateway = network+1, rangeStart = network+1
// (the gateway is skipped while allocating), rangeEnd = broadcast-1 for IPv4, last address for
// IPv6. Weft is stricter than host-local in a few places, each of which would otherwise hand out
// an address that breaks the pod or its neighbours:
//   - rangeStart may not be the network address, rangeEnd may not be the IPv4 broadcast address;
//   - the gateway must be inside the subnet and not its network or broadcast address;
//   - rangeStart may not be after rangeEnd.
import { WeftError } from '../errors.ts';
import {
  type Cidr, type IpAddress, addToIp, broadcastAddress, cidrContains, compareIp, formatCidr, formatIp,
  hasHostBits, familyBits, ipEquals, lastAddress, maskToNetwork, parseAddressWithPrefix, parseIp,
} from '../net/cidr.ts';

/** One range as written in the CNI config. */
export interface RangeConfig {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

/** A validated range with defaults filled in; rangeStart and rangeEnd are inclusive. */
export interface IpRange {
  readonly subnet: Cidr;
  readonly rangeStart: IpAddress;
  readonly rangeEnd: IpAddress;
  readonly gateway: IpAddress;
}

/** Ranges sharing one address family; one address is allocated from each set. */
export type RangeSet = readonly IpRange[];

function configError(field: string, message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `${field}: ${message}`);
}

function optionalIp(raw: Record<string, unknown>, key: string, field: string, subnet: Cidr): IpAddress | undefined {
  const value = raw[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw configError(`${field}.${key}`, `must be an IP address string, got ${JSON.stringify(value)}`);
  let ip: IpAddress;
  try {
    ip = parseIp(value);
  } catch (e) {
    throw configError(`${field}.${key}`, (e as Error).message);
  }
  if (!cidrContains(subnet, ip)) throw configError(`${field}.${key}`, `${value} is not in subnet ${formatCidr(subnet)}`);
  return ip;
}

/** Validates one range and fills in its defaults. */
export function parseRange(raw: unknown, field: string): IpRange {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw configError(field, 'must be an object {subnet, rangeStart?, rangeEnd?, gateway?}');
  }
  const obj = raw as Record<string, unknown>;
  if (typeof obj.subnet !== 'string' || obj.subnet === '') {
    throw configError(`${field}.subnet`, 'is required and must be a CIDR string such as "10.1.2.0/24"');
  }
  let prefixed;
  try {
    prefixed = parseAddressWithPrefix(obj.subnet);
  } catch (e) {
    throw configError(`${field}.subnet`, (e as Error).message);
  }
  const subnet = maskToNetwork(prefixed);
  if (prefixed.prefix > familyBits(prefixed.family) - 2) {
    throw configError(`${field}.subnet`, `network ${obj.subnet} is too small to allocate from (it needs at least 2 host addresses)`);
  }
  if (hasHostBits(prefixed)) {
    throw configError(`${field}.subnet`, `${obj.subnet} has host bits set: for a /${subnet.prefix} the network is ${formatCidr(subnet)}`);
  }
  const network: IpAddress = { family: subnet.family, value: subnet.network };
  const broadcast = broadcastAddress(subnet);
  const isEdge = (ip: IpAddress): boolean => ipEquals(ip, network) || (broadcast !== undefined && ipEquals(ip, broadcast));

  const gateway = optionalIp(obj, 'gateway', field, subnet) ?? addToIp(network, 1);
  if (isEdge(gateway)) throw configError(`${field}.gateway`, `${formatIp(gateway)} is the network or broadcast address of ${formatCidr(subnet)}`);

  const rangeStart = optionalIp(obj, 'rangeStart', field, subnet) ?? addToIp(network, 1);
  if (ipEquals(rangeStart, network)) throw configError(`${field}.rangeStart`, `${formatIp(rangeStart)} is the network address of ${formatCidr(subnet)}`);

  const rangeEnd = optionalIp(obj, 'rangeEnd', field, subnet) ?? (broadcast ? addToIp(broadcast, -1) : lastAddress(subnet));
  if (broadcast && ipEquals(rangeEnd, broadcast)) throw configError(`${field}.rangeEnd`, `${formatIp(rangeEnd)} is the broadcast address of ${formatCidr(subnet)}`);
  if (compareIp(rangeStart, rangeEnd) > 0) {
    throw configError(`${field}.rangeStart`, `${formatIp(rangeStart)} is after rangeEnd ${formatIp(rangeEnd)}`);
  }
  return { subnet, rangeStart, rangeEnd, gateway };
}

/** host-local's text for a range ("10.1.2.1-10.1.2.254") and a range set (ranges joined by ","). */
export function formatRange(range: IpRange): string {
  return `${formatIp(range.rangeStart)}-${formatIp(range.rangeEnd)}`;
}

export function formatRangeSet(set: RangeSet): string {
  return set.map(formatRange).join(',');
}

export function rangeContains(range: IpRange, ip: IpAddress): boolean {
  return ip.family === range.rangeStart.family
    && compareIp(ip, range.rangeStart) >= 0 && compareIp(ip, range.rangeEnd) <= 0;
}

/** The range of the set that holds ip (between rangeStart and rangeEnd), if any. */
export function rangeFor(set: RangeSet, ip: IpAddress): IpRange | undefined {
  return set.find((range) => rangeContains(range, ip));
}

function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.rangeStart.family === b.rangeStart.family
    && compareIp(a.rangeStart, b.rangeEnd) <= 0 && compareIp(b.rangeStart, a.rangeEnd) <= 0;
}

/**
 * Validates `ipam.ranges` (an array of arrays of ranges). Errors are WEFT_INVALID_CONFIG and
 * name the field, e.g. "ipam.ranges[1][0].rangeEnd: 10.1.3.9 is not in subnet 10.1.2.0/24".
 */
export function parseRangeSets(raw: unknown, field = 'ipam.ranges'): RangeSet[] {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw configError(field, 'must be a non-empty array of range sets (each an array of ranges)');
  }
  const sets = raw.map((rawSet: unknown, i): RangeSet => {
    const setField = `${field}[${i}]`;
    if (!Array.isArray(rawSet) || rawSet.length === 0) throw configError(setField, 'must be a non-empty array of ranges');
    const set = rawSet.map((r: unknown, j) => parseRange(r, `${setField}[${j}]`));
    set.forEach((range, j) => {
      if (range.subnet.family !== set[0]!.subnet.family) {
        throw configError(`${setField}[${j}].subnet`, `mixes IPv${range.subnet.family} into a range set of IPv${set[0]!.subnet.family} ranges`);
      }
    });
    return set;
  });
  // No address may belong to two ranges: it would be allocatable twice in one set, or once per set.
  const all = sets.flatMap((set, i) => set.map((range, j) => ({ range, field: `${field}[${i}][${j}]` })));
  for (let a = 0; a < all.length; a++) {
    for (let b = a + 1; b < all.length; b++) {
      const x = all[a]!;
      const y = all[b]!;
      if (rangesOverlap(x.range, y.range)) {
        throw configError(y.field, `range ${formatRange(y.range)} overlaps ${x.field} (${formatRange(x.range)})`);
      }
    }
  }
  return sets;
}

/** How many addresses the set can hand out: every address in its ranges except each range's gateway. */
export function rangeSetCapacity(set: RangeSet): bigint {
  let total = 0n;
  for (const range of set) {
    total += range.rangeEnd.value - range.rangeStart.value + 1n;
    if (rangeContains(range, range.gateway)) total -= 1n;
  }
  return total;
}

/**
 * The order host-local tries addresses in: round-robin from the address after the last one
 * reserved in this set, through rangeEnd, on to the next range's rangeStart, wrapping from the
 * last range to the first, until it is back where it started. Each range's gateway is skipped.
 * A last reservation outside every range (say, after a config change) restarts at the first
 * range's rangeStart: only round-robin fairness is lost.
 */
export function* allocationOrder(set: RangeSet, lastReserved: IpAddress | undefined): Generator<{ ip: IpAddress; range: IpRange }> {
  let index = 0;
  let current = set[0]!.rangeStart;
  const lastIndex = lastReserved ? set.findIndex((range) => rangeContains(range, lastReserved)) : -1;
  if (lastReserved && lastIndex !== -1) {
    index = lastIndex;
    current = lastReserved;
    [index, current] = step(set, index, current);
  }
  const first = current;
  do {
    const range = set[index]!;
    if (!ipEquals(current, range.gateway)) yield { ip: current, range };
    [index, current] = step(set, index, current);
  } while (!ipEquals(current, first));
}

function step(set: RangeSet, index: number, current: IpAddress): [number, IpAddress] {
  if (ipEquals(current, set[index]!.rangeEnd)) {
    const next = (index + 1) % set.length;
    return [next, set[next]!.rangeStart];
  }
  return [index, addToIp(current, 1)];
}
