// The cluster-wide network config at <prefix>/config (docs/flannel-compat.md §1.3), parsed with flannel's
// semantics so that a config written for flanneld means the same to weft:
//   - keys match case-insensitively ("network" = "Network"); when two spellings of one key
//     appear, the later one wins; null leaves the default; unknown keys are ignored (and
//     reported in `warnings`);
//   - defaults: EnableIPv4 true; SubnetLen 24 (or prefix+2 for networks smaller than /22);
//     SubnetMin = the second subnet (the first is skipped), SubnetMax = the last one;
//   - the same checks and limits (/28, /30, four subnets; /124, /126 for IPv6).
// The result is frozen and normalised: CIDRs as values, the backend's type lower-cased. Weft
// additionally rejects SubnetMin above SubnetMax. The Backend object is kept raw: its fields
// belong to the backend it names, which parses and validates them (src/dataplane's registry);
// this layer knows nothing of VNIs or ports.
import { WeftError } from '../errors.ts';
import {
  cidrContains, cidrSize, familyBits, formatCidr, formatIp, maskToNetwork, parseAddressWithPrefix, parseIp,
  prefixMask, type Cidr, type IpFamily,
} from '../net/cidr.ts';
import type { LeaseStore } from './store.ts';

/** flannel's "Backend" object: its Type, and the rest for the backend to read. */
export interface BackendSection {
  /** Backend.Type lower-cased; "vxlan" when Backend or its Type is absent (flannel's default, udp, is not weft's). */
  readonly type: string;
  /** The object as written, Type included; {} when Backend is absent. Untrusted: the backend validates it. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** One family's address plan: the network, each node's subnet length and the allowed range. */
export interface SubnetRange {
  readonly network: Cidr;
  readonly subnetLen: number;
  /** The lowest subnet a node may lease (a /subnetLen network). */
  readonly subnetMin: Cidr;
  /** The highest subnet a node may lease. */
  readonly subnetMax: Cidr;
}

export interface NetworkConfig {
  /** Set when EnableIPv4 (the default). */
  readonly ipv4: SubnetRange | undefined;
  /** Set when EnableIPv6. */
  readonly ipv6: SubnetRange | undefined;
  readonly enableNFTables: boolean;
  readonly backend: BackendSection;
  /** Things flanneld silently ignores that are probably mistakes (unknown keys, masked host bits). */
  readonly warnings: readonly string[];
}

export const DEFAULT_ETCD_PREFIX = '/coreos.com/network';

const TOP_KEYS = ['Network', 'EnableIPv4', 'EnableIPv6', 'IPv6Network', 'EnableNFTables', 'SubnetLen', 'SubnetMin',
  'SubnetMax', 'IPv6SubnetLen', 'IPv6SubnetMin', 'IPv6SubnetMax', 'Backend'] as const;
/** Go fields of flannel's Config that its etcd mode does not read from etcd (MultiClusterCIDR). */
const FLANNEL_IGNORED = new Set(['networks', 'ipv6networks']);

function invalid(message: string): WeftError {
  return new WeftError('WEFT_INVALID_CONFIG', `network config: ${message}`);
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/**
 * Looks keys up the way Go's encoding/json fills a struct without JSON tags: case-insensitively,
 * the last of several spellings winning, null meaning "absent". Unknown keys become warnings.
 */
function foldKeys<K extends string>(obj: Record<string, unknown>, known: readonly K[], where: string, warnings: string[]): Map<K, unknown> {
  const byLower = new Map(known.map((k) => [k.toLowerCase(), k]));
  const out = new Map<K, unknown>();
  for (const [name, value] of Object.entries(obj)) {
    const key = byLower.get(name.toLowerCase());
    if (key === undefined) {
      if (!(where === '' && FLANNEL_IGNORED.has(name.toLowerCase()))) warnings.push(`unknown key "${where}${name}" ignored`);
      continue;
    }
    if (value === null) out.delete(key);
    else out.set(key, value);
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function getBool(fields: Map<string, unknown>, key: string, name: string, fallback: boolean): boolean {
  const value = fields.get(key);
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalid(`"${name}" ${show(value)} must be true or false`);
  return value;
}

function getUint(fields: Map<string, unknown>, key: string, name: string): number | undefined {
  const value = fields.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalid(`"${name}" ${show(value)} must be a whole number`);
  }
  return value;
}

function getString(fields: Map<string, unknown>, key: string, name: string): string | undefined {
  const value = fields.get(key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`"${name}" ${show(value)} must be a string`);
  return value;
}

/** A network CIDR. Like flanneld (Go's net.ParseCIDR), host bits are masked off, with a warning. */
function getNetwork(fields: Map<string, unknown>, key: string, family: IpFamily, warnings: string[]): Cidr | undefined {
  const text = getString(fields, key, key);
  if (text === undefined) return undefined;
  let parsed;
  try {
    parsed = parseAddressWithPrefix(text);
  } catch (e) {
    throw invalid(`"${key}" ${show(text)} is not a CIDR: ${(e as Error).message}`);
  }
  if (parsed.family !== family) {
    throw invalid(family === 4
      ? `"Network" ${show(text)} must be an IPv4 CIDR; put an IPv6 network in "IPv6Network" with "EnableIPv6": true`
      : `"IPv6Network" ${show(text)} must be an IPv6 CIDR`);
  }
  const network = maskToNetwork(parsed);
  if (network.network !== parsed.address) warnings.push(`"${key}" ${show(text)} has host bits set; using ${formatCidr(network)}`);
  return network;
}

/** flannel's defaults and limits per family (docs/flannel-compat.md §1.3); returns the normalised range. */
function subnetRange(fields: Map<string, unknown>, family: IpFamily, network: Cidr): SubnetRange {
  const v6 = family === 6;
  const names = v6
    ? { len: 'IPv6SubnetLen', min: 'IPv6SubnetMin', max: 'IPv6SubnetMax', net: 'IPv6Network' }
    : { len: 'SubnetLen', min: 'SubnetMin', max: 'SubnetMax', net: 'Network' };
  const bits = familyBits(family);
  const smallest = bits - 4; // /28 or /124: four subnets of four addresses
  const longest = bits - 2; // /30 or /126
  const net = formatCidr(network);
  if (network.prefix > smallest) {
    throw invalid(`"${names.net}" ${net} is too small: the prefix must be /${smallest} or shorter (four subnets of at least four addresses)`);
  }
  let subnetLen = getUint(fields, names.len, names.len) ?? 0; // 0 = unset, as in flannel
  if (subnetLen === 0) {
    const roomy = v6 ? 62 : 22;
    subnetLen = network.prefix <= roomy ? (v6 ? 64 : 24) : network.prefix + 2;
  } else if (subnetLen > longest) {
    throw invalid(`"${names.len}" ${subnetLen} must be at most ${longest}`);
  } else if (subnetLen < network.prefix + 2) {
    throw invalid(`"${names.len}" ${subnetLen} must be at least ${network.prefix + 2}: ${names.net} ${net} must hold at least four subnets (the first is never used)`);
  }
  const size = 1n << BigInt(bits - subnetLen);
  const bound = (name: string, fallback: bigint): Cidr => {
    const text = getString(fields, name, name);
    if (text === undefined) return { family, network: fallback, prefix: subnetLen };
    let ip;
    try {
      ip = parseIp(text);
    } catch (e) {
      throw invalid(`"${name}" ${show(text)} is not an IP address: ${(e as Error).message}`);
    }
    if (ip.family !== family) throw invalid(`"${name}" ${show(text)} must be an IPv${family} address`);
    if (!cidrContains(network, ip)) throw invalid(`"${name}" ${text} is not inside ${names.net} ${net}`);
    if ((ip.value & prefixMask(family, subnetLen)) !== ip.value) {
      const down = formatIp({ family, value: ip.value & prefixMask(family, subnetLen) });
      throw invalid(`"${name}" ${text} is not on a /${subnetLen} boundary (${names.len}); did you mean ${down}?`);
    }
    return { family, network: ip.value, prefix: subnetLen };
  };
  const subnetMin = bound(names.min, network.network + size);
  const subnetMax = bound(names.max, network.network + cidrSize(network) - size);
  if (subnetMin.network > subnetMax.network) {
    throw invalid(`"${names.min}" ${formatIp({ family, value: subnetMin.network })} is above "${names.max}" ${formatIp({ family, value: subnetMax.network })}: no subnet can be leased`);
  }
  return { network, subnetLen, subnetMin, subnetMax };
}

function parseBackend(value: unknown): BackendSection {
  // flanneld defaults a missing Backend to "udp" (its docs say vxlan). Weft has no udp backend
  // (it is a userspace relay flannel itself deprecates), so weft defaults to vxlan, which is
  // also what flannel's documentation promises. A Backend without a Type gets the same default.
  if (value === undefined) value = {};
  if (!isObject(value)) throw invalid(`"Backend" ${show(value)} must be an object such as {"Type":"vxlan"}`);
  const fields = foldKeys(value, ['Type'], 'Backend.', []);
  const type = getString(fields, 'Type', 'Backend.Type') ?? 'vxlan';
  return { type: type.toLowerCase(), raw: { ...value } };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Parses and checks the config JSON; throws WEFT_DECODE (not JSON) or WEFT_INVALID_CONFIG naming the field. */
export function parseNetworkConfig(text: string): NetworkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new WeftError('WEFT_DECODE', `network config is not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(raw)) throw new WeftError('WEFT_DECODE', `network config must be a JSON object, got ${show(raw)}`);
  const warnings: string[] = [];
  const fields = foldKeys(raw, TOP_KEYS, '', warnings);
  const enableIPv4 = getBool(fields, 'EnableIPv4', 'EnableIPv4', true);
  const enableIPv6 = getBool(fields, 'EnableIPv6', 'EnableIPv6', false);
  if (!enableIPv4 && !enableIPv6) throw invalid('"EnableIPv4" and "EnableIPv6" are both false: enable at least one');

  let ipv4: SubnetRange | undefined;
  if (enableIPv4) {
    const network = getNetwork(fields, 'Network', 4, warnings);
    // flannel treats 0.0.0.0/0 as "not set" too.
    if (network === undefined || network.prefix === 0) {
      throw invalid(`"Network" is ${network ? '0.0.0.0/0' : 'missing'}: set it to an IPv4 CIDR such as "10.244.0.0/16", or set "EnableIPv4": false for an IPv6-only network`);
    }
    ipv4 = subnetRange(fields, 4, network);
  } else if (fields.has('Network')) {
    warnings.push('"Network" is ignored because "EnableIPv4" is false');
  }

  let ipv6: SubnetRange | undefined;
  if (enableIPv6) {
    const network = getNetwork(fields, 'IPv6Network', 6, warnings);
    if (network === undefined || network.prefix === 0) {
      throw invalid(`"IPv6Network" is ${network ? '::/0' : 'missing'}: "EnableIPv6" is true, so set it to an IPv6 CIDR such as "fd00:10:244::/56"`);
    }
    ipv6 = subnetRange(fields, 6, network);
  } else if (fields.has('IPv6Network')) {
    warnings.push('"IPv6Network" is ignored because "EnableIPv6" is not true');
  }

  return deepFreeze({
    ipv4,
    ipv6,
    enableNFTables: getBool(fields, 'EnableNFTables', 'EnableNFTables', false),
    backend: parseBackend(fields.get('Backend')),
    warnings,
  });
}

/** "<prefix>/config" with path-join semantics (a trailing slash on the prefix is harmless). */
export function configKeyPath(prefix: string): string {
  return `${prefix.replace(/\/+$/, '')}/config`;
}

/**
 * Reads and parses the config. A missing key is WEFT_NOT_READY (the agent retries, as flanneld
 * does every second), with the most common cause named: the config was written with the other
 * etcd API, whose keyspace is separate (docs/flannel-compat.md §1.1 and §7).
 */
export async function loadNetworkConfig(store: LeaseStore, prefix = DEFAULT_ETCD_PREFIX): Promise<NetworkConfig> {
  const text = await store.getConfig();
  if (text === null) throw new WeftError('WEFT_NOT_READY', configNotFoundMessage(store.kind, prefix));
  return parseNetworkConfig(text);
}

export function configNotFoundMessage(kind: LeaseStore['kind'], prefix = DEFAULT_ETCD_PREFIX): string {
  const key = configKeyPath(prefix);
  const example = `'{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`;
  switch (kind) {
    case 'etcd-v3':
      return `flannel config not found in etcd at ${key}; did you write it with the v3 API? ` +
        `Keys written with the v2 API (ETCDCTL_API=2, flannel up to v0.17) are invisible to v3: ` +
        `etcdctl put ${key} ${example}`;
    case 'etcd-v2':
      return `flannel config not found in etcd at ${key}; did you write it with the v2 API? ` +
        `Keys written with the v3 API are invisible to v2 (etcd 3.4+ also needs --enable-v2): ` +
        `ETCDCTL_API=2 etcdctl set ${key} ${example}`;
    case 'memory':
      return `flannel config not found in the store at ${key}`;
  }
}
