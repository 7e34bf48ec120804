// The vxlan backend's config, from flannel's "Backend" object: VNI (default 1), Port (0 = the
// kernel's 8472), MTU (the underlay MTU to assume; 0 = the underlay's own), Learning,
// DirectRouting, and GBP (refused: weft does not implement VXLAN Group Based Policy).
import { BackendFields, configError, parseWith, type ConfigOrError } from '../config-fields.ts';
import { DEFAULT_VXLAN_PORT, VXLAN_OVERHEAD } from './device.ts';

export interface VxlanConfig {
  /** Default 1. */
  vni: number;
  /** The UDP port; flannel's 0 is the kernel's default, 8472. */
  port: number;
  /** The underlay MTU to assume; undefined = the underlay's own. The device gets 50 bytes less. */
  mtu: number | undefined;
  learning: boolean;
  /** Plain routes to peers on the underlay's own subnet (always true for "auto"). */
  directRouting: boolean;
}

const KEYS = ['VNI', 'Port', 'MTU', 'GBP', 'Learning', 'DirectRouting'] as const;

export function parseVxlanConfig(raw: Readonly<Record<string, unknown>>): ConfigOrError<VxlanConfig> {
  return parseWith(() => {
    const f = new BackendFields(raw, KEYS);
    const vni = f.uint('VNI') ?? 1;
    if (vni > 0xffffff) throw configError(`"Backend.VNI" ${vni} must be at most 16777215 (24 bits)`);
    const port = f.uint('Port') ?? 0;
    if (port > 65535) throw configError(`"Backend.Port" ${port} must be at most 65535`);
    const mtu = f.uint('MTU') ?? 0;
    if (mtu !== 0 && (mtu < 68 || mtu > 65535)) throw configError(`"Backend.MTU" ${mtu} must be between 68 and 65535 (or 0 for the underlay's MTU minus overhead)`);
    if (mtu !== 0 && mtu - VXLAN_OVERHEAD < 68) {
      throw configError(`"Backend.MTU" ${mtu} leaves less than IPv4's minimum of 68 after the ${VXLAN_OVERHEAD} bytes of VXLAN overhead`);
    }
    if (f.bool('GBP', false)) throw configError('"Backend.GBP" (VXLAN Group Based Policy) is not supported by weft');
    const config: VxlanConfig = {
      vni,
      port: port === 0 ? DEFAULT_VXLAN_PORT : port,
      mtu: mtu === 0 ? undefined : mtu,
      learning: f.bool('Learning', false),
      directRouting: f.bool('DirectRouting', false),
    };
    return { config, warnings: f.warnings };
  });
}
