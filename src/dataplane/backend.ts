// The seam between the agent and a data plane. A backend turns "these are the other nodes'
// leases" into kernel state (routes, neighbours, FDB entries), and knows nothing of etcd: the
// agent hands it plain peers. Every method is a reconcile: it reads the kernel's actual
// state, compares with the desired state, and changes only the difference, so calling it on
// every event and on a timer is safe and a restart never flushes working state. prepare() and
// attach() are small and synchronous; reconcile() and teardown() can be thousands of netlink
// requests, so they are asynchronous, yield to the event loop, and are serialized per backend.
import type { Logger } from '../log/logger.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import type { ConfigOrError } from './config-fields.ts';

/**
 * A backend's name in flannel's "Backend.Type" (lower case): "vxlan", "host-gw", or weft's own
 * "auto" (a vxlan device, so every peer is reachable, plus plain routes to the peers on the same
 * underlay subnet: vxlan with DirectRouting always on; it publishes BackendType "vxlan", so
 * flanneld vxlan peers interoperate with it). The registry in index.ts is the list.
 */
export type BackendType = string;

/** This node, as the backend needs it. */
export interface LocalNode {
  /** The underlay interface (flannel's external interface), e.g. "eth0". */
  underlayInterface: string;
  underlayIndex: number;
  /** Its MTU. */
  underlayMtu: number;
  /** The address other nodes send to (flannel's PublicIP). */
  publicIp: string;
}

/**
 * Another node, as any control plane hands it over (etcd leases, a node list, a mesh): mode
 * neutral. The backend decides what it can do with it; nothing in it is trusted.
 */
export interface Peer {
  /** Stable identity for reports: a lease key, a node name, a mesh peer id. */
  id: string;
  /** The pod CIDRs routed to this peer (one in etcd mode; several for a mesh that hands out blocks). */
  subnets: readonly string[];
  publicIp: string;
  /** What the peer announced (flannel's BackendType). */
  backendType: string;
  /** The peer's BackendData as announced, untrusted: each backend decodes and validates its own. */
  backendData: unknown;
}

/**
 * How traffic to one peer is carried, for `weft status`: a plain route over the underlay, the
 * vxlan tunnel, not at all (an error says why), or not at all because the peer announced
 * another backend type (a warning says which).
 */
export type PeerPath = 'direct' | 'vxlan' | 'unreachable' | 'ignored';

export interface ReconcileReport {
  /** Kernel changes made by this pass (0 when everything was in place). */
  changes: number;
  /** Every peer passed in, by peer id. */
  paths: Map<string, PeerPath>;
  /**
   * What could not be programmed, with why. A peer's error has `peer` (its id) and `subnet` (the
   * subnet concerned, else its first one). A stale entry that no peer owns any more has no
   * `peer`, and `subnet` names the entry instead ("route 10.1.2.0/24", "neighbour 10.244.8.0").
   */
  errors: { peer?: string; subnet: string; error: string }[];
  /** Peers skipped on purpose: another BackendType, our own subnet. Same naming as errors. */
  warnings: { peer?: string; subnet: string; warning: string }[];
}

export interface PrepareResult {
  /** The lease's BackendType ("auto" publishes "vxlan"). */
  backendType: string;
  /** The lease's BackendData, in the backend's own format (vxlan: {VNI, VtepMAC}); undefined for host-gw. */
  backendData: unknown;
  /** The MTU pods get (FLANNEL_MTU). */
  mtu: number;
  /** Kernel changes made (0 when an existing device was adopted as it was). */
  changes: number;
}

export interface Backend {
  readonly type: BackendType;
  /**
   * Creates or adopts the backend's device before the lease exists, and says what to
   * publish in the lease (BackendData) and the MTU pods get (FLANNEL_MTU).
   * `previousData` is this node's BackendData from its previous lease, if any, so that the
   * VTEP MAC survives a restart.
   */
  prepare(previousData: unknown): PrepareResult;
  /** Binds the device to this node's lease subnet (vxlan: the .0/32 address). Returns the number of kernel changes. */
  attach(subnet: string): number;
  /**
   * Makes the kernel serve exactly these peers (read actual, diff, apply the difference) and
   * reports per peer. The pass yields to the event loop between slices of at most 256 netlink
   * requests (or peers planned), so CNI requests, status and timers are served while thousands of
   * peers are programmed. Safe to call at any time, also while a pass runs: passes never overlap
   * on one backend; a call made during a pass waits for ONE more pass, which runs with the peers
   * of the newest such call, and every call made meanwhile resolves with that pass's report (its
   * peers were applied, or superseded by newer ones). Rejects when the pass itself fails (a dump
   * refused, the socket broken); a request the kernel refuses is an entry of `errors` instead.
   */
  reconcile(peers: readonly Peer[]): Promise<ReconcileReport>;
  /**
   * Removes everything the backend created (explicit uninstall only, never on restart), after
   * any pass running or queued; a reconcile called later runs after it.
   */
  teardown(): Promise<void>;
}

/** What createBackend hands a backend besides its own config. */
export interface BackendDeps {
  /** The cluster Network (flannel's "Network"): no peer subnet outside it is ever routed. */
  network: string;
  log?: Logger;
}

/**
 * One entry of the registry (index.ts): a backend's whole surface, kept in its own folder. It
 * parses its part of flannel's "Backend" JSON (Type included, unknown keys as warnings, what it
 * cannot do as an error), builds the Backend, and removes its devices without a running agent.
 */
export interface BackendModule<C> {
  parseConfig(raw: Readonly<Record<string, unknown>>): ConfigOrError<C>;
  create(nl: Rtnetlink, node: LocalNode, config: C, deps: BackendDeps): Backend;
  /** Deletes every device this backend makes (any config) but those in keep, returning their names; routes are the caller's. */
  removeDevices(nl: Rtnetlink, log: Logger, keep?: ReadonlySet<string>): string[];
  /** The device names this config uses (kept by removeUnusedBackendDevices). */
  devices(config: C): string[];
}
