// Which Nodes `weft check` probes: every Node a pod can run on, with a valid InternalIP. The
// rest are reported with why. Node objects come from the cluster: untrusted, checked field by
// field.
import type { V1Node } from '@kubernetes/client-node';
import { isIP } from 'node:net';

export interface CheckNode {
  name: string;
  internalIP: string;
  /** Position in name order: pods are named after it (node names can be longer than a label). */
  index: number;
}

export interface SkippedNode {
  name: string;
  reason: string;
}

/** Nodes probed by default at most; more need --nodes (the probes grow with the square). */
export const MAX_NODES = 100;

const NODE_NAME_RE = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Text from the cluster, made safe to print: one line, printable, bounded. */
export function clean(text: unknown, max = 200): string {
  const s = typeof text === 'string' ? text : '';
  // eslint-disable-next-line no-control-regex
  const oneLine = s.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return oneLine.length <= max ? oneLine : `${oneLine.slice(0, max - 1)}…`;
}

/** Natural order: n2 before n10, ip-10-0-1-5 before ip-10-0-1-12. */
export function compareNames(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

function whyNot(n: V1Node): string | undefined {
  if (n.spec?.unschedulable === true) return 'cordoned (spec.unschedulable)';
  const os = n.metadata?.labels?.['kubernetes.io/os'];
  if (os !== undefined && os !== 'linux') return `runs ${clean(os, 20)}, not linux`;
  const ready = (n.status?.conditions ?? []).find((c) => c.type === 'Ready');
  if (ready?.status !== 'True') return `not Ready (${clean(ready?.reason ?? 'no Ready condition', 80)})`;
  return undefined;
}

export function internalIP(n: V1Node): string | undefined {
  const addresses = Array.isArray(n.status?.addresses) ? n.status.addresses : [];
  return addresses.map((a) => a?.address).find((a, i) => addresses[i]?.type === 'InternalIP' && typeof a === 'string' && isIP(a) !== 0);
}

export function selectNodes(all: readonly V1Node[], only?: readonly string[]): { nodes: CheckNode[]; skipped: SkippedNode[] } {
  const skipped: SkippedNode[] = [];
  const picked: { name: string; internalIP: string }[] = [];
  const seen = new Set<string>();
  for (const n of all) {
    const name = n.metadata?.name;
    if (typeof name !== 'string' || !NODE_NAME_RE.test(name) || seen.has(name)) continue;
    seen.add(name);
    if (only !== undefined && !only.includes(name)) continue;
    const why = whyNot(n);
    const ip = internalIP(n);
    if (why !== undefined) skipped.push({ name, reason: why });
    else if (ip === undefined) skipped.push({ name, reason: 'no valid InternalIP in status.addresses' });
    else picked.push({ name, internalIP: ip });
  }
  for (const name of only ?? []) if (!seen.has(name)) skipped.push({ name, reason: 'no such Node' });
  picked.sort((a, b) => compareNames(a.name, b.name));
  skipped.sort((a, b) => compareNames(a.name, b.name));
  return { nodes: picked.map((p, index) => ({ ...p, index })), skipped };
}
