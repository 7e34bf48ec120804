// Lease acquisition (docs/flannel-compat.md §1.6), as policy over any LeaseStore. One attempt:
//   1. list every lease;
//   2. a lease whose public IP is ours and that still fits the config is ours again: rewrite
//      it with a fresh TTL (a reservation stays a reservation); one that no longer fits is
//      deleted;
//   3. else the previous subnet (subnet.env, or the lease we just lost) if no lease overlaps it
//      now and it fits the config (flannel #1289: never take over a subnet reassigned while
//      this node was away);
//   4. else a random subnet among the first 100 free ones between SubnetMin and SubnetMax;
//   5. create the key only if it does not exist. Losing that race starts a new attempt, up to 10.
// Each family is chosen independently: a node moving to dual stack keeps its IPv4 subnet.
import { WeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { cidrSize, cidrsOverlap, formatCidr, ipEquals, tryParseIp, type Cidr, type IpAddress } from '../net/cidr.ts';
import type { NetworkConfig, SubnetRange } from './network-config.ts';
import {
  describeSubnets, formatLeaseValue, leaseKey, parseLeaseKey, parseLeaseValue, subnetFitsRange, subnetsCompatible, type LeaseAttrs,
  type LeaseSubnets,
} from './lease.ts';
import type { Clock } from './memory/memory-store.ts';
import type { LeaseStore, StoredLease } from './store.ts';

export const RACE_RETRIES = 10;
export const MAX_CANDIDATES = 100;

/** A lease this node holds. */
export interface HeldLease {
  readonly key: string;
  readonly subnets: LeaseSubnets;
  readonly attrs: LeaseAttrs;
  /** The value as written. */
  readonly value: string;
  /** ms since the epoch; null for a reservation (never renewed, never expires). */
  expiresAt: number | null;
  /** How it was obtained. */
  readonly how: 'public-ip' | 'previous' | 'allocated';
}

export interface AcquireRequest {
  config: NetworkConfig;
  /** What to publish; its public IP (IPv4, or IPv6 for an IPv6-only network) identifies this node. */
  attrs: LeaseAttrs;
  /** A subnet this node held before, to get back if still free (either family may be missing). */
  previous: { subnet?: Cidr | undefined; ipv6Subnet?: Cidr | undefined } | undefined;
  ttlSeconds: number;
  random: () => number;
  clock: Clock;
  logger: Logger;
}

interface Occupant { key: string; subnets: LeaseSubnets }

/** The candidate subnets of one family: up to `limit` free ones in order, and how many exist in all. */
export function freeSubnets(range: SubnetRange, taken: readonly Cidr[], limit = MAX_CANDIDATES): { free: Cidr[]; total: bigint } {
  const { family } = range.network;
  const step = cidrSize(range.subnetMin);
  const total = (range.subnetMax.network - range.subnetMin.network) / step + 1n;
  const exact = new Set<bigint>();
  const other: Cidr[] = [];
  for (const t of taken) {
    if (t.family !== family) continue;
    if (t.prefix === range.subnetLen) exact.add(t.network);
    else other.push(t);
  }
  const free: Cidr[] = [];
  let at = range.subnetMin.network;
  while (at <= range.subnetMax.network && free.length < limit) {
    const candidate: Cidr = { family, network: at, prefix: range.subnetLen };
    if (exact.has(at)) { at += step; continue; }
    const cover = other.find((t) => cidrsOverlap(t, candidate));
    if (cover) {
      // A shorter-prefix lease (a big reservation, a lease from an older config) blocks a run of candidates.
      const end = cover.network + cidrSize(cover);
      at = cover.prefix < range.subnetLen && end > at + step ? end : at + step;
      continue;
    }
    free.push(candidate);
    at += step;
  }
  return { free, total };
}

function exhausted(range: SubnetRange, total: bigint, leaseCount: number): WeftError {
  return new WeftError('WEFT_IPAM_EXHAUSTED',
    `out of subnets: all ${total} subnets of ${formatCidr(range.network)} between ${formatCidr(range.subnetMin)} and ` +
    `${formatCidr(range.subnetMax)} are leased (${leaseCount} keys under subnets/). Leases of removed nodes stay until ` +
    `their TTL runs out: delete stale keys under <prefix>/subnets/, or make room in the network config (a larger ` +
    `network, a longer SubnetLen, a wider SubnetMin..SubnetMax).`);
}

function isFree(subnet: Cidr, occupants: readonly Occupant[]): boolean {
  return !occupants.some((o) => [o.subnets.ipv4, o.subnets.ipv6].some((c) => c !== undefined && cidrsOverlap(c, subnet)));
}

/** A node's identity in leases: its IPv4 public IP, or its IPv6 one on an IPv6-only network. */
function ownIdentity(config: NetworkConfig, attrs: LeaseAttrs): IpAddress | undefined {
  return config.ipv4 ? tryParseIp(attrs.publicIp) : (attrs.publicIpv6 === null ? undefined : tryParseIp(attrs.publicIpv6));
}

/** Leases of this node by public IP: reservations first (an operator made them for us). */
export function findOwnLeases(config: NetworkConfig, attrs: LeaseAttrs, leases: readonly StoredLease[]): { stored: StoredLease; subnets: LeaseSubnets; attrs: LeaseAttrs }[] {
  const me = ownIdentity(config, attrs);
  if (!me) return [];
  const found = [];
  for (const stored of leases) {
    const key = parseLeaseKey(stored.key);
    const value = parseLeaseValue(stored.value);
    if (!key.ok || !value.ok) continue;
    const them = ownIdentity(config, value.value);
    if (them && ipEquals(them, me)) found.push({ stored, subnets: key.value, attrs: value.value });
  }
  return found.sort((a, b) => Number(a.stored.hasTtl) - Number(b.stored.hasTtl));
}

type Step = { kind: 'done'; lease: HeldLease } | { kind: 'retry' };

async function attempt(store: LeaseStore, req: AcquireRequest): Promise<Step> {
  const { config, logger } = req;
  const value = formatLeaseValue(req.attrs);
  // No expiries needed (other nodes' TTLs cost a call each on etcd v3): a reservation is hasTtl false.
  const { leases } = await store.listLeases({ expiry: false });

  // 2. Reuse by public IP.
  const mine = findOwnLeases(config, req.attrs, leases);
  const fitting = mine.filter((m) => subnetsCompatible(config, m.subnets));
  for (const own of mine) {
    if (fitting.includes(own)) continue;
    logger.warn({ key: own.stored.key, reservation: !own.stored.hasTtl },
      `lease ${describeSubnets(own.subnets)} of this node's public IP no longer fits the network config; deleting it`);
    await store.delete(own.stored.key);
  }
  const own = fitting[0];
  if (own) {
    const where = describeSubnets(own.subnets);
    if (fitting.length > 1) {
      logger.warn({ keys: fitting.map((m) => m.stored.key) },
        `several leases carry this node's public IP; reusing ${where}. Do two nodes share a public IP? Give each its own (--public-ip)`);
    }
    const reservation = !own.stored.hasTtl;
    const written = await store.put(own.stored.key, value, reservation ? null : req.ttlSeconds);
    logger.info({ key: own.stored.key, reservation }, `reusing lease ${where} of this node's public IP`);
    return { kind: 'done', lease: { key: own.stored.key, subnets: own.subnets, attrs: req.attrs, value, expiresAt: written.expiresAt, how: 'public-ip' } };
  }
  // A lease deleted above is still in `leases`, so its subnet is not picked in this attempt (as flannel).

  const occupants: Occupant[] = [];
  for (const l of leases) {
    const key = parseLeaseKey(l.key);
    // A lease with a broken value still holds its subnet; a key that names no subnet holds nothing.
    if (key.ok) occupants.push({ key: l.key, subnets: key.value });
  }

  // 3 and 4, per family.
  let how: HeldLease['how'] = 'previous';
  const pick = (range: SubnetRange | undefined, previous: Cidr | undefined): Cidr | undefined => {
    if (!range) return undefined;
    if (previous) {
      const fits = subnetFitsRange(range, previous);
      if (fits && isFree(previous, occupants)) return previous;
      logger.info({ previous: formatCidr(previous) }, fits
        ? `previous subnet ${formatCidr(previous)} is now leased by another node; picking a new one`
        : `previous subnet ${formatCidr(previous)} does not fit the network config; picking a new one`);
    }
    how = 'allocated';
    const taken = occupants.flatMap((o) => [o.subnets.ipv4, o.subnets.ipv6].filter((c) => c !== undefined));
    const { free, total } = freeSubnets(range, taken);
    if (free.length === 0) throw exhausted(range, total, leases.length);
    const index = Math.min(free.length - 1, Math.floor(req.random() * free.length));
    return free[index];
  };
  const prev = req.previous;
  const subnets: LeaseSubnets = {
    ipv4: pick(config.ipv4, prev?.subnet?.family === 4 ? prev.subnet : undefined),
    ipv6: pick(config.ipv6, prev?.ipv6Subnet?.family === 6 ? prev.ipv6Subnet : undefined),
  };
  const key = leaseKey(subnets);
  // 5. Atomic create.
  if (!(await store.create(key, value, req.ttlSeconds))) {
    logger.debug({ key }, `lost the race for ${describeSubnets(subnets)}; retrying`);
    return { kind: 'retry' };
  }
  logger.info({ key, how }, `${how === 'previous' ? 'got back the previous subnet' : 'leased'} ${describeSubnets(subnets)}`);
  return {
    kind: 'done',
    lease: { key, subnets, attrs: req.attrs, value, expiresAt: req.clock.now() + req.ttlSeconds * 1000, how },
  };
}

/**
 * Acquires a lease: WEFT_IPAM_EXHAUSTED when no subnet is free, WEFT_NOT_READY after
 * RACE_RETRIES lost races; store errors propagate (the caller retries later).
 */
export async function acquireLease(store: LeaseStore, req: AcquireRequest): Promise<HeldLease> {
  if (!ownIdentity(req.config, req.attrs)) {
    throw new WeftError('WEFT_INVALID_CONFIG', req.config.ipv4
      ? `lease: public IP "${req.attrs.publicIp}" is not an IPv4 address; the network has IPv4, so this node needs an IPv4 public IP`
      : `lease: the network is IPv6-only, so this node needs an IPv6 public IP (got ${JSON.stringify(req.attrs.publicIpv6)})`);
  }
  if (req.config.ipv4 && req.attrs.publicIp === '0.0.0.0') {
    throw new WeftError('WEFT_INVALID_CONFIG', 'lease: public IP 0.0.0.0 cannot identify this node');
  }
  if (req.config.ipv6 && req.attrs.publicIpv6 === null) {
    throw new WeftError('WEFT_INVALID_CONFIG', 'lease: the network has IPv6 ("EnableIPv6"), so this node needs an IPv6 public IP');
  }
  for (let i = 0; i < RACE_RETRIES; i++) {
    const step = await attempt(store, req);
    if (step.kind === 'done') return step.lease;
  }
  throw new WeftError('WEFT_NOT_READY',
    `lost the race for a free subnet ${RACE_RETRIES} times in a row (many nodes acquiring at once?); try again`);
}
