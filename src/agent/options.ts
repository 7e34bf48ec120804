// The agent's options: flanneld's flag names wherever the concept is the same, so a
// kube-flannel or systemd flanneld command line translates 1:1. Every flag also has an
// environment form: FLANNELD_<UPPER_SNAKE> (flanneld's) or WEFT_<UPPER_SNAKE>; a flag on the
// command line wins over the environment, which wins over the default.
import { WeftError } from '../errors.ts';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../log/logger.ts';
import { DEFAULT_LOCK_FILE } from './node-lock.ts';

export type EtcdApi = 'v2' | 'v3' | 'auto';

export interface AgentOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdKeyfile: string | undefined;
  etcdCertfile: string | undefined;
  etcdCafile: string | undefined;
  etcdUsername: string | undefined;
  etcdPassword: string | undefined;
  etcdApi: EtcdApi;
  iface: string[];
  ifaceRegex: string[];
  publicIp: string | undefined;
  ipMasq: boolean;
  subnetFile: string;
  /** Seconds before expiry at which the lease is renewed. */
  renewMarginSeconds: number;
  /** weft: the lease TTL in seconds (flanneld hard-codes 24 h). */
  leaseTtlSeconds: number;
  healthzIp: string;
  /** 0 disables the health endpoint, as in flanneld. */
  healthzPort: number;
  /** Seconds between checks of the firewall rules (flanneld's --iptables-resync). */
  iptablesResyncSeconds: number;
  iptablesForwardRules: boolean;
  /** weft: seconds between full reconciles of the data plane with the kernel. */
  reconcileSeconds: number;
  /** weft: the status socket (root only). */
  statusSocket: string;
  /** weft: where the CNI server listens; "" disables it. */
  cniSocket: string;
  /** weft: the node lock (one agent per node; `weft uninstall` takes it too). */
  lockFile: string;
  /** weft: the least severe log level written. */
  logLevel: LogLevel;
  /** weft: JSON lines (pino's format) or one readable text line per event. */
  logFormat: LogFormat;
  /** weft: where pod ranges come from: etcd (flannel's leases) or mesh (no store; Weave-style). */
  store: StoreMode;
  /** mesh: initial peers, host or host:port (Weave's KUBE_PEERS / `weave launch <peers>`). */
  peers: string[];
  /** mesh: the control-plane TCP port (Weave's 6783). */
  meshPort: number;
  /** mesh: the address the control plane listens on. */
  meshListen: string;
  /** mesh: this peer's name (default: generated once, kept in --mesh-dir). */
  meshName: string | undefined;
  /** mesh: a human label for this peer (default: the node name). */
  nickname: string | undefined;
  /** mesh: the pod address range (IPALLOC_RANGE). */
  ipallocRange: string;
  /** mesh: the prefix length of the address blocks peers own. */
  ipallocBlock: number;
  /** mesh: how the first ring is seeded: consensus[=N], seed=a,b,... or observer (IPALLOC_INIT). */
  ipallocInit: string | undefined;
  /** mesh: a file holding the mesh password (or WEAVE_PASSWORD in the environment). */
  passwordFile: string | undefined;
  /** mesh: the most control connections this peer holds (CONN_LIMIT). */
  connLimit: number;
  /** mesh: the pod MTU (WEAVE_MTU); default: the underlay's minus the VXLAN overhead. */
  mtu: number | undefined;
  /** mesh: the identity and IPAM state directory. */
  meshDir: string;
  /** mesh: a peer neither connected nor heard from for this long is unreachable (and may be rmpeer'd). */
  meshDeadAfterSeconds: number;
  /** mesh: the data plane: auto (direct routes on a shared segment, VXLAN elsewhere), vxlan or host-gw. */
  meshBackend: 'auto' | 'vxlan' | 'host-gw';
  /** kube: a kubeconfig file (flanneld's --kubeconfig-file); unset: in-cluster config, else $KUBECONFIG or ~/.kube/config. */
  kubeconfigFile: string | undefined;
  /** kube: the API server URL, overriding the kubeconfig's (flanneld's --kube-api-url). */
  kubeApiUrl: string | undefined;
  /** kube: this node's Node name (env NODE_NAME, as kube-flannel sets it; default: the hostname). */
  nodeName: string | undefined;
  /** kube: the namespace of weft's ConfigMap and claims (env POD_NAMESPACE, from the downward API). */
  kubeNamespace: string;
  /** kube: the ConfigMap holding net-conf.json. */
  kubeConfigMap: string;
  /** kube: the prefix of the Node annotations peers publish (flanneld's --kube-annotation-prefix). */
  kubeAnnotationPrefix: string;
  /** mesh: discover peers from the Kubernetes Node list and reclaim deleted Nodes' address blocks. */
  kubePeers: boolean;
  /** weft: the container runtime's CNI config dir, checked for configs in weft's way (src/agent/leftovers.ts); "" = not checked. */
  cniConfDir: string;
  /** weft: how pod veths meet the node: on the cni0 bridge (flannel's), or routed (a /32 route per pod; docs/dataplane.md). */
  podLink: PodLinkMode;
  /** weft: the tc-eBPF fast path for pod↔pod traffic (needs --pod-link routed); none keeps the kernel's normal path. */
  fastPath: FastPathMode;
  /** weft: where the fast path's BPF maps are pinned (on a bpffs, mounted there if needed). */
  bpfDir: string;
}

