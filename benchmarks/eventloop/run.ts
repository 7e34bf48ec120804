// `npm run bench:eventloop`: does programming thousands of peers stall the agent's event loop?
// In a scratch node namespace one process (server.ts) serves real CNI ADDs (the weft CNI server
// with BridgeOperations, reached through build/weft-cni) while it programs N peers (default
// 5,000) through the real vxlan and host-gw backends, from an empty kernel and again in sync.
// Each pass runs twice per round: with the whole pass in one synchronous piece (sliceSize
// Infinity: the behaviour before slicing, the baseline) and with the default slices (256).
// Reported: the pass's duration, the event loop's worst and p99 delay during it, and CNI ADD
// latency p50/p99 while it ran against ADDs on the idle node, and every figure of the sliced
// reconcile as a ratio to the baseline of the same run.
//
// Safety: every namespace is created here (weft-evl-<random>-…) and deleted at the end, also on
// failure and on SIGINT/SIGTERM; nothing in the root namespace is touched; only processes
// started here are signalled, by PID.
//   npm run bench:eventloop [-- --peers 5000 --rounds 5 --workers 4 --no-write]
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cniEnv, run, type CniCall, type RunResult } from '../cni/exec.ts';
import { alive, median, percentile, positive } from '../stats.ts';
import { firstAddressOf, writeSubnetEnv } from '../../src/subnet/subnet-env.ts';
import { parseCidr } from '../../src/net/cidr.ts';
import { NETWORK, scratchNamespace, scratchNode, type ScratchNode } from './lab.ts';
import { runServer, type PassResult, type ServerCommand } from './server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];

const { values: opts } = parseArgs({
  options: {
    server: { type: 'boolean', default: false },
    driver: { type: 'string' },
    peers: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '5' },
    workers: { type: 'string', default: '4' },
    'idle-adds': { type: 'string', default: '40' },
    slice: { type: 'string', default: '256' },
    'no-write': { type: 'boolean', default: false },
  },
});

if (opts.server) {
  await runServer();
  process.exit(0);
}


const peerCount = positive('peers', opts.peers, 60_000);
const rounds = positive('rounds', opts.rounds, 20);
const workers = positive('workers', opts.workers, 16);
const idleAdds = positive('idle-adds', opts['idle-adds'], 1000);
const sliceSize = positive('slice', opts.slice, 100_000);

const VARIANTS = [{ name: 'baseline', label: 'one synchronous piece (sliceSize Infinity, before)', sliceSize: null }, { name: 'sliced', label: `slices of ${sliceSize} (after)`, sliceSize }] as const;
const KINDS = ['vxlan', 'host-gw'] as const;
const PASSES = ['empty', 'in-sync'] as const;
type Variant = (typeof VARIANTS)[number]['name'];
type Kind = (typeof KINDS)[number];
type PassName = (typeof PASSES)[number];

// --- cleanup --------------------------------------------------------------------------------

const PREFIX = `weft-evl-${randomBytes(3).toString('hex')}`;
const tmp = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
const namespaces: ScratchNode[] = [];
const children = new Map<number, string>();
let cleanedUp = false;

function cleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const [pid, what] of children) {
    if (alive(pid)) {
      process.stderr.write(`bench:eventloop: stopping ${what} (pid ${pid})\n`);
      process.kill(pid, 'SIGKILL');
    }
  }
  for (const ns of namespaces) ns.remove();
  rmSync(tmp, { recursive: true, force: true });
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench:eventloop: ${signal}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

// --- the measured process -------------------------------------------------------------------

interface ServerLink {
  child: ChildProcess;
  next(): Promise<Record<string, unknown>>;
  send(command: ServerCommand): void;
}

/** Started by the driver, so in the node namespace too. */
async function startServer(): Promise<ServerLink> {
  const child = spawn(process.execPath, [...NODE_FLAGS, SELF, '--server'], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (child.pid === undefined) throw new Error('could not start the measured server');
  children.set(child.pid, 'the measured server');
  const queue: Record<string, unknown>[] = [];
  const waiting: ((m: Record<string, unknown>) => void)[] = [];
  let exited = false;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    const w = waiting.shift();
    if (w) w(message);
    else queue.push(message);
  });
  child.once('exit', (code) => {
    exited = true;
    for (const w of waiting.splice(0)) w({ reply: 'exited', code });
  });
  const link: ServerLink = {
    child,
    next: () => {
      const m = queue.shift();
      if (m) return Promise.resolve(m);
      if (exited) return Promise.resolve({ reply: 'exited' });
      return new Promise((resolve) => waiting.push(resolve));
    },
    send: (command) => child.stdin!.write(`${JSON.stringify(command)}\n`),
  };
  await expect(link, 'ready');
  return link;
}

