// The fast path as the agent runs it: the programs loaded once, attached to the uplinks (the
// underlay interface and the backend's tunnel device) and to every routed pod's host veth, and
// the maps kept equal to the node's desired state: pods from the CNI server (and, after a
// restart or a standalone ADD, from the kernel's pod routes), peers from the data plane.
//
// The maps only ever narrow what the kernel's own routing would do (the programs redirect only
// where bpf_fib_lookup already points, docs/dataplane.md), so a stale entry costs at most a
// packet taking the normal path; every step here is a reconcile, safe to repeat.
//
// When the programs cannot be loaded (an old kernel, no BTF, no libbpf), the node runs on the
// normal path and says why, once in the log and for as long as it lasts in the status.
import type { Logger } from '../log/logger.ts';
import type { FastPathKernel, FastPathStat, PodLinkEntry } from './kernel.ts';

export interface FastPathDeps {
  /** Loads the programs and opens the pinned maps; throws (a WeftError with what to do) when the kernel cannot. */
  open: () => FastPathKernel;
  /** An interface's index in the node's namespace, or undefined when it does not exist (yet). */
  linkIndex: (name: string) => number | undefined;
  /** Every routed pod the kernel has (its host veth, MACs and IPv4 address); pods without IPv4 are skipped. */
  routedPods: () => readonly PodLinkEntry[];
  log: Logger;
}

export interface FastPathTargets {
  /** The cluster Network: only destinations inside it take the fast path. */
  network: string;
  /** Interfaces whose received traffic may be redirected into pods: the underlay and the tunnel device. */
  uplinks: readonly string[];
}

export interface FastPathStatus {
  /** Programs loaded and attached: pod-to-pod TCP/UDP takes the fast path. */
  active: boolean;
  /** Why not, when not active. */
  reason?: string;
  /** Active, but a kernel step failed since the last clean reconcile (the pods or peers it concerns take the normal path). */
  error?: string;
  uplinks: string[];
  pods: number;
  peers: number;
  /** Packets per outcome since the maps were created (summed over CPUs). */
  stats?: Record<FastPathStat, number>;
}

export class FastPath {
  readonly #deps: FastPathDeps;
  #kernel: FastPathKernel | undefined;
  #reason: string | undefined = 'not started';
  #targets: FastPathTargets | undefined;
  #peers: readonly string[] = [];
  #lastError: string | undefined;

  constructor(deps: FastPathDeps) {
    this.#deps = deps;
  }

  /** Loads (first call) and points the fast path at these targets; a failure is the fallback, never a throw. */
  start(targets: FastPathTargets): void {
    this.#targets = targets;
    if (!this.#kernel) {
      try {
        this.#kernel = this.#deps.open();
        this.#reason = undefined;
        this.#deps.log.info({ network: targets.network, uplinks: targets.uplinks }, 'fast path loaded: pod-to-pod TCP/UDP bypasses the bridge and netfilter (docs/dataplane.md)');
      } catch (e) {
        this.#fallback(`the eBPF fast path could not be loaded, so pods use the normal path: ${(e as Error).message}`);
        return;
      }
    }
    this.#guard('configure', (k) => k.setNetwork(targets.network));
    this.reconcile();
  }

