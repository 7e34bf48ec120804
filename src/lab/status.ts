// `weft lab status`: what a lab consists of, from its state file, checked against what is
// actually there (namespaces present, daemons alive).
import { readdir } from 'node:fs/promises';
import type { AgentStatus } from '../agent/status.ts';
import { WeftError } from '../errors.ts';
import { agentStatus } from './agent.ts';
import { etcdHealthy } from './etcd.ts';
import { meshView, type MeshView } from './mesh.ts';
import { labNamesIn, validateLabName } from './names.ts';
import { listNetns } from './netns.ts';
import { LAB_STATE_ROOT, labDir, nodeFiles } from './paths.ts';
import { isAlive } from './processes.ts';
import { readState, type DaemonState, type LabPhase, type LabState } from './state.ts';
import { hasAgents, type StoreKind } from './store-kinds.ts';

export interface LabStatus {
  name: string;
  dir: string;
  phase: LabPhase;
  /** True when phase is "creating" but the `lab up` that was building it is gone (crashed or killed). */
  interrupted: boolean;
  error?: string;
  createdAt: string;
  cni: string;
  plugin: string;
  daemons: boolean;
  store: StoreKind;
  clusterNetwork: string;
  /** How the lab's pods meet their nodes, and whether the agents run the fast path (lab up --pod-link, --fast-path). */
  podLink: 'bridge' | 'routed';
  fastPath: 'none' | 'ebpf';
  /** store mesh: how the agents share the range, and the partition in force (the nodes cut off), if any. */
  mesh: { range: string; blockPrefix: number; init: string | null; port: number; password: boolean; partition: string[] | null } | null;
  /** store etcd: the member, how the config was written, and whether it answers now. */
  etcd: {
    /** apiserver: the kube store's stand-in API server, on the same host. */
    name: 'etcd' | 'apiserver';
    ns: string;
    address: string;
    endpoint: string;
    api: string;
    backend: string;
    networkConfig: string;
    pid: number | null;
    alive: boolean;
    healthy: boolean;
  } | null;
  zones: { name: string; ns: string; subnet: string; gateway: string }[];
  router: { name: 'router'; ns: string; addresses: string[] };
  outside: { name: 'outside'; ns: string; address: string };
  nodes: {
    name: string;
    ns: string;
    zone: string;
    address: string;
    /** Planned (store none), or the agent's lease (store etcd: live, else as first reported; null before any). */
    podSubnet: string | null;
    dir: string;
    /** Taken out with `lab node remove` (its namespaces are gone). */
    removed: boolean;
    daemon: { kind: 'cni-server' | 'agent'; pid: number; ready: boolean; alive: boolean } | null;
    /** store etcd or mesh: what the node's agent reports now (`weft status --socket <node dir>/agent.sock`). */
    agent: AgentView | null;
    pods: { name: string; ns: string; containerId: string; addresses: string[] }[];
  }[];
  /** Namespaces the state file records that no longer exist (a damaged lab). */
  missingNamespaces: string[];
}

export interface AgentView {
  /** False when the status socket does not answer (agent dead or still starting); the rest is then empty. */
  answering: boolean;
  ready: boolean;
  lease: string | null;
  leaseExpiresAt: string | null;
  backend: string | null;
  publicIp: string | null;
  /** Other nodes' leases the agent knows, and how many it reaches by each path (direct, vxlan, unreachable). */
  peers: number;
  peerPaths: Record<string, number>;
  lastSync: string | null;
  /** The agent's most recent errors (at most 3). */
  errors: string[];
  /** store mesh: its peer name, ring, IPAM status and connections (null for other agents). */
  mesh: MeshView | null;
}

function agentView(s: AgentStatus | undefined): AgentView {
  if (s === undefined) return { answering: false, ready: false, lease: null, leaseExpiresAt: null, backend: null, publicIp: null, peers: 0, peerPaths: {}, lastSync: null, errors: [], mesh: null };
  const peerPaths: Record<string, number> = {};
  for (const p of s.peers) peerPaths[p.path] = (peerPaths[p.path] ?? 0) + 1;
  return {
    answering: true,
    ready: s.ready,
    lease: s.lease?.subnet ?? null,
    leaseExpiresAt: s.lease?.expiresAt ?? null,
    backend: s.backend,
    publicIp: s.publicIp,
    peers: s.peers.length,
    peerPaths,
    lastSync: s.lastSync,
    errors: s.errors.slice(-3).map((e) => `${e.at} ${e.message}`),
    mesh: meshView(s) ?? null,
  };
}

