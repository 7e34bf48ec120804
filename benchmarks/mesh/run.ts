// `npm run bench:mesh`: how mesh mode's control plane behaves with many peers (see
// benchmarks/README.md). Many MeshNodes run over real TCP on 127.0.0.1, split over a few worker
// processes (worker.ts), with no data plane:
//
//  - time to ready: all peers started at once, each with a few random bootstrap targets; until
//    every peer has the ring, a block of its own and every other peer as a data-plane peer, and
//    until every peer's state is equal (block-map digests and record sets);
//  - join: a new peer (its own process) joins the settled mesh: until every peer has its record,
//    and from its block request until the grant is in every peer's map (all digests equal);
//  - memory: RSS of that single-peer process, and RSS growth per peer in the harness;
//  - control traffic: node.traffic() per peer over a steady window, by message kind.
//
// No root, no namespaces: everything listens on 127.0.0.1 ports picked free at start. Every
// process started here is tracked by PID and stopped at the end, also on failure and Ctrl-C.
import { fork, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { derivePsk } from '../../src/mesh/wire/index.ts';
import { INITIAL_WANT, type IpallocInit, type MeshTiming } from '../../src/mesh/node.ts';
import { machineFacts, num, runBench, runCmd, sleep, track, withRange, writeSection } from '../dataplane/common.ts';
import { median, positive } from '../stats.ts';
import type { LogCounts, PeerSpec, PeerView, ToCoordinator, ToWorker, VerifiedPeer, WorkerStats } from './protocol.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url));
const TAG = 'bench:mesh';
const UNIVERSE = '10.32.0.0/12';
const BLOCK_PREFIX = 26;
const CONN_LIMIT = 30;
/** How long a member is watched after the joins before its memory is read. */
const HOLD_MS = 10_000;
/** The steady window is read in slices this long. */
const SLICE_MS = 5000;

const { values: opts } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,50,200' },
    /** Fresh meshes started per size up to 50 peers (medians over them); larger sizes get --runs-large. */
    runs: { type: 'string', default: '3' },
    'runs-large': { type: 'string', default: '1' },
    workers: { type: 'string', default: '4' },
    targets: { type: 'string', default: '3' },
    'tick-ms': { type: 'string', default: '1000' },
    'steady-s': { type: 'string', default: '20' },
    joins: { type: 'string', default: '4' },
    /** Above 50 peers: seed (seed=<every peer>), consensus (consensus=N) or both. */
    'large-init': { type: 'string', default: 'both' },
    'timeout-s': { type: 'string', default: '120' },
    password: { type: 'boolean', default: false },
    write: { type: 'boolean', default: true },
    /** Also write every run's raw figures here (JSON). */
    json: { type: 'string' },
    /** Investigation: the mesh workers run with --cpu-prof and write their profiles here. */
    'cpu-prof': { type: 'string' },
  },
  allowNegative: true,
});

const sizes = (opts.sizes ?? '').split(',').map((s) => positive('sizes', s.trim(), 1000));
const runsSmall = positive('runs', opts.runs, 20);
const runsLarge = positive('runs-large', opts['runs-large'], 20);
const workerCount = positive('workers', opts.workers, 16);
const targetCount = positive('targets', opts.targets, 20);
const tickMs = positive('tick-ms', opts['tick-ms'], 60_000);
const steadyS = positive('steady-s', opts['steady-s'], 600);
const joins = Number(opts.joins) === 0 ? 0 : positive('joins', opts.joins, 20);
const timeoutMs = positive('timeout-s', opts['timeout-s'], 3600) * 1000;
const largeInit = opts['large-init'] ?? 'both';
if (!['consensus', 'seed', 'both'].includes(largeInit)) throw new Error(`--large-init must be consensus, seed or both (got ${largeInit})`);
/** The harness's timing: the node's defaults except, when asked, the tick. */
const TIMING: Partial<MeshTiming> = { tickMs };
const TIMING_TEXT = `tickMs ${tickMs}, heartbeatMs 15000, antiEntropyMs 5000, deadAfterMs 90000 (the node's defaults${tickMs === 1000 ? '' : ' but the tick'})`;

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const id = randomBytes(3).toString('hex');
// Peer state directories on tmpfs: every state change is an fsync'd write, and 200 peers sharing
// one disk would measure the disk, not the protocol (a real node writes only its own).
const scratch = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `weft-bench-mesh-${id}-`));

/** One mesh configuration measured: a size and an IPAM init. */
interface Case {
  size: number;
  init: 'consensus' | 'seed';
  runs: number;
  joins: number;
  joinTimeoutMs: number;
  label: string;
}

function plan(): Case[] {
  const out: Case[] = [];
  for (const size of sizes) {
    const inits = size <= 50 ? ['consensus'] as const : largeInit === 'both' ? ['seed', 'consensus'] as const : [largeInit as 'seed' | 'consensus'];
    for (const init of inits) {
      // With both, the consensus case of a large mesh is the slow one: one run and one join, to stay in the time budget.
      const reduced = size > 50 && init === 'consensus' && largeInit === 'both';
      out.push({
        size, init, runs: size > 50 ? runsLarge : runsSmall, joins: reduced ? Math.min(joins, 1) : joins, joinTimeoutMs: reduced ? 30_000 : 60_000,
        label: `${size} peers, ${init === 'seed' ? `seed=<all ${size}>` : `consensus=${size}`}`,
      });
      if (reduced) out[out.length - 1]!.runs = 1;
    }
  }
  return out;
}

// --- processes -------------------------------------------------------------------------------

type Variant = 'source' | 'bundle';
const VARIANTS: Record<Variant, string> = {
  source: 'TypeScript sources (node worker.ts, default V8 flags)',
  bundle: 'esbuild bundle, node --max-semi-space-size=1 (as bin/weft runs the agent)',
};
let bundlePath: string | undefined;

