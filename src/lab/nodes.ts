// What a running lab's nodes go through after `up`, for people and for the failure tests:
// `lab node start|stop|restart|remove` and `lab pod add`. Every change is recorded in the
// state file (updateState), so `status`, `check` and `down` see the lab as it now is.
//
// Only the lab's own processes are signalled: the PID the state file records for the node,
// checked to still be the lab's (its command line names the lab directory), and with `remove`
// whatever runs inside the node's and its pods' namespaces.
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WeftError } from '../errors.ts';
import { agentArgv, agentEnv, agentStatus, kubeAgentArgv, leaseOf, startNodeAgent } from './agent.ts';
import { kubeAdmin } from './kube.ts';
import { weftConflist, type Conflist } from './cni-config.ts';
import { mapLimit } from './concurrency.ts';
import { ETCD_PREFIX } from './etcd.ts';
import { weftLauncher } from './launcher.ts';
import { meshAgentArgv, meshAgentEnv, writePasswordFile } from './mesh.ts';
import { dataPathArgs } from './data-path.ts';
import { podNs } from './names.ts';
import { deleteNetns, execInNetns, netnsExists, netnsPids } from './netns.ts';
import { LAB_STATE_ROOT, labDir, nodeExecEnv, nodeFiles } from './paths.ts';
import { attachPod } from './pods.ts';
import { cmdline, isAlive, stopProcesses } from './processes.ts';
import type { RunResult } from './run.ts';
import { updateState, type LabState } from './state.ts';
import { loadLab } from './status.ts';
import { MAX_PODS_PER_NODE, type NodePlan, type PodPlan } from './topology.ts';

/** Which password a mesh node's agent gets: the lab's (if it has one), none, or one of its own. */
export type PasswordChoice = 'lab' | 'none' | { own: string };

/** The nodes a node's agent meshes with: every other node of the lab that was not removed. */
export function meshPeers(state: LabState, node: NodePlan): string[] {
  const removed = new Set(state.removedNodes ?? []);
  return state.topology.nodes.filter((n) => n.name !== node.name && !removed.has(n.name)).map((n) => n.address);
}

/** A mesh node's `weft agent` command line. With `{ own }` the caller writes the node's password file. */
export function meshNodeArgv(state: LabState, node: NodePlan, weft: readonly string[], password: PasswordChoice): string[] {
  const mesh = state.mesh;
  if (mesh === undefined) throw new WeftError('WEFT_INTERNAL', `lab ${state.name} has no mesh store`);
  const files = nodeFiles(node.dir);
  return meshAgentArgv({
    weft, files,
    nickname: node.name,
    peers: meshPeers(state, node),
    range: mesh.range,
    blockPrefix: mesh.blockPrefix,
    init: mesh.init,
    port: mesh.port,
    passwordFile: password === 'lab' ? mesh.passwordFile : password === 'none' ? null : files.meshPassword,
  });
}

function agentCommand(state: LabState, node: NodePlan, password: PasswordChoice): string[] {
  return [...storeAgentCommand(state, node, password), ...dataPathArgs(state.dataPath)];
}

function storeAgentCommand(state: LabState, node: NodePlan, password: PasswordChoice): string[] {
  const weft = weftLauncher().argv;
  if (state.store === 'mesh') return meshNodeArgv(state, node, weft, password);
  if (password !== 'lab') throw new WeftError('WEFT_LAB', '--password and --no-password are for mesh labs (lab up --store mesh)');
  if (state.store === 'kube' && state.kube !== undefined) return kubeAgentArgv({ weft, kubeconfig: state.kube.kubeconfig, files: nodeFiles(node.dir) });
  if (state.store === 'etcd' && state.etcd !== undefined && state.topology.etcd) {
    const e = state.etcd;
    return agentArgv({ weft, etcd: state.topology.etcd, api: e.api, prefix: e.prefix || ETCD_PREFIX, leaseTtl: e.leaseTtl, files: nodeFiles(node.dir) });
  }
  throw new WeftError('WEFT_LAB', `lab ${state.name} runs no agents (store ${state.store ?? 'none'}); \`lab node\` starts and stops agents of labs made with --store etcd, kube or mesh`);
}

const agentEnvFor = (state: LabState, node: NodePlan): NodeJS.ProcessEnv => (state.store === 'mesh' ? meshAgentEnv(node.name) : agentEnv(node.name));

interface Located {
  state: LabState;
  dir: string;
  node: NodePlan;
}

