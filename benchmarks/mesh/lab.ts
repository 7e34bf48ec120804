// `npm run bench:mesh-lab`: time to ready with real agents in a namespace lab, N = 3 and 10.
// Each lab is built with its nodes' agents not yet started (`start: 0`), then every agent is
// started at once and the clock runs until every agent is ready with its pod attached (IPAM
// seeded by consensus, blocks owned, peers programmed), and then until `lab check` passes in
// full (every pod↔pod, pod↔node and masqueraded outside path). The baseline of the same run is
// etcd mode: the same nodes with an etcd server and `lab up --store etcd`, timed from the start
// of its agents' phase (after the etcd server is up) to ready, as the lab reports it.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { labCheck, labDown, labNodeStart, labUp } from '../../src/lab/index.ts';
import { cleanupOnSignals, machineFacts, median, trackLab, untrackLab, withRange, writeSection } from '../dataplane/common.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const { values: opts } = parseArgs({ options: { rounds: { type: 'string', default: '2' }, sizes: { type: 'string', default: '3,10' }, 'no-write': { type: 'boolean', default: false } } });
const rounds = Number(opts.rounds);
const sizes = (opts.sizes ?? '3,10').split(',').map(Number);
const log = (s: string): void => void process.stderr.write(`${s}\n`);
cleanupOnSignals('bench:mesh-lab');

interface Sample { ready: number; connected: number; check: number; probes: number }

async function meshRound(n: number, i: number): Promise<Sample> {
  const name = `bml${n}r${i}`;
  trackLab(name);
  try {
    await labUp({ name, nodes: n, podsPerNode: 1, store: 'mesh', start: 0 });
    const t0 = performance.now();
    await labNodeStart(name, Array.from({ length: n }, (_, k) => `n${k + 1}`), { timeoutMs: 120_000 });
    const ready = performance.now() - t0;
    const c0 = performance.now();
    const report = await labCheck(name);
    const check = performance.now() - c0;
    if (report.failed > 0) throw new Error(`lab ${name}: ${report.failed} of ${report.probes.length} probes failed`);
    return { ready, connected: performance.now() - t0, check, probes: report.probes.length };
  } finally {
    await labDown(name).catch((e: Error) => log(`lab down ${name}: ${e.message}`));
    untrackLab(name);
  }
}

/** etcd mode's whole `lab up` (etcd server, agents, pods): a baseline for the same node count. */
async function etcdRound(n: number, i: number): Promise<number> {
  const name = `bel${n}r${i}`;
  trackLab(name);
  try {
    const t0 = performance.now();
    await labUp({ name, nodes: n, podsPerNode: 1, store: 'etcd' });
    return performance.now() - t0;
  } finally {
    await labDown(name).catch((e: Error) => log(`lab down ${name}: ${e.message}`));
    untrackLab(name);
  }
}

async function meshUpRound(n: number, i: number): Promise<number> {
  const name = `bmu${n}r${i}`;
  trackLab(name);
  try {
    const t0 = performance.now();
    await labUp({ name, nodes: n, podsPerNode: 1, store: 'mesh' });
    return performance.now() - t0;
  } finally {
    await labDown(name).catch((e: Error) => log(`lab down ${name}: ${e.message}`));
    untrackLab(name);
  }
}

const started = Date.now();
const rows: string[] = [];
for (const n of sizes) {
  const mesh: Sample[] = [];
  const etcdUp: number[] = [];
  const meshUp: number[] = [];
  for (let i = 0; i < rounds; i++) {
    log(`mesh lab, ${n} nodes, round ${i + 1}`);
    mesh.push(await meshRound(n, i));
    meshUp.push(await meshUpRound(n, i));
    etcdUp.push(await etcdRound(n, i));
  }
  const s = (xs: number[]): string => withRange(xs, (x) => (x / 1000).toFixed(2));
  rows.push(`| ${n} | ${rounds} | **${s(mesh.map((m) => m.ready))}** | ${s(mesh.map((m) => m.connected))} | ${s(mesh.map((m) => m.check))} (${mesh[0]!.probes} probes) | ${s(meshUp)} | ${s(etcdUp)} | ${(median(meshUp) / median(etcdUp)).toFixed(2)} |`);
}

const body = [
  '## Mesh mode in the lab: time to ready with real agents',
  '',
  `Measured ${new Date(started).toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench:mesh-lab\` (benchmarks/mesh/lab.ts). Seconds, median (range) over rounds.`,
  '',
  '| nodes | rounds | mesh: agents start → all ready, pods attached s | → full `lab check` passed s | of that, the check itself s | mesh: whole `lab up` s | etcd mode: whole `lab up` s (baseline) | mesh ÷ etcd |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...rows,
  '',
  'Weave Net needed about 30 s to seed its IPAM on small clusters (published reports, not measured here). In mesh mode a cold cluster waits for a quorum of its initial peers (consensus=N); the lowest-named elector proposes 0.5 s after the last Paxos activity it saw, the next one 0.5 s later, and so on.',
  '',
  `**Method.** \`labUp({store: "mesh", start: 0})\` builds the underlay, nodes and CNI configs without agents; then every agent is started at once (\`labNodeStart\`, which returns when each agent reports ready and its pod is attached); then \`labCheck\` probes every path. The whole-\`lab up\` columns include building the namespaces (and, for etcd, starting the etcd server and writing the config), the same work for both stores apart from the store. Machine: ${machineFacts(ROOT)}.`,
].join('\n');
process.stdout.write(`${body}\n`);
if (!opts['no-write']) {
  writeSection(join(ROOT, 'BENCHMARKS.md'), 'mesh-lab', body);
  log('wrote BENCHMARKS.md');
}
