// The lab's etcd (store etcd): one member in its own namespace on zone a's segment, as a
// control-plane machine would be, serving the v2 and v3 APIs on its underlay address. Its
// data lives in the lab's state directory, so `down` removes it with everything else.
import { WeftError } from '../errors.ts';
import { execInNetns } from './netns.ts';
import { etcdFiles } from './paths.ts';
import { startDaemon } from './processes.ts';
import type { EtcdApi, LabBackend } from './store-kinds.ts';
import type { EtcdPlan } from './topology.ts';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';
/** flannel's default prefix; the agents' default --etcd-prefix. */
export const ETCD_PREFIX = '/coreos.com/network';

/** The network config the lab writes to `<prefix>/config`: flannel's format. */
export function networkConfig(network: string, backend: LabBackend): string {
  return JSON.stringify({ Network: network, Backend: { Type: backend } });
}

export function etcdArgv(lab: string, plan: EtcdPlan): string[] {
  const { dataDir } = etcdFiles(plan.dir);
  // Peers only ever talk to themselves here (one member), so the peer URL stays on loopback.
  const peer = 'http://127.0.0.1:2380';
  return [
    ETCD_BIN,
    '--name', `weft-${lab}`,
    '--data-dir', dataDir,
    '--listen-client-urls', `${plan.clientUrl},http://127.0.0.1:2379`,
    '--advertise-client-urls', plan.clientUrl,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `weft-${lab}=${peer}`,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', `weft-lab-${lab}`,
    // A one-member cluster elects itself; short timers make that take milliseconds, not seconds.
    '--heartbeat-interval', '50',
    '--election-timeout', '500',
    '--enable-v2=true',
    '--logger', 'zap',
    '--log-level', 'warn',
  ];
}

/** Our environment without ETCD_* / ETCDCTL_* variables, which etcd and etcdctl would read as flags. */
function cleanEnv(api?: EtcdApi): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v;
  if (api !== undefined) env.ETCDCTL_API = api === 'v2' ? '2' : '3';
  return env;
}

/** etcdctl run in the etcd member's namespace against its client URL. */
export function etcdctl(plan: EtcdPlan, api: EtcdApi, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return execInNetns(plan.ns, [ETCDCTL_BIN, `--endpoints=${plan.clientUrl}`, ...args], { env: cleanEnv(api), timeoutMs: 10_000 });
}

export async function etcdHealthy(plan: EtcdPlan): Promise<boolean> {
  const r = await etcdctl(plan, 'v3', ['--command-timeout=1s', 'endpoint', 'health']);
  return r.code === 0;
}

/** Starts the member; resolves with its PID once it answers `endpoint health`. */
export async function startLabEtcd(lab: string, plan: EtcdPlan, onStarted: (pid: number) => Promise<void>): Promise<number> {
  return startDaemon({
    ns: plan.ns,
    argv: etcdArgv(lab, plan),
    env: cleanEnv(),
    isReady: () => etcdHealthy(plan),
    readyMeans: `answer \`etcdctl endpoint health\` at ${plan.clientUrl}`,
    pollMs: 100,
    logFile: etcdFiles(plan.dir).log,
    timeoutMs: 30_000,
    onStarted,
  });
}

/** Writes `<prefix>/config` with the given API (v2 and v3 keys are separate spaces in etcd 3.4). */
export async function writeNetworkConfig(plan: EtcdPlan, api: EtcdApi, prefix: string, config: string): Promise<void> {
  const key = `${prefix}/config`;
  const r = await etcdctl(plan, api, api === 'v2' ? ['set', key, config] : ['put', key, config]);
  if (r.code !== 0) throw new WeftError('WEFT_LAB', `cannot write ${key} to etcd at ${plan.clientUrl} with the ${api} API: ${r.stderr.trim() || r.stdout.trim()}`);
}
