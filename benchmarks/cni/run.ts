// `npm run bench:cni`: pod network setup latency of weft against the reference plugins, side by
// side in one run on one machine (see benchmarks/README.md).
//
// Variants, each in its own fresh node namespace per round (bridge cni0, 10.244.1.0/24, MTU 1450):
//   server     - build/weft-cni with `weft cni-server` running in the node namespace (production);
//   standalone - the same front end with no server: it falls back to a Node process per call;
//   reference  - Debian's /usr/lib/cni/bridge with host-local IPAM, same options.
// For each variant the benchmark re-execs itself once inside the node namespace (nsenter --net),
// and that process spawns every plugin directly, as a runtime on the node would.
//
// Safety: every namespace is created here, named weft-bench-<random>-…, and deleted at the end,
// also on failure and on SIGINT/SIGTERM; the root namespace's links, routes and firewall are
// never touched; only processes started here are signalled, by PID.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runInner, type InnerResult, type InnerSpec } from './inner.ts';
import { must } from './exec.ts';
import { alive, positive } from '../stats.ts';
import { firstAddressOf, writeSubnetEnv } from '../../src/subnet/subnet-env.ts';
import { parseCidr } from '../../src/net/cidr.ts';
import { FIGURES, median, ms, percentile, perRoundTable, summarise, table, writeSection, type Figures, type RoundRow, type VariantSummary } from './report.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];

const { values: opts } = parseArgs({
  options: {
    inner: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    cycles: { type: 'string', default: '200' },
    'standalone-cycles': { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    burst: { type: 'string', default: '100' },
    variants: { type: 'string', default: 'server,standalone,reference' },
    'no-write': { type: 'boolean', default: false },
  },
});

if (opts.inner) {
  await runInner(opts.inner);
  process.exit(0);
}

// --- configuration ---------------------------------------------------------------------------

const NETWORK = 'benchnet';
const CLUSTER_NETWORK = '10.244.0.0/16';
const NODE_SUBNET = '10.244.1.0/24';
const MTU = 1450;
const BRIDGE = 'cni0';

type VariantName = 'server' | 'server-routed' | 'standalone' | 'reference';
const LABELS: Record<VariantName, string> = {
  server: 'weft (server)', 'server-routed': 'weft (server, --pod-link routed)', standalone: 'weft (standalone)', reference: 'reference (bridge + host-local)',
};

const rounds = positive('rounds', opts.rounds, 20);
const cycles = positive('cycles', opts.cycles, 5000);
const standaloneCycles = positive('standalone-cycles', opts['standalone-cycles'], 5000);
const warmup = Math.max(0, Number(opts.warmup) | 0);
const burst = positive('burst', opts.burst, 250); // a /24 holds 253 pods
const variantNames = (opts.variants ?? '').split(',').map((s) => s.trim()) as VariantName[];
for (const v of variantNames) if (!(v in LABELS)) throw new Error(`--variants: unknown variant ${v} (server, server-routed, standalone, reference)`);

const FRONT_END = join(ROOT, 'build', 'weft-cni');
const WEFT_BIN = join(ROOT, 'bin', 'weft');
const REF_BRIDGE = '/usr/lib/cni/bridge';

// --- cleanup: everything this run created, and nothing else ---------------------------------

const id = randomBytes(4).toString('hex');
const PREFIX = `weft-bench-${id}`;
const tmp = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
const children = new Map<number, string>();
let cleanedUp = false;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}


function ourNamespaces(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`${PREFIX}-`)) : [];
}

function deleteNamespaces(names: string[]): void {
  if (names.length === 0) return;
  try {
    execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `netns del ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'pipe'] });
  } catch {
    for (const n of names) {
      try {
        execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
      } catch {
        // reported below if it is still there
      }
    }
  }
}

function cleanup(): void {
  if (cleanedUp) return;
  cleanedUp = true;
  for (const [pid] of children) if (alive(pid)) process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 40 && [...children.keys()].some(alive); i++) sleepSync(50);
  for (const [pid, what] of children) {
    if (alive(pid)) {
      process.stderr.write(`bench:cni: killing ${what} (pid ${pid})\n`);
      process.kill(pid, 'SIGKILL');
    }
  }
  deleteNamespaces(ourNamespaces());
  const left = ourNamespaces();
  if (left.length > 0) process.stderr.write(`bench:cni: could not delete namespaces: ${left.join(', ')}\n`);
  rmSync(tmp, { recursive: true, force: true });
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench:cni: ${signal}: cleaning up\n`);
    cleanup();
    process.exit(code);
  });
}

