// The vxlan backend's BackendData, the only place that knows its fields (flannel's exact
// names): {"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}. What this node publishes, and how a peer's
// announcement is decoded. A peer's data is untrusted: anything but a unicast, non-zero MAC and
// a 24-bit VNI is refused with a reason. Keys are matched case-insensitively, as flanneld (Go's
// encoding/json without tags) reads them; a missing VNI (no evidence of a mismatch) is accepted.
import type { TunnelData } from '../plan.ts';
import { usableVtepMac } from './device.ts';

export interface VxlanLeaseData {
  VNI: number;
  VtepMAC: string;
}

/** What this node publishes as BackendData. */
export function vxlanLeaseData(vni: number, vtepMac: string): VxlanLeaseData {
  return { VNI: vni, VtepMAC: vtepMac.toLowerCase() };
}

function field(obj: Record<string, unknown>, name: string): unknown {
  let found: unknown;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) found = v;
  return found;
}

/** A peer's BackendData as the tunnel needs it, or why it cannot be used. */
export function decodeVxlanLeaseData(data: unknown): TunnelData | string {
  const obj = typeof data === 'object' && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
  const rawMac = field(obj, 'VtepMAC');
  const mac = usableVtepMac(rawMac);
  if (!mac) return `the peer's lease has no usable BackendData.VtepMAC (${JSON.stringify(rawMac ?? null)})`;
  const vni = field(obj, 'VNI');
  if (vni === undefined || vni === null) return { mac, vni: undefined };
  if (typeof vni !== 'number' || !Number.isInteger(vni) || vni < 0 || vni > 0xffffff) {
    return `the peer's BackendData.VNI ${JSON.stringify(vni)} is not a 24-bit number`;
  }
  return { mac, vni };
}
