// The labs bench:dataplane measures: weft's three backends as `weft lab up --store etcd` builds
// them, mesh mode (`--store mesh`, no etcd), routed pod links with and without the tc-eBPF fast
// path (`--pod-link routed --fast-path none|ebpf`) on the direct (host-gw) and the VXLAN path, and
// a flannel-equivalent VXLAN built by hand (docs/flannel-compat.md §3.2) in a lab of its own whose
// nodes run no agent (`--store none`: the same CNI plugin and pod subnets planned by the lab), so
// nothing fights over its routes.
import { randomBytes } from 'node:crypto';
import { labUp, type LabState } from '../../src/lab/index.ts';
import { firstIPv4 } from '../../src/lab/cni-exec.ts';
import { inNs, mustRun, runCmd, sleep, trackLab } from './common.ts';

export const VARIANTS = ['vxlan', 'auto', 'host-gw', 'flannel', 'mesh', 'routed', 'routed+ebpf', 'routed-vxlan', 'routed+ebpf-vxlan'] as const;
export type VariantName = (typeof VARIANTS)[number];

export type PairKind = 'same-zone' | 'cross-zone';

export interface VariantSpec {
  label: string;
  /** Lab name suffix (lab names: lower-case letters and digits only). */
  suffix: string;
  store: 'etcd' | 'mesh' | 'none';
  backend: 'vxlan' | 'auto' | 'host-gw';
  nodes: number;
  zones: number;
  podLink: 'bridge' | 'routed';
  fastPath: 'none' | 'ebpf';
  /** The pairs that carry this variant's goal or reference: measured by default (`--pairs all` measures every pair the lab has). */
  goalPairs: readonly PairKind[];
  /** direct: the pod packets leave the node as they are; vxlan: encapsulated (per pair for auto and mesh). */
  path: (pair: PairKind) => 'direct' | 'vxlan';
}

const autoPath = (pair: PairKind): 'direct' | 'vxlan' => (pair === 'same-zone' ? 'direct' : 'vxlan');

export const SPECS: Record<VariantName, VariantSpec> = {
  vxlan: { label: 'weft vxlan', suffix: 'x', store: 'etcd', backend: 'vxlan', nodes: 3, zones: 2, podLink: 'bridge', fastPath: 'none', goalPairs: ['cross-zone'], path: () => 'vxlan' },
  auto: { label: 'weft auto', suffix: 'a', store: 'etcd', backend: 'auto', nodes: 3, zones: 2, podLink: 'bridge', fastPath: 'none', goalPairs: ['same-zone'], path: autoPath },
  'host-gw': { label: 'weft host-gw', suffix: 'h', store: 'etcd', backend: 'host-gw', nodes: 2, zones: 1, podLink: 'bridge', fastPath: 'none', goalPairs: ['same-zone'], path: () => 'direct' },
  flannel: { label: 'flannel-equivalent VXLAN (by hand)', suffix: 'f', store: 'none', backend: 'vxlan', nodes: 3, zones: 2, podLink: 'bridge', fastPath: 'none', goalPairs: ['cross-zone'], path: () => 'vxlan' },
  mesh: { label: 'weft mesh (auto, VXLAN on UDP 6784)', suffix: 'm', store: 'mesh', backend: 'auto', nodes: 3, zones: 2, podLink: 'bridge', fastPath: 'none', goalPairs: ['same-zone'], path: autoPath },
  routed: { label: 'weft host-gw, routed pod links', suffix: 'r', store: 'etcd', backend: 'host-gw', nodes: 2, zones: 1, podLink: 'routed', fastPath: 'none', goalPairs: ['same-zone'], path: () => 'direct' },
  'routed+ebpf': { label: 'weft host-gw, routed + eBPF', suffix: 'e', store: 'etcd', backend: 'host-gw', nodes: 2, zones: 1, podLink: 'routed', fastPath: 'ebpf', goalPairs: ['same-zone'], path: () => 'direct' },
  'routed-vxlan': { label: 'weft vxlan, routed pod links', suffix: 'rv', store: 'etcd', backend: 'vxlan', nodes: 3, zones: 2, podLink: 'routed', fastPath: 'none', goalPairs: ['cross-zone'], path: () => 'vxlan' },
  'routed+ebpf-vxlan': { label: 'weft vxlan, routed + eBPF', suffix: 'ev', store: 'etcd', backend: 'vxlan', nodes: 3, zones: 2, podLink: 'routed', fastPath: 'ebpf', goalPairs: ['cross-zone'], path: () => 'vxlan' },
};

