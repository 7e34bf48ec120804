// flanneld's masquerade and forward rules (flannel ≥ 0.20 layout), generated as data.
// Chain names, comments and rule text are flannel's on purpose: a node that switches from
// flanneld to weft must end up with the same rules, not a second copy beside them.
// Reference: docs/flannel-compat.md §4 (pkg/trafficmngr in flannel).
import { formatCidr, networkOf, parseCidr, type Cidr, type IpFamily } from './cidr.ts';
import { WeftError } from '../errors.ts';
import type { FirewallRules, IptablesChain, IptablesJump, IptablesRuleset, IptablesSpec, NftChain, NftMatch, NftRule, NftTable } from './model.ts';

export const FLANNEL_POSTRTG_CHAIN = 'FLANNEL-POSTRTG';
export const FLANNEL_FWD_CHAIN = 'FLANNEL-FWD';
export const FLANNEL_MASQ_COMMENT = 'flanneld masq';
export const FLANNEL_FWD_COMMENT = 'flanneld forward';
/** kube-proxy marks traffic it will masquerade itself; NATing it twice breaks some kernels. */
export const KUBE_PROXY_MARK = '0x4000';
export const NFT_TABLE = { ipv4: 'flannel-ipv4', ipv6: 'flannel-ipv6' } as const;
export const MULTICAST = { ipv4: '224.0.0.0/4', ipv6: 'ff00::/8' } as const;

export interface FlannelRulesOptions {
  /** FLANNEL_NETWORK (N). Give it with `subnet`, or leave both out for an IPv6-only cluster. */
  network?: string;
  /** This node's lease (P); host bits are masked off as flannel does (10.244.1.1/24 → 10.244.1.0/24). */
  subnet?: string;
  ipv6Network?: string;
  ipv6Subnet?: string;
  /** flanneld --ip-masq / FLANNEL_IPMASQ=true. Default true. */
  ipMasq?: boolean;
  /** flanneld --iptables-forward-rules. Default true. */
  forwardRules?: boolean;
  /** Append --random-fully / fully-random. Default true; pass the backend's supportsRandomFully(). */
  randomFully?: boolean;
}

interface FamilyNets {
  family: IpFamily;
  n: string;
  p: string;
}

function familyNets(family: IpFamily, network: string | undefined, subnet: string | undefined): FamilyNets | undefined {
  const label = family === 'ipv4' ? 'network/subnet' : 'ipv6Network/ipv6Subnet';
  if (network === undefined && subnet === undefined) return undefined;
  if (network === undefined || subnet === undefined) {
    throw new WeftError('WEFT_INVALID_CONFIG', `firewall rules need both ${label} or neither (got ${network ?? 'none'} and ${subnet ?? 'none'})`);
  }
  const parsed: Cidr[] = [parseCidr(network), parseCidr(subnet)];
  for (const [i, c] of parsed.entries()) {
    if (c.family !== family) {
      throw new WeftError('WEFT_INVALID_CONFIG', `${label.split('/')[i]} ${[network, subnet][i]} is not an ${family} CIDR`);
    }
  }
  const [n, p] = parsed.map((c) => formatCidr(networkOf(c))) as [string, string];
  return { family, n, p };
}

