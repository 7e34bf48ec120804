// What `weft manifests` takes, checked before anything is rendered. Values the agent will read
// are checked by the agent's own parsers (net-conf.json by flannel's rules, agent flags and
// environment by resolveAgentOptions), so a manifest that renders is one the agent accepts.
import { WeftError } from '../errors.ts';
import { envNames, resolveAgentOptions, WEAVE_ENV, FLAG_NAMES, type AgentOptions } from '../agent/options.ts';
import { parseNetworkConfig } from '../lease/network-config.ts';
import { formatCidr, parseCidr } from '../net/cidr.ts';
import pkg from '../../package.json' with { type: 'json' };

export const MANIFEST_MODES = ['etcd', 'kube', 'mesh'] as const;
export type ManifestMode = (typeof MANIFEST_MODES)[number];
export const BACKENDS = ['vxlan', 'host-gw', 'auto'] as const;
export type Backend = (typeof BACKENDS)[number];

/** The etcd endpoint deploy/weft-etcd.yaml is rendered with: obviously not a real cluster's. */
export const ETCD_PLACEHOLDER = 'https://etcd.example.internal:2379';
export const DEFAULT_IMAGE = `ghcr.io/weft-net/weft:${pkg.version}`;
export const DEFAULT_NAMESPACE = 'weft';
/** flannel's default Network (kube-flannel.yml), for the modes that read net-conf.json. */
export const DEFAULT_NETWORK = '10.244.0.0/16';
/** Weave's default IPALLOC_RANGE, which is also the agent's. */
export const DEFAULT_IPALLOC_RANGE = '10.32.0.0/12';

export interface ManifestOptions {
  mode: ManifestMode;
  etcdEndpoints: string[];
  /** etcd and kube modes: net-conf.json's Network. */
  network: string;
  /** net-conf.json's Backend.Type (etcd, kube) or --mesh-backend (mesh). */
  backend: Backend;
  /** mesh: IPALLOC_RANGE. */
  ipallocRange: string;
  /** mesh: the Secret whose key `weave-passwd` becomes WEAVE_PASSWORD. */
  passwordSecret: string | undefined;
  image: string;
  namespace: string;
  /** Extra environment for the agent (Weave's names, FLANNELD_*, WEFT_*), checked by the agent's parser. */
  env: [string, string][];
}

/** As given on the command line: anything may be missing or wrong. */
export interface ManifestInput {
  mode?: string;
  etcdEndpoints?: string;
  network?: string;
  backend?: string;
  ipallocRange?: string;
  passwordSecret?: string;
  image?: string;
  namespace?: string;
  env?: string[];
}

const invalid = (message: string): WeftError => new WeftError('WEFT_INVALID_CONFIG', message);

/** Agent flags the DaemonSet sets itself; the environment must not fight them (a flag wins over env). */
export const FLAGS_SET_BY_MANIFEST: readonly (keyof AgentOptions)[] = ['store', 'etcdEndpoints', 'ipMasq', 'healthzPort', 'meshBackend', 'kubePeers', 'ipallocRange', 'passwordFile'];
/** Kubernetes object names (DNS-1123 labels for namespaces; Secret names are subdomains). */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
// A reference as the container runtimes take it: [registry/]path[:tag][@digest], no spaces.
const IMAGE_REF = /^[a-z0-9][a-z0-9._/:-]{0,254}(@sha256:[a-f0-9]{64})?$/i;

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw invalid(`--${flag} ${JSON.stringify(value)}: expected one of ${allowed.join(', ')}`);
  return value as T;
}

function onlyIn(mode: ManifestMode, allowed: ManifestMode, flag: string, value: unknown, instead: string): void {
  if (value !== undefined && mode !== allowed) throw invalid(`--${flag} applies to --mode ${allowed} only; ${instead}`);
}

function checkNetwork(network: string, backend: Backend): void {
  let conf;
  try {
    conf = parseNetworkConfig(JSON.stringify({ Network: network, Backend: { Type: backend } }));
  } catch (e) {
    throw invalid(`--network ${network}: ${(e as Error).message}`);
  }
  // flannel silently masks host bits; a manifest should say what it means.
  if (conf.warnings.length > 0) throw invalid(`--network ${network}: ${conf.warnings.join('; ')}`);
  if (conf.ipv4 === undefined) throw invalid(`--network ${network}: expected an IPv4 network such as ${DEFAULT_NETWORK}`);
}

function checkIpallocRange(range: string): void {
  let canonical: string;
  try {
    canonical = formatCidr(parseCidr(range));
  } catch (e) {
    throw invalid(`--ipalloc-range ${range}: ${(e as Error).message}`);
  }
  if (canonical !== range || range.includes(':')) throw invalid(`--ipalloc-range ${range}: expected an IPv4 network without host bits, e.g. ${canonical}`);
}

