// `npm run bench:control`: how fast weft's agent turns etcd leases into kernel routes
// (see benchmarks/README.md).
//
//  - convergence: a new flanneld-format lease written into the lab's etcd → its route present in
//    each peer node's kernel (seen by `ip monitor route` in that node's namespace), and the same
//    for a lease's removal;
//  - cold start: `weft agent` started in a fresh node namespace against 0, 1,000 and 5,000
//    existing leases, timed from spawn until its status says ready with every peer programmed
//    and until the last route is in the kernel, with its RSS (and where it lives: V8 heap,
//    external, code), its CPU and the event loop's worst delay, against the figures before.
//
// One `weft lab up --store etcd` lab (two nodes) carries everything. Cold-start nodes are extra
// namespaces named weft-bench-<id>-cold<k>, plugged into the lab's zone a. Everything is removed
// at the end, also on failure and on Ctrl-C; only processes started here are signalled, by PID.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabState } from '../../src/lab/index.ts';
import { fetchStatus, type AgentStatus } from '../../src/agent/status.ts';
import {
  hrMs, inNs, machineFacts, median, mustRun, num, percentile, runBench, runCmd, sleep, track, trackLab, trackNamespace,
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
    launchers: { type: 'string', default: 'weft,bundle,source' },
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
type Launcher = 'weft' | 'bundle' | 'source';
const LAUNCHERS: Record<Launcher, string> = {
  weft: 'bin/weft agent as shipped: node --max-semi-space-size=1 build/weft.mjs',
  bundle: 'node build/weft.mjs (the bundle, default V8 flags)',
  source: 'node src/cli/main.ts (TypeScript sources, default V8 flags)',
};
/**
 * The figures before this round of work (BENCHMARKS.md of 2026-11-27: etcd3 gRPC client, a
 * TimeToLive per lease, three listings at start), by launcher that matches: RSS 3 s after
 * ready and time to ready, medians. 'weft' is compared with the bundle as it was launched then.
 */
const BEFORE: Record<Launcher, Record<number, { rssMb: number; readyMs: number }>> = {
  weft: { 0: { rssMb: 92.4, readyMs: 645 }, 1000: { rssMb: 134, readyMs: 1507 }, 5000: { rssMb: 262, readyMs: 4094 } },
  bundle: { 0: { rssMb: 92.4, readyMs: 645 }, 1000: { rssMb: 134, readyMs: 1507 }, 5000: { rssMb: 262, readyMs: 4094 } },
  source: { 0: { rssMb: 122, readyMs: 941 }, 1000: { rssMb: 155, readyMs: 2194 }, 5000: { rssMb: 284, readyMs: 4017 } },
};
const PROBE = join(ROOT, 'benchmarks', 'control', 'loop-probe.mjs');
/** bin/weft's V8 flags for the agent; checked against bin/weft at start. */
const WEFT_AGENT_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size'];
const MAIN = join(ROOT, 'src', 'cli', 'main.ts');
const HEALTHZ_PORT = 9931;
const launchers = (opts.launchers ?? '').split(',').map((s) => s.trim()).filter(Boolean) as Launcher[];
for (const l of launchers) if (!(l in LAUNCHERS)) throw new Error(`--launchers: unknown ${l} (${Object.keys(LAUNCHERS).join(', ')})`);
const BUNDLE = join(ROOT, 'build', 'weft.mjs');

/** The first source file newer than the bundle (then bin/weft runs the sources, not the bundle), or undefined. */
function staleBecause(): string | undefined {
  if (!existsSync(BUNDLE)) return `${BUNDLE} is missing`;
  const built = statSync(BUNDLE).mtimeMs;
  const walk = (dir: string): string | undefined => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        const found = walk(path);
        if (found) return found;
      } else if (e.name.endsWith('.ts') && statSync(path).mtimeMs > built) {
        return `${path} is newer than ${BUNDLE}`;
      }
    }
    return undefined;
  };
  return walk(join(ROOT, 'src'));
}
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
  /** CPU spent in the 3 s after ready (idle cost: timers, GC of what the start left). */
  cpuSettleMs: number;
  /** The event loop's worst delay from spawn to ready, ms: the agent's /metrics, else the probe's. */
  loopMaxMs: number;
  loopSource: 'metrics' | 'probe' | 'none';
  /** At ready, from the probe: process.memoryUsage() and V8's heap spaces, MB; and /proc's split of RSS. */
  mem: { heapTotal: number; heapUsed: number; external: number; newSpace: number; oldSpace: number; codeSpace: number; rssAnon: number; rssFile: number };
  /** ms after spawn of the agent's own log lines (pino `time`), by message. */
  phases: Record<string, number>;
  errors: string[];
}

