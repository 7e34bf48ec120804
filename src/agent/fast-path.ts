// The agent's fast path (--fast-path ebpf): src/fastpath's manager on the real kernel, fed with
// the routed pods the kernel holds (src/cni's listRoutedPods, the same record the CNI plugin
// writes). Its maps are pinned per network namespace under --bpf-dir: interface indexes mean
// nothing in another namespace, and several agents on one machine (a lab) must not share them.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log/logger.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import { listRoutedPods, type RoutedPod } from '../cni/routed-link.ts';
import { FastPath } from '../fastpath/manager.ts';
import { openFastPathKernel, type PodLinkEntry } from '../fastpath/kernel.ts';

/** Where this namespace's maps are pinned: <bpfDir>/netns-<inode of our network namespace>. */
export function pinDirFor(bpfDir: string, netnsPath = '/proc/self/ns/net'): string {
  return join(bpfDir, `netns-${statSync(netnsPath).ino}`);
}

/** A routed pod as the fast path's map holds it; undefined for a pod with no IPv4 address (IPv6 takes the normal path). */
export function podLinkEntry(pod: RoutedPod): PodLinkEntry | undefined {
  if (pod.ipv4 === undefined) return undefined;
  return { ifindex: pod.hostIfindex, ipv4: pod.ipv4, podMac: pod.podMac, hostMac: pod.hostMac };
}

export function agentFastPath(nl: Rtnetlink, bpfDir: string, log: Logger): FastPath {
  return new FastPath({
    // WEFT_BPF_OBJECT (read by src/fastpath/kernel.ts) points at another object: the fallback's test.
    open: () => openFastPathKernel({ pinDir: pinDirFor(bpfDir) }),
    linkIndex: (name) => nl.getLink(name)?.index,
    routedPods: () => listRoutedPods(nl).flatMap((p) => podLinkEntry(p) ?? []),
    log,
  });
}
