// Names of lab members and their namespaces. Every namespace of lab L is `weft-L-<member>`,
// and the member part has a fixed grammar, so `down` can find everything a lab created from
// the namespace list alone (after a crash the state file may be missing or incomplete).
import { WeftError } from '../errors.ts';

export const DEFAULT_LAB_NAME = 'lab';

// No hyphens: with them, lab `a`'s prefix `weft-a-` would also match lab `a-b`'s namespaces.
const LAB_NAME = /^[a-z0-9]{1,24}$/;

export type LabMember =
  | { kind: 'node'; node: number }
  | { kind: 'pod'; node: number; pod: number }
  | { kind: 'zone'; zone: string }
  | { kind: 'router' }
  | { kind: 'outside' }
  /** The lab's etcd member (only with `--store etcd`). */
  | { kind: 'etcd' };

/** Throws unless `name` can be used as a lab name. */
export function validateLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new WeftError(
      'WEFT_LAB',
      `invalid lab name ${JSON.stringify(name)}: use 1-24 lower-case letters and digits (no hyphens), e.g. --name lab2`,
    );
  }
  return name;
}

/** The member's short name, as users type it: n1, n1-p2, az-a, router, outside, etcd. */
export function memberName(m: LabMember): string {
  switch (m.kind) {
    case 'node':
      return `n${m.node}`;
    case 'pod':
      return `n${m.node}-p${m.pod}`;
    case 'zone':
      return `az-${m.zone}`;
    case 'router':
    case 'outside':
    case 'etcd':
      return m.kind;
  }
}

export function memberNs(lab: string, m: LabMember): string {
  return `weft-${lab}-${memberName(m)}`;
}

export const nodeNs = (lab: string, node: number): string => memberNs(lab, { kind: 'node', node });
export const podNs = (lab: string, node: number, pod: number): string => memberNs(lab, { kind: 'pod', node, pod });
export const zoneNs = (lab: string, zone: string): string => memberNs(lab, { kind: 'zone', zone });
export const routerNs = (lab: string): string => memberNs(lab, { kind: 'router' });
export const outsideNs = (lab: string): string => memberNs(lab, { kind: 'outside' });
export const etcdNs = (lab: string): string => memberNs(lab, { kind: 'etcd' });

const MEMBER = /^(?:n([1-9]\d{0,3})(?:-p([1-9]\d{0,3}))?|az-([a-z])|(router)|(outside)|(etcd))$/;

/** Parses a short member name (`n1-p2`); undefined when it is not one. */
export function parseMemberName(short: string): LabMember | undefined {
  const m = MEMBER.exec(short);
  if (m === null) return undefined;
  const [, node, pod, zone, router, outside, etcd] = m;
  if (node !== undefined && pod !== undefined) return { kind: 'pod', node: Number(node), pod: Number(pod) };
  if (node !== undefined) return { kind: 'node', node: Number(node) };
  if (zone !== undefined) return { kind: 'zone', zone };
  if (router !== undefined) return { kind: 'router' };
  if (outside !== undefined) return { kind: 'outside' };
  if (etcd !== undefined) return { kind: 'etcd' };
  return undefined;
}

/** The member a namespace belongs to, if it is one of lab `lab`'s namespaces. */
export function parseLabNs(lab: string, ns: string): LabMember | undefined {
  const prefix = `weft-${lab}-`;
  return ns.startsWith(prefix) ? parseMemberName(ns.slice(prefix.length)) : undefined;
}

/** Namespaces of all labs are `weft-<lab>-<member>`: the lab names found among `namespaces`. */
export function labNamesIn(namespaces: readonly string[]): string[] {
  const names = new Set<string>();
  for (const ns of namespaces) {
    const m = /^weft-([a-z0-9]{1,24})-(.+)$/.exec(ns);
    if (m?.[1] !== undefined && m[2] !== undefined && parseMemberName(m[2]) !== undefined) names.add(m[1]);
  }
  return [...names].sort();
}

/**
 * Orders member names as people read them: zones, router, etcd, each node followed by its
 * interfaces (`n1:cni0`) and pods, then outside; numbers numerically (n2 before n10).
 */
export function compareMemberNames(a: string, b: string): number {
  const ka = sortKey(a);
  const kb = sortKey(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortKey(name: string): number[] {
  const [member = '', iface] = name.split(':');
  const m = parseMemberName(member);
  switch (m?.kind) {
    case 'zone':
      return [0, m.zone.charCodeAt(0)];
    case 'router':
      return [1, 0];
    case 'etcd':
      return [1, 1];
    case 'node':
      return [2, m.node, 0, iface === undefined ? 0 : 1];
    case 'pod':
      return [2, m.node, 1, m.pod];
    case 'outside':
      return [3];
    case undefined:
      return [4];
  }
}
