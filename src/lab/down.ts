// `weft lab down`: remove everything a lab created. What to remove is derived from the
// namespace names (`weft-<lab>-…`) and the state directory, with the state file used only
// for extras (ADD results, daemon PIDs), so a lab whose `up` crashed or was killed -9 at any
// point still comes down completely.
import { readFile, rm, stat } from 'node:fs/promises';
import { WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { mapLimit } from './concurrency.ts';
import type { Conflist } from './cni-config.ts';
import { parseLabNs, podNs, nodeNs, validateLabName, type LabMember } from './names.ts';
import { deleteNetns, listNetns, netnsPids } from './netns.ts';
import { BRIDGE_PLUGIN, LAB_STATE_ROOT, labDir, nodeFiles, WEFT_CNI_PLUGIN } from './paths.ts';
import { detachPod, type NodeRef } from './pods.ts';
import { unmountUnder } from './data-path.ts';
import { cmdline, isAlive, stopProcesses } from './processes.ts';
import { readState, type LabState } from './state.ts';
import type { PodPlan } from './topology.ts';

export interface LabDownOptions {
  stateRoot?: string;
  logger?: Logger;
  onProgress?: (line: string) => void;
}

export interface LabDownReport {
  name: string;
  /** False when there was nothing to remove. */
  existed: boolean;
  /** Pods whose CNI DEL succeeded, and those where it failed (best effort; the namespaces go anyway). */
  deleted: string[];
  delFailures: { pod: string; error: string }[];
  stoppedPids: number[];
  removedNamespaces: string[];
  removedDir: string | undefined;
}

export async function labDown(name: string, options: LabDownOptions = {}): Promise<LabDownReport> {
  const log = options.logger ?? silentLogger;
  const progress = options.onProgress ?? (() => {});
  validateLabName(name);
  const dir = labDir(name, options.stateRoot ?? LAB_STATE_ROOT);
  const state = await readState(dir).catch((e: unknown) => {
    log.warn({ lab: name, err: String(e) }, 'state file unreadable; removing by namespace names');
    return undefined;
  });
  await refuseWhileBuilding(name, state);
  const members = new Map<string, LabMember>();
  for (const ns of await listNetns()) {
    const m = parseLabNs(name, ns);
    if (m !== undefined) members.set(ns, m);
  }
  const dirExists = await stat(dir).then(() => true, () => false);
  const report: LabDownReport = { name, existed: members.size > 0 || dirExists, deleted: [], delFailures: [], stoppedPids: [], removedNamespaces: [], removedDir: undefined };
  if (!report.existed) return report;

  // 1. CNI DEL for every pod, while the nodes (and their cni-servers or agents) still exist.
  await mapLimit(podsToDelete(name, dir, state, members), 8, async ({ node, pod, prevResult }) => {
    try {
      await detachPod(node, pod, await pluginFor(state, node), prevResult);
      report.deleted.push(pod.name);
    } catch (e) {
      report.delFailures.push({ pod: pod.name, error: e instanceof Error ? e.message : String(e) });
      log.debug({ lab: name, pod: pod.name, err: String(e) }, 'CNI DEL failed; the namespace is removed anyway');
    }
  });
  if (report.deleted.length > 0) progress(`CNI DEL: ${report.deleted.length} pod(s)`);

  // 2. Stop the lab's processes: recorded daemons (cni-servers, agents, etcd) that are still
  // ours, and anything inside a lab namespace (which covers them all, and `check`'s leftovers).
  const pids = new Set<number>();
  for (const ns of members.keys()) for (const pid of await netnsPids(ns)) pids.add(pid);
  for (const d of Object.values(state?.daemonPids ?? {})) {
    if ((await cmdline(d.pid))?.includes(`${dir}/`)) pids.add(d.pid); // PIDs get reused: check it is still ours
  }
  report.stoppedPids = await stopProcesses(pids);
  if (report.stoppedPids.length > 0) progress(`stopped ${report.stoppedPids.length} process(es): ${report.stoppedPids.join(' ')}`);

  // 3. Namespaces: deleting one destroys its veths, bridges, routes, rules and sockets.
  const order = (m: LabMember): number => ['pod', 'node', 'etcd', 'outside', 'router', 'zone'].indexOf(m.kind);
  const namespaces = [...members].sort((a, b) => order(a[1]) - order(b[1])).map(([ns]) => ns);
  for (const ns of namespaces) {
    await deleteNetns(ns);
    report.removedNamespaces.push(ns);
  }
  if (namespaces.length > 0) progress(`deleted ${namespaces.length} namespace(s)`);

  // 4. Files: state, subnet.env, conflists, IPAM data, logs, etcd's data; the fast path's bpffs first.
  const unmounted = await unmountUnder(dir);
  if (unmounted.length > 0) progress(`unmounted ${unmounted.join(' ')}`);
  await rm(dir, { recursive: true, force: true });
  report.removedDir = dir;

  const left = (await listNetns()).filter((ns) => parseLabNs(name, ns) !== undefined);
  if (left.length > 0) {
    throw new WeftError('WEFT_LAB', `lab ${name}: namespaces still exist after down: ${left.join(', ')}; is a \`weft lab up --name ${name}\` still running?`);
  }
  log.info({ lab: name, namespaces: namespaces.length, pids: report.stoppedPids.length }, 'lab down');
  return report;
}

/** Tearing down under a running `up` would race it (it would go on creating namespaces). */
async function refuseWhileBuilding(name: string, state: LabState | undefined): Promise<void> {
  if (state?.phase !== 'creating' || state.upPid === process.pid || !(await isAlive(state.upPid))) return;
  const cmd = await cmdline(state.upPid);
  if (cmd?.includes('node') !== true) return; // the PID was reused by something else: the builder is gone
  throw new WeftError('WEFT_LAB', `lab ${name} is still being built by pid ${state.upPid} (${cmd}); wait for it, or stop it (kill ${state.upPid}), then run \`weft lab down --name ${name}\` again`);
}

interface PodToDelete {
  node: NodeRef;
  pod: PodPlan;
  prevResult: unknown;
}

/** Pods that have a namespace or an ADD result on record, and whose node namespace still exists. */
function podsToDelete(name: string, dir: string, state: LabState | undefined, members: Map<string, LabMember>): PodToDelete[] {
  const pods = new Map<string, { node: number; pod: number }>();
  for (const m of members.values()) if (m.kind === 'pod') pods.set(podNs(name, m.node, m.pod), m);
  for (const n of state?.topology.nodes ?? []) {
    for (const p of n.pods) if (state?.pods[p.name] !== undefined) pods.set(p.ns, { node: n.index, pod: p.index });
  }
  const out: PodToDelete[] = [];
  for (const [ns, { node, pod }] of pods) {
    if (!members.has(nodeNs(name, node))) continue; // no node namespace: nothing to run the plugin in
    const nodeRef: NodeRef = { ns: nodeNs(name, node), dir: `${dir}/n${node}` };
    const podName = `n${node}-p${pod}`;
    out.push({ node: nodeRef, pod: { index: pod, name: podName, ns, containerId: ns }, prevResult: state?.pods[podName]?.result });
  }
  return out;
}

/** The plugin the pods were attached with: from the state file, or else from the node's conflist. */
async function pluginFor(state: LabState | undefined, node: NodeRef): Promise<string> {
  if (state !== undefined) return state.plugin;
  const conflist = JSON.parse(await readFile(nodeFiles(node.dir).conflist, 'utf8')) as Conflist;
  return conflist.plugins[0]?.type === 'weft' ? WEFT_CNI_PLUGIN : BRIDGE_PLUGIN;
}
