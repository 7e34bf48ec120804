// `npm run bench:kube`: what the Kubernetes client and the kube store cost weft's agent, against
// the etcd-mode agent measured in the same run (see benchmarks/kube/README.md).
//
//  - cold start: `weft agent` (the bundle, as bin/weft starts it) in a fresh node namespace
//    plugged into a lab, (a) --store etcd against N existing leases, (b) --store kube against N
//    existing Nodes, each announced (flannel's annotations) and holding a claim Lease; its RSS at
//    ready and 3 s later, where that memory lives (V8 heap, external, file-backed), the time
//    from spawn to ready with all N peers, the CPU it took;
//  - the same kube agent built with proposed changes (benchmarks/kube/variants.ts), so that each
//    proposal comes with its figure;
//  - short-lived processes: the bundle's --version and a bare import of the client chunk, to
//    separate "the client library" from "the cached Nodes".
//
// One `weft lab up --store etcd` lab (one node) carries everything: its etcd member for (a),
// and, in that same control-plane host's namespace, one stand-in API server per N
// (benchmarks/kube/standin.ts, populated in-process) for (b). Cold-start nodes are extra
// namespaces weft-bench-<id>-kube<k> on zone a. Everything is removed at the end, also on
// failure and on Ctrl-C; only processes started here are signalled, by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { labDown, labUp, type LabState } from '../../src/lab/index.ts';
import { fetchStatus, type AgentStatus } from '../../src/agent/status.ts';
import { hrMs, inNs, machineFacts, median, mustRun, num, runBench, runCmd, sleep, track, trackLab, trackNamespace, untrackLab, untrackNamespace, withRange, writeSection } from '../dataplane/common.ts';
import { runInner, type InnerSpec, type PopulateResult } from '../control/inner.ts';
import { buildClientOnly, buildVariant, bundleBytes, CHANGES, NotApplicable, type ChangeName, type Variant } from './variants.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const WEFT = join(ROOT, 'bin', 'weft');
const NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node');
const BUNDLE = join(ROOT, 'build', 'weft.mjs');
const STANDIN = join(ROOT, 'benchmarks', 'kube', 'standin.ts');
const AGENT_PROBE = join(ROOT, 'benchmarks', 'kube', 'agent-probe.mjs');
const MEM_PROBE = join(ROOT, 'benchmarks', 'kube', 'mem-probe.mjs');
const LIST_PROBE = join(ROOT, 'benchmarks', 'kube', 'list-probe.ts');
const TAG = 'bench:kube';
/** bin/weft's V8 flags for the agent; checked against bin/weft at start. */
const WEFT_AGENT_FLAGS = ['--max-semi-space-size=1', '--optimize-for-size'];

const { values: opts } = parseArgs({
  options: {
    inner: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    sizes: { type: 'string', default: '0,1000,5000' },
    variants: { type: 'string', default: 'etcd,etcd-optsize,kube,kube-trim,kube-slim,kube-ascii,kube-optsize,kube-ascii-optsize,kube-whole-nodes' },
    /** investigation: a heap snapshot of each kube agent at the largest size in the last round, kept in this directory */
    'heap-snapshots': { type: 'string' },
    /** investigation: log the RSS every second up to this many seconds after ready (before the forced GC) */
    'watch-rss': { type: 'string', default: '0' },
    /** investigation: /proc/<pid>/smaps of every agent after the full GC, into this directory */
    smaps: { type: 'string' },
    /** investigation: extra node/V8 flags for the agents (repeatable) */
    'agent-flags': { type: 'string', multiple: true, default: [] },
    /** investigation: extra environment for the agents (NAME=VALUE, repeatable) */
    'agent-env': { type: 'string', multiple: true, default: [] },
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
const rounds = int('rounds', opts.rounds, 1, 10);
const sizes = (opts.sizes ?? '').split(',').map((s) => int('sizes', s.trim(), 0, 9000)); // the reflector's bound is 10,000

type VariantName = 'etcd' | 'etcd-optsize' | 'kube' | 'kube-trim' | 'kube-slim' | 'kube-ascii' | 'kube-optsize' | 'kube-ascii-optsize' | 'kube-whole-nodes';
/** Proposed for bin/weft's agent command line. */
const OPTIMIZE_FOR_SIZE = '--optimize-for-size';
const FLAG_NOTES: Record<string, string> = {
  [OPTIMIZE_FOR_SIZE]: `\`node ${OPTIMIZE_FOR_SIZE}\` on the agent's command line in bin/weft (V8 grows its heap less and gives freed pages back; it is a V8 flag NODE_OPTIONS does not accept)`,
};
/** changes: to the bundle (variants.ts); flags: more V8 flags on the agent's command line; largestOnly: run with the most peers only */
const VARIANTS: Record<VariantName, { label: string; store: 'etcd' | 'kube'; changes: ChangeName[]; flags?: string[]; largestOnly?: boolean }> = {
  etcd: { label: 'etcd store (baseline)', store: 'etcd', changes: [] },
  'etcd-optsize': { label: `etcd store, proposed: node ${OPTIMIZE_FOR_SIZE}`, store: 'etcd', changes: [], flags: [OPTIMIZE_FOR_SIZE] },
  kube: { label: 'kube store', store: 'kube', changes: [] },
  'kube-trim': { label: 'kube store, proposed: only the client parts weft names in its chunk', store: 'kube', changes: ['trim-client'] },
  'kube-slim': { label: 'kube store, proposed: slim cached Nodes', store: 'kube', changes: ['slim-nodes'] },
  'kube-ascii': { label: 'kube store, proposed: whitespace-minified bundle (ASCII-only sources)', store: 'kube', changes: ['ascii-source'] },
  'kube-optsize': { label: `kube store, proposed: node ${OPTIMIZE_FOR_SIZE}`, store: 'kube', changes: [], flags: [OPTIMIZE_FOR_SIZE] },
  'kube-ascii-optsize': { label: `kube store, both proposals: whitespace-minified bundle and ${OPTIMIZE_FOR_SIZE}`, store: 'kube', changes: ['ascii-source'], flags: [OPTIMIZE_FOR_SIZE] },
  'kube-whole-nodes': { label: 'kube store with whole Nodes cached (slimming undone, for comparison)', store: 'kube', changes: ['whole-nodes'], largestOnly: true },
};
/** Variants with changes that do not apply to the tree as it is are skipped (and said so). */
const requested = (opts.variants ?? '').split(',').map((s) => s.trim()).filter(Boolean) as VariantName[];
for (const v of requested) if (!(v in VARIANTS)) throw new Error(`--variants: unknown ${v} (${Object.keys(VARIANTS).join(', ')})`);
let variants: VariantName[] = requested;

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const id = randomBytes(3).toString('hex');
const tmp = mkdtempSync(join(tmpdir(), `weft-bench-${id}-`));
/** a copy of build/ taken at the start: what "as shipped" runs */
const SHIPPED = join(tmp, 'shipped');
const COLD_ADDRESS = '172.31.1.250';
const COLD_CONFIG = JSON.stringify({ Network: '10.0.0.0/8', SubnetLen: 24, Backend: { Type: 'vxlan' } });
const coldPrefix = (size: number): string => `/weft-bench/kube${size}`;
const CLK_TCK = Number((await mustRun(['getconf', 'CLK_TCK'])).trim()) || 100;

/** The first source file newer than the bundle (then bin/weft would run the sources), or undefined. */
function staleBecause(): string | undefined {
  if (!existsSync(BUNDLE)) return `${BUNDLE} is missing`;
  const built = statSync(BUNDLE).mtimeMs;
  if (statSync(join(ROOT, 'package-lock.json')).mtimeMs > built) return 'package-lock.json is newer than the bundle';
  const walk = (dir: string): string | undefined => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      const found = e.isDirectory() ? walk(path) : e.name.endsWith('.ts') && statSync(path).mtimeMs > built ? `${path} is newer than ${BUNDLE}` : undefined;
      if (found) return found;
    }
    return undefined;
  };
  return walk(join(ROOT, 'src'));
}

// --- the two stores -------------------------------------------------------------------------

/** Re-execs this file inside the etcd member's namespace to write N flanneld-format leases. */
async function populateEtcd(state: LabState, size: number): Promise<PopulateResult> {
  const specFile = join(tmp, `populate-${size}.json`);
  const resultFile = join(tmp, `populate-${size}.result.json`);
  const spec: InnerSpec = { kind: 'populate', endpoint: 'http://127.0.0.1:2379', prefix: coldPrefix(size), config: COLD_CONFIG, count: size, ttlSeconds: 3600, resultFile };
  writeFileSync(specFile, JSON.stringify(spec));
  const r = await runCmd(inNs(state.topology.etcd!.ns, [process.execPath, '--disable-warning=ExperimentalWarning', SELF, '--inner', specFile]), 600_000);
  if (r.code !== 0) throw new Error(`writing ${size} leases failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.slice(-1500)}`);
  return JSON.parse(readFileSync(resultFile, 'utf8')) as PopulateResult;
}

/** A line-per-answer reader on a child's stdout. */
function lineReader(child: ChildProcess): (timeoutMs: number, what: string) => Promise<string> {
  const queue: string[] = [];
  const waiters: ((line: string | undefined) => void)[] = [];
  let closed = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const w = waiters.shift();
    if (w) w(line);
    else queue.push(line);
  }).on('close', () => {
    closed = true;
    for (const w of waiters.splice(0)) w(undefined);
  });
  return (timeoutMs, what) => new Promise((resolve, reject) => {
    if (queue.length > 0) return resolve(queue.shift()!);
    if (closed) return reject(new Error(`${what}: the stand-in exited`));
    const timer = setTimeout(() => reject(new Error(`${what}: no answer from the stand-in within ${timeoutMs} ms`)), timeoutMs);
    waiters.push((line) => {
      clearTimeout(timer);
      if (line === undefined) reject(new Error(`${what}: the stand-in exited`));
      else resolve(line);
    });
  });
}

