// The labs bench:dataplane measures: weft's three backends as `weft lab up --store etcd` builds
// them, mesh mode (`--store mesh`, no etcd), and a flannel-equivalent VXLAN built by hand (docs/flannel-compat.md §3.2) in a lab of its own whose
// nodes run no agent (`--store none`: the same CNI plugin and pod subnets planned by the lab), so
// nothing fights over its routes.
import { randomBytes } from 'node:crypto';
import { labUp, type LabState } from '../../src/lab/index.ts';
import { firstIPv4 } from '../../src/lab/cni-exec.ts';
import { inNs, mustRun, trackLab } from './common.ts';

export type VariantName = 'vxlan' | 'auto' | 'host-gw' | 'flannel' | 'mesh';
export const VARIANTS: readonly VariantName[] = ['vxlan', 'auto', 'host-gw', 'flannel', 'mesh'];
export const LABELS: Record<VariantName, string> = {
  vxlan: 'weft vxlan',
  auto: 'weft auto',
  'host-gw': 'weft host-gw',
  flannel: 'flannel-equivalent VXLAN (by hand)',
  mesh: 'weft mesh (auto, VXLAN on UDP 6784)',
};

export type PairKind = 'same-zone' | 'cross-zone';

export interface Host { ns: string; address: string }

/** Two nodes and one pod on each: the client side first. */
export interface Pair {
  kind: PairKind;
  nodes: [Host, Host];
  pods: [Host, Host];
  /** e.g. n1 → n3 */
  label: string;
}

export interface BuiltLab {
  variant: VariantName;
  name: string;
  state: LabState;
  pairs: Pair[];
  /** Node namespaces, for the investigation tweaks. */
  nodeNs: string[];
}

const NETWORK = '10.16.0.0/16';

function pairOf(state: LabState, kind: PairKind, a: number, b: number): Pair {
  const node = (i: number): Host => {
    const n = state.topology.nodes[i - 1];
    if (!n) throw new Error(`lab ${state.name} has no node n${i}`);
    return { ns: n.ns, address: n.address };
  };
  const pod = (i: number): Host => {
    const p = state.topology.nodes[i - 1]?.pods[0];
    const address = p ? firstIPv4(state.pods[p.name]?.addresses ?? []) : undefined;
    if (!p || !address) throw new Error(`lab ${state.name}: n${i} has no attached pod`);
    return { ns: p.ns, address };
  };
  return { kind, nodes: [node(a), node(b)], pods: [pod(a), pod(b)], label: `n${a} → n${b}` };
}

export async function buildLab(variant: VariantName, id: string, progress: (s: string) => void): Promise<BuiltLab> {
  // Lab names: lower-case letters and digits only.
  const name = `bd${id}${{ vxlan: 'x', auto: 'a', 'host-gw': 'h', flannel: 'f', mesh: 'm' }[variant]}`;
  trackLab(name);
  progress(`lab ${name}: up (${LABELS[variant]})`);
  let state: LabState;
  if (variant === 'flannel') {
    state = await labUp({ name, nodes: 3, podsPerNode: 1, store: 'none' });
    await handBuildFlannel(state);
  } else if (variant === 'mesh') {
    // No etcd: the agents mesh over TCP 6783 and share 10.32.0.0/12; auto = direct on a shared segment.
    state = await labUp({ name, nodes: 3, podsPerNode: 1, store: 'mesh' });
  } else {
    const hostGw = variant === 'host-gw';
    state = await labUp({ name, nodes: hostGw ? 2 : 3, podsPerNode: 1, store: 'etcd', backend: variant, zones: hostGw ? 1 : 2 });
  }
  // Nodes alternate zones a, b, a: n1 and n3 share zone a's segment, n2 is behind the router.
  // host-gw needs one segment, so its lab has n1 and n2, both in zone a.
  const pairs = variant === 'host-gw'
    ? [pairOf(state, 'same-zone', 1, 2)]
    : [pairOf(state, 'same-zone', 1, 3), pairOf(state, 'cross-zone', 1, 2)];
  for (const p of pairs) {
    // Fail early on a broken lab: one ping, pod to pod.
    await mustRun(inNs(p.pods[0].ns, ['ping', '-n', '-c', '2', '-i', '0.2', '-W', '2', p.pods[1].address]), 15_000)
      .catch((e: Error) => { throw new Error(`lab ${name} (${LABELS[variant]}): pod ${p.label} does not answer ping: ${e.message}`); });
  }
  return { variant, name, state, pairs, nodeNs: state.topology.nodes.map((n) => n.ns) };
}

