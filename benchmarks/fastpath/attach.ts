// `npm run bench:fastpath`: what the eBPF fast path adds to a routed pod's ADD. The agent's CNI
// server calls FastPath.podAttached at the end of each routed ADD (a tc attach on the host veth
// and a map write); this times that same call, through the same manager and the real kernel,
// for N veths in a scratch namespace, plus the load at agent start and one full reconcile.
// bench:cni's server-routed variant has the rest of the routed ADD; the section says how the
// two add up. Root only; the namespace and its bpffs are removed at the end, also on a signal.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { percentile } from '../stats.ts';
import { machineFacts, mustRun, num, runBench, trackNamespace, writeSection } from '../dataplane/common.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TAG = 'bench:fastpath';

const { values: opts } = parseArgs({ options: { pods: { type: 'string', default: '100' }, rounds: { type: 'string', default: '3' }, 'no-write': { type: 'boolean', default: false } } });
const pods = Math.min(1000, Math.max(1, Number(opts.pods) | 0));
const rounds = Math.min(10, Math.max(1, Number(opts.rounds) | 0));

// Runs inside the namespace: the manager over the real kernel, timing each call.
const DRIVER = `
const { FastPath } = await import(process.env.WEFT_ROOT + 'src/fastpath/manager.ts');
const { openFastPathKernel } = await import(process.env.WEFT_ROOT + 'src/fastpath/kernel.ts');
const { silentLogger } = await import(process.env.WEFT_ROOT + 'src/log/logger.ts');
const { pinDir, pods } = JSON.parse(process.argv[1]);
let kernelPods = [];
let failures = 0; // the manager logs a failed kernel step instead of throwing: count them
const log = { ...silentLogger, warn: () => void failures++ };
const fp = new FastPath({ open: () => openFastPathKernel({ pinDir }), linkIndex: () => undefined, routedPods: () => kernelPods, log });
let t = performance.now();
fp.start({ network: '10.244.0.0/16', uplinks: [] });
const loadMs = performance.now() - t;
if (!fp.status().active) throw new Error(fp.status().reason);
const attachMs = [];
for (const p of pods) {
  t = performance.now();
  fp.podAttached(p);
  attachMs.push(performance.now() - t);
}
kernelPods = pods;
t = performance.now();
fp.reconcile();
const reconcileMs = performance.now() - t;
const s = fp.status();
fp.close();
console.log(JSON.stringify({ loadMs, attachMs, reconcileMs, mapped: s.pods, failures }));
`;

interface RoundResult { loadMs: number; attachMs: number[]; reconcileMs: number; mapped: number; failures: number }

async function round(i: number): Promise<RoundResult> {
  const ns = `weftbfa-${process.pid}-${i}`;
  await mustRun(['ip', 'netns', 'add', ns]);
  trackNamespace(ns);
  const bpf = mkdtempSync(join(tmpdir(), 'weft-bench-bpf-'));
  try {
    await mustRun(['mount', '-t', 'bpf', 'bpf', bpf]);
    // N veth pairs in one namespace: a tc attach needs only the host end, not a pod namespace.
    const batch = Array.from({ length: pods }, (_, k) => `link add h${k} address 02:00:00:00:${(k >> 8).toString(16).padStart(2, '0')}:${(k & 255).toString(16).padStart(2, '0')} type veth peer name p${k}\nlink set h${k} up`).join('\n');
    await mustRun(['ip', '-n', ns, '-batch', '-'], 120_000, `${batch}\n`);
    const links = JSON.parse(await mustRun(['ip', '-n', ns, '-j', 'link', 'show', 'type', 'veth'])) as { ifname: string; ifindex: number; address: string }[];
    const entries = links.filter((l) => l.ifname.startsWith('h')).map((l) => {
      const k = Number(l.ifname.slice(1));
      return { ifindex: l.ifindex, ipv4: `10.244.${1 + (k >> 8)}.${2 + (k & 255) % 250}`, podMac: '02:aa:00:00:00:01', hostMac: l.address };
    });
    const out = await mustRun(['nsenter', `--net=/run/netns/${ns}`, process.execPath, '--input-type=module', '-e', DRIVER, JSON.stringify({ pinDir: join(bpf, 'pins'), pods: entries })], 300_000);
    return JSON.parse(out.trim().split('\n').pop() ?? '{}') as RoundResult;
  } finally {
    // The namespace goes with runBench's cleanup (also on a signal); the bpffs now.
    spawnSync('umount', [bpf]);
    rmSync(bpf, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('bench:fastpath needs root (namespaces, BPF)');
  process.env.WEFT_ROOT = ROOT;
  const results: RoundResult[] = [];
  for (let i = 1; i <= rounds; i++) {
    results.push(await round(i));
    process.stderr.write(`${TAG}: round ${i}/${rounds}: ${pods} pods attached\n`);
  }
  const all = results.flatMap((r) => r.attachMs);
  const med = (xs: number[]): number => percentile(xs, 50);
  const body = [
    '## Fast path: what it adds to a routed pod\'s ADD',
    '',
    `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench:fastpath\` (benchmarks/fastpath/attach.ts): the agent's hook at the end of a routed ADD (\`FastPath.podAttached\`: the tc attach on the host veth and the pod map write), through the same manager and the real kernel, for ${pods} veths in a scratch namespace, ${rounds} rounds.`,
    '',
    '| figure | ms |',
    '|---|---:|',
    `| **per pod, p50** (all rounds) | **${num(med(all))}** |`,
    `| per pod, p99 | ${num(percentile(all, 99))} |`,
    `| load at agent start (object, maps pinned), median over rounds | ${num(med(results.map((r) => r.loadMs)))} |`,
    `| one reconcile of ${pods} pods (maps and attachments already right), median | ${num(med(results.map((r) => r.reconcileMs)))} |`,
    '',
    `The routed ADD itself is bench:cni's "weft (server, --pod-link routed)"; with the fast path on, a pod's ADD costs that plus the per-pod figure above. Machine: ${machineFacts(ROOT)}.`,
  ].join('\n');
  process.stdout.write(`${body}\n`);
  if (!opts['no-write']) writeSection(join(ROOT, 'BENCHMARKS.md'), 'fastpath', body);
  const broken = results.filter((r) => r.mapped !== pods || r.failures > 0);
  for (const r of broken) process.stderr.write(`${TAG}: a round mapped ${r.mapped} of ${pods} pods with ${r.failures} failed kernel steps\n`);
  return broken.length === 0 ? 0 : 1;
}

await runBench(TAG, main);
