// The DaemonSet: one agent per Linux node, on the host's network, installing the CNI front end
// and conflist first. Every privilege is the one a call of the agent needs (docs/manifests.md
// §Privileges says which call); nothing runs privileged.
import type { ManifestOptions } from './options.ts';
import type { K8sObject } from './objects.ts';
import { APP, CONFIG_MAP, NAME, labels } from './objects.ts';
import { CONFLIST_NAME, cniConflist, pluginsNeeded } from './cni-config.ts';
import { envValue, FLAG_NAMES } from '../agent/options.ts';

export const HEALTHZ_PORT = 6782;
/** flannel's VXLAN port (VNI 1), the default of the vxlan and auto backends. */
export const VXLAN_PORT = 8472;
/** Weave's ports: mesh control plane (TCP) and its VXLAN data plane (UDP). */
export const MESH_PORT = 6783;
export const MESH_VXLAN_PORT = 6784;
/** Weave's key for the password in its Secret (the add-on's password-secret). */
export const PASSWORD_SECRET_KEY = 'weave-passwd';

/** Where things are in the image (the image's Dockerfile provides them). */
export const IMAGE_PATHS = {
  weft: 'weft', // on PATH: /usr/local/bin/weft
  frontEnd: '/opt/weft/build/weft-cni',
  pluginsDir: '/usr/lib/cni',
} as const;

/** Container paths of the mounts. */
const CONFIG_MOUNT = '/etc/weft';
const HOST_CNI_CONF = '/host/etc/cni/net.d';
const HOST_CNI_BIN = '/host/opt/cni/bin';
/**
 * The node's /proc/sys/net. An unprivileged container's /proc/sys is read-only and kubelet
 * cannot mount inside /proc, so the per-pod knobs (arp_notify, accept_dad) are written here; a
 * sysctl under /proc/sys/net is the writer's network namespace's, whichever mount it goes through.
 */
export const HOST_PROC_SYS_NET = '/host/proc/sys/net';

interface Volume {
  name: string;
  hostPath: string;
  type: 'Directory' | 'DirectoryOrCreate' | 'FileOrCreate';
  /** Where the agent container mounts it; undefined: only the init container uses it. */
  agent?: { path: string; readOnly?: boolean; propagation?: 'HostToContainer' };
  /** Where install-cni mounts it. */
  install?: string;
  modes?: readonly ManifestOptions['mode'][];
  /** Only with the eBPF fast path on (WEFT_FAST_PATH=ebpf in the agent's environment). */
  fastPathOnly?: boolean;
}

/** Each host path, and why (docs/manifests.md §Volumes has the same list). */
const VOLUMES: readonly Volume[] = [
  // subnet.env: the CNI server reads it; flannel tooling on the node looks for it there.
  { name: 'run-flannel', hostPath: '/run/flannel', type: 'DirectoryOrCreate', agent: { path: '/run/flannel' } },
  // The node lock and status socket: shared with `weft uninstall`/`weft status` on the host, and
  // the lock keeps an old and a new pod from running at once during a rolling update.
  { name: 'run-weft', hostPath: '/run/weft', type: 'DirectoryOrCreate', agent: { path: '/run/weft' } },
  // iptables' lock, shared with kube-proxy and every other iptables user on the node.
  { name: 'xtables-lock', hostPath: '/run/xtables.lock', type: 'FileOrCreate', agent: { path: '/run/xtables.lock' } },
  // The IPAM store (host-local's layout) and flannel's delegate records: pods' addresses survive agent restarts.
  { name: 'cni-state', hostPath: '/var/lib/cni', type: 'DirectoryOrCreate', agent: { path: '/var/lib/cni' } },
  // Pod network namespaces (the runtime's CNI_NETNS paths), created after the agent started:
  // HostToContainer propagation makes each new one visible.
  { name: 'netns', hostPath: '/var/run/netns', type: 'DirectoryOrCreate', agent: { path: '/var/run/netns', propagation: 'HostToContainer' } },
  { name: 'proc-sys-net', hostPath: '/proc/sys/net', type: 'Directory', agent: { path: HOST_PROC_SYS_NET } },
  // The agent only reads it: a config that sorts before weft's is reported (and makes the node not ready).
  { name: 'cni-conf', hostPath: '/etc/cni/net.d', type: 'DirectoryOrCreate', agent: { path: '/etc/cni/net.d', readOnly: true }, install: HOST_CNI_CONF },
  { name: 'cni-bin', hostPath: '/opt/cni/bin', type: 'DirectoryOrCreate', install: HOST_CNI_BIN },
  // Mesh identity and IPAM ring: a restarted pod must come back as the same peer with its blocks.
  { name: 'weft-state', hostPath: '/var/lib/weft', type: 'DirectoryOrCreate', agent: { path: '/var/lib/weft' }, modes: ['mesh'] },
  // The fast path's pinned maps (docs/dataplane.md): on the host's bpffs, so an agent restart
  // finds them; HostToContainer, since the host (systemd) mounts it there.
  { name: 'bpffs', hostPath: '/sys/fs/bpf', type: 'Directory', agent: { path: '/sys/fs/bpf', propagation: 'HostToContainer' }, fastPathOnly: true },
];