const CLK_TCK = Number((await mustRun(['getconf', 'CLK_TCK'])).trim()) || 100;

function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

const PHASES = ['etcd API chosen', 'external interface', 'lease acquired', 'data plane reconciled', 'weft agent ready'];

/** Which of the agent's flags this tree has (both are recent): asked once from its --help. */
const agentHelp = await runCmd([WEFT, 'agent', '--help'], 60_000).then((r) => r.stdout + r.stderr, () => '');
const HAS_LOCK_FILE = agentHelp.includes('--lock-file');
const HAS_HEALTHZ = agentHelp.includes('--healthz-port');

/** weft_event_loop_delay_seconds{quantile="max"} from the agent's /metrics, in ms; NaN when it has none. */
async function scrapeLoopMax(ns: string): Promise<number> {
  if (!HAS_HEALTHZ) return NaN;
  const r = await runCmd(['ip', 'netns', 'exec', ns, 'curl', '-s', '--max-time', '3', `http://127.0.0.1:${HEALTHZ_PORT}/metrics`], 10_000).catch(() => undefined);
  const m = /^weft_event_loop_delay_seconds\{quantile="max"\} ([\d.e+-]+)$/m.exec(r?.stdout ?? '');
  return m ? Number(m[1]) * 1000 : NaN;
}

interface ProbeReport { loopMaxMs: number; memory: Record<string, number>; spaces: Record<string, { size: number; used: number }> }

