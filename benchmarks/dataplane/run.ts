// `npm run bench:dataplane`: pod↔pod throughput and latency across nodes, as a ratio to
// node↔node in the same lab, for weft's backends (vxlan, auto, host-gw) and a flannel-equivalent
// VXLAN built by hand, side by side in one run (see benchmarks/README.md).
//
// Every lab is built by the lab API (src/lab), measured with iperf3 and ping exec'd inside its
// namespaces (nsenter --net), and brought down at the end, also on failure and on Ctrl-C.
// Nothing is done in the root namespace; only processes started here are signalled, by PID.
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { labDown } from '../../src/lab/index.ts';
import { machineFacts, median, mustRun, num, runBench, untrackLab, withRange, writeSection } from './common.ts';
import { buildLab, LABELS, VARIANTS, type BuiltLab, type Pair, type PairKind, type VariantName } from './labs.ts';
import { bridgeNetfilter, counters, iperf, offloads, ping, TWEAKS, withTweak, type Rtt, type Throughput, type Tweak } from './measure.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TAG = 'bench:dataplane';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    streams: { type: 'string', default: '1,4' },
    variants: { type: 'string', default: VARIANTS.join(',') },
    pings: { type: 'string', default: '200' },
    investigate: { type: 'string', default: 'notrack,no-bridge-nf' },
    'no-write': { type: 'boolean', default: false },
  },
});

