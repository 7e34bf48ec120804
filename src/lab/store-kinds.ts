// The lab's store choices, as plain constants (the CLI needs them for --help without loading
// the rest of the lab).

/** Where nodes get their pod subnets: planned by the lab (`none`), or leased from etcd by a `weft agent` per node. */
export type StoreKind = 'none' | 'etcd';
export const STORE_KINDS: readonly StoreKind[] = ['none', 'etcd'];

/** The etcd API the lab writes the network config with, and its agents use. */
export type EtcdApi = 'v2' | 'v3';
export const ETCD_APIS: readonly EtcdApi[] = ['v2', 'v3'];

/** The network config's Backend.Type. */
export type LabBackend = 'vxlan' | 'host-gw' | 'auto';
export const LAB_BACKENDS: readonly LabBackend[] = ['vxlan', 'host-gw', 'auto'];
