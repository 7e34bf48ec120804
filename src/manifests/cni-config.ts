// The two files of the ConfigMap: net-conf.json (flannel's network config, read by the kube
// store; etcd mode keeps it in etcd) and cni-conf.json (the conflist `weft install-cni` puts
// on every node).
import type { ManifestOptions } from './options.ts';

/** Sorts before 10-aws.conflist (the VPC CNI's), 10-flannel.conflist and 10-weave.conflist: runtimes use the first file. */
export const CONFLIST_NAME = '05-weft.conflist';
export const CNI_VERSION = '1.0.0';
/**
 * kube-flannel's network name: host-local keeps a network's addresses under
 * <dataDir>/<name>, so a node switched from flannel in place shares its pods' records and no
 * address flannel handed out is given again.
 */
export const NETWORK_NAME = 'cbr0';
/** Where the agent writes subnet.env (flanneld's path: flannel tooling finds it there). */
export const SUBNET_FILE = '/run/flannel/subnet.env';
/** host-local's store layout, so a node that ran flannel keeps its pods' addresses. */
export const IPAM_DATA_DIR = '/var/lib/cni/networks';

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

/** flannel's net-conf.json: {"Network": ..., "Backend": {"Type": ...}}. */
export function netConf(o: Pick<ManifestOptions, 'network' | 'backend'>): Record<string, unknown> {
  return { Network: o.network, Backend: { Type: o.backend } };
}

/**
 * weft's plugin, then portmap for hostPort (as kube-flannel chains it). Every path is written
 * out, not left to defaults, so the file says where the node's state lives.
 */
export function cniConflist(): Conflist {
  return {
    cniVersion: CNI_VERSION,
    name: NETWORK_NAME,
    plugins: [
      { type: 'weft', subnetFile: SUBNET_FILE, dataDir: IPAM_DATA_DIR, bridge: 'cni0', hairpinMode: true, isDefaultGateway: true },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** The plugin binaries a node needs for this conflist: its types, and loopback (containerd's CRI runs it for every pod). */
export function pluginsNeeded(list: Conflist): string[] {
  const types = list.plugins.map((p) => String(p.type)).filter((t) => t !== 'weft');
  return [...new Set([...types, 'loopback'])];
}

/** JSON as the ConfigMap holds it: indented, one trailing newline (a YAML block literal). */
export function jsonFile(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
