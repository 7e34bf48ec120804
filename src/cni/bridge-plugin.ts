// The CNI verbs for weft's bridge network (docs/cni-spec-notes.md §2.1 is the behaviour we match): each verb
// reads top to bottom as numbered steps, and ADD pushes an undo for every resource it takes so
// a failure leaves no address, link or rule behind. Addresses come from an Ipam (src/ipam/ipam.ts)
// made per request by an injected factory, host-local's disk store by default.
//
// Each allocation carries its range's gateway: one per family in etcd mode (subnet.env's), one
// per block with block IPAM (block-ipam.ts). The bridge holds the gateway of the pod's range,
// added the first time a pod lands in it, and the pod's routes go via that gateway.
//
// subnet.env's WEFT_POD_LINK picks each ADD's link: the bridge (above), or routed
// (routed-link.ts: no bridge, a host route per pod). DEL, GC and STATUS are the same for both,
// and CHECK tells them apart by the ADD's result, so pods of either kind survive a switch.
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { WeftError, errnoCode } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { LogThrottle, type Clock } from '../log/throttle.ts';
import { hostLocalIpamFactory } from '../ipam/allocator.ts';
import type { Allocation, Ipam, IpamFactory } from '../ipam/ipam.ts';
import { currentRangeSetsOf } from '../ipam/block-ipam.ts';
import { type RangeSet, formatRangeSet, rangeFor } from '../ipam/ranges.ts';
import { type Cidr, formatCidr, formatIp, maskToNetwork, parseAddressWithPrefix, parseIp } from '../net/cidr.ts';
import { deleteLinkRequest, isExists, isNotFound, requestOffThread, Rtnetlink } from '../netlink/index.ts';
import { readSubnetEnv } from '../subnet/subnet-env.ts';
import { checkAttachment } from './check.ts';
import { IpamUsageCache, type IpamUsageTotals } from './ipam-usage.ts';
import type { PluginConfig } from './config.ts';
import { parseCniArgs, type CniEnv } from './env.ts';
import { forgetFlannelDelegate, gcFlannelDelegates, saveFlannelDelegate } from './flannel-state.ts';
import { ensureForwarding, ensureNodeBridge, familyOf, randomMac, type NodeBridge } from './node-bridge.ts';
import { planPodNetwork, routedPodAddressing, withAllocationGateways, ROUTED_GATEWAY, type AllocatedGateway, type PodNetworkPlan } from './plan.ts';
import type { CniOperations } from './plugin.ts';
import type { PodMasquerade } from './pod-masq.ts';
import type { AddResult, ResultInterface } from './result.ts';
import type { Route } from './config.ts';
import { podAddresses, configurePodInterface, setPodInterfaceKnobs } from './pod-link.ts';
import { enableBridgeProxyArp, hasRoutedPods, routeToPod, setHostVethKnobs, type RoutedPod } from './routed-link.ts';

export interface BridgeOperationsOptions {
  log: Logger;
  /** Per-pod masquerade (only used when the node agent does not masquerade); see pod-masq.ts. */
  masquerade?: PodMasquerade;
  /** Makes each request's Ipam from the config's name and dataDir and the node's ranges; default host-local's disk store. */
  ipam?: IpamFactory;
  /** The log throttle's and the usage cache's clock (tests). */
  clock?: Clock;
  /** Awaited at the end of a routed ADD (the fast path's map entry); a throw is logged, never fails the ADD. */
  onPodAttached?: (pod: RoutedPod) => void | Promise<void>;
  /** After every DEL and GC: routed pods may be gone (the fast path re-reads listRoutedPods). */
  onPodsChanged?: () => void;
}

/** What the link step of an ADD gets: the request, the pod's namespace and MAC, its addresses and plan. */
interface PodLinkInput {
  env: CniEnv;
  config: PluginConfig;
  pod: PodNetns;
  podMac: string;
  allocations: readonly Allocation[];
  ipam: Ipam;
  plan: PodNetworkPlan;
}