function readProbe(file: string): ProbeReport | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ProbeReport;
  } catch {
    return undefined;
  }
}

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
    const probeFile = join(dir, 'probe.json');
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_NAME: `cold${k}`, WEFT_BENCH_PROBE_FILE: probeFile };
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${PROBE}`.trim();
    if (opts['agent-node-options']) env.NODE_OPTIONS = `${env.NODE_OPTIONS} ${opts['agent-node-options']}`.trim();
    if (profileDir) env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profileDir}`.trim();
    const sock = join(dir, 'agent.sock');
    const wall0 = Date.now();
    const t0 = hrMs();
    // 'weft' is the command bin/weft execs for `agent` with a fresh bundle (checked at start). Not
    // bin/weft itself: in a shared tree any edit to a source file makes it fall back to the sources.
    const exe = launcher === 'weft' ? [NODE, ...WEFT_AGENT_FLAGS, BUNDLE] : launcher === 'bundle' ? [NODE, BUNDLE] : [NODE, '--disable-warning=ExperimentalWarning', MAIN];
    const agent = spawn('nsenter', [`--net=/run/netns/${ns}`, ...exe, 'agent',
      '--etcd-endpoints', state.topology.etcd!.clientUrl, '--etcd-api', 'v3', '--etcd-prefix', coldPrefix(size),
      '--subnet-file', join(dir, 'subnet.env'), '--status-socket', sock, '--ip-masq',
      // Several agents on one machine (the lab's two, this one): each its own node lock.
      ...(HAS_LOCK_FILE ? ['--lock-file', join(dir, 'agent.lock')] : []),
      ...(HAS_HEALTHZ ? ['--healthz-ip', '127.0.0.1', '--healthz-port', String(HEALTHZ_PORT)] : [])], { stdio: ['ignore', fd, fd], env });
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
    const rssAnon = procStatusMb(pid, 'RssAnon');
    const rssFile = procStatusMb(pid, 'RssFile');
    const scraped = await scrapeLoopMax(ns);
    await sleep(300); // one more probe report, written after ready
    const probe = readProbe(probeFile);
    const loopMaxMs = Number.isFinite(scraped) ? scraped : probe?.loopMaxMs ?? NaN;
    const mb = (x: number | undefined): number => (x === undefined ? NaN : x / 2 ** 20);
    const mem = {
      heapTotal: mb(probe?.memory.heapTotal), heapUsed: mb(probe?.memory.heapUsed), external: mb(probe?.memory.external),
      newSpace: mb(probe?.spaces.new_space?.size), oldSpace: mb(probe?.spaces.old_space?.size), codeSpace: mb(probe?.spaces.code_space?.size), rssAnon, rssFile,
    };
    // Wait for the monitor to catch up (it reads what the kernel already sent), then count in the kernel itself.
    for (let i = 0; i < 100 && routes < size; i++) await sleep(50);
    const listed = await mustRun(['ip', '-n', ns, '-4', 'route', 'show', 'dev', 'flannel.1'], 60_000);
    const routesInKernel = listed.split('\n').filter((l) => /^\d/.test(l)).length;
    await sleep(3000);
    const rssSettledMb = procStatusMb(pid, 'VmRSS');
    const cpuSettleMs = cpuMsOf(pid) - cpuMs;

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
      size, launcher, round, readyMs, routesMs: routes >= size && size > 0 ? lastRouteAt - t0 : NaN, routesInKernel, rssMb, hwmMb, rssSettledMb, cpuMs, cpuSettleMs,
      loopMaxMs, loopSource: Number.isFinite(scraped) ? 'metrics' : probe ? 'probe' : 'none', mem, phases,
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
async function memProbe(state: LabState, what: string, imports: string[], flags: string[] = []): Promise<MemProbe> {
  const code = `${imports.map((u) => `await import(${JSON.stringify(u)});`).join(' ')} const m = process.memoryUsage(); console.log(JSON.stringify(m));`;
  const t0 = hrMs();
  const out = await mustRun(inNs(state.topology.etcd!.ns, [NODE, '--disable-warning=ExperimentalWarning', ...flags, '--input-type=module', '-e', code]), 60_000);
  const wallMs = hrMs() - t0;
  const m = JSON.parse(out.trim().split('\n').pop()!) as { rss: number; heapUsed: number; external: number };
  return { what, rssMb: m.rss / 2 ** 20, heapUsedMb: m.heapUsed / 2 ** 20, externalMb: m.external / 2 ** 20, wallMs };
}

async function memProbes(state: LabState): Promise<MemProbe[]> {
  const probes: [string, string[], string[]][] = [
    ['node alone', [], []],
    ['node --max-semi-space-size=1 alone', [], ['--max-semi-space-size=1']],
    ['node + node:http, node:https (the etcd gateway client\'s transports)', ['node:http', 'node:https'], []],
    ['node + node:http, node:https, node:http2 (what the removed lean TimeToLive path added)', ['node:http', 'node:https', 'node:http2'], []],
    ['node + import src/lease/etcd3/etcd3-store.ts (TypeScript stripped at load)', [pathToFileURL(join(ROOT, 'src/lease/etcd3/etcd3-store.ts')).href], []],
  ];
  const out: MemProbe[] = [];
  for (let round = 0; round < 3; round++) for (const [what, urls, flags] of probes) out.push(await memProbe(state, what, urls, flags));
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
    '| agent started as | existing leases | spawn → status ready (all peers, synced) ms | spawn → last route in kernel ms | routes in kernel | RSS at ready MB | RSS 3 s later MB | peak RSS (VmHWM) MB | CPU to ready ms | CPU in the 3 s after ms | event loop worst delay to ready ms | goal |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
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
    lines.push(`| ${LAUNCHERS[launcher]} | ${size} | ${withRange(rs.map((r) => r.readyMs), f0)} | ${withRange(rs.map((r) => r.routesMs), f0)} | ${rs.map((r) => r.routesInKernel).join(', ')} | ${withRange(rs.map((r) => r.rssMb), num)} | ${withRange(rs.map((r) => r.rssSettledMb), num)} | ${withRange(rs.map((r) => r.hwmMb), num)} | ${withRange(rs.map((r) => r.cpuMs), f0)} | ${withRange(rs.map((r) => r.cpuSettleMs), f0)} | ${withRange(rs.map((r) => r.loopMaxMs), f0)} | ${goals.join('; ')} |`);
  }
  return lines.join('\n');
}