async function locate(name: string, nodeName: string, stateRoot: string): Promise<Located> {
  const state = await loadLab(name, stateRoot);
  if (state.phase !== 'ready') throw new WeftError('WEFT_LAB', `lab ${name} is not ready (phase ${state.phase}); \`lab node\` works on a lab whose \`up\` finished`);
  const node = state.topology.nodes.find((n) => n.name === nodeName);
  if (node === undefined) throw new WeftError('WEFT_LAB', `lab ${name} has no node ${JSON.stringify(nodeName)}; it has ${state.topology.nodes.map((n) => n.name).join(', ')}`);
  if ((state.removedNodes ?? []).includes(node.name)) throw new WeftError('WEFT_LAB', `node ${node.name} of lab ${name} was removed (\`lab node remove\`); it cannot come back`);
  return { state, dir: labDir(name, stateRoot), node };
}

/** The node's agent PID when it runs and is still the lab's own process; undefined otherwise. */
export async function runningAgent(state: LabState, dir: string, node: string): Promise<number | undefined> {
  const d = state.daemonPids[node];
  if (d?.kind !== 'agent' || !(await isAlive(d.pid))) return undefined;
  return (await cmdline(d.pid))?.includes(`${dir}/`) === true ? d.pid : undefined;
}

export interface NodeStartOptions {
  stateRoot?: string;
  /** Wait until the agent is ready, then attach the node's pods that have none yet (default true); false: only until its status socket answers. */
  wait?: boolean;
  /** With wait: attach the node's planned pods that are not attached yet (default true). */
  pods?: boolean;
  /** mesh: undefined = as before (the recorded command, else the lab's password); null = no password; a string = this password instead of the lab's. */
  password?: string | null;
  timeoutMs?: number;
  onProgress?: (line: string) => void;
}

export interface NodeStartReport {
  node: string;
  pid: number;
  /** False when the agent was already running. */
  started: boolean;
  ready: boolean;
  /** Pods attached now. */
  pods: { name: string; addresses: string[] }[];
}

/**
 * Starts the agents of the named nodes, all at once (a mesh needs a quorum running to agree on
 * its range). A stopped agent is started with the command it last ran, unless a password
 * choice says otherwise; a running one is left alone (and with wait, its pending pods attached).
 */
export async function labNodeStart(name: string, nodes: readonly string[], o: NodeStartOptions = {}): Promise<NodeStartReport[]> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  if (nodes.length === 0) throw new WeftError('WEFT_LAB', 'name at least one node, e.g. `weft lab node start n3`');
  const progress = o.onProgress ?? (() => {});
  return mapLimit(nodes, nodes.length, async (nodeName): Promise<NodeStartReport> => {
    const { state, dir, node } = await locate(name, nodeName, stateRoot);
    const files = nodeFiles(node.dir);
    const wait = o.wait ?? true;
    let pid = await runningAgent(state, dir, node.name);
    const started = pid === undefined;
    if (pid !== undefined && o.password !== undefined) {
      throw new WeftError('WEFT_LAB', `the agent of ${node.name} is already running (pid ${pid}); stop it first (\`weft lab node stop --name ${name} ${node.name}\`) to start it with another password`);
    }
    if (pid === undefined) {
      const choice: PasswordChoice = o.password === undefined ? 'lab' : o.password === null ? 'none' : { own: o.password };
      if (typeof choice === 'object') await writePasswordFile(files.meshPassword, choice.own);
      const recorded = state.daemonPids[node.name]?.argv;
      const argv = o.password === undefined && recorded !== undefined ? recorded : agentCommand(state, node, choice);
      pid = await startNodeAgent({
        node, files, argv,
        env: agentEnvFor(state, node),
        until: wait ? 'ready' : 'answering',
        timeoutMs: o.timeoutMs ?? 60_000,
        onStarted: (p) => updateState(dir, (s) => void (s.daemonPids[node.name] = { pid: p, ready: false, kind: 'agent', argv })),
      });
      progress(`node ${node.name}: agent started (pid ${pid})${wait ? ', ready' : ''}`);
    }
    if (!wait) return { node: node.name, pid, started, ready: false, pods: [] };
    if (!started) await waitAgentReady(node, o.timeoutMs ?? 60_000);
    const status = await agentStatus(files);
    const lease = status === undefined ? undefined : leaseOf(status);
    const agentPid = pid;
    await updateState(dir, (s) => {
      s.daemonPids[node.name] = { ...s.daemonPids[node.name], pid: agentPid, ready: true, kind: 'agent' };
      if (lease !== undefined) (s.leases ??= {})[node.name] ??= lease;
    });
    const pods = o.pods === false ? [] : await attachPending(name, node.name, stateRoot, progress);
    return { node: node.name, pid, started, ready: true, pods };
  });
}