/** Whether the manifest's agent environment turns the eBPF fast path on. */
export function fastPathOn(o: Pick<ManifestOptions, 'env'>): boolean {
  return envValue(FLAG_NAMES.fastPath, Object.fromEntries(o.env)) === 'ebpf';
}

function volumesFor(o: Pick<ManifestOptions, 'mode' | 'env'>): Volume[] {
  return VOLUMES.filter((v) => (v.modes === undefined || v.modes.includes(o.mode)) && (v.fastPathOnly !== true || fastPathOn(o)));
}

/** `weft agent`'s arguments for this mode (flanneld's flag names). */
export function agentArgs(o: Pick<ManifestOptions, 'mode' | 'etcdEndpoints' | 'backend'>): string[] {
  const args = ['agent', `--store=${o.mode}`, '--ip-masq', `--healthz-port=${HEALTHZ_PORT}`];
  if (o.mode === 'etcd') args.push(`--etcd-endpoints=${o.etcdEndpoints.join(',')}`);
  if (o.mode === 'mesh') args.push('--kube-peers', `--mesh-backend=${o.backend}`);
  return args;
}

/** `weft install-cni`'s arguments: the conflist from the ConfigMap, the binaries from the image. */
export function installCniArgs(): string[] {
  return [
    'install-cni',
    `--conflist=${CONFIG_MOUNT}/cni-conf.json`,
    `--conf-dir=${HOST_CNI_CONF}`,
    `--conf-name=${CONFLIST_NAME}`,
    `--bin-dir=${HOST_CNI_BIN}`,
    `--front-end=${IMAGE_PATHS.frontEnd}`,
    `--plugins-dir=${IMAGE_PATHS.pluginsDir}`,
    `--plugins=${pluginsNeeded(cniConflist()).join(',')}`,
  ];
}

function agentEnv(o: ManifestOptions): Record<string, unknown>[] {
  const env: Record<string, unknown>[] = [
    { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
  ];
  if (o.mode === 'mesh') {
    env.push({ name: 'IPALLOC_RANGE', value: o.ipallocRange });
    if (o.passwordSecret !== undefined) {
      // optional: false: a missing Secret keeps the pod from starting rather than running unencrypted.
      env.push({ name: 'WEAVE_PASSWORD', valueFrom: { secretKeyRef: { name: o.passwordSecret, key: PASSWORD_SECRET_KEY, optional: false } } });
    }
  }
  for (const [name, value] of o.env) env.push({ name, value });
  return env;
}

function ports(o: Pick<ManifestOptions, 'mode' | 'backend'>): Record<string, unknown>[] {
  // With hostNetwork these are the node's ports; listed so that they are documented and visible.
  const out: Record<string, unknown>[] = [{ name: 'metrics', containerPort: HEALTHZ_PORT, protocol: 'TCP' }];
  if (o.mode === 'mesh') {
    out.push({ name: 'mesh', containerPort: MESH_PORT, protocol: 'TCP' });
    if (o.backend !== 'host-gw') out.push({ name: 'mesh-vxlan', containerPort: MESH_VXLAN_PORT, protocol: 'UDP' });
  } else if (o.backend !== 'host-gw') {
    out.push({ name: 'vxlan', containerPort: VXLAN_PORT, protocol: 'UDP' });
  }
  return out;
}

/**
 * The agent's privileges (docs/manifests.md §Privileges):
 *  - NET_ADMIN: links (VXLAN, bridge, veths), addresses, routes, neighbours and FDB entries,
 *    iptables and nftables rules;
 *  - NET_RAW: iptables opens raw sockets;
 *  - SYS_ADMIN: setns(2) into each pod's network namespace, which the CNI server does for every
 *    ADD/DEL/CHECK (the kernel asks for CAP_SYS_ADMIN there, NET_ADMIN is not enough).
 * Everything else is dropped (the agent runs as root and owns every file it writes).
 * privileged: false keeps the runtime's device isolation, masked /proc paths and seccomp.
 */
function agentSecurity(): Record<string, unknown> {
  return {
    privileged: false,
    capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'] },
    readOnlyRootFilesystem: true,
  };
}

/** install-cni only copies files into host directories owned by root: no capability at all. */
function installSecurity(): Record<string, unknown> {
  return { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true };
}

function mounts(o: Pick<ManifestOptions, 'mode' | 'env'>, who: 'agent' | 'install'): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const v of volumesFor(o)) {
    if (who === 'install' && v.install) out.push({ name: v.name, mountPath: v.install });
    if (who === 'agent' && v.agent) {
      out.push({
        name: v.name, mountPath: v.agent.path,
        ...(v.agent.readOnly ? { readOnly: true } : {}),
        ...(v.agent.propagation ? { mountPropagation: v.agent.propagation } : {}),
      });
    }
  }
  if (who === 'install') out.push({ name: 'weft-cfg', mountPath: CONFIG_MOUNT, readOnly: true });
  return out;
}

