// `npm run bench:control`: how fast weft's agent turns etcd leases into kernel routes
// (see benchmarks/README.md).
//
//  - convergence: a new flanneld-format lease written into the lab's etcd → its route present in
//    each peer node's kernel (seen by `ip monitor route` in that node's namespace), and the same
//    for a lease's removal;
//  - cold start: `weft agent` started in a fresh node namespace against 0, 1,000 and 5,000
//    existing leases, timed from spawn until its status says ready with every peer programmed
//    and until the last route is in the kernel, with its RSS.
//
// One `weft lab up --store etcd` lab (two nodes) carries everything. Cold-start nodes are extra
// namespaces named weft-bench-<id>-cold<k>, plugged into the lab's zone a. Everything is removed
// at the end, also on failure and on Ctrl-C; only processes started here are signalled, by PID.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabState } from '../../src/lab/index.ts';
import { fetchStatus, type AgentStatus } from '../../src/agent/status.ts';
import {
  cleanup, cleanupOnSignals, hrMs, inNs, machineFacts, median, mustRun, num, percentile, runCmd, sleep, track, trackLab, trackNamespace,
  untrackLab, untrackNamespace, withRange, writeSection,
} from '../dataplane/common.ts';
import { runInner, type ConvergeResult, type InnerSpec, type PopulateResult } from './inner.ts';
import { summariseProfile } from './profile.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const WEFT = join(ROOT, 'bin', 'weft');
const NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node');
const TAG = 'bench:control';

const { values: opts } = parseArgs({
  options: {
    inner: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    leases: { type: 'string', default: '100' },
    sizes: { type: 'string', default: '0,1000,5000' },
    launchers: { type: 'string', default: 'source,bundle,bundle-semi1' },
    /** Extra NODE_OPTIONS for the cold-started agents (investigation, e.g. --max-semi-space-size=1). */
    'agent-node-options': { type: 'string', default: '' },
    'cpu-prof': { type: 'boolean', default: true },
    write: { type: 'boolean', default: true },
  },
  allowNegative: true,
});

if (opts.inner) {
  await runInner(opts.inner);
  process.exit(0);
}

function int(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer from ${min} to ${max} (got ${text})`);
  return n;
}
const rounds = int('rounds', opts.rounds, 1, 20);
const leaseCount = int('leases', opts.leases, 1, 250); // free /24s of the lab's 10.16.0.0/16
const sizes = (opts.sizes ?? '').split(',').map((s) => int('sizes', s.trim(), 0, 20000));
type Launcher = 'source' | 'bundle' | 'bundle-semi1';
const LAUNCHERS: Record<Launcher, string> = {
  source: 'bin/weft (TypeScript sources)',
  bundle: 'node build/weft.mjs (esbuild bundle)',
  'bundle-semi1': 'node --max-semi-space-size=1 build/weft.mjs (bundle, 1 MB young generation)',
};
const launchers = (opts.launchers ?? '').split(',').map((s) => s.trim()).filter(Boolean) as Launcher[];
for (const l of launchers) if (!(l in LAUNCHERS)) throw new Error(`--launchers: unknown ${l} (${Object.keys(LAUNCHERS).join(', ')})`);
const BUNDLE = join(ROOT, 'build', 'weft.mjs');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const id = randomBytes(3).toString('hex');
const tmp = mkdtempSync(join(tmpdir(), `weft-bench-${id}-`));
const COLD_ADDRESS = '172.31.1.250';
const COLD_CONFIG = JSON.stringify({ Network: '10.0.0.0/8', SubnetLen: 24, Backend: { Type: 'vxlan' } });
const coldPrefix = (size: number): string => `/weft-bench/cold${size}`;

type SpecOf<T> = T extends unknown ? Omit<T, 'resultFile' | 'endpoint'> : never;

/** Re-execs this file inside the etcd member's namespace with a spec, and returns its result. */
async function inner<T>(state: LabState, spec: SpecOf<InnerSpec>, timeoutMs: number): Promise<T> {
  const n = readdirSync(tmp).length;
  const specFile = join(tmp, `spec-${n}.json`);
  const resultFile = join(tmp, `result-${n}.json`);
  writeFileSync(specFile, JSON.stringify({ ...spec, endpoint: 'http://127.0.0.1:2379', resultFile }));
  const etcdNs = state.topology.etcd?.ns;
  if (!etcdNs) throw new Error('the lab has no etcd member');
  const r = await runCmd(inNs(etcdNs, [process.execPath, '--disable-warning=ExperimentalWarning', SELF, '--inner', specFile]), timeoutMs);
  if (r.code !== 0) throw new Error(`the ${spec.kind} step inside ${etcdNs} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(readFileSync(resultFile, 'utf8')) as T;
}