/** Names the agent reads from its environment, and which of them a manifest may set. */
function allowedEnv(mode: ManifestMode): Map<string, string> {
  const allowed = new Map<string, string>();
  for (const key of Object.keys(FLAG_NAMES) as (keyof AgentOptions)[]) {
    if (FLAGS_SET_BY_MANIFEST.includes(key)) continue;
    for (const name of envNames(FLAG_NAMES[key])) allowed.set(name, FLAG_NAMES[key]);
    const weave = WEAVE_ENV[key];
    if (weave && mode === 'mesh') allowed.set(weave, FLAG_NAMES[key]);
  }
  return allowed;
}

function parseEnv(mode: ManifestMode, entries: readonly string[]): [string, string][] {
  const allowed = allowedEnv(mode);
  const out = new Map<string, string>();
  for (const entry of entries) {
    const m = /^([A-Z][A-Z0-9_]{0,63})=(.*)$/s.exec(entry);
    if (!m) throw invalid(`--env ${JSON.stringify(entry)}: expected NAME=VALUE, e.g. CONN_LIMIT=100`);
    const [, name = '', value = ''] = m;
    if (/PASSWORD/.test(name)) throw invalid(`--env ${name}: a password does not belong in a manifest; use --password-secret <Secret name> (mesh) or mount a Secret yourself`);
    if (name === 'IPALLOC_RANGE') throw invalid('--env IPALLOC_RANGE: use --ipalloc-range');
    if (!allowed.has(name)) {
      const hint = Object.values(WEAVE_ENV).includes(name) && mode !== 'mesh' ? `${name} is read in mesh mode only` : `the agent does not read ${name}, or the manifest sets that flag itself`;
      throw invalid(`--env ${name}: ${hint}; see \`weft agent --help\` for the FLANNELD_<FLAG> names`);
    }
    if (value === '') throw invalid(`--env ${name}=: the value is empty (the agent treats that as unset); leave it out instead`);
    if (value.length > 4096) throw invalid(`--env ${name}: the value is over 4096 characters`);
    out.set(name, value);
  }
  // The agent's parser is the judge of the values, together (WEFT_FAST_PATH=ebpf needs WEFT_POD_LINK=routed).
  try {
    resolveAgentOptions({}, Object.fromEntries(out));
  } catch (e) {
    throw invalid(`--env: ${(e as Error).message}`);
  }
  return [...out.entries()];
}

export function resolveManifestOptions(input: ManifestInput): ManifestOptions {
  if (input.mode === undefined) throw invalid(`--mode is required: one of ${MANIFEST_MODES.join(', ')}`);
  const mode = oneOf('mode', input.mode, MANIFEST_MODES);
  onlyIn(mode, 'etcd', 'etcd-endpoints', input.etcdEndpoints, 'the kube and mesh modes need no etcd');
  onlyIn(mode, 'mesh', 'ipalloc-range', input.ipallocRange, 'etcd and kube modes take --network (net-conf.json)');
  onlyIn(mode, 'mesh', 'password-secret', input.passwordSecret, 'etcd and kube modes do not use a mesh password');
  if (mode === 'mesh' && input.network !== undefined) throw invalid('--network applies to the etcd and kube modes; mesh mode takes --ipalloc-range (Weave\'s IPALLOC_RANGE)');

  let etcdEndpoints: string[] = [];
  if (mode === 'etcd') {
    if (input.etcdEndpoints === undefined || input.etcdEndpoints.trim() === '') {
      throw invalid(`--mode etcd needs --etcd-endpoints <urls>: the agent's default (http://127.0.0.1:2379) means the pod itself, where no etcd runs; e.g. --etcd-endpoints ${ETCD_PLACEHOLDER}, or use --mode kube (no etcd at all)`);
    }
    etcdEndpoints = resolveAgentOptions({ etcdEndpoints: input.etcdEndpoints }, {}).etcdEndpoints;
  }
  // vxlan everywhere by default: direct routes (host-gw, auto) need the cloud to carry pod
  // addresses between nodes, which EC2 refuses until each node's source/dest check is off.
  const backend = oneOf('backend', input.backend ?? 'vxlan', BACKENDS);
  const network = input.network ?? DEFAULT_NETWORK;
  if (mode !== 'mesh') checkNetwork(network, backend);
  const ipallocRange = input.ipallocRange ?? DEFAULT_IPALLOC_RANGE;
  if (mode === 'mesh') checkIpallocRange(ipallocRange);
  if (input.passwordSecret !== undefined && !DNS_SUBDOMAIN.test(input.passwordSecret)) {
    throw invalid(`--password-secret ${JSON.stringify(input.passwordSecret)}: expected a Secret name (lower-case letters, digits, "-" and ".")`);
  }
  const namespace = input.namespace ?? DEFAULT_NAMESPACE;
  if (!DNS_LABEL.test(namespace)) throw invalid(`--namespace ${JSON.stringify(namespace)}: expected a namespace name (lower-case letters, digits and "-", at most 63)`);
  const image = input.image ?? DEFAULT_IMAGE;
  if (!IMAGE_REF.test(image)) throw invalid(`--image ${JSON.stringify(image)}: expected an image reference such as ${DEFAULT_IMAGE}`);
  return { mode, etcdEndpoints, network, backend, ipallocRange, passwordSecret: input.passwordSecret, image, namespace, env: parseEnv(mode, input.env ?? []) };
}