async function expect(link: ServerLink, reply: string): Promise<Record<string, unknown>> {
  const m = await link.next();
  if (m.reply !== reply) throw new Error(`the measured server answered ${JSON.stringify(m)} where "${reply}" was expected (its stderr is above)`);
  return m;
}

// --- CNI ADDs, timed from this process --------------------------------------------------------

interface Cni {
  plugin: string;
  config: Record<string, unknown>;
  pods: string[];
  serial: number;
}

function cniSetup(dir: string, pods: string[]): Cni {
  const subnetFile = join(dir, 'subnet.env');
  writeSubnetEnv(subnetFile, { network: parseCidr(NETWORK), subnet: firstAddressOf(parseCidr('10.0.0.0/24')), mtu: 1450, ipMasq: true });
  const plugin = join(dir, 'weft-cni');
  copyFileSync(join(ROOT, 'build', 'weft-cni'), plugin);
  execFileSync('chmod', ['755', plugin]);
  return {
    plugin,
    pods,
    serial: 0,
    config: {
      cniVersion: '1.0.0', name: 'evlnet', type: 'weft', bridge: 'cni0', isGateway: true, isDefaultGateway: true, hairpinMode: true, mtu: 1450,
      subnetFile, ipam: { type: 'host-local', dataDir: join(dir, 'ipam') },
    },
  };
}

/**
 * Execs the front end as a runtime does. WEFT_CNI_FALLBACK names no file, so a call that does
 * not reach the measured server fails instead of running the standalone plugin.
 */
function execPlugin(call: CniCall): Promise<RunResult> {
  return run(call.plugin, [], { env: { ...cniEnv(call), WEFT_CNI_FALLBACK: '/nonexistent/weft-evl-no-fallback' }, stdin: JSON.stringify(call.config) });
}

/** One pod: ADD (timed) then DEL (untimed), in the worker's own pod namespace. */
async function podCycle(cni: Cni, worker: number): Promise<number> {
  const containerId = `${PREFIX}-c${cni.serial++}`;
  const netns = cni.pods[worker] as string;
  const add: CniCall = { plugin: cni.plugin, command: 'ADD', containerId, netns, config: cni.config };
  const a = await execPlugin(add);
  if (a.code !== 0) throw new Error(`CNI ADD failed (${a.code}): ${a.stdout.trim()} ${a.stderr.trim()}`);
  const del: CniCall = { ...add, command: 'DEL', config: { ...cni.config, prevResult: JSON.parse(a.stdout) } };
  const d = await execPlugin(del);
  if (d.code !== 0) throw new Error(`CNI DEL failed (${d.code}): ${d.stdout.trim()} ${d.stderr.trim()}`);
  return a.ms;
}

/** `workers` loops of pod cycles until stop() says so; the ADD times of cycles started before it. */
async function podsWhile(cni: Cni, stop: () => boolean): Promise<number[]> {
  const out: number[] = [];
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    while (!stop()) out.push(await podCycle(cni, w));
  }));
  return out;
}

async function idlePods(cni: Cni): Promise<number[]> {
  let left = idleAdds;
  return podsWhile(cni, () => left-- <= 0);
}

// --- one measurement -------------------------------------------------------------------------

interface Sample { pass: PassResult; adds: number[] }

async function measurePass(link: ServerLink, cni: Cni): Promise<Sample> {
  link.send({ cmd: 'program', peers: peerCount });
  await expect(link, 'started');
  let done = false;
  const finished = expect(link, 'pass').then((m) => {
    done = true;
    return m as unknown as PassResult;
  });
  const adds = await podsWhile(cni, () => done);
  const pass = await finished;
  if (pass.errors > 0) throw new Error(`the pass reported ${pass.errors} peer errors`);
  return { pass, adds };
}

type Key = `${Variant}/${Kind}/${PassName}`;

interface DriverSpec { pods: string[]; dir: string; outerNetnsInode: number; resultFile: string }

