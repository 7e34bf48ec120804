// The node agent (store etcd or mesh): one `weft agent` per node, inside the node's namespace,
// as flanneld runs on a real node. It leases the node's subnet (from the lab's etcd, or blocks
// from its mesh: mesh.ts), writes the node's subnet.env, programs routes to the other nodes,
// installs the masquerade rules, and serves the node's CNI requests on @weft-cni (so it
// replaces the cni-server).
import { fetchStatus, type AgentStatus } from '../agent/status.ts';
import type { NodeFiles } from './paths.ts';
import { weftLauncher } from './launcher.ts';
import { exists, startDaemon } from './processes.ts';
import type { NodeLease } from './state.ts';
import type { EtcdApi } from './store-kinds.ts';
import type { EtcdPlan, NodePlan } from './topology.ts';

export const LEASE_RENEW_MARGIN = '10s';
export const DEFAULT_LEASE_TTL = '30s';

export interface AgentArgs {
  /** The argv prefix that runs weft (weftLauncher().argv); takes precedence over weftBin. */
  weft?: readonly string[];
  /** A single executable that runs weft (bin/weft): the older form of `weft`. */
  weftBin?: string;
  etcd: EtcdPlan;
  api: EtcdApi;
  prefix: string;
  leaseTtl: string;
  files: NodeFiles;
}

export function agentArgv(a: AgentArgs): string[] {
  const weft = a.weft ?? (a.weftBin === undefined ? weftLauncher().argv : [a.weftBin]);
  return [
    ...weft, 'agent',
    '--etcd-endpoints', a.etcd.clientUrl,
    '--etcd-api', a.api,
    '--etcd-prefix', a.prefix,
    '--subnet-file', a.files.subnetEnv,
    '--status-socket', a.files.agentSocket,
    '--lock-file', a.files.agentLock,
    '--subnet-lease-ttl', a.leaseTtl,
    '--subnet-lease-renew-margin', LEASE_RENEW_MARGIN,
    '--ip-masq',
  ];
}

export interface KubeAgentArgs {
  weft: readonly string[];
  /** The kubeconfig the lab's API server wrote. */
  kubeconfig: string;
  files: NodeFiles;
}

/** store kube: the agent claims its subnet through the lab's API server (its Node name comes from NODE_NAME). */
export function kubeAgentArgv(a: KubeAgentArgs): string[] {
  return [
    ...a.weft, 'agent',
    '--store', 'kube',
    '--kubeconfig-file', a.kubeconfig,
    '--subnet-file', a.files.subnetEnv,
    '--status-socket', a.files.agentSocket,
    '--lock-file', a.files.agentLock,
    '--ip-masq',
  ];
}

/** The agent's environment: its node name (the agent reports NODE_NAME, as flanneld reads it). */
export function agentEnv(nodeName: string, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, NODE_NAME: nodeName };
}

/** The agent's status, or undefined while it does not answer (starting, dead). */
export async function agentStatus(files: NodeFiles): Promise<AgentStatus | undefined> {
  try {
    return await fetchStatus(files.agentSocket);
  } catch {
    return undefined;
  }
}

/**
 * Ready for pods: subnet.env written and the node programmed. That is the agent's `ready`, or
 * `degraded` (programmed, but some peer unreachable, say host-gw across zones): the lab comes
 * up either way and `lab status`/`lab check` show what does not work.
 */
export async function agentReady(files: NodeFiles): Promise<boolean> {
  if (!(await exists(files.subnetEnv))) return false;
  const phase = (await agentStatus(files))?.phase;
  return phase === 'ready' || phase === 'degraded';
}

/** The lease a ready agent reports, in the lab's terms. */
export function leaseOf(s: AgentStatus): NodeLease | undefined {
  if (s.lease === null) return undefined;
  return { subnet: s.lease.subnet, gateway: subnetGateway(s.lease.subnet), backend: s.backend, publicIp: s.publicIp };
}

/** The first address of an IPv4 subnet (10.16.85.0/24 → 10.16.85.1): cni0's. */
export function subnetGateway(subnet: string): string {
  const [address = '', prefix = ''] = subnet.split('/');
  const octets = address.split('.').map(Number);
  const bits = /^\d{1,2}$/.test(prefix) ? Number(prefix) : NaN;
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255) || !(bits >= 0 && bits <= 30)) {
    throw new RangeError(`not an IPv4 subnet: ${subnet}`);
  }
  const [a = 0, b = 0, c = 0, d = 0] = octets;
  const n = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const g = (((n & mask) >>> 0) + 1) >>> 0;
  return [g >>> 24, (g >>> 16) & 255, (g >>> 8) & 255, g & 255].join('.');
}

export interface StartNodeAgentOptions {
  node: Pick<NodePlan, 'name' | 'ns'>;
  files: NodeFiles;
  argv: string[];
  env: NodeJS.ProcessEnv;
  /**
   * How far to wait: `ready` (default) until subnet.env exists and the agent is programmed
   * (ready or degraded), `answering` until its status socket answers (a node that will wait
   * for peers it cannot reach yet).
   */
  until?: 'ready' | 'answering';
  timeoutMs?: number;
  onStarted: (pid: number) => Promise<void>;
}

/** Starts a node's `weft agent` in its namespace, its output appended to the node's agent.log; resolves with its PID. */
export function startNodeAgent(o: StartNodeAgentOptions): Promise<number> {
  const answering = o.until === 'answering';
  return startDaemon({
    ns: o.node.ns,
    argv: o.argv,
    env: o.env,
    isReady: answering ? async () => (await agentStatus(o.files)) !== undefined : () => agentReady(o.files),
    readyMeans: answering ? `answer on ${o.files.agentSocket}` : `write ${o.files.subnetEnv} and report ready on ${o.files.agentSocket}`,
    pollMs: 100,
    logFile: o.files.agentLog,
    timeoutMs: o.timeoutMs ?? 30_000,
    onStarted: o.onStarted,
  });
}
