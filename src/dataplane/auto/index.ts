// weft's "auto" backend: the vxlan device (so every peer is reachable) plus plain routes to
// the peers on the underlay's own subnet, i.e. vxlan with DirectRouting always on. Its lease
// says BackendType "vxlan", so flanneld vxlan peers interoperate with it.
import type { BackendModule } from '../backend.ts';
import { parseVxlanConfig, removeVxlanDevices, VxlanBackend, type VxlanConfig } from '../vxlan/index.ts';

export const auto: BackendModule<VxlanConfig> = {
  parseConfig: (raw) => {
    const parsed = parseVxlanConfig(raw);
    return parsed.ok ? { ...parsed, config: { ...parsed.config, directRouting: true } } : parsed;
  },
  create: (nl, node, config, deps) => new VxlanBackend(nl, node, { ...config, directRouting: true, network: deps.network, ...(deps.log ? { log: deps.log } : {}) }, 'auto'),
  removeDevices: (nl, log, keep) => removeVxlanDevices(nl, log, keep),
  devices: (config) => [`flannel.${config.vni}`],
};