async function waitAgentReady(node: NodePlan, timeoutMs: number): Promise<void> {
  const files = nodeFiles(node.dir);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const phase = (await agentStatus(files))?.phase;
    if (phase === 'ready' || phase === 'degraded') return;
    if (Date.now() > deadline) throw new WeftError('WEFT_LAB', `the agent of ${node.name} is not ready after ${timeoutMs / 1000} s (phase ${phase ?? 'not answering'}); see ${files.agentLog}`);
    await sleep(100);
  }
}

/** The node's planned pods that have no ADD result yet (their agent was not running at `up`): attached now. */
async function attachPending(name: string, nodeName: string, stateRoot: string, progress: (line: string) => void): Promise<{ name: string; addresses: string[] }[]> {
  const { state, node } = await locate(name, nodeName, stateRoot);
  const pending = node.pods.filter((p) => state.pods[p.name] === undefined);
  return attachAll(name, node, pending, stateRoot, pending.length, progress).then((r) => r.flatMap((x) => ('error' in x ? [] : [x])));
}

export interface NodeStopOptions {
  stateRoot?: string;
  /** SIGKILL (a crash: nothing cleaned up) instead of SIGTERM. */
  kill?: boolean;
  timeoutMs?: number;
}

/** Stops the named nodes' agents (their data plane stays as they leave it); resolves with the PIDs stopped. */
export async function labNodeStop(name: string, nodes: readonly string[], o: NodeStopOptions = {}): Promise<number[]> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  const stopped: number[] = [];
  for (const nodeName of nodes) {
    const { state, dir, node } = await locate(name, nodeName, stateRoot);
    const pid = await runningAgent(state, dir, node.name);
    if (pid === undefined) throw new WeftError('WEFT_LAB', `the agent of ${node.name} is not running (\`weft lab status --name ${name}\`)`);
    process.kill(pid, o.kill === true ? 'SIGKILL' : 'SIGTERM');
    const deadline = Date.now() + (o.timeoutMs ?? 30_000);
    while (await isAlive(pid)) {
      if (Date.now() > deadline) throw new WeftError('WEFT_LAB', `the agent of ${node.name} (pid ${pid}) did not exit within ${(o.timeoutMs ?? 30_000) / 1000} s of ${o.kill === true ? 'SIGKILL' : 'SIGTERM'}; see ${nodeFiles(node.dir).agentLog}`);
      await sleep(25);
    }
    await updateState(dir, (s) => {
      const d = s.daemonPids[node.name];
      if (d !== undefined) d.ready = false;
    });
    stopped.push(pid);
  }
  return stopped;
}

/** Stop (SIGTERM, or SIGKILL with kill) and start again with the same command; resolves once the agents are ready again. */
export async function labNodeRestart(name: string, nodes: readonly string[], o: NodeStopOptions & Omit<NodeStartOptions, 'password'> = {}): Promise<NodeStartReport[]> {
  await labNodeStop(name, nodes, o);
  return labNodeStart(name, nodes, { ...o, pods: o.pods ?? false });
}

/**
 * Takes nodes out as a machine that died would go: the agent SIGKILLed (no goodbye to its
 * peers), everything in the node's and its pods' namespaces stopped, those namespaces deleted
 * (no CNI DEL). The other nodes' agents keep the node in their peer lists, as they would.
 * With the kube store the Node is then deleted from the API, as a cloud's node controller
 * deletes the Node of a terminated instance.
 */
export async function labNodeRemove(name: string, nodes: readonly string[], o: { stateRoot?: string } = {}): Promise<void> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  for (const nodeName of nodes) {
    const { state, dir, node } = await locate(name, nodeName, stateRoot);
    const pid = await runningAgent(state, dir, node.name);
    if (pid !== undefined) await stopProcesses([pid], 0);
    const namespaces = [...node.pods.map((p) => p.ns), node.ns];
    const pids = (await Promise.all(namespaces.map((ns) => netnsPids(ns)))).flat();
    await stopProcesses(pids, 0);
    for (const ns of namespaces) await deleteNetns(ns);
    await updateState(dir, (s) => {
      s.removedNodes = [...new Set([...(s.removedNodes ?? []), node.name])];
      for (const p of node.pods) delete s.pods[p.name];
      delete s.daemonPids[node.name];
      s.namespaces = s.namespaces.filter((ns) => !namespaces.includes(ns));
    });
    if (state.store === 'kube' && state.topology.etcd) await kubeAdmin(state.topology.etcd, 'delete-node', [node.name]);
  }
}