/** What the link step made, for the result: the pod's interface last, one address and gateway per allocation. */
interface AttachedLink {
  interfaces: ResultInterface[];
  addresses: string[];
  gateways: string[];
  routes: Route[];
  routed?: RoutedPod;
}

/** Repeats of one IPAM problem (a store file that cannot be read) within this window are summed up in one line. */
const IPAM_WARN_WINDOW_MS = 60_000;
/** How old a usage reading a metric scrape accepts before it starts a fresh one (ipam-usage.ts). */
const USAGE_TTL_MS = 10_000;

const CNI_ARGS_KEYS = ['IP', 'MAC', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_INFRA_CONTAINER_ID', 'K8S_POD_UID'];

export class BridgeOperations implements CniOperations {
  readonly #log: Logger;
  readonly #masq: PodMasquerade | undefined;
  /** The node's own namespace, opened once: the CNI server keeps it for its whole life. */
  #node: Rtnetlink | undefined;
  /** Per bridge name: the MTU it was ensured with and the addresses it held then. */
  readonly #bridges = new Map<string, { mtu: number; bridge: NodeBridge; addresses: Set<string> }>();
  readonly #ipamFactory: IpamFactory;
  readonly #throttle: LogThrottle;
  readonly #usage: IpamUsageCache;
  readonly #onPodAttached: BridgeOperationsOptions['onPodAttached'];
  readonly #onPodsChanged: BridgeOperationsOptions['onPodsChanged'];

  constructor(options: BridgeOperationsOptions) {
    this.#log = options.log;
    this.#masq = options.masquerade;
    this.#ipamFactory = options.ipam ?? hostLocalIpamFactory;
    this.#onPodAttached = options.onPodAttached;
    this.#onPodsChanged = options.onPodsChanged;
    const clock = options.clock ?? Date.now;
    this.#throttle = new LogThrottle(options.log, IPAM_WARN_WINDOW_MS, clock);
    this.#usage = new IpamUsageCache({
      ttlMs: USAGE_TTL_MS,
      clock,
      onError: (e) => this.#throttle.warn('ipam-usage', { err: e.message }, 'cannot count the IPAM addresses in use for the metrics'),
    });
  }

  close(): void {
    this.#node?.close();
    this.#node = undefined;
    this.#throttle.close();
  }

  /**
   * Pod addresses in use and free on the network the latest request served (every family
   * together), for the agent's weft_ipam_addresses metric; undefined before a request has told
   * which network and ranges this node serves. Cheap and synchronous: a cached value, refreshed
   * in the background after ADD, DEL and GC and when older than 10 s, once usage() has been
   * called at all (see ipam-usage.ts).
   */
  usage(): IpamUsageTotals | undefined {
    return this.#usage.get();
  }

  /** Resolves once the usage cache has no refresh in flight (tests, shutdown). */
  usageSettled(): Promise<void> {
    return this.#usage.settled();
  }

  get #nodeNetlink(): Rtnetlink {
    this.#node ??= Rtnetlink.open();
    return this.#node;
  }

  async add(env: CniEnv, config: PluginConfig): Promise<AddResult> {
    const undo: (() => unknown)[] = [];
    try {
      return await this.#add(env, config, undo);
    } catch (e) {
      for (const step of undo.reverse()) {
        try {
          await step();
        } catch (rollbackError) {
          this.#log.error({ containerId: env.containerId, err: (rollbackError as Error).message }, 'rollback step of a failed ADD failed');
        }
      }
      throw e;
    }
  }

  async #add(env: CniEnv, config: PluginConfig, undo: (() => unknown)[]): Promise<AddResult> {
    const args = parseCniArgs(env.args, CNI_ARGS_KEYS);
    // 1. What this pod gets: from the node agent's subnet.env.
    const plan = planPodNetwork(config, readSubnetEnv(config.subnetFile));
    // 2. The pod's namespace; its interface must not exist yet (spec: ADD twice is an error).
    using pod = openPodNetns(env.netns);
    // A dump, not a lookup: a fresh namespace has only lo, and a miss would cost an error object.
    if (pod.nl.listLinks().some((l) => l.name === env.ifname)) {
      throw new WeftError('WEFT_INVALID_ENV', `container interface ${env.ifname} already exists in ${env.netns}: DEL the previous attachment first`);
    }
    // 3. Addresses, released again if anything below fails. Each names its range's gateway.
    const ipam = this.#ipam(config, plan);
    const attachment = { containerId: env.containerId, ifname: env.ifname };
    const requested = [...config.requestedIps, ...(args.get('IP')?.split(',') ?? [])];
    const allocations = await ipam.allocate({ ...attachment, requested });
    this.#usage.changed();
    undo.push(async () => {
      await ipam.release(attachment);
      this.#usage.changed();
    });
    const podPlan = withAllocationGateways(plan, allocations);
    ensureForwarding(podPlan.gateways.map(familyOf));
    // 4-6. The pod's link to the node: a veth, on the bridge or routed (subnet.env's WEFT_POD_LINK).
    const podMac = config.requestedMac ?? args.get('MAC') ?? randomMac();
    const link = { env, config, pod, podMac, allocations, ipam, plan: podPlan };
    const attached = plan.podLink === 'routed' ? this.#attachRouted(link, undo) : this.#attachBridged(link, undo);
    // 7. Masquerade by the plugin, only if the node agent does not do it; never within the pod's
    // subnet, however it is linked (so the subnet's prefix, not a routed pod's /32).
    if (plan.podMasq) {
      if (!this.#masq) throw new WeftError('WEFT_FIREWALL', 'per-pod masquerade is needed (FLANNEL_IPMASQ=false) but no firewall backend is configured');
      const ips = allocations.map((a) => `${a.address}/${a.prefix}`);
      await this.#masq.setup({ network: config.name, containerId: env.containerId, ips });
      undo.push(() => this.#masq?.teardown({ network: config.name, containerId: env.containerId }));
    }
    // 8. flannel's own plugin must be able to DEL this pod after a switch back (flannel-state.ts).
    if (config.flannelStateDir) saveFlannelDelegate(config, env.containerId, plan);
    // 9. The fast path learns of a routed pod at once (it also finds it in the kernel later).
    if (attached.routed) await this.#notifyAttached(env, attached.routed);
    const podIndex = attached.interfaces.length - 1;
    return {
      interfaces: attached.interfaces,
      ips: allocations.map((a, i) => ({ address: attached.addresses[i] as string, gateway: attached.gateways[i] as string, interface: podIndex })),
      routes: attached.routes,
      dns: config.dns ?? {},
    };
  }

  /** Bridge link: the node's bridge with the gateway of the pod's range(s); the host end on it. */
  #attachBridged(o: PodLinkInput, undo: (() => unknown)[]): AttachedLink {
    const { env, config, plan } = o;
    const node = this.#nodeNetlink;
    const bridge = this.#ensureBridge(node, config.bridge, plan, () => currentSubnets(o.ipam, plan, o.allocations));
    const hostName = this.#createVeth(node, { bridge: bridge.index, mtu: plan.mtu, ifname: env.ifname, podMac: o.podMac, netnsFd: o.pod.fd });
    undo.push(() => node.deleteLink(hostName));
    const host = node.getLink(hostName);
    if (!host) throw new WeftError('WEFT_NETLINK', `veth ${hostName} vanished right after creation`);
    if (config.hairpinMode) node.setHairpin(host.index, true);
    // Inside the pod: addresses, then routes via the gateway.
    const addresses = o.allocations.map((a) => `${a.address}/${a.prefix}`);
    setPodInterfaceKnobs(env.netns, env.ifname);
    configurePodInterface(o.pod.nl, { ifname: env.ifname, addresses, routes: plan.routes });
    return {
      interfaces: [
        { name: bridge.name, mac: bridge.mac },
        { name: hostName, mac: host.mac ?? '' },
        { name: env.ifname, mac: o.podMac, sandbox: env.netns, mtu: plan.mtu },
      ],
      addresses,
      gateways: o.allocations.map((a) => a.gateway),
      routes: plan.routes,
    };
  }

  /**
   * Routed link (routed-link.ts): the host end on no bridge; inside the pod host addresses and
   * routes via the link-local gateway, whose MAC is the host end's; on the node a permanent
   * neighbour and a host route per address.
   */
  #attachRouted(o: PodLinkInput, undo: (() => unknown)[]): AttachedLink {
    const { env, config, plan } = o;
    const node = this.#nodeNetlink;
    const routed = routedPodAddressing(o.allocations.map((a) => `${a.address}/${a.prefix}`), plan.routes);
    const hostMac = randomMac();
    const hostName = this.#createVeth(node, { mtu: plan.mtu, ifname: env.ifname, podMac: o.podMac, hostMac, netnsFd: o.pod.fd });
    undo.push(() => node.deleteLink(hostName));
    const host = node.getLink(hostName);
    if (!host) throw new WeftError('WEFT_NETLINK', `veth ${hostName} vanished right after creation`);
    setHostVethKnobs(hostName);
    // A node switched from bridge: the bridge's pods must still reach this one (routed-link.ts).
    if (node.getLink(config.bridge)?.kind === 'bridge') enableBridgeProxyArp(config.bridge);
    setPodInterfaceKnobs(env.netns, env.ifname);
    configurePodInterface(o.pod.nl, {
      ifname: env.ifname, addresses: routed.addresses, routes: routed.routes,
      gateways: routed.gateways.map((ip) => ({ ip, mac: hostMac })),
    });
    const ips = o.allocations.map((a) => a.address);
    routeToPod(node, { hostIndex: host.index, hostName, podMac: o.podMac, ips }, undo);
    const v4 = o.allocations.find((a) => a.family === 4)?.address;
    const v6 = o.allocations.find((a) => a.family === 6)?.address;
    return {
      interfaces: [
        { name: hostName, mac: hostMac },
        { name: env.ifname, mac: o.podMac, sandbox: env.netns, mtu: plan.mtu },
      ],
      addresses: routed.addresses,
      gateways: o.allocations.map((a) => ROUTED_GATEWAY[a.family]),
      routes: routed.routes,
      routed: { hostIfindex: host.index, hostIfname: hostName, hostMac, podMac: o.podMac, ...(v4 ? { ipv4: v4 } : {}), ...(v6 ? { ipv6: v6 } : {}) },
    };
  }

  /** The onPodAttached hook; its failure is the fast path's problem, never the pod's. */
  async #notifyAttached(env: CniEnv, pod: RoutedPod): Promise<void> {
    if (!this.#onPodAttached) return;
    try {
      await this.#onPodAttached(pod);
    } catch (e) {
      this.#log.warn({ containerId: env.containerId, hostIfname: pod.hostIfname, err: (e as Error).message }, 'onPodAttached failed; the pod is attached all the same');
    }
  }

  #notifyChanged(): void {
    if (!this.#onPodsChanged) return;
    try {
      this.#onPodsChanged();
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'onPodsChanged failed');
    }
  }

  /**
   * The bridge as ensured before, if it is still the same link, up, and held the pod's gateways
   * then (one lookup); otherwise ensured in full (create, address dump, add the missing
   * gateways). A long-lived server thus skips the dump, whose size grows with the number of
   * pods, on every ADD after the first into each range; a new block's gateway takes the full path.
   */
  #ensureBridge(node: Rtnetlink, name: string, plan: PodNetworkPlan, current: () => readonly Cidr[]): NodeBridge {
    const cached = this.#bridges.get(name);
    if (cached?.mtu === plan.mtu && plan.gateways.every((g) => cached.addresses.has(g))) {
      const link = node.getLink(name);
      if (link?.index === cached.bridge.index && link.up) return cached.bridge;
    }
    const ensured = ensureNodeBridge(node, { name, mtu: plan.mtu, gateways: plan.gateways, networks: plan.networks, current: current(), log: this.#log });
    // A node switched back from routed: this bridge's pods must reach the routed ones (routed-link.ts).
    if (hasRoutedPods(node)) enableBridgeProxyArp(name);
    const bridge = { index: ensured.index, name: ensured.name, mac: ensured.mac };
    this.#bridges.set(name, { mtu: plan.mtu, bridge, addresses: new Set(ensured.addresses) });
    return bridge;
  }

  /** Host end named "veth" + 8 hex digits like the bridge plugin, on the bridge if given; a name clash is retried. */
  #createVeth(node: Rtnetlink, o: { bridge?: number; mtu: number; ifname: string; podMac: string; hostMac?: string; netnsFd: number }): string {
    for (let attempt = 0; ; attempt++) {
      const name = `veth${randomBytes(4).toString('hex')}`;
      try {
        // The peer cannot be brought up in the same request: the kernel opens it before it is paired.
        node.createVeth({
          name, mtu: o.mtu, mac: o.hostMac ?? randomMac(), ...(o.bridge !== undefined ? { master: o.bridge } : {}), up: true,
          peer: { name: o.ifname, mtu: o.mtu, mac: o.podMac, netnsFd: o.netnsFd },
        });
        return name;
      } catch (e) {
        if (!isExists(e) || attempt >= 3) throw e;
      }
    }
  }

  async del(env: CniEnv, config: PluginConfig): Promise<void> {
    // DEL must finish "to the fullest extent possible": no netns, no link, no subnet.env are all fine.
    let plan: PodNetworkPlan | undefined;
    try {
      plan = planPodNetwork(config, readSubnetEnv(config.subnetFile));
    } catch (e) {
      this.#log.warn({ containerId: env.containerId, err: (e as Error).message }, 'DEL without a readable subnet.env; releasing what can be released');
    }
    // 1. The pod's interface (its veth peer on the bridge goes with it). Off the event loop:
    // the kernel answers a veth delete only once the device is gone (see off-thread.ts).
    if (env.netns !== '') {
      try {
        await requestOffThread(deleteLinkRequest(env.ifname), { netnsPath: env.netns });
      } catch (e) {
        if (!isNotFound(e) && errnoCode(e) !== 'ENOENT') throw e;
      }
    }
    // 2. Addresses, 3. masquerade rules, 4. flannel's delegate record.
    await this.#ipam(config, plan).release({ containerId: env.containerId, ifname: env.ifname });
    this.#usage.changed();
    if (this.#masq && (plan?.podMasq ?? config.ipMasq ?? true)) {
      await this.#masq.teardown({ network: config.name, containerId: env.containerId });
    }
    if (config.flannelStateDir) forgetFlannelDelegate(config.flannelStateDir, env.containerId);
    this.#notifyChanged();
  }

  async check(env: CniEnv, config: PluginConfig): Promise<void> {
    const plan = planPodNetwork(config, readSubnetEnv(config.subnetFile));
    using pod = openPodNetns(env.netns);
    const ipam = this.#ipam(config, plan);
    const owned = await ipam.lookup({ containerId: env.containerId, ifname: env.ifname });
    // The bridge must hold the gateway of the pod's own range, which with block IPAM need not be subnet.env's.
    const podPlan = withAllocationGateways(plan, gatewaysOf(owned, currentRangeSetsOf(ipam) ?? plan.rangeSets));
    checkAttachment({ node: this.#nodeNetlink, pod: pod.nl, env, config, plan: podPlan, ipamAddresses: owned, podAddresses: podAddresses(pod.nl, env.ifname) });
  }

  async status(config: PluginConfig): Promise<void> {
    const plan = planPodNetwork(config, readSubnetEnv(config.subnetFile));
    const ipam = this.#ipam(config, plan);
    const usage = await ipam.usage();
    this.#usage.record(usageKey(config, plan), usage);
    const full = usage.findIndex((u) => u.allocated >= u.capacity);
    if (full >= 0) {
      const set = (currentRangeSetsOf(ipam) ?? plan.rangeSets)[full];
      throw new WeftError('WEFT_IPAM_EXHAUSTED', `no free addresses in ${set ? describeRangeSet(set) : 'its ranges'} on this node (${usage[full]!.allocated} of ${usage[full]!.capacity} in use)`);
    }
  }

  async gc(config: PluginConfig): Promise<void> {
    const valid = (config.validAttachments ?? []).map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
    let plan: PodNetworkPlan | undefined;
    try {
      plan = planPodNetwork(config, readSubnetEnv(config.subnetFile));
    } catch {
      plan = undefined;
    }
    const released = await this.#ipam(config, plan).gc(valid);
    this.#usage.changed();
    if (config.flannelStateDir) gcFlannelDelegates(config.flannelStateDir, new Set(valid.map((a) => a.containerId)));
    if (released.length > 0) this.#log.info({ released }, 'GC released addresses of attachments the runtime no longer knows');
    this.#notifyChanged();
  }

  /** This request's Ipam; one with known ranges also becomes the network whose usage is reported. */
  #ipam(config: PluginConfig, plan: PodNetworkPlan | undefined): Ipam {
    const rangeSets = plan?.rangeSets ?? [];
    const warn = (problem: string): void => this.#warnIpam(config.name, problem);
    const ipam = this.#ipamFactory({ name: config.name, dataDir: config.ipamDataDir, rangeSets, warn });
    if (plan && rangeSets.length > 0) this.#usage.served(usageKey(config, plan), ipam);
    return ipam;
  }

  /** Keyed by the problem, which names the file: each odd file is reported once per window, not per request. */
  #warnIpam(network: string, problem: string): void {
    this.#throttle.warn(`ipam:${problem}`, { network }, problem);
  }
}

