// flannel's subnet.env (docs/flannel-compat.md §2 and §6.1): the contract between a node agent (weft's or
// flanneld) and the CNI plugin (weft's or flannel's). Parsed exactly as flannel's plugin does:
// line by line, split at the first "=", no quoting or comments; SUBNET values are masked back
// to their network; FLANNEL_MTU and FLANNEL_IPMASQ are always required. WEFT_POD_LINK is weft's
// own key (flannel's plugin ignores unknown keys): how the CNI plugin links every new pod.
import { readFileSync, writeFileSync, renameSync, mkdirSync, chmodSync, rmSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { WeftError, errnoCode } from '../errors.ts';
import { cidrContainsCidr, formatAddressWithPrefix, formatCidr, maskToNetwork, parseAddressWithPrefix, type AddressWithPrefix, type Cidr } from '../net/cidr.ts';

export interface SubnetEnv {
  /** FLANNEL_NETWORK (may list several, comma-separated). */
  networks: Cidr[];
  /** FLANNEL_SUBNET masked to its network, e.g. 10.16.85.0/24. */
  subnet: Cidr | undefined;
  ipv6Networks: Cidr[];
  ipv6Subnet: Cidr | undefined;
  mtu: number;
  ipMasq: boolean;
  /** WEFT_POD_LINK: how new pods are linked to the node (absent: bridge, as flannel's plugin does). */
  podLink: PodLink;
}

/** `bridge`: the pod's veth on cni0; `routed`: no bridge, a /32 host route per pod (src/cni/routed-link.ts). */
export type PodLink = 'bridge' | 'routed';
export const POD_LINKS: readonly PodLink[] = ['bridge', 'routed'];

const agentHint = 'Check that the weft agent (or flanneld) is running on this node and see its log.';

export function parseSubnetEnv(text: string, path = 'subnet.env'): SubnetEnv {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const bad = (key: string, value: string, why: string): WeftError =>
    new WeftError('WEFT_SUBNET_FILE', `${path}: ${key}="${value}" ${why}. ${agentHint}`);
  const cidrs = (key: string): Cidr[] => {
    const value = values.get(key);
    if (value === undefined || value === '') return [];
    const seen = new Map<string, Cidr>();
    for (const part of value.split(',')) {
      try {
        const c = maskToNetwork(parseAddressWithPrefix(part.trim()));
        seen.set(formatCidr(c), c);
      } catch {
        throw bad(key, value, 'is not a CIDR (expected e.g. 10.16.0.0/16)');
      }
    }
    return [...seen.values()];
  };
  const single = (key: string): Cidr | undefined => {
    const list = cidrs(key);
    if (list.length > 1) throw bad(key, values.get(key) ?? '', 'must be a single subnet');
    return list[0];
  };

  const env: SubnetEnv = {
    networks: cidrs('FLANNEL_NETWORK'),
    subnet: single('FLANNEL_SUBNET'),
    ipv6Networks: cidrs('FLANNEL_IPV6_NETWORK'),
    ipv6Subnet: single('FLANNEL_IPV6_SUBNET'),
    mtu: 0,
    ipMasq: values.get('FLANNEL_IPMASQ') === 'true',
    podLink: 'bridge',
  };
  const missing: string[] = [];
  if (env.networks.length === 0 && env.ipv6Networks.length === 0) missing.push('FLANNEL_NETWORK', 'FLANNEL_IPV6_NETWORK');
  if (!env.subnet && !env.ipv6Subnet) missing.push('FLANNEL_SUBNET', 'FLANNEL_IPV6_SUBNET');
  if (!values.has('FLANNEL_MTU')) missing.push('FLANNEL_MTU');
  if (!values.has('FLANNEL_IPMASQ')) missing.push('FLANNEL_IPMASQ');
  if (missing.length > 0) throw new WeftError('WEFT_SUBNET_FILE', `${path} is missing ${missing.join(', ')}. ${agentHint}`);

  const mtuText = values.get('FLANNEL_MTU') ?? '';
  const mtu = /^\d+$/.test(mtuText) ? Number(mtuText) : NaN;
  if (!(mtu >= 68 && mtu <= 65535)) throw bad('FLANNEL_MTU', mtuText, 'is not an MTU between 68 and 65535');
  env.mtu = mtu;
  const podLink = values.get('WEFT_POD_LINK');
  if (podLink !== undefined) {
    if (!POD_LINKS.includes(podLink as PodLink)) throw bad('WEFT_POD_LINK', podLink, `must be ${POD_LINKS.map((l) => `"${l}"`).join(' or ')}`);
    env.podLink = podLink as PodLink;
  }
  const masq = values.get('FLANNEL_IPMASQ') ?? '';
  if (masq !== 'true' && masq !== 'false') throw bad('FLANNEL_IPMASQ', masq, 'must be "true" or "false"');
  for (const [subnet, networks, key] of [[env.subnet, env.networks, 'FLANNEL_SUBNET'], [env.ipv6Subnet, env.ipv6Networks, 'FLANNEL_IPV6_SUBNET']] as const) {
    if (subnet && networks.length > 0 && !networks.some((n) => cidrContainsCidr(n, subnet))) {
      throw bad(key, values.get(key) ?? '', `is not inside the network ${networks.map(formatCidr).join(',')}`);
    }
  }
  return env;
}

export function readSubnetEnv(path: string): SubnetEnv {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = errnoCode(e) === 'ENOENT' ? 'no such file or directory' : (e as Error).message;
    throw new WeftError('WEFT_SUBNET_FILE', `failed to load flannel 'subnet.env' file: open ${path}: ${why}. ${agentHint}`, { cause: e });
  }
  return parseSubnetEnv(text, path);
}