interface Standin { size: number; kubeconfig: string; child: ChildProcess; logFile: string; populateMs: number; nodeBytes: number; leaseBytes: number; ask(cmd: object): Promise<Record<string, unknown>> }

/** One stand-in API server with `size` announced Nodes, in the control-plane host's namespace. */
async function startStandin(state: LabState, size: number, port: number): Promise<Standin> {
  const etcd = state.topology.etcd!;
  const kubeconfig = join(tmp, `kubeconfig-${size}.yaml`);
  const logFile = join(tmp, `standin-${size}.log`);
  const fd = openSync(logFile, 'w');
  const child = spawn('nsenter', [`--net=/run/netns/${etcd.ns}`, NODE, '--disable-warning=ExperimentalWarning', STANDIN,
    '--listen', `${etcd.address}:${port}`, '--kubeconfig', kubeconfig, '--nodes', String(size), '--network-config', COLD_CONFIG], { stdio: ['pipe', 'pipe', fd] });
  closeSync(fd);
  track(child, `stand-in API server (${size} Nodes)`);
  const read = lineReader(child);
  const first = JSON.parse(await read(120_000, `starting the stand-in with ${size} Nodes (log ${logFile})`).catch((e: Error) => {
    throw new Error(`${e.message}: ${existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-1500) : ''}`);
  })) as { url: string; populateMs: number; nodeBytes: number; leaseBytes: number };
  let busy: Promise<unknown> = Promise.resolve();
  const ask = (cmd: object): Promise<Record<string, unknown>> => {
    const next = busy.then(async () => {
      child.stdin!.write(`${JSON.stringify(cmd)}\n`);
      const answer = JSON.parse(await read(30_000, JSON.stringify(cmd))) as Record<string, unknown>;
      if (answer.ok !== true) throw new Error(`the stand-in refused ${JSON.stringify(cmd)}: ${String(answer.error)}`);
      return answer;
    });
    busy = next.catch(() => undefined);
    return next;
  };
  return { size, kubeconfig, child, logFile, populateMs: first.populateMs, nodeBytes: first.nodeBytes, leaseBytes: first.leaseBytes, ask };
}

// --- cold start ------------------------------------------------------------------------------

interface Mem { heapTotal: number; heapUsed: number; external: number; oldSpace: number; codeSpace: number; rssAnon: number; rssFile: number }

interface ColdRun {
  variant: VariantName;
  size: number;
  round: number;
  /** spawn → status ready with every peer and a sync */
  readyMs: number;
  rssMb: number;
  rssSettledMb: number;
  hwmMb: number;
  cpuMs: number;
  cpuSettleMs: number;
  loopMaxMs: number;
  routes: number;
  /** at ready, from the probe and /proc, MB */
  mem: Mem;
  /** 3 s after ready */
  memSettled: Mem;
  /** then, after a full GC (the probe's): what the agent keeps */
  afterGc: AfterGc;
  phases: Record<string, number>;
  errors: string[];
}

const PHASES = ['first log line', 'external interface', 'subnet held', 'data plane reconciled', 'weft agent ready'];
/** etcd mode's name for the same step */
const PHASE_ALIASES: Record<string, string> = { 'lease acquired': 'subnet held' };

