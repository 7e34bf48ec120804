// `weft agent` (the node agent) and `weft uninstall`; `weft status` lives in status.ts.
// Flags keep flanneld's names; see src/agent/options.ts for defaults and env forms.
import type { Command } from 'commander';
import { createLogger, type Logger } from '../log/logger.ts';
import { DEFAULT_AGENT_OPTIONS, FLAG_NAMES, envNames, envValue, type AgentOptions, type RawOptions } from '../agent/options.ts';
import type { UninstallReport } from '../agent/uninstall.ts';
import { isWeftError } from '../errors.ts';
import { UsageError } from './flanneld-args.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** A flag's default as the agent resolves it: FLANNELD_<NAME> or WEFT_<NAME> if set, else the built-in one. */
function fromEnv(flag: string, fallback: string): string {
  return envValue(flag) ?? fallback;
}

/** What uninstall removed is its report on stdout; its log (stderr) is for errors, as text, unless asked otherwise. */
function uninstallLogger(): Logger {
  const format = process.env.WEFT_LOG_FORMAT === 'json' ? 'json' : 'text';
  return createLogger({ name: 'weft-uninstall', fd: 2, level: process.env.WEFT_LOG_LEVEL || 'error', format });
}

function renderUninstall(r: UninstallReport, subnetFile: string): string {
  const parts = [
    r.firewall.length === 0 ? 'no masquerade/forward rules found' : `rules: ${r.firewall.join('; ')}`,
    `${r.devices.length} device(s)${r.devices.length > 0 ? ` ${r.devices.join(' ')}` : ''}`,
    `${r.routes} route(s)`,
    r.subnetFile ? subnetFile : `${subnetFile} (was not there)`,
    ...(r.fastPath.detached.length > 0 ? [`fast path programs on ${r.fastPath.detached.join(' ')}`] : []),
    ...(r.fastPath.pins ? ['the fast path\'s pinned maps'] : []),
  ];
  return `removed: ${parts.join(', ')}\n`;
}

const help: Record<keyof AgentOptions, string> = {
  etcdEndpoints: 'comma-separated etcd client URLs',
  etcdPrefix: 'etcd key prefix of the network config and leases',
  etcdKeyfile: 'TLS client key for etcd',
  etcdCertfile: 'TLS client certificate for etcd',
  etcdCafile: 'CA bundle for the etcd server certificate',
  etcdUsername: 'etcd username',
  etcdPassword: 'etcd password',
  etcdApi: 'etcd API: v2, v3, or auto (what the server speaks and where the config lives)',
  iface: 'external interface, by name or address (repeatable; tried in order)',
  ifaceRegex: 'regex matched against interface addresses, then names (repeatable)',
  publicIp: 'address other nodes send to (default: the interface address)',
  ipMasq: 'masquerade traffic from pods to outside the cluster network',
  subnetFile: "where to write this node's subnet.env",
  renewMarginSeconds: 'renew the lease this long before it expires: minutes, or a duration like 30s',
  leaseTtlSeconds: 'lease TTL (flanneld: 24h), e.g. 24h or 20s',
  healthzIp: 'address of the /healthz and /readyz endpoints',
  healthzPort: 'port of the /healthz and /readyz endpoints (0 = off)',
  iptablesResyncSeconds: 'seconds between checks of the masquerade/forward rules',
  iptablesForwardRules: 'accept forwarded traffic to and from the pod network',
  reconcileSeconds: 'interval of full data plane reconciles, e.g. 10s',
  statusSocket: 'unix socket for `weft status` (root only)',
  cniSocket: 'socket of the built-in CNI server ("@name" = abstract; "" = off)',
  lockFile: 'the node lock: one agent per node (`weft uninstall` takes it too)',
  logLevel: 'least severe log level written: trace, debug, info, warn or error',
  logFormat: 'json (one JSON object per line) or text (one readable line per event)',
  store: 'where pod ranges come from: etcd (flannel-compatible leases), kube (the Kubernetes API: no etcd to run) or mesh (no store: peers over TCP 6783, Weave-style)',
  peers: 'mesh: initial peers, host or host:port, comma- or space-separated (env KUBE_PEERS)',
  meshPort: 'mesh: control-plane TCP port',
  meshListen: 'mesh: address the control plane listens on',
  meshName: 'mesh: this peer\'s name (default: generated once and kept in --mesh-dir)',
  nickname: 'mesh: a label for this peer (default: $NODE_NAME or the hostname)',
  ipallocRange: 'mesh: the pod address range (env IPALLOC_RANGE)',
  ipallocBlock: 'mesh: prefix length of the address blocks peers own',
  ipallocInit: 'mesh: first seeding: consensus[=N] (N initial peers; default: the peer list plus this node), seed=<name>,..., or observer (env IPALLOC_INIT)',
  passwordFile: 'mesh: file with the mesh password (or env WEAVE_PASSWORD); encrypts and authenticates the control plane, not the data plane',
  connLimit: 'mesh: most control connections held at once (env CONN_LIMIT)',
  mtu: 'mesh: pod MTU (env WEAVE_MTU; default: the underlay MTU minus VXLAN overhead)',
  meshDir: 'mesh: identity and IPAM state directory',
  meshDeadAfterSeconds: "mesh: a peer not connected and not heard from for this long is unreachable (rmpeer is refused before), e.g. 90s",
  meshBackend: 'mesh: data plane: auto (direct routes on a shared L2 segment, VXLAN on UDP 6784 elsewhere), vxlan or host-gw',
  kubeconfigFile: 'kube: kubeconfig file (default: the in-cluster service account, else $KUBECONFIG or ~/.kube/config)',
  kubeApiUrl: 'kube: API server URL, overriding the kubeconfig\'s',
  nodeName: 'kube: this node\'s Node name (env NODE_NAME; default: the hostname)',
  kubeNamespace: 'kube: namespace of weft\'s ConfigMap and subnet claims (env POD_NAMESPACE)',
  kubeConfigMap: 'kube: the ConfigMap holding net-conf.json',
  kubeAnnotationPrefix: 'kube: prefix of the Node annotations with each node\'s backend data',
  kubePeers: 'mesh: discover peers from the Kubernetes Node list (InternalIP) and reclaim deleted Nodes\' address blocks',
  cniConfDir: 'the container runtime\'s CNI config dir, checked for configs that sort before weft\'s (the AWS VPC CNI\'s 10-aws.conflist) ("" = not checked)',
  podLink: 'how pod veths meet the node: bridge (on cni0, as flannel) or routed (a /32 route per pod, no bridge); docs/dataplane.md',
  fastPath: 'tc-eBPF fast path for pod-to-pod TCP/UDP: none or ebpf (needs --pod-link routed; falls back to the normal path, and says why, when the kernel cannot load it)',
  bpfDir: 'where the fast path pins its BPF maps (a bpffs; mounted there when it is not one)',
};

