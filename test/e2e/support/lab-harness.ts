// Helpers for end-to-end tests of `weft agent` inside a `weft lab --store etcd` cluster:
// a lab per test (down in an after hook, also on failure), the lab's own daemons stopped and
// started again by their recorded PIDs, agents run in the foreground to see how they fail,
// the lab's etcd read with etcdctl in its namespace, a node's data plane as text, and a
// long-running ping that counts replies.
//
// Everything happens in lab namespaces (weft-<lab>-*): commands run there with nsenter, and
// the only processes signalled are those the lab recorded in its state file (checked to still
// be the lab's own) or that a helper here started itself.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fetchStatus, type AgentStatus } from '../../../src/agent/status.ts';
import { labDown, labUp, type LabState, type LabUpOptions } from '../../../src/lab/index.ts';
import { agentArgv, agentEnv, agentStatus } from '../../../src/lab/agent.ts';
import { ETCD_BIN, ETCD_PREFIX, etcdHealthy, etcdctl as labEtcdctl, startLabEtcd } from '../../../src/lab/etcd.ts';
import { execInNetns } from '../../../src/lab/netns.ts';
import { labDir, nodeFiles, WEFT_BIN, WEFT_CNI_PLUGIN, type NodeFiles } from '../../../src/lab/paths.ts';
import { cmdline, exists, isAlive, startDaemon } from '../../../src/lab/processes.ts';
import type { RunResult } from '../../../src/lab/run.ts';
import { readState, StateWriter, type DaemonState } from '../../../src/lab/state.ts';
import type { EtcdPlan, NodePlan } from '../../../src/lab/topology.ts';

/** Why these tests cannot run here, or false. */
export async function labPrerequisiteProblem(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'needs root: the lab creates network namespaces';
  const can = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
  if (!(await can(WEFT_CNI_PLUGIN))) return 'build/weft-cni is not built (npm run build:native)';
  if (!(await can(ETCD_BIN))) return `${ETCD_BIN} is not installed`;
  return false;
}

export const uniqueLabName = (prefix = 'f'): string => `${prefix}${randomBytes(4).toString('hex')}`;

/** Waits until `probe` returns something other than undefined/false; fails naming `what` (and the last value seen) after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (e) {
      last = e instanceof Error ? e.message : e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last === undefined || last === false ? '' : ` (last: ${String(last)})`}`);
    await sleep(intervalMs);
  }
}

export interface TestLab {
  name: string;
  dir: string;
  /** As `up` returned it (daemon PIDs change when a test restarts something: use pidOf). */
  state: LabState;
  etcd: EtcdPlan;
  node(name: string): NodePlan;
  files(node: string): NodeFiles;
  /** A pod's first address, without the prefix. */
  podIp(pod: string): string;
}

/** Registers `lab down` of this lab on `t`, to run whatever happens; a failed down fails the test. */
export function downAfter(t: TestContext, name: string): void {
  t.after(async () => {
    try {
      await labDown(name);
    } catch (e) {
      t.diagnostic(`lab down ${name} failed: ${(e as Error).message}`);
      throw e;
    }
  });
}

/**
 * `weft lab up --store etcd` with the given options under a fresh name; `lab down` is
 * registered on `t` before anything is created, so it runs whatever happens.
 */
export async function startTestLab(t: TestContext, options: Omit<LabUpOptions, 'name' | 'store'> & { prefix?: string } = {}): Promise<TestLab> {
  const { prefix, ...rest } = options;
  const name = uniqueLabName(prefix);
  downAfter(t, name);
  const state = await labUp({ daemonReadyTimeoutMs: 60_000, peersTimeoutMs: 60_000, ...rest, name, store: 'etcd' });
  const etcd = state.topology.etcd;
  if (!etcd) throw new Error('the lab has no etcd member');
  const node = (n: string): NodePlan => {
    const found = state.topology.nodes.find((p) => p.name === n);
    if (!found) throw new Error(`lab ${name} has no node ${n}`);
    return found;
  };
  return {
    name,
    dir: labDir(name),
    state,
    etcd,
    node,
    files: (n) => nodeFiles(node(n).dir),
    podIp: (pod) => {
      const a = state.pods[pod]?.addresses[0];
      if (!a) throw new Error(`lab ${name} has no pod ${pod}`);
      return a.split('/')[0] ?? '';
    },
  };
}

// ---- the lab's daemons ----