export type PodLinkMode = 'bridge' | 'routed';
export type FastPathMode = 'none' | 'ebpf';
export const POD_LINK_MODES: readonly PodLinkMode[] = ['bridge', 'routed'];
export const FAST_PATH_MODES: readonly FastPathMode[] = ['none', 'ebpf'];

export type StoreMode = 'etcd' | 'mesh' | 'kube';

export const DEFAULT_AGENT_OPTIONS: Readonly<AgentOptions> = Object.freeze({
  etcdEndpoints: ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'],
  etcdPrefix: '/coreos.com/network',
  etcdKeyfile: undefined,
  etcdCertfile: undefined,
  etcdCafile: undefined,
  etcdUsername: undefined,
  etcdPassword: undefined,
  etcdApi: 'auto',
  iface: [],
  ifaceRegex: [],
  publicIp: undefined,
  ipMasq: false,
  subnetFile: '/run/flannel/subnet.env',
  renewMarginSeconds: 60 * 60,
  leaseTtlSeconds: 24 * 60 * 60,
  healthzIp: '0.0.0.0',
  healthzPort: 0,
  iptablesResyncSeconds: 5,
  iptablesForwardRules: true,
  reconcileSeconds: 10,
  statusSocket: '/run/weft/agent.sock',
  cniSocket: '@weft-cni',
  lockFile: DEFAULT_LOCK_FILE,
  logLevel: 'info',
  logFormat: 'json',
  store: 'etcd',
  peers: [],
  meshPort: 6783,
  meshListen: '0.0.0.0',
  meshName: undefined,
  nickname: undefined,
  ipallocRange: '10.32.0.0/12',
  ipallocBlock: 26,
  ipallocInit: undefined,
  passwordFile: undefined,
  connLimit: 64,
  mtu: undefined,
  meshDir: '/var/lib/weft/mesh',
  meshBackend: 'auto',
  meshDeadAfterSeconds: 90,
  kubeconfigFile: undefined,
  kubeApiUrl: undefined,
  nodeName: undefined,
  kubeNamespace: 'weft',
  kubeConfigMap: 'weft-cfg',
  kubeAnnotationPrefix: 'flannel.alpha.coreos.com',
  kubePeers: false,
  cniConfDir: '/etc/cni/net.d',
  podLink: 'bridge',
  fastPath: 'none',
  bpfDir: '/sys/fs/bpf/weft',
});

/** flanneld's flag name for each option (weft-only options have weft names). */
export const FLAG_NAMES: Record<keyof AgentOptions, string> = {
  etcdEndpoints: 'etcd-endpoints',
  etcdPrefix: 'etcd-prefix',
  etcdKeyfile: 'etcd-keyfile',
  etcdCertfile: 'etcd-certfile',
  etcdCafile: 'etcd-cafile',
  etcdUsername: 'etcd-username',
  etcdPassword: 'etcd-password',
  etcdApi: 'etcd-api',
  iface: 'iface',
  ifaceRegex: 'iface-regex',
  publicIp: 'public-ip',
  ipMasq: 'ip-masq',
  subnetFile: 'subnet-file',
  renewMarginSeconds: 'subnet-lease-renew-margin',
  leaseTtlSeconds: 'subnet-lease-ttl',
  healthzIp: 'healthz-ip',
  healthzPort: 'healthz-port',
  iptablesResyncSeconds: 'iptables-resync',
  iptablesForwardRules: 'iptables-forward-rules',
  reconcileSeconds: 'reconcile-interval',
  statusSocket: 'status-socket',
  cniSocket: 'cni-socket',
  lockFile: 'lock-file',
  logLevel: 'log-level',
  logFormat: 'log-format',
  store: 'store',
  peers: 'peers',
  meshPort: 'mesh-port',
  meshListen: 'mesh-listen',
  meshName: 'name',
  nickname: 'nickname',
  ipallocRange: 'ipalloc-range',
  ipallocBlock: 'ipalloc-block',
  ipallocInit: 'ipalloc-init',
  passwordFile: 'password-file',
  connLimit: 'conn-limit',
  mtu: 'mtu',
  meshDir: 'mesh-dir',
  meshBackend: 'mesh-backend',
  meshDeadAfterSeconds: 'mesh-dead-after',
  kubeconfigFile: 'kubeconfig-file',
  kubeApiUrl: 'kube-api-url',
  nodeName: 'node-name',
  kubeNamespace: 'kube-namespace',
  kubeConfigMap: 'kube-config-map',
  kubeAnnotationPrefix: 'kube-annotation-prefix',
  kubePeers: 'kube-peers',
  cniConfDir: 'cni-conf-dir',
  podLink: 'pod-link',
  fastPath: 'fast-path',
  bpfDir: 'bpf-dir',
};