/** Names of labs on this machine: those with a state directory or namespaces. */
export async function listLabs(stateRoot: string = LAB_STATE_ROOT): Promise<string[]> {
  const dirs = await readdir(stateRoot).catch(() => [] as string[]);
  return [...new Set([...dirs.filter((d) => /^[a-z0-9]{1,24}$/.test(d)), ...labNamesIn(await listNetns())])].sort();
}

/** The lab's state; a WeftError that says what to do when there is no such lab. */
export async function loadLab(name: string, stateRoot: string = LAB_STATE_ROOT): Promise<LabState> {
  validateLabName(name);
  const state = await readState(labDir(name, stateRoot));
  if (state === undefined) {
    const labs = await listLabs(stateRoot);
    const known = labs.length === 0 ? 'there are no labs' : `existing labs: ${labs.join(', ')}`;
    throw new WeftError('WEFT_LAB', `no lab named ${name} (${known}); create it with \`weft lab up --name ${name}\``);
  }
  return state;
}

export async function labStatus(name: string, stateRoot: string = LAB_STATE_ROOT): Promise<LabStatus> {
  const s = await loadLab(name, stateRoot);
  const t = s.topology;
  const present = new Set(await listNetns());
  const store = s.store ?? 'none';
  const removed = new Set(s.removedNodes ?? []);
  const nodes = await Promise.all(
    t.nodes.map(async (n) => {
      const d = s.daemonPids[n.name];
      const agent = hasAgents(store) && d !== undefined ? agentView(await agentStatus(nodeFiles(n.dir))) : null;
      return {
        name: n.name,
        ns: n.ns,
        zone: n.zone,
        address: n.address,
        podSubnet: agent?.lease ?? n.podSubnet ?? s.leases?.[n.name]?.subnet ?? null,
        dir: n.dir,
        removed: removed.has(n.name),
        daemon: d === undefined ? null : { kind: daemonKind(d), pid: d.pid, ready: d.ready, alive: await isAlive(d.pid) },
        agent,
        pods: n.pods.flatMap((p) => {
          const ps = s.pods[p.name];
          return ps === undefined ? [] : [{ name: p.name, ns: p.ns, containerId: ps.containerId, addresses: ps.addresses }];
        }),
      };
    }),
  );
  return {
    name: s.name,
    dir: labDir(name, stateRoot),
    phase: s.phase,
    interrupted: s.phase === 'creating' && !(await isAlive(s.upPid)),
    ...(s.error === undefined ? {} : { error: s.error }),
    createdAt: s.createdAt,
    cni: s.cni,
    plugin: s.plugin,
    daemons: s.daemons,
    store,
    clusterNetwork: t.clusterNetwork,
    podLink: s.dataPath?.podLink ?? 'bridge',
    fastPath: s.dataPath?.fastPath ?? 'none',
    mesh: s.mesh === undefined
      ? null
      : { range: s.mesh.range, blockPrefix: s.mesh.blockPrefix, init: s.mesh.init, port: s.mesh.port, password: s.mesh.passwordFile !== null, partition: s.partition ?? null },
    etcd: await etcdView(s),
    zones: t.zones.map((z) => ({ name: `az-${z.zone}`, ns: z.ns, subnet: z.subnet, gateway: z.gateway })),
    router: { name: 'router', ns: t.router.ns, addresses: [...t.zones.map((z) => z.gateway), t.router.outsideAddress] },
    outside: { name: 'outside', ns: t.outside.ns, address: t.outside.address },
    nodes,
    missingNamespaces: s.namespaces.filter((ns) => !present.has(ns)),
  };
}

function daemonKind(d: DaemonState): 'cni-server' | 'agent' {
  return d.kind === 'agent' ? 'agent' : 'cni-server';
}

async function etcdView(s: LabState): Promise<LabStatus['etcd']> {
  const plan = s.topology.etcd;
  if (plan === undefined || plan === null) return null;
  const d = s.daemonPids.etcd;
  const alive = d === undefined ? false : await isAlive(d.pid);
  const kube = s.store === 'kube';
  return {
    name: kube ? 'apiserver' : 'etcd',
    ns: plan.ns,
    address: plan.address,
    endpoint: plan.clientUrl,
    api: s.etcd?.api ?? '',
    backend: s.etcd?.backend ?? s.kube?.backend ?? '',
    networkConfig: s.etcd?.networkConfig ?? s.kube?.networkConfig ?? '',
    pid: d?.pid ?? null,
    alive,
    // The agents' own status says whether they reach the API server; etcd gets asked directly.
    healthy: alive && (kube || (await etcdHealthy(plan).catch(() => false))),
  };
}