// --- cold start ------------------------------------------------------------------------------

interface ColdRun {
  size: number;
  launcher: Launcher;
  round: number;
  /** spawn → status ready with every peer and a sync. */
  readyMs: number;
  /** spawn → the last peer route seen by `ip monitor route` (NaN when the monitor missed some). */
  routesMs: number;
  routesInKernel: number;
  rssMb: number;
  hwmMb: number;
  rssSettledMb: number;
  cpuMs: number;
  /** ms after spawn of the agent's own log lines (pino `time`), by message. */
  phases: Record<string, number>;
  errors: string[];
}

const CLK_TCK = Number((await mustRun(['getconf', 'CLK_TCK'])).trim()) || 100;

function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

const PHASES = ['etcd API chosen', 'external interface', 'lease acquired', 'data plane reconciled', 'weft agent ready'];

async function coldStart(state: LabState, size: number, launcher: Launcher, round: number, k: number, profileDir?: string): Promise<ColdRun> {
  const zone = state.topology.zones[0]!;
  const ns = `weft-bench-${id}-cold${k}`;
  const port = `cb${id}${k}`.slice(0, 15);
  const dir = join(tmp, `cold${k}`);
  mkdirSync(dir, { recursive: true });
  await mustRun(['ip', 'netns', 'add', ns]);
  trackNamespace(ns);
  let agentPid: number | undefined;
  let monitor: ReturnType<typeof spawn> | undefined;
  try {
    await mustRun(['ip', '-n', zone.ns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await mustRun(['ip', '-n', zone.ns, 'link', 'set', port, 'master', 'br0', 'up']);
    await mustRun(['ip', '-n', ns, '-batch', '-'], 10_000, `link set lo up\naddr add ${COLD_ADDRESS}/24 dev eth0\nlink set eth0 up\nroute add default via ${zone.gateway}\n`);

    // Count peer routes as the kernel announces them.
    let routes = 0;
    let lastRouteAt = NaN;
    monitor = spawn('ip', ['-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    track(monitor, `ip monitor in ${ns}`);
    createInterface({ input: monitor.stdout! }).on('line', (line) => {
      if (/^\d+\.\d+\.\d+\.\d+\/\d+ .*dev flannel\.1/.test(line) && ++routes === size) lastRouteAt = hrMs();
    });
    await sleep(300);

    const logFile = join(dir, 'agent.log');
    const fd = openSync(logFile, 'w');
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: `cold${k}` };
    if (opts['agent-node-options']) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} ${opts['agent-node-options']}`.trim();
    if (profileDir) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`.trim();
    const sock = join(dir, 'agent.sock');
    const wall0 = Date.now();
    const t0 = hrMs();
    const exe = launcher === 'source' ? [WEFT]
      : [NODE, '--disable-warning=ExperimentalWarning', ...(launcher === 'bundle-semi1' ? ['--max-semi-space-size=1'] : []), BUNDLE];
    const agent = spawn('nsenter', [`--net=/run/netns/${ns}`, ...exe, 'agent',
      '--etcd-endpoints', state.topology.etcd!.clientUrl, '--etcd-api', 'v3', '--etcd-prefix', coldPrefix(size),
      '--subnet-file', join(dir, 'subnet.env'), '--status-socket', sock, '--ip-masq'], { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    agentPid = track(agent, `weft agent in ${ns}`);
    const pid = agentPid;

    let status: AgentStatus | undefined;
    const deadline = t0 + 180_000;
    for (;;) {
      if (agent.exitCode !== null || agent.signalCode !== null) {
        throw new Error(`the agent exited (${agent.signalCode ?? agent.exitCode}) before it was ready with ${size} leases; log: ${readFileSync(logFile, 'utf8').slice(-1500)}`);
      }
      if (existsSync(sock)) status = await fetchStatus(sock).catch(() => undefined);
      if (status?.ready && status.lastSync !== null && status.peers.length >= size) break;
      if (hrMs() > deadline) throw new Error(`the agent was not ready with ${size} peers after 180 s (status: ${status ? `${status.peers.length} peers` : 'none'})`);
      await sleep(20);
    }
    const readyMs = hrMs() - t0;
    const rssMb = procStatusMb(pid, 'VmRSS');
    const hwmMb = procStatusMb(pid, 'VmHWM');
    const cpuMs = cpuMsOf(pid);
    // Wait for the monitor to catch up (it reads what the kernel already sent), then count in the kernel itself.
    for (let i = 0; i < 100 && routes < size; i++) await sleep(50);
    const listed = await mustRun(['ip', '-n', ns, '-4', 'route', 'show', 'dev', 'flannel.1'], 60_000);
    const routesInKernel = listed.split('\n').filter((l) => /^\d/.test(l)).length;
    await sleep(3000);
    const rssSettledMb = procStatusMb(pid, 'VmRSS');

    const phases: Record<string, number> = {};
    let first = NaN;
    for (const line of readFileSync(logFile, 'utf8').split('\n')) {
      try {
        const e = JSON.parse(line) as { time?: number; msg?: string };
        if (typeof e.time !== 'number') continue;
        if (Number.isNaN(first)) first = e.time - wall0;
        if (e.msg && PHASES.includes(e.msg) && phases[e.msg] === undefined) phases[e.msg] = e.time - wall0;
      } catch {
        // not a log line
      }
    }
    phases['first log line'] = first;

    agent.kill('SIGTERM');
    for (let i = 0; i < 100 && agent.exitCode === null && agent.signalCode === null; i++) await sleep(50);
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    // Its own lease goes, so the next run meets exactly `size` leases again.
    if (status?.lease?.subnet) {
      await runCmd(inNs(state.topology.etcd!.ns, ['env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints=http://127.0.0.1:2379', 'del', `${coldPrefix(size)}/subnets/${status.lease.subnet.replace('/', '-')}`]));
    }
    return {
      size, launcher, round, readyMs, routesMs: routes >= size && size > 0 ? lastRouteAt - t0 : NaN, routesInKernel, rssMb, hwmMb, rssSettledMb, cpuMs, phases,
      errors: status?.errors.map((e) => e.message) ?? [],
    };
  } finally {
    if (agentPid !== undefined) {
      try {
        process.kill(agentPid, 0);
        process.kill(agentPid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    monitor?.kill('SIGTERM');
    await mustRun(['ip', 'netns', 'del', ns]).catch(() => undefined);
    untrackNamespace(ns);
    await sleep(1000);
  }
}

// --- where the memory goes ------------------------------------------------------------------

interface MemProbe { what: string; rssMb: number; heapUsedMb: number; externalMb: number; wallMs: number }

/** A fresh Node (the agent's binary and flags) that loads a module graph and reports its memory, run inside the etcd member's namespace. */
async function memProbe(state: LabState, what: string, importUrl: string | undefined): Promise<MemProbe> {
  const code = `${importUrl ? `await import(${JSON.stringify(importUrl)});` : ''} const m = process.memoryUsage(); console.log(JSON.stringify(m));`;
  const t0 = hrMs();
  const out = await mustRun(inNs(state.topology.etcd!.ns, [NODE, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', code]), 60_000);
  const wallMs = hrMs() - t0;
  const m = JSON.parse(out.trim().split('\n').pop()!) as { rss: number; heapUsed: number; external: number };
  return { what, rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20, externalMb: m.external / 2 ** 20, wallMs };
}

async function memProbes(state: LabState): Promise<MemProbe[]> {
  const probes: [string, string | undefined][] = [
    ['node alone', undefined],
    ['node + import src/lease/etcd3/etcd3-store.ts (the etcd v3 store and its JSON-gateway client)', pathToFileURL(join(ROOT, 'src/lease/etcd3/etcd3-store.ts')).href],
    ['node + import src/agent/agent.ts (the agent\'s whole module graph, TypeScript stripped at load)', pathToFileURL(join(ROOT, 'src/agent/agent.ts')).href],
  ];
  const out: MemProbe[] = [];
  for (let round = 0; round < 3; round++) for (const [what, url] of probes) out.push(await memProbe(state, what, url));
  return out;
}

function memTable(probes: MemProbe[]): string {
  const lines = ['| process | RSS MB | V8 heap used MB | external MB | spawn → exit ms |', '|---|---:|---:|---:|---:|'];
  for (const what of [...new Set(probes.map((p) => p.what))]) {
    const ps = probes.filter((p) => p.what === what);
    lines.push(`| ${what} | ${withRange(ps.map((p) => p.rssMb), num)} | ${withRange(ps.map((p) => p.heapUsedMb), num)} | ${withRange(ps.map((p) => p.externalMb), num)} | ${withRange(ps.map((p) => p.wallMs), (x) => x.toFixed(0))} |`);
  }
  return lines.join('\n');
}

// --- report ----------------------------------------------------------------------------------

const msText = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : 'n/a');

function convergenceTable(results: ConvergeResult[]): string {
  const lines = [
    '| peer node | event | leases | p50 ms | p90 ms | **p99 ms** | max ms | missed (> timeout) | goal |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  const nodes = Object.keys(results[0]?.add ?? {});
  for (const node of nodes) {
    for (const ev of ['add', 'remove'] as const) {
      const all = results.flatMap((r) => r[ev][node] ?? []);
      const ok = all.filter((x): x is number => x !== null);
      const missed = all.length - ok.length;
      const p99 = missed > all.length * 0.01 ? Infinity : percentile(ok, 99);
      lines.push(`| ${node} | ${ev === 'add' ? 'lease written → route present' : 'lease deleted → route gone'} | ${all.length} | ${msText(percentile(ok, 50))} | ${msText(percentile(ok, 90))} | **${msText(p99)}** | ${msText(Math.max(...ok))} | ${missed} | ${ev === 'add' ? (p99 < 1000 ? '< 1 s ✅' : '< 1 s ❌') : ''} |`);
    }
  }
  return lines.join('\n');
}

function coldTable(runs: ColdRun[]): string {
  const lines = [
    '| agent started as | existing leases | spawn → status ready (all peers, synced) ms | spawn → last route in kernel ms | routes in kernel | RSS at ready MB | RSS 3 s later MB | peak RSS (VmHWM) MB | CPU to ready ms | goal |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const launcher of launchers) for (const size of sizes) {
    const rs = runs.filter((r) => r.size === size && r.launcher === launcher);
    if (rs.length === 0) continue;
    const ready = median(rs.map((r) => Math.max(r.readyMs, Number.isFinite(r.routesMs) ? r.routesMs : 0)));
    const rss = median(rs.map((r) => r.rssSettledMb));
    const goals = [
      ...(size === 5000 ? [`5,000 in < 2 s${ready < 2000 ? ' ✅' : ' ❌'}`] : []),
      ...(size === 1000 ? [`RSS < 64 MB${rss < 64 ? ' ✅' : ' ❌'}`] : []),
    ];
    const f0 = (x: number): string => x.toFixed(0);
    lines.push(`| ${LAUNCHERS[launcher]} | ${size} | ${withRange(rs.map((r) => r.readyMs), f0)} | ${withRange(rs.map((r) => r.routesMs), f0)} | ${rs.map((r) => r.routesInKernel).join(', ')} | ${withRange(rs.map((r) => r.rssMb), num)} | ${withRange(rs.map((r) => r.rssSettledMb), num)} | ${withRange(rs.map((r) => r.hwmMb), num)} | ${withRange(rs.map((r) => r.cpuMs), f0)} | ${goals.join('; ')} |`);
  }
  return lines.join('\n');
}

function phaseTable(runs: ColdRun[]): string {
  const cols = ['first log line', ...PHASES];
  const lines = [`| agent started as | existing leases | ${cols.map((c) => `"${c}"`).join(' | ')} |`, `|---|---:|${cols.map(() => '---:').join('|')}|`];
  for (const launcher of launchers) for (const size of sizes) {
    const rs = runs.filter((r) => r.size === size && r.launcher === launcher);
    if (rs.length === 0) continue;
    lines.push(`| ${LAUNCHERS[launcher]} | ${size} | ${cols.map((c) => withRange(rs.map((r) => r.phases[c] ?? NaN), (x) => x.toFixed(0))).join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Plain statements computed from this run's numbers. */
function explain(convergence: ConvergeResult[], cold: ColdRun[], mem: MemProbe[]): string {
  const parts: string[] = [];
  const adds = convergence.flatMap((c) => Object.values(c.add).flat()).filter((x): x is number => x !== null);
  if (adds.length > 0) {
    parts.push(`A new lease reaches a peer's kernel in ${msText(percentile(adds, 50))} ms at the median and ${msText(percentile(adds, 99))} ms at p99 (both nodes pooled): one etcd watch event, then one reconcile (three netlink dumps, one batch).`);
  }
  const med = (l: Launcher, size: number, f: (r: ColdRun) => number): number => median(cold.filter((r) => r.launcher === l && r.size === size).map(f));
  const big = Math.max(...sizes);
  for (const l of launchers) {
    if (big === 0 || !cold.some((r) => r.launcher === l && r.size === big)) continue;
    const load = med(l, big, (r) => r.phases['first log line'] ?? NaN);
    const iface = med(l, big, (r) => r.phases['external interface'] ?? NaN);
    const leased = med(l, big, (r) => r.phases['lease acquired'] ?? NaN);
    const synced = med(l, big, (r) => r.phases['data plane reconciled'] ?? NaN);
    const ready = med(l, big, (r) => r.readyMs);
    parts.push(`${LAUNCHERS[l]}, ${big} leases, ready after ${msText(ready)} ms: start-up and module loading until the first log line ${msText(load)} ms; etcd, config and interface ${msText(iface - load)} ms; listing the leases and acquiring one ${msText(leased - iface)} ms; listing them again for the peer watch and programming every peer ${msText(synced - leased)} ms.`);
  }
  parts.push('At start the agent lists all leases three times (its own lease by PublicIP, in acquire, for the peer watch); the first listing also asks etcd for every subnet lease\'s TTL (one LeaseTimeToLive call per etcd lease, over the lean HTTP/2 client; everything else goes through etcd\'s v3 JSON gateway), the others hit its TTL cache. Programming N peers is one netlink batch of 3N requests (neighbour, FDB entry, route) after three dumps.');
  const rss = (l: Launcher, size: number): number => med(l, size, (r) => r.rssSettledMb);
  const slopes = launchers.filter(() => sizes.length > 1).map((l) => {
    const [a, b] = [Math.min(...sizes.filter((x) => x > 0)), Math.max(...sizes)];
    return a < b ? `${LAUNCHERS[l]} ${((1024 * (rss(l, b) - rss(l, a))) / (b - a)).toFixed(0)} KB per lease between ${a} and ${b}` : '';
  }).filter(Boolean);
  const m = (w: string): number => median(mem.filter((p) => p.what.startsWith(w)).map((p) => p.rssMb));
  if (mem.length > 0) {
    parts.push(`Memory: a bare Node is ${num(m('node alone'))} MB; importing the etcd v3 store (node:http and a JSON-gateway client) makes it ${num(m('node + import src/lease/etcd3'))} MB; the agent's whole module graph, loaded from TypeScript, ${num(m('node + import src/agent'))} MB, before any lease. The bundle avoids Node's TypeScript stripper (amaro, a WebAssembly build of SWC) and starts ${num(rss('source', 0) - rss('bundle', 0))} MB lower (${num(rss('bundle', 0))} MB at 0 leases). Growth: ${slopes.join('; ')}.`);
  }
  if (launchers.includes('bundle-semi1') && launchers.includes('bundle')) {
    parts.push(`A 1 MB young generation (--max-semi-space-size=1) changes RSS at ${sizes.map((sz) => `${sz} leases from ${num(rss('bundle', sz))} to ${num(rss('bundle-semi1', sz))} MB`).join(', ')} and time to ready ${sizes.map((sz) => `at ${sz} from ${msText(med('bundle', sz, (r) => r.readyMs))} to ${msText(med('bundle-semi1', sz, (r) => r.readyMs))} ms`).join(', ')}: much of the growth is young-generation garbage that V8 keeps mapped, not live data.`);
  }
  return parts.join(' ');
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error(`${TAG} needs root (it creates network namespaces)`);
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  const name = `bc${id}`;
  trackLab(name);
  log(`${TAG}: lab ${name} up; ${rounds} rounds; ${leaseCount} leases per convergence round; cold start against ${sizes.join(', ')} leases; load ${loadBefore}`);
  const state = await labUp({ name, nodes: 2, podsPerNode: 0, store: 'etcd', backend: 'vxlan' });
  const watched = state.topology.nodes.map((n) => ({ name: `${n.name} (zone ${n.zone})`, ns: n.ns }));

  const populated = new Map<number, PopulateResult>();
  for (const size of sizes) {
    const p = await inner<PopulateResult>(state, { kind: 'populate', prefix: coldPrefix(size), config: COLD_CONFIG, count: size, ttlSeconds: 3600 }, 600_000);
    populated.set(size, p);
    log(`cold start: ${size} leases written under ${coldPrefix(size)} in ${p.ms.toFixed(0)} ms`);
  }

  const convergence: ConvergeResult[] = [];
  const cold: ColdRun[] = [];
  let k = 0;
  for (let round = 1; round <= rounds; round++) {
    log(`round ${round}/${rounds}: convergence, ${leaseCount} leases (load ${loadavg()[0]!.toFixed(2)})`);
    const c = await inner<ConvergeResult>(state, {
      kind: 'converge', prefix: '/coreos.com/network', count: leaseCount, ttlSeconds: 600, timeoutMs: 10_000, nodes: watched, gapMs: [20, 120],
    }, 30 * 60_000);
    convergence.push(c);
    for (const n of watched) {
      const ok = (c.add[n.name] ?? []).filter((x): x is number => x !== null);
      log(`  ${n.name}: add p50 ${msText(percentile(ok, 50))} p99 ${msText(percentile(ok, 99))} ms (${(c.add[n.name] ?? []).length - ok.length} missed)`);
    }
    const combos = launchers.flatMap((l) => sizes.map((size) => ({ l, size })));
    const order = combos.map((_, i) => combos[(i + round - 1) % combos.length]!);
    for (const { l, size } of order) {
      log(`round ${round}/${rounds}: cold start (${l}) against ${size} leases (load ${loadavg()[0]!.toFixed(2)})`);
      const r = await coldStart(state, size, l, round, ++k);
      cold.push(r);
      log(`  ready ${r.readyMs.toFixed(0)} ms, last route ${msText(r.routesMs)} ms, ${r.routesInKernel} routes, RSS ${r.rssMb.toFixed(1)} → ${r.rssSettledMb.toFixed(1)} MB (peak ${r.hwmMb.toFixed(1)}), CPU ${r.cpuMs.toFixed(0)} ms; phases ${JSON.stringify(Object.fromEntries(Object.entries(r.phases).map(([a, b]) => [a, Math.round(b)])))}`);
    }
  }

  let profile = '';
  const biggest = Math.max(...sizes);
  if (opts['cpu-prof'] && biggest > 0) {
    log(`profile: cold start against ${biggest} leases with --cpu-prof`);
    const dir = join(tmp, 'prof');
    mkdirSync(dir, { recursive: true });
    const r = await coldStart(state, biggest, 'source', 0, k + 1, dir);
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
    profile = file
      ? `Profiled run (bin/weft, NODE_OPTIONS=--cpu-prof, ${biggest} leases, ready after ${r.readyMs.toFixed(0)} ms with the profiler on): ${summariseProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')), r.readyMs + 500)}`
      : 'The profiled run wrote no .cpuprofile (the agent did not exit through process.exit).';
    log(profile);
  }
  log('memory: module graphs loaded by a bare node');
  const mem = await memProbes(state);
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
  await labDown(name);
  untrackLab(name);

  const coldErrors = [...new Set(cold.flatMap((r) => r.errors))];
  const body = [
    '## Control plane: lease → route convergence and agent cold start',
    '',
    `Measured ${date} by \`npm run bench:control\` (benchmarks/control/run.ts), ${rounds} rounds.`,
    '',
    '### Convergence',
    '',
    convergenceTable(convergence),
    '',
    `Per round ${leaseCount} leases, one after another (20–120 ms apart), then deleted one after another; every sample of every round is pooled (nearest-rank percentiles). Per round, add p99 on each node: ${watched.map((n) => `${n.name} ${convergence.map((c) => msText(percentile((c.add[n.name] ?? []).filter((x): x is number => x !== null), 99))).join(', ')} ms`).join('; ')}. The put itself (etcd round trip) took p50 ${msText(percentile(convergence.flatMap((c) => c.putMs), 50))} ms.`,
    '',
    '### Cold start',
    '',
    coldTable(cold),
    '',
    'When the agent logged each step, ms after spawn (median and range over rounds; pino timestamps, 1 ms resolution):',
    '',
    phaseTable(cold),
    '',
    ...(profile ? [profile, ''] : []),
    'Where the RSS comes from: a bare Node with the agent\'s binary and flags, loading module graphs and exiting (3 runs each):',
    '',
    memTable(mem),
    '',
    `Writing the leases (one etcd lease grant + put each, 64 at a time): ${[...populated].map(([s, p]) => `${s}: ${p.ms.toFixed(0)} ms`).join(', ')}.`,
    '',
    `Machine: ${machineFacts(ROOT)}. Load average (1/5/15 min) ${loadBefore} before, ${loadAfter} after: the machine is shared with other jobs.`,
    '',
    '**Method.** One `weft lab up --store etcd --backend vxlan` lab with two nodes (n1 in zone a, n2 in zone b), each running `weft agent` as the lab starts it. ' +
      `Convergence: the benchmark re-execs itself inside the etcd member's namespace; that process writes each lease with the etcd v3 API exactly as flanneld stores one (key \`/coreos.com/network/subnets/10.16.X.0-24\`, value \`{"PublicIP":…,"PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":<random>}}\`, attached to its own etcd lease of 600 s; fake PublicIPs on the zone segments) and watches both nodes' kernels with \`ip -n <node> monitor route\`; a sample is the time from just before the put to the monitor's line for that subnet's route on flannel.1 (one monotonic clock, in one process). A missed sample (none within 10 s) counts as infinite. ` +
      `Cold start: ${sizes.join(', ')} leases written beforehand under their own prefix (\`/weft-bench/cold<N>\`, network config ${COLD_CONFIG}, one etcd lease of 1 h per subnet lease as flanneld grants them, /24s 10.0.1.0, 10.0.2.0, …; PublicIPs spread over 172.31.1.20–219 and 172.31.2.20–219, random VtepMACs). ` +
      `Each run creates a fresh namespace plugged into zone a (${COLD_ADDRESS}/24) and starts \`bin/weft agent --etcd-api v3 --etcd-prefix /weft-bench/cold<N> --ip-masq …\` in it with nsenter; "ready" is the first answer on its status socket (polled every 20 ms) with ready = true, a lastSync and all N peers; "last route" is when \`ip monitor route\` in that namespace showed the N-th route on flannel.1, and the routes are then counted with \`ip route\`. RSS is VmRSS from /proc/<pid>/status at ready and 3 s later; VmHWM is the peak. After each run the agent is stopped, its own lease deleted and its namespace removed. The sizes rotate their order every round.`,
    '',
    `**What explains the numbers.** ${explain(convergence, cold, mem)}`,
    ...(coldErrors.length > 0 ? ['', `Errors the cold-started agents reported: ${coldErrors.slice(0, 5).join('; ')}`] : []),
  ].join('\n');

  process.stdout.write(`\n${explain(convergence, cold, mem)}\n\n${convergenceTable(convergence)}\n\n${coldTable(cold)}\n\n${phaseTable(cold)}\n\n${profile}\n\n${memTable(mem)}\n`);
  if (opts.write) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'control', body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

cleanupOnSignals(TAG);
let exitCode = 1;
try {
  exitCode = await main();
} catch (e) {
  process.stderr.write(`\n${TAG}: BROKEN RUN: ${(e as Error).stack ?? (e as Error).message}\n`);
} finally {
  await cleanup(TAG);
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(exitCode);