/** Weave Net's environment names, where the concept is the same (its add-on set these). */
export const WEAVE_ENV: Partial<Record<keyof AgentOptions, string>> = {
  peers: 'KUBE_PEERS',
  ipallocRange: 'IPALLOC_RANGE',
  ipallocInit: 'IPALLOC_INIT',
  connLimit: 'CONN_LIMIT',
  mtu: 'WEAVE_MTU',
};

/** The environment a Kubernetes manifest sets from the downward API (kube-flannel's names). */
export const KUBE_ENV: Partial<Record<keyof AgentOptions, string>> = {
  nodeName: 'NODE_NAME',
  kubeNamespace: 'POD_NAMESPACE',
};

export function envNames(flag: string): string[] {
  const snake = flag.toUpperCase().replaceAll('-', '_');
  return [`FLANNELD_${snake}`, `WEFT_${snake}`];
}

/** A flag's value from the environment (FLANNELD_<NAME>, then WEFT_<NAME>; empty counts as unset). */
export function envValue(flag: string, env: Record<string, string | undefined> = process.env): string | undefined {
  return envNames(flag).map((n) => env[n]).find((v) => v !== undefined && v !== '');
}

const bad = (flag: string, value: string, why: string): WeftError =>
  new WeftError('WEFT_INVALID_CONFIG', `--${flag}=${JSON.stringify(value)}: ${why}`);

/**
 * A duration in seconds: a number with a unit (ms, s, m, h; "1.5h", "250ms"), or a bare number
 * of `bareUnitSeconds` each (flanneld's --subnet-lease-renew-margin is bare minutes). The one
 * duration parser of the project: the lab's --lease-ttl goes through it too.
 */
