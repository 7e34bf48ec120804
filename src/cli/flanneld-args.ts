// flanneld's command lines, as kube-flannel manifests and systemd units write them, for
// `weft agent`. flanneld parses with Go's flag package, which takes a long flag with one dash
// or two (`-iface=eth0`, `--iface eth0`); commander takes only two. So before commander sees
// argv, this rewrites `-name…` to `--name…` for the agent's known long flag names, walking the
// arguments as Go does: a non-boolean flag without "=" consumes the next argument as its
// value, and parsing stops at "--" or at the first argument that is not a flag. Flags flanneld
// has but weft does not implement are refused here, each with what to use instead.
import { FLAG_NAMES } from '../agent/options.ts';

/** A command line weft cannot run: one line for the user; the CLI exits 2. */
export class UsageError extends Error {
  readonly command: string;

  constructor(command: string, message: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

const ETCD_MODE = 'weft runs flanneld\'s etcd mode: give --etcd-endpoints, and write the network config to etcd at <etcd-prefix>/config';

/** flanneld's flags (current and removed) that weft does not implement, with what to do instead. */
export const UNSUPPORTED_FLANNELD_FLAGS: Readonly<Record<string, string>> = {
  'net-config-path': `the network config comes from etcd (etcd mode) or the ConfigMap named by --kube-config-map (--store kube), not a file: ${ETCD_MODE}`,
  'set-node-network-unavailable': 'weft does not set the NetworkUnavailable node condition; drop it',
  'iface-can-reach': 'choose the interface with --iface (a name or an address) or --iface-regex',
  'public-ipv6': 'weft supports IPv4 networks only so far; drop it',
  'ip-masq-fully-random-disable': 'weft masquerades with --random-fully whenever iptables/nftables support it; drop it',
  'ip-blackhole-route': 'weft does not install a blackhole route for the node\'s subnet; drop it',
  v: 'klog verbosity: use --log-level trace|debug|info|warn|error instead',
  vmodule: 'klog verbosity: use --log-level trace|debug|info|warn|error instead',
  log_backtrace_at: 'klog option: use --log-level and --log-format instead',
  listen: 'flannel\'s client/server mode was removed in flannel 0.8; run one agent per node against etcd',
  remote: 'flannel\'s client/server mode was removed in flannel 0.8; run one agent per node against etcd',
  'remote-keyfile': 'flannel\'s client/server mode was removed in flannel 0.8; use --etcd-keyfile',
  'remote-certfile': 'flannel\'s client/server mode was removed in flannel 0.8; use --etcd-certfile',
  'remote-cafile': 'flannel\'s client/server mode was removed in flannel 0.8; use --etcd-cafile',
  networks: 'flannel\'s multi-network mode was removed in flannel 0.8; run one network per etcd prefix',
  'watch-networks': 'flannel\'s multi-network mode was removed in flannel 0.8; run one network per etcd prefix',
  'subnet-dir': 'flannel\'s multi-network mode was removed in flannel 0.8; use --subnet-file',
};

/** Flags without a value of their own (Go's bool flags: `-ip-masq`, `-ip-masq=false`, never `-ip-masq false`). */
const BOOLEAN_FLAGS = new Set(['ip-masq', 'iptables-forward-rules', 'kube-peers', 'kube-subnet-mgr', 'version', 'help']);
const KNOWN_FLAGS = new Set([...Object.values(FLAG_NAMES), 'version', 'help']);

/**
 * `weft agent`'s arguments with flanneld's spellings turned into commander's. Throws
 * UsageError for a flag flanneld has and weft does not implement.
 */
export function normalizeAgentArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '--' || !arg.startsWith('-') || arg === '-') {
      out.push(...args.slice(i)); // Go stops at the first non-flag; commander reports what follows
      break;
    }
    const m = /^--?([A-Za-z][\w-]*)(=.*)?$/s.exec(arg);
    const name = m?.[1];
    if (name === undefined || (name.length === 1 && !arg.startsWith('--') && !(name in UNSUPPORTED_FLANNELD_FLAGS))) {
      out.push(arg); // a short flag (-h, -V): commander's own
      continue;
    }
    if (name === 'kube-subnet-mgr') {
      // flanneld's switch to its Kubernetes subnet manager is weft's kube store.
      if (!/^=(false|0)$/i.test(m?.[2] ?? '')) out.push('--store=kube');
      continue;
    }
    const reason = UNSUPPORTED_FLANNELD_FLAGS[name];
    if (reason !== undefined) throw new UsageError('weft agent', `${arg.replace(/=.*$/s, '')} is not supported by weft: ${reason}`);
    if (!KNOWN_FLAGS.has(name)) {
      out.push(arg); // commander names the unknown option
      continue;
    }
    out.push(`--${name}${m?.[2] ?? ''}`);
    if (m?.[2] === undefined && !BOOLEAN_FLAGS.has(name) && i + 1 < args.length) out.push(args[++i] ?? '');
  }
  return out;
}