function track(child: ChildProcess, what: string): number {
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${what}`);
  children.set(pid, what);
  child.once('exit', () => children.delete(pid));
  return pid;
}

// --- helpers ---------------------------------------------------------------------------------

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function waitExit(child: ChildProcess, timeoutMs: number, what: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve(child.exitCode);
      return;
    }
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs / 1000} s; killed it`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function addNamespaces(names: string[]): void {
  execFileSync('ip', ['-batch', '-'], { input: names.map((n) => `netns add ${n}\n`).join(''), stdio: ['pipe', 'ignore', 'pipe'] });
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (user + system) of a process so far, in ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

function configFor(variant: VariantName, dir: string): Record<string, unknown> {
  const common = { cniVersion: '1.0.0', name: NETWORK, bridge: BRIDGE, isGateway: true, isDefaultGateway: true, hairpinMode: true, mtu: MTU };
  if (variant === 'reference') {
    return {
      ...common,
      type: 'bridge',
      ipMasq: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: NODE_SUBNET }]], routes: [{ dst: CLUSTER_NETWORK }], dataDir: join(dir, 'ipam') },
    };
  }
  // FLANNEL_IPMASQ=true: the node agent masquerades, so the plugin does not (ipMasq false).
  const subnetFile = join(dir, 'subnet.env');
  writeSubnetEnv(subnetFile, {
    network: parseCidr(CLUSTER_NETWORK), subnet: firstAddressOf(parseCidr(NODE_SUBNET)), mtu: MTU, ipMasq: true,
    ...(variant === 'server-routed' ? { podLink: 'routed' as const } : {}),
  });
  return { ...common, type: 'weft', subnetFile, ipam: { type: 'host-local', dataDir: join(dir, 'ipam') } };
}

interface ServerHandle { child: ChildProcess; pid: number; log: string; cpuAtReady: number }

async function startServer(node: string, dir: string): Promise<ServerHandle> {
  const ready = join(dir, 'ready');
  const log = join(dir, 'server.log');
  const fd = openSync(log, 'w');
  const child = spawn('nsenter', [`--net=/run/netns/${node}`, WEFT_BIN, 'cni-server', '--ready-file', ready], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const pid = track(child, 'weft cni-server');
  for (let i = 0; i < 600 && !existsSync(ready); i++) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`weft cni-server exited before it was ready:\n${readFileSync(log, 'utf8')}`);
    await sleep(50);
  }
  if (!existsSync(ready)) throw new Error(`weft cni-server was not ready after 30 s:\n${readFileSync(log, 'utf8')}`);
  return { child, pid, log, cpuAtReady: cpuMs(pid) };
}

interface LogCheck { attached: number; detached: number; problems: string[] }

function checkServerLog(log: string): LogCheck {
  const out: LogCheck = { attached: 0, detached: 0, problems: [] };
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let entry: { level?: number; msg?: string; err?: string };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      out.problems.push(`unparsable server log line: ${line.slice(0, 200)}`);
      continue;
    }
    if (entry.msg === 'pod attached') out.attached++;
    else if (entry.msg === 'pod detached') out.detached++;
    if ((entry.level ?? 0) >= 40) out.problems.push(`server log: ${line.slice(0, 300)}`);
  }
  return out;
}

interface VariantRun { result: InnerResult; figures: Figures; serverCpuMsPerCall?: number; problems: string[] }