const randomMac = (): string => {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
};

/** The exact flanneld --ip-masq rules (docs/flannel-compat.md §4), as iptables-restore --noflush input. */
export function flannelRules(subnet: string): string {
  const c = (t: string): string => `-m comment --comment "${t}"`;
  return [
    '*nat',
    ':FLANNEL-POSTRTG - [0:0]',
    `-A POSTROUTING ${c('flanneld masq')} -j FLANNEL-POSTRTG`,
    `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c('flanneld masq')} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${subnet} -d ${NETWORK} ${c('flanneld masq')} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${NETWORK} -d ${subnet} ${c('flanneld masq')} -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${subnet} ${c('flanneld masq')} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${NETWORK} ! -d 224.0.0.0/4 ${c('flanneld masq')} -j MASQUERADE --random-fully`,
    `-A FLANNEL-POSTRTG ! -s ${NETWORK} -d ${NETWORK} ${c('flanneld masq')} -j MASQUERADE --random-fully`,
    'COMMIT',
    '*filter',
    ':FLANNEL-FWD - [0:0]',
    `-A FORWARD ${c('flanneld forward')} -j FLANNEL-FWD`,
    `-A FLANNEL-FWD -s ${NETWORK} ${c('flanneld forward')} -j ACCEPT`,
    `-A FLANNEL-FWD -d ${NETWORK} ${c('flanneld forward')} -j ACCEPT`,
    'COMMIT',
    '',
  ].join('\n');
}

/**
 * flanneld's VXLAN data plane, by hand (docs/flannel-compat.md §3.2): flannel.1 (VNI 1, dstport 8472,
 * nolearning, dev eth0, local = the node's address, MTU eth0 − 50), the lease's network
 * address as /32, and per remote node a permanent neighbour, a permanent self FDB entry and
 * `<subnet> via <subnet .0> dev flannel.1 onlink`; plus flanneld's --ip-masq rules, which
 * weft's agents install too.
 */
async function handBuildFlannel(state: LabState): Promise<void> {
  const nodes = state.topology.nodes.map((n) => ({ n, mac: randomMac(), subnet: n.podSubnet ?? '' }));
  for (const { n, mac, subnet } of nodes) {
    if (!/^10\.16\.\d+\.0\/24$/.test(subnet)) throw new Error(`flannel-equivalent: unexpected planned subnet ${subnet} for ${n.name}`);
    const net = subnet.replace('/24', '');
    const lines = [
      `link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev eth0 local ${n.address}`,
      `link set flannel.1 mtu 1450 address ${mac}`,
      `addr add ${net}/32 dev flannel.1`,
      'link set flannel.1 up',
    ];
    const fdb: string[] = [];
    for (const peer of nodes) {
      if (peer.n === n) continue;
      const pnet = peer.subnet.replace('/24', '');
      lines.push(`neigh replace ${pnet} lladdr ${peer.mac} dev flannel.1 nud permanent`);
      fdb.push(`fdb replace ${peer.mac} dev flannel.1 dst ${peer.n.address} self permanent`);
      lines.push(`route replace ${peer.subnet} via ${pnet} dev flannel.1 onlink`);
    }
    // neighbour and FDB before the route, as flanneld orders them.
    const routes = lines.filter((l) => l.startsWith('route '));
    await mustRun(['ip', '-n', n.ns, '-batch', '-'], 30_000, `${lines.filter((l) => !l.startsWith('route ')).join('\n')}\n`);
    await mustRun(inNs(n.ns, ['bridge', '-batch', '-']), 30_000, `${fdb.join('\n')}\n`);
    await mustRun(['ip', '-n', n.ns, '-batch', '-'], 30_000, `${routes.join('\n')}\n`);
    await mustRun(inNs(n.ns, ['iptables-restore', '--noflush']), 30_000, flannelRules(subnet));
  }
}
