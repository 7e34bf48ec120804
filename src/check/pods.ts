// The objects `weft check` creates: its Namespace, and per Node a responder pod (`weft probe
// serve`), a client pod probing from the pod network, and a client pod probing from the node's
// own network (hostNetwork), each pinned to its Node by spec.nodeName (no scheduler involved)
// and tolerating every taint, so cordon-free tainted nodes (control plane, GPU) are probed too.
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import type { CheckNode } from './nodes.ts';

export const APP_LABEL = 'weft-check';
export const ROLE_LABEL = 'weft.dev/check-role';
export const STARTED_ANNOTATION = 'weft.dev/check-started';
export const NODE_ANNOTATION = 'weft.dev/check-node';
export const CONTAINER = 'probe';

export type PodRole = 'server' | 'client' | 'host-client';
const PREFIX: Record<PodRole, string> = { server: 'srv', client: 'pod', 'host-client': 'host' };

export function podName(role: PodRole, node: CheckNode): string {
  return `${PREFIX[role]}-${node.index}`;
}

export function checkNamespace(name: string, now: Date): V1Namespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      // The host clients need hostNetwork; a cluster whose admission refuses it still runs the rest.
      labels: { app: APP_LABEL, 'pod-security.kubernetes.io/enforce': 'privileged' },
      annotations: { [STARTED_ANNOTATION]: now.toISOString() },
    },
  };
}

export interface PodSettings {
  namespace: string;
  image: string;
  port: number;
  /** The responders stop by themselves after this long (a check that died leaves no busy pods). */
  serveSeconds: number;
  /** weft probe's --attempts and --timeout. */
  attempts: number;
  waitMs: number;
}

function pod(role: PodRole, node: CheckNode, s: PodSettings, command: string[], extra: Partial<NonNullable<V1Pod['spec']>> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: podName(role, node),
      namespace: s.namespace,
      labels: { app: APP_LABEL, [ROLE_LABEL]: role },
      annotations: { [NODE_ANNOTATION]: node.name },
    },
    spec: {
      nodeName: node.name,
      restartPolicy: 'Never',
      tolerations: [{ operator: 'Exists' }],
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 2,
      containers: [{
        name: CONTAINER,
        image: s.image,
        imagePullPolicy: 'IfNotPresent',
        command,
        resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '128Mi' } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true },
        ...(role === 'server' ? {
          ports: [{ name: 'probe-tcp', containerPort: s.port, protocol: 'TCP' }, { name: 'probe-udp', containerPort: s.port, protocol: 'UDP' }],
          readinessProbe: { tcpSocket: { port: s.port }, periodSeconds: 2, timeoutSeconds: 1 },
        } : {}),
      }],
      ...extra,
    },
  };
}

export function serverPod(node: CheckNode, s: PodSettings): V1Pod {
  return pod('server', node, s, ['weft', 'probe', 'serve', '--port', String(s.port), '--exit-after', `${s.serveSeconds}s`]);
}

/** The --to list: every responder pod over icmp, tcp and udp; with nodeIPs, every node over icmp. */
export function probeTargets(serverIPs: readonly string[], nodeIPs: readonly string[], port: number): string {
  const hostPort = (ip: string): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  return [...serverIPs.map(hostPort), ...nodeIPs.map((ip) => `icmp://${ip}`)].join(',');
}

export function clientPod(role: 'client' | 'host-client', node: CheckNode, s: PodSettings, targets: string): V1Pod {
  const command = ['weft', 'probe', '--json', '--kinds', 'icmp,tcp,udp', '--port', String(s.port), '--attempts', String(s.attempts), '--timeout', `${s.waitMs}ms`, '--to', targets];
  return pod(role, node, s, command, role === 'host-client' ? { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' } : {});
}