/**
 * What a new bridge gateway must not displace: the node's current ranges (block IPAM: every
 * block it owns) and this pod's own ranges.
 */
function currentSubnets(ipam: Ipam, plan: PodNetworkPlan, allocations: readonly Allocation[]): Cidr[] {
  const sets = currentRangeSetsOf(ipam) ?? plan.rangeSets;
  const own = allocations.map((a) => maskToNetwork(parseAddressWithPrefix(`${a.address}/${a.prefix}`)));
  return [...sets.flatMap((set) => set.map((r) => r.subnet)), ...own];
}

/** The gateway of each address's range (CHECK: the ranges the pod's addresses came from). */
function gatewaysOf(addresses: readonly string[], rangeSets: readonly RangeSet[]): AllocatedGateway[] {
  const found: AllocatedGateway[] = [];
  for (const text of addresses) {
    const ip = parseIp(text);
    for (const set of rangeSets) {
      const range = rangeFor(set, ip);
      if (range) found.push({ family: ip.family, gateway: formatIp(range.gateway), prefix: range.subnet.prefix });
    }
  }
  return found;
}

/** A range set for a message: its gateway address when it is one subnet (etcd mode), else its size. */
function describeRangeSet(set: RangeSet): string {
  const [first] = set;
  if (!first) return 'no range (this node owns no address block)';
  if (set.length === 1) return `${formatIp(first.gateway)}/${first.subnet.prefix}`;
  return `${set.length} blocks (${formatCidr(first.subnet)}, ...)`;
}

/** The store and ranges a usage reading is for; a new subnet (or dataDir) is a new reading. */
function usageKey(config: PluginConfig, plan: PodNetworkPlan): string {
  return JSON.stringify([config.ipamDataDir, config.name, plan.rangeSets.map(formatRangeSet)]);
}

interface PodNetns extends Disposable { fd: number; nl: Rtnetlink }

function openPodNetns(path: string): PodNetns {
  const pod = tryOpenPodNetns(path);
  if (!pod) throw new WeftError('WEFT_NETNS', `network namespace ${path} does not exist`);
  return pod;
}

/** undefined when the namespace is gone (DEL after the runtime removed it). */
function tryOpenPodNetns(path: string): PodNetns | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw new WeftError('WEFT_NETNS', `cannot open network namespace ${path}: ${(e as Error).message}`, { cause: e });
  }
  let nl: Rtnetlink;
  try {
    nl = Rtnetlink.open(path);
  } catch (e) {
    closeSync(fd);
    throw new WeftError('WEFT_NETNS', `${path} is not a usable network namespace: ${(e as Error).message}`, { cause: e });
  }
  return { fd, nl, [Symbol.dispose]: () => { nl.close(); closeSync(fd); } };
}
