// `weft lab up`: build a lab cluster from namespaces, recording every step in the state
// file as it happens (so `down` can undo a lab that crashed or was killed halfway).
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { errnoCode, WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { weftLauncher } from './launcher.ts';
import { requireRoot } from './root.ts';
import { agentArgv, agentEnv, agentStatus, DEFAULT_LEASE_TTL, kubeAgentArgv, leaseOf, startNodeAgent } from './agent.ts';
import { apiServerFiles, kubeAdmin, startLabApiServer } from './kube.ts';
import { calcConflist, CNI_KINDS, nodeSubnetEnv, weftConflist, type CniKind, type Conflist } from './cni-config.ts';
import { writeSubnetEnv } from '../subnet/subnet-env.ts';
import { parseDuration } from '../agent/options.ts';
import { mapLimit } from './concurrency.ts';
import { ETCD_BIN, ETCD_PREFIX, ETCDCTL_BIN, networkConfig, startLabEtcd, writeNetworkConfig } from './etcd.ts';
import { DEFAULT_LAB_NAME, labNamesIn, validateLabName } from './names.ts';
import { listNetns } from './netns.ts';
import { meshAgentEnv, validateMeshOptions, writePasswordFile } from './mesh.ts';
import { meshNodeArgv } from './nodes.ts';
import { dataPathArgs, mountLabBpffs, resolveDataPath, type LabDataPath, type LabFastPath, type LabPodLink } from './data-path.ts';
import { BRIDGE_PLUGIN, LAB_STATE_ROOT, labDir, labPasswordFile, nodeFiles, WEFT_BIN, WEFT_CNI_PLUGIN, type NodeFiles } from './paths.ts';
import { attachPod } from './pods.ts';
import { startDaemon } from './processes.ts';
import { StateWriter, STATE_VERSION, type LabState, type NodeLease } from './state.ts';
import {
  ETCD_APIS, hasAgents, hasControlHost, KUBE_CONFIG_MAP, KUBE_NAMESPACE, LAB_BACKENDS, MESH_PORT, STORE_KINDS, type EtcdApi, type LabBackend, type StoreKind,
} from './store-kinds.ts';
import { calcTopology, plannedSubnet, validateCounts, validateZones, ZONES, type EtcdPlan, type NodePlan } from './topology.ts';
import { setupEtcdHost, setupNodeUplink, setupOutside, setupRouter, setupZones } from './underlay.ts';

export interface LabUpOptions {
  name?: string;
  nodes?: number;
  podsPerNode?: number;
  /** Which CNI plugin attaches pods: weft (build/weft-cni) or Debian's reference bridge + host-local. */
  cni?: CniKind;
  /**
   * Where pod subnets come from: `none` (default) plans them and writes each node's
   * subnet.env; `etcd` starts an etcd member and a `weft agent` per node, which lease them;
   * `mesh` starts a `weft agent --store mesh` per node, which share blocks of a range over their mesh.
   */
  store?: StoreKind;
  /** store etcd: the API the config is written with and the agents use (default v3). */
  etcdApi?: EtcdApi;
  /** store etcd: the network config's Backend.Type (default vxlan). */
  backend?: LabBackend;
  /** store etcd: the agents' --subnet-lease-ttl (default 30s). */
  leaseTtl?: string;
  /** store mesh: the agents' --ipalloc-range (default 10.32.0.0/12): the cluster network. */
  ipallocRange?: string;
  /** store mesh: --ipalloc-block, the prefix length of the blocks the range is shared in (default 26). */
  ipallocBlock?: number;
  /** store mesh: --ipalloc-init (consensus[=N], observer, seed=<names>); default: the agents' own (consensus over --peers). */
  ipallocInit?: string;
  /** store mesh: a password every agent gets (in a 0600 file in the lab directory, as --password-file). */
  password?: string;
  /**
   * store mesh: start the agents of the first `start` nodes only (default all). The others are
   * built (namespace, uplink, files) with neither agent nor pods; `lab node start` starts them.
   */
  start?: number;
  /** Zones the nodes alternate over: 2, or 1 (all in zone a). Default 2, but 1 for host-gw, which needs one L2 segment. */
  zones?: number;
  /** How pods meet their nodes: bridge (default) or routed; default from WEFT_POD_LINK (src/lab/data-path.ts). */
  podLink?: LabPodLink;
  /** The agents' --fast-path: none (default) or ebpf (needs podLink routed); default from WEFT_FAST_PATH. */
  fastPath?: LabFastPath;
  /** Start one daemon per node, inside its namespace (default: only with cni weft; always with store etcd: the agent). */
  daemons?: boolean;
  /** store none: the per-node daemon's command (default `bin/weft cni-server --ready-file <node dir>/cni-server.ready`); it must create the ready file. */
  daemonCommand?: (node: NodePlan, files: NodeFiles) => string[];
  /** Override the plugin executable (default build/weft-cni or /usr/lib/cni/bridge). */
  plugin?: string;
  stateRoot?: string;
  daemonReadyTimeoutMs?: number;
  /** store etcd: how long `up` waits for every agent to see all the other nodes (default 30 s; then it warns and goes on). */
  peersTimeoutMs?: number;
  /** Nodes set up at once. */
  parallelism?: number;
  logger?: Logger;
  /** One human-readable line per step done. */
  onProgress?: (line: string) => void;
}

interface Resolved {
  name: string;
  nodes: number;
  podsPerNode: number;
  cni: CniKind;
  daemons: boolean;
  plugin: string;
  dir: string;
  store: StoreKind;
  etcdApi: EtcdApi;
  backend: LabBackend;
  leaseTtl: string;
  zones: number;
  mesh: { range: string; blockPrefix: number; init: string | null; password: string | null; start: number } | null;
  dataPath: LabDataPath;
}

async function resolve(o: LabUpOptions): Promise<Resolved> {
  const name = validateLabName(o.name ?? DEFAULT_LAB_NAME);
  const nodes = o.nodes ?? 2;
  const podsPerNode = o.podsPerNode ?? 2;
  validateCounts(nodes, podsPerNode);
  const cni = o.cni ?? 'weft';
  if (!CNI_KINDS.includes(cni)) throw new WeftError('WEFT_LAB', `--cni must be one of ${CNI_KINDS.join(', ')}, got ${String(cni)}`);
  const store = o.store ?? 'none';
  if (!STORE_KINDS.includes(store)) throw new WeftError('WEFT_LAB', `--store must be one of ${STORE_KINDS.join(', ')}, got ${String(store)}`);
  if (store !== 'etcd' && (o.etcdApi !== undefined || o.leaseTtl !== undefined || (store !== 'kube' && o.backend !== undefined))) {
    throw new WeftError('WEFT_LAB', store === 'mesh'
      ? '--etcd-api, --backend and --lease-ttl configure etcd mode; mesh agents have no etcd and always carry pods over VXLAN on UDP 6784'
      : store === 'kube'
        ? '--etcd-api and --lease-ttl configure etcd mode; kube-store claims do not expire (--backend applies)'
        : '--etcd-api, --backend and --lease-ttl configure the agents, which run only with --store etcd or kube');
  }
  const meshOnly = [o.ipallocRange, o.ipallocBlock, o.ipallocInit, o.password, o.start].some((v) => v !== undefined);
  if (store !== 'mesh' && meshOnly) throw new WeftError('WEFT_LAB', '--ipalloc-range, --ipalloc-block, --ipalloc-init, --password and --start configure mesh agents: add --store mesh');
  const mesh = store === 'mesh' ? resolveMesh(o, nodes) : null;
  if (store === 'mesh' && cni !== 'weft') {
    throw new WeftError('WEFT_LAB', '--store mesh needs --cni weft: pod addresses come from the blocks the node\'s agent owns, which only its CNI server hands out');
  }
  const etcdApi = o.etcdApi ?? 'v3';
  if (!ETCD_APIS.includes(etcdApi)) throw new WeftError('WEFT_LAB', `--etcd-api must be one of ${ETCD_APIS.join(', ')}, got ${String(etcdApi)}`);
  const backend = o.backend ?? 'vxlan';
  if (!LAB_BACKENDS.includes(backend)) throw new WeftError('WEFT_LAB', `--backend must be one of ${LAB_BACKENDS.join(', ')}, got ${String(backend)}`);
  const leaseTtl = o.leaseTtl ?? DEFAULT_LEASE_TTL;
  if (!/^\d+(s|m|h)$/.test(leaseTtl) || parseDuration('lease-ttl', leaseTtl, 1) <= 10) {
    throw new WeftError('WEFT_LAB', `--lease-ttl must be a duration longer than the agents' 10s renew margin, e.g. 30s or 5m; got ${leaseTtl}`);
  }
  const zones = o.zones ?? (hasControlHost(store) && backend === 'host-gw' ? 1 : ZONES.length);
  validateZones(zones);
  if (hasAgents(store) && o.daemons === false) {
    throw new WeftError('WEFT_LAB', `--no-daemon cannot go with --store ${store}: each node's \`weft agent\` is what leases its subnet (and serves its CNI requests)`);
  }
  const daemons = hasAgents(store) || (o.daemons ?? cni === 'weft');
  const plugin = o.plugin ?? (cni === 'weft' ? WEFT_CNI_PLUGIN : BRIDGE_PLUGIN);
  const hint = cni === 'weft' ? 'build it first (npm run build:native), or use --cni bridge' : 'install containernetworking-plugins';
  await mustBeExecutable(plugin, `the ${cni} CNI plugin ${plugin} is missing or not executable; ${hint}`);
  if (daemons && (hasAgents(store) || o.daemonCommand === undefined)) await mustBeExecutable(WEFT_BIN, `${WEFT_BIN} is missing; run from a complete weft checkout${store === 'none' ? ', or pass --no-daemon' : ''}`);
  if (store === 'etcd') {
    for (const bin of [ETCD_BIN, ETCDCTL_BIN]) await mustBeExecutable(bin, `${bin} is missing; --store etcd needs etcd 3.4+ (Debian: apt-get install etcd-server etcd-client)`);
  }
  const dir = labDir(name, o.stateRoot ?? LAB_STATE_ROOT);
  const dataPath = resolveDataPath(o, dir, hasAgents(store), process.env, cni === 'weft');
  return { name, nodes, podsPerNode, cni, daemons, plugin, dir, store, etcdApi, backend, leaseTtl, zones, mesh, dataPath };
}

function resolveMesh(o: LabUpOptions, nodes: number): NonNullable<Resolved['mesh']> {
  const { range, blockPrefix, init } = validateMeshOptions({
    ...(o.ipallocRange === undefined ? {} : { range: o.ipallocRange }),
    ...(o.ipallocBlock === undefined ? {} : { blockPrefix: o.ipallocBlock }),
    ...(o.ipallocInit === undefined ? {} : { init: o.ipallocInit }),
    ...(o.password === undefined ? {} : { password: o.password }),
  });
  const start = o.start ?? nodes;
  if (!Number.isInteger(start) || start < 0 || start > nodes) throw new WeftError('WEFT_LAB', `--start must be a whole number from 0 to --nodes (${nodes}), got ${start}`);
  return { range, blockPrefix, init, password: o.password ?? null, start };
}

/** Claims the lab's name: fails when any of its namespaces or its state directory exists. */
async function claim(r: Resolved, stateRoot: string): Promise<void> {
  if (labNamesIn(await listNetns()).includes(r.name)) {
    throw new WeftError('WEFT_LAB', `lab ${r.name} already exists (it has namespaces weft-${r.name}-*); remove it with \`weft lab down --name ${r.name}\` or pick another --name`);
  }
  await mkdir(stateRoot, { recursive: true, mode: 0o755 });
  try {
    await mkdir(r.dir, { mode: 0o755 }); // not recursive: EEXIST means someone else holds the name
  } catch (e) {
    if (errnoCode(e) !== 'EEXIST') throw new WeftError('WEFT_LAB', `cannot create ${r.dir}: ${String(e)}`, { cause: e });
    throw new WeftError('WEFT_LAB', `lab ${r.name} already exists (${r.dir}); remove it with \`weft lab down --name ${r.name}\` or pick another --name`);
  }
}

export async function labUp(options: LabUpOptions = {}): Promise<LabState> {
  const log = options.logger ?? silentLogger;
  const progress = options.onProgress ?? (() => {});
  requireRoot('weft lab up', 'it creates network namespaces, veth pairs and bridges');
  const r = await resolve(options);
  const weft = weftLauncher();
  if (hasAgents(r.store) && weft.warning !== undefined) progress(`warning: ${weft.warning}`);
  await claim(r, options.stateRoot ?? LAB_STATE_ROOT);
  await mountLabBpffs(r.dataPath);

  const topology = calcTopology({
    name: r.name, nodes: r.nodes, podsPerNode: r.podsPerNode, labDir: r.dir, zones: r.zones, store: r.store,
    ...(r.mesh === null ? {} : { clusterNetwork: r.mesh.range }),
  });
  const etcd = topology.etcd ?? null;
  const state: LabState = {
    version: STATE_VERSION,
    name: r.name,
    createdAt: new Date().toISOString(),
    phase: 'creating',
    upPid: process.pid,
    cni: r.cni,
    plugin: r.plugin,
    daemons: r.daemons,
    store: r.store,
    ...(r.store === 'etcd'
      ? { etcd: { api: r.etcdApi, backend: r.backend, prefix: ETCD_PREFIX, networkConfig: networkConfig(topology.clusterNetwork, r.backend), leaseTtl: r.leaseTtl }, leases: {} }
      : {}),
    ...(r.store === 'kube' && etcd !== null
      ? { kube: { backend: r.backend, networkConfig: networkConfig(topology.clusterNetwork, r.backend), kubeconfig: apiServerFiles(etcd.dir).kubeconfig }, leases: {} }
      : {}),
    ...(r.mesh !== null
      ? {
          mesh: { range: r.mesh.range, blockPrefix: r.mesh.blockPrefix, init: r.mesh.init, port: MESH_PORT, passwordFile: r.mesh.password === null ? null : labPasswordFile(r.dir) },
          leases: {},
        }
      : {}),
    dataPath: r.dataPath,
    topology,
    namespaces: [],
    daemonPids: {},
    pods: {},
  };
  const writer = new StateWriter(r.dir);
  const save = (): Promise<void> => writer.save(state);
  const onNamespace = async (ns: string): Promise<void> => {
    state.namespaces.push(ns);
    log.debug({ lab: r.name, ns }, 'namespace created');
    await save();
  };
  await save();

  try {
    await setupZones(topology, onNamespace);
    await setupRouter(topology, onNamespace);
    await setupOutside(topology, onNamespace);
    progress(`underlay: zones ${topology.zones.map((z) => `${z.zone} ${z.subnet}`).join(', ')}, router, outside ${topology.outside.address}`);
    if (hasControlHost(r.store) && r.backend === 'host-gw' && r.zones > 1 && r.nodes > 1) {
      progress('warning: host-gw routes to each peer node directly, so it needs all nodes on one L2 segment: nodes in different zones cannot reach each other\'s pods (`lab check` shows those pairs failing; --zones 1 puts every node in zone a)');
    }
    if (etcd !== null && r.store === 'kube') await setupApiServer(etcd);
    else if (etcd !== null) await setupEtcd(etcd);
    if (r.mesh !== null) {
      await setupMesh(r.mesh);
    } else {
      await mapLimit(topology.nodes, options.parallelism ?? 8, async (node) => {
        const conflist = await setupNode(node);
        await attachPods(node, conflist);
      });
    }
    if (hasControlHost(r.store)) await waitForPeers(topology.nodes);
    state.phase = 'ready';
    await save();
    log.info({ lab: r.name, nodes: r.nodes, pods: Object.keys(state.pods).length }, 'lab up');
    return state;
  } catch (e) {
    state.phase = 'failed';
    state.error = e instanceof Error ? e.message : String(e);
    await save().catch(() => {});
    const message = `lab ${r.name}: ${state.error}\nThe partial lab is left for inspection (files in ${r.dir}); remove it with \`weft lab down --name ${r.name}\``;
    throw new WeftError('WEFT_LAB', message, { cause: e });
  }

  async function attachPods(node: NodePlan, conflist: Conflist): Promise<void> {
    for (const pod of node.pods) {
      state.pods[pod.name] = await attachPod({ node, pod, plugin: r.plugin, conflist, onNamespace });
      await save();
      progress(`pod ${pod.name}: ${state.pods[pod.name]?.addresses.join(' ')}`);
    }
  }

  /**
   * store mesh: every node's uplink and files first, then the agents of the first `start` nodes
   * all at once (consensus on the range needs a quorum of them running), then their pods.
   */
  async function setupMesh(m: NonNullable<Resolved['mesh']>): Promise<void> {
    const plan = state.mesh;
    if (plan === undefined) throw new WeftError('WEFT_INTERNAL', 'a mesh lab without its mesh state');
    if (m.password !== null && plan.passwordFile !== null) await writePasswordFile(plan.passwordFile, m.password);
    // The weft plugin's conflist names only the node's files, so it is written before any agent runs.
    const conflists = await mapLimit(topology.nodes, options.parallelism ?? 8, async (node) => {
      const files = nodeFiles(node.dir);
      await setupNodeUplink(topology, node, onNamespace);
      await mkdir(files.netD, { recursive: true });
      await mkdir(files.cniDataDir, { recursive: true });
      await mkdir(files.meshDir, { recursive: true, mode: 0o700 });
      const conflist = weftConflist(files);
      await writeFileAtomic(files.conflist, `${JSON.stringify(conflist, null, 2)}\n`);
      return conflist;
    });
    const started = topology.nodes.slice(0, m.start);
    await mapLimit(started, Math.max(1, started.length), async (node) => {
      const files = nodeFiles(node.dir);
      const argv = [...meshNodeArgv(state, node, weft.argv, 'lab'), ...dataPathArgs(state.dataPath)];
      const pid = await startNodeAgent({
        node, files, argv,
        env: meshAgentEnv(node.name),
        timeoutMs: options.daemonReadyTimeoutMs ?? 60_000,
        onStarted: async (p) => {
          state.daemonPids[node.name] = { pid: p, ready: false, kind: 'agent', argv };
          await save();
        },
      });
      const lease = await recordLease(node, files, pid, argv);
      progress(`node ${node.name}: ${node.address} (zone ${node.zone}), mesh agent ready: first block ${lease.subnet}`);
    });
    for (const node of topology.nodes.slice(m.start)) progress(`node ${node.name}: ${node.address} (zone ${node.zone}), agent not started (\`weft lab node start --name ${r.name} ${node.name}\`)`);
    await mapLimit(started, options.parallelism ?? 8, async (node, i) => attachPods(node, conflists[i] as Conflist));
    await waitForPeers(started);
  }

  async function recordLease(node: NodePlan, files: NodeFiles, pid: number, argv?: string[]): Promise<NodeLease> {
    const status = await agentStatus(files);
    const lease = status === undefined ? undefined : leaseOf(status);
    if (lease === undefined) throw new WeftError('WEFT_LAB', `the agent of ${node.name} reported ready without a lease; see ${files.agentLog}`);
    state.daemonPids[node.name] = { pid, ready: true, kind: 'agent', ...(argv === undefined ? {} : { argv }) };
    (state.leases ??= {})[node.name] = lease;
    await save();
    return lease;
  }

  async function writeConflist(files: NodeFiles, lease: NodeLease): Promise<Conflist> {
    const conflist = calcConflist(r.cni, { podSubnet: lease.subnet, podGateway: lease.gateway }, files);
    await writeFileAtomic(files.conflist, `${JSON.stringify(conflist, null, 2)}\n`);
    return conflist;
  }

  /** store etcd: the member's host, etcd itself, and the network config. */
  async function setupEtcd(plan: EtcdPlan): Promise<void> {
    await setupEtcdHost(topology, plan, onNamespace);
    await mkdir(plan.dir, { recursive: true, mode: 0o700 });
    const pid = await startLabEtcd(r.name, plan, async (started) => {
      state.daemonPids.etcd = { pid: started, ready: false, kind: 'etcd' };
      await save();
    });
    state.daemonPids.etcd = { pid, ready: true, kind: 'etcd' };
    await save();
    const config = networkConfig(topology.clusterNetwork, r.backend);
    await writeNetworkConfig(plan, r.etcdApi, ETCD_PREFIX, config);
    progress(`etcd ${plan.clientUrl} (pid ${pid}): ${ETCD_PREFIX}/config = ${config} (${r.etcdApi} API)`);
  }

  /** store kube: the API server on the control-plane host, the ConfigMap, and a Node per lab node (as kubelets register them). */
  async function setupApiServer(plan: EtcdPlan): Promise<void> {
    await setupEtcdHost(topology, plan, onNamespace);
    await mkdir(plan.dir, { recursive: true, mode: 0o700 });
    const pid = await startLabApiServer(plan, async (started) => {
      state.daemonPids.etcd = { pid: started, ready: false, kind: 'apiserver' };
      await save();
    });
    state.daemonPids.etcd = { pid, ready: true, kind: 'apiserver' };
    await save();
    const config = networkConfig(topology.clusterNetwork, r.backend);
    await kubeAdmin(plan, 'put-config', [KUBE_NAMESPACE, KUBE_CONFIG_MAP, config]);
    for (const node of topology.nodes) await kubeAdmin(plan, 'add-node', [node.name, node.address]);
    progress(`API server (weft's stand-in, not Kubernetes) ${plan.clientUrl} (pid ${pid}): ConfigMap ${KUBE_NAMESPACE}/${KUBE_CONFIG_MAP} net-conf.json = ${config}; ${topology.nodes.length} Nodes registered`);
  }

  /** The node's uplink, files and daemon (cni-server, or with store etcd its agent); resolves with the conflist written to its net.d. */
  async function setupNode(node: NodePlan): Promise<Conflist> {
    const files = nodeFiles(node.dir);
    await setupNodeUplink(topology, node, onNamespace);
    await mkdir(files.netD, { recursive: true });
    await mkdir(files.cniDataDir, { recursive: true });
    if (etcd !== null) {
      const lease = await startAgent(node, files, etcd);
      const conflist = await writeConflist(files, lease);
      progress(`node ${node.name}: ${node.address} (zone ${node.zone}), agent ready: lease ${lease.subnet}, backend ${lease.backend ?? '?'}`);
      return conflist;
    }
    const subnet = plannedSubnet(node);
    const conflist = calcConflist(r.cni, subnet, files);
    writeSubnetEnv(files.subnetEnv, { ...nodeSubnetEnv(subnet), ...(r.dataPath.podLink === 'bridge' ? {} : { podLink: r.dataPath.podLink }) });
    await writeFileAtomic(files.conflist, `${JSON.stringify(conflist, null, 2)}\n`);
    if (r.daemons) {
      await startDaemon({
        ns: node.ns,
        argv: options.daemonCommand?.(node, files) ?? [...weft.argv, 'cni-server', '--ready-file', files.cniServerReady],
        readyFile: files.cniServerReady,
        logFile: files.cniServerLog,
        timeoutMs: options.daemonReadyTimeoutMs,
        onStarted: async (pid) => {
          state.daemonPids[node.name] = { pid, ready: false, kind: 'cni-server' };
          await save();
        },
      });
      state.daemonPids[node.name] = { pid: state.daemonPids[node.name]?.pid ?? 0, ready: true, kind: 'cni-server' };
      await save();
    }
    progress(`node ${node.name}: ${node.address} (zone ${node.zone}), pods ${subnet.podSubnet}${r.daemons ? ', cni-server ready' : ''}`);
    return conflist;
  }

  /** Starts the node's `weft agent`; resolves with its lease once subnet.env exists and the agent reports ready. */
  async function startAgent(node: NodePlan, files: NodeFiles, plan: EtcdPlan): Promise<NodeLease> {
    const pid = await startNodeAgent({
      node, files,
      argv: [
        ...(r.store === 'kube'
          ? kubeAgentArgv({ weft: weft.argv, kubeconfig: apiServerFiles(plan.dir).kubeconfig, files })
          : agentArgv({ weft: weft.argv, etcd: plan, api: r.etcdApi, prefix: ETCD_PREFIX, leaseTtl: r.leaseTtl, files })),
        ...dataPathArgs(r.dataPath),
      ],
      env: agentEnv(node.name),
      timeoutMs: options.daemonReadyTimeoutMs ?? 30_000,
      onStarted: async (started) => {
        state.daemonPids[node.name] = { pid: started, ready: false, kind: 'agent' };
        await save();
      },
    });
    return recordLease(node, files, pid);
  }

  /** Until every agent has seen every other node's lease and programmed it once, so a `check` right after `up` is meaningful. */
  async function waitForPeers(nodes: readonly NodePlan[]): Promise<void> {
    if (nodes.length === 0) return;
    const want = nodes.length - 1;
    const deadline = Date.now() + (options.peersTimeoutMs ?? 30_000);
    let behind: string[];
    for (;;) {
      const seen = await Promise.all(nodes.map(async (n) => ({ n, s: await agentStatus(nodeFiles(n.dir)) })));
      behind = seen.filter(({ s }) => s === undefined || s.lastSync === null || s.peers.length < want).map(({ n, s }) => `${n.name} (${s === undefined ? 'not answering' : `${s.peers.length} of ${want} peers`})`);
      if (behind.length === 0) {
        progress(`agents: every node has its ${want} peer(s) programmed`);
        return;
      }
      if (Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const message = `not every agent sees all the other nodes after ${(options.peersTimeoutMs ?? 30_000) / 1000} s: ${behind.join(', ')}; see the agents' logs (<node dir>/agent.log)`;
    log.warn({ lab: r.name, behind }, message);
    progress(`warning: ${message}`);
  }
}

async function mustBeExecutable(path: string, message: string): Promise<void> {
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new WeftError('WEFT_LAB', message);
  }
}
