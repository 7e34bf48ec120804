// Where the lab keeps its files. Each node has its own directory, so nodes that share this
// machine's filesystem never share a subnet file, a CNI config, IPAM data or a log.
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.ts';
import { validateLabName } from './names.ts';

export const LAB_STATE_ROOT = '/run/weft/lab';

/** The repository this module runs from (src/lab/ is two levels down). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const WEFT_BIN = `${REPO_ROOT}/bin/weft`;
/** The CLI bundled into one file (`npm run build:native`): what the lab's daemons run when it is built. */
export const WEFT_BUNDLE = `${REPO_ROOT}/build/weft.mjs`;
/** The project's pinned Node (the npm package `node`), as bin/weft finds it. */
export const PROJECT_NODE = `${REPO_ROOT}/node_modules/node/bin/node`;
export const WEFT_CNI_PLUGIN = `${REPO_ROOT}/build/weft-cni`;
export const BRIDGE_PLUGIN = '/usr/lib/cni/bridge';

export function labDir(name: string, stateRoot: string = LAB_STATE_ROOT): string {
  validateLabName(name);
  if (!stateRoot.startsWith('/')) throw new WeftError('WEFT_LAB', `the lab state root must be absolute, got ${stateRoot}`);
  return `${stateRoot.replace(/\/$/, '')}/${name}`;
}

export function stateFile(labDirectory: string): string {
  return `${labDirectory}/state.json`;
}

export interface NodeFiles {
  subnetEnv: string;
  netD: string;
  conflist: string;
  cniDataDir: string;
  cniServerReady: string;
  cniServerLog: string;
  /** The node's `weft agent` (etcd store): its log and its status socket. */
  agentLog: string;
  agentSocket: string;
  /** The agent's node lock: one per lab node (they share this machine's /run). */
  agentLock: string;
  /** store mesh: the agent's --mesh-dir (its peer name and block state), like the lock one per node. */
  meshDir: string;
  /** store mesh: a password of this node's own (`lab node start --password`), 0600. */
  meshPassword: string;
  /** stderr of every CNI plugin call on this node, appended. */
  pluginLog: string;
}

export function nodeFiles(nodeDir: string): NodeFiles {
  return {
    subnetEnv: `${nodeDir}/subnet.env`,
    netD: `${nodeDir}/net.d`,
    conflist: `${nodeDir}/net.d/10-weft.conflist`,
    cniDataDir: `${nodeDir}/cni-networks`,
    cniServerReady: `${nodeDir}/cni-server.ready`,
    cniServerLog: `${nodeDir}/cni-server.log`,
    agentLog: `${nodeDir}/agent.log`,
    agentSocket: `${nodeDir}/agent.sock`,
    agentLock: `${nodeDir}/agent.lock`,
    meshDir: `${nodeDir}/mesh`,
    meshPassword: `${nodeDir}/mesh-password`,
    pluginLog: `${nodeDir}/cni-plugin.log`,
  };
}

/** What `weft lab exec` sets for a command in a node, so plain `weft status` (and uninstall) find that node's agent and files. */
export function nodeExecEnv(files: NodeFiles): Record<string, string> {
  return { WEFT_STATUS_SOCKET: files.agentSocket, WEFT_LOCK_FILE: files.agentLock, WEFT_SUBNET_FILE: files.subnetEnv };
}

/** store mesh: the password every node's agent gets (`lab up --password`), 0600. */
export function labPasswordFile(labDirectory: string): string {
  return `${labDirectory}/mesh-password`;
}

export interface EtcdFiles {
  dataDir: string;
  log: string;
}

export function etcdFiles(etcdDir: string): EtcdFiles {
  return { dataDir: `${etcdDir}/data`, log: `${etcdDir}/etcd.log` };
}
