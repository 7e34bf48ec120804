// The data planes, by name: createBackend() turns a validated backend config into a Backend;
// parseBackendConfig() reads flannel's "Backend" object of the network config (keys matched
// case-insensitively, as Go's encoding/json does).
import { WeftError } from '../errors.ts';
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

function invalid(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `Backend: ${message}`);
}

/** flannel's Backend object, e.g. {"Type":"vxlan","VNI":1,"DirectRouting":true}; unknown keys are ignored, as flanneld does. */
export function parseBackendConfig(raw: unknown): BackendConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid('must be an object such as {"Type":"vxlan"}');
  const fields = new Map(Object.entries(raw).map(([k, v]) => [k.toLowerCase(), v]));
  const get = (name: string): unknown => fields.get(name.toLowerCase());
  const type = get('Type');
  if (typeof type !== 'string') throw invalid('"Type" must be a string: "vxlan", "host-gw" or "auto"');
  const kind = type.toLowerCase();
  if (kind === 'host-gw') return { type: 'host-gw' };
  if (kind !== 'vxlan' && kind !== 'auto') {
    throw invalid(`Type "${type}" is not supported by weft (supported: "vxlan", "host-gw", "auto")`);
  }
  const int = (name: string, min: number, max: number, fallback: number): number => {
    const v = get(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw invalid(`"${name}" must be an integer in ${min}-${max}, not ${JSON.stringify(v)}`);
    return v;
  };
  const bool = (name: string): boolean => {
    const v = get(name);
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw invalid(`"${name}" must be true or false, not ${JSON.stringify(v)}`);
    return v;
  };
  if (bool('GBP')) throw invalid('"GBP" (VXLAN Group Based Policy) is not supported by weft');
  const mtu = int('MTU', 0, 65535, 0);
  if (mtu !== 0 && mtu < 118) throw invalid(`"MTU" ${mtu} leaves less than IPv4's minimum of 68 after the 50 bytes of VXLAN overhead`);
  const directRouting = bool('DirectRouting');
  return {
    type: kind,
    vni: int('VNI', 0, 0xffffff, 1),
    port: int('Port', 0, 65535, 0),
    mtu: mtu === 0 ? undefined : mtu,
    learning: bool('Learning'),
    directRouting: kind === 'auto' || directRouting,
  };
}
