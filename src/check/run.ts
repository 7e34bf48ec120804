// `weft check`: probe pods on every node of a real cluster, in a namespace of their own that is
// deleted at the end whatever happens (also when interrupted: pass an AbortSignal). Two bounded
// waits: for the responder pods to be ready, then for the client pods to finish.
import type { V1Pod } from '@kubernetes/client-node';
import { randomBytes } from 'node:crypto';
import { WeftError } from '../errors.ts';
import { parseProbeReport } from '../probe/report.ts';
import { DEFAULT_PROBE_PORT } from '../probe/types.ts';
import type { CheckApi } from './api.ts';
import { MAX_NODES, clean, selectNodes, type CheckNode } from './nodes.ts';
import { hasFinished, isHopeless, isReady, podCondition, podIP } from './pod-state.ts';
import { APP_LABEL, CONTAINER, checkNamespace, clientPod, podName, probeTargets, serverPod, type PodRole, type PodSettings } from './pods.ts';
import { buildReport, type ClientResult, type ClusterCheckReport } from './report.ts';

export const DEFAULT_NAMESPACE_PREFIX = 'weft-check';
/** What is read of a client pod's log: a full report of 100 nodes is well under it. */
export const MAX_LOG_BYTES = 1024 * 1024;

export interface ClusterCheckOptions {
  api: CheckApi;
  image: string;
  /** Each of the two waits (responders ready, clients finished), in ms. */
  timeoutMs: number;
  namespacePrefix?: string;
  /** Only these nodes (by name). */
  nodes?: readonly string[];
  port?: number;
  /** weft probe's tries and per-try wait. */
  attempts?: number;
  waitMs?: number;
  /** Leave the namespace for a look (kubectl describe); default: delete it. */
  keep?: boolean;
  /** Abort: stop waiting, delete the namespace, reject with CheckInterrupted. */
  signal?: AbortSignal;
  pollMs?: number;
  onProgress?: (line: string) => void;
}

