// The lab's store choices, as plain constants (the CLI needs them for --help without loading
// the rest of the lab).

/**
 * Where nodes get their pod subnets: planned by the lab (`none`), leased from etcd by a
 * `weft agent` per node (`etcd`), claimed through a Kubernetes API server (`kube`: the lab runs
 * weft's stand-in for one), or blocks of a range the agents share among themselves over their
 * mesh, with no store at all (`mesh`).
 */
export type StoreKind = 'none' | 'etcd' | 'kube' | 'mesh';
export const STORE_KINDS: readonly StoreKind[] = ['none', 'etcd', 'kube', 'mesh'];

/** Stores whose nodes each run a `weft agent` (which leases, routes and masquerades). */
export const hasAgents = (store: StoreKind | undefined): boolean => store === 'etcd' || store === 'kube' || store === 'mesh';

/** Stores with a control-plane host on zone a (etcd's member, or the kube store's API server). */
export const hasControlHost = (store: StoreKind | undefined): boolean => store === 'etcd' || store === 'kube';

/** store mesh: the agents' defaults (`weft agent --store mesh`), as Weave's. */
export const DEFAULT_IPALLOC_RANGE = '10.32.0.0/12';
export const DEFAULT_IPALLOC_BLOCK = 26;
/** The mesh's control port (TCP) and its VXLAN port (UDP). */
export const MESH_PORT = 6783;
export const MESH_VXLAN_PORT = 6784;

/** store kube: the port of the lab's API server (the stand-in), and where weft's objects live. */
export const KUBE_API_PORT = 6443;
export const KUBE_NAMESPACE = 'weft';
export const KUBE_CONFIG_MAP = 'weft-cfg';

/** The etcd API the lab writes the network config with, and its agents use. */
export type EtcdApi = 'v2' | 'v3';
export const ETCD_APIS: readonly EtcdApi[] = ['v2', 'v3'];

/** The network config's Backend.Type. */
export type LabBackend = 'vxlan' | 'host-gw' | 'auto';
export const LAB_BACKENDS: readonly LabBackend[] = ['vxlan', 'host-gw', 'auto'];
