// The per-container masquerade chain of the CNI bridge plugin (its `ipMasq: true`), which
// flannel's CNI plugin turns on when flanneld does not masquerade (FLANNEL_IPMASQ=false).
// Names and rule text match bridge v1.1.1 (docs/cni-spec-notes.md §2.1), so that pods created by
// the upstream bridge plugin are torn down correctly by weft and vice versa.
import { createHash } from 'node:crypto';
import { formatCidr, hostOf, networkOf, parseCidr, type IpFamily } from './cidr.ts';
import { MULTICAST } from './rules.ts';
import type { FirewallRules, IptablesRuleset, IptablesSpec } from './model.ts';

/** iptables chain names are at most 28 characters; the bridge plugin uses all of them. */
const MAX_CHAIN_LENGTH = 28;

/** "CNI-" + hex(sha512(network + containerId)), cut to 28 characters. */
export function containerMasqChainName(network: string, containerId: string): string {
  const hash = createHash('sha512').update(network + containerId).digest('hex');
  return `CNI-${hash}`.slice(0, MAX_CHAIN_LENGTH);
}

export function containerMasqComment(network: string, containerId: string): string {
  return `name: "${network}" id: "${containerId}"`;
}

export interface ContainerMasqOptions {
  /** The CNI network name (netconf `name`, e.g. "cbr0"). */
  network: string;
  containerId: string;
  /** The container's addresses with their prefix ("10.244.1.5/24"), as IPAM returned them. */
  ips: readonly string[];
}

/**
 * The rules the bridge plugin installs, per family: in the chain, for each address in turn,
 * "-d <subnet> ACCEPT" then "! -d <multicast> MASQUERADE", each appended only if not already
 * there (so two IPv4 addresses give ACCEPT, MASQUERADE, ACCEPT); in POSTROUTING, one
 * "-s <ip>/32 -j <chain>" per address. Every rule carries the name/id comment.
 */
export function calcContainerMasqRules(o: ContainerMasqOptions): FirewallRules {
  const chain = containerMasqChainName(o.network, o.containerId);
  const comment = ['-m', 'comment', '--comment', containerMasqComment(o.network, o.containerId)];
  const byFamily = new Map<IpFamily, { rules: IptablesSpec[]; jumps: IptablesSpec[] }>();
  const pushUnique = (list: IptablesSpec[], spec: IptablesSpec): void => {
    if (!list.some((s) => s.join('\0') === spec.join('\0'))) list.push(spec);
  };
  for (const text of o.ips) {
    const ip = parseCidr(text);
    const f = byFamily.get(ip.family) ?? { rules: [], jumps: [] };
    byFamily.set(ip.family, f);
    pushUnique(f.rules, ['-d', formatCidr(networkOf(ip)), ...comment, '-j', 'ACCEPT']);
    pushUnique(f.rules, ['!', '-d', MULTICAST[ip.family], ...comment, '-j', 'MASQUERADE']);
    pushUnique(f.jumps, ['-s', formatCidr(hostOf(ip)), ...comment, '-j', chain]);
  }
  const iptables: IptablesRuleset[] = [...byFamily].map(([family, f]) => ({
    family,
    chains: [{ table: 'nat', name: chain, rules: f.rules }],
    jumps: f.jumps.map((spec) => ({ table: 'nat', chain: 'POSTROUTING', spec })),
  }));
  return { iptables, nftables: [] };
}

/**
 * What teardown needs when the container's addresses are no longer known (the interface is
 * gone): the chain in both families. remove() also deletes every rule that jumps to a chain
 * it removes, so the POSTROUTING jumps go too.
 */
export function calcContainerMasqTeardown(network: string, containerId: string): FirewallRules {
  const name = containerMasqChainName(network, containerId);
  const families: IpFamily[] = ['ipv4', 'ipv6'];
  return { iptables: families.map((family) => ({ family, chains: [{ table: 'nat', name, rules: [] }], jumps: [] })), nftables: [] };
}
