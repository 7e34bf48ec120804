// The vxlan backend's registry entry: config, factory, device removal.
import type { Logger } from '../../log/logger.ts';
import type { Rtnetlink } from '../../netlink/index.ts';
import type { BackendModule } from '../backend.ts';
import { VxlanBackend } from './backend.ts';
import { parseVxlanConfig, type VxlanConfig } from './config.ts';

export { VxlanBackend, type VxlanOptions } from './backend.ts';
export { parseVxlanConfig, type VxlanConfig } from './config.ts';

/** flannel.<VNI>: the vxlan devices weft (and flanneld) make. */
export const VXLAN_DEVICE = /^flannel\.\d+$/;

/** Deletes every flannel.<VNI> vxlan device (weft's and flanneld's: the name is theirs alone). */
export function removeVxlanDevices(nl: Rtnetlink, log: Logger, keep: ReadonlySet<string> = new Set()): string[] {
  const removed: string[] = [];
  for (const link of nl.listLinks()) {
    if (link.kind !== 'vxlan' || !VXLAN_DEVICE.test(link.name) || keep.has(link.name)) continue;
    nl.deleteLink(link.index);
    log.info({ device: link.name }, `removed ${link.name}`);
    removed.push(link.name);
  }
  return removed;
}

export const vxlan: BackendModule<VxlanConfig> = {
  parseConfig: parseVxlanConfig,
  create: (nl, node, config, deps) => new VxlanBackend(nl, node, { ...config, network: deps.network, ...(deps.log ? { log: deps.log } : {}) }, 'vxlan'),
  removeDevices: (nl, log, keep) => removeVxlanDevices(nl, log, keep),
  devices: (config) => [`flannel.${config.vni}`],
};
