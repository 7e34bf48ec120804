// `npm run bench:dataplane`: pod↔pod TCP throughput, UDP packet rate and latency across nodes, as a
// ratio to node↔node on the same pair in the same round, for weft's backends (vxlan, auto,
// host-gw, mesh), routed pod links with and without the tc-eBPF fast path (direct and VXLAN), and
// a flannel-equivalent VXLAN built by hand, side by side in one run (see benchmarks/README.md).
//
// Every lab is built by the lab API (src/lab), measured with iperf3 and sockperf exec'd inside its
// namespaces (nsenter --net), and brought down at the end, also on failure and on Ctrl-C.
// Nothing is done in the root namespace; only processes started here are signalled, by PID.
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { labDown } from '../../src/lab/index.ts';
import { machineFacts, mustRun, num, runBench, untrackLab, writeSection } from './common.ts';
import { evidence, readFastPath, type FastPathReading } from './fastpath.ts';
import { buildLab, LABELS, SPECS, VARIANTS, type BuiltLab, type Host, type Pair, type PairChoice, type PairKind, type VariantName } from './labs.ts';
import { bridgeNetfilter, counters, latency, offloads, tcp, tcpProcesses, TWEAKS, udpRate, withTweak, type Throughput, type Tweak } from './measure.ts';
import { fastPathTable, findings, flannelTable, investigationTable, latencyTable, perRoundTable, summaryTable, throughputTable, udpTable, type ReportInput } from './report.ts';
import { key, push, Results, tcpRatio, udpRatio, addedUs, type Paired } from './results.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TAG = 'bench:dataplane';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    'udp-rounds': { type: 'string' },
    seconds: { type: 'string' },
    'udp-seconds': { type: 'string' },
    'latency-seconds': { type: 'string' },
    'udp-size': { type: 'string', default: '64' },
    streams: { type: 'string', default: '1,4' },
    cpu: { type: 'string', default: String(cpus().length - 1) },
    pairs: { type: 'string', default: 'goal' },
    variants: { type: 'string', default: VARIANTS.join(',') },
    investigate: { type: 'string', default: '' },
    'no-write': { type: 'boolean', default: false },
  },
});

