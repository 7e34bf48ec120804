// Helpers for end-to-end tests of mesh mode (`weft agent --store mesh`) in a
// `weft lab up --store mesh` cluster: a lab per test (down in an after hook, also on failure),
// each node's agent status and its mesh view, the agents' logs, pods added at will, and checks
// that wait for a condition rather than for a time.
//
// Everything happens in lab namespaces (weft-<lab>-*), through the lab's own API: its nodes'
// agents are stopped, killed and started by their recorded PIDs (src/lab/nodes.ts), partitions
// are iptables rules inside the nodes' namespaces (src/lab/partition.ts).
import { access, readFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentStatus } from '../../../src/agent/status.ts';
import {
  labAddPods, labCheck, labUp, meshView, type CheckReport, type LabState, type LabUpOptions, type MeshView, type PodAddResult,
} from '../../../src/lab/index.ts';
import { agentStatus } from '../../../src/lab/agent.ts';
import { execInNetns } from '../../../src/lab/netns.ts';
import { labDir, nodeFiles, WEFT_BIN, WEFT_CNI_PLUGIN, type NodeFiles } from '../../../src/lab/paths.ts';
import { readState } from '../../../src/lab/state.ts';
import type { NodePlan } from '../../../src/lab/topology.ts';
import { cidrContains, cidrContainsCidr, parseCidr, parseIp } from '../../../src/net/cidr.ts';
import { downAfter, uniqueLabName, waitFor } from './lab-harness.ts';

export { waitFor, uniqueLabName };

/** Why these tests cannot run here, or false. Mesh mode itself is not probed: a test of a mode that does not work must fail, not skip. */
export async function meshPrerequisiteProblem(): Promise<string | false> {
  if (process.getuid?.() !== 0) return 'needs root: the lab creates network namespaces';
  const can = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
  if (!(await can(WEFT_CNI_PLUGIN))) return 'build/weft-cni is not built (npm run build:native)';
  if (!(await can(WEFT_BIN))) return 'bin/weft is missing';
  if (!(await can('/usr/sbin/iptables'))) return 'iptables is not installed (lab partition uses it)';
  return false;
}

export interface MeshLab {
  name: string;
  dir: string;
  /** As `up` returned it; `state()` reads the current one. */
  up: LabState;
  state(): Promise<LabState>;
  node(name: string): NodePlan;
  files(node: string): NodeFiles;
}

export type MeshLabOptions = Omit<LabUpOptions, 'name' | 'store'> & { prefix?: string };

/** `weft lab up --store mesh` under a fresh name; `lab down` is registered on `t` before anything is created. */
export async function startMeshLab(t: TestContext, options: MeshLabOptions = {}): Promise<MeshLab> {
  const { prefix, ...rest } = options;
  const name = uniqueLabName(prefix ?? 'm');
  downAfter(t, name);
  const dir = labDir(name);
  let up: LabState;
  try {
    up = await labUp({ daemonReadyTimeoutMs: 90_000, peersTimeoutMs: 60_000, ...rest, name, store: 'mesh' });
  } catch (e) {
    // The agents' own words are what says why (a mode that does not run yet, a flag refused…).
    throw new Error(`${(e as Error).message}\n${await logTails(dir)}`, { cause: e });
  }
  const node = (n: string): NodePlan => {
    const found = up.topology.nodes.find((p) => p.name === n);
    if (!found) throw new Error(`lab ${name} has no node ${n}`);
    return found;
  };
  return {
    name, dir, up, node,
    state: async () => {
      const s = await readState(dir);
      if (!s) throw new Error(`lab ${name} has no state file`);
      return s;
    },
    files: (n) => nodeFiles(node(n).dir),
  };
}

/** The last lines of every node's agent.log in a lab directory, for failure messages. */
export async function logTails(dir: string, lines = 15): Promise<string> {
  const state = await readState(dir).catch(() => undefined);
  const nodes = state?.topology.nodes ?? [];
  const parts = await Promise.all(nodes.map(async (n) => {
    const text = await readFile(nodeFiles(n.dir).agentLog, 'utf8').catch(() => '(no agent.log)');
    return `--- ${n.name} agent.log (last ${lines} lines)\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`;
  }));
  return parts.join('\n');
}

// ---- what the agents report ----

export function status(lab: MeshLab, node: string): Promise<AgentStatus | undefined> {
  return agentStatus(lab.files(node));
}

export async function mesh(lab: MeshLab, node: string): Promise<MeshView | undefined> {
  return meshView(await status(lab, node));
}

