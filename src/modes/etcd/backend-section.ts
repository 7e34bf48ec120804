// flannel's "Backend" object of the network config, as the runtime's backend registry reads it.
import type { NetworkConfig } from '../../lease/network-config.ts';

export function backendSection(c: NetworkConfig): Readonly<Record<string, unknown>> {
  const b = c.backend;
  return { Type: b.type, VNI: b.vni, Port: b.port, MTU: b.mtu, GBP: b.gbp, Learning: b.learning, DirectRouting: b.directRouting };
}