async function runVariant(variant: VariantName, round: number): Promise<VariantRun> {
  const tag = `r${round}-${variant}`;
  const dir = join(tmp, tag);
  rmSync(dir, { recursive: true, force: true });
  execFileSync('mkdir', ['-p', dir]);
  const node = `${PREFIX}-${tag}-node`;
  const n = variant === 'standalone' ? standaloneCycles : cycles;
  const seq = Array.from({ length: warmup + n }, (_, i) => `${PREFIX}-${tag}-s${i}`);
  const bursts = Array.from({ length: burst }, (_, i) => `${PREFIX}-${tag}-b${i}`);
  addNamespaces([node, ...seq, ...bursts]);
  const problems: string[] = [];
  let server: ServerHandle | undefined;
  try {
    if (variant === 'server' || variant === 'server-routed') server = await startServer(node, dir);
    const spec: InnerSpec = {
      variant: LABELS[variant],
      plugin: variant === 'reference' ? REF_BRIDGE : join(tmp, 'weft-cni'),
      config: configFor(variant, dir),
      storeDir: join(dir, 'ipam', NETWORK),
      bridge: BRIDGE,
      warmup,
      sequentialPods: seq.map((s) => `/run/netns/${s}`),
      burstPods: bursts.map((s) => `/run/netns/${s}`),
      containerIdPrefix: `${PREFIX}-${tag}`,
      outerNetnsInode: statSync('/proc/self/ns/net').ino,
      versionCalls: variant === 'standalone' ? 20 : 50,
      resultFile: join(dir, 'result.json'),
    };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec, null, 2));
    const inner = spawn('nsenter', [`--net=/run/netns/${node}`, process.execPath, ...NODE_FLAGS, SELF, '--inner', join(dir, 'spec.json')], { stdio: ['ignore', 'inherit', 'inherit'] });
    track(inner, `benchmark (${tag})`);
    const code = await waitExit(inner, 60 * 60_000, `the ${LABELS[variant]} measurement`);
    if (code !== 0) throw new Error(`the ${LABELS[variant]} measurement failed in round ${round} (exit ${code}); see its message above`);
    const result = JSON.parse(readFileSync(spec.resultFile, 'utf8')) as InnerResult;
    let serverCpuMsPerCall: number | undefined;
    if (server) {
      const calls = 2 * (seq.length + bursts.length) + Math.min(warmup, 5) + spec.versionCalls;
      serverCpuMsPerCall = (cpuMs(server.pid) - server.cpuAtReady) / calls;
      const log = checkServerLog(server.log);
      problems.push(...log.problems);
      if (log.attached !== seq.length + bursts.length || log.detached !== seq.length + bursts.length) {
        problems.push(`the server logged ${log.attached} ADDs and ${log.detached} DELs, expected ${seq.length + bursts.length} of each: some calls did not reach it`);
      }
    }
    const figures: Figures = {
      addP50: percentile(result.addMs, 50),
      addP99: percentile(result.addMs, 99),
      delP50: percentile(result.delMs, 50),
      delP99: percentile(result.delMs, 99),
      burstAdd: result.burstAddMs,
      burstDel: result.burstDelMs,
      versionP50: percentile(result.versionMs, 50),
    };
    return { result, figures, ...(serverCpuMsPerCall !== undefined ? { serverCpuMsPerCall } : {}), problems };
  } finally {
    if (server) {
      if (alive(server.pid)) process.kill(server.pid, 'SIGTERM');
      await waitExit(server.child, 10_000, 'weft cni-server').catch((e: Error) => problems.push(e.message));
    }
    deleteNamespaces([node, ...seq, ...bursts]);
    // Namespace teardown continues in the kernel; let it settle before the next variant.
    await sleep(2000);
  }
}

/**
 * Kernel calibration, independent of any plugin: deleting N veth pairs one after another from
 * one process, against N `ip link del` processes at once. The kernel finishes unregistering a
 * device (RCU grace periods) in the deleting thread after it drops the rtnl lock, so serial
 * deletions pay that wait N times while concurrent ones overlap it.
 */
async function vethTeardown(n: number): Promise<{ serialMs: number; parallelMs: number }> {
  const ns = `${PREFIX}-calib`;
  addNamespaces([ns]);
  try {
    const create = (): Promise<string> => must('ip', ['-n', ns, '-batch', '-'], { stdin: Array.from({ length: n }, (_, i) => `link add v${i} type veth peer name w${i}\n`).join('') });
    await create();
    let t0 = process.hrtime.bigint();
    await must('ip', ['-n', ns, '-batch', '-'], { stdin: Array.from({ length: n }, (_, i) => `link del v${i}\n`).join('') });
    const serialMs = Number(process.hrtime.bigint() - t0) / 1e6;
    await create();
    t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: n }, (_, i) => must('ip', ['-n', ns, 'link', 'del', `v${i}`])));
    const parallelMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return { serialMs, parallelMs };
  } finally {
    deleteNamespaces([ns]);
    await sleep(2000);
  }
}

// --- facts and report ------------------------------------------------------------------------

function tryRun(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  } catch {
    return 'unknown';
  }
}