export function daemonSet(o: ManifestOptions): K8sObject {
  const probe = (path: string, initialDelaySeconds: number, periodSeconds: number) => ({
    httpGet: { path, port: HEALTHZ_PORT }, initialDelaySeconds, periodSeconds, timeoutSeconds: 5, failureThreshold: 3,
  });
  const installCni = {
    name: 'install-cni',
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: [IMAGE_PATHS.weft],
    args: installCniArgs(),
    // One short Node process (~95 MB peak from the sources, less from the bundle).
    resources: { requests: { cpu: '10m', memory: '100Mi' }, limits: { memory: '200Mi' } },
    securityContext: installSecurity(),
    volumeMounts: mounts(o, 'install'),
  };
  const agent = {
    name: NAME,
    image: o.image,
    imagePullPolicy: 'IfNotPresent',
    command: [IMAGE_PATHS.weft],
    args: agentArgs(o),
    env: agentEnv(o),
    ports: ports(o),
    // /healthz answers from the first second, also while the store is unreachable: a failing
    // liveness probe means a hung process, never a slow API.
    livenessProbe: probe('/healthz', 10, 30),
    readinessProbe: probe('/readyz', 5, 10),
    // The agent is ~100 MB RSS at 1,000 peers (BENCHMARKS.md); the limit only stops a runaway.
    resources: { requests: { cpu: '100m', memory: '100Mi' }, limits: { memory: '500Mi' } },
    securityContext: agentSecurity(),
    volumeMounts: mounts(o, 'agent'),
  };
  const volumes = [
    ...volumesFor(o).map((v) => ({ name: v.name, hostPath: { path: v.hostPath, type: v.type } })),
    { name: 'weft-cfg', configMap: { name: CONFIG_MAP } },
  ];
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: NAME, namespace: o.namespace, labels: labels() },
    spec: {
      selector: { matchLabels: { ...APP } },
      // One node at a time: a node's pods keep their network while its agent restarts.
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: {
          labels: labels(),
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(HEALTHZ_PORT), 'prometheus.io/path': '/metrics' },
        },
        spec: {
          hostNetwork: true,
          // The node's resolver, never cluster DNS: CoreDNS needs the pod network this pod
          // brings up, so an etcd endpoint by name would otherwise never resolve on a new
          // cluster; the API server is reached by the address Kubernetes puts in the environment.
          dnsPolicy: 'Default',
          priorityClassName: 'system-node-critical',
          serviceAccountName: NAME,
          // etcd mode calls no Kubernetes API: no token in the pod at all.
          automountServiceAccountToken: o.mode !== 'etcd',
          nodeSelector: { 'kubernetes.io/os': 'linux' },
          // Every taint: a node without a pod network is exactly where the agent must run.
          tolerations: [{ operator: 'Exists' }],
          securityContext: {
            seccompProfile: { type: 'RuntimeDefault' },
            // SELinux-enforcing nodes (Bottlerocket, RHEL) let container_t write only container
            // files, not the host directories above; spc_t is the type for such node agents.
            // Ignored where SELinux is off.
            seLinuxOptions: { type: 'spc_t', level: 's0' },
          },
          initContainers: [installCni],
          containers: [agent],
          volumes,
        },
      },
    },
  };
}