function iptablesFamily({ family, n, p }: FamilyNets, o: FlannelRulesOptions): IptablesRuleset {
  const masq = ['-m', 'comment', '--comment', FLANNEL_MASQ_COMMENT];
  const fwd = ['-m', 'comment', '--comment', FLANNEL_FWD_COMMENT];
  const masquerade = o.randomFully === false ? ['-j', 'MASQUERADE'] : ['-j', 'MASQUERADE', '--random-fully'];
  const chains: IptablesChain[] = [];
  const jumps: IptablesJump[] = [];
  if (o.ipMasq !== false) {
    const rules: IptablesSpec[] = [
      ['-m', 'mark', '--mark', `${KUBE_PROXY_MARK}/${KUBE_PROXY_MARK}`, ...masq, '-j', 'RETURN'],
      ['-s', p, '-d', n, ...masq, '-j', 'RETURN'], // pod → cluster: never NAT
      ['-s', n, '-d', p, ...masq, '-j', 'RETURN'], // cluster → local pods: never NAT
      ['!', '-s', n, '-d', p, ...masq, '-j', 'RETURN'], // outside → local pods: keep the client IP
      ['-s', n, '!', '-d', MULTICAST[family], ...masq, ...masquerade], // pods → outside
      ['!', '-s', n, '-d', n, ...masq, ...masquerade], // host/other → remote pods
    ];
    chains.push({ table: 'nat', name: FLANNEL_POSTRTG_CHAIN, rules });
    jumps.push({ table: 'nat', chain: 'POSTROUTING', spec: [...masq, '-j', FLANNEL_POSTRTG_CHAIN] });
  }
  if (o.forwardRules !== false) {
    chains.push({ table: 'filter', name: FLANNEL_FWD_CHAIN, rules: [['-s', n, ...fwd, '-j', 'ACCEPT'], ['-d', n, ...fwd, '-j', 'ACCEPT']] });
    jumps.push({ table: 'filter', chain: 'FORWARD', spec: [...fwd, '-j', FLANNEL_FWD_CHAIN] });
  }
  return { family, chains, jumps };
}

function nftFamily({ family, n, p }: FamilyNets, o: FlannelRulesOptions): NftTable {
  const m = (key: NftMatch['key'], value: string, op: NftMatch['op'] = '=='): NftMatch => ({ key, op, value });
  const ret = (...matches: NftMatch[]): NftRule => ({ matches, verdict: 'return' });
  const masq = (...matches: NftMatch[]): NftRule => ({ matches, verdict: 'masquerade', fullyRandom: o.randomFully !== false });
  const chains: NftChain[] = [];
  if (o.ipMasq !== false) {
    chains.push({
      name: 'postrtg', type: 'nat', hook: 'postrouting', priority: 'srcnat',
      comment: 'chain to manage traffic masquerading by flannel',
      // flannel's nftables mode differs from its iptables mode in two places, kept for
      // compatibility: the mark match is exact (not masked), and rule 4 is "saddr != P".
      rules: [
        ret(m('mark', KUBE_PROXY_MARK)),
        ret(m('saddr', p), m('daddr', n)),
        ret(m('saddr', n), m('daddr', p)),
        ret(m('saddr', p, '!='), m('daddr', n)),
        masq(m('saddr', n), m('daddr', MULTICAST[family], '!=')),
        masq(m('saddr', n, '!='), m('daddr', n)),
      ],
    });
  }
  if (o.forwardRules !== false) {
    chains.push({
      name: 'forward', type: 'filter', hook: 'forward', priority: 'filter',
      comment: 'chain to accept flannel traffic',
      rules: [{ matches: [m('saddr', n)], verdict: 'accept' }, { matches: [m('daddr', n)], verdict: 'accept' }],
    });
  }
  return { family, name: NFT_TABLE[family], comment: `rules for ${NFT_TABLE[family]}`, chains };
}

/** flanneld's full rule set for this node, in both iptables and nftables form. */
export function calcFlannelRules(o: FlannelRulesOptions): FirewallRules {
  const families = [familyNets('ipv4', o.network, o.subnet), familyNets('ipv6', o.ipv6Network, o.ipv6Subnet)]
    .filter((f): f is FamilyNets => f !== undefined);
  if (families.length === 0) {
    throw new WeftError('WEFT_INVALID_CONFIG', 'firewall rules need a network and subnet (IPv4 and/or IPv6); none were given');
  }
  return {
    iptables: families.map((f) => iptablesFamily(f, o)).filter((r) => r.chains.length > 0),
    nftables: families.map((f) => nftFamily(f, o)).filter((t) => t.chains.length > 0),
  };
}
