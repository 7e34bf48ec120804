// flannel's CNI plugin saves each container's rendered delegate config as
// <dataDir>/<containerID> and reads it back on DEL (docs/flannel-compat.md §6.1). weft writes the same
// record in flannel form, so a node that switches back to flannel's plugin can still DEL pods
// that weft attached (its delegate, bridge + host-local, finds the same address store).
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { formatCidr } from '../net/cidr.ts';
import type { PluginConfig } from './config.ts';
import type { PodNetworkPlan } from './plan.ts';

export function flannelDelegate(config: PluginConfig, plan: PodNetworkPlan): Record<string, unknown> {
  return {
    cniVersion: config.cniVersion,
    name: config.name,
    type: 'bridge',
    bridge: config.bridge,
    hairpinMode: config.hairpinMode,
    isDefaultGateway: config.isDefaultGateway,
    isGateway: true,
    ipMasq: plan.podMasq,
    mtu: plan.mtu,
    ipam: {
      type: 'host-local',
      dataDir: config.ipamDataDir,
      ranges: plan.rangeSets.map((set) => set.map((r) => ({ subnet: formatCidr(r.subnet) }))),
      routes: plan.networks.map((n) => ({ dst: formatCidr(n) })),
    },
  };
}

export function saveFlannelDelegate(config: PluginConfig, containerId: string, plan: PodNetworkPlan): void {
  const dir = config.flannelStateDir as string;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${containerId}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(flannelDelegate(config, plan)));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, containerId));
}

export function forgetFlannelDelegate(dir: string, containerId: string): void {
  rmSync(join(dir, containerId), { force: true });
}

/** Removes the records of containers the runtime no longer knows (CNI GC). */
export function gcFlannelDelegates(dir: string, valid: ReadonlySet<string>): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (!name.startsWith('.') && !valid.has(name)) rmSync(join(dir, name), { force: true });
}
