// flannel.<VNI>: create it, or adopt an existing one when it is compatible, as flanneld does,
// so that a restart (of weft, or a switch from flanneld) keeps the device, its MAC and every
// entry on it. The decisions are pure (vxlanIncompatibility, chooseVtepMac); ensureVxlanDevice
// applies them.
import { randomBytes } from 'node:crypto';
import { WeftError } from '../../errors.ts';
import type { Logger } from '../../log/logger.ts';
import type { Link, Rtnetlink } from '../../netlink/index.ts';
import { normalizeMac } from '../plan.ts';

/** The kernel's default VXLAN port on Linux (flannel's Port 0); IANA's is 4789. */
export const DEFAULT_VXLAN_PORT = 8472;
/** VXLAN over IPv4: outer IP 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 (flannel's encapOverhead). */
export const VXLAN_OVERHEAD = 50;

export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  /** Tunnel source: the node's PublicIP. */
  local: string;
  underlayIndex: number;
  port: number;
  mtu: number;
  learning: boolean;
}

/** Why an existing link cannot serve as our device, or undefined when it can (flannel's rule, plus learning). */
export function vxlanIncompatibility(link: Link, want: VxlanDeviceSpec): string | undefined {
  if (link.kind !== 'vxlan' || !link.vxlan) return `it is ${link.kind ? `a ${link.kind}` : 'a non-vxlan'} device`;
  const v = link.vxlan;
  if (v.vni !== want.vni) return `its VNI is ${v.vni}, not ${want.vni}`;
  if (v.local !== want.local) return `its local address is ${v.local ?? 'unset'}, not ${want.local}`;
  const port = v.port ?? DEFAULT_VXLAN_PORT;
  if (port !== want.port) return `its UDP port is ${port}, not ${want.port}`;
  // flanneld compares the underlay only when the device has one; so do we.
  if (v.underlay !== undefined && v.underlay !== want.underlayIndex) return `its underlay is link #${v.underlay}, not #${want.underlayIndex}`;
  if ((v.learning ?? false) !== want.learning) return `learning is ${v.learning ? 'on' : 'off'}, not ${want.learning ? 'on' : 'off'}`;
  return undefined;
}

/** A random locally administered unicast MAC (first octet xxxxxx10), as flanneld makes. */
export function randomVtepMac(random: (n: number) => Buffer = randomBytes): string {
  const b = random(6);
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A unicast, non-zero MAC (a VTEP MAC must be one), or undefined. */
export function usableVtepMac(text: unknown): string | undefined {
  const mac = normalizeMac(text);
  if (!mac || mac === '00:00:00:00:00:00') return undefined;
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 ? mac : undefined;
}

/** BackendData.VtepMAC of the previous lease, when it is a usable MAC. */
export function previousVtepMac(previousData: unknown): string | undefined {
  if (typeof previousData !== 'object' || previousData === null) return undefined;
  return usableVtepMac((previousData as Record<string, unknown>).VtepMAC);
}

/** The MAC for a new device: the one we had before (remembered, or the previous lease's), else random. */
export function chooseVtepMac(remembered: string | undefined, previousData: unknown, random?: (n: number) => Buffer): string {
  return remembered ?? previousVtepMac(previousData) ?? randomVtepMac(random);
}

export interface EnsuredDevice {
  link: Link;
  changes: number;
}

/**
 * Our device, created or adopted and up with the right MTU. An incompatible link of that name is
 * deleted (and the reason logged) and recreated with `mac`. An adopted device keeps its own MAC
 * (at startup: that MAC then goes into the lease), unless `enforceMac` (later, when the lease
 * already announces `mac`): then a MAC changed behind our back is set back.
 */
export function ensureVxlanDevice(nl: Rtnetlink, spec: VxlanDeviceSpec, mac: string, log: Logger, enforceMac = false): EnsuredDevice {
  let changes = 0;
  let link = nl.getLink(spec.name);
  if (link) {
    const why = vxlanIncompatibility(link, spec);
    if (why) {
      log.warn({ device: spec.name, reason: why }, `deleting ${spec.name} to recreate it: ${why}`);
      nl.deleteLink(link.index);
      changes++;
      link = null;
    }
  }
  if (!link) {
    nl.createVxlan({
      name: spec.name, vni: spec.vni, local: spec.local, underlay: spec.underlayIndex, port: spec.port,
      learning: spec.learning, mtu: spec.mtu, mac, up: true,
    });
    changes++;
    link = nl.getLink(spec.name);
    if (!link) throw new WeftError('WEFT_NETLINK', `create ${spec.name}: the device vanished right after creation`);
    log.info({ device: spec.name, vni: spec.vni, mac, mtu: spec.mtu }, `created ${spec.name}`);
    // udev / systemd-networkd may give a new device a MAC of their own choosing (flannel #1795).
    if (link.mac !== mac) {
      nl.setMac(link.index, mac);
      changes++;
      link = { ...link, mac };
    }
    return { link, changes };
  }
  if (enforceMac && link.mac !== mac) {
    log.warn({ device: spec.name, from: link.mac, to: mac }, `the MAC of ${spec.name} changed; setting it back to the one our lease announces`);
    nl.setMac(link.index, mac);
    changes++;
    link = { ...link, mac };
  }
  if (link.mtu !== spec.mtu) {
    log.info({ device: spec.name, from: link.mtu, to: spec.mtu }, `setting the MTU of ${spec.name}`);
    nl.setMtu(link.index, spec.mtu);
    changes++;
    link = { ...link, mtu: spec.mtu };
  }
  if (!link.up) {
    nl.setLinkUp(link.index);
    changes++;
    link = { ...link, up: true };
  }
  return { link, changes };
}
