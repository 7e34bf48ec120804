// Validation shared by every Ipam implementation, so they refuse the same inputs with the same
// messages: the attachment's IDs, and requested addresses matched to range sets up front
// (range, prefix, gateway, one per set) before anything is reserved.
import { WeftError } from '../errors.ts';
import { type IpAddress, addressOf, compareIp, formatIp, parseAddressWithPrefix, parseIp } from '../net/cidr.ts';
import type { Attachment } from './ipam.ts';
import { type RangeSet, formatRangeSet, rangeFor } from './ranges.ts';

// CNI spec rules for CNI_CONTAINERID and CNI_IFNAME; they also keep the disk store's file format intact.
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const IFNAME_FORBIDDEN = /[\s/:]/;

export function checkAttachment(a: Attachment): void {
  if (!CONTAINER_ID.test(a.containerId)) {
    throw new WeftError('WEFT_INVALID_ENV', `container ID "${a.containerId}" must start with a letter or digit and contain only letters, digits, "_", "." and "-"`);
  }
  if (a.ifname === '' || a.ifname === '.' || a.ifname === '..' || a.ifname.length > 15 || IFNAME_FORBIDDEN.test(a.ifname)) {
    throw new WeftError('WEFT_INVALID_ENV', `interface name "${a.ifname}" must be 1-15 characters, not "." or "..", without "/", ":" or whitespace`);
  }
}

/** Refuses allocate() on a network whose ranges are unknown. */
export function requireRangeSets(rangeSets: readonly RangeSet[], network: string): void {
  if (rangeSets.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', `network ${network} has no IPAM range sets`);
}

/** The requested addresses by the index of the range set each falls in. */
export function matchRequested(rangeSets: readonly RangeSet[], network: string, requested: readonly string[]): Map<number, IpAddress> {
  const bySet = new Map<number, IpAddress>();
  for (const text of requested) {
    const ip = parseRequested(text, network);
    const index = rangeSets.findIndex((set) => rangeFor(set, ip) !== undefined);
    if (index === -1) {
      throw new WeftError('WEFT_IPAM_CONFLICT', `requested IP address ${text} is not in any range of network ${network} (${rangeSets.map(formatRangeSet).join('; ')})`);
    }
    const range = rangeFor(rangeSets[index]!, ip)!;
    if (text.includes('/') && parseAddressWithPrefix(text).prefix !== range.subnet.prefix) {
      throw new WeftError('WEFT_IPAM_CONFLICT', `requested IP address ${text} does not match the prefix length /${range.subnet.prefix} of its range in network ${network}`);
    }
    if (compareIp(ip, range.gateway) === 0) {
      throw new WeftError('WEFT_IPAM_CONFLICT', `requested IP address ${text} is the gateway of range ${formatRangeSet([range])} in network ${network}`);
    }
    const other = bySet.get(index);
    // The same address from two sources (CNI_ARGS and runtimeConfig, say) is one request.
    if (other && compareIp(other, ip) === 0) continue;
    if (other) {
      throw new WeftError('WEFT_IPAM_CONFLICT', `requested IP addresses ${formatIp(other)} and ${text} are both in range set ${index} of network ${network}; only one address is allocated per range set`);
    }
    bySet.set(index, ip);
  }
  return bySet;
}

function parseRequested(text: string, network: string): IpAddress {
  try {
    return text.includes('/') ? addressOf(parseAddressWithPrefix(text)) : parseIp(text);
  } catch (e) {
    throw new WeftError('WEFT_INVALID_CONFIG', `requested IP address for network ${network}: ${(e as Error).message}`, { cause: e });
  }
}

export function duplicateError(address: string, network: string, a: Attachment): WeftError {
  return new WeftError('WEFT_IPAM_CONFLICT', `${address} in network ${network} is already allocated to container ${a.containerId} interface ${a.ifname}; duplicate allocation is not allowed`);
}

export function exhaustedError(set: RangeSet, network: string): WeftError {
  return new WeftError('WEFT_IPAM_EXHAUSTED', `no IP addresses available in range set ${formatRangeSet(set)} of network ${network}`);
}

export function unavailableError(ip: IpAddress, set: RangeSet, network: string, problem?: string): WeftError {
  return new WeftError('WEFT_IPAM_CONFLICT', `requested IP address ${formatIp(ip)} is not available in range set ${formatRangeSet(set)} of network ${network}${problem ? ` (${problem})` : ''}`);
}