/** The check was interrupted; `deleted` says whether its namespace is gone. */
export class CheckInterrupted extends Error {
  readonly namespace: string | undefined;
  readonly deleted: boolean;
  constructor(namespace: string | undefined, deleted: boolean, cleanupError?: string) {
    super(namespace === undefined
      ? 'interrupted before anything was created'
      : deleted
        ? `interrupted; namespace ${namespace} deleted`
        : `interrupted; namespace ${namespace} could not be deleted (${cleanupError ?? 'unknown error'}): run \`weft check --cleanup\` or \`kubectl delete namespace ${namespace}\``);
    this.name = 'CheckInterrupted';
    this.namespace = namespace;
    this.deleted = deleted;
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function namespaceName(prefix: string): string {
  if (!DNS_LABEL.test(prefix) || prefix.length > 50) {
    throw new WeftError('WEFT_INVALID_CONFIG', `--namespace ${JSON.stringify(prefix)}: expected a prefix of lower-case letters, digits and dashes, at most 50 characters (the check adds -<random>)`);
  }
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

function abortable(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Creates pods a few at a time; a pod the API refuses becomes a problem naming its node. Returns the nodes whose pod was created. */
async function createPods(api: CheckApi, ns: string, pods: readonly { node: CheckNode; pod: V1Pod }[], signal: AbortSignal | undefined, problems: string[]): Promise<CheckNode[]> {
  const created = new Set<CheckNode>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < pods.length) {
      const { node, pod } = pods[next++] as { node: CheckNode; pod: V1Pod };
      try {
        await api.createPod(ns, pod, signal);
        created.add(node);
      } catch (e) {
        if (signal?.aborted === true) throw e;
        problems.push(`pod ${pod.metadata?.name ?? '?'} on node ${node.name} was refused: ${clean(e instanceof Error ? e.message : String(e), 300)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(8, pods.length) }, worker));
  return pods.map((p) => p.node).filter((n) => created.has(n));
}

interface Member {
  role: PodRole;
  node: CheckNode;
}

/**
 * Polls the check's pods until `done` holds for each member's pod (or it is `hopeless`), or
 * the deadline. Returns the last state of each pod by name (undefined: never seen).
 */
async function waitForPods(
  o: ClusterCheckOptions, ns: string, members: readonly Member[], timeoutMs: number,
  done: (p: V1Pod) => boolean, hopeless: (p: V1Pod) => boolean,
): Promise<{ pods: Map<string, V1Pod | undefined>; timedOut: Set<string> }> {
  const deadline = Date.now() + timeoutMs;
  const pods = new Map<string, V1Pod | undefined>();
  const names = members.map((m) => podName(m.role, m.node));
  for (;;) {
    const listed = await o.api.listPods(ns, `app=${APP_LABEL}`, o.signal);
    const byName = new Map(listed.map((p) => [p.metadata?.name, p]));
    for (const name of names) pods.set(name, byName.get(name));
    const pending = names.filter((name) => {
      const p = pods.get(name);
      return p === undefined || (!done(p) && !hopeless(p));
    });
    if (pending.length === 0) return { pods, timedOut: new Set() };
    if (Date.now() >= deadline) return { pods, timedOut: new Set(pending) };
    await abortable(Math.min(o.pollMs ?? 1000, Math.max(0, deadline - Date.now())), o.signal);
  }
}

const seconds = (ms: number): string => `${Math.round(ms / 1000)} s`;

/** The longest a client's `weft probe` can run when every probe fails: its tries, a batch of 16 at a time. */
export function worstProbeMs(probes: number, attempts: number, waitMs: number): number {
  return Math.ceil(probes / 16) * attempts * (waitMs + 500);
}

async function runIn(o: ClusterCheckOptions, ns: string, nodes: CheckNode[], skipped: ReturnType<typeof selectNodes>['skipped']): Promise<Omit<ClusterCheckReport, 'namespace_deleted'>> {
  const progress = o.onProgress ?? ((): void => undefined);
  const problems: string[] = [];
  const settings: PodSettings = {
    namespace: ns, image: o.image, port: o.port ?? DEFAULT_PROBE_PORT,
    serveSeconds: Math.ceil((2 * o.timeoutMs) / 1000) + 300, attempts: o.attempts ?? 3, waitMs: o.waitMs ?? 2000,
  };
  await o.api.createNamespace(checkNamespace(ns, new Date()), o.signal);
  progress(`namespace ${ns}: a responder pod on each of ${nodes.length} node${nodes.length === 1 ? '' : 's'} (image ${o.image})`);

  const withServer = await createPods(o.api, ns, nodes.map((node) => ({ node, pod: serverPod(node, settings) })), o.signal, problems);
  const servers = await waitForPods(o, ns, withServer.map((node) => ({ role: 'server', node })), o.timeoutMs, (p) => isReady(p) && podIP(p) !== undefined, isHopeless);
  const serverIPs = new Map<string, string>();
  for (const n of withServer) {
    const name = podName('server', n);
    const p = servers.pods.get(name);
    const ip = p === undefined ? undefined : podIP(p);
    if (p !== undefined && ip !== undefined && isReady(p)) serverIPs.set(n.name, ip);
    else {
      const why = p !== undefined && isReady(p) ? `Running without a valid pod IP (status.podIP ${JSON.stringify(clean(p.status?.podIP, 60))})` : podCondition(p);
      problems.push(`responder pod ${name} on node ${n.name} is not ready${servers.timedOut.has(name) ? ` after ${seconds(o.timeoutMs)}` : ''}: ${why}`);
    }
  }
  if (serverIPs.size === 0) throw new WeftError('WEFT_NOT_READY', `no responder pod became ready, so nothing can be probed: ${problems.join('; ')}`);
  progress(`responders ready on ${serverIPs.size} of ${nodes.length} nodes; starting the client pods`);

  const ips = [...serverIPs.values()];
  const nodeIPs = nodes.map((n) => n.internalIP);
  // Both kinds of client at once: the pod-network ones and the host-network ones.
  const [podClients, hostClients] = await Promise.all([
    createPods(o.api, ns, nodes.map((node) => ({ node, pod: clientPod('client', node, settings, probeTargets(ips, nodeIPs, settings.port)) })), o.signal, problems),
    createPods(o.api, ns, nodes.map((node) => ({ node, pod: clientPod('host-client', node, settings, probeTargets(ips, [], settings.port)) })), o.signal, problems),
  ]);
  const clients: Member[] = [...podClients.map((node) => ({ role: 'client' as const, node })), ...hostClients.map((node) => ({ role: 'host-client' as const, node }))];
  // Their wait: --timeout to start, plus what the probes may take when all of them fail.
  const clientWaitMs = o.timeoutMs + worstProbeMs(ips.length * 3 + nodeIPs.length, settings.attempts, settings.waitMs);
  const waited = await waitForPods(o, ns, clients, clientWaitMs, hasFinished, (p) => isHopeless(p) && !hasFinished(p));
  const results: ClientResult[] = [];
  for (const { role, node: n } of clients) {
    const name = podName(role, n);
    const p = waited.pods.get(name);
    const result: ClientResult = { node: n, role: role as ClientResult['role'], podIP: p === undefined ? undefined : podIP(p), report: undefined };
    results.push(result);
    if (p === undefined || !hasFinished(p)) {
      problems.push(`client pod ${name} on node ${n.name} did not finish${waited.timedOut.has(name) ? ` within ${seconds(clientWaitMs)}` : ''}: ${podCondition(p)}`);
      continue;
    }
    const log = await o.api.podLog(ns, name, CONTAINER, MAX_LOG_BYTES, o.signal);
    result.report = parseProbeReport(log);
    if (result.report === undefined) problems.push(`client pod ${name} on node ${n.name} left no probe report (${podCondition(p)}); its log ends: ${clean(log.slice(-300), 300) || '(empty)'}`);
  }
  progress('clients finished');
  return buildReport({ namespace: ns, nodes, skipped, servers: serverIPs, clients: results, problems, namespaceDeleted: false });
}

export async function runClusterCheck(o: ClusterCheckOptions): Promise<ClusterCheckReport> {
  const all = await o.api.listNodes(o.signal);
  const { nodes, skipped } = selectNodes(all, o.nodes);
  if (nodes.length === 0) {
    const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
    throw new WeftError('WEFT_NOT_READY', `no node to probe${why === '' ? ' (the cluster lists no Node)' : `: ${why}`}`);
  }
  if (nodes.length > MAX_NODES && o.nodes === undefined) {
    throw new WeftError('WEFT_INVALID_CONFIG', `the cluster has ${nodes.length} nodes; weft check probes at most ${MAX_NODES} at once (the probes grow with the square): pick some with --nodes a,b,c`);
  }
  const ns = namespaceName(o.namespacePrefix ?? DEFAULT_NAMESPACE_PREFIX);
  let report: Omit<ClusterCheckReport, 'namespace_deleted'> | undefined;
  let failure: unknown;
  try {
    report = await runIn(o, ns, nodes, skipped);
  } catch (e) {
    failure = e;
  }
  // Cleanup runs with its own deadline, never with the (possibly aborted) check's signal.
  let deleted = false;
  let cleanupError: string | undefined;
  if (o.keep !== true) {
    try {
      await o.api.deleteNamespace(ns);
      deleted = true;
    } catch (e) {
      cleanupError = clean(e instanceof Error ? e.message : String(e), 300);
    }
  }
  if (o.signal?.aborted === true) throw new CheckInterrupted(ns, deleted, cleanupError);
  if (failure !== undefined) {
    if (failure instanceof WeftError && cleanupError !== undefined) {
      throw new WeftError(failure.code, `${failure.message}; and namespace ${ns} could not be deleted (${cleanupError}): run \`weft check --cleanup\``, { cause: failure });
    }
    throw failure;
  }
  const r = report as Omit<ClusterCheckReport, 'namespace_deleted'>;
  const problems = cleanupError === undefined ? r.problems : [...r.problems, `namespace ${ns} could not be deleted (${cleanupError}): run \`weft check --cleanup\` or \`kubectl delete namespace ${ns}\``];
  return { ...r, problems, namespace_deleted: deleted };
}