export interface SubnetEnvInput {
  network?: Cidr;
  /** The lease's address for the node: the FIRST usable address (.1) with the lease prefix. */
  subnet?: AddressWithPrefix;
  ipv6Network?: Cidr;
  ipv6Subnet?: AddressWithPrefix;
  mtu: number;
  ipMasq: boolean;
  /** Written as WEFT_POD_LINK when given (the agent gives it for routed only). */
  podLink?: PodLink;
}

/** flannel's exact format and order, one KEY=value per line, trailing newline. */
export function formatSubnetEnv(input: SubnetEnvInput): string {
  const lines: string[] = [];
  if (input.network && input.subnet) {
    lines.push(`FLANNEL_NETWORK=${formatCidr(input.network)}`, `FLANNEL_SUBNET=${formatAddressWithPrefix(input.subnet)}`);
  }
  if (input.ipv6Network && input.ipv6Subnet) {
    lines.push(`FLANNEL_IPV6_NETWORK=${formatCidr(input.ipv6Network)}`, `FLANNEL_IPV6_SUBNET=${formatAddressWithPrefix(input.ipv6Subnet)}`);
  }
  lines.push(`FLANNEL_MTU=${input.mtu}`, `FLANNEL_IPMASQ=${input.ipMasq}`);
  if (input.podLink !== undefined) lines.push(`WEFT_POD_LINK=${input.podLink}`);
  return `${lines.join('\n')}\n`;
}

/** A failed write of `path` in words: what is wrong with the place it goes, and what to do. */
function writeError(path: string, e: unknown): WeftError {
  const dir = dirname(path);
  const code = errnoCode(e);
  const why: Record<string, string> = {
    EROFS: `${dir} is on a read-only filesystem; give --subnet-file a path on a writable one (flannel's is /run/flannel/subnet.env)`,
    ENOSPC: `no space left on the device holding ${dir}; free some space there`,
    EDQUOT: `the disk quota of the filesystem holding ${dir} is used up; free some space there`,
    EACCES: `permission denied in ${dir}; run as root or give --subnet-file a writable path`,
    EPERM: `permission denied in ${dir}; run as root or give --subnet-file a writable path`,
    ENOTDIR: `a part of ${dir} is not a directory`,
    EEXIST: `a part of ${dir} is not a directory`, // mkdir -p met a file
    EISDIR: `${path} is a directory`,
  };
  const reason = (code !== undefined ? why[code] : undefined) ?? (e as Error).message;
  return new WeftError('WEFT_IO', `cannot write subnet.env ${path}: ${reason}`, { cause: e });
}

/**
 * The one writer of subnet.env (the agent's, and the lab's for nodes without an agent):
 * atomically (temp file + rename), mode 0644 regardless of umask, like flanneld. A failure is a
 * WEFT_IO error naming the file and the cause; no temp file is left behind.
 */
export function writeSubnetEnv(path: string, input: SubnetEnvInput): void {
  const text = formatSubnetEnv(input);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    writeFileSync(tmp, text, { mode: 0o644 });
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // nothing was created there (a read-only filesystem, say)
    }
    throw writeError(path, e);
  }
}

/** The first usable address of a subnet, with its prefix: what FLANNEL_SUBNET holds. */
export function firstAddressOf(subnet: Cidr): AddressWithPrefix {
  return { family: subnet.family, address: subnet.network + 1n, prefix: subnet.prefix };
}
