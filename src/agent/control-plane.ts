// The seam between the node runtime and a control plane: where this node's pod ranges come
// from, who the peers are, and what the cluster config says. etcd mode implements it with
// flannel's leases (src/modes/etcd); a Kubernetes-API store and a storeless mesh implement it
// their own way. The runtime knows nothing of keys, TTLs, nodes or gossip: it asks for ranges,
// hears about peers and config, and programs the node.
//
// Contract (src/agent/control-plane-contract.ts runs it against every implementation):
// - open() waits for the store and the config, retrying, and reports each wait via onPhase;
//   it rejects only on stop() or on a config that can never work (WEFT_INVALID_CONFIG).
// - acquire() returns ranges inside config.network; the same announcement after a restart
//   gets the same ranges back while they are free.
// - start() resolves once the first peer snapshot was delivered. From then on: onPeers with
//   the whole valid peer set (never this node) plus what was rejected and why (the mode logs
//   each refusal once; the runtime shows the current set in the status); onRanges(null)
//   when the ranges are lost, and onRanges(ranges) when they are regained, moved or renewed;
//   onConfig when the cluster config changes.
// - No callback is called after stop() resolves.

import type { ModeMetric } from './metrics.ts';

/** The cluster config, as far as the runtime needs it. */
export interface ClusterConfig {
  /** The cluster's IPv4 pod network, canonical ("10.16.0.0/16"). */
  network: string;
  /** The backend section as written (flannel's Backend object: {Type, ...}); the backend registry parses it. */
  backend: Readonly<Record<string, unknown>>;
  /** Prefer nftables for the masquerade/forward rules. */
  nftables: boolean;
  /** What cannot change on a running node (the Network, the range size...), as one comparable string. */
  restartKey: string;
  warnings: readonly string[];
}

/** What this node tells its peers: where to send, and the backend's own data (a VTEP MAC...). */
export interface Announcement {
  publicIp: string;
  backendType: string;
  backendData: unknown;
}

export interface NodeRanges {
  /** Pod CIDRs of this node; the first one is the node's subnet (subnet.env). */
  subnets: readonly string[];
  /** When the hold ends unless kept (ms since the epoch), or null when it never expires. */
  expiresAt: number | null;
}

/** Another node, as the data plane needs it; its backendData is untrusted and decoded by the backend. */
export interface ControlPlanePeer {
  id: string;
  subnets: readonly string[];
  publicIp: string;
  backendType: string;
  backendData: unknown;
}

export interface RejectedPeer {
  /** The peer's key or name, as the store has it. */
  key: string;
  reason: string;
}

export interface PeerSnapshot {
  peers: readonly ControlPlanePeer[];
  rejected: readonly RejectedPeer[];
}

export type ControlPlaneWait = 'waiting-for-store' | 'waiting-for-config' | 'acquiring-lease';

export interface ControlPlaneEvents {
  onPhase(phase: ControlPlaneWait, reason: string): void;
  onPeers(snapshot: PeerSnapshot): void;
  /** null: the ranges were lost (re-acquiring); otherwise the ranges held now, and why they changed. */
  onRanges(ranges: NodeRanges | null, why: string): void;
  onConfig(config: ClusterConfig): void;
  /** Store trouble that does not (yet) cost the node anything: for status and the log. */
  onProblem(key: string, message: string): void;
  /** Store trouble is over. */
  onRecovered(key: string): void;
}

export interface ControlPlaneStatus {
  kind: string;
  endpoints: string[];
  prefix: string;
  /** The mode's own report (mesh: its weave-style status), rendered by the CLI. */
  details?: unknown;
  /** One line on where this node's ranges come from (kube: "subnet from claim weft/subnet-…"), for the text status. */
  summary?: string;
}

/**
 * Pod address blocks a mode hands out as they are needed (mesh), instead of one subnet for the
 * node's life: the CNI server allocates from them (src/ipam/block-ipam.ts).
 */
export interface PodBlockSource {
  /** CIDRs this node owns and may allocate pod addresses from, in preference order. */
  blocks(): readonly string[];
  /** The block holds pods from now on: it must never be given away. */
  activate(block: string): void;
  active(): readonly string[];
  /** Asks for more blocks; resolves when blocks() grew, rejects (WEFT_IPAM_EXHAUSTED) with why not. */
  grow(): Promise<void>;
}

export interface ControlPlane {
  readonly mode: string;
  open(events: ControlPlaneEvents): Promise<ClusterConfig>;
  /** What this node announced last time (to keep, for example, a VTEP MAC across restarts), if known. */
  previousBackendData(publicIp: string): Promise<unknown>;
  acquire(announcement: Announcement): Promise<NodeRanges>;
  /** Publishes a changed announcement (a live backend change) for the ranges already held. */
  announce(announcement: Announcement): Promise<void>;
  start(): Promise<void>;
  status(): ControlPlaneStatus;
  stop(): Promise<void>;
  /** Set by a mode whose pod addresses come in blocks; absent: host-local over the node's subnet. */
  readonly podBlocks?: PodBlockSource;
  /** The mode's own metrics, served with the agent's at /metrics. */
  readonly metrics?: readonly ModeMetric[];
  /** Given how many pod addresses this node uses (the CNI server's count), for the mode's status. */
  observePodUsage?(read: () => { used: number; free: number } | undefined): void;
  /** Operator commands (`weft rmpeer`) the status socket passes on: name, JSON body → JSON answer. */
  command?(name: string, body: unknown): Promise<unknown>;
}
