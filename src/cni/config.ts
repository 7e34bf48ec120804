// The network configuration on stdin, in weft's own form (`"type": "weft"`) or flannel's
// CNI form (`"type": "flannel"`, docs/cni-spec-notes.md §2.5 and docs/flannel-compat.md §6.1), so the weft plugin
// installed under the name `flannel` is a drop-in for kube-flannel's cni-conf.json.
// Pipeline: decode JSON → check cniVersion → validate against the schema (errors name the
// field and value) → derive one normalised, frozen PluginConfig.
import * as v from 'valibot';
import { WeftError } from '../errors.ts';
import { CniError } from './cni-error.ts';
import { CniErrorCodes, ID_PATTERN, isSupportedVersion, SUPPORTED_VERSIONS, type CniVersion } from './spec.ts';

export interface Route { dst: string; gw?: string }
export interface Dns { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
export interface Attachment { containerID: string; ifname: string }

export interface PluginConfig {
  cniVersion: CniVersion;
  name: string;
  form: 'weft' | 'flannel';
  subnetFile: string;
  bridge: string;
  /** Overrides FLANNEL_MTU when set. */
  mtu: number | undefined;
  hairpinMode: boolean;
  isDefaultGateway: boolean;
  /** Per-pod masquerade; undefined = flannel's rule: masquerade here only if the agent does not. */
  ipMasq: boolean | undefined;
  /** host-local's store: <ipamDataDir>/<name>/<ip>. */
  ipamDataDir: string;
  routes: Route[];
  /** flannel form only: where flannel keeps each container's rendered delegate config. */
  flannelStateDir: string | undefined;
  dns: Dns | undefined;
  /** Addresses the runtime asked for (runtimeConfig.ips, args.cni.ips). */
  requestedIps: string[];
  /** MAC the runtime asked for (runtimeConfig.mac, args.cni.mac). */
  requestedMac: string | undefined;
  prevResult: unknown;
  validAttachments: Attachment[] | undefined;
}

export const DEFAULT_SUBNET_FILE = '/run/flannel/subnet.env';
export const DEFAULT_IPAM_DATA_DIR = '/var/lib/cni/networks';
export const DEFAULT_FLANNEL_DATA_DIR = '/var/lib/cni/flannel';

const mtu = v.pipe(v.number(), v.integer(), v.minValue(68), v.maxValue(65535));
const absolutePath = v.pipe(v.string(), v.startsWith('/', 'must be an absolute path'));
const ifname = v.pipe(v.string(), v.regex(/^[^/:\s]{1,15}$/, 'must be a valid interface name (1-15 characters, no "/", ":" or spaces)'));
const route = v.looseObject({ dst: v.string(), gw: v.optional(v.string()) });
const dns = v.looseObject({
  nameservers: v.optional(v.array(v.string())),
  domain: v.optional(v.string()),
  search: v.optional(v.array(v.string())),
  options: v.optional(v.array(v.string())),
});
const ipam = v.looseObject({
  type: v.optional(v.picklist(['host-local', 'weft'], 'only host-local style IPAM is built in ("host-local" or "weft")')),
  dataDir: v.optional(absolutePath),
  routes: v.optional(v.array(route)),
});
// Keys shared by weft's own form and flannel's `delegate` map.
const bridgeOptions = {
  bridge: v.optional(ifname),
  mtu: v.optional(mtu),
  hairpinMode: v.optional(v.boolean()),
  isDefaultGateway: v.optional(v.boolean()),
  isGateway: v.optional(v.literal(true, 'must be true: pods always use the bridge as their gateway')),
  ipMasq: v.optional(v.boolean()),
};
type BridgeOptions = v.InferOutput<v.ObjectSchema<typeof bridgeOptions, undefined>>;
const common = {
  cniVersion: v.string(),
  name: v.pipe(v.string(), v.regex(ID_PATTERN, 'must start with a letter or digit and contain only letters, digits, "_", "." and "-"')),
  subnetFile: v.optional(absolutePath),
  dataDir: v.optional(absolutePath),
  ipam: v.optional(ipam),
  dns: v.optional(dns),
  runtimeConfig: v.optional(v.looseObject({ ips: v.optional(v.array(v.string())), mac: v.optional(v.string()) })),
  args: v.optional(v.looseObject({
    cni: v.optional(v.looseObject({ ips: v.optional(v.array(v.string())), mac: v.optional(v.string()) })),
  })),
  prevResult: v.optional(v.unknown()),
  'cni.dev/valid-attachments': v.optional(v.array(v.looseObject({ containerID: v.string(), ifname: v.string() }))),
  'cni.dev/attachments': v.optional(v.array(v.looseObject({ containerID: v.string(), ifname: v.string() }))),
};
const weftSchema = v.looseObject({ ...common, type: v.literal('weft'), ...bridgeOptions });
const flannelSchema = v.looseObject({
  ...common,
  type: v.literal('flannel'),
  delegate: v.optional(v.looseObject({
    ...bridgeOptions,
    type: v.optional(v.literal('bridge', 'weft implements the bridge delegate only')),
    name: v.optional(v.never('must not be set: the delegate takes the network name')),
    ipam: v.optional(v.never('must not be set: put ipam at the top level')),
  })),
});

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function configError(issues: readonly v.BaseIssue<unknown>[]): WeftError {
  const first = issues[0];
  const path = first ? v.getDotPath(first) : null;
  const field = path ? `"${path}"` : 'the configuration';
  const detail = first ? `${first.message} (got ${describe(first.input)})` : 'is invalid';
  return new WeftError('WEFT_INVALID_CONFIG', `invalid network config: field ${field}: ${detail}`);
}

/** Decodes stdin; a VERSION request may carry no config at all. */
export function decodeStdin(stdin: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (e) {
    throw new WeftError('WEFT_DECODE', `error decoding network config from stdin: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new WeftError('WEFT_DECODE', 'error decoding network config from stdin: expected a JSON object');
  }
  return raw as Record<string, unknown>;
}

export function checkVersion(raw: Record<string, unknown>): CniVersion {
  const version = raw.cniVersion;
  if (typeof version !== 'string' || version === '') {
    throw new WeftError('WEFT_INVALID_CONFIG', 'invalid network config: field "cniVersion" is missing');
  }
  if (!isSupportedVersion(version)) {
    throw new CniError(CniErrorCodes.incompatibleVersion,
      `incompatible CNI versions: config is "${version}", plugin supports [${SUPPORTED_VERSIONS.join(', ')}]`,
      `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return version;
}

export function parsePluginConfig(raw: Record<string, unknown>): PluginConfig {
  const cniVersion = checkVersion(raw);
  if (raw.type !== 'weft' && raw.type !== 'flannel') {
    throw new WeftError('WEFT_INVALID_CONFIG',
      `invalid network config: field "type": must be "weft" or "flannel" (got ${describe(raw.type)})`);
  }
  const parsed = v.safeParse(raw.type === 'weft' ? weftSchema : flannelSchema, raw);
  if (!parsed.success) throw configError(parsed.issues);
  const c = parsed.output;
  const flannel = c.type === 'flannel';
  // Flannel's bridge options sit in its `delegate` map; weft's at the top level.
  const opts: BridgeOptions = 'delegate' in c ? (c.delegate ?? {}) : c;
  return Object.freeze({
    cniVersion,
    name: c.name,
    form: c.type,
    subnetFile: c.subnetFile ?? DEFAULT_SUBNET_FILE,
    bridge: opts.bridge ?? 'cni0',
    mtu: opts.mtu,
    hairpinMode: opts.hairpinMode ?? !flannel,
    isDefaultGateway: opts.isDefaultGateway ?? !flannel,
    ipMasq: opts.ipMasq,
    ipamDataDir: c.ipam?.dataDir ?? (flannel ? DEFAULT_IPAM_DATA_DIR : (c.dataDir ?? DEFAULT_IPAM_DATA_DIR)),
    routes: c.ipam?.routes ?? [],
    flannelStateDir: flannel ? (c.dataDir ?? DEFAULT_FLANNEL_DATA_DIR) : undefined,
    dns: c.dns,
    requestedIps: [...(c.runtimeConfig?.ips ?? []), ...(c.args?.cni?.ips ?? [])],
    requestedMac: c.runtimeConfig?.mac ?? c.args?.cni?.mac,
    prevResult: c.prevResult,
    validAttachments: c['cni.dev/valid-attachments'] ?? c['cni.dev/attachments'],
  });
}