function procStatusMb(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

interface ProbeReport { loopMaxMs: number; memory: Record<string, number>; spaces: Record<string, { size: number; used: number }> }

function memOf(pid: number, probeFile: string): { mem: Mem; loopMaxMs: number } {
  let p: ProbeReport | undefined;
  try {
    p = JSON.parse(readFileSync(probeFile, 'utf8')) as ProbeReport;
  } catch {
    p = undefined;
  }
  const mb = (x: number | undefined): number => (x === undefined ? NaN : x / 2 ** 20);
  return {
    mem: {
      heapTotal: mb(p?.memory.heapTotal), heapUsed: mb(p?.memory.heapUsed), external: mb(p?.memory.external),
      oldSpace: mb(p?.spaces.old_space?.size), codeSpace: mb(p?.spaces.code_space?.size), rssAnon: procStatusMb(pid, 'RssAnon'), rssFile: procStatusMb(pid, 'RssFile'),
    },
    loopMaxMs: p?.loopMaxMs ?? NaN,
  };
}

/** Asks the agent's probe for a full GC, then what is live (NaN if it does not answer). */
interface AfterGc { heapUsedMb: number; heapTotalMb: number; externalMb: number; rssMb: number; rssAnonMb: number; rssFileMb: number }

async function liveAfterGc(probeFile: string): Promise<AfterGc> {
  writeFileSync(`${probeFile}.gc`, '');
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    try {
      const r = JSON.parse(readFileSync(`${probeFile}.after-gc`, 'utf8')) as { memory: Record<string, number>; vmRssKb: number; rssAnonKb: number; rssFileKb: number };
      if (opts.smaps) log(`  heap statistics after GC: ${JSON.stringify(Object.fromEntries(Object.entries((r as unknown as { heap: Record<string, number> }).heap).map(([k, x]) => [k, k.startsWith('number') || k.startsWith('does') ? x : Math.round(x / 2 ** 20)])))}`);
      return {
        heapUsedMb: r.memory.heapUsed! / 2 ** 20, heapTotalMb: r.memory.heapTotal! / 2 ** 20, externalMb: r.memory.external! / 2 ** 20,
        rssMb: r.vmRssKb / 1024, rssAnonMb: r.rssAnonKb / 1024, rssFileMb: r.rssFileKb / 1024,
      };
    } catch {
      // not yet
    }
  }
  return { heapUsedMb: NaN, heapTotalMb: NaN, externalMb: NaN, rssMb: NaN, rssAnonMb: NaN, rssFileMb: NaN };
}

async function heapSnapshot(probeFile: string, target: string): Promise<void> {
  mkdirSync(opts['heap-snapshots']!, { recursive: true });
  writeFileSync(`${probeFile}.snapshot`, target);
  for (let i = 0; i < 600 && (existsSync(`${probeFile}.snapshot`) || !existsSync(target)); i++) await sleep(100);
  await sleep(1000);
  log(`  heap snapshot: ${target}`);
}

function phasesOf(logFile: string, wall0: number): Record<string, number> {
  const phases: Record<string, number> = {};
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    try {
      const e = JSON.parse(line) as { time?: number; msg?: string };
      if (typeof e.time !== 'number') continue;
      phases['first log line'] ??= e.time - wall0;
      const msg = e.msg === undefined ? undefined : PHASE_ALIASES[e.msg] ?? e.msg;
      if (msg && PHASES.includes(msg)) phases[msg] ??= e.time - wall0;
    } catch {
      // not a log line
    }
  }
  return phases;
}

