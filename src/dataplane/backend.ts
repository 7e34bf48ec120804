// The seam between the agent and a data plane. A backend turns "these are the other nodes'
// leases" into kernel state (routes, neighbours, FDB entries), and knows nothing of etcd: the
// agent hands it plain peers. Every method is a reconcile: it reads the kernel's actual
// state, compares with the desired state, and changes only the difference, so calling it on
// every event and on a timer is safe and a restart never flushes working state.

/**
 * The configured data plane. "auto" is weft's own: a vxlan device (so every peer is reachable)
 * plus plain routes to the peers on the same underlay subnet (vxlan with DirectRouting always
 * on). It publishes BackendType "vxlan", so flanneld vxlan peers interoperate with it.
 */
export type BackendType = 'vxlan' | 'host-gw' | 'auto';

/** What a lease says (flannel's BackendType); "auto" publishes "vxlan". */
export type LeaseBackendType = 'vxlan' | 'host-gw';

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

/** Another node's lease, reduced to what a data plane needs. */
export interface Peer {
  /** The peer's pod subnet, e.g. "10.16.85.0/24". */
  subnet: string;
  /** Where its traffic goes: the peer's PublicIP. */
  publicIp: string;
  /** The backend the peer announced (flannel's BackendType). */
  backendType: string;
  /** vxlan peers: the peer's VTEP MAC (BackendData.VtepMAC). */
  vtepMac?: string;
  /** vxlan peers: the peer's VNI (BackendData.VNI). */
  vni?: number;
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
  /** Every peer passed in, by subnet (as given). */
  paths: Map<string, PeerPath>;
  /**
   * Peers that could not be programmed, with why. `subnet` is the peer's subnet; for a stale
   * entry that no peer owns any more, it names the entry instead ("route 10.1.2.0/24").
   */
  errors: { subnet: string; error: string }[];
  /** Peers served anyway or skipped on purpose: another BackendType, another VNI, our own subnet. */
  warnings: { subnet: string; warning: string }[];
}

export interface PrepareResult {
  /** The lease's BackendType. */
  backendType: LeaseBackendType;
  /** The lease's BackendData (vxlan: {VNI, VtepMAC}); undefined for host-gw. */
  backendData: Record<string, unknown> | undefined;
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
  reconcile(peers: readonly Peer[]): ReconcileReport;
  /** Removes everything the backend created (explicit uninstall only, never on restart). */
  teardown(): void;
}
