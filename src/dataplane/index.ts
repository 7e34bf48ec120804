// The data planes, by name. Adding a backend touches its own folder (config, factory, device
// removal, its BackendData) and one line of BACKENDS below. flannel's "Backend" JSON reaches
// here raw (src/lease/network-config.ts keeps only its Type): parseBackendConfig validates it,
// createBackend builds the backend; neither side of the agent knows the other's fields.
import { WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import { auto } from './auto/index.ts';
import type { Backend, BackendDeps, BackendModule, LocalNode } from './backend.ts';
import { removeWeftRoutes } from './cleanup.ts';
import { getField, type ConfigOrError } from './config-fields.ts';
import { hostgw } from './hostgw/index.ts';
import { vxlan } from './vxlan/index.ts';

export type * from './backend.ts';
export type { ConfigOrError } from './config-fields.ts';
export { RTPROT_WEFT } from './plan.ts';
export { removeRoutesOutside, routesOutside, weftOwnedRoute } from './cleanup.ts';
export { HostGwBackend } from './hostgw/index.ts';
export { VxlanBackend, type VxlanOptions, type VxlanConfig } from './vxlan/index.ts';

/** The registry: flannel's Backend.Type (lower case) -> the backend. */
const BACKENDS = { vxlan, 'host-gw': hostgw, auto } as const;

export type BackendName = keyof typeof BACKENDS;
export const BACKEND_NAMES = Object.keys(BACKENDS) as BackendName[];

type ConfigOf<M> = M extends BackendModule<infer C> ? C : never;

/** A validated Backend section: which backend, and its own settings. */
export type BackendConfig = { [K in BackendName]: { readonly type: K; readonly settings: ConfigOf<(typeof BACKENDS)[K]> } }[BackendName];

/** flannel backends weft does not implement (named in the error, so nobody hunts for a typo). */
const FLANNEL_ONLY = ['udp', 'wireguard', 'ipip', 'ipsec', 'alloc', 'extension', 'tencent-vpc', 'ali-vpc', 'aws-vpc', 'gce'];

/** Backend.Type as flanneld reads it: case-insensitively, lower-cased; absent (flannel: udp) is vxlan in weft. */
function backendType(raw: Readonly<Record<string, unknown>>): string | { error: string } {
  const type = getField(raw, 'Type');
  if (type === undefined || type === null) return 'vxlan';
  if (typeof type !== 'string') return { error: `network config: "Backend.Type" ${JSON.stringify(type)} must be a string` };
  return type.toLowerCase();
}

function isBackendName(name: string): name is BackendName {
  return Object.hasOwn(BACKENDS, name);
}

/** Validates flannel's Backend section (the raw object, Type included) for the backend it names. */
export function parseBackendConfig(raw: Readonly<Record<string, unknown>>): ConfigOrError<BackendConfig> {
  const type = backendType(raw);
  if (typeof type !== 'string') return { ok: false, error: type.error };
  if (!isBackendName(type)) {
    const hint = FLANNEL_ONLY.includes(type) ? ' (a flannel backend weft does not implement)' : '';
    return { ok: false, error: `network config: backend type ${JSON.stringify(type)} ("Backend.Type") is not supported by weft${hint}; use ${BACKEND_NAMES.slice(0, -1).join(', ')} or ${BACKEND_NAMES.at(-1)}` };
  }
  const module = BACKENDS[type] as BackendModule<unknown>;
  const parsed = module.parseConfig(raw);
  if (!parsed.ok) return parsed;
  return { ok: true, config: { type, settings: parsed.config } as BackendConfig, warnings: parsed.warnings };
}

function validated(raw: Readonly<Record<string, unknown>>): { config: BackendConfig; warnings: string[] } {
  const parsed = parseBackendConfig(raw);
  if (!parsed.ok) throw new WeftError('WEFT_INVALID_CONFIG', parsed.error);
  return parsed;
}

/**
 * Builds the backend flannel's Backend section names; throws WEFT_INVALID_CONFIG (the field and
 * what to do) for what weft cannot do. Config warnings (unknown keys) go to deps.log.
 */
export function createBackend(nl: Rtnetlink, node: LocalNode, rawBackend: Readonly<Record<string, unknown>>, deps: BackendDeps): Backend {
  const { config, warnings } = validated(rawBackend);
  for (const warning of warnings) deps.log?.warn({ warning }, 'network config');
  return (BACKENDS[config.type] as BackendModule<unknown>).create(nl, node, config.settings, deps);
}

/** Removes every backend's devices and every weft-owned route: `weft uninstall`, no agent needed. */
export function teardownAllBackends(nl: Rtnetlink, log: Logger = silentLogger): { routes: number; devices: string[] } {
  // Routes first: direct routes live on the underlay and outlive any device.
  const routes = removeWeftRoutes(nl, log);
  const devices = new Set<string>();
  for (const module of Object.values(BACKENDS) as BackendModule<unknown>[]) for (const d of module.removeDevices(nl, log)) devices.add(d);
  return { routes, devices: [...devices] };
}

/** The devices this Backend section uses (the fast path attaches to them). */
export function backendDevices(rawBackend: Readonly<Record<string, unknown>>): string[] {
  const { config } = validated(rawBackend);
  return (BACKENDS[config.type] as BackendModule<unknown>).devices(config.settings);
}

/**
 * Removes the backend devices this Backend section does not use (a flannel.1 left after the
 * VNI changed to 4096, or after a switch to host-gw), keeping the one it uses; returns their names.
 */
export function removeUnusedBackendDevices(nl: Rtnetlink, rawBackend: Readonly<Record<string, unknown>>, log: Logger = silentLogger): string[] {
  const { config } = validated(rawBackend);
  const keep = new Set((BACKENDS[config.type] as BackendModule<unknown>).devices(config.settings));
  // A device of any backend that this config keeps must survive; every other goes.
  const removed = new Set<string>();
  for (const module of Object.values(BACKENDS) as BackendModule<unknown>[]) for (const d of module.removeDevices(nl, log, keep)) removed.add(d);
  return [...removed];
}