async function coldStart(state: LabState, v: VariantName, bundle: string, size: number, standin: Standin | undefined, round: number, k: number): Promise<ColdRun> {
  const zone = state.topology.zones[0]!;
  const ns = `weft-bench-${id}-kube${k}`;
  const port = `kb${id}${k}`.slice(0, 15);
  const nodeName = `cold${k}`;
  const dir = join(tmp, `cold${k}`);
  mkdirSync(dir, { recursive: true });
  await mustRun(['ip', 'netns', 'add', ns]);
  trackNamespace(ns);
  let agent: ChildProcess | undefined;
  const store = VARIANTS[v].store;
  try {
    await mustRun(['ip', '-n', zone.ns, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await mustRun(['ip', '-n', zone.ns, 'link', 'set', port, 'master', 'br0', 'up']);
    await mustRun(['ip', '-n', ns, '-batch', '-'], 10_000, `link set lo up\naddr add ${COLD_ADDRESS}/24 dev eth0\nlink set eth0 up\nroute add default via ${zone.gateway}\n`);
    // As its kubelet would have: the Node exists before the agent starts.
    if (standin) await standin.ask({ op: 'add-node', name: nodeName, ip: COLD_ADDRESS });

    const logFile = join(dir, 'agent.log');
    const probeFile = join(dir, 'probe.json');
    const sock = join(dir, 'agent.sock');
    const env: NodeJS.ProcessEnv = { ...process.env, ...Object.fromEntries((opts['agent-env'] ?? []).map((e) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)])), NODE_NAME: nodeName, WEFT_BENCH_PROBE_FILE: probeFile };
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${AGENT_PROBE}`.trim();
    const storeArgs = store === 'etcd'
      ? ['--etcd-endpoints', state.topology.etcd!.clientUrl, '--etcd-api', 'v3', '--etcd-prefix', coldPrefix(size)]
      : ['--store', 'kube', '--kubeconfig-file', standin!.kubeconfig, '--node-name', nodeName];
    const fd = openSync(logFile, 'w');
    const wall0 = Date.now();
    const t0 = hrMs();
    // What bin/weft execs for `agent` with a fresh bundle (checked at start); not bin/weft itself,
    // which falls back to the sources as soon as another helper edits a file in this tree.
    agent = spawn('nsenter', [`--net=/run/netns/${ns}`, NODE, ...WEFT_AGENT_FLAGS, ...(VARIANTS[v].flags ?? []), ...(opts['agent-flags'] ?? []), bundle, 'agent', ...storeArgs,
      '--subnet-file', join(dir, 'subnet.env'), '--status-socket', sock, '--ip-masq', '--lock-file', join(dir, 'agent.lock')], { stdio: ['ignore', fd, fd], env });
    closeSync(fd);
    const pid = track(agent, `weft agent (${v}) in ${ns}`);

    let status: AgentStatus | undefined;
    const deadline = t0 + 180_000;
    for (;;) {
      if (agent.exitCode !== null || agent.signalCode !== null) {
        throw new Error(`the agent (${v}) exited (${agent.signalCode ?? agent.exitCode}) before it was ready with ${size} peers; log: ${readFileSync(logFile, 'utf8').slice(-1500)}`);
      }
      if (existsSync(sock)) status = await fetchStatus(sock).catch(() => undefined);
      if (status?.ready && status.lastSync !== null && status.peers.length >= size) break;
      if (hrMs() > deadline) throw new Error(`the agent (${v}) was not ready with ${size} peers after 180 s (status: ${status ? `${status.phase}, ${status.peers.length} peers, ${status.errors.map((e) => e.message).join('; ')}` : 'none'})`);
      await sleep(20);
    }
    const readyMs = hrMs() - t0;
    const rssMb = procStatusMb(pid, 'VmRSS');
    const cpuMs = cpuMsOf(pid);
    await sleep(300); // one probe report written after ready
    const atReady = memOf(pid, probeFile);
    await sleep(2700);
    const rssSettledMb = procStatusMb(pid, 'VmRSS');
    const hwmMb = procStatusMb(pid, 'VmHWM');
    const cpuSettleMs = cpuMsOf(pid) - cpuMs;
    const settled = memOf(pid, probeFile);
    if (Number(opts['watch-rss']) > 3) {
      const seen: string[] = [];
      for (let t = 4; t <= Number(opts['watch-rss']); t++) {
        await sleep(1000);
        seen.push(`${t}s ${procStatusMb(pid, 'VmRSS').toFixed(0)}`);
      }
      log(`  RSS after ready: ${seen.join(', ')}`);
    }
    const afterGc = await liveAfterGc(probeFile);
    if (opts.smaps) {
      mkdirSync(opts.smaps, { recursive: true });
      writeFileSync(join(opts.smaps, `${v}-${size}-r${round}.smaps`), readFileSync(`/proc/${pid}/smaps`));
    }
    if (opts['heap-snapshots'] && store === 'kube' && round === rounds && size === Math.max(...sizes)) await heapSnapshot(probeFile, join(opts['heap-snapshots'], `${v}-${size}.heapsnapshot`));
    const listed = await mustRun(['ip', '-n', ns, '-4', 'route', 'show', 'dev', 'flannel.1'], 60_000);
    const routes = listed.split('\n').filter((l) => /^\d/.test(l)).length;

    agent.kill('SIGTERM');
    for (let i = 0; i < 100 && agent.exitCode === null && agent.signalCode === null; i++) await sleep(50);
    // Its own lease or claim goes, so the next run meets exactly `size` peers again.
    if (store === 'etcd' && status.lease?.subnet) {
      await runCmd(inNs(state.topology.etcd!.ns, ['env', 'ETCDCTL_API=3', 'etcdctl', '--endpoints=http://127.0.0.1:2379', 'del', `${coldPrefix(size)}/subnets/${status.lease.subnet.replace('/', '-')}`]));
    }
    return {
      variant: v, size, round, readyMs, rssMb, rssSettledMb, hwmMb, cpuMs, cpuSettleMs, loopMaxMs: atReady.loopMaxMs, routes,
      mem: atReady.mem, memSettled: settled.mem, afterGc, phases: phasesOf(logFile, wall0), errors: status.errors.map((e) => e.message),
    };
  } finally {
    if (agent?.pid !== undefined && agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    if (standin) await standin.ask({ op: 'remove-node', name: nodeName }).catch((e: Error) => log(`  ${e.message}`));
    await mustRun(['ip', 'netns', 'del', ns]).catch(() => undefined);
    untrackNamespace(ns);
    await sleep(500);
  }
}

// --- short-lived processes: the library alone ------------------------------------------------

interface MemProbe { what: string; rssMb: number; hwmMb: number; heapUsedMb: number; externalMb: number }

/** A fresh Node with the agent's flags running argv (after node), its memory as it exits. */
async function memProbe(what: string, args: string[]): Promise<MemProbe> {
  const file = join(tmp, `mem-${randomBytes(4).toString('hex')}.json`);
  const r = await runCmd(['env', `WEFT_BENCH_MEM_FILE=${file}`, NODE, ...WEFT_AGENT_FLAGS, `--import=${MEM_PROBE}`, ...args], 60_000);
  if (r.code !== 0) throw new Error(`${what}: exit ${r.code}: ${r.stderr.slice(-800)}`);
  const m = JSON.parse(readFileSync(file, 'utf8')) as { memory: { heapUsed: number; external: number }; vmRssKb: number; vmHwmKb: number };
  return { what, rssMb: m.vmRssKb / 1024, hwmMb: m.vmHwmKb / 1024, heapUsedMb: m.memory.heapUsed / 2 ** 20, externalMb: m.memory.external / 2 ** 20 };
}

const importing = (file: string, settleMs: number): string[] =>
  ['--input-type=module', '-e', `await import(${JSON.stringify(pathToFileURL(file).href)}); await new Promise((r) => setTimeout(r, ${settleMs}));`];

type Chunks = { entry: string; code: string };

async function memProbes(shipped: Chunks, alone: { parts: string; whole: string }, trimmed: Chunks | undefined): Promise<MemProbe[]> {
  const size = (file: string): string => mb(statSync(file).size);
  const probes: [string, string[]][] = [
    ['node alone', ['-e', '0']],
    ['build/weft.mjs --version (the bundle as shipped)', [join(SHIPPED, 'weft.mjs'), '--version']],
    [`import of the client-node chunk the kube store loads (build/chunks, as shipped: ${size(shipped.code)} MB of code), at once`, importing(shipped.entry, 0)],
    [`the same, 3 s later`, importing(shipped.entry, 3000)],
    ...(trimmed ? [[`the same with the proposed trimmed chunk (${size(trimmed.code)} MB), 3 s later`, importing(trimmed.entry, 3000)] as [string, string[]]] : []),
    [`import of src/kube/client-node.ts bundled alone (the parts weft names: ${size(alone.parts)} MB), 3 s later`, importing(alone.parts, 3000)],
    [`import of the whole @kubernetes/client-node package bundled alone (${size(alone.whole)} MB), 3 s later`, importing(alone.whole, 3000)],
  ];
  const out: MemProbe[] = [];
  for (let round = 0; round < 3; round++) for (const [what, args] of probes) out.push(await memProbe(what, args));
  return out;
}

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1);

/** Bytes above 0x7f: one makes V8 keep the whole source text as two bytes per character. */
function nonAscii(file: string): number {
  const b = readFileSync(file);
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i]! > 0x7f) n++;
  return n;
}

/** The chunk a bundle's client-node.ts became: it re-exports from the chunk that holds the code. */
function clientChunks(bundleDir: string): Chunks {
  const chunks = join(bundleDir, 'chunks');
  const entry = readdirSync(chunks).find((f) => f.startsWith('client-node-'));
  if (!entry) throw new Error(`${chunks} has no client-node-*.mjs chunk: has the bundle's layout changed?`);
  const text = readFileSync(join(chunks, entry), 'utf8');
  const imported = [...text.matchAll(/from "\.\/(chunk-[A-Z0-9]+\.mjs)"/g)].map((m) => join(chunks, m[1]!));
  const code = [join(chunks, entry), ...imported].sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
  return { entry: join(chunks, entry), code };
}

interface ListProbe { how: string; items: number; beforeMb: number; peakMb: number; afterMb: number; afterGcMb: number }

/** benchmarks/kube/list-probe.ts against a stand-in, in its namespace: both ways, 3 runs each. */
async function listProbes(state: LabState, standin: Standin): Promise<ListProbe[]> {
  const out: ListProbe[] = [];
  for (let round = 0; round < 3; round++) {
    for (const how of ['client', 'raw']) {
      const r = await mustRun(inNs(state.topology.etcd!.ns, [NODE, ...WEFT_AGENT_FLAGS, '--expose-gc', '--disable-warning=ExperimentalWarning', LIST_PROBE, '--kubeconfig', standin.kubeconfig, '--how', how]), 120_000);
      out.push(JSON.parse(r.trim().split('\n').pop()!) as ListProbe);
    }
  }
  return out;
}

// --- report ----------------------------------------------------------------------------------

const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');

function medianOf(runs: ColdRun[], v: VariantName, size: number, f: (r: ColdRun) => number): number {
  return median(runs.filter((r) => r.variant === v && r.size === size).map(f));
}

function coldTable(runs: ColdRun[]): string {
  const lines = [
    '| agent | existing peers | spawn → ready (all peers) ms | CPU to ready ms | RSS at ready MB | **RSS 3 s later MB** | peak RSS MB | V8 heap total / used MB (3 s later) | external MB | anonymous / file-backed MB | then after a full GC: heap live / RSS MB | routes | goal |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const v of variants) for (const size of sizes) {
    const rs = runs.filter((r) => r.variant === v && r.size === size);
    if (rs.length === 0) continue;
    const m = (f: (r: ColdRun) => number): string => num(median(rs.map(f)));
    const rss = median(rs.map((r) => r.rssSettledMb));
    const goal = size === 1000 ? `< 64 MB ${rss < 64 ? '✅' : '❌'}` : '';
    lines.push(`| ${VARIANTS[v].label} | ${size} | ${withRange(rs.map((r) => r.readyMs), f0)} | ${withRange(rs.map((r) => r.cpuMs), f0)} | ${withRange(rs.map((r) => r.rssMb), num)} | **${withRange(rs.map((r) => r.rssSettledMb), num)}** | ${withRange(rs.map((r) => r.hwmMb), num)} | ${m((r) => r.memSettled.heapTotal)} / ${m((r) => r.memSettled.heapUsed)} | ${m((r) => r.memSettled.external)} | ${m((r) => r.memSettled.rssAnon)} / ${m((r) => r.memSettled.rssFile)} | ${m((r) => r.afterGc.heapUsedMb)} / ${m((r) => r.afterGc.rssMb)} | ${rs.map((r) => r.routes).join(', ')} | ${goal} |`);
  }
  return lines.join('\n');
}

function ratioTable(runs: ColdRun[]): string {
  const lines = ['| agent | existing peers | RSS 3 s later: etcd → this MB | ÷ etcd | ready: etcd → this ms | ÷ etcd | CPU to ready: etcd → this ms | ÷ etcd |', '|---|---:|---:|---:|---:|---:|---:|---:|'];
  if (!variants.includes('etcd')) return '';
  for (const v of variants.filter((x) => x !== 'etcd')) for (const size of sizes) {
    if (!runs.some((r) => r.variant === v && r.size === size)) continue;
    const pair = (f: (r: ColdRun) => number): string => {
      const [a, b] = [medianOf(runs, 'etcd', size, f), medianOf(runs, v, size, f)];
      return `${num(a)} → **${num(b)}** | ${(b / a).toFixed(2)}`;
    };
    lines.push(`| ${VARIANTS[v].label} | ${size} | ${pair((r) => r.rssSettledMb)} | ${pair((r) => r.readyMs)} | ${pair((r) => r.cpuMs)} |`);
  }
  return lines.join('\n');
}

function listTable(lists: ListProbe[]): string {
  const lines = ['| one list of every Node, read as | Nodes | RSS before MB | peak MB | RSS after, items kept MB | after a full GC MB |', '|---|---:|---:|---:|---:|---:|'];
  const label: Record<string, string> = { client: 'today: KubeClient.listNodes() (client-node model classes), copied to JSON, slimmed', raw: 'fetch + JSON.parse, slimmed' };
  for (const how of ['client', 'raw']) {
    const ls = lists.filter((x) => x.how === how);
    if (ls.length > 0) lines.push(`| ${label[how]} | ${ls[0]!.items} | ${withRange(ls.map((x) => x.beforeMb), num)} | ${withRange(ls.map((x) => x.peakMb), num)} | ${withRange(ls.map((x) => x.afterMb), num)} | ${withRange(ls.map((x) => x.afterGcMb), num)} |`);
  }
  return lines.join('\n');
}

function phaseTable(runs: ColdRun[]): string {
  const lines = [`| agent | existing peers | ${PHASES.map((p) => `"${p}"${p === 'subnet held' ? ' (etcd: "lease acquired")' : ''}`).join(' | ')} |`, `|---|---:|${PHASES.map(() => '---:').join('|')}|`];
  for (const v of variants) for (const size of sizes) {
    const rs = runs.filter((r) => r.variant === v && r.size === size);
    if (rs.length > 0) lines.push(`| ${VARIANTS[v].label} | ${size} | ${PHASES.map((p) => withRange(rs.map((r) => r.phases[p] ?? NaN), f0)).join(' | ')} |`);
  }
  return lines.join('\n');
}

function memTable(probes: MemProbe[]): string {
  const lines = ['| process (node --max-semi-space-size=1, as the agent) | RSS at exit MB | peak RSS MB | V8 heap used MB | external MB |', '|---|---:|---:|---:|---:|'];
  for (const what of [...new Set(probes.map((p) => p.what))]) {
    const ps = probes.filter((p) => p.what === what);
    lines.push(`| ${what} | ${withRange(ps.map((p) => p.rssMb), num)} | ${withRange(ps.map((p) => p.hwmMb), num)} | ${withRange(ps.map((p) => p.heapUsedMb), num)} | ${withRange(ps.map((p) => p.externalMb), num)} |`);
  }
  return lines.join('\n');
}

interface Facts { lists: ListProbe[]; skipped: string[]; standins: Standin[]; etcdPopulate: Map<number, PopulateResult>; built: Partial<Record<VariantName, Variant>>; probes: MemProbe[]; shipped: { bytes: number; largestChunk: number } }

/** Plain statements computed from this run's numbers. */
function explain(runs: ColdRun[], f: Facts): string {
  const parts: string[] = [];
  const med = (v: VariantName, size: number, g: (r: ColdRun) => number): number => medianOf(runs, v, size, g);
  const rss = (v: VariantName, size: number): number => med(v, size, (r) => r.rssSettledMb);
  const probe = (prefix: string): number => median(f.probes.filter((p) => p.what.startsWith(prefix)).map((p) => p.rssMb));
  const has = (v: VariantName, size: number): boolean => runs.some((r) => r.variant === v && r.size === size);
  const goal = sizes.includes(1000) ? 1000 : Math.max(...sizes);
  const hi = Math.max(...sizes);
  const perPeer = (v: VariantName, size: number): number => (1024 * (rss(v, size) - rss(v, 0))) / size;
  const node0 = probe('node alone');
  const best = variants.filter((v) => VARIANTS[v].store === 'kube' && has(v, goal) && v !== 'kube-whole-nodes')
    .map((v) => ({ label: VARIANTS[v].label, rss: rss(v, goal) })).sort((x, y) => x.rss - y.rss)[0];
  if (has('kube', goal) && has('kube', 0) && has('etcd', 0) && goal > 0) {
    const total = rss('kube', goal);
    const miss = total - 64;
    parts.push(`**The 64 MB goal** (RSS with 1,000 peers) is ${miss < 0 ? 'met' : 'missed'} by the kube-store agent: ${num(total)} MB 3 s after ready with ${goal} Nodes, ${num(Math.abs(miss))} MB ${miss < 0 ? 'under' : 'over'} (the etcd-mode agent of the same run: ${num(rss('etcd', goal))} MB, so kube is ${(total / rss('etcd', goal)).toFixed(2)}× etcd). ` +
      `Where it goes: a bare Node with the agent's flags ${num(node0)} MB; weft's own code and the agent running (etcd mode, no peers) ${num(rss('etcd', 0) - node0)} MB more; the Kubernetes client and the kube store, still without peers, ${num(rss('kube', 0) - rss('etcd', 0))} MB more; the ${goal} Nodes and their claims ${num(total - rss('kube', 0))} MB (${perPeer('kube', goal).toFixed(0)} KB per peer, against ${has('etcd', goal) ? perPeer('etcd', goal).toFixed(0) : 'n/a'} KB per lease in etcd mode).` +
      (best ? ` The lowest measured here with ${goal} peers: ${best.label}, ${num(best.rss)} MB (${num(best.rss - 64)} MB over).` : ''));
  }
  if (has('kube', hi) && has('etcd', hi) && hi > 0) {
    const ph = (v: VariantName, p: string): number => med(v, hi, (r) => r.phases[p] ?? NaN);
    const steps = (v: VariantName): string => `${f0(ph(v, 'external interface'))} ms until the interface is chosen (start, connect, read the config${v === 'kube' ? ' and its own Node' : ''}), ${f0(ph(v, 'subnet held') - ph(v, 'external interface'))} ms to hold a subnet, ${f0(ph(v, 'data plane reconciled') - ph(v, 'subnet held'))} ms to list and watch the peers and program them all`;
    parts.push(`Time: with ${hi} peers the kube agent is ready after ${f0(med('kube', hi, (r) => r.readyMs))} ms against ${f0(med('etcd', hi, (r) => r.readyMs))} ms for etcd. kube: ${steps('kube')}; etcd: ${steps('etcd')}. Holding a subnet in kube mode lists every Node and claim (to know which subnets are taken); the watches then list them again, so the Nodes are fetched and parsed twice.`);
  }
  const shippedClient = clientChunks(SHIPPED).code;
  const odd = nonAscii(shippedClient);
  const chunk = probe('the same, 3 s later');
  const whole = probe('import of the whole');
  const alone = probe('import of src/kube/client-node.ts');
  parts.push(`The client library alone: importing the chunk the kube store loads (${mb(statSync(shippedClient).size)} MB of code) takes a bare Node from ${num(node0)} to ${num(chunk)} MB (+${num(chunk - node0)} MB; the bundle's --version is ${num(probe('build/weft.mjs --version'))} MB). ` +
    (odd > 0 ? `That chunk has ${odd} non-ASCII bytes (in comments), so V8 keeps all of its source as a two-byte string: ${mb(2 * statSync(shippedClient).size)} MB, shown as external memory. ` : 'That chunk is pure ASCII, so V8 keeps its source at one byte per character. ') +
    `For scale, src/kube/client-node.ts bundled alone is ${num(alone)} MB and the whole @kubernetes/client-node package bundled alone ${num(whole)} MB.`);
  if (has('kube', goal) && goal > 0) {
    const live = (v: VariantName, size: number): number => med(v, size, (r) => r.afterGc.heapUsedMb);
    const gcRss = (v: VariantName, size: number): number => med(v, size, (r) => r.afterGc.rssMb);
    parts.push(`The peers' share is the start's peak, not what the agent keeps: after a forced full GC the kube agent's live V8 heap is ${num(live('kube', 0))} MB with no peers and ${num(live('kube', goal))} MB with ${goal}${has('kube', hi) && hi !== goal ? ` (${num(live('kube', hi))} MB with ${hi})` : ''}, against ${num(live('etcd', 0))} and ${num(live('etcd', goal))} MB for etcd, yet its RSS stays at ${num(gcRss('kube', goal))} MB${has('kube', hi) && hi !== goal ? ` (${num(gcRss('kube', hi))} MB with ${hi}, peak ${num(med('kube', hi, (r) => r.hwmMb))} MB)` : ''}: V8 keeps the heap pages it grew to while the lists were parsed (in /proc/<pid>/smaps, 256 KiB anonymous mappings, V8's page size, beyond the heap V8 reports). ` +
      `A stand-in Node here is ${num((f.standins.find((s) => s.nodeBytes > 0)?.nodeBytes ?? NaN) / 1024)} KB of JSON (labels, capacity, conditions, node info, 12 pulled images; no managedFields, which a real API server adds) and a claim Lease ${num((f.standins.find((s) => s.leaseBytes > 0)?.leaseBytes ?? NaN) / 1024)} KB; each list is one response, which client-node parses whole and turns into its model classes, which the reflector copies back to plain JSON before slimming: the peak holds several copies of every Node.`);
  }
  for (const v of variants.filter((x) => VARIANTS[x].changes.length > 0 || VARIANTS[x].flags)) {
    const base: VariantName = VARIANTS[v].store;
    const chunkNow = f.built[v]?.largestChunk ?? f.shipped.largestChunk;
    const who = f.built[v]?.importers.length ? ` (it redirected ${f.built[v]!.importers.join(', ')})` : '';
    const chunkText = chunkNow !== f.shipped.largestChunk ? `; largest chunk ${mb(chunkNow)} MB instead of ${mb(f.shipped.largestChunk)} MB` : '';
    const what = [...VARIANTS[v].changes.map((c) => CHANGES[c]), ...(VARIANTS[v].flags ?? []).map((x) => FLAG_NOTES[x] ?? `\`${x}\` on the agent's command line`)].join('; ');
    const at = sizes.filter((s) => has(v, s) && has(base, s));
    parts.push(`*${VARIANTS[v].label}*: ${what}${who}${chunkText}. RSS 3 s after ready ${at.map((s) => `with ${s} peers ${num(rss(base, s))} → ${num(rss(v, s))} MB`).join(', ')}; time to ready ${at.map((s) => `${f0(med(base, s, (r) => r.readyMs))} → ${f0(med(v, s, (r) => r.readyMs))} ms`).join(', ')}; CPU to ready ${at.map((s) => `${f0(med(base, s, (r) => r.cpuMs))} → ${f0(med(v, s, (r) => r.cpuMs))} ms`).join(', ')}.`);
  }
  if (f.lists.length > 0) {
    const l = (how: string, g: (x: ListProbe) => number): string => num(median(f.lists.filter((x) => x.how === how).map(g)));
    parts.push(`The list path alone (a fresh process listing ${f.lists[0]!.items} Nodes once and keeping them slimmed): as the reflector lists today (client-node's listNode, its model classes, a copy back to JSON) the process peaks ${l('client', (x) => x.peakMb - x.beforeMb)} MB above where it started and stays ${l('client', (x) => x.afterGcMb - x.beforeMb)} MB above after a full GC; reading the same response with fetch and JSON.parse, ${l('raw', (x) => x.peakMb - x.beforeMb)} MB and ${l('raw', (x) => x.afterGcMb - x.beforeMb)} MB.`);
  }
  if (f.skipped.length > 0) parts.push(`Not run, because the change is already in the tree or no longer applies: ${f.skipped.join('; ')}.`);
  return parts.join('\n\n');
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error(`${TAG} needs root (it creates network namespaces)`);
  const stale = staleBecause();
  if (stale) throw new Error(`${stale}: bin/weft would run the sources, not the bundle. Run \`npm run build:native\` first`);
  if (!readFileSync(WEFT, 'utf8').includes(`exec "$node" ${WEFT_AGENT_FLAGS.join(' ')} "$bundle"`)) {
    throw new Error(`${WEFT} no longer starts the agent as node ${WEFT_AGENT_FLAGS.join(' ')} build/weft.mjs: update WEFT_AGENT_FLAGS in ${SELF}`);
  }
  const started = hrMs();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');

  // The shipped bundle is run from a copy: another `npm run build:native` in this tree during the
  // run would replace build/chunks under a starting agent.
  cpSync(join(ROOT, 'build'), SHIPPED, { recursive: true });
  const shipped = bundleBytes(SHIPPED);
  // The proposals, built before anything else so that a change that no longer applies is known at once.
  const plain = await buildVariant(ROOT, join(tmp, 'variant-none'), []);
  if (plain.bytes !== shipped.bytes) log(`${TAG}: warning: an unchanged rebuild is ${plain.bytes} bytes, build/ ${shipped.bytes}: variants.ts's esbuild settings may differ from scripts/build-native.ts's`);
  const built: Facts['built'] = {};
  const skipped: string[] = [];
  const bundles: Partial<Record<VariantName, string>> = {};
  for (const v of requested) {
    const shippedFlag = (VARIANTS[v].flags ?? []).find((f) => WEFT_AGENT_FLAGS.includes(f));
    if (shippedFlag !== undefined) {
      skipped.push(`${v} (bin/weft already starts the agent with ${shippedFlag})`);
      continue;
    }
    if (VARIANTS[v].changes.length === 0) {
      bundles[v] = join(SHIPPED, 'weft.mjs');
      continue;
    }
    try {
      built[v] = await buildVariant(ROOT, join(tmp, `variant-${v}`), VARIANTS[v].changes);
    } catch (e) {
      if (!(e instanceof NotApplicable)) throw e;
      skipped.push(`${v} (${e.message})`);
      log(`${TAG}: ${v}: not run: ${e.message}`);
      continue;
    }
    bundles[v] = built[v].bundle;
    log(`${TAG}: ${v}: ${mb(built[v].bytes)} MB of bundle, largest chunk ${mb(built[v].largestChunk)} MB (shipped: ${mb(shipped.bytes)}, ${mb(shipped.largestChunk)})`);
  }
  variants = requested.filter((v) => bundles[v] !== undefined);
  const clientOnly = await buildClientOnly(ROOT, join(tmp, 'client-only'));

  const name = `bk${id}`;
  trackLab(name);
  log(`${TAG}: lab ${name} up; ${rounds} rounds; variants ${variants.join(', ')}; ${sizes.join(', ')} peers; load ${loadBefore}`);
  const state = await labUp({ name, nodes: 1, podsPerNode: 0, store: 'etcd', backend: 'vxlan' });
  const etcdPopulate = new Map<number, PopulateResult>();
  if (variants.some((v) => VARIANTS[v].store === 'etcd')) {
    for (const size of sizes) {
      etcdPopulate.set(size, await populateEtcd(state, size));
      log(`etcd: ${size} leases written in ${etcdPopulate.get(size)!.ms.toFixed(0)} ms`);
    }
  }
  const standins = variants.some((v) => VARIANTS[v].store === 'kube') ? await Promise.all(sizes.map((size, j) => startStandin(state, size, 6443 + j))) : [];
  for (const s of standins) log(`stand-in: ${s.size} Nodes + claims in ${s.populateMs.toFixed(0)} ms (${s.nodeBytes.toFixed(0)} B per Node, ${s.leaseBytes.toFixed(0)} B per Lease)`);

  const runs: ColdRun[] = [];
  let k = 0;
  const combos = variants.flatMap((v) => sizes.filter((size) => !VARIANTS[v].largestOnly || size === Math.max(...sizes)).map((size) => ({ v, size })));
  for (let round = 1; round <= rounds; round++) {
    for (const { v, size } of combos.map((_, i) => combos[(i + round - 1) % combos.length]!)) {
      const r = await coldStart(state, v, bundles[v]!, size, VARIANTS[v].store === 'kube' ? standins.find((s) => s.size === size) : undefined, round, ++k);
      runs.push(r);
      log(`round ${round}/${rounds} ${v} ${size}: ready ${r.readyMs.toFixed(0)} ms, CPU ${r.cpuMs.toFixed(0)} ms, RSS ${r.rssMb.toFixed(1)} → ${r.rssSettledMb.toFixed(1)} MB (peak ${r.hwmMb.toFixed(1)}), heap ${r.memSettled.heapUsed.toFixed(1)}/${r.memSettled.heapTotal.toFixed(1)} ext ${r.memSettled.external.toFixed(1)} anon ${r.memSettled.rssAnon.toFixed(1)}; after GC: heap ${r.afterGc.heapUsedMb.toFixed(1)}/${r.afterGc.heapTotalMb.toFixed(1)} ext ${r.afterGc.externalMb.toFixed(1)} anon ${r.afterGc.rssAnonMb.toFixed(1)} RSS ${r.afterGc.rssMb.toFixed(1)}; ${r.routes} routes (load ${loadavg()[0]!.toFixed(2)})`);
    }
  }
  const biggest = standins.find((s) => s.size === Math.max(...sizes) && s.size > 0);
  log(biggest ? `list path: ${biggest.size} Nodes, in a fresh process` : 'list path: no stand-in with Nodes');
  const lists = biggest ? await listProbes(state, biggest) : [];
  for (const s of standins) s.child.stdin?.end();

  log('memory: short-lived processes');
  const probes = await memProbes(clientChunks(SHIPPED), clientOnly, built['kube-trim'] ? clientChunks(join(tmp, 'variant-kube-trim')) : undefined);
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
  await labDown(name);
  untrackLab(name);
  const wallS = (hrMs() - started) / 1000;

  const facts: Facts = { lists, skipped, standins, etcdPopulate, built, probes, shipped };
  const errors = [...new Set(runs.flatMap((r) => r.errors))];
  const body = [
    '## Kubernetes store: agent cost',
    '',
    `Measured ${date} by \`npm run bench:kube\` (benchmarks/kube/run.ts), ${rounds} rounds, ${wallS.toFixed(0)} s in all. Median (range) over rounds.`,
    '',
    '**What explains the numbers.**',
    '',
    explain(runs, facts),
    '',
    coldTable(runs),
    '',
    'Against the etcd-mode agent of the same run (medians):',
    '',
    ratioTable(runs),
    '',
    'The client library alone: short-lived processes with the agent\'s V8 flags, memory read as they exit (3 runs each):',
    '',
    memTable(probes),
    '',
    ...(lists.length > 0 ? ['The list path alone: benchmarks/kube/list-probe.ts, a fresh process (TypeScript sources, the agent\'s V8 flags) in the control-plane host, one list of the largest stand-in\'s Nodes, the slimmed items kept (3 runs each way):', '', listTable(lists), ''] : []),
    'When the agent logged each step, ms after spawn (pino timestamps):',
    '',
    phaseTable(runs),
    '',
    `Populating: etcd ${[...etcdPopulate].map(([s, p]) => `${s} leases ${p.ms.toFixed(0)} ms`).join(', ')} (grant + put each, 64 at a time); stand-in ${standins.map((s) => `${s.size} Nodes + claims ${s.populateMs.toFixed(0)} ms`).join(', ')} (in-process).`,
    '',
    `Machine: ${machineFacts(ROOT)}. Load average (1/5/15 min) ${loadBefore} before, ${loadAfter} after: the machine is shared with other jobs.`,
    '',
    '**Method.** One `weft lab up --store etcd --backend vxlan` lab with one node. etcd store: N flanneld-format leases under their own prefix (`/weft-bench/kube<N>`, network config ' +
      `${COLD_CONFIG}, /24s 10.0.1.0, 10.0.2.0, …, each with its own etcd lease, PublicIPs on the zone segments, random VtepMACs), written by bench:control's populate step. ` +
      'kube store: per N, one of weft\'s stand-in API servers (src/kube/standin, not Kubernetes) run by benchmarks/kube/standin.ts in the etcd member\'s namespace (same host, ports 6443…), holding the ConfigMap weft/weft-cfg with the same net-conf.json and N Nodes as a kubelet registers them (labels, capacity, four conditions, node info, 12 images) announced as a weft agent does (flannel\'s backend-type, backend-data, public-ip, kube-subnet-manager annotations, the same subnets and addresses as the etcd leases), each holding a claim Lease built by src/modes/kube/claims.ts (owner reference to its Node\'s uid). ' +
      `Each run: a fresh namespace plugged into zone a (${COLD_ADDRESS}/24); for kube its Node is registered first (as its kubelet would); then \`node ${WEFT_AGENT_FLAGS.join(' ')} build/weft.mjs agent … --ip-masq\` (what bin/weft execs for \`agent\` with a fresh bundle; checked at start) with \`--etcd-api v3 --etcd-prefix …\` or \`--store kube --kubeconfig-file … --node-name …\`, under nsenter. ` +
      '"Ready" is the first answer on its status socket (polled every 20 ms) with ready, a lastSync and all N peers; RSS is VmRSS at ready and 3 s later, peak is VmHWM; CPU is user + system from /proc/<pid>/stat; V8 figures come from a probe loaded with NODE_OPTIONS=--import (benchmarks/kube/agent-probe.mjs, as bench:control\'s loop-probe.mjs), which, once those readings are taken, also forces a full GC and reports what is then live. Routes on flannel.1 are counted afterwards as a check. Then the agent is stopped and its lease, or its Node and claim, removed. Variants and sizes rotate their order every round. ' +
      '"As shipped" runs a copy of build/ taken at the start. Bundle proposals are built in a scratch directory from the same sources with scripts/build-native.ts\'s esbuild settings and one build-time change each (benchmarks/kube/variants.ts; an unchanged build is checked to come out the same size as build/); flag proposals add the flag to the agent\'s node command line; src/ is not modified.',
    ...(errors.length > 0 ? ['', `Problems the agents reported: ${errors.slice(0, 5).join('; ')}`] : []),
  ].join('\n');

  process.stdout.write(`\n${explain(runs, facts)}\n\n${coldTable(runs)}\n\n${ratioTable(runs)}\n\n${memTable(probes)}\n\n${phaseTable(runs)}\n`);
  if (opts.write) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'kube', body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

await runBench(TAG, main, () => rmSync(tmp, { recursive: true, force: true }));
