// `weft lab up`: build a lab cluster from namespaces, recording every step in the state
// file as it happens (so `down` can undo a lab that crashed or was killed halfway).
import { constants } from 'node:fs';
import { access, mkdir } from 'node:fs/promises';
import { errnoCode, WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { writeFileAtomic } from './atomic-write.ts';
import { calcConflist, CNI_KINDS, formatSubnetEnv, type CniKind, type Conflist } from './cni-config.ts';
import { mapLimit } from './concurrency.ts';
import { DEFAULT_LAB_NAME, labNamesIn, validateLabName } from './names.ts';
import { listNetns } from './netns.ts';
import { BRIDGE_PLUGIN, LAB_STATE_ROOT, labDir, nodeFiles, WEFT_BIN, WEFT_CNI_PLUGIN, type NodeFiles } from './paths.ts';
import { attachPod } from './pods.ts';
import { startDaemon } from './processes.ts';
import { StateWriter, STATE_VERSION, type LabState } from './state.ts';
import { calcTopology, validateCounts, type NodePlan } from './topology.ts';
import { setupNodeUplink, setupOutside, setupRouter, setupZones } from './underlay.ts';

export interface LabUpOptions {
  name?: string;
  nodes?: number;
  podsPerNode?: number;
  /** Which CNI plugin attaches pods: weft (build/weft-cni) or Debian's reference bridge + host-local. */
  cni?: CniKind;
  /** Start one daemon per node, inside its namespace (default: only with cni weft). */
  daemons?: boolean;
  /** The per-node daemon's command (default `bin/weft cni-server --ready-file <node dir>/cni-server.ready`); it must create the ready file. */
  daemonCommand?: (node: NodePlan, files: NodeFiles) => string[];
  /** Override the plugin executable (default build/weft-cni or /usr/lib/cni/bridge). */
  plugin?: string;
  stateRoot?: string;
  daemonReadyTimeoutMs?: number;
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
}

async function resolve(o: LabUpOptions): Promise<Resolved> {
  const name = validateLabName(o.name ?? DEFAULT_LAB_NAME);
  const nodes = o.nodes ?? 2;
  const podsPerNode = o.podsPerNode ?? 2;
  validateCounts(nodes, podsPerNode);
  const cni = o.cni ?? 'weft';
  if (!CNI_KINDS.includes(cni)) throw new WeftError('WEFT_LAB', `--cni must be one of ${CNI_KINDS.join(', ')}, got ${String(cni)}`);
  const daemons = o.daemons ?? cni === 'weft';
  const plugin = o.plugin ?? (cni === 'weft' ? WEFT_CNI_PLUGIN : BRIDGE_PLUGIN);
  const hint = cni === 'weft' ? 'build it first (npm run build:native), or use --cni bridge' : 'install containernetworking-plugins';
  await mustBeExecutable(plugin, `the ${cni} CNI plugin ${plugin} is missing or not executable; ${hint}`);
  if (daemons && o.daemonCommand === undefined) await mustBeExecutable(WEFT_BIN, `${WEFT_BIN} is missing; run from a complete weft checkout, or pass --no-daemon`);
  return { name, nodes, podsPerNode, cni, daemons, plugin, dir: labDir(name, o.stateRoot ?? LAB_STATE_ROOT) };
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
  const r = await resolve(options);
  await claim(r, options.stateRoot ?? LAB_STATE_ROOT);

  const topology = calcTopology({ name: r.name, nodes: r.nodes, podsPerNode: r.podsPerNode, labDir: r.dir });
  const state: LabState = {
    version: STATE_VERSION,
    name: r.name,
    createdAt: new Date().toISOString(),
    phase: 'creating',
    upPid: process.pid,
    cni: r.cni,
    plugin: r.plugin,
    daemons: r.daemons,
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
    await mapLimit(topology.nodes, options.parallelism ?? 8, async (node) => {
      const conflist = await setupNode(node);
      for (const pod of node.pods) {
        state.pods[pod.name] = await attachPod({ node, pod, plugin: r.plugin, conflist, onNamespace });
        await save();
        progress(`pod ${pod.name}: ${state.pods[pod.name]?.addresses.join(' ')}`);
      }
    });
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

  /** The node's uplink, files and cni-server; resolves with the conflist written to its net.d. */
  async function setupNode(node: NodePlan): Promise<Conflist> {
    const files = nodeFiles(node.dir);
    const conflist = calcConflist(r.cni, node, files);
    await setupNodeUplink(topology, node, onNamespace);
    await mkdir(files.netD, { recursive: true });
    await mkdir(files.cniDataDir, { recursive: true });
    await writeFileAtomic(files.subnetEnv, formatSubnetEnv(node));
    await writeFileAtomic(files.conflist, `${JSON.stringify(conflist, null, 2)}\n`);
    if (r.daemons) {
      await startDaemon({
        ns: node.ns,
        argv: options.daemonCommand?.(node, files) ?? [WEFT_BIN, 'cni-server', '--ready-file', files.cniServerReady],
        readyFile: files.cniServerReady,
        logFile: files.cniServerLog,
        timeoutMs: options.daemonReadyTimeoutMs,
        onStarted: async (pid) => {
          state.daemonPids[node.name] = { pid, ready: false };
          await save();
        },
      });
      state.daemonPids[node.name] = { pid: state.daemonPids[node.name]?.pid ?? 0, ready: true };
      await save();
    }
    progress(`node ${node.name}: ${node.address} (zone ${node.zone}), pods ${node.podSubnet}${r.daemons ? ', cni-server ready' : ''}`);
    return conflist;
  }
}

async function mustBeExecutable(path: string, message: string): Promise<void> {
  try {
    await access(path, constants.X_OK);
  } catch {
    throw new WeftError('WEFT_LAB', message);
  }
}