function int(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max} (got ${text})`);
  return n;
}
const rounds = int('rounds', opts.rounds, 1, 20);
const seconds = int('seconds', opts.seconds, 1, 120);
const pings = int('pings', opts.pings, 10, 5000);
const streamCounts = (opts.streams ?? '').split(',').map((s) => int('streams', s.trim(), 1, 16));
const variants = (opts.variants ?? '').split(',').map((s) => s.trim()).filter(Boolean) as VariantName[];
for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`--variants: unknown ${v} (${VARIANTS.join(', ')})`);
const tweaks: Tweak[] = (opts.investigate ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((t) => {
  const tw = TWEAKS[t];
  if (!tw) throw new Error(`--investigate: unknown ${t} (${Object.keys(TWEAKS).join(', ')}, or empty)`);
  return tw;
});

const log = (s: string): void => void process.stderr.write(`${s}\n`);

// --- results ---------------------------------------------------------------------------------

interface TputSample { round: number; load: number; node: Throughput; pod: Throughput }
interface RttSample { round: number; node: Rtt; pod: Rtt }
const key = (v: string, pair: PairKind, streams?: number): string => `${v}|${pair}${streams === undefined ? '' : `|${streams}`}`;
const tput = new Map<string, TputSample[]>();
const rtt = new Map<string, RttSample[]>();
const inv = new Map<string, TputSample[]>(); // tweak|variant|pair
const packetSizes: string[] = [];
/** `ip -d link show flannel.1` per VXLAN variant, with the per-node parts (MAC, local address) masked. */
const vxlanDevices = new Map<VariantName, string>();
const problems: string[] = [];

const push = <T>(m: Map<string, T[]>, k: string, x: T): void => void (m.get(k) ?? m.set(k, []).get(k)!).push(x);
const ratio = (s: TputSample): number => s.pod.gbps / s.node.gbps;

/** Node↔node and pod↔pod for one pair, in an order that alternates by round. */
async function nodeAndPod(pair: Pair, streams: number, round: number): Promise<TputSample> {
  const nodeRun = (): Promise<Throughput> => iperf(pair.nodes[0], pair.nodes[1], streams, seconds);
  const podRun = (): Promise<Throughput> => iperf(pair.pods[0], pair.pods[1], streams, seconds);
  const load = loadavg()[0]!;
  if (round % 2 === 1) {
    const node = await nodeRun();
    return { round, load, node, pod: await podRun() };
  }
  const pod = await podRun();
  return { round, load, node: await nodeRun(), pod };
}

async function packetSizeCheck(lab: BuiltLab, pair: Pair): Promise<void> {
  const [cp, cn, sn] = [pair.pods[0].ns, pair.nodes[0].ns, pair.nodes[1].ns];
  const before = await Promise.all([counters(cp, 'eth0'), counters(cn, 'eth0'), counters(sn, 'eth0')]);
  const t = await iperf(pair.pods[0], pair.pods[1], 1, Math.min(3, seconds));
  const after = await Promise.all([counters(cp, 'eth0'), counters(cn, 'eth0'), counters(sn, 'eth0')]);
  const avg = (i: number, dir: 'tx' | 'rx'): string => {
    const b = after[i]![`${dir}Bytes`] - before[i]![`${dir}Bytes`];
    const p = after[i]![`${dir}Packets`] - before[i]![`${dir}Packets`];
    return p > 0 ? `${Math.round(b / p)} B` : 'n/a';
  };
  packetSizes.push(`${LABELS[lab.variant]} ${pair.kind} (${num(t.gbps)} Gbit/s): sender pod eth0 tx ${avg(0, 'tx')}, sender node eth0 tx ${avg(1, 'tx')}, receiver node eth0 rx ${avg(2, 'rx')} per packet`);
}

async function measureLab(lab: BuiltLab, round: number): Promise<void> {
  for (const pair of lab.pairs) {
    for (const streams of streamCounts) {
      const s = await nodeAndPod(pair, streams, round);
      push(tput, key(lab.variant, pair.kind, streams), s);
      log(`  ${LABELS[lab.variant]} ${pair.kind} ${pair.label} P${streams}: node ${num(s.node.gbps)} pod ${num(s.pod.gbps)} Gbit/s → ${num(ratio(s))}`);
    }
    const node = await ping(pair.nodes[0], pair.nodes[1], pings, 0.01);
    const pod = await ping(pair.pods[0], pair.pods[1], pings, 0.01);
    push(rtt, key(lab.variant, pair.kind), { round, node, pod });
    log(`  ${LABELS[lab.variant]} ${pair.kind} RTT p50 node ${num(node.p50)} pod ${num(pod.p50)} ms`);
  }
}

/** The tweaks, on the pairs that carry each goal: auto same-zone (direct route) and vxlan cross-zone. */
async function investigate(labs: Map<VariantName, BuiltLab>, round: number): Promise<void> {
  const targets: [VariantName, PairKind][] = [['auto', 'same-zone'], ['vxlan', 'cross-zone']];
  for (const tweak of tweaks) {
    for (const [v, kind] of targets) {
      const lab = labs.get(v);
      const pair = lab?.pairs.find((p) => p.kind === kind);
      if (!lab || !pair) continue;
      try {
        const s = await withTweak(tweak, lab.nodeNs, () => nodeAndPod(pair, 1, round));
        push(inv, `${tweak.name}|${v}|${kind}`, s);
        log(`  [${tweak.name}] ${LABELS[v]} ${kind}: node ${num(s.node.gbps)} pod ${num(s.pod.gbps)} → ${num(ratio(s))}`);
      } catch (e) {
        problems.push(`investigation ${tweak.name} on ${LABELS[v]} ${kind} failed in round ${round}: ${(e as Error).message}`);
      }
    }
  }
}

// --- report ----------------------------------------------------------------------------------

const mark = (ok: boolean): string => (ok ? ' ✅' : ' ❌');

function throughputTable(): string {
  const lines = [
    '| backend | pair | streams | node↔node Gbit/s | pod↔pod Gbit/s | **pod / node** | goal |',
    '|---|---|---:|---:|---:|---:|---|',
  ];
  for (const v of variants) {
    for (const kind of ['same-zone', 'cross-zone'] as PairKind[]) {
      for (const streams of streamCounts) {
        const s = tput.get(key(v, kind, streams));
        if (!s) continue;
        const r = median(s.map(ratio));
        const goal = kind === 'same-zone' && (v === 'auto' || v === 'host-gw') ? `≥ 0.95${mark(r >= 0.95)}` : '';
        lines.push(`| ${LABELS[v]} | ${kind} | ${streams} | ${withRange(s.map((x) => x.node.gbps))} | ${withRange(s.map((x) => x.pod.gbps))} | **${withRange(s.map(ratio), (x) => x.toFixed(2))}** | ${goal} |`);
      }
    }
  }
  return lines.join('\n');
}

/** weft's VXLAN paths against the hand-built flannel equivalent, per round (same round, adjacent in time). */
function flannelTable(): string {
  const lines = [
    '| weft backend | pair | streams | weft pod↔pod Gbit/s | flannel-eq. pod↔pod Gbit/s | **weft / flannel-eq.** (pod Gbit/s) | weft pod/node ÷ flannel-eq. pod/node | goal |',
    '|---|---|---:|---:|---:|---:|---:|---|',
  ];
  for (const v of variants.filter((x) => x === 'vxlan' || x === 'auto')) {
    for (const kind of ['cross-zone', 'same-zone'] as PairKind[]) {
      for (const streams of streamCounts) {
        const w = tput.get(key(v, kind, streams));
        const f = tput.get(key('flannel', kind, streams));
        if (!w || !f) continue;
        const perRound = w.map((x) => {
          const y = f.find((z) => z.round === x.round);
          return y ? { abs: x.pod.gbps / y.pod.gbps, norm: ratio(x) / ratio(y) } : undefined;
        }).filter((x): x is { abs: number; norm: number } => x !== undefined);
        const abs = median(perRound.map((x) => x.abs));
        const goal = kind === 'cross-zone' ? `≥ 1.0${mark(abs >= 1.0)}` : '';
        lines.push(`| ${LABELS[v]} | ${kind} | ${streams} | ${withRange(w.map((x) => x.pod.gbps))} | ${withRange(f.map((x) => x.pod.gbps))} | **${withRange(perRound.map((x) => x.abs), (x) => x.toFixed(2))}** | ${withRange(perRound.map((x) => x.norm), (x) => x.toFixed(2))} | ${goal} |`);
      }
    }
  }
  return lines.join('\n');
}

function latencyTable(): string {
  const lines = [
    '| backend | pair | node↔node RTT p50 ms | pod↔pod RTT p50 ms | **pod / node p50** | node p99 ms | pod p99 ms | pod / node p99 |',
    '|---|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const v of variants) {
    for (const kind of ['same-zone', 'cross-zone'] as PairKind[]) {
      const s = rtt.get(key(v, kind));
      if (!s) continue;
      const f2 = (x: number): string => x.toFixed(2);
      lines.push(`| ${LABELS[v]} | ${kind} | ${withRange(s.map((x) => x.node.p50))} | ${withRange(s.map((x) => x.pod.p50))} | **${withRange(s.map((x) => x.pod.p50 / x.node.p50), f2)}** | ${withRange(s.map((x) => x.node.p99))} | ${withRange(s.map((x) => x.pod.p99))} | ${withRange(s.map((x) => x.pod.p99 / x.node.p99), f2)} |`);
    }
  }
  return lines.join('\n');
}

function investigationTable(): string {
  if (inv.size === 0) return '';
  const lines = [
    '| change (all nodes of the lab, reverted after) | backend, pair | node↔node Gbit/s | pod↔pod Gbit/s | pod / node with the change | pod / node without (same rounds) |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const tweak of tweaks) {
    for (const [k, s] of inv) {
      const [t, v, kind] = k.split('|') as [string, VariantName, PairKind];
      if (t !== tweak.name) continue;
      const base = (tput.get(key(v, kind, 1)) ?? []).filter((b) => s.some((x) => x.round === b.round));
      lines.push(`| ${tweak.name} | ${LABELS[v]}, ${kind} | ${withRange(s.map((x) => x.node.gbps))} | ${withRange(s.map((x) => x.pod.gbps))} | ${withRange(s.map(ratio), (x) => x.toFixed(2))} | ${withRange(base.map(ratio), (x) => x.toFixed(2))} |`);
    }
  }
  return [lines.join('\n'), '', ...tweaks.map((t) => `- **${t.name}**: ${t.what}.`)].join('\n');
}

/** Every measurement, in run order, for the collapsed details. */
function perRoundTable(): string {
  const lines = [
    '| round | backend | pair | streams | load | node Gbit/s (retr.) | pod Gbit/s (retr.) | pod / node |',
    '|---:|---|---|---:|---:|---:|---:|---:|',
  ];
  const rows: { k: string; s: TputSample }[] = [];
  for (const [k, ss] of tput) for (const x of ss) rows.push({ k, s: x });
  rows.sort((a, b) => a.s.round - b.s.round);
  for (const { k, s } of rows) {
    const [v, kind, streams] = k.split('|') as [VariantName, PairKind, string];
    lines.push(`| ${s.round} | ${LABELS[v]} | ${kind} | ${streams} | ${s.load.toFixed(1)} | ${num(s.node.gbps)} (${s.node.retransmits}) | ${num(s.pod.gbps)} (${s.pod.retransmits}) | ${ratio(s).toFixed(2)} |`);
  }
  return lines.join('\n');
}

/** Plain statements computed from this run's numbers. */
function findings(): string {
  const parts: string[] = [];
  const r = (v: VariantName, kind: PairKind, st: number): number => median((tput.get(key(v, kind, st)) ?? []).map(ratio));
  const p1 = streamCounts[0] ?? 1;
  const direct = ['auto', 'host-gw'].filter((v) => tput.has(key(v, 'same-zone', p1))).map((v) => `${LABELS[v as VariantName]} ${r(v as VariantName, 'same-zone', p1).toFixed(2)}`);
  const tunnelled = ['vxlan', 'flannel'].filter((v) => tput.has(key(v, 'same-zone', p1))).map((v) => `${LABELS[v as VariantName]} ${r(v as VariantName, 'same-zone', p1).toFixed(2)}`);
  if (direct.length > 0 && tunnelled.length > 0) {
    parts.push(`Same zone, ${p1} stream, pod/node: with a direct route ${direct.join(', ')}; through VXLAN ${tunnelled.join(', ')}. In the lab, a node↔node transfer crosses two veths and the zone bridge; a pod↔pod transfer adds each pod's veth, cni0 and a routing (FORWARD, conntrack) pass on both nodes, plus the VXLAN encapsulation and decapsulation when tunnelled. Every packet of those hops costs CPU on the same 2 cores that run iperf3's sender and receiver, so the ratio measures that extra per-packet work, not a bandwidth limit.`);
  }
  const sizes = packetSizes.map((p) => [...p.matchAll(/(\d+) B/g)].map((m) => Number(m[1]))).flat();
  if (sizes.length > 0) {
    parts.push(`The link counters show ${Math.min(...sizes)}–${Math.max(...sizes)} bytes per packet on the pod's eth0 and on both nodes' eth0 during pod↔pod transfers: TSO/GSO superpackets cross the whole path, VXLAN included, without being segmented (the veths carry tx-udp_tnl-segmentation), so neither the 1450 MTU nor checksum/segmentation offloads are where the gap comes from; GRO, which re-merges segmented packets, has nothing to merge here.`);
  }
  for (const t of tweaks) {
    for (const [v, kind] of [['auto', 'same-zone'], ['vxlan', 'cross-zone']] as [VariantName, PairKind][]) {
      const s = inv.get(`${t.name}|${v}|${kind}`);
      if (!s) continue;
      const base = (tput.get(key(v, kind, 1)) ?? []).filter((b) => s.some((x) => x.round === b.round));
      const with_ = median(s.map(ratio));
      const without = median(base.map(ratio));
      parts.push(`${t.name} on ${LABELS[v]} ${kind}: pod/node ${with_.toFixed(2)} with, ${without.toFixed(2)} without (pod ${num(median(s.map((x) => x.pod.gbps)))} vs ${num(median(base.map((x) => x.pod.gbps)))} Gbit/s).`);
    }
  }
  if (inv.has(`notrack|auto|same-zone`) || inv.has(`notrack|vxlan|cross-zone`)) {
    parts.push('NOTRACK is only a measurement here, not a change for weft to ship: with kube-proxy, the reply of a Service backend pod to a client pod is addressed pod to pod and must be un-DNATed by conntrack.');
  }
  const devs = [...vxlanDevices];
  if (devs.length > 1) {
    const same = new Set(devs.map(([, d]) => d)).size === 1;
    parts.push(same
      ? `weft's flannel.1 and the hand-built one are the same device (\`ip -d link\` identical once the MAC and node address are masked: ${devs[0]![1]}), with the same per-peer neighbour, FDB entry and onlink route, so weft VXLAN and the flannel-equivalent should only differ by noise.`
      : `The flannel.1 devices differ: ${devs.map(([v, d]) => `${LABELS[v]}: ${d}`).join(' / ')}.`);
  }
  parts.push('Single runs vary a lot on this shared machine (see every round below, with the 1-minute load at the start of each measurement): even node↔node alone ranges over ±30 % between runs, so differences of that size between two medians are not significant.');
  return parts.join(' ');
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error(`${TAG} needs root (it creates network namespaces)`);
  const id = randomBytes(2).toString('hex');
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  log(`${TAG}: ${rounds} rounds of [${variants.join(', ')}], ${seconds} s per iperf3 run, streams ${streamCounts.join('/')}, ${pings} pings; load ${loadBefore}`);

  const labs = new Map<VariantName, BuiltLab>();
  for (const v of variants) labs.set(v, await buildLab(v, id, log));
  const anyLab = [...labs.values()][0]!;
  const n1 = anyLab.state.topology.nodes[0]!.ns;
  const brnf = await bridgeNetfilter(n1);
  const weftLab = labs.get('vxlan') ?? labs.get('auto');
  const devices = weftLab
    ? await Promise.all(['eth0', 'flannel.1', 'cni0'].map((d) => offloads(weftLab.state.topology.nodes[0]!.ns, d)))
    : [];
  for (const lab of labs.values()) for (const pair of lab.pairs) await packetSizeCheck(lab, pair);
  for (const lab of labs.values()) {
    if (lab.variant === 'host-gw') continue;
    const n = lab.state.topology.nodes[0]!;
    const d = await mustRun(['ip', '-n', n.ns, '-d', 'link', 'show', 'flannel.1']);
    vxlanDevices.set(lab.variant, d.replace(/^\d+: /, '').replace(/link\/ether \S+ brd \S+/, 'link/ether <mac>').replaceAll(n.address, '<node>')
      .replace(/ (qlen|promiscuity|allmulti|minmtu|maxmtu|numtxqueues|numrxqueues|gso_max_size|gso_max_segs|tso_max_size|tso_max_segs|gro_max_size|gso_ipv4_max_size|gro_ipv4_max_size) \d+/g, '')
      .replace(/\s+/g, ' ').trim());
  }

  const orders: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]!);
    orders.push(order.map((v) => LABELS[v]).join(' → '));
    for (const v of order) {
      log(`round ${round}/${rounds}: ${LABELS[v]} (load ${loadavg()[0]!.toFixed(2)})`);
      await measureLab(labs.get(v)!, round);
    }
    if (tweaks.length > 0) {
      log(`round ${round}/${rounds}: investigation (load ${loadavg()[0]!.toFixed(2)})`);
      await investigate(labs, round);
    }
  }
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
  for (const lab of labs.values()) {
    await labDown(lab.name);
    untrackLab(lab.name);
  }

  const body = [
    '## Data plane: pod↔pod vs node↔node, weft backends vs a hand-built flannel VXLAN',
    '',
    `Measured ${date} by \`npm run bench:dataplane\` (benchmarks/dataplane/run.ts). iperf3 TCP, ${seconds} s per run, receiver-side rate; ping ${pings} × 0.01 s. Median over ${rounds} rounds with the range over rounds in parentheses; every ratio is taken within a round (node and pod measured back to back on the same pair) and then the median of the ratios is shown.`,
    '',
    '### Throughput',
    '',
    throughputTable(),
    '',
    '### weft VXLAN against the flannel-equivalent',
    '',
    flannelTable(),
    '',
    '### Latency',
    '',
    latencyTable(),
    '',
    ...(inv.size > 0 ? ['### Investigation: what the pod path costs (1 stream)', '', investigationTable(), ''] : []),
    `Machine: ${machineFacts(ROOT)}. Load average (1/5/15 min) ${loadBefore} before, ${loadAfter} after: the machine is shared with other jobs, and iperf3's sender, receiver and all softirq work share its CPUs.`,
    '',
    `Devices (weft node n1): ${devices.join('; ')}. MTU: node eth0 1500, flannel.1 and pods 1450. br_netfilter: ${brnf === undefined ? 'not loaded' : `loaded (bridge-nf-call-iptables=${brnf} in the nodes)`}.`,
    '',
    `Average bytes per packet during a 1-stream pod↔pod run (from link counters): ${packetSizes.join('; ')}.`,
    '',
    '**Method.** Each variant is its own lab, built once and measured in every round, the order of the variants rotating (' + orders.join('; ') + '). ' +
      'Nodes alternate zones a, b, a (zones 172.31.1.0/24 and 172.31.2.0/24, joined by the router namespace), each with one pod; the same-zone pair is n1 → n3 on one bridge (host-gw: n1 → n2, its lab puts both nodes in zone a), the cross-zone pair n1 → n2 through the router. ' +
      'weft vxlan / auto / host-gw: `weft lab up --store etcd --backend …` (etcd, one `weft agent` per node with --ip-masq). ' +
      'flannel-equivalent: `weft lab up --store none` (same CNI plugin and pod MTU, no agent), then by hand in every node, as flanneld does (docs/flannel-compat.md §3.2): `ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev eth0 local <node>`, MTU 1450, a random locally administered MAC, `<subnet>.0/32` on it; per peer `ip neigh replace <peer>.0 lladdr <mac> nud permanent`, `bridge fdb replace <mac> dev flannel.1 dst <peer node> self permanent`, `ip route replace <peer subnet> via <peer>.0 dev flannel.1 onlink`; and flanneld\'s --ip-masq iptables rules (the same ones weft\'s agents install). ' +
      'Every iperf3 and ping runs inside the lab\'s namespaces (`nsenter --net`); client on the first node or its pod, server on the second.',
    '',
    `**What explains the numbers.** ${findings()}`,
    '',
    '<details><summary>Every measurement</summary>',
    '',
    perRoundTable(),
    '',
    '</details>',
    ...(problems.length > 0 ? ['', '**Problems seen during the run:**', '', ...problems.map((p) => `- ${p}`)] : []),
  ].join('\n');

  process.stdout.write(`\n${findings()}\n\n${throughputTable()}\n\n${flannelTable()}\n\n${latencyTable()}\n\n${investigationTable()}\n\n${packetSizes.join('\n')}\n${devices.join('\n')}\n`);
  if (problems.length > 0) process.stdout.write(`\nPROBLEMS:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
  if (!opts['no-write']) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'dataplane', body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

await runBench(TAG, main);