/** The PID the lab records for `member` (a node name, or "etcd"), checked to still be the lab's process. */
export async function pidOf(lab: TestLab, member: string): Promise<number> {
  const d = (await readState(lab.dir))?.daemonPids[member];
  if (!d) throw new Error(`lab ${lab.name} records no daemon for ${member}`);
  if (!(await cmdline(d.pid))?.includes(`${lab.dir}/`)) throw new Error(`pid ${d.pid} (${member} of lab ${lab.name}) is not running, or is no longer the lab's process`);
  return d.pid;
}

/** Sends `signal` to the lab's recorded daemon `member`; resolves with its PID. */
export async function signalDaemon(lab: TestLab, member: string, signal: NodeJS.Signals): Promise<number> {
  const pid = await pidOf(lab, member);
  process.kill(pid, signal);
  return pid;
}

export async function waitGone(pid: number, timeoutMs = 30_000): Promise<void> {
  await waitFor(`pid ${pid} to exit`, async () => !(await isAlive(pid)), timeoutMs, 50);
}

/** Stops the daemon (SIGTERM by default; the agent leaves the data plane as it is) and waits until it is gone. */
export async function stopDaemon(lab: TestLab, member: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<number> {
  const pid = await signalDaemon(lab, member, signal);
  await waitGone(pid);
  return pid;
}

const stateChains = new Map<string, Promise<void>>();

/** Records a daemon the test (re)started in the lab's state file, so `lab status` and `down` know it. */
export function recordDaemon(lab: TestLab, member: string, d: DaemonState): Promise<void> {
  const next = (stateChains.get(lab.dir) ?? Promise.resolve()).then(async () => {
    const state = await readState(lab.dir);
    if (!state) throw new Error(`lab ${lab.name} has no state file`);
    state.daemonPids[member] = d;
    await new StateWriter(lab.dir).save(state);
  });
  stateChains.set(lab.dir, next.catch(() => {}));
  return next;
}

export interface AgentFlags {
  /** --etcd-endpoints (default the lab's etcd). */
  endpoint?: string;
  /** --etcd-prefix (default flannel's). */
  prefix?: string;
  /** --etcd-api (default the lab's). */
  api?: 'v2' | 'v3';
  /** Default the lab's --lease-ttl. */
  leaseTtl?: string;
  /** Replaces the node's subnet.env / status socket (for agents that must not touch the node's files). */
  subnetFile?: string;
  statusSocket?: string;
  /** More flags, appended. */
  extra?: string[];
}

/** The agent's command line as the lab builds it, with the given changes. */
export function agentCommand(lab: TestLab, node: string, f: AgentFlags = {}): string[] {
  const files = { ...lab.files(node), ...(f.subnetFile ? { subnetEnv: f.subnetFile } : {}), ...(f.statusSocket ? { agentSocket: f.statusSocket } : {}) };
  return [
    ...agentArgv({
      weftBin: WEFT_BIN,
      etcd: { ...lab.etcd, clientUrl: f.endpoint ?? lab.etcd.clientUrl },
      api: f.api ?? lab.state.etcd?.api ?? 'v3',
      prefix: f.prefix ?? ETCD_PREFIX,
      leaseTtl: f.leaseTtl ?? lab.state.etcd?.leaseTtl ?? '30s',
      files,
    }),
    ...(f.extra ?? []),
  ];
}

/**
 * Starts the node's agent in the background, as the lab does (its log appended to the node's
 * agent.log); resolves with its PID once subnet.env exists and it reports ready. The PID goes
 * into the lab's state file.
 */
export async function startAgent(lab: TestLab, node: string, f: AgentFlags = {}): Promise<number> {
  const files = lab.files(node);
  const subnetFile = f.subnetFile ?? files.subnetEnv;
  const socket = f.statusSocket ?? files.agentSocket;
  const pid = await startDaemon({
    ns: lab.node(node).ns,
    argv: agentCommand(lab, node, f),
    env: agentEnv(node),
    isReady: async () => (await exists(subnetFile)) && (await statusAt(socket))?.ready === true,
    readyMeans: `write ${subnetFile} and report ready on ${socket}`,
    pollMs: 100,
    logFile: files.agentLog,
    timeoutMs: 90_000,
    onStarted: (p) => recordDaemon(lab, node, { pid: p, ready: false, kind: 'agent' }),
  });
  await recordDaemon(lab, node, { pid, ready: true, kind: 'agent' });
  return pid;
}

/** Runs the node's agent in the foreground until it exits or `timeoutMs` passes (then SIGKILL): how it fails. */
export function runAgent(lab: TestLab, node: string, f: AgentFlags, timeoutMs: number): Promise<RunResult> {
  return execInNetns(lab.node(node).ns, agentCommand(lab, node, f), { env: agentEnv(node), timeoutMs });
}

async function statusAt(socket: string): Promise<AgentStatus | undefined> {
  try {
    return await fetchStatus(socket);
  } catch {
    return undefined;
  }
}

/** What the node's agent reports (`weft status --json`), or undefined while it does not answer. */
export function status(lab: TestLab, node: string): Promise<AgentStatus | undefined> {
  return agentStatus(lab.files(node));
}

/** Stops the lab's etcd with `signal` (SIGKILL: a crash; SIGSTOP: a hang). */
export function signalEtcd(lab: TestLab, signal: NodeJS.Signals): Promise<number> {
  return signalDaemon(lab, 'etcd', signal);
}

/** Starts the lab's etcd again on its data dir; resolves once it is healthy. */
export async function restartEtcd(lab: TestLab): Promise<number> {
  const pid = await startLabEtcd(lab.name, lab.etcd, (p) => recordDaemon(lab, 'etcd', { pid: p, ready: false, kind: 'etcd' }));
  await recordDaemon(lab, 'etcd', { pid, ready: true, kind: 'etcd' });
  return pid;
}

export function etcdAnswers(lab: TestLab): Promise<boolean> {
  return etcdHealthy(lab.etcd);
}

// ---- the lab's etcd, read with etcdctl ----

export async function etcdctl(lab: TestLab, args: readonly string[], api: 'v2' | 'v3' = 'v3'): Promise<string> {
  const r = await labEtcdctl(lab.etcd, api, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface EtcdLease {
  /** The key below <prefix>/subnets/, e.g. 10.16.94.0-24. */
  id: string;
  /** 10.16.94.0/24 */
  subnet: string;
  raw: string;
  value: { PublicIP?: string; PublicIPv6?: unknown; BackendType?: string; BackendData?: { VNI?: number; VtepMAC?: string } };
  /** The etcd lease (hex, as etcdctl takes it); null for a key without a lease (a reservation). */
  lease: string | null;
  modRevision: number;
}

/**
 * Every key under <prefix>/subnets/ (v3), from `etcdctl get -w fields`: lease IDs are
 * int64s that JSON.parse would round, so the fields output is read as text.
 */
export async function subnetLeases(lab: TestLab, prefix = ETCD_PREFIX): Promise<EtcdLease[]> {
  const out = await etcdctl(lab, ['get', '--prefix', `${prefix}/subnets/`, '-w', 'fields']);
  const leases: EtcdLease[] = [];
  let cur: Partial<Record<string, string>> = {};
  const flush = (): void => {
    if (cur.Key === undefined) return;
    const key = JSON.parse(cur.Key) as string;
    const raw = JSON.parse(cur.Value ?? '""') as string;
    const id = key.slice(key.lastIndexOf('/') + 1);
    const lease = cur.Lease === undefined || cur.Lease === '0' ? null : BigInt(cur.Lease).toString(16);
    leases.push({ id, subnet: id.replace(/-(\d+)$/, '/$1'), raw, value: JSON.parse(raw) as EtcdLease['value'], lease, modRevision: Number(cur.ModRevision) });
    cur = {};
  };
  for (const line of out.split('\n')) {
    const m = /^"(\w+)" : (.*)$/.exec(line);
    if (!m) continue;
    const [, field = '', value = ''] = m;
    if (field === 'Key') flush();
    if (['Key', 'Value', 'Lease', 'ModRevision'].includes(field)) cur[field] = value;
  }
  flush();
  return leases;
}

/** Seconds the etcd lease has left (`etcdctl lease timetolive`); -1 when it is gone. */
export async function leaseTtlLeft(lab: TestLab, leaseHex: string): Promise<number> {
  const out = await etcdctl(lab, ['lease', 'timetolive', leaseHex, '-w', 'fields']);
  const m = /^"TTL" : (-?\d+)$/m.exec(out);
  if (!m) throw new Error(`no TTL in \`etcdctl lease timetolive ${leaseHex}\`: ${out}`);
  return Number(m[1]);
}

/** When etcd will delete the key (ms since the epoch, to about a second), or null (no lease, or gone). */
export async function expiryInEtcd(lab: TestLab, l: EtcdLease): Promise<number | null> {
  if (l.lease === null) return null;
  const asked = Date.now();
  const ttl = await leaseTtlLeft(lab, l.lease);
  return ttl < 0 ? null : asked + ttl * 1000;
}

export interface LogEntry { time: number; level: number; msg: string; [k: string]: unknown }

/** The node's agent.log (pino JSON lines) from `since` (ms since the epoch) on. */
export async function agentLog(lab: TestLab, node: string, since = 0): Promise<LogEntry[]> {
  const text = await readFile(lab.files(node).agentLog, 'utf8');
  return text.split('\n').flatMap((l) => {
    try {
      const e = JSON.parse(l) as LogEntry;
      return typeof e.time === 'number' && e.time >= since ? [e] : [];
    } catch {
      return [];
    }
  });
}

export async function readSubnetEnv(path: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

// ---- a node's data plane ----

export async function inNs(ns: string, argv: readonly string[], timeoutMs = 30_000): Promise<string> {
  const r = await execInNetns(ns, argv, { timeoutMs });
  if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` in ${ns} failed (${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface VxlanDevice { index: number; mac: string; line: string }

/** flannel.1 in `ns`: its ifindex, MAC and `ip -d` details, or undefined when it does not exist. */
export async function vxlanDevice(ns: string, name = 'flannel.1'): Promise<VxlanDevice | undefined> {
  const r = await execInNetns(ns, ['ip', '-o', '-d', 'link', 'show', 'dev', name]);
  if (r.code !== 0) return undefined;
  const line = r.stdout.trim().replace(/\s+state \w+/, '').replace(/\\\s*/g, ' ');
  const index = Number(/^(\d+):/.exec(line)?.[1]);
  const mac = /link\/ether ([0-9a-f:]{17})/.exec(line)?.[1] ?? '';
  return { index, mac, line };
}

/**
 * The node's data plane as comparable text: flannel.1 (ifindex, MAC, VXLAN parameters), every
 * interface's index and MAC, addresses, the main routing table, flannel.1's neighbours and FDB
 * entries, and the iptables rules (without counters).
 */
export async function dataplaneSnapshot(ns: string): Promise<string> {
  const [dev, links, addrs, routes, neigh, fdb, rules] = await Promise.all([
    vxlanDevice(ns),
    inNs(ns, ['ip', '-o', 'link']),
    inNs(ns, ['ip', '-o', 'addr']),
    inNs(ns, ['ip', 'route', 'show']),
    inNs(ns, ['ip', 'neigh', 'show', 'dev', 'flannel.1', 'nud', 'permanent']),
    inNs(ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1']),
    inNs(ns, ['iptables-save']),
  ]);
  const linkLines = links.split('\n').filter(Boolean).map((l) => {
    const m = /^(\d+): ([^:]+):.*link\/\w+ ([0-9a-f:]+)/.exec(l);
    return m ? `${m[1]} ${m[2]} ${m[3]}` : l.replace(/\s+state \w+/, '');
  });
  // IPv6 link-local addresses are "tentative" until DAD is done: that flag is no change of ours.
  const addrLines = addrs.split('\n').filter(Boolean).map((l) => l.replace(/\\\s*/g, ' ').replace(/ tentative\b/, '').replace(/\s+/g, ' '));
  const ruleLines = rules.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, ''));
  return [
    `device: ${dev?.line ?? 'none'}`,
    '# links', ...linkLines,
    '# addresses', ...addrLines,
    '# routes', ...routes.trim().split('\n'),
    '# neighbours', ...neigh.trim().split('\n'),
    '# fdb', ...fdb.trim().split('\n'),
    '# iptables', ...ruleLines,
  ].join('\n');
}

/** The entries that make `subnet` reachable over flannel.1 on node `ns`: route, neighbour, FDB. */
export async function vxlanPeerEntries(ns: string, peer: { subnet: string; vtepMac: string; publicIp: string }): Promise<{ route: boolean; neighbour: boolean; fdb: boolean }> {
  const gw = peer.subnet.split('/')[0] ?? '';
  const [routes, neigh, fdb] = await Promise.all([
    inNs(ns, ['ip', 'route', 'show', peer.subnet]),
    inNs(ns, ['ip', 'neigh', 'show', 'dev', 'flannel.1']),
    inNs(ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1']),
  ]);
  return {
    route: new RegExp(`^${esc(peer.subnet)} via ${esc(gw)} dev flannel\\.1 .*onlink`, 'm').test(routes),
    neighbour: new RegExp(`^${esc(gw)} lladdr ${esc(peer.vtepMac)} PERMANENT`, 'm').test(neigh),
    fdb: new RegExp(`^${esc(peer.vtepMac)} dst ${esc(peer.publicIp)} self permanent`, 'm').test(fdb),
  };
}

/** Any trace of `subnet` / `vtepMac` on node `ns` (routes, neighbours, FDB), as lines; [] when none. */
export async function tracesOf(ns: string, subnet: string, vtepMac: string): Promise<string[]> {
  const gw = subnet.split('/')[0] ?? '';
  const [routes, neigh, fdb] = await Promise.all([
    inNs(ns, ['ip', 'route', 'show']),
    inNs(ns, ['ip', 'neigh', 'show']),
    inNs(ns, ['bridge', 'fdb', 'show']),
  ]);
  return [
    ...routes.split('\n').filter((l) => l.startsWith(`${subnet} `)).map((l) => `route: ${l}`),
    ...neigh.split('\n').filter((l) => l.startsWith(`${gw} `) || l.includes(vtepMac)).map((l) => `neighbour: ${l}`),
    ...fdb.split('\n').filter((l) => l.includes(vtepMac)).map((l) => `fdb: ${l}`),
  ];
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// ---- ping ----

export interface PingSummary { transmitted: number; received: number; lost: number; replies: { seq: number; at: number }[] }

/**
 * `ping -D -i 0.2` from a lab namespace, running until stop(); counts replies as they arrive.
 * Stop it in an after hook too: a test that fails must not leave it running.
 */
export class Ping {
  readonly replies: { seq: number; at: number }[] = [];
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #closed: Promise<string>;
  #out = '';

  constructor(ns: string, target: string, intervalSeconds = 0.2) {
    this.#child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', 'ping', '-D', '-n', '-i', String(intervalSeconds), '-W', '1', target]);
    this.#child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      this.#out += chunk;
      for (const m of chunk.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from [^:]+: icmp_seq=(\d+)/gm)) {
        this.replies.push({ at: Math.round(Number(m[1]) * 1000), seq: Number(m[2]) });
      }
    });
    this.#child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.#out += chunk));
    this.#closed = new Promise((resolve) => this.#child.on('close', () => resolve(this.#out)));
  }

  /** Waits for `n` more replies than there are now. */
  async more(n: number, timeoutMs = 60_000): Promise<void> {
    const want = this.replies.length + n;
    await waitFor(`${n} more ping replies (have ${this.replies.length}): ${this.#out.slice(-300)}`, () => this.replies.length >= want, timeoutMs, 50);
  }

  /**
   * The echoes that got no reply, each with the time it was sent, interpolated between the
   * replies around it (ping sends on a fixed schedule).
   */
  lost(transmitted: number): { seq: number; at: number }[] {
    const bySeq = [...this.replies].sort((a, b) => a.seq - b.seq);
    const have = new Set(bySeq.map((r) => r.seq));
    const out: { seq: number; at: number }[] = [];
    for (let seq = 1; seq <= transmitted; seq++) {
      if (have.has(seq)) continue;
      const prev = bySeq.filter((r) => r.seq < seq).at(-1);
      const next = bySeq.find((r) => r.seq > seq);
      const at = prev && next ? prev.at + ((seq - prev.seq) * (next.at - prev.at)) / (next.seq - prev.seq) : (prev?.at ?? next?.at ?? 0);
      out.push({ seq, at: Math.round(at) });
    }
    return out;
  }

  repliesBetween(from: number, to: number): number {
    return this.replies.filter((r) => r.at >= from && r.at <= to).length;
  }

  /** SIGINT (ping prints its statistics), and the totals. */
  async stop(): Promise<PingSummary> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGINT');
    const out = await this.#closed;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    if (!m) throw new Error(`ping printed no statistics: ${out.slice(-500)}`);
    const transmitted = Number(m[1]);
    const received = Number(m[2]);
    return { transmitted, received, lost: transmitted - received, replies: this.replies };
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}

/** `ping -c <count>` from a lab namespace; resolves with the number of replies. */
export async function pingCount(ns: string, target: string, count = 5): Promise<number> {
  const r = await execInNetns(ns, ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '2', target], { timeoutMs: 60_000 });
  const m = /(\d+) received/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

/** Waits until one ping from `ns` to `target` is answered (paths may need a moment to be programmed). */
export function waitPingable(ns: string, target: string, timeoutMs = 60_000): Promise<true> {
  return waitFor(`${target} to answer a ping from ${ns}`, async () => (await pingCount(ns, target, 1)) === 1 || undefined, timeoutMs, 200);
}