/** In the node namespace: starts the measured server, drives the pods, writes the report body. */
async function runDriver(spec: DriverSpec): Promise<void> {
  // Safety: the front end execs here and the server programs this namespace.
  if (statSync('/proc/self/ns/net').ino === spec.outerNetnsInode) throw new Error('the driver must run inside the scratch node namespace');
  const cni = cniSetup(spec.dir, spec.pods);
  const link = await startServer();
  try {
    const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
    process.stderr.write(`bench:eventloop: ${peerCount} peers, ${rounds} rounds, ${workers} concurrent pod loops; load ${loadBefore}\n`);
    const idle: number[] = [];
    const samples = new Map<Key, Sample[]>();
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? VARIANTS : [...VARIANTS].reverse();
      for (const variant of order) {
        for (const kind of KINDS) {
          link.send({ cmd: 'backend', kind, sliceSize: variant.sliceSize });
          await expect(link, 'backend');
          idle.push(...await idlePods(cni));
          for (const pass of PASSES) {
            const s = await measurePass(link, cni);
            const key: Key = `${variant.name}/${kind}/${pass}`;
            samples.set(key, [...(samples.get(key) ?? []), s]);
            process.stderr.write(`round ${round}: ${variant.name} ${kind} ${pass}: pass ${s.pass.ms.toFixed(0)} ms (${s.pass.changes} changes), loop max delay ${s.pass.maxDelayMs.toFixed(1)} ms, ${s.adds.length} ADDs during it (p99 ${percentile(s.adds, 99).toFixed(1)} ms)\n`);
          }
          link.send({ cmd: 'teardown' });
          await expect(link, 'teardown');
        }
      }
    }
    link.send({ cmd: 'quit' });
    const bye = await expect(link, 'bye');
    const calls = 2 * cni.serial;
    if (bye.cniRequests !== calls) throw new Error(`the server served ${String(bye.cniRequests)} CNI requests, the driver made ${calls}: some did not reach it`);
    const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');
    writeFileSync(spec.resultFile, report(samples, idle, loadBefore, loadAfter));
  } finally {
    link.child.stdin?.end();
  }
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('bench:eventloop needs root (it creates network namespaces)');
  if (!existsSync(join(ROOT, 'build', 'weft-cni')) || !existsSync(join(ROOT, 'build', 'weft_native.node'))) throw new Error('build/ is incomplete: run `npm run build:native`');
  const node = scratchNode(`${PREFIX}-node`);
  namespaces.push(node);
  const pods = Array.from({ length: workers }, (_, i) => {
    const ns = scratchNamespace(`${PREFIX}-pod${i}`);
    namespaces.push(ns);
    return ns.path;
  });
  const spec: DriverSpec = { pods, dir: tmp, outerNetnsInode: statSync('/proc/self/ns/net').ino, resultFile: join(tmp, 'report.md') };
  const args = ['--slice', String(sliceSize), '--peers', String(peerCount), '--rounds', String(rounds), '--workers', String(workers), '--idle-adds', String(idleAdds)];
  const driver = spawn('nsenter', [`--net=${node.path}`, process.execPath, ...NODE_FLAGS, SELF, '--driver', JSON.stringify(spec), ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (driver.pid === undefined) throw new Error('could not start the driver');
  children.set(driver.pid, 'the driver');
  const code = await new Promise<number | null>((resolve) => driver.once('exit', resolve));
  if (code !== 0) throw new Error(`the driver failed (exit ${code}); see its message above`);
  const body = readFileSync(spec.resultFile, 'utf8');
  process.stdout.write(`\n${body}\n`);
  if (!opts['no-write']) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

// --- report -----------------------------------------------------------------------------------

const START = '<!-- bench:eventloop:start -->';
const END = '<!-- bench:eventloop:end -->';

/** Replaces this benchmark's own section, or appends it; the file is read right before the write. */
function writeSection(file: string, body: string): void {
  const section = `${START}\n${body.trim()}\n${END}`;
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  writeFileSync(file, start >= 0 && end > start ? `${text.slice(0, start)}${section}${text.slice(end + END.length)}` : `${text.trimEnd()}\n\n${section}\n`);
}

const f = (x: number): string => (!Number.isFinite(x) ? 'n/a' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

interface Figures { passMs: number; maxDelay: number; p99Delay: number; addP50: number; addP99: number; adds: number }

/** Per round figures of one key, then the median over rounds (ADD percentiles over all rounds' ADDs pooled). */
function figures(list: Sample[]): Figures {
  const adds = list.flatMap((s) => s.adds);
  return {
    passMs: median(list.map((s) => s.pass.ms)),
    maxDelay: median(list.map((s) => s.pass.maxDelayMs)),
    p99Delay: median(list.map((s) => s.pass.p99DelayMs)),
    addP50: percentile(adds, 50),
    addP99: percentile(adds, 99),
    adds: adds.length,
  };
}

function report(samples: Map<Key, Sample[]>, idle: number[], loadBefore: string, loadAfter: string): string {
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const idleP50 = percentile(idle, 50);
  const idleP99 = percentile(idle, 99);
  const head = '| backend, pass | variant | pass (ms) | loop max delay (ms) | loop p99 delay (ms) | ADDs during | ADD p50 (ms) | ADD p99 (ms) |';
  const lines = [head, '|---|---|---:|---:|---:|---:|---:|---:|'];
  const ratios = ['| backend, pass | pass duration | loop max delay | loop p99 delay | ADD p50 | ADD p99 |', '|---|---:|---:|---:|---:|---:|'];
  for (const kind of KINDS) {
    for (const pass of PASSES) {
      const b = figures(samples.get(`baseline/${kind}/${pass}`) ?? []);
      const s = figures(samples.get(`sliced/${kind}/${pass}`) ?? []);
      for (const [v, x] of [[VARIANTS[0], b], [VARIANTS[1], s]] as const) {
        lines.push(`| ${kind}, ${pass === 'empty' ? 'empty kernel' : 'in sync'} | ${v.label} | ${f(x.passMs)} | ${f(x.maxDelay)} | ${f(x.p99Delay)} | ${x.adds} | ${f(x.addP50)} | ${f(x.addP99)} |`);
      }
      const r = (a: number, z: number): string => (Number.isFinite(a / z) ? (a / z).toFixed(2) : 'n/a');
      ratios.push(`| ${kind}, ${pass === 'empty' ? 'empty kernel' : 'in sync'} | ${r(s.passMs, b.passMs)} | ${r(s.maxDelay, b.maxDelay)} | ${r(s.p99Delay, b.p99Delay)} | ${r(s.addP50, b.addP50)} | ${r(s.addP99, b.addP99)} |`);
    }
  }
  const machine = `nproc ${availableParallelism()}; cpu ${cpus()[0]?.model ?? 'unknown'}; kernel ${release()}; node ${process.version}`;
  return [
    '## Event loop while peers are programmed (data plane reconcile)',
    '',
    `Measured ${date} by \`npm run bench:eventloop\` (benchmarks/eventloop/run.ts): ${peerCount} peers, ${rounds} rounds, ${workers} concurrent pod loops. Machine: ${machine}. Load average ${loadBefore} before, ${loadAfter} after (a shared machine).`,
    '',
    '**Sliced reconcile / baseline, same run** (below 1.00: better than before):',
    '',
    ...ratios,
    '',
    `CNI ADD on the idle node (same process, no pass running): p50 ${f(idleP50)} ms, p99 ${f(idleP99)} ms over ${idle.length} ADDs.`,
    '',
    ...lines,
    '',
    '**Method.** One process in a scratch node namespace (a veth as underlay, 172.20.0.1/16; peers 10.x.y.0/24 in Network 10.0.0.0/8 with PublicIPs on the underlay, so host-gw routes them all) runs the weft CNI server (BridgeOperations, abstract socket) and the real backend on its one event loop, as the agent does. ' +
      `The driver, another process, sends it "program ${peerCount} peers" and, until the pass is reported done, keeps ${workers} loops of pod cycles going (ADD through build/weft-cni, then DEL, each loop in its own pod namespace), timing each ADD from spawn to exit in its own process, so the measured loop cannot distort the clock. ` +
      'Each round runs, per variant and backend: idle ADDs, a pass from an empty kernel (vxlan: a route, a neighbour and an FDB entry per peer; host-gw: a route), a second pass with the kernel in sync (dumps, plan, diff, no change), and a teardown. ' +
      'The baseline is the same code with sliceSize Infinity: the whole pass in one synchronous piece, as before slicing; the variants alternate order per round. ' +
      'Loop delay is perf_hooks.monitorEventLoopDelay (1 ms resolution) over the pass, median over rounds; ADD percentiles pool the ADDs of all rounds (nearest rank); pass durations are medians. ' +
      'Both variants include the plan fix of the same change (the main table parsed once per plan instead of once per peer): before it, an in-sync pass of 5,000 vxlan peers took about 18 s of blocked loop on this machine (benchmarks/eventloop/profile.ts).',
  ].join('\n');
}

let exitCode = 1;
try {
  if (opts.driver) {
    await runDriver(JSON.parse(opts.driver) as DriverSpec);
    exitCode = 0;
  } else {
    exitCode = await main();
  }
} catch (e) {
  process.stderr.write(`\nbench:eventloop: BROKEN RUN: ${(e as Error).message}\n`);
} finally {
  cleanup();
}
process.exit(exitCode);
