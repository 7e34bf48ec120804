// Pods: a namespace plus one CNI ADD, run the way kubelet's runtime would run it on that node.
import { readFile } from 'node:fs/promises';
import { cniAdd, cniDel, type CniInvocation } from './cni-exec.ts';
import { pluginRequestConfig, type Conflist } from './cni-config.ts';
import { createNetns } from './netns.ts';
import { nodeFiles } from './paths.ts';
import type { PodState } from './state.ts';
import type { NodePlan, PodPlan } from './topology.ts';

/** The parts of a node plan a CNI call needs (all `down` can know after a crash). */
export type NodeRef = Pick<NodePlan, 'ns' | 'dir'>;

export function podInvocation(node: NodeRef, pod: PodPlan, plugin: string): CniInvocation {
  return {
    plugin,
    hostNs: node.ns,
    podNs: pod.ns,
    containerId: pod.containerId,
    podName: pod.name,
    logFile: nodeFiles(node.dir).pluginLog,
  };
}

export interface AttachPodOptions {
  node: NodePlan;
  pod: PodPlan;
  plugin: string;
  conflist: Conflist;
  /** Called once the namespace exists, before ADD, so a crash during ADD still leaves a record. */
  onNamespace: (ns: string) => Promise<void>;
}

export async function attachPod(o: AttachPodOptions): Promise<PodState> {
  await createNetns(o.pod.ns);
  await o.onNamespace(o.pod.ns);
  const result = await cniAdd(podInvocation(o.node, o.pod, o.plugin), pluginRequestConfig(o.conflist));
  return { containerId: o.pod.containerId, addresses: result.addresses, result: result.raw };
}

/** CNI DEL with the config the node's conflist holds, as a runtime would read it from net.d. */
export async function detachPod(node: NodeRef, pod: PodPlan, plugin: string, prevResult?: unknown): Promise<void> {
  const conflist = JSON.parse(await readFile(nodeFiles(node.dir).conflist, 'utf8')) as Conflist;
  await cniDel({ ...podInvocation(node, pod, plugin), timeoutMs: 20_000 }, pluginRequestConfig(conflist, 0, prevResult));
}