function machineFacts(): Record<string, string> {
  const dirty = tryRun('git', ['-C', ROOT, 'status', '--porcelain']).split('\n').filter(Boolean).length;
  return {
    nproc: String(availableParallelism()),
    cpu: cpus()[0]?.model ?? 'unknown',
    kernel: release(),
    node: `${process.version} (${process.execPath.replace(ROOT, '')})`,
    'reference plugins': `containernetworking-plugins ${tryRun('dpkg-query', ['-W', '-f', '${Version}', 'containernetworking-plugins'])}`,
    weft: `${tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'])}${dirty > 0 ? ` + ${dirty} uncommitted paths` : ''}`,
  };
}

function shapeLine(name: string, r: InnerResult): string {
  const s = r.shape;
  return `${name}: pod eth0 mtu ${s.podMtu} ${s.podAddresses.join(',')}; routes [${s.podRoutes.join('; ')}]; host veth mtu ${s.hostMtu} master ${s.hostMaster} hairpin ${s.hairpin ? 'on' : 'off'}; bridge mtu ${s.bridgeMtu} ${s.bridgeAddresses.join(',')}; node ip_forward=${s.ipForward}`;
}

function comparableShape(r: InnerResult): string {
  const { podAddresses: _a, ...rest } = r.shape;
  return JSON.stringify({ ...rest, prefix: r.shape.podAddresses.map((a) => a.split('/')[1]) });
}

interface Calibration { serialMs: number; parallelMs: number }

function explain(byName: Map<string, VariantSummary>, serverCpu: number[], cal: Calibration[]): string {
  const s = byName.get('server')?.median;
  const a = byName.get('standalone')?.median;
  const r = byName.get('reference')?.median;
  if (!s || !r) return '';
  const than = (x: number, y: number): string => (x <= y ? 'faster than' : 'slower than');
  const serial = median(cal.map((c) => c.serialMs));
  const parallel = median(cal.map((c) => c.parallelMs));
  const parts: string[] = [];
  parts.push(`Every call pays an exec: answering VERSION, which does no work, takes ${ms(s.versionP50)} ms through weft's static C front end and its socket round trip to the server, against ${ms(r.versionP50)} ms for the Go bridge binary.`);
  parts.push(`The reference ADD (${ms(r.addP50)} ms p50) starts two Go programs, bridge and the host-local it execs for IPAM; weft's server does the ADD in a process that is already running, over netlink sockets it keeps open, so ADD is ${than(s.addP50, r.addP50)} the reference (${ms(s.addP50)} ms p50).`);
  if (serverCpu.length > 0) parts.push(`The server used ${ms(median(serverCpu))} ms of CPU per request (from /proc, ADD, DEL and VERSION together).`);
  if (cal.length > 0) {
    parts.push(`Most of a DEL is kernel time, the same for both plugins: deleting a veth pair returns only after the kernel has finished unregistering it, and on this machine ${burst} veth deletions take ${ms(serial)} ms one after another from one process (${ms(serial / burst)} ms each) but ${ms(parallel)} ms as ${burst} concurrent processes (kernel calibration in the same run, median over rounds).`);
    if (s.burstDel >= 0.6 * serial) {
      parts.push(`weft's burst of ${burst} DELs (${ms(s.burstDel)} ms, ${than(s.burstDel, r.burstDel)} the reference) is about the serial figure: the server deletes each pod's veth with a blocking netlink call on its single JavaScript thread, so it pays that wait ${burst} times in a row, while the reference's ${burst} separate processes overlap it and are bound instead by starting ${2 * burst} Go processes on ${availableParallelism()} CPUs (${ms(r.burstDel)} ms). ADDs have no such wait, so the same queueing costs weft little in the ADD burst (${ms(s.burstAdd)} ms against ${ms(r.burstAdd)} ms).`);
    } else {
      parts.push(`weft's burst of ${burst} DELs (${ms(s.burstDel)} ms against ${ms(r.burstDel)} ms for the reference) is well below the serial figure, so the server overlaps those waits; the ADD burst takes ${ms(s.burstAdd)} ms against ${ms(r.burstAdd)} ms.`);
    }
  }
  if (a) parts.push(`Without the server every call starts Node and loads weft (VERSION ${ms(a.versionP50)} ms, ADD p50 ${ms(a.addP50)} ms, ${(a.addP50 / r.addP50).toFixed(1)}× the reference), and a burst is ${burst} Node start-ups on ${availableParallelism()} CPUs (${ms(a.burstAdd)} ms): that is the cost the server exists to avoid.`);
  parts.push('The machine is shared and was not idle (load averages above and per round below; the standalone bursts themselves raise it), so single rounds vary; compare the medians and the ratios, which come from the same run.');
  return parts.join(' ');
}