function int(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max} (got ${text})`);
  return n;
}
const quick = opts.quick === true;
/** --quick: a check that everything works end to end, in minutes; never written to BENCHMARKS.md. */
const dflt = (full: string, short: string): string => (quick ? short : full);
const rounds = int('rounds', opts.rounds ?? dflt('8', '2'), 1, 30);
const udpRounds = Math.min(rounds, int('udp-rounds', opts['udp-rounds'] ?? dflt('3', '1'), 0, 30));
const seconds = int('seconds', opts.seconds ?? dflt('3', '2'), 1, 120);
const udpSeconds = int('udp-seconds', opts['udp-seconds'] ?? dflt('3', '2'), 1, 120);
const latencySeconds = int('latency-seconds', opts['latency-seconds'] ?? dflt('3', '2'), 1, 120);
const udpSize = int('udp-size', opts['udp-size'], 16, 1400);
const cpu = int('cpu', opts.cpu, 0, cpus().length - 1);
const streamCounts = (opts.streams ?? '').split(',').map((s) => int('streams', s.trim(), 1, 16));
const pairChoice = opts.pairs as PairChoice;
if (pairChoice !== 'goal' && pairChoice !== 'all') throw new Error(`--pairs must be goal or all (got ${opts.pairs})`);
const variants = (opts.variants ?? '').split(',').map((s) => s.trim()).filter(Boolean) as VariantName[];
for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`--variants: unknown ${v} (${VARIANTS.join(', ')})`);
if (variants.length === 0) throw new Error('--variants: name at least one');
const tweaks: Tweak[] = (opts.investigate ?? '').split(',').map((s) => s.trim()).filter(Boolean).map((t) => {
  const tw = TWEAKS[t];
  if (!tw) throw new Error(`--investigate: unknown ${t} (${Object.keys(TWEAKS).join(', ')}, or empty)`);
  return tw;
});
const write = !quick && opts['no-write'] !== true;

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const results = new Results();

/** node↔node and pod↔pod on one pair, back to back, in an order that alternates by round. */
async function paired<T>(round: number, run: (ends: readonly [Host, Host]) => Promise<T>, pair: Pair): Promise<Paired<T>> {
  const load = loadavg()[0]!;
  if (round % 2 === 1) {
    const node = await run(pair.nodes);
    return { round, load, node, pod: await run(pair.pods) };
  }
  const pod = await run(pair.pods);
  return { round, load, node: await run(pair.nodes), pod };
}

/** 1 stream: one iperf3 pair, client and server pinned to one core; n streams: n iperf3 processes. */
const tcpRun = (streams: number) => ([a, b]: readonly [Host, Host]): Promise<Throughput> =>
  streams === 1 ? tcp(a, b, seconds, cpu) : tcpProcesses(a, b, streams, seconds);

/** Failed measurements per lab: one is noted and the run goes on; after MAX_FAILURES the lab is left out of the later rounds. */
const failures = new Map<VariantName, number>();
const MAX_FAILURES = 3;

async function attempt<T>(lab: BuiltLab, what: string, round: number, fn: () => Promise<T>): Promise<T | undefined> {
  if ((failures.get(lab.variant) ?? 0) >= MAX_FAILURES) return undefined;
  try {
    return await fn();
  } catch (e) {
    const n = (failures.get(lab.variant) ?? 0) + 1;
    failures.set(lab.variant, n);
    const msg = `${LABELS[lab.variant]} ${what}, round ${round}: ${(e as Error).message.slice(0, 500)}${n >= MAX_FAILURES ? ` (${n} failures: the lab is left out of the later rounds)` : ''}`;
    results.problems.push(msg);
    log(`  FAILED: ${msg}`);
    return undefined;
  }
}

async function measureLab(lab: BuiltLab, round: number): Promise<void> {
  const label = LABELS[lab.variant];
  for (const pair of lab.pairs) {
    for (const streams of streamCounts) {
      const s = await attempt(lab, `${pair.kind} TCP ${streams}`, round, () => paired(round, tcpRun(streams), pair));
      if (!s) continue;
      push(results.tcp, key(lab.variant, pair.kind, streams), s);
      log(`  ${label} ${pair.kind} ${pair.label} TCP ${streams}: node ${num(s.node.gbps)} pod ${num(s.pod.gbps)} Gbit/s → ${tcpRatio(s).toFixed(2)}`);
    }
    if (round > udpRounds) continue;
    const u = await attempt(lab, `${pair.kind} UDP`, round, () => paired(round, ([a, b]) => udpRate(a, b, udpSeconds, udpSize, cpu), pair));
    if (u) {
      push(results.udp, key(lab.variant, pair.kind), u);
      log(`  ${label} ${pair.kind} UDP ${udpSize} B: node ${num(u.node.rxPps / 1000)} pod ${num(u.pod.rxPps / 1000)} kpps received → ${udpRatio(u).toFixed(2)}`);
    }
    const l = await attempt(lab, `${pair.kind} latency`, round, () => paired(round, ([a, b]) => latency(a, b, latencySeconds, cpu), pair));
    if (l) {
      push(results.latency, key(lab.variant, pair.kind), l);
      log(`  ${label} ${pair.kind} sockperf p50: node ${num(l.node.p50)} pod ${num(l.pod.p50)} µs → +${addedUs(l).toFixed(2)} µs`);
    }
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
        const s = await withTweak(tweak, lab.nodeNs, () => paired(round, tcpRun(1), pair));
        push(results.investigation, `${tweak.name}|${v}|${kind}`, s);
        log(`  [${tweak.name}] ${LABELS[v]} ${kind}: node ${num(s.node.gbps)} pod ${num(s.pod.gbps)} → ${tcpRatio(s).toFixed(2)}`);
      } catch (e) {
        results.problems.push(`investigation ${tweak.name} on ${LABELS[v]} ${kind} failed in round ${round}: ${(e as Error).message}`);
      }
    }
  }
}

async function packetSizeCheck(lab: BuiltLab, pair: Pair): Promise<void> {
  const [cp, cn, sn] = [pair.pods[0].ns, pair.nodes[0].ns, pair.nodes[1].ns];
  const before = await Promise.all([counters(cp, 'eth0'), counters(cn, 'eth0'), counters(sn, 'eth0')]);
  const t = await tcp(pair.pods[0], pair.pods[1], Math.min(3, seconds), cpu);
  const after = await Promise.all([counters(cp, 'eth0'), counters(cn, 'eth0'), counters(sn, 'eth0')]);
  const avg = (i: number, dir: 'tx' | 'rx'): string => {
    const b = after[i]![`${dir}Bytes`] - before[i]![`${dir}Bytes`];
    const p = after[i]![`${dir}Packets`] - before[i]![`${dir}Packets`];
    return p > 0 ? `${Math.round(b / p)} B` : 'n/a';
  };
  results.packetSizes.push(`${LABELS[lab.variant]} ${pair.kind} (${num(t.gbps)} Gbit/s): sender pod eth0 tx ${avg(0, 'tx')}, sender node eth0 tx ${avg(1, 'tx')}, receiver node eth0 rx ${avg(2, 'rx')} per packet`);
}

async function recordVxlanDevice(lab: BuiltLab): Promise<void> {
  if (SPECS[lab.variant].backend === 'host-gw') return;
  const n = lab.state.topology.nodes[0]!;
  const d = await mustRun(['ip', '-n', n.ns, '-d', 'link', 'show', 'flannel.1']);
  results.vxlanDevices.set(lab.variant, d.replace(/^\d+: /, '').replace(/link\/ether \S+ brd \S+/, 'link/ether <mac>').replaceAll(n.address, '<node>')
    .replace(/ (qlen|promiscuity|allmulti|minmtu|maxmtu|numtxqueues|numrxqueues|gso_max_size|gso_max_segs|tso_max_size|tso_max_segs|gro_max_size|gso_ipv4_max_size|gro_ipv4_max_size) \d+/g, '')
    .replace(/\s+/g, ' ').trim());
}

/** Rough wall time of the measuring (labs' build and down not included), for the first line. */
function estimateMinutes(pairs: number): number {
  const spawn = 0.5; // per iperf3/sockperf run: nsenter, server start, connect, report (measured on a 2-core machine)
  const tcpRound = streamCounts.reduce((s) => s + 2 * (seconds + spawn), 0);
  const udpRound = 2 * (udpSeconds + spawn) + 2 * (latencySeconds + 0.5 + spawn);
  return (pairs * (rounds * tcpRound + udpRounds * udpRound) + rounds * tweaks.length * 2 * 2 * (seconds + spawn)) / 60;
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error(`${TAG} needs root (it creates network namespaces)`);
  const id = randomBytes(2).toString('hex');
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  const started = Date.now();
  log(`${TAG}: ${rounds} rounds (UDP and latency in the first ${udpRounds}) of [${variants.join(', ')}], pairs ${pairChoice}; TCP ${seconds} s (streams ${streamCounts.join('/')}), UDP ${udpSeconds} s, sockperf ${latencySeconds} s; pinned to cpu ${cpu}; load ${loadBefore}${quick ? '; --quick: nothing is written' : ''}`);

  const labs = new Map<VariantName, BuiltLab>();
  const fastPathBefore = new Map<VariantName, FastPathReading[]>();
  for (const v of variants) {
    const lab = await buildLab(v, id, pairChoice, log);
    labs.set(v, lab);
    if (SPECS[v].fastPath === 'ebpf') fastPathBefore.set(v, await readFastPath(lab.state));
  }
  const pairCount = [...labs.values()].reduce((s, l) => s + l.pairs.length, 0);
  log(`${TAG}: ${labs.size} labs up after ${((Date.now() - started) / 60_000).toFixed(1)} min, ${pairCount} pairs; measuring takes about ${estimateMinutes(pairCount).toFixed(0)} min`);
  const anyLab = [...labs.values()][0]!;
  const brnf = await bridgeNetfilter(anyLab.state.topology.nodes[0]!.ns);
  const weftLab = labs.get('vxlan') ?? labs.get('auto');
  const devices = weftLab
    ? await Promise.all(['eth0', 'flannel.1', 'cni0'].map((d) => offloads(weftLab.state.topology.nodes[0]!.ns, d)))
    : [];
  for (const lab of labs.values()) for (const pair of lab.pairs) await attempt(lab, `${pair.kind} packet sizes`, 0, () => packetSizeCheck(lab, pair));
  for (const lab of labs.values()) await recordVxlanDevice(lab);

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
  for (const [v, before] of fastPathBefore) {
    const e = evidence(before, await readFastPath(labs.get(v)!.state));
    results.fastPath.set(v, e);
    log(`${LABELS[v]}: fast path taken: ${e.taken} (${e.nodes.join('; ')})`);
    if (e.taken === 'no') results.problems.push(`${LABELS[v]}: the fast path was not taken (${e.nodes.join('; ')})`);
  }
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
  for (const lab of labs.values()) {
    await labDown(lab.name);
    untrackLab(lab.name);
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(0);

  const inp: ReportInput = { results, variants, streamCounts, tweaks };
  const body = sectionBody(inp, { date, minutes, loadBefore, loadAfter, orders, devices, brnf });
  const printed = [findings(inp), summaryTable(inp), throughputTable(inp), udpTable(inp), latencyTable(inp), flannelTable(inp), fastPathTable(inp), investigationTable(inp), [...results.packetSizes, ...devices].join('\n')];
  process.stdout.write(`\n${printed.filter(Boolean).join('\n\n')}\n`);
  if (results.problems.length > 0) process.stdout.write(`\nPROBLEMS:\n${results.problems.map((p) => `  - ${p}`).join('\n')}\n`);
  process.stdout.write(`\n${TAG}: ${minutes} min in all\n`);
  if (write) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'dataplane', body);
    process.stdout.write(`wrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  // Failed measurements are in the report; the exit code says the run was not whole.
  return failures.size > 0 ? 1 : 0;
}