export function registerAgent(program: Command, version: string): void {
  const agent = program
    .command('agent')
    .version(version, '-V, --version', "print weft's version (flanneld: -version)")
    .description("the node agent: lease a subnet from etcd (flanneld-compatible) or own address blocks in a storeless mesh (--store mesh, Weave-style), write subnet.env, program the data plane, serve CNI")
    .addHelpText('after', `\nEvery flag can also be set as FLANNELD_<NAME> or WEFT_<NAME> in the environment, e.g. ${envNames('etcd-endpoints').join(' or ')}.\n` +
      "flanneld's one-dash spellings (-etcd-endpoints=…, -iface eth0, -ip-masq) work too; its flags that weft lacks are refused by name.");
  for (const key of Object.keys(FLAG_NAMES) as (keyof AgentOptions)[]) {
    const flag = FLAG_NAMES[key];
    const def = DEFAULT_AGENT_OPTIONS[key];
    const shownAs: Partial<Record<keyof AgentOptions, string>> = { meshDeadAfterSeconds: '90s', renewMarginSeconds: '60 (minutes)', leaseTtlSeconds: '24h', reconcileSeconds: '10s', iptablesResyncSeconds: '5 (seconds)' };
    const shown = shownAs[key] ?? (Array.isArray(def) ? def.join(',') : def === undefined ? undefined : String(def));
    const text = `${help[key]}${shown !== undefined && shown !== '' && !Array.isArray(def) ? ` (default ${shown})` : ''}`;
    if (key === 'iface' || key === 'ifaceRegex' || key === 'peers') agent.option(`--${flag} <value>`, text, collect);
    else if (typeof def === 'boolean') agent.option(`--${flag} [bool]`, text);
    else agent.option(`--${flag} <value>`, text);
  }
  agent.action(async (flags: Record<string, string | string[] | boolean>) => {
    const { resolveAgentOptions } = await import('../agent/options.ts');
    const { startAgent } = await import('../agent/start-agent.ts');
    const { createControlPlane } = await import('../modes/index.ts');
    const raw: RawOptions = {};
    // commander names each value after its flag (--subnet-lease-ttl → subnetLeaseTtl).
    const attribute = (flag: string): string => flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    for (const key of Object.keys(FLAG_NAMES) as (keyof AgentOptions)[]) {
      const value = flags[attribute(FLAG_NAMES[key])];
      if (value !== undefined) raw[key] = value;
    }
    let options;
    try {
      options = resolveAgentOptions(raw);
    } catch (e) {
      if (isWeftError(e, 'WEFT_INVALID_CONFIG')) throw new UsageError('weft agent', e.message);
      throw e;
    }
    const log = createLogger({ name: 'weft-agent', level: options.logLevel, format: options.logFormat });
    const running = await startAgent(options, log, createControlPlane(options.store, options, log, version), { version });
    const stop = (signal: string): void => {
      log.info({ signal }, 'weft agent stopping (the data plane stays as it is)');
      void running.stop().then(() => process.exit(0));
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    const reason = await running.done;
    if (reason.message !== 'stopped') {
      log.error({ err: reason.message }, 'weft agent failed');
      // A WeftError is the operator's to fix: main prints its one line on stderr and exits 1.
      if (isWeftError(reason)) throw reason;
      process.exit(1);
    }
  });

  program
    .command('uninstall')
    .description("remove what weft (or flanneld) installed on this node: masquerade/forward rules (iptables and nftables), flannel.<VNI> devices, weft's routes, subnet.env; refuses while an agent runs")
    .option('--subnet-file <path>', "this node's subnet.env, removed too", fromEnv('subnet-file', DEFAULT_AGENT_OPTIONS.subnetFile))
    .option('--lock-file <path>', 'the node lock the agent holds (uninstall refuses while it is held)', fromEnv('lock-file', DEFAULT_AGENT_OPTIONS.lockFile))
    .option('--bpf-dir <dir>', "the agent's --bpf-dir: the fast path's pinned maps there go too", fromEnv('bpf-dir', DEFAULT_AGENT_OPTIONS.bpfDir))
    .option('--json', 'print what was removed as JSON')
    .action(async (o: { subnetFile: string; lockFile: string; bpfDir: string; json?: boolean }) => {
      const { uninstall } = await import('../agent/uninstall.ts');
      const report = await uninstall({ subnetFile: o.subnetFile, lockFile: o.lockFile, bpfDir: o.bpfDir, log: uninstallLogger() });
      if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(renderUninstall(report, o.subnetFile));
    });
}
