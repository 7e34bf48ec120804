// The lab's programmatic API, for the CLI, tests and benchmarks.
export { labUp, type LabUpOptions } from './up.ts';
export { labDown, type LabDownOptions, type LabDownReport } from './down.ts';
export { labCheck, type LabCheckOptions, type CheckReport, type ProbeResult } from './check.ts';
export { labStatus, listLabs, loadLab, type LabStatus, type AgentView } from './status.ts';
export { labExec, resolveMemberNs } from './exec.ts';
export { PROBE_KINDS, SAME_NODE_KINDS, CROSS_NODE_KINDS, DEFAULT_KINDS, defaultKinds, isProbeKind, type ProbeKind } from './probes.ts';
export { STORE_KINDS, ETCD_APIS, LAB_BACKENDS, type StoreKind, type EtcdApi, type LabBackend } from './store-kinds.ts';
export {
  labNodeStart, labNodeStop, labNodeRestart, labNodeRemove, labAddPods, labNodeWeft,
  type NodeStartOptions, type NodeStartReport, type NodeStopOptions, type PodAddResult,
} from './nodes.ts';
export { labPartition, labHeal } from './partition.ts';
export { meshView, type MeshView } from './mesh.ts';
export { renderCheckMatrix, renderStatus } from './render.ts';
export { createNetns, deleteNetns, execInNetns, execInNetnsOk, execInNetnsInteractive, listNetns, netnsPids, netnsPath } from './netns.ts';
export { cniAdd, cniDel, type CniInvocation, type CniAddResult } from './cni-exec.ts';
export { CNI_KINDS, type CniKind } from './cni-config.ts';
export { DEFAULT_LAB_NAME, validateLabName } from './names.ts';
export { LAB_STATE_ROOT, labDir, nodeFiles } from './paths.ts';
export type { LabState, NodeLease, MeshStoreState } from './state.ts';
export type { Topology, NodePlan, PodPlan } from './topology.ts';
