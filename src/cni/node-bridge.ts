// The node side of the pod network: the bridge (default cni0) with the subnet's gateway
// address, and IP forwarding. Idempotent: every ADD calls ensureNodeBridge, which costs one
// netlink round trip when the bridge is already right.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { WeftError } from '../errors.ts';
import { formatMac, type Rtnetlink } from '../netlink/index.ts';
import { cidrContains, maskToNetwork, parseAddressWithPrefix, type Cidr } from '../net/cidr.ts';
import type { Logger } from '../log/logger.ts';

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
  /** "10.16.1.1/24" per family. */
  gateways: string[];
  /** Cluster networks: a stale gateway from another subnet of these is replaced, not an error. */
  networks: Cidr[];
  log: Logger;
}

export function ensureNodeBridge(nl: Rtnetlink, o: EnsureBridgeOptions): NodeBridge {
  // A fixed MAC, so the bridge does not follow its lowest port's MAC around (docs/cni-spec-notes.md §2.1).
  const link = nl.ensureBridge({ name: o.name, mtu: o.mtu, mac: randomMac(), up: true });
  const present = nl.listAddresses({ link: link.index });
  const missing = o.gateways.filter((gw) => !present.some((a) => a.cidr === gw));
  for (const gw of missing) {
    const wanted = parseAddressWithPrefix(gw);
    for (const old of present.filter((a) => a.family === wanted.family && a.scope === 0)) {
      const oldNet = maskToNetwork(parseAddressWithPrefix(old.cidr));
      const stale = o.networks.some((n) => n.family === oldNet.family && cidrContains(n, { family: oldNet.family, value: oldNet.network }));
      if (!stale) {
        throw new WeftError('WEFT_NETLINK', `bridge ${o.name} already has the address ${old.cidr}, which is outside the cluster network; ` +
          `remove it (ip addr del ${old.cidr} dev ${o.name}) or choose another bridge name`);
      }
      // The node's subnet changed (a new lease): pods on the old subnet cannot work anyway.
      o.log.warn({ bridge: o.name, old: old.cidr, new: gw }, 'replacing the bridge address of a previous node subnet');
      nl.deleteAddress(link.index, old.cidr);
    }
    nl.addAddress(link.index, gw, { noDad: true });
  }
  if (!link.up) nl.setLinkUp(link.index);
  return { index: link.index, name: link.name, mac: link.mac ?? '' };
}

const FORWARDING = { 4: '/proc/sys/net/ipv4/ip_forward', 6: '/proc/sys/net/ipv6/conf/all/forwarding' } as const;

/** Pods reach anything beyond the node only if the node forwards; like the bridge plugin's isGateway. */
export function ensureForwarding(families: Iterable<4 | 6>): void {
  for (const family of new Set(families)) {
    const knob = FORWARDING[family];
    if (readFileSync(knob, 'utf8').trim() !== '1') writeFileSync(knob, '1');
  }
}

export function familyOf(cidr: string): 4 | 6 {
  return parseAddressWithPrefix(cidr).family;
}
