// Peer targets from the Node list. Every Node but this one is a candidate, at its InternalIP
// (else ExternalIP). A mesh peer keeps redialing its targets, so making every Node a target
// would make every peer hold a connection to every other one, which is the N² that mesh mode
// avoids: each peer takes a handful, chosen by rendezvous hashing on (this node, that node). The
// choice is stable while nodes come and go, differs from node to node (no hub), and the rest of
// the cluster is learned by gossip. The last targets are kept on disk, so an agent that restarts
// during an API outage still finds its peers.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { Target } from '../../mesh/connections.ts';
import { writeFileAtomic } from '../../mesh/atomic-file.ts';
import { nodeAddress, refuseAddress, type NodeLike } from './kube-objects.ts';

export const DEFAULT_KUBE_TARGETS = 8;
const MAX_SAVED_BYTES = 64 * 1024;

export interface TargetChoice {
  targets: Target[];
  /** Node name → uid, for every Node listed (valid address or not). */
  nodes: Map<string, string>;
  refused: { node: string; reason: string }[];
  /** Nodes with a usable address, this one excluded. */
  candidates: number;
}

export interface TargetPolicy {
  selfNode: string;
  port: number;
  /** Most targets handed to the mesh. */
  count?: number;
  /** Why an address is not dialed (default: refuseAddress, and this host's own addresses). */
  refuse?: (address: string) => string | undefined;
  /** The port of a node's peer (tests run several peers on one host); default `port`. */
  portFor?: (node: string) => number;
  /** The rendezvous score of a node (default: computed; a caller may memoize rendezvousScore). */
  score?: (node: string) => string;
}

export function rendezvousScore(selfNode: string, node: string): string {
  return createHash('sha256').update(`${selfNode}|${node}`).digest('hex');
}

export function localAddresses(): Set<string> {
  const s = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4') s.add(a.address);
  return s;
}

export function defaultRefuse(local: ReadonlySet<string> = localAddresses()): (address: string) => string | undefined {
  return (address) => refuseAddress(address) ?? (local.has(address) ? 'an address of this host' : undefined);
}

export function chooseTargets(nodes: Iterable<NodeLike>, p: TargetPolicy): TargetChoice {
  const refuse = p.refuse ?? defaultRefuse();
  const out: TargetChoice = { targets: [], nodes: new Map(), refused: [], candidates: 0 };
  const usable: { node: string; address: string; score: string }[] = [];
  for (const n of nodes) {
    const a = nodeAddress(n, refuse);
    if ('error' in a) {
      if (a.node !== p.selfNode) out.refused.push({ node: a.node, reason: a.error });
      if (n.metadata?.name && n.metadata.uid) out.nodes.set(n.metadata.name, n.metadata.uid);
      continue;
    }
    out.nodes.set(a.node, a.uid);
    if (a.node === p.selfNode) continue;
    usable.push({ node: a.node, address: a.address, score: p.score?.(a.node) ?? rendezvousScore(p.selfNode, a.node) });
  }
  out.candidates = usable.length;
  usable.sort((x, y) => (x.score < y.score ? -1 : x.score > y.score ? 1 : 0));
  const seen = new Set<string>();
  for (const u of usable) {
    if (out.targets.length >= (p.count ?? DEFAULT_KUBE_TARGETS)) break;
    const port = p.portFor?.(u.node) ?? p.port;
    const key = `${u.address}:${port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.targets.push({ host: u.address, port });
  }
  return out;
}

const file = (dir: string): string => join(dir, 'kube-targets.json');

export function saveTargets(dir: string, targets: readonly Target[]): void {
  writeFileAtomic(file(dir), `${JSON.stringify({ format: 1, targets })}\n`);
}

/** The targets saved last time, or undefined (none, or a file that is not ours: ignored). */
export function loadTargets(dir: string, refuse: (address: string) => string | undefined = refuseAddress): Target[] | undefined {
  try {
    if (!existsSync(file(dir))) return undefined;
    const text = readFileSync(file(dir), 'utf8');
    if (text.length > MAX_SAVED_BYTES) return undefined;
    const raw = JSON.parse(text) as { format?: unknown; targets?: unknown };
    if (raw.format !== 1 || !Array.isArray(raw.targets)) return undefined;
    const targets = raw.targets.filter((t): t is Target => typeof t === 'object' && t !== null
      && typeof t.host === 'string' && refuse(t.host) === undefined && Number.isInteger(t.port) && t.port > 0 && t.port < 65536);
    return targets.length > 0 ? targets.map((t) => ({ host: t.host, port: t.port })) : undefined;
  } catch {
    return undefined;
  }
}
