// The IPAM seam: what the CNI plugin needs from an address allocator, so the host-local
// compatible disk store (allocator.ts) is one implementation and others (an in-memory one for
// tests, a mesh's block allocator) plug into the same bridge plugin unchanged. The behaviour
// every implementation must have is the contract suite in ipam-contract.ts.
//
// An Ipam serves one network (the CNI config's `name`) over the range sets of one node. The
// ranges are bound when the Ipam is made, not passed per call, because DEL, CHECK and GC must
// work without them (subnet.env may be gone); only allocate() and usage() need them.
import type { IpFamily } from '../net/cidr.ts';
import type { RangeSet } from './ranges.ts';

/** A container's interface, the key of every allocation (CNI_CONTAINERID, CNI_IFNAME). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

export interface AllocationRequest extends Attachment {
  /**
   * Addresses asked for via CNI_ARGS IP=, args.cni.ips or runtimeConfig.ips ("10.1.2.3" or
   * "10.1.2.3/24"); each must fall in a different range set and is used for that set.
   */
  requested?: readonly string[];
}

/** One address of an attachment, one per range set. */
export interface Allocation {
  family: IpFamily;
  /** "10.1.2.3" or "fd00::3" */
  address: string;
  /** The subnet's prefix length, for "10.1.2.3/24". */
  prefix: number;
  gateway: string;
  rangeSetIndex: number;
}

export interface RangeSetUsage {
  allocated: number;
  /** Addresses the set can hand out (ranges minus gateways); above 2^53 this is approximate. */
  capacity: number;
}

export interface Ipam {
  /**
   * One address per range set for a new attachment (CNI ADD). All or nothing: a failure
   * leaves no address of this call behind. An attachment that already holds an address in a
   * range set is refused with WEFT_IPAM_CONFLICT (CNI: ADD twice is an error; DEL first),
   * leaving its addresses as they were. No free address is WEFT_IPAM_EXHAUSTED; a requested
   * address that is taken, outside the ranges or a gateway is WEFT_IPAM_CONFLICT.
   */
  allocate(req: AllocationRequest): Promise<Allocation[]>;
  /** Frees every address of the attachment (CNI DEL); returns them. Nothing held is not an error. */
  release(attachment: Attachment): Promise<string[]>;
  /** The attachment's addresses (CNI CHECK), sorted; [] when it holds none. */
  lookup(attachment: Attachment): Promise<string[]>;
  /** Allocated and total addresses per range set, in range-set order (STATUS, metrics). */
  usage(): Promise<RangeSetUsage[]>;
  /** Frees every address not held by one of the valid attachments (CNI GC); returns the freed ones. */
  gc(valid: readonly Attachment[]): Promise<string[]>;
}

/** What a network's Ipam is made from: the CNI config and the node's ranges. */
export interface IpamNetwork {
  /** The CNI network name; also the disk store's directory name. */
  name: string;
  /** The CNI config's dataDir (host-local's store root); allocators without a disk store ignore it. */
  dataDir: string;
  /** The node's range sets, [] when they are unknown (DEL, GC without subnet.env). */
  rangeSets: readonly RangeSet[];
  /**
   * Told about problems that do not fail the request (a store file that cannot be an owner
   * file, say), each time a request meets one; the caller throttles it.
   */
  warn?: (problem: string) => void;
}

/**
 * Makes the Ipam for a network. The bridge plugin calls it once per request, so an allocator
 * with state of its own (not on disk) returns the same instance for the same network name.
 */
export type IpamFactory = (network: IpamNetwork) => Ipam;

/** Sums range-set usage into the used/free pair a metric reports (every family together). */
export function totalUsage(usage: readonly RangeSetUsage[]): { used: number; free: number } {
  let used = 0;
  let free = 0;
  for (const u of usage) {
    used += u.allocated;
    free += Math.max(0, u.capacity - u.allocated);
  }
  return { used, free };
}
