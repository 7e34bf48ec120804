// The network config's Backend (src/lease/network-config.ts, flannel's field meanings) as the
// data plane takes it (src/dataplane). Kept apart so neither side knows the other.
import { WeftError } from '../errors.ts';
import type { BackendConfig as LeaseBackendConfig } from '../lease/network-config.ts';
import type { BackendConfig } from '../dataplane/index.ts';

export function dataplaneBackendConfig(b: LeaseBackendConfig): BackendConfig {
  if (b.gbp) throw new WeftError('WEFT_INVALID_CONFIG', 'network config: "Backend.GBP" (VXLAN Group Based Policy) is not supported by weft');
  if (b.type === 'host-gw') return { type: 'host-gw' };
  if (b.mtu !== undefined && b.mtu - 50 < 68) {
    throw new WeftError('WEFT_INVALID_CONFIG', `network config: "Backend.MTU" ${b.mtu} leaves less than IPv4's minimum of 68 after the 50 bytes of VXLAN overhead`);
  }
  return {
    type: b.type,
    vni: b.vni,
    port: b.port,
    // flannel's Backend.MTU is the underlay MTU to assume; the device gets 50 bytes less.
    mtu: b.mtu,
    learning: b.learning,
    directRouting: b.type === 'auto' || b.directRouting,
  };
}
