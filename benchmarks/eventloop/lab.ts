// The event-loop benchmark's scratch node: one network namespace with a dummy underlay
// (172.20.0.1/16 on a veth "eth0", so every peer's PublicIP is directly connected and host-gw can
// route them all), and N synthetic peers in 10.0.0.0/8, one /24 each. Nothing outside the
// namespace is touched; remove() deletes it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Peer } from '../../src/dataplane/index.ts';

export const NETWORK = '10.0.0.0/8';
/** This node's own lease subnet: no peer has it. */
export const OWN_SUBNET = '10.0.0.0/24';
export const UNDERLAY_IP = '172.20.0.1';

export interface ScratchNode {
  ns: string;
  path: string;
  remove(): void;
}

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** An empty namespace named `<prefix>-<random>` with lo up (a pod's). */
export function scratchNamespace(prefix: string): ScratchNode {
  const ns = `${prefix}-${randomBytes(4).toString('hex')}`;
  ip(['netns', 'add', ns]);
  const remove = (): void => {
    try {
      ip(['netns', 'delete', ns]);
    } catch {
      // already gone
    }
  };
  try {
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    remove();
    throw e;
  }
  return { ns, path: `/run/netns/${ns}`, remove };
}

/** A node namespace: scratchNamespace plus the underlay eth0. */
export function scratchNode(prefix: string): ScratchNode {
  const node = scratchNamespace(prefix);
  const { ns, remove } = node;
  try {
    // A veth pair with both ends inside (this kernel may have no dummy driver): eth0 is the underlay.
    ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'wire0']);
    ip(['-n', ns, 'addr', 'add', `${UNDERLAY_IP}/16`, 'dev', 'eth0']);
    ip(['-n', ns, 'link', 'set', 'wire0', 'up']);
    ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
  } catch (e) {
    remove();
    throw e;
  }
  return node;
}

/** Peer i (0-based) of a synthetic cluster: subnet 10.a.b.0/24, PublicIP 172.20.c.d, a unique VtepMAC. */
export function syntheticPeer(i: number, backendType: 'vxlan' | 'host-gw'): Peer {
  const n = i + 1; // 10.0.0.0/24 is ours
  const host = i + 2; // 172.20.0.1 is ours
  const dst = `10.${(n >> 8) & 255}.${n & 255}.0/24`;
  const publicIp = `172.20.${(host >> 8) & 255}.${host & 255}`;
  const mac = `0a:00:00:${((i >> 16) & 255).toString(16).padStart(2, '0')}:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
  return {
    id: `peer-${i}`,
    subnets: [dst],
    publicIp,
    backendType,
    backendData: backendType === 'vxlan' ? { VNI: 1, VtepMAC: mac } : undefined,
  };
}

export function syntheticPeers(count: number, backendType: 'vxlan' | 'host-gw'): Peer[] {
  if (count > 65_000) throw new Error(`at most 65000 synthetic peers fit 10.0.0.0/8 and 172.20.0.0/16 (asked for ${count})`);
  return Array.from({ length: count }, (_, i) => syntheticPeer(i, backendType));
}
