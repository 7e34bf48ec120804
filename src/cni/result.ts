// The ADD result, built once in a version-neutral shape and rendered per requested version
// (docs/cni-spec-notes.md §1.9): 0.3.x/0.4.0 put "version" on each IP, 1.1.0 adds interfaces[].mtu.
import { resultHasIpVersion, versionHas11, type CniVersion } from './spec.ts';
import type { Dns, Route } from './config.ts';

export interface ResultInterface { name: string; mac: string; sandbox?: string; mtu?: number }
export interface ResultIp { address: string; gateway?: string; interface?: number }
export interface AddResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: Route[];
  dns: Dns;
}

export function renderResult(result: AddResult, version: CniVersion): Record<string, unknown> {
  const has11 = versionHas11(version);
  return {
    cniVersion: version,
    interfaces: result.interfaces.map(({ mtu, ...rest }) => (has11 && mtu !== undefined ? { ...rest, mtu } : rest)),
    ips: result.ips.map((ip) =>
      resultHasIpVersion(version) ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : { ...ip }),
    routes: result.routes,
    dns: result.dns,
  };
}

/** What CHECK needs from a prevResult; tolerant of any version's shape. */
export interface PrevResult {
  interfaces: ResultInterface[];
  ips: ResultIp[];
  routes: Route[];
}

export function readPrevResult(raw: unknown): PrevResult | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  const list = (x: unknown): Record<string, unknown>[] =>
    Array.isArray(x) ? x.filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null) : [];
  const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
  return {
    interfaces: list(r.interfaces).map((i) => ({ name: str(i.name) ?? '', mac: str(i.mac) ?? '', ...(str(i.sandbox) ? { sandbox: str(i.sandbox) } : {}) })),
    ips: list(r.ips).map((i) => ({
      address: str(i.address) ?? '',
      ...(str(i.gateway) ? { gateway: str(i.gateway) } : {}),
      ...(typeof i.interface === 'number' ? { interface: i.interface } : {}),
    })),
    routes: list(r.routes).map((x) => ({ dst: str(x.dst) ?? '', ...(str(x.gw) ? { gw: str(x.gw) } : {}) })),
  };
}
