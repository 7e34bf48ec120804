// store kube: the lab's API server is weft's stand-in (src/kube/standin: NOT Kubernetes, only
// what weft's kube store uses), on the control-plane host of zone a's segment where etcd runs
// in an etcd lab. The lab registers one Node per lab node with its underlay address as
// InternalIP, as kubelets would, and writes net-conf.json into the ConfigMap, as an operator
// applying weft's manifest would. The agents then run `weft agent --store kube`.
import { WeftError } from '../errors.ts';
import { execInNetns } from './netns.ts';
import { PROJECT_NODE, REPO_ROOT } from './paths.ts';
import { exists, startDaemon } from './processes.ts';
import { KUBE_API_PORT } from './store-kinds.ts';
import type { EtcdPlan } from './topology.ts';


export interface ApiServerFiles {
  kubeconfig: string;
  log: string;
}

export function apiServerFiles(dir: string): ApiServerFiles {
  return { kubeconfig: `${dir}/kubeconfig`, log: `${dir}/apiserver.log` };
}

const node = (): string => PROJECT_NODE;

/** Starts the stand-in; resolves with its PID once it wrote the kubeconfig agents use. */
export function startLabApiServer(plan: EtcdPlan, onStarted: (pid: number) => Promise<void>): Promise<number> {
  const files = apiServerFiles(plan.dir);
  return startDaemon({
    ns: plan.ns,
    argv: [node(), '--disable-warning=ExperimentalWarning', `${REPO_ROOT}/src/kube/standin/main.ts`, '--listen', `${plan.address}:${KUBE_API_PORT}`, '--kubeconfig', files.kubeconfig],
    isReady: () => exists(files.kubeconfig),
    readyMeans: `listen on ${plan.clientUrl} and write ${files.kubeconfig}`,
    pollMs: 100,
    logFile: files.log,
    timeoutMs: 30_000,
    onStarted,
  });
}

/** One kube-admin operation (src/lab/kube-admin.ts) against the lab's API server; its JSON answer. */
export async function kubeAdmin(plan: EtcdPlan, op: string, args: readonly string[]): Promise<unknown> {
  const r = await execInNetns(plan.ns, [node(), '--disable-warning=ExperimentalWarning', `${REPO_ROOT}/src/lab/kube-admin.ts`, apiServerFiles(plan.dir).kubeconfig, op, ...args], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new WeftError('WEFT_LAB', `the lab's API server refused ${op} ${args.join(' ')}: ${r.stderr.trim() || r.stdout.trim()}`);
  return JSON.parse(r.stdout) as unknown;
}