/** The node's mesh view once `ok` holds for it; fails naming `what` and the last view seen. */
export async function waitMesh(lab: MeshLab, node: string, what: string, ok: (m: MeshView, s: AgentStatus) => boolean, timeoutMs = 60_000): Promise<MeshView> {
  let last = '';
  try {
    return await waitFor(`${node}: ${what}`, async () => {
      const s = await status(lab, node);
      const m = meshView(s);
      last = JSON.stringify(m ?? s ?? 'not answering').slice(0, 1500);
      return s !== undefined && m !== undefined && ok(m, s) ? m : undefined;
    }, timeoutMs);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast mesh view of ${node}: ${last}\n${await logTails(lab.dir)}`, { cause: e });
  }
}

/** Whether the node has an established connection to `peer` (by nickname: a lab node's is its name). */
export const connectedTo = (m: MeshView, peer: string): boolean => m.connections.some((c) => c.state === 'established' && c.peer === peer);

/** The node's agent log lines (pino JSON) written at or after `since` (ms since the epoch), as text; unparsable lines count too. */
export async function logSince(lab: MeshLab, node: string, since = 0): Promise<string[]> {
  const text = await readFile(lab.files(node).agentLog, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => {
    if (line.trim() === '') return false;
    try {
      const e = JSON.parse(line) as { time?: unknown };
      return typeof e.time !== 'number' || e.time >= since;
    } catch {
      return since === 0;
    }
  });
}

/** Every message an agent gives about itself: its status (reasons, problems, mesh connections) and its log since `since`. */
export async function said(lab: MeshLab, node: string, since: number): Promise<string[]> {
  const s = await status(lab, node);
  const m = meshView(s);
  return [
    ...(s?.reasons ?? []),
    ...(s?.errors ?? []).map((e) => e.message),
    ...(m?.connections ?? []).map((c) => `${c.address} ${c.state} ${c.info ?? ''}`),
    ...(m?.ipamStatus === null || m === undefined ? [] : [`ipam: ${m.ipamStatus}`]),
    ...(await logSince(lab, node, since)),
  ];
}

/** Waits until the node says something matching every pattern in one message; resolves with that message. */
export async function waitSaid(lab: MeshLab, node: string, since: number, patterns: readonly RegExp[], what: string, timeoutMs = 60_000): Promise<string> {
  let seen: string[] = [];
  try {
    return await waitFor(`${node} to say ${what}`, async () => {
      seen = await said(lab, node, since);
      return seen.find((line) => patterns.every((p) => p.test(line)));
    }, timeoutMs, 500);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${node} said:\n${seen.slice(-25).join('\n')}`, { cause: e });
  }
}

// ---- pods and addresses ----

/** Every pod address recorded in the lab (without prefix), with the pods holding it. */
export async function podAddresses(lab: MeshLab): Promise<Map<string, string[]>> {
  const s = await lab.state();
  const out = new Map<string, string[]>();
  for (const [pod, p] of Object.entries(s.pods)) {
    for (const a of p.addresses) {
      const ip = a.split('/')[0] ?? '';
      out.set(ip, [...(out.get(ip) ?? []), pod]);
    }
  }
  return out;
}

/** "address: pod, pod" for every address handed out more than once. */
export function duplicates(addresses: Map<string, string[]>): string[] {
  return [...addresses].filter(([, pods]) => pods.length > 1).map(([a, pods]) => `${a}: ${pods.join(', ')}`);
}

/** labAddPods that fails on any failed ADD, with the errors. */
export async function addPods(lab: MeshLab, node: string, count: number): Promise<{ name: string; addresses: string[] }[]> {
  const results = await labAddPods(lab.name, node, count);
  const failed = results.filter((r): r is Extract<PodAddResult, { error: string }> => 'error' in r);
  if (failed.length > 0) throw new Error(`${failed.length} of ${count} ADDs on ${node} failed:\n${failed.map((f) => `${f.name}: ${f.error}`).join('\n')}`);
  return results.filter((r): r is Extract<PodAddResult, { addresses: string[] }> => 'addresses' in r);
}

export const ipOf = (address: string): string => address.split('/')[0] ?? '';

export function inCidr(address: string, cidr: string): boolean {
  return cidrContains(parseCidr(cidr), parseIp(ipOf(address)));
}

export function cidrWithin(inner: string, outer: string): boolean {
  return cidrContainsCidr(parseCidr(outer), parseCidr(inner));
}

/** subnet.env as key → value. */
export async function subnetEnv(lab: MeshLab, node: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const line of (await readFile(lab.files(node).subnetEnv, 'utf8')).split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

// ---- connectivity ----

/** `lab check` until every probe passes (paths take a moment after a heal or a restart); fails with the probes still failing. */
export async function checkPasses(lab: MeshLab, timeoutMs = 90_000): Promise<CheckReport> {
  let last: CheckReport | undefined;
  try {
    return await waitFor('every lab check probe to pass', async () => {
      last = await labCheck(lab.name);
      return last.failed === 0 && last.probes.length > 0 ? last : undefined;
    }, timeoutMs, 1000);
  } catch (e) {
    const failing = last?.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from} → ${p.to}`) ?? [];
    throw new Error(`${(e as Error).message}\nstill failing (${failing.length} of ${last?.probes.length ?? 0}): ${failing.slice(0, 30).join('; ')}\n${await logTails(lab.dir)}`, { cause: e });
  }
}

export async function inNs(ns: string, argv: readonly string[], timeoutMs = 30_000): Promise<string> {
  const r = await execInNetns(ns, argv, { timeoutMs });
  if (r.code !== 0) throw new Error(`\`${argv.join(' ')}\` in ${ns} failed (${r.code ?? r.signal}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** The node's IPv4 routes into `range` that leave the node (not its own pods' bridge): what it programmed for other peers' blocks. */
export async function remoteRoutes(lab: MeshLab, node: string, range: string): Promise<string[]> {
  const out = await inNs(lab.node(node).ns, ['ip', '-4', 'route', 'show']);
  return out.split('\n').filter((l) => {
    const dst = l.split(' ')[0] ?? '';
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(dst) || / dev cni0\b/.test(l)) return false;
    return cidrWithin(dst, range);
  });
}

export const pause = (ms: number): Promise<void> => sleep(ms);