export type PodAddResult = { name: string; addresses: string[] } | { name: string; error: string };

/**
 * Attaches `count` new pods to a node, all at once by default (each a namespace and a CNI ADD
 * through the node's plugin, as kubelet would start them). A failed ADD is reported, not
 * thrown, so a caller sees every outcome; its namespace stays for `down`.
 */
export async function labAddPods(name: string, nodeName: string, count: number, o: { stateRoot?: string; concurrency?: number } = {}): Promise<PodAddResult[]> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  if (!Number.isInteger(count) || count < 1 || count > MAX_PODS_PER_NODE) throw new WeftError('WEFT_LAB', `--count must be a whole number from 1 to ${MAX_PODS_PER_NODE}, got ${count}`);
  const { dir, node } = await locate(name, nodeName, stateRoot);
  const added = await updateState(dir, (s) => {
    const n = s.topology.nodes.find((x) => x.name === node.name);
    if (n === undefined) throw new WeftError('WEFT_INTERNAL', `node ${node.name} vanished from the lab state`);
    const next = n.pods.reduce((m, p) => Math.max(m, p.index), 0) + 1;
    if (next + count - 1 > 9999) throw new WeftError('WEFT_LAB', `node ${node.name} has run out of pod numbers`);
    const pods: PodPlan[] = Array.from({ length: count }, (_, k) => {
      const ns = podNs(name, node.index, next + k);
      return { index: next + k, name: `${node.name}-p${next + k}`, ns, containerId: ns };
    });
    n.pods.push(...pods);
    return { node: n, pods };
  });
  return attachAll(name, added.node, added.pods, stateRoot, o.concurrency ?? count, () => {});
}

async function attachAll(name: string, node: NodePlan, pods: readonly PodPlan[], stateRoot: string, concurrency: number, progress: (line: string) => void): Promise<PodAddResult[]> {
  if (pods.length === 0) return [];
  const dir = labDir(name, stateRoot);
  const conflist = await nodeConflist(node);
  const plugin = (await loadLab(name, stateRoot)).plugin;
  return mapLimit(pods, Math.max(1, concurrency), async (pod): Promise<PodAddResult> => {
    if (await netnsExists(pod.ns)) await deleteNetns(pod.ns); // left by an ADD that failed earlier
    try {
      const ps = await attachPod({
        node, pod, plugin, conflist,
        onNamespace: (ns) => updateState(dir, (s) => void (s.namespaces.includes(ns) || s.namespaces.push(ns))),
      });
      await updateState(dir, (s) => void (s.pods[pod.name] = ps));
      progress(`pod ${pod.name}: ${ps.addresses.join(' ')}`);
      return { name: pod.name, addresses: ps.addresses };
    } catch (e) {
      return { name: pod.name, error: e instanceof Error ? e.message : String(e) };
    }
  });
}

/** The node's conflist from its net.d (written at `up`; for the weft plugin it is the same for every node but its paths). */
async function nodeConflist(node: NodePlan): Promise<Conflist> {
  const files = nodeFiles(node.dir);
  try {
    return JSON.parse(await readFile(files.conflist, 'utf8')) as Conflist;
  } catch {
    const conflist = weftConflist(files);
    await writeFile(files.conflist, `${JSON.stringify(conflist, null, 2)}\n`);
    return conflist;
  }
}

/**
 * `weft <args…>` on a node, as an operator there would type it: in the node's namespace, with
 * WEFT_STATUS_SOCKET and friends pointing at that node's agent (so `weft rmpeer <peer>`,
 * `weft status` need no flags).
 */
export async function labNodeWeft(name: string, nodeName: string, args: readonly string[], o: { stateRoot?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const { node } = await locate(name, nodeName, o.stateRoot ?? LAB_STATE_ROOT);
  return execInNetns(node.ns, [...weftLauncher().argv, ...args], { env: { ...process.env, ...nodeExecEnv(nodeFiles(node.dir)) }, timeoutMs: o.timeoutMs ?? 60_000 });
}