// --- main ------------------------------------------------------------------------------------

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('bench:cni needs root (it creates network namespaces)');
  for (const f of [FRONT_END, WEFT_BIN, REF_BRIDGE, '/usr/lib/cni/host-local']) {
    if (!existsSync(f)) throw new Error(`${f} is missing${f.startsWith(ROOT) ? ' (run `npm run build:native`)' : ' (apt-get install containernetworking-plugins)'}`);
  }
  // The front end as built now: a concurrent `npm run build:native` rewrites build/weft-cni in
  // place, and an exec of a half-written file would look like a plugin failure.
  copyFileSync(FRONT_END, join(tmp, 'weft-cni'));
  execFileSync('chmod', ['755', join(tmp, 'weft-cni')]);

  const facts = machineFacts();
  const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const loadBefore = loadavg().map((x) => x.toFixed(2)).join(' ');
  process.stderr.write(`bench:cni ${PREFIX}: ${rounds} rounds of [${variantNames.join(', ')}], ${cycles} cycles (standalone ${standaloneCycles}) + ${warmup} warm-up, burst ${burst}; load ${loadBefore}\n`);

  const runs = new Map<VariantName, VariantRun[]>(variantNames.map((v) => [v, []]));
  const orders: string[][] = [];
  const rows: RoundRow[] = [];
  const calibration: Calibration[] = [];
  for (let round = 1; round <= rounds; round++) {
    // Rotate the order, so every variant runs first, second and last once in three rounds.
    const order = variantNames.map((_, i) => variantNames[(i + round - 1) % variantNames.length]!);
    orders.push(order.map((v) => LABELS[v]));
    for (const [i, v] of order.entries()) {
      const load = loadavg()[0]!;
      process.stderr.write(`round ${round}/${rounds}: ${LABELS[v]} (load ${load.toFixed(2)})\n`);
      const result = await runVariant(v, round);
      runs.get(v)!.push(result);
      rows.push({ round, position: i + 1, label: LABELS[v], load, figures: result.figures });
    }
    const cal = await vethTeardown(burst);
    process.stderr.write(`round ${round}/${rounds}: kernel calibration: ${burst} veth deletions serial ${cal.serialMs.toFixed(0)} ms, concurrent ${cal.parallelMs.toFixed(0)} ms\n`);
    calibration.push(cal);
  }
  const loadAfter = loadavg().map((x) => x.toFixed(2)).join(' ');

  const summaries = variantNames.map((v) => summarise(v, LABELS[v], runs.get(v)!.map((r) => r.figures)));
  const byName = new Map(summaries.map((s) => [s.name, s]));
  const problems = [...runs.values()].flat().flatMap((r) => r.problems);
  const serverCpu = (runs.get('server') ?? []).map((r) => r.serverCpuMsPerCall ?? NaN).filter(Number.isFinite);

  const firsts = [...runs.entries()].map(([v, rs]) => [v, rs[0]!.result] as const);
  const shapes = new Set(firsts.map(([, r]) => comparableShape(r)));
  const shapeNote = shapes.size === 1 ? 'identical in every variant' : 'DIFFERENT between variants (see below)';

  const mainTable = table(summaries, 'reference', burst);
  const body = [
    '## CNI ADD/DEL latency: weft vs the reference bridge + host-local',
    '',
    `Measured ${date} by \`npm run bench:cni\` (benchmarks/cni/run.ts). Milliseconds, median over ${rounds} rounds, with the range over rounds in parentheses. Ratios below 1.0 mean weft is faster; the goal (✅/❌) is ≤ 1.0 for the server path on ADD p50 and on the bursts.`,
    '',
    mainTable,
    '',
    `Machine: ${Object.entries(facts).map(([k, v]) => `${k} ${v}`).join('; ')}. Load average (1/5/15 min) ${loadBefore} before, ${loadAfter} after: the machine is shared with other jobs.`,
    '',
    `Kernel calibration (no plugin involved): deleting ${burst} veth pairs one after another from one process took ${calibration.map((c) => ms(c.serialMs)).join(', ')} ms per round; as ${burst} concurrent \`ip link del\` processes, ${calibration.map((c) => ms(c.parallelMs)).join(', ')} ms.`,
    ...(serverCpu.length > 0 ? ['', `weft server CPU per request (user+system from /proc, all requests incl. VERSION): ${serverCpu.map((x) => x.toFixed(2)).join(', ')} ms per round.`] : []),
    '',
    '**Method.** Each variant runs in its own fresh node namespace per round, with bridge `cni0`, node subnet 10.244.1.0/24 in cluster network 10.244.0.0/16, MTU 1450, isGateway + isDefaultGateway, hairpinMode, no masquerade by the plugin (reference `ipMasq: false`; weft `FLANNEL_IPMASQ=true` in subnet.env), cniVersion 1.0.0, IPAM store on local disk under /tmp. ' +
      `The benchmark re-execs itself once per variant inside the node namespace (\`nsenter --net\`), and from there spawns each plugin with \`child_process.spawn\` exactly as a runtime would (CNI_* environment, config on stdin, DEL with the ADD result as prevResult), timing each call from spawn to exit with \`process.hrtime.bigint()\`. ` +
      `weft (server) execs build/weft-cni with \`weft cni-server\` running in the node namespace; weft (standalone) execs the same front end with no server, so it falls back to a Node process per call; the reference is Debian's /usr/lib/cni/bridge with host-local (CNI_PATH=/usr/lib/cni). ` +
      `Sequential: ${warmup} discarded warm-up cycles, then ${cycles} ADD/DEL cycles (${standaloneCycles} for standalone), each on a fresh pod namespace created beforehand; p50/p99 are nearest-rank. ` +
      `Burst: ${burst} pod namespaces prepared beforehand, all ADDs spawned at once and timed from the first spawn to the last exit, then the same for the DELs; every ADD must succeed with a distinct address, and after the DELs the IPAM store must be empty and the node must have no veth left (also checked after the sequential cycles). ` +
      `The ${rounds} rounds rotate the order of the variants (${orders.map((o) => o.join(' → ')).join('; ')}). The resulting pod attachments were compared and are ${shapeNote}: ${shapeLine('e.g.', firsts[0]![1])}.`,
    '',
    `**What explains the numbers.** ${explain(byName, serverCpu, calibration)}`,
    '',
    '<details><summary>Every round</summary>',
    '',
    perRoundTable(rows, burst),
    '',
    '</details>',
    ...(shapes.size > 1 ? ['', 'Attachments per variant:', '', ...firsts.map(([v, r]) => `- ${shapeLine(LABELS[v], r)}`)] : []),
    ...(problems.length > 0 ? ['', '**Problems seen during the run:**', '', ...problems.map((p) => `- ${p}`)] : []),
  ].join('\n');

  process.stdout.write(`\n${mainTable}\n\n`);
  for (const [v, r] of firsts) process.stdout.write(`${shapeLine(LABELS[v], r)}\n`);
  process.stdout.write(`kernel calibration, ${burst} veth deletions: serial ${calibration.map((c) => ms(c.serialMs)).join(', ')} ms; concurrent ${calibration.map((c) => ms(c.parallelMs)).join(', ')} ms\n`);
  if (serverCpu.length > 0) process.stdout.write(`server CPU per request: ${serverCpu.map((x) => x.toFixed(2)).join(', ')} ms\n`);
  if (problems.length > 0) process.stdout.write(`\nPROBLEMS:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
  if (shapes.size > 1) process.stdout.write('\nWARNING: the attachments differ between variants (see above)\n');
  for (const f of FIGURES.filter((x) => x.goal)) {
    const s = byName.get('server')?.median[f.key];
    const r = byName.get('reference')?.median[f.key];
    if (s !== undefined && r !== undefined && s > r) process.stdout.write(`goal missed: ${f.label.replace('{n}', String(burst))}: weft (server) ${s.toFixed(2)} ms > reference ${r.toFixed(2)} ms\n`);
  }
  if (!opts['no-write']) {
    writeSection(join(ROOT, 'BENCHMARKS.md'), body);
    process.stdout.write(`\nwrote ${join(ROOT, 'BENCHMARKS.md')}\n`);
  }
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (e) {
  process.stderr.write(`\nbench:cni: BROKEN RUN: ${(e as Error).message}\n`);
} finally {
  cleanup();
}
process.exit(exitCode);
