// `weft lab partition <nodes…>` / `weft lab heal`: cut some nodes off the others on the mesh's
// ports only, as a broken switch or a firewall between racks would: TCP on the mesh port (the
// agents' control connections) and UDP 6784 (pod traffic over VXLAN) are dropped between the
// two sides, while the underlay itself (ping, the outside host) keeps working.
//
// The rules live in each node's own namespace, in one iptables chain of ours (WEFT-LAB-PARTITION,
// jumped to first from INPUT and OUTPUT), so they never touch the agents' chains and the
// agents never touch them, and they survive an agent restart. They are iptables, not a native
// nftables table, because the agent's firewall picks nftables when it finds a native table in
// its node (src/firewall/detect.ts): a partition must not change which backend an agent uses.
// Both sides get the rules, so a node that restarts on either side stays cut off.
import { WeftError } from '../errors.ts';
import { execInNetns, netnsPath } from './netns.ts';
import { LAB_STATE_ROOT, labDir } from './paths.ts';
import { runOk } from './run.ts';
import { updateState, type LabState } from './state.ts';
import { loadLab } from './status.ts';
import { MESH_PORT, MESH_VXLAN_PORT } from './store-kinds.ts';
import type { NodePlan } from './topology.ts';

export const PARTITION_CHAIN = 'WEFT-LAB-PARTITION';

/** iptables-restore --noflush input that (re)fills our chain with drops for traffic to and from `others`. */
export function partitionRules(others: readonly string[], meshPort: number = MESH_PORT, vxlanPort: number = MESH_VXLAN_PORT): string {
  const lines = ['*filter', `:${PARTITION_CHAIN} - [0:0]`, `-F ${PARTITION_CHAIN}`];
  for (const address of others) {
    for (const dir of ['-s', '-d']) {
      lines.push(`-A ${PARTITION_CHAIN} ${dir} ${address}/32 -p tcp -m tcp --dport ${meshPort} -j DROP`);
      lines.push(`-A ${PARTITION_CHAIN} ${dir} ${address}/32 -p tcp -m tcp --sport ${meshPort} -j DROP`);
      lines.push(`-A ${PARTITION_CHAIN} ${dir} ${address}/32 -p udp -m udp --dport ${vxlanPort} -j DROP`);
    }
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

async function iptables(ns: string, args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return execInNetns(ns, ['iptables', '-w', '5', ...args], { timeoutMs: 20_000 });
}

/** Fills the chain and makes INPUT and OUTPUT jump to it first (once). */
async function cut(ns: string, others: readonly string[], meshPort: number): Promise<void> {
  await runOk(['nsenter', `--net=${netnsPath(ns)}`, '--', 'iptables-restore', '-w', '5', '--noflush'], { input: partitionRules(others, meshPort), timeoutMs: 20_000 });
  for (const hook of ['INPUT', 'OUTPUT']) {
    if ((await iptables(ns, ['-C', hook, '-j', PARTITION_CHAIN])).code === 0) continue;
    const r = await iptables(ns, ['-I', hook, '1', '-j', PARTITION_CHAIN]);
    if (r.code !== 0) throw new WeftError('WEFT_LAB', `cannot add the partition jump to ${hook} in ${ns}: ${r.stderr.trim()}`);
  }
}

/** Removes our jumps and chain from a node, if there. */
async function uncut(ns: string): Promise<void> {
  for (const hook of ['INPUT', 'OUTPUT']) {
    while ((await iptables(ns, ['-D', hook, '-j', PARTITION_CHAIN])).code === 0) {
      // a jump removed; repeat in case there were several
    }
  }
  await iptables(ns, ['-F', PARTITION_CHAIN]);
  await iptables(ns, ['-X', PARTITION_CHAIN]);
}

function liveNodes(state: LabState): NodePlan[] {
  const removed = new Set(state.removedNodes ?? []);
  return state.topology.nodes.filter((n) => !removed.has(n.name));
}

/**
 * Cuts the named nodes off every other node of the lab (the named ones still reach each
 * other), replacing any partition there was. Nodes whose agent has not started yet can be cut
 * too: that is how a late joiner starts with its peers unreachable.
 */
export async function labPartition(name: string, nodes: readonly string[], o: { stateRoot?: string } = {}): Promise<{ cut: string[]; rest: string[] }> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  const state = await loadLab(name, stateRoot);
  if (state.store !== 'mesh') throw new WeftError('WEFT_LAB', `lab ${name} is not a mesh lab (store ${state.store ?? 'none'}); \`lab partition\` cuts the mesh's ports (lab up --store mesh)`);
  const live = liveNodes(state);
  const unknown = nodes.filter((n) => !live.some((x) => x.name === n));
  if (nodes.length === 0 || unknown.length > 0) {
    throw new WeftError('WEFT_LAB', `name the nodes to cut off, of ${live.map((n) => n.name).join(', ')}${unknown.length > 0 ? `; not in the lab (or removed): ${unknown.join(', ')}` : ''}`);
  }
  const side = new Set(nodes);
  const inside = live.filter((n) => side.has(n.name));
  const outside = live.filter((n) => !side.has(n.name));
  if (outside.length === 0) throw new WeftError('WEFT_LAB', 'that would cut every node off nothing: leave at least one node on the other side');
  const port = state.mesh?.port ?? MESH_PORT;
  await Promise.all([
    ...inside.map((n) => cut(n.ns, outside.map((x) => x.address), port)),
    ...outside.map((n) => cut(n.ns, inside.map((x) => x.address), port)),
  ]);
  await updateState(labDir(name, stateRoot), (s) => void (s.partition = inside.map((n) => n.name)));
  return { cut: inside.map((n) => n.name), rest: outside.map((n) => n.name) };
}

/** Removes the partition from every node (a no-op without one). */
export async function labHeal(name: string, o: { stateRoot?: string } = {}): Promise<void> {
  const stateRoot = o.stateRoot ?? LAB_STATE_ROOT;
  const state = await loadLab(name, stateRoot);
  await Promise.all(liveNodes(state).map((n) => uncut(n.ns)));
  await updateState(labDir(name, stateRoot), (s) => void (s.partition = null));
}
