// The host-gw backend's registry entry. It has no settings and no device.
import { BackendFields, parseWith } from '../config-fields.ts';
import type { BackendModule } from '../backend.ts';
import { HostGwBackend } from './backend.ts';

export { HostGwBackend, type HostGwOptions } from './backend.ts';

export type HostGwConfig = Record<string, never>;

export const hostgw: BackendModule<HostGwConfig> = {
  parseConfig: (raw) => parseWith(() => ({ config: {}, warnings: new BackendFields(raw, []).warnings })),
  create: (nl, node, _config, deps) => new HostGwBackend(nl, node, { network: deps.network }),
  removeDevices: () => [],
  devices: () => [],
};