/** Now against the figures before (BEFORE), as ratios of medians. */
function beforeTable(runs: ColdRun[]): string {
  const lines = [
    '| agent started as | existing leases | RSS 3 s after ready MB: before → now | now / before | time to ready ms: before → now | now / before |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const launcher of launchers) for (const size of sizes) {
    const rs = runs.filter((r) => r.size === size && r.launcher === launcher);
    const was = BEFORE[launcher][size];
    if (rs.length === 0 || !was) continue;
    const rss = median(rs.map((r) => r.rssSettledMb));
    const ready = median(rs.map((r) => Math.max(r.readyMs, Number.isFinite(r.routesMs) ? r.routesMs : 0)));
    lines.push(`| ${LAUNCHERS[launcher]} | ${size} | ${num(was.rssMb)} → **${num(rss)}** | ${(rss / was.rssMb).toFixed(2)} | ${was.readyMs} → **${ready.toFixed(0)}** | ${(ready / was.readyMs).toFixed(2)} |`);
  }
  return lines.join('\n');
}

/** Where the RSS at ready lives: V8's heap (its spaces), memory outside it, and /proc's anonymous vs file-backed split. */
function memAtReadyTable(runs: ColdRun[]): string {
  const lines = [
    '| agent started as | existing leases | RSS MB | anonymous (heaps, malloc) MB | file-backed (node binary, libraries) MB | V8 heap total MB | of it used MB | new space MB | old space MB | code space MB | external MB |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const launcher of launchers) for (const size of sizes) {
    const rs = runs.filter((r) => r.size === size && r.launcher === launcher);
    if (rs.length === 0) continue;
    const m = (f: (r: ColdRun) => number): string => num(median(rs.map(f)));
    lines.push(`| ${LAUNCHERS[launcher]} | ${size} | ${m((r) => r.rssMb)} | ${m((r) => r.mem.rssAnon)} | ${m((r) => r.mem.rssFile)} | ${m((r) => r.mem.heapTotal)} | ${m((r) => r.mem.heapUsed)} | ${m((r) => r.mem.newSpace)} | ${m((r) => r.mem.oldSpace)} | ${m((r) => r.mem.codeSpace)} | ${m((r) => r.mem.external)} |`);
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
    parts.push(`${LAUNCHERS[l]}, ${big} leases, ready after ${msText(ready)} ms: start-up and module loading until the first log line ${msText(load)} ms; etcd, config and interface ${msText(iface - load)} ms; listing the leases and acquiring one ${msText(leased - iface)} ms; the peer watch and programming every peer ${msText(synced - leased)} ms.`);
  }
  parts.push('The listing asks etcd for no lease TTLs (a key\'s etcd lease id says whether it has one; the store looks expiries up only when asked, which nothing in the agent does), over etcd\'s v3 JSON gateway. Programming N peers is one netlink batch of 3N requests (neighbour, FDB entry, route) after three dumps.');
  const rss = (l: Launcher, size: number): number => med(l, size, (r) => r.rssSettledMb);
  const slopes = launchers.filter(() => sizes.length > 1).map((l) => {
    const [a, b] = [Math.min(...sizes.filter((x) => x > 0)), Math.max(...sizes)];
    return a < b ? `${LAUNCHERS[l]} ${((1024 * (rss(l, b) - rss(l, a))) / (b - a)).toFixed(0)} KB per lease between ${a} and ${b}` : '';
  }).filter(Boolean);
  const m = (w: string): number => median(mem.filter((p) => p.what.startsWith(w)).map((p) => p.rssMb));
  if (mem.length > 0) {
    parts.push(`Memory: a bare Node 24 is ${num(m('node alone'))} MB on this machine (${num(m('node --max-semi-space-size=1 alone'))} MB with a 1 MB young generation) before a line of weft runs: that alone is ${((100 * m('node alone')) / 64).toFixed(0)} % of the 64 MB goal. node:http and node:https make it ${num(m('node + node:http, node:https ('))} MB; node:http2 on top ${num(m('node + node:http, node:https, node:http2'))} MB. Loading TypeScript through Node's stripper costs more again (the etcd v3 store alone from its .ts: ${num(m('node + import src/lease/etcd3'))} MB); the bundle avoids it${launchers.includes('source') && launchers.includes('bundle') ? ` and starts ${num(rss('source', 0) - rss('bundle', 0))} MB lower (${num(rss('bundle', 0))} MB at 0 leases)` : ''}. Growth: ${slopes.join('; ')}.`);
  }
  if (launchers.includes('weft') && launchers.includes('bundle')) {
    const cpu = (l: Launcher, sz: number): number => med(l, sz, (r) => r.cpuMs);
    parts.push(`A 1 MB young generation (bin/weft's --max-semi-space-size=1 against the bundle with V8's defaults) changes RSS 3 s after ready at ${sizes.map((sz) => `${sz} leases from ${num(rss('bundle', sz))} to ${num(rss('weft', sz))} MB`).join(', ')}; time to ready ${sizes.map((sz) => `at ${sz} from ${msText(med('bundle', sz, (r) => r.readyMs))} to ${msText(med('weft', sz, (r) => r.readyMs))} ms`).join(', ')}; CPU to ready ${sizes.map((sz) => `at ${sz} from ${msText(cpu('bundle', sz))} to ${msText(cpu('weft', sz))} ms`).join(', ')} (more, smaller scavenges; the price of the smaller young generation).`);
  }
  return parts.join(' ');
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error(`${TAG} needs root (it creates network namespaces)`);
  const stale = launchers.some((l) => l !== 'source') ? staleBecause() : undefined;
  if (stale) throw new Error(`${stale}: bin/weft would run the sources, not the bundle. Run \`npm run build:native\` first`);
  const launcher = readFileSync(WEFT, 'utf8');
  if (!launcher.includes(`exec "$node" ${WEFT_AGENT_FLAGS.join(' ')} "$bundle"`)) throw new Error(`${WEFT} no longer starts the agent as node ${WEFT_AGENT_FLAGS.join(' ')} build/weft.mjs: update WEFT_AGENT_FLAGS in ${SELF}`);
  log(`${TAG}: agent flags: --lock-file ${HAS_LOCK_FILE ? 'yes' : 'no (several agents share the default lock)'}, --healthz-port ${HAS_HEALTHZ ? 'yes' : 'no (the event loop from the probe)'}`);
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
      ? `Profiled run (TypeScript sources, NODE_OPTIONS=--cpu-prof, ${biggest} leases, ready after ${r.readyMs.toFixed(0)} ms with the profiler on): ${summariseProfile(JSON.parse(readFileSync(join(dir, file), 'utf8')), r.readyMs + 500)}`
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
    'Against the figures before (BENCHMARKS.md of 2026-11-27: the etcd3 gRPC client, a TimeToLive call per lease, three listings at start; "bin/weft agent" is compared with the bundle as it was launched then):',
    '',
    beforeTable(cold),
    '',
    `Where the RSS at ready lives (medians; V8 figures from a probe loaded into the agent, benchmarks/control/loop-probe.mjs, which also measures the event loop when the agent has no /metrics; this run: ${[...new Set(cold.map((r) => r.loopSource))].join(', ')}):`,
    '',
    memAtReadyTable(cold),
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

  process.stdout.write(`\n${explain(convergence, cold, mem)}\n\n${convergenceTable(convergence)}\n\n${coldTable(cold)}\n\n${beforeTable(cold)}\n\n${memAtReadyTable(cold)}\n\n${phaseTable(cold)}\n\n${profile}\n\n${memTable(mem)}\n`);
  if (opts.write) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'control', body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

await runBench(TAG, main, () => rmSync(tmp, { recursive: true, force: true }));