export const LABELS = Object.fromEntries(VARIANTS.map((v) => [v, SPECS[v].label])) as Record<VariantName, string>;

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

export type PairChoice = 'goal' | 'all';

export async function buildLab(variant: VariantName, id: string, pairChoice: PairChoice, progress: (s: string) => void): Promise<BuiltLab> {
  const spec = SPECS[variant];
  const name = `bd${id}${spec.suffix}`;
  trackLab(name);
  progress(`lab ${name}: up (${spec.label})`);
  // Every option explicit: the lab would otherwise take WEFT_POD_LINK / WEFT_FAST_PATH from the environment.
  const common = { name, nodes: spec.nodes, zones: spec.zones, podsPerNode: 1, podLink: spec.podLink, fastPath: spec.fastPath } as const;
  let state: LabState;
  if (spec.store === 'none') {
    state = await labUp({ ...common, store: 'none' });
    await handBuildFlannel(state);
  } else if (spec.store === 'mesh') {
    // No etcd: the agents mesh over TCP 6783 and share 10.32.0.0/12; auto = direct on a shared segment.
    state = await labUp({ ...common, store: 'mesh' });
  } else {
    state = await labUp({ ...common, store: 'etcd', backend: spec.backend });
  }
  // Nodes alternate zones a, b, a: n1 and n3 share zone a's segment, n2 is behind the router.
  // One-zone labs (host-gw needs one segment) have n1 and n2, both in zone a.
  const all = spec.zones === 1
    ? [pairOf(state, 'same-zone', 1, 2)]
    : [pairOf(state, 'same-zone', 1, 3), pairOf(state, 'cross-zone', 1, 2)];
  const pairs = pairChoice === 'all' ? all : all.filter((p) => spec.goalPairs.includes(p.kind));
  for (const p of pairs) {
    await podsAnswer(p, `lab ${name} (${spec.label})`);
    await checkPodLink(p.pods[0], spec, name);
  }
  return { variant, name, state, pairs, nodeNs: state.topology.nodes.map((n) => n.ns) };
}

/** Fails early on a broken lab: pod to pod must answer ping within 30 s (an agent may still be programming its peers). */
async function podsAnswer(p: Pair, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await runCmd(inNs(p.pods[0].ns, ['ping', '-n', '-c', '1', '-W', '1', p.pods[1].address]), 15_000);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`${what}: pod ${p.label} does not answer ping after 30 s: ${(r.stdout + r.stderr).trim().slice(-300)}`);
    await sleep(500);
  }
}

/** A routed pod's default route goes via the link-local gateway; a bridged pod's via cni0's address. Refuses a lab that is not what the variant says. */
async function checkPodLink(pod: Host, spec: VariantSpec, lab: string): Promise<void> {
  const routes = JSON.parse(await mustRun(['ip', '-n', pod.ns, '-j', '-4', 'route', 'show', 'default'])) as { gateway?: string }[];
  const gateway = routes[0]?.gateway;
  const routed = gateway === ROUTED_GATEWAY;
  if (routed !== (spec.podLink === 'routed')) {
    throw new Error(`lab ${lab} (${spec.label}): pod ${pod.ns} has its default route via ${gateway ?? 'nothing'}, so its link is ${routed ? 'routed' : 'bridged'}, not ${spec.podLink} (does \`weft lab up --pod-link\` work in this tree?)`);
  }
}

const ROUTED_GATEWAY = '169.254.1.1';

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
