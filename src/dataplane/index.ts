// The data planes, by name: createBackend() turns a validated backend config into a Backend.
// (flannel's "Backend" JSON is read by src/lease/network-config.ts; the agent maps it here.)
import type { Logger } from '../log/logger.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import type { Backend, LocalNode } from './backend.ts';
import { HostGwBackend } from './hostgw/backend.ts';
import { VxlanBackend } from './vxlan/backend.ts';

export type * from './backend.ts';
export { RTPROT_WEFT } from './plan.ts';
export { HostGwBackend } from './hostgw/backend.ts';
export { VxlanBackend, type VxlanOptions } from './vxlan/backend.ts';

export interface VxlanConfig {
  type: 'vxlan' | 'auto';
  /** Default 1. */
  vni: number;
  /** 0 = the kernel's default, 8472. */
  port: number;
  /** The underlay MTU to assume; undefined = the underlay's own. */
  mtu: number | undefined;
  learning: boolean;
  /** Always true for "auto". */
  directRouting: boolean;
}

export type BackendConfig = VxlanConfig | { type: 'host-gw' };

export interface BackendDeps {
  /** The cluster Network (flannel's "Network"), to adopt flanneld's routes on the underlay. */
  network?: string;
  log?: Logger;
}

export function createBackend(nl: Rtnetlink, node: LocalNode, config: BackendConfig, deps: BackendDeps = {}): Backend {
  if (config.type === 'host-gw') return new HostGwBackend(nl, node, { network: deps.network });
  return new VxlanBackend(nl, node, {
    vni: config.vni, port: config.port, mtu: config.mtu, learning: config.learning,
    directRouting: config.directRouting, network: deps.network, log: deps.log,
  }, config.type);
}
