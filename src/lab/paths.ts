// Where the lab keeps its files. Each node has its own directory, so nodes that share this
// machine's filesystem never share a subnet file, a CNI config, IPAM data or a log.
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.ts';
import { validateLabName } from './names.ts';

export const LAB_STATE_ROOT = '/run/weft/lab';

/** The repository this module runs from (src/lab/ is two levels down). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
export const WEFT_BIN = `${REPO_ROOT}/bin/weft`;
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
    pluginLog: `${nodeDir}/cni-plugin.log`,
  };
}

export interface EtcdFiles {
  dataDir: string;
  log: string;
}

export function etcdFiles(etcdDir: string): EtcdFiles {
  return { dataDir: `${etcdDir}/data`, log: `${etcdDir}/etcd.log` };
}
