// The node side of the pod network: the bridge (default cni0) with the gateway address of
// every range that has pods (etcd mode: the node subnet's; block IPAM: one per active block),
// and IP forwarding. Idempotent: an ADD that needs a gateway the bridge may lack calls
// ensureNodeBridge, which costs one address dump when the bridge is already right.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import { formatMac, type Rtnetlink } from '../netlink/index.ts';
import { addressOf, cidrContains, maskToNetwork, parseAddressWithPrefix, type Cidr } from '../net/cidr.ts';
import type { Logger } from '../log/logger.ts';
import { writeNetSysctl } from './pod-link.ts';

export interface NodeBridge { index: number; name: string; mac: string }

/** A random locally administered unicast MAC. */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return formatMac(b);
}

export interface EnsureBridgeOptions {
  name: string;
  mtu: number;
  /** Addresses the bridge must hold, "10.16.1.1/24": this pod's gateways. */
  gateways: string[];
  /** Cluster networks: a stale gateway from another subnet of these is replaced, not an error. */
  networks: Cidr[];
  /**
   * The node's current ranges and this pod's blocks. An in-network address inside one of them
   * is kept (with block IPAM: another block's gateway, with pods behind it); any other
   * in-network address is a previous node subnet's and is replaced.
   */
  current: readonly Cidr[];
  log: Logger;
}

/** The bridge as ensureNodeBridge left it: the link, and its global addresses ("ip/prefix"). */
export interface EnsuredBridge extends NodeBridge { addresses: string[] }

export function ensureNodeBridge(nl: Rtnetlink, o: EnsureBridgeOptions): EnsuredBridge {
  // A fixed MAC, so the bridge does not follow its lowest port's MAC around (docs/cni-spec-notes.md §2.1).
  const link = nl.ensureBridge({ name: o.name, mtu: o.mtu, mac: randomMac(), up: true });
  const present = nl.listAddresses({ link: link.index }).filter((a) => a.scope === 0).map((a) => a.cidr);
  const held = new Set(present);
  const missing = o.gateways.filter((g) => !held.has(g));
  // Every address to replace is judged before any is touched: a foreign one fails the ADD with the bridge as it was.
  const stale = new Map<string, string>();
  for (const gw of missing) {
    const family = parseAddressWithPrefix(gw).family;
    for (const old of held) {
      if (stale.has(old) || o.gateways.includes(old)) continue;
      const parsed = parseAddressWithPrefix(old);
      if (parsed.family !== family || o.current.some((c) => cidrContains(c, addressOf(parsed)))) continue;
      const oldNet = maskToNetwork(parsed);
      const inNetwork = o.networks.some((n) => n.family === oldNet.family && cidrContains(n, { family: oldNet.family, value: oldNet.network }));
      if (!inNetwork) {
        throw new WeftError('WEFT_NETLINK', `bridge ${o.name} already has the address ${old}, which is outside the cluster network; ` +
          `remove it (ip addr del ${old} dev ${o.name}) or choose another bridge name`);
      }
      stale.set(old, gw);
    }
  }
  for (const [old, gw] of stale) {
    // The node's subnet changed (a new lease): pods on the old subnet cannot work anyway.
    o.log.warn({ bridge: o.name, old, new: gw }, 'replacing the bridge address of a previous node subnet');
    nl.deleteAddress(link.index, old);
    held.delete(old);
  }
  for (const gw of missing) {
    nl.addAddress(link.index, gw, { noDad: true });
    held.add(gw);
  }
  if (!link.up) nl.setLinkUp(link.index);
  return { index: link.index, name: link.name, mac: link.mac ?? '', addresses: [...held] };
}

const FORWARDING = { 4: '/proc/sys/net/ipv4/ip_forward', 6: '/proc/sys/net/ipv6/conf/all/forwarding' } as const;

/** Pods reach anything beyond the node only if the node forwards; like the bridge plugin's isGateway. */
export function ensureForwarding(families: Iterable<4 | 6>): void {
  for (const family of new Set(families)) {
    const knob = FORWARDING[family];
    if (readFileSync(knob, 'utf8').trim() !== '1') writeNetSysctl(knob, (path) => writeFileSync(path, '1'));
  }
}

export function familyOf(cidr: string): 4 | 6 {
  return parseAddressWithPrefix(cidr).family;
}