async function bundleWorker(): Promise<string> {
  if (bundlePath) return bundlePath;
  const out = join(scratch, 'worker.mjs');
  await build({
    entryPoints: [WORKER], outfile: out, bundle: true, platform: 'node', format: 'esm', target: 'node24', logLevel: 'warning',
    banner: { js: "import { createRequire as __weftCreateRequire } from 'node:module'; const require = __weftCreateRequire(import.meta.url);" },
  });
  bundlePath = out;
  return out;
}

/** One worker process and the replies it owes us. */
class Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly #waiting = new Map<string, ((m: ToCoordinator) => void)[]>();
  #exited: string | undefined;
  ready: WorkerStats | undefined;

  constructor(child: ChildProcess, what: string, onViews: (views: PeerView[]) => void) {
    this.child = child;
    this.pid = track(child, what);
    child.on('message', (m: ToCoordinator) => {
      if (m.op === 'views') return onViews(m.views);
      if (m.op === 'error') return log(`${TAG}: ${what} (pid ${this.pid}) reported: ${m.message}`);
      this.#waiting.get(m.op)?.shift()?.(m);
    });
    child.once('exit', (code, signal) => {
      this.#exited = `${what} exited (${signal ?? code})`;
      for (const q of this.#waiting.values()) for (const f of q.splice(0)) f({ op: 'error', message: this.#exited });
    });
  }

  static async fork(what: string, variant: Variant, onViews: (views: PeerView[]) => void): Promise<Worker> {
    const stdio: ('ignore' | 'inherit' | 'ipc')[] = ['ignore', 'inherit', 'inherit', 'ipc'];
    const child = variant === 'source'
      ? fork(WORKER, [], { execArgv: ['--disable-warning=ExperimentalWarning', '--expose-gc', ...(opts['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${opts['cpu-prof']}`] : [])], stdio })
      : fork(await bundleWorker(), [], { execArgv: ['--max-semi-space-size=1', '--expose-gc'], stdio });
    const w = new Worker(child, what, onViews);
    w.ready = (await w.#next('ready')) as WorkerStats;
    return w;
  }

  #next(op: string, timeout = 60_000): Promise<ToCoordinator> {
    return new Promise((resolve, reject) => {
      if (this.#exited) return reject(new Error(this.#exited));
      const timer = setTimeout(() => reject(new Error(`no '${op}' from worker ${this.pid} within ${timeout} ms`)), timeout);
      const q = this.#waiting.get(op) ?? [];
      q.push((m) => {
        clearTimeout(timer);
        if (m.op === 'error') reject(new Error(m.message));
        else resolve(m);
      });
      this.#waiting.set(op, q);
    });
  }

  async ask<T extends ToCoordinator['op']>(m: ToWorker, reply: T, timeout?: number): Promise<Extract<ToCoordinator, { op: T }>> {
    const p = this.#next(reply, timeout);
    this.child.send(m);
    return (await p) as Extract<ToCoordinator, { op: T }>;
  }

  tell(m: ToWorker): void {
    this.child.send(m);
  }

  /** /proc figures of the process, MB. */
  proc(): { rss: number; hwm: number; anon: number; file: number } {
    const text = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const f = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) / 1024;
    return { rss: f('VmRSS'), hwm: f('VmHWM'), anon: f('RssAnon'), file: f('RssFile') };
  }

  async stop(): Promise<void> {
    if (this.#exited) return;
    const gone = new Promise<void>((r) => this.child.once('exit', () => r()));
    await this.ask({ op: 'stop' }, 'stopped', 30_000).catch(() => undefined);
    await Promise.race([gone, sleep(5000)]);
    if (!this.#exited) this.child.kill('SIGKILL');
  }
}

// --- the mesh under test ---------------------------------------------------------------------

/** Ports free right now on 127.0.0.1, all distinct (held open together, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    servers.push(s);
    ports.push((s.address() as { port: number }).port);
  }
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function shuffled<T>(items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** k random other peers for each peer, redrawn until the undirected graph is connected. */
function bootstrapTargets(n: number, k: number): number[][] {
  for (;;) {
    const targets = Array.from({ length: n }, (_, i) => shuffled(Array.from({ length: n }, (_, j) => j).filter((j) => j !== i)).slice(0, Math.min(k, n - 1)));
    const adj = targets.map(() => new Set<number>());
    targets.forEach((ts, i) => ts.forEach((j) => {
      adj[i]!.add(j);
      adj[j]!.add(i);
    }));
    const seen = new Set([0]);
    const stack = [0];
    while (stack.length > 0) {
      for (const j of adj[stack.pop()!]!) {
        if (seen.has(j)) continue;
        seen.add(j);
        stack.push(j);
      }
    }
    if (seen.size === n) return targets;
  }
}

interface Timeline {
  /** Every view reported, in arrival order. */
  events: PeerView[];
  latest: Map<number, PeerView>;
  changed: () => void;
}

function onViews(tl: Timeline, views: PeerView[]): void {
  for (const v of views) {
    tl.events.push(v);
    tl.latest.set(v.idx, v);
  }
  tl.changed();
}

/**
 * The first time (by the workers' clocks) from which pred held for every peer in `peers`, or
 * NaN: replays every view in time order, each peer's view holding from its t to its next one.
 */
function firstAll(tl: Timeline, peers: ReadonlySet<number>, pred: (v: PeerView) => boolean, since = 0): number {
  const events = tl.events.filter((e) => peers.has(e.idx)).sort((a, b) => a.t - b.t);
  const ok = new Map<number, boolean>();
  let count = 0;
  for (const e of events) {
    const was = ok.get(e.idx) ?? false;
    const now = pred(e);
    if (was !== now) count += now ? 1 : -1;
    ok.set(e.idx, now);
    if (count === peers.size && e.t >= since) return e.t;
  }
  return NaN;
}

/** Waits until check() holds on the latest views, or the timeout; true when it held. */
function until(tl: Timeline, check: () => boolean, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (check()) return resolve(true);
    const timer = setTimeout(() => {
      tl.changed = () => undefined;
      resolve(false);
    }, ms);
    tl.changed = () => {
      if (!check()) return;
      clearTimeout(timer);
      tl.changed = () => undefined;
      resolve(true);
    };
  });
}

function shortHash(items: readonly string[]): string {
  return createHash('sha256').update([...items].sort().join(',')).digest('hex').slice(0, 16);
}

interface Milestones {
  firstRing: number;
  allRing: number;
  allBlocks: number;
  allRecords: number;
  ready: number;
  equal: number;
}

type KindRates = Record<string, { messages: number; bytes: number; max: number }>;

interface JoinResult {
  variant: Variant;
  /** Joiner's start() → every peer (itself included) has its record. */
  knownMs: number;
  /** Joiner's start() → it has the ring. */
  ringMs: number;
  /** Its block request → every peer's map shows the grant and all digests are equal. */
  handoverMs: number;
  /** Its start() → that. */
  totalMs: number;
  rssLoaded: number;
  rss: number;
  hwm: number;
  anon: number;
  file: number;
  heapUsed: number;
  heapTotal: number;
  bytesOutPerS: number;
}

interface RunResult {
  label: string;
  size: number;
  init: Case['init'];
  run: number;
  converged: boolean;
  ms: Milestones;
  verified: { dataPlaneOk: number; digestsEqual: boolean; conflicts: number; ringConflicts: number };
  connections: number[];
  bytesOutToReady: number[];
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  loopMaxMs: number;
  logs: LogCounts;
  steady?: {
    seconds: number;
    bytesOutPerS: number[];
    bytesInPerS: number[];
    messagesOutPerS: number[];
    cpuMsPerSPerPeer: number;
    loopMaxMs: number;
    reachableAll: boolean;
    equalAfter: boolean;
    rssAfter: number;
    heapAfterGc: number;
    logs: LogCounts;
    /** Per peer per second, by message kind. */
    byKind: KindRates;
    wireBytesOutPerS: number;
    refusedSends: number;
    /** Mean gossip bytes sent per peer per second, and connections opened, per slice of the window. */
    slices: { outPerS: number; opened: number }[];
  };
  joins: JoinResult[];
}

function sumLogs(all: readonly LogCounts[]): LogCounts {
  const out: LogCounts = {};
  for (const l of all) for (const [k, v] of Object.entries(l)) out[k] = (out[k] ?? 0) + v;
  return out;
}

function diffLogs(after: LogCounts, before: LogCounts): LogCounts {
  const out: LogCounts = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

/** Messages and bytes per kind between two stats, divided by `per` (peer-seconds). */
function kindRates(a: readonly WorkerStats[], b: readonly WorkerStats[], per: number): KindRates {
  const out: KindRates = {};
  for (const [k, w] of b.entries()) {
    for (const [kind, v] of Object.entries(w.byKind)) {
      const was = a[k]!.byKind[kind] ?? { messages: 0, bytes: 0, max: 0 };
      const e = (out[kind] ??= { messages: 0, bytes: 0, max: 0 });
      e.messages += (v.messages - was.messages) / per;
      e.bytes += (v.bytes - was.bytes) / per;
      e.max = Math.max(e.max, v.max);
    }
  }
  return out;
}

const mb = (bytes: number): number => bytes / 2 ** 20;
const sum = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0);

async function runMesh(c: Case, run: number, full: boolean, psk: string | null): Promise<RunResult> {
  const { size } = c;
  const nWorkers = Math.min(workerCount, size);
  const tl: Timeline = { events: [], latest: new Map(), changed: () => undefined };
  const dir = join(scratch, `n${size}-${c.init}-r${run}`);
  mkdirSync(dir);
  const joinCount = full ? c.joins : 0;
  const ports = await freePorts(size + joinCount);
  const targets = bootstrapTargets(size, targetCount);
  // A seed list names every peer, so those peers get fixed names; consensus peers generate theirs.
  const fixedName = (idx: number): string | undefined => (c.init === 'seed' ? `bench-p${idx}` : undefined);
  const init: IpallocInit = c.init === 'seed' ? { mode: 'seed', names: Array.from({ length: size }, (_, i) => fixedName(i)!) } : { mode: 'consensus', peers: size };
  const spec = (idx: number, ts: number[]): PeerSpec => ({ idx, port: ports[idx]!, targets: ts.map((j) => ports[j]!), dir: join(dir, `p${idx}`), ...(fixedName(idx) ? { name: fixedName(idx)! } : {}) });
  const specs = Array.from({ length: size }, (_, i) => spec(i, targets[i]!));
  const start = (peers: PeerSpec[]): ToWorker => ({ op: 'start', peers, universe: UNIVERSE, blockPrefix: BLOCK_PREFIX, init, timing: TIMING, connLimit: CONN_LIMIT, psk });
  const workers: Worker[] = [];
  const joiners: Worker[] = [];
  try {
    for (let w = 0; w < nWorkers; w++) workers.push(await Worker.fork(`mesh worker ${w} (${c.label})`, 'source', (v) => onViews(tl, v)));
    log(`  ${c.label}, run ${run}: starting ${size} peers in ${nWorkers} workers (load ${loadavg()[0]!.toFixed(2)})`);
    const started = await Promise.all(workers.map((w, k) => w.ask(start(specs.filter((s) => s.idx % nWorkers === k)), 'started')));
    const t0 = Math.min(...started.map((s) => s.at));
    const all = new Set(specs.map((s) => s.idx));
    const nameOf = new Map(started.flatMap((s) => s.names.map((n) => [n.idx, n.name] as const)));
    const everyone = shortHash([...nameOf.values()]);
    const ready = (v: PeerView): boolean => v.ring !== null && v.owned > 0 && v.names === everyone && v.owners === everyone;
    const sameState = (): boolean => {
      if (tl.latest.size < size) return false;
      const first = tl.latest.values().next().value!;
      for (const v of tl.latest.values()) if (!ready(v) || v.digest !== first.digest || v.ring !== first.ring) return false;
      return true;
    };
    const converged = await until(tl, sameState, timeoutMs);
    const finalDigest = tl.latest.get(0)?.digest;
    const ms: Milestones = {
      firstRing: Math.min(...tl.events.filter((e) => e.ring !== null).map((e) => e.t)) - t0,
      allRing: firstAll(tl, all, (v) => v.ring !== null) - t0,
      allBlocks: firstAll(tl, all, (v) => v.owned > 0) - t0,
      allRecords: firstAll(tl, all, (v) => v.names === everyone) - t0,
      ready: firstAll(tl, all, ready) - t0,
      equal: converged ? firstAll(tl, all, (v) => ready(v) && v.digest === finalDigest) - t0 : NaN,
    };
    log(`  ${c.label}, run ${run}: ${converged ? 'converged' : `NOT converged after ${timeoutMs / 1000} s`}: ring everywhere ${num(ms.allRing)} ms, blocks ${num(ms.allBlocks)} ms, records ${num(ms.allRecords)} ms, ready ${num(ms.ready)} ms, equal ${num(ms.equal)} ms`);
    if (!converged) {
      const vs = [...tl.latest.values()];
      log(`    not ready: ${vs.filter((v) => !ready(v)).length} of ${size} (seen ${vs.length}); rings ${new Set(vs.map((v) => v.ring)).size}, digests ${new Set(vs.map((v) => v.digest)).size}; without blocks ${vs.filter((v) => v.owned === 0).length}; fewest records ${Math.min(...vs.map((v) => v.nameCount))}; fewest owners ${Math.min(...vs.map((v) => v.ownerCount))}`);
    }
    const verifiedPeers = (await Promise.all(workers.map((w) => w.ask({ op: 'verify' }, 'verified', 120_000)))).flatMap((v) => v.peers);
    const afterReady = await Promise.all(workers.map((w) => w.ask({ op: 'stats' }, 'stats')));
    const result: RunResult = {
      label: c.label, size, init: c.init, run, converged, ms, verified: summarizeVerified(verifiedPeers, size),
      connections: [...tl.latest.values()].map((v) => v.connections),
      bytesOutToReady: afterReady.flatMap((s) => s.traffic.map((t) => t.bytesOut)),
      rssBefore: mb(sum(workers.map((w) => w.ready!.rss))), rssAfter: mb(sum(afterReady.map((w) => w.rss))),
      heapBefore: mb(sum(workers.map((w) => w.ready!.heapUsed))),
      loopMaxMs: Math.max(...afterReady.map((s) => s.loopMaxMs)),
      logs: sumLogs(afterReady.map((s) => s.logs)), joins: [],
    };
    if (!full || !converged) return result;

    // Steady state: a window after a short settle.
    await sleep(3000);
    for (const w of workers) w.tell({ op: 'reset-loop' });
    const a = await Promise.all(workers.map((w) => w.ask({ op: 'stats' }, 'stats')));
    const ta = Date.now();
    log(`  ${c.label}: steady window ${steadyS} s`);
    // In slices, to see whether the traffic settles within the window.
    const slices: { outPerS: number; opened: number }[] = [];
    let prev = a;
    let tPrev = ta;
    for (let left = steadyS * 1000; left > 0; left -= SLICE_MS) {
      await sleep(Math.min(SLICE_MS, left));
      const now = await Promise.all(workers.map((w) => w.ask({ op: 'stats' }, 'stats')));
      const secs = (Date.now() - tPrev) / 1000;
      const opened = (sumLogs(now.map((x) => x.logs))['info: mesh connection established'] ?? 0) - (sumLogs(prev.map((x) => x.logs))['info: mesh connection established'] ?? 0);
      slices.push({ outPerS: (sum(now.flatMap((x) => x.traffic.map((t) => t.bytesOut))) - sum(prev.flatMap((x) => x.traffic.map((t) => t.bytesOut)))) / secs / size, opened });
      prev = now;
      tPrev = Date.now();
    }
    const b = prev;
    const dt = (Date.now() - ta) / 1000;
    const gcd = await Promise.all(workers.map((w) => w.ask({ op: 'stats', gc: true }, 'stats')));
    const perPeer = (f: (t: WorkerStats['traffic'][number]) => number): number[] => {
      const before = new Map(a.flatMap((s) => s.traffic.map((t) => [t.idx, f(t)] as const)));
      return b.flatMap((s) => s.traffic.map((t) => (f(t) - (before.get(t.idx) ?? 0)) / dt));
    };
    const vs = [...tl.latest.values()];
    const steady: NonNullable<RunResult['steady']> = {
      seconds: dt,
      bytesOutPerS: perPeer((t) => t.bytesOut), bytesInPerS: perPeer((t) => t.bytesIn), messagesOutPerS: perPeer((t) => t.messagesOut),
      cpuMsPerSPerPeer: sum(b.map((w, k) => w.cpuMs - a[k]!.cpuMs)) / dt / size,
      loopMaxMs: Math.max(...b.map((s) => s.loopMaxMs)),
      reachableAll: vs.every((v) => v.reachable === size), equalAfter: sameState(),
      rssAfter: mb(sum(b.map((w) => w.rss))), heapAfterGc: mb(sum(gcd.map((w) => w.heapUsed))),
      logs: diffLogs(sumLogs(b.map((s) => s.logs)), sumLogs(a.map((s) => s.logs))),
      byKind: kindRates(a, b, dt * size),
      wireBytesOutPerS: (sum(b.map((w) => w.wireBytesOut)) - sum(a.map((w) => w.wireBytesOut))) / dt / size,
      refusedSends: sum(b.map((w) => w.refusedSends)) - sum(a.map((w) => w.refusedSends)),
      slices,
    };
    result.steady = steady;
    log(`  ${c.label}: per peer ${num(median(steady.bytesOutPerS))} B/s out (max ${num(Math.max(...steady.bytesOutPerS))}), wire ${num(steady.wireBytesOutPerS)} B/s, CPU ${num(steady.cpuMsPerSPerPeer)} ms/s per peer, all reachable ${steady.reachableAll}; by kind: ${Object.entries(steady.byKind).map(([k, v]) => `${k} ${num(v.bytes)} B/s`).join(', ')}`);

    // Joins: each a new process holding one peer, bootstrapped from a few members.
    const members = new Set(all);
    const memberNames = new Map(nameOf);
    for (let j = 0; j < joinCount; j++) {
      const variant: Variant = j % 2 === 0 ? 'source' : 'bundle';
      const idx = size + j;
      const w = await Worker.fork(`joiner ${j} (${variant}, ${c.label})`, variant, (v) => onViews(tl, v));
      joiners.push(w);
      const st = await w.ask(start([spec(idx, shuffled([...members]).slice(0, targetCount))]), 'started');
      const tj = st.at;
      members.add(idx);
      memberNames.set(idx, st.names[0]!.name);
      const withJoiner = shortHash([...memberNames.values()]);
      const handedOver = (v: PeerView, digest: string | null | undefined): boolean => v.owners === withJoiner && v.names === withJoiner && v.digest === digest;
      const everywhere = (): boolean => {
        const digest = tl.latest.get(idx)?.digest;
        return digest !== undefined && [...members].every((k) => tl.latest.has(k) && handedOver(tl.latest.get(k)!, digest));
      };
      const ok = await until(tl, everywhere, c.joinTimeoutMs);
      const finalD = tl.latest.get(idx)?.digest;
      const requestedAt = tl.events.find((e) => e.idx === idx && e.wants > 0)?.t ?? NaN;
      const known = firstAll(tl, members, (v) => v.names === withJoiner, tj);
      const handover = ok ? firstAll(tl, members, (v) => handedOver(v, finalD), tj) : NaN;
      const ringAt = tl.events.find((e) => e.idx === idx && e.ring !== null)?.t ?? NaN;
      log(`  ${c.label}: join ${j + 1} (${variant}): ${ok ? '' : `NOT handed over within ${c.joinTimeoutMs / 1000} s; `}record everywhere ${num(known - tj)} ms, ring ${num(ringAt - tj)} ms, request → grant everywhere ${num(handover - requestedAt)} ms`);
      result.joins.push({
        variant, knownMs: known - tj, ringMs: ringAt - tj, handoverMs: handover - requestedAt, totalMs: handover - tj,
        rssLoaded: mb(w.ready!.rss), rss: NaN, hwm: NaN, anon: NaN, file: NaN, heapUsed: NaN, heapTotal: NaN, bytesOutPerS: NaN,
      });
    }
    // The joiners' memory once they have been members for a while.
    if (joiners.length > 0) {
      const before = await Promise.all(joiners.map((w) => w.ask({ op: 'stats' }, 'stats')));
      const tb = Date.now();
      await sleep(HOLD_MS);
      const after = await Promise.all(joiners.map((w) => w.ask({ op: 'stats' }, 'stats')));
      const dtj = (Date.now() - tb) / 1000;
      const procs = joiners.map((w) => w.proc());
      const live = await Promise.all(joiners.map((w) => w.ask({ op: 'stats', gc: true }, 'stats')));
      joiners.forEach((_, k) => {
        Object.assign(result.joins[k]!, {
          ...procs[k]!, heapUsed: mb(live[k]!.heapUsed), heapTotal: mb(after[k]!.heapTotal),
          bytesOutPerS: (after[k]!.traffic[0]!.bytesOut - before[k]!.traffic[0]!.bytesOut) / dtj,
        });
      });
      log(`  ${c.label}: single-peer processes: RSS ${result.joins.map((r) => `${num(r.rss)} MB (${r.variant})`).join(', ')}`);
    }
    return result;
  } finally {
    await Promise.all([...joiners, ...workers].map((w) => w.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}

function summarizeVerified(peers: readonly VerifiedPeer[], size: number): RunResult['verified'] {
  return {
    dataPlaneOk: peers.filter((p) => p.dataPlanePeers === size - 1 && p.owned > 0).length,
    digestsEqual: new Set(peers.map((p) => p.digest)).size === 1,
    conflicts: sum(peers.map((p) => p.conflicts)),
    ringConflicts: sum(peers.map((p) => p.ringConflicts)),
  };
}

// --- report ----------------------------------------------------------------------------------

const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
/** A median against the first case's (the smallest mesh): the scaling factor. */
const ratio = (x: number, base: number): string => (Number.isFinite(x) && Number.isFinite(base) && base > 0 ? `${(x / base).toFixed(2)}×` : 'n/a');

function byCase(results: readonly RunResult[]): Map<string, RunResult[]> {
  const m = new Map<string, RunResult[]>();
  for (const r of results) m.set(r.label, [...(m.get(r.label) ?? []), r]);
  return m;
}

/** The run of each case that went on to the steady window and the joins. */
function fullRuns(results: readonly RunResult[]): RunResult[] {
  return [...byCase(results).values()].map((rs) => rs[rs.length - 1]!).filter((r) => r.steady);
}

function convergenceTable(results: readonly RunResult[]): string {
  const cases = byCase(results);
  const [baseLabel, baseRuns] = [...cases][0]!;
  const baseOk = baseRuns.filter((r) => r.converged);
  const lines = [
    `| mesh | runs converged | ring at every peer ms | a block at every peer ms | every record at every peer ms | **ready** ms | ready ÷ ${baseLabel.split(',')[0]} | equal state everywhere ms | equal ÷ ${baseLabel.split(',')[0]} | sent per peer until then KB | connections per peer | goal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const [label, rs] of cases) {
    const ok = rs.filter((r) => r.converged);
    const size = rs[0]!.size;
    const allOk = ok.length === rs.length && rs.every((r) => r.verified.digestsEqual && r.verified.dataPlaneOk === size);
    const ready = median(ok.map((r) => r.ms.ready));
    const goal = size === 50 ? `< 5 s${allOk && ready < 5000 ? ' ✅' : ' ❌'}` : size >= 200 ? `converges to equal state${allOk ? ' ✅' : ' ❌'}` : '';
    const sent = rs.flatMap((r) => r.bytesOutToReady).map((b) => b / 1024);
    const conns = rs.flatMap((r) => r.connections);
    lines.push(`| ${label} | ${ok.length} of ${rs.length} | ${withRange(ok.map((r) => r.ms.allRing), f0)} | ${withRange(ok.map((r) => r.ms.allBlocks), f0)} | ${withRange(ok.map((r) => r.ms.allRecords), f0)} | **${withRange(ok.map((r) => r.ms.ready), f0)}** | ${ratio(ready, median(baseOk.map((r) => r.ms.ready)))} | ${withRange(ok.map((r) => r.ms.equal), f0)} | ${ratio(median(ok.map((r) => r.ms.equal)), median(baseOk.map((r) => r.ms.equal)))} | ${num(median(sent))} (max ${num(Math.max(...sent))}) | ${median(conns)} (${Math.min(...conns)}–${Math.max(...conns)}) | ${goal} |`);
  }
  return lines.join('\n');
}

function joinTable(results: readonly RunResult[]): string {
  const full = fullRuns(results).filter((r) => r.joins.length > 0);
  if (full.length === 0) return '(no joins measured)';
  const base = full[0]!;
  const med = (r: RunResult, f: (j: JoinResult) => number): number => median(r.joins.map(f));
  const lines = [
    `| mesh joined | joins | start → its record at every peer ms | ÷ ${base.size} peers | start → it has the ring ms | its block request → the grant in every peer's map, all digests equal ms | ÷ ${base.size} peers | start → that ms |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of full) {
    const failed = r.joins.filter((j) => !Number.isFinite(j.handoverMs)).length;
    lines.push(`| ${r.label} | ${r.joins.length}${failed > 0 ? ` (${failed} not handed over in time)` : ''} | ${withRange(r.joins.map((j) => j.knownMs), f0)} | ${ratio(med(r, (j) => j.knownMs), med(base, (j) => j.knownMs))} | ${withRange(r.joins.map((j) => j.ringMs), f0)} | ${withRange(r.joins.map((j) => j.handoverMs), f0)} | ${ratio(med(r, (j) => j.handoverMs), med(base, (j) => j.handoverMs))} | ${withRange(r.joins.map((j) => j.totalMs), f0)} |`);
  }
  return lines.join('\n');
}

function memoryTable(results: readonly RunResult[], bare: number): string {
  const full = fullRuns(results);
  if (full.length === 0) return '(no memory measured)';
  const heapPerPeer = (r: RunResult): number => ((r.steady!.heapAfterGc - r.heapBefore) * 1024) / r.size;
  const base = full[0]!;
  const lines = [
    `| mesh | one peer in its own process, ${VARIANTS.source}: RSS MB | its peak (VmHWM) MB | ${VARIANTS.bundle}: RSS MB | its peak MB | of that, file-backed MB | V8 heap of one peer's process: total / live MB | harness: RSS of all workers MB | RSS per added peer since the row above KB | live V8 heap per peer in the harness KB | ÷ ${base.size} peers | goal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  let previous: RunResult | undefined;
  for (const r of full) {
    const src = r.joins.filter((j) => j.variant === 'source');
    const bun = r.joins.filter((j) => j.variant === 'bundle');
    const best = Math.min(median(src.map((j) => j.rss)), median(bun.map((j) => j.rss)));
    const goal = r.size === 50 && r.joins.length > 0 ? `< 64 MB${best < 64 ? ' ✅' : ' ❌'}` : '';
    const marginal = previous && r.size > previous.size ? ((r.steady!.rssAfter - previous.steady!.rssAfter) * 1024) / (r.size - previous.size) : NaN;
    lines.push(`| ${r.label} | ${withRange(src.map((j) => j.rss))} | ${withRange(src.map((j) => j.hwm))} | ${withRange(bun.map((j) => j.rss))} | ${withRange(bun.map((j) => j.hwm))} | ${withRange(bun.map((j) => j.file))} | ${num(median(r.joins.map((j) => j.heapTotal)))} / ${num(median(r.joins.map((j) => j.heapUsed)))} | ${num(r.steady!.rssAfter)} | ${f0(marginal)} | ${f0(heapPerPeer(r))} | ${ratio(heapPerPeer(r), heapPerPeer(base))} | ${goal} |`);
    previous = r;
  }
  const loaded = full.flatMap((r) => r.joins);
  lines.push('', `Floors, same run: a bare \`node\` (the same binary, nothing loaded) is ${num(bare)} MB; a single-peer process with the mesh modules loaded and no peer started is ${withRange(loaded.filter((j) => j.variant === 'source').map((j) => j.rssLoaded))} MB from the sources and ${withRange(loaded.filter((j) => j.variant === 'bundle').map((j) => j.rssLoaded))} MB bundled.`);
  return lines.join('\n');
}

function trafficTable(results: readonly RunResult[]): string {
  const full = fullRuns(results);
  if (full.length === 0) return '(no steady window measured)';
  const base = full[0]!;
  const lines = [
    `| mesh | window s | **gossip sent per peer B/s** (median) | max B/s | ÷ ${base.size} peers | on the wire per peer B/s (framing, keepalives) | messages sent per peer /s | sends refused by a channel | CPU per peer ms/s (harness) | worst event-loop delay in a worker ms | connections opened in the window (both ends log one) | every peer sees all reachable | state still equal |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of full) {
    const s = r.steady!;
    const opened = (s.logs['info: mesh connection established'] ?? 0) / 2;
    lines.push(`| ${r.label} | ${f0(s.seconds)} | **${num(median(s.bytesOutPerS))}** | ${num(Math.max(...s.bytesOutPerS))} | ${ratio(median(s.bytesOutPerS), median(base.steady!.bytesOutPerS))} | ${num(s.wireBytesOutPerS)} | ${num(median(s.messagesOutPerS))} | ${s.refusedSends} | ${num(s.cpuMsPerSPerPeer)} | ${f0(s.loopMaxMs)} | ${opened} | ${s.reachableAll ? 'yes' : 'no'} | ${s.equalAfter ? 'yes' : 'no'} |`);
  }
  lines.push('', `Per ${SLICE_MS / 1000} s slice of the window (mean gossip sent per peer B/s; connection establishments logged, both ends counted): ${full.map((r) => `${r.label}: ${r.steady!.slices.map((x) => `${num(x.outPerS)}${x.opened > 0 ? ` (${x.opened})` : ''}`).join(', ')}`).join('; ')}.`);
  const kinds = [...new Set(full.flatMap((r) => Object.keys(r.steady!.byKind)))].sort();
  lines.push('', 'By message kind (gossip bytes sent per peer per second; the largest single message of the run in parentheses):', '');
  lines.push(`| mesh | ${kinds.join(' | ')} |`, `|---|${kinds.map(() => '---:').join('|')}|`);
  for (const r of full) lines.push(`| ${r.label} | ${kinds.map((k) => { const v = r.steady!.byKind[k]; return v ? `${num(v.bytes)} (${num(v.max / 1024)} KB)` : '0'; }).join(' | ')} |`);
  return lines.join('\n');
}

function runsTable(results: readonly RunResult[]): string {
  const lines = [
    '| mesh | run | converged | first ring ms | ring everywhere ms | blocks everywhere ms | records everywhere ms | ready ms | equal ms | peers with every other peer in dataPlanePeers() | digests equal | merge conflicts | ring conflicts | harness RSS loaded → ready MB | worst loop delay ms |',
    '|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    lines.push(`| ${r.label} | ${r.run} | ${r.converged ? 'yes' : 'NO'} | ${f0(r.ms.firstRing)} | ${f0(r.ms.allRing)} | ${f0(r.ms.allBlocks)} | ${f0(r.ms.allRecords)} | ${f0(r.ms.ready)} | ${f0(r.ms.equal)} | ${r.verified.dataPlaneOk} of ${r.size} | ${r.verified.digestsEqual ? 'yes' : 'no'} | ${r.verified.conflicts} | ${r.verified.ringConflicts} | ${num(r.rssBefore)} → ${num(r.rssAfter)} | ${f0(r.loopMaxMs)} |`);
  }
  return lines.join('\n');
}

/** Log lines the nodes wrote, counted (peer names and addresses elided): churn and refusals show here. */
function logTable(results: readonly RunResult[]): string {
  const lines = ['| mesh | phase | count | log line |', '|---|---|---:|---|'];
  for (const [label, rs] of byCase(results)) {
    const steady = rs.filter((r) => r.steady);
    for (const [phase, counts] of [[`start to ready (${rs.length} run${rs.length > 1 ? 's' : ''})`, sumLogs(rs.map((r) => r.logs))], ['steady window', sumLogs(steady.map((r) => r.steady!.logs))]] as const) {
      const entries = Object.entries(counts).filter(([k]) => !k.startsWith('info: mesh peer started')).sort((a, b) => b[1] - a[1]).slice(0, 10);
      for (const [k, v] of entries) lines.push(`| ${label} | ${phase} | ${v} | ${k.replace(/\|/g, '\\|')} |`);
    }
  }
  return lines.join('\n');
}

function explain(results: readonly RunResult[]): string {
  const parts: string[] = [];
  for (const [label, rs] of byCase(results)) {
    const ok = rs.filter((r) => r.converged);
    if (ok.length < rs.length) parts.push(`${label}: ${rs.length - ok.length} of ${rs.length} runs did not converge within ${timeoutMs / 1000} s.`);
    if (ok.length === 0) continue;
    const m = (f: (r: RunResult) => number): string => f0(median(ok.map(f)));
    parts.push(`${label}: the first peer had a ring after ${m((r) => r.ms.firstRing)} ms and every peer after ${m((r) => r.ms.allRing)} ms; every peer knew every record after ${m((r) => r.ms.allRecords)} ms and owned a block after ${m((r) => r.ms.allBlocks)} ms; ready everywhere after ${m((r) => r.ms.ready)} ms, equal maps after ${m((r) => r.ms.equal)} ms.`);
  }
  const full = fullRuns(results);
  for (const r of full) {
    const s = r.steady!;
    const churn = (s.logs['info: mesh connection established'] ?? 0) / 2;
    if (churn > r.size / 2) parts.push(`${r.label}: the steady window was not quiet: ${churn} connections were opened in ${f0(s.seconds)} s (see the log counts below) and each peer sent ${num(median(s.bytesOutPerS) / 1024)} KB/s.`);
  }
  const recordKinds = full.map((r) => ({ r, max: r.steady!.byKind['state: records']?.max ?? 0 }));
  const big = recordKinds.filter((x) => x.max > 256 * 1024);
  if (big.length > 0) parts.push(`The largest record message: ${big.map((x) => `${num(x.max / 1024)} KB (${x.r.label})`).join(', ')}; a channel's frame is at most 1 MiB.`);
  return parts.join(' ');
}

// --- main ------------------------------------------------------------------------------------

/** RSS of a node that loads nothing (the floor under every figure). */
async function bareNodeRss(): Promise<number> {
  const r = await runCmd([process.execPath, '-e', 'console.log(process.memoryUsage().rss)'], 30_000);
  return mb(Number(r.stdout.trim()));
}

async function main(): Promise<number> {
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  const wall0 = Date.now();
  const psk = opts.password ? derivePsk('bench-mesh-password', 'bench').toString('hex') : null;
  const cases = plan();
  log(`${TAG}: ${cases.map((c) => `${c.label} ×${c.runs}`).join('; ')}; ${workerCount} workers; ${targetCount} bootstrap targets; ${TIMING_TEXT}; ${psk ? 'encrypted' : 'plaintext'}; load ${loadBefore}`);
  const bare = await bareNodeRss();
  const results: RunResult[] = [];
  for (const c of cases) for (let run = 1; run <= c.runs; run++) results.push(await runMesh(c, run, run === c.runs, psk));
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
  const wallS = (Date.now() - wall0) / 1000;

  const tables = [
    '### Cold start: every peer started at once', '', convergenceTable(results), '',
    '### A peer joins the settled mesh', '', joinTable(results), '',
    '### Memory', '', memoryTable(results, bare), '',
    '### Control traffic in steady state', '', trafficTable(results),
  ].join('\n');
  const inits = [...new Set(cases.map((c) => c.label))].join('; ');
  const body = [
    '## Mesh mode: convergence, joins, memory and control traffic at 10–200 peers',
    '',
    `Measured ${date} by \`npm run bench:mesh\` (benchmarks/mesh/run.ts) in ${f0(wallS)} s. Ratios (÷) are against the ${cases[0]!.size}-peer mesh of the same run: a scaling factor, not a comparison with another product. Figures are medians with the range over runs in parentheses (for joins, over the joins).`,
    '',
    tables,
    '',
    `**What the numbers say.** ${explain(results)}`,
    '',
    'For scale, Weave Net\'s published figures (reports and docs, not measured here, on other hardware, for an agent that does more): its IPAM consensus took about 30 s on small clusters, and in one report from a 180-node cluster without persisted IPAM state 15–20 minutes under heavy CPU and network load; its full mesh of connections ran into trouble between 100 and 200 nodes (the mesh library itself claims the order of 100 peers); and the weave container was reported at about 100–136 MB of memory in moderate clusters.',
    '',
    `Machine: ${machineFacts(ROOT)}; 2 cores shared with other jobs: load average (1/5/15 min) ${loadBefore} before, ${loadAfter} after.`,
    '',
    `**Method.** Each mesh is up to ${workerCount} worker processes (benchmarks/mesh/worker.ts, from the TypeScript sources) holding real MeshNodes, peers dealt round-robin (200 peers are 50 per event loop), listening on 127.0.0.1 on ports picked free at start; ${psk ? 'encrypted (a password: Noise channels)' : 'plaintext'} control connections, connLimit ${CONN_LIMIT}, range ${UNIVERSE} in /${BLOCK_PREFIX} blocks, timing ${TIMING_TEXT}. No data plane: each peer announces a fake VXLAN endpoint. Each peer gets ${targetCount} random other peers as bootstrap targets (redrawn until that graph is connected) and learns the rest by gossip. Meshes: ${inits} (seed= names every peer, so those peers get fixed names; consensus peers generate theirs). Around each node the worker does what the mesh-mode agent does: announce, ask for ${INITIAL_WANT} blocks (requestBlocks) while it has a ring but no block, then activate its first block. Every change a node signals is looked at within 20 ms, and every peer once a second: its ring, own blocks, the hash of the peer names it has records of and of the owners in its block map, and its map digest, stamped with the worker's clock. "Ready" is the first time from which every peer at once had the ring, a block, every peer's record, and a map in which every peer owns blocks (so every other peer is in its dataPlanePeers(), checked with dataPlanePeers() itself at the end); "equal state" adds that every peer's block-map digest is the final one. The clock starts when the first peer's start() is called. A run that does not converge within ${timeoutMs / 1000} s is reported as such. ${runsSmall} fresh meshes per case up to 50 peers, ${runsLarge} above; the last one of each case goes on: 3 s of settling, a ${steadyS} s window of node.traffic() (gossip payload; the channel's own bytes, framing and keepalives included, are summed from the channels' stats), sends by message kind (seen by wrapping the channel's send()), CPU and event-loop delay; then the joins, one after another, each a new process holding one peer (alternately from the sources and as an esbuild bundle of the same worker under \`--max-semi-space-size=1\`), bootstrapped from ${targetCount} random members; its VmRSS and VmHWM (/proc) are read after it has been a member for ${HOLD_MS / 1000} s. In the harness, RSS per added peer is the difference in the workers' total RSS after the window between one mesh and the smaller one above it, over the difference in peers; live heap per peer is (V8 heap used by all workers after a full GC at the end of the window − after loading, before any peer) / peers. Peer state directories are on tmpfs (/dev/shm): every state change is an fsync'd write, which a real node does for itself alone. Peers in one worker share its event loop on 2 shared cores, and the harness's own checks run there too, so times and CPU are upper bounds for separate machines; the worst event-loop delay is reported.`,
    '',
    '<details><summary>Every run, and what the nodes logged</summary>',
    '',
    runsTable(results),
    '',
    logTable(results),
    '',
    '</details>',
  ].join('\n');

  process.stdout.write(`\n${tables}\n\n${explain(results)}\n`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify(results, null, 1));
  if (opts.write) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), 'mesh', body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

await runBench(TAG, main, () => rmSync(scratch, { recursive: true, force: true }));