  /** A pod the CNI server just attached: in the map and its program attached before the ADD answers. */
  podAttached(pod: PodLinkEntry): void {
    this.#guard(`attach pod veth ${pod.ifindex}`, (k) => {
      k.setPod(pod);
      if (k.attached(pod.ifindex) !== 'pod') k.attachPod(pod.ifindex);
    });
  }

  /** The remote pod subnets the data plane reaches: only these take the fast path out of the node. */
  setPeers(subnets: readonly string[]): void {
    // IPv6 always takes the normal path: its peer subnets have no place in the IPv4 map.
    this.#peers = [...new Set(subnets.filter((c) => !c.includes(':')))];
    this.#guard('update peers', (k) => syncSet(k.listPeers(), this.#peers, (c) => k.setPeer(c), (c) => k.deletePeer(c)));
  }

  /** Brings the maps and attachments back to the desired state: run on a timer and after DEL/GC. */
  reconcile(): void {
    const targets = this.#targets;
    if (!targets || !this.#kernel) return;
    const clean = [
      this.#guard('reconcile uplinks', (k) => this.#reconcileUplinks(k, targets.uplinks)),
      this.#guard('reconcile pods', (k) => this.#reconcilePods(k)),
      this.#guard('update peers', (k) => syncSet(k.listPeers(), this.#peers, (c) => k.setPeer(c), (c) => k.deletePeer(c))),
    ].every(Boolean);
    // A whole pass that went through puts right whatever failed before it.
    if (clean) this.#lastError = undefined;
  }

  #reconcileUplinks(k: FastPathKernel, names: readonly string[]): void {
    const wanted: number[] = [];
    for (const name of names) {
      const index = this.#deps.linkIndex(name);
      if (index !== undefined) wanted.push(index); // a tunnel device not made yet: the next pass
    }
    eachOf([
      ...wanted.map((index) => () => {
        if (k.attached(index) !== 'uplink') k.attachUplink(index);
      }),
      () => syncSet(k.listUplinks(), wanted, (i) => k.setUplink(i), (i) => k.deleteUplink(i)),
    ]);
  }

  /** Every pod on its own: one veth that is gone meanwhile (or a full map) leaves the others right. */
  #reconcilePods(k: FastPathKernel): void {
    const pods = this.#deps.routedPods();
    const byIndex = new Map(pods.map((p) => [p.ifindex, p]));
    const stale: number[] = [];
    for (const have of k.listPods()) {
      const want = byIndex.get(have.ifindex);
      if (!want) stale.push(have.ifindex);
      else if (samePod(want, have)) byIndex.delete(have.ifindex);
    }
    eachOf([
      ...stale.map((ifindex) => () => k.deletePod(ifindex)),
      ...[...byIndex.values()].map((pod) => () => k.setPod(pod)),
      // A program from an older agent keeps working, but on its own load's maps: replace it.
      ...pods.map((pod) => () => {
        if (k.attached(pod.ifindex) !== 'pod') k.attachPod(pod.ifindex);
      }),
    ]);
  }

  status(): FastPathStatus {
    const k = this.#kernel;
    const uplinks = [...(this.#targets?.uplinks ?? [])];
    if (!k || this.#reason !== undefined) return { active: false, reason: this.#reason ?? 'not loaded', uplinks, pods: 0, peers: 0 };
    try {
      return { active: true, uplinks, pods: k.listPods().length, peers: this.#peers.length, stats: k.stats(), ...(this.#lastError ? { error: this.#lastError } : {}) };
    } catch (e) {
      return { active: true, uplinks, pods: 0, peers: this.#peers.length, reason: `cannot read the maps: ${(e as Error).message}` };
    }
  }

  /**
   * A note for readiness while the node runs without the fast path it was asked for, or with a
   * step of it failing (retried by every reconcile); undefined while all is well.
   */
  notice(): string | undefined {
    return this.#reason ?? (this.#lastError ? `${this.#lastError} (what it concerns takes the normal path; retried on every reconcile)` : undefined);
  }

  close(): void {
    this.#kernel?.close();
    this.#kernel = undefined;
  }

  /**
   * A kernel step; false when it failed. A failure is logged once per distinct message, shown in
   * the status and the notice until a clean reconcile, and retried by the next reconcile.
   */
  #guard(what: string, step: (k: FastPathKernel) => void): boolean {
    const k = this.#kernel;
    if (!k) return false;
    try {
      step(k);
      return true;
    } catch (e) {
      const message = `fast path: cannot ${what}: ${(e as Error).message}`;
      if (message !== this.#lastError) this.#deps.log.warn({ err: (e as Error).message }, message);
      this.#lastError = message;
      return false;
    }
  }

  #fallback(reason: string): void {
    if (this.#reason !== reason) this.#deps.log.warn({ reason }, reason);
    this.#reason = reason;
  }
}

function samePod(a: PodLinkEntry, b: PodLinkEntry): boolean {
  return a.ipv4 === b.ipv4 && a.podMac.toLowerCase() === b.podMac.toLowerCase() && a.hostMac.toLowerCase() === b.hostMac.toLowerCase();
}

/**
 * Runs every step. One the kernel refuses (a veth gone meanwhile, a full map) does not stop the
 * others; the first refusal is thrown at the end, for the caller to report.
 */
function eachOf(steps: readonly (() => void)[]): void {
  let first: unknown;
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      first ??= e;
    }
  }
  if (first !== undefined) throw first;
}

/** Makes `have` equal to `want` with the fewest calls, each entry on its own (eachOf). */
function syncSet<T>(have: readonly T[], want: readonly T[], add: (v: T) => void, remove: (v: T) => void): void {
  const wanted = new Set(want);
  const present = new Set(have);
  eachOf([
    ...[...present].filter((v) => !wanted.has(v)).map((v) => () => remove(v)),
    ...[...wanted].filter((v) => !present.has(v)).map((v) => () => add(v)),
  ]);
}
