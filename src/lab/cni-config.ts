// What the lab writes for each node: flannel's subnet.env and the node's CNI conflist, and
// the per-plugin stdin a runtime derives from that conflist (docs/cni-spec-notes.md §1.5).
import type { NodeSubnet } from './topology.ts';
import { CLUSTER_NETWORK, POD_MTU } from './topology.ts';
import type { NodeFiles } from './paths.ts';
import { parseAddressWithPrefix, parseCidr } from '../net/cidr.ts';
import type { SubnetEnvInput } from '../subnet/subnet-env.ts';

export type CniKind = 'weft' | 'bridge';
export const CNI_KINDS: readonly CniKind[] = ['weft', 'bridge'];

export const CNI_VERSION = '1.0.0';
export const NETWORK_NAME = 'weft';
export const POD_IFNAME = 'eth0';
export const POD_BRIDGE = 'cni0';

/**
 * What the lab puts in a node's subnet.env when no agent leases its subnet (store none), for
 * src/subnet's writer, the project's only one: FLANNEL_SUBNET is the .1 address, as flanneld writes it.
 */
export function nodeSubnetEnv(node: NodeSubnet): SubnetEnvInput {
  const prefix = node.podSubnet.split('/')[1];
  return { network: parseCidr(CLUSTER_NETWORK), subnet: parseAddressWithPrefix(`${node.podGateway}/${prefix}`), mtu: POD_MTU, ipMasq: true };
}

export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

/** The weft plugin's conflist: it names only the node's files (the subnet comes from subnet.env, or from the agent). */
export function weftConflist(files: NodeFiles): Conflist {
  const plugin = { type: 'weft', subnetFile: files.subnetEnv, dataDir: files.cniDataDir, bridge: POD_BRIDGE, hairpinMode: true };
  return { cniVersion: CNI_VERSION, name: NETWORK_NAME, plugins: [plugin] };
}

export function calcConflist(kind: CniKind, node: NodeSubnet, files: NodeFiles): Conflist {
  if (kind === 'weft') return weftConflist(files);
  const plugin: Record<string, unknown> = {
    type: 'bridge',
    bridge: POD_BRIDGE,
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: true,
    mtu: POD_MTU,
    ipam: {
      type: 'host-local',
      ranges: [[{ subnet: node.podSubnet }]],
      dataDir: files.cniDataDir,
      routes: [{ dst: CLUSTER_NETWORK }],
    },
  };
  return { cniVersion: CNI_VERSION, name: NETWORK_NAME, plugins: [plugin] };
}

/**
 * The stdin for one plugin of a list, as libcni builds it: the plugin's own object plus the
 * list's cniVersion and name, and on DEL the cached ADD result as prevResult (libcni does
 * that for versions >= 0.4.0). No capabilities are declared, so no runtimeConfig.
 */
export function pluginRequestConfig(list: Conflist, index = 0, prevResult?: unknown): Record<string, unknown> {
  const plugin = list.plugins[index];
  if (plugin === undefined) throw new RangeError(`conflist ${list.name} has no plugin ${index}`);
  const config: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  if (prevResult !== undefined) config.prevResult = prevResult;
  return config;
}