interface RunFacts { date: string; minutes: string; loadBefore: string; loadAfter: string; orders: string[]; devices: string[]; brnf: string | undefined }

function sectionBody(inp: ReportInput, f: RunFacts): string {
  const section = (title: string, table: string): string[] => (table ? [`### ${title}`, '', table, ''] : []);
  return [
    '## Data plane: pod↔pod vs node↔node: weft backends, routed pod links, the eBPF fast path, a hand-built flannel VXLAN',
    '',
    `Measured ${f.date} by \`npm run bench:dataplane\` (benchmarks/dataplane/run.ts), ${f.minutes} min. ${rounds} rounds of TCP (iperf3, ${seconds} s per run, receiver-side rate: 1 stream with client and server pinned to cpu ${cpu}; ${streamCounts.filter((s) => s > 1).map((s) => `${s} streams as ${s} separate iperf3 processes`).join(', ') || 'no multi-stream test'}), and in the first ${udpRounds} of them UDP (iperf3 -u -b 0, ${udpSize}-byte datagrams, ${udpSeconds} s, packets/s the server received, pinned) and latency (sockperf ping-pong over UDP, ${latencySeconds} s after its warm-up, one-way = half the round trip, pinned). Every pod figure is paired with node↔node on the same two nodes right before or after it; the tables show the median over rounds of those per-round ratios (latency: µs added = pod p50 − node p50), with the range over rounds in parentheses.`,
    '',
    ...section('Goals (issue 9) against this run', summaryTable(inp)),
    'Goals: routed pod links ≥ 0.92 of node↔node TCP on a direct path; with the eBPF fast path ≥ 0.95 (TCP 1 and 4 streams), ≥ 0.75 UDP packet rate, < 1.5 µs added latency; over VXLAN at least the flannel-equivalent\'s pod/node (same pair, same run). weft auto, host-gw and mesh keep the earlier goal of ≥ 0.95 on a direct route. Marked, never asserted.',
    '',
    ...section('TCP throughput', throughputTable(inp)),
    ...section('UDP packet rate', udpTable(inp)),
    ...section('Latency (sockperf, one way)', latencyTable(inp)),
    ...section('Over VXLAN against the flannel-equivalent', flannelTable(inp)),
    ...section('Did the fast path carry the traffic?', fastPathTable(inp)),
    ...section('Investigation: what the pod path costs (1 stream)', investigationTable(inp)),
    `Machine: ${machineFacts(ROOT)}; sockperf 3.7. Load average (1/5/15 min) ${f.loadBefore} before, ${f.loadAfter} after: the machine is shared with other jobs, and the sender, receiver and all softirq work share its CPUs.`,
    '',
    ...(f.devices.length > 0 ? [`Devices (weft node n1): ${f.devices.join('; ')}. MTU: node eth0 1500, flannel.1 and pods 1450. br_netfilter: ${f.brnf === undefined ? 'not loaded' : `loaded (bridge-nf-call-iptables=${f.brnf} in the nodes)`}.`, ''] : []),
    `Average bytes per packet during a 1-stream pod↔pod run (from link counters): ${results.packetSizes.join('; ')}.`,
    '',
    '**Method.** Each variant is its own lab, built once and measured in every round, the order of the variants rotating (' + f.orders.join('; ') + '). ' +
      'Nodes alternate zones a, b, a (zones 172.31.1.0/24 and 172.31.2.0/24, joined by the router namespace), each with one pod; the same-zone pair is n1 → n3 on one bridge (host-gw labs: n1 → n2, both in zone a), the cross-zone pair n1 → n2 through the router. ' +
      `By default each lab measures the pair that carries its goal or reference (\`--pairs goal\`: direct-route labs the same-zone pair, VXLAN labs the cross-zone pair); \`--pairs all\` measures both. ` +
      'weft vxlan / auto / host-gw: `weft lab up --store etcd --backend …` (one `weft agent` per node with --ip-masq); routed: the same with `--pod-link routed`, and `--fast-path ebpf` for the eBPF variants, whose agents\' `fastPath` status counters are read before and after the run. ' +
      'flannel-equivalent: `weft lab up --store none` (same CNI plugin and pod MTU, no agent), then by hand in every node, as flanneld does (docs/flannel-compat.md §3.2): `ip link add flannel.1 type vxlan id 1 dstport 8472 nolearning dev eth0 local <node>`, MTU 1450, a random locally administered MAC, `<subnet>.0/32` on it; per peer `ip neigh replace <peer>.0 lladdr <mac> nud permanent`, `bridge fdb replace <mac> dev flannel.1 dst <peer node> self permanent`, `ip route replace <peer subnet> via <peer>.0 dev flannel.1 onlink`; and flanneld\'s --ip-masq iptables rules (the same ones weft\'s agents install). ' +
      'Every iperf3 and sockperf runs inside the lab\'s namespaces (`nsenter --net`, `taskset -c` for the pinned tests); client on the first node or its pod, server on the second. The pinned 1-stream test avoids veth reordering across cores (spurious retransmits, ±30 % swings); iperf3 3.12 runs all streams of one process on one thread, hence separate processes for 4 streams.',
    '',
    `**What explains the numbers.** ${findings(inp)}`,
    '',
    '<details><summary>Every measurement</summary>',
    '',
    perRoundTable(inp),
    '',
    '</details>',
    ...(results.problems.length > 0 ? ['', '**Problems seen during the run:**', '', ...results.problems.map((p) => `- ${p}`)] : []),
  ].join('\n');
}

await runBench(TAG, main);
