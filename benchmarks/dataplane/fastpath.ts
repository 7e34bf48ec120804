// Whether the fast-path variants took the fast path: the agents' `fastPath` status (`weft status
// --json` → .fastPath.active, .fastPath.stats) read from every node when the lab is up and again
// after the run; the redirect counters must have grown. Parsed from unknown JSON, so an agent
// that does not report it yet reads as "unknown" instead of breaking the run.
import { agentStatus } from '../../src/lab/agent.ts';
import { nodeFiles, type LabState } from '../../src/lab/index.ts';

/** The counters of packets the programs moved past the stack (the rest are passes to it). */
export const REDIRECT_STATS = ['rx_redirect', 'tx_local', 'tx_remote', 'tx_remote_neigh'] as const;

export interface FastPathReading {
  node: string;
  /** The status socket answered. */
  answered: boolean;
  /** The status has a fastPath object. */
  reported: boolean;
  active?: boolean;
  reason?: string;
  stats?: Record<string, number>;
}

function parse(node: string, status: unknown): FastPathReading {
  if (status === undefined) return { node, answered: false, reported: false };
  const fp = (status as { fastPath?: unknown }).fastPath;
  if (typeof fp !== 'object' || fp === null) return { node, answered: true, reported: false };
  const o = fp as { active?: unknown; reason?: unknown; stats?: unknown };
  const stats = typeof o.stats === 'object' && o.stats !== null
    ? Object.fromEntries(Object.entries(o.stats).filter((e): e is [string, number] => typeof e[1] === 'number' && Number.isFinite(e[1])))
    : undefined;
  return {
    node, answered: true, reported: true,
    ...(typeof o.active === 'boolean' ? { active: o.active } : {}),
    ...(typeof o.reason === 'string' ? { reason: o.reason.slice(0, 300) } : {}),
    ...(stats ? { stats } : {}),
  };
}

/** Every node's fast-path status now. */
export async function readFastPath(state: LabState): Promise<FastPathReading[]> {
  return Promise.all(state.topology.nodes.map(async (n) => parse(n.name, await agentStatus(nodeFiles(n.dir)))));
}

export interface FastPathEvidence {
  /** yes: redirects counted during the run; no: active but nothing redirected, or inactive; unknown: no agent reports it. */
  taken: 'yes' | 'no' | 'unknown';
  /** One line per node: active or why not, and the counters' growth over the run. */
  nodes: string[];
}

const delta = (after: FastPathReading, before: FastPathReading | undefined, k: string): number =>
  (after.stats?.[k] ?? 0) - (before?.stats?.[k] ?? 0);

/** What the readings before and after the run show. */
export function evidence(before: readonly FastPathReading[], after: readonly FastPathReading[]): FastPathEvidence {
  const nodes: string[] = [];
  let redirects = 0;
  let known = false;
  for (const a of after) {
    const b = before.find((x) => x.node === a.node);
    if (!a.answered) {
      nodes.push(`${a.node}: status socket did not answer`);
      continue;
    }
    if (!a.reported || a.active === undefined) {
      nodes.push(`${a.node}: the agent's status has no fastPath`);
      continue;
    }
    known = true;
    if (!a.active) {
      nodes.push(`${a.node}: inactive (${a.reason ?? 'no reason given'})`);
      continue;
    }
    if (!a.stats) {
      nodes.push(`${a.node}: active, no counters reported`);
      known = false;
      continue;
    }
    const grown = Object.keys(a.stats).map((k) => [k, delta(a, b, k)] as const).filter(([, d]) => d !== 0);
    redirects += REDIRECT_STATS.reduce((s, k) => s + delta(a, b, k), 0);
    nodes.push(`${a.node}: active, ${grown.length > 0 ? grown.map(([k, d]) => `${k} +${d}`).join(', ') : 'no counter moved'}`);
  }
  return { taken: redirects > 0 ? 'yes' : known ? 'no' : 'unknown', nodes };
}