export function parseDuration(flag: string, value: string, bareUnitSeconds: number): number {
  const m = /^(\d{1,12}(?:\.\d{1,9})?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw bad(flag, value, 'expected a number, optionally with a unit: ms, s, m or h (e.g. 30s)');
  const n = Number(m[1]);
  const unit = m[2] === undefined ? bareUnitSeconds : { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return n * unit;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw bad(flag, value, `expected one of ${allowed.join(', ')}`);
  return value as T;
}

function parseBool(flag: string, value: string): boolean {
  if (['true', '1', 'yes'].includes(value.toLowerCase())) return true;
  if (['false', '0', 'no'].includes(value.toLowerCase())) return false;
  throw bad(flag, value, 'expected true or false');
}

function parsePort(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw bad(flag, value, 'expected a port number 0-65535');
  return n;
}

/** Raw values as strings (repeatable flags as lists), from flags and the environment. */
export type RawOptions = Partial<Record<keyof AgentOptions, string | string[] | boolean>>;

export function resolveAgentOptions(flags: RawOptions, env: Record<string, string | undefined> = process.env): AgentOptions {
  const out: AgentOptions = { ...DEFAULT_AGENT_OPTIONS, etcdEndpoints: [...DEFAULT_AGENT_OPTIONS.etcdEndpoints] };
  for (const key of Object.keys(FLAG_NAMES) as (keyof AgentOptions)[]) {
    const flag = FLAG_NAMES[key];
    let raw = flags[key];
    if (raw === undefined) {
      const alias = WEAVE_ENV[key] ?? KUBE_ENV[key];
      const fromEnv = envValue(flag, env) ?? (alias && env[alias] ? env[alias] : undefined);
      if (fromEnv !== undefined) raw = fromEnv;
    }
    if (raw === undefined) continue;
    const text = Array.isArray(raw) ? raw.join(',') : String(raw);
    const list = (): string[] => (Array.isArray(raw) ? raw : text.split(',')).map((s) => s.trim()).filter((s) => s !== '');
    switch (key) {
      case 'etcdEndpoints': {
        const endpoints = list();
        for (const e of endpoints) if (!/^https?:\/\/[^/]+$/.test(e.replace(/\/$/, ''))) throw bad(flag, e, 'expected http(s)://host:port');
        if (endpoints.length === 0) throw bad(flag, text, 'needs at least one endpoint');
        out.etcdEndpoints = endpoints;
        break;
      }
      case 'etcdApi':
        out.etcdApi = oneOf(flag, text, ['v2', 'v3', 'auto'] as const);
        break;
      case 'logLevel':
        out.logLevel = oneOf(flag, text, LOG_LEVELS);
        break;
      case 'logFormat':
        out.logFormat = oneOf(flag, text, LOG_FORMATS);
        break;
      case 'lockFile':
        if (text === '') throw bad(flag, text, 'needs a path (the node lock cannot be turned off)');
        out.lockFile = text;
        break;
      case 'iface':
      case 'ifaceRegex':
        out[key] = list();
        break;
      case 'ipMasq':
      case 'iptablesForwardRules':
      case 'kubePeers':
        out[key] = typeof raw === 'boolean' ? raw : parseBool(flag, text);
        break;
      case 'healthzPort':
      case 'meshPort':
        out[key] = parsePort(flag, text);
        break;
      case 'store':
        out.store = oneOf(flag, text, ['etcd', 'mesh', 'kube'] as const);
        break;
      case 'podLink':
        out.podLink = oneOf(flag, text, POD_LINK_MODES);
        break;
      case 'fastPath':
        out.fastPath = oneOf(flag, text, FAST_PATH_MODES);
        break;
      case 'bpfDir':
        if (!text.startsWith('/')) throw bad(flag, text, 'expected an absolute path, e.g. /sys/fs/bpf/weft');
        out.bpfDir = text;
        break;
      case 'meshBackend':
        out.meshBackend = oneOf(flag, text, ['auto', 'vxlan', 'host-gw'] as const);
        break;
      case 'peers':
        // KUBE_PEERS is space-separated; the flag takes commas too.
        out.peers = (Array.isArray(raw) ? raw : [text]).flatMap((p) => p.split(/[\s,]+/)).filter((p) => p !== '');
        break;
      case 'ipallocBlock':
      case 'connLimit':
      case 'mtu': {
        const n = Number(text);
        const [min, max] = { ipallocBlock: [8, 30], connLimit: [1, 4096], mtu: [576, 65000] }[key];
        if (!/^\d+$/.test(text) || n < min! || n > max!) throw bad(flag, text, `expected a whole number from ${min} to ${max}`);
        out[key] = n;
        break;
      }
      case 'renewMarginSeconds': {
        const seconds = parseDuration(flag, text, 60);
        if (/^\d+$/.test(text) && (Number(text) < 1 || Number(text) > 1439)) throw bad(flag, text, 'minutes must be between 1 and 1439, as in flanneld');
        out.renewMarginSeconds = seconds;
        break;
      }
      case 'meshDeadAfterSeconds': {
        const seconds = parseDuration(flag, text, 1);
        if (!(seconds >= 6)) throw bad(flag, text, 'must be at least 6s (a few heartbeats)');
        out.meshDeadAfterSeconds = seconds;
        break;
      }
      case 'kubeApiUrl':
        if (!/^https?:\/\/[^/\s]+\/?$/.test(text)) throw bad(flag, text, 'expected https://host:port');
        out.kubeApiUrl = text.replace(/\/$/, '');
        break;
      case 'nodeName':
      case 'kubeNamespace':
      case 'kubeConfigMap':
        // Kubernetes object names: DNS-1123 subdomains (Node names may hold dots).
        if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(text)) throw bad(flag, text, 'expected a Kubernetes object name (lower-case letters, digits, "-" and ".")');
        out[key] = text;
        break;
      case 'leaseTtlSeconds':
      case 'iptablesResyncSeconds':
      case 'reconcileSeconds': {
        const seconds = parseDuration(flag, text, 1);
        if (!(seconds > 0)) throw bad(flag, text, 'must be greater than zero');
        out[key] = seconds;
        break;
      }
      default:
        (out as unknown as Record<string, string>)[key] = text;
    }
  }
  if (out.renewMarginSeconds >= out.leaseTtlSeconds) {
    throw new WeftError('WEFT_INVALID_CONFIG', `--subnet-lease-renew-margin (${out.renewMarginSeconds}s) must be shorter than --subnet-lease-ttl (${out.leaseTtlSeconds}s)`);
  }
  if ((out.etcdKeyfile === undefined) !== (out.etcdCertfile === undefined)) {
    throw new WeftError('WEFT_INVALID_CONFIG', '--etcd-keyfile and --etcd-certfile go together: TLS client authentication needs both');
  }
  if (out.fastPath === 'ebpf' && out.podLink !== 'routed') {
    throw new WeftError('WEFT_INVALID_CONFIG', '--fast-path ebpf needs --pod-link routed: the fast path redirects into routed pod veths, not into the bridge');
  }
  for (const re of out.ifaceRegex) {
    try {
      new RegExp(re);
    } catch (e) {
      throw bad('iface-regex', re, (e as Error).message);
    }
  }
  return out;
}
