// flannel's network config (net-conf.json, or <prefix>/config in etcd) as the runtime's
// ClusterConfig: shared by the modes that read that format (etcd, kube).
import { WeftError } from '../errors.ts';
import { formatCidr } from '../net/cidr.ts';
import type { ClusterConfig } from '../agent/control-plane.ts';
import type { NetworkConfig } from '../lease/network-config.ts';

/** What cannot change on a running node: the address plan. */
function restartKey(c: NetworkConfig): string {
  const range = (r: NetworkConfig['ipv4']) => r && [formatCidr(r.network), r.subnetLen, formatCidr(r.subnetMin), formatCidr(r.subnetMax)];
  return JSON.stringify({ ipv4: range(c.ipv4), ipv6: range(c.ipv6) });
}

export function clusterConfigOf(c: NetworkConfig): ClusterConfig {
  if (!c.ipv4) {
    throw new WeftError('WEFT_INVALID_CONFIG', 'network config: weft needs an IPv4 "Network" (IPv6-only clusters are not supported yet)');
  }
  return {
    // The Backend section stays raw (Type included): the runtime's backend registry parses it.
    network: formatCidr(c.ipv4.network), backend: c.backend.raw, nftables: c.enableNFTables,
    restartKey: restartKey(c), warnings: c.warnings,
  };
}

