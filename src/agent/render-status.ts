// `weft status` for humans: the node and why it is (not) ready, its lease and backend, one line
// per peer, the refused peers, the problems (one line each, with how often they were seen), then
// what is in weft's way on this node (another CNI's leftovers, with the commands that remove them).
import type { AgentStatus, NodeWarning } from './status.ts';

/** The warnings section (every mode's status ends with it); "" when there are none. */
export function renderWarnings(warnings: readonly NodeWarning[] | undefined): string {
  // The agent's answer: an older agent has none, and nothing in it is trusted to have the shape.
  const shown = Array.isArray(warnings) ? warnings.filter((w) => typeof w?.message === 'string' && Array.isArray(w.fix)) : [];
  if (shown.length === 0) return '';
  const lines = ['', "warnings (in weft's way on this node now):"];
  for (const w of shown) lines.push(`  ${w.message}`, '    to remove it, run:', ...w.fix.map((c: unknown) => `      ${String(c)}`));
  return `${lines.join('\n')}\n`;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

function lease(s: AgentStatus): string {
  if (!s.lease) return '-';
  if (!s.lease.held) return `${s.lease.subnet} (LOST; re-acquiring)`;
  // A range that never expires is a reservation in etcd mode; elsewhere (a kube claim) simply held.
  const forever = s.mode === 'etcd' ? 'reservation (no expiry)' : 'held (no expiry)';
  return `${s.lease.subnets.join(', ') || s.lease.subnet}, ${s.lease.reservation ? forever : `expires ${s.lease.expiresAt}`}`;
}

/** The fast path and the notes, for a layout of its own (mesh mode's); "" when neither is there. */
export function renderDataPath(s: Pick<AgentStatus, 'fastPath' | 'notes'>): string {
  const lines = [...(s.fastPath ? [`fast path  ${fastPath(s.fastPath)}`] : []), ...(s.notes ?? []).map((n) => `note       ${n}`)];
  return lines.length === 0 ? '' : `\n${lines.join('\n')}\n`;
}

/** One line: what runs and how many packets it moved, or why it does not run. */
function fastPath(f: NonNullable<AgentStatus['fastPath']>): string {
  if (!f.active) return `off (normal path): ${f.reason ?? 'not loaded'}`;
  const st = f.stats;
  const moved = st ? `, redirected ${st.rx_redirect} in, ${st.tx_local + st.tx_remote + st.tx_remote_neigh} out, ${st.pass_nat} NAT replies to the stack` : '';
  return `tc-eBPF on ${f.uplinks.join(', ')} and ${f.pods} pod(s), ${f.peers} peer subnet(s)${moved}${f.error ? `; ${f.error}` : ''}`;
}

export function renderStatus(s: AgentStatus): string {
  const lines = [
    `node       ${s.node} (${s.ready ? 'ready' : `not ready: ${s.phase}`})`,
    ...s.reasons.map((r) => `           - ${r}`),
    `mode       ${s.mode}, network ${s.network ?? '-'}`,
    `public IP  ${s.publicIp ?? '-'} on ${s.interface ?? '-'}`,
    `backend    ${s.backend ?? '-'}, pod MTU ${s.mtu ?? '-'}`,
    `lease      ${lease(s)}`,
    `store      ${s.store.kind} ${s.store.endpoints.join(',')} prefix ${s.store.prefix}${s.store.summary ? ` (${s.store.summary})` : ''}`,
    ...(s.fastPath ? [`fast path  ${fastPath(s.fastPath)}`] : []),
    ...(s.notes ?? []).map((n) => `note       ${n}`),
    `last sync  ${s.lastSync ?? 'never'}`,
    '',
  ];
  if (s.peers.length === 0) lines.push('no peers');
  else lines.push(table([['PEER SUBNET', 'PUBLIC IP', 'BACKEND', 'PATH', 'ERROR'], ...s.peers.map((p) => [p.subnets.join(',') || p.subnet, p.publicIp, p.backendType, p.path, p.error ?? ''])]));
  if (s.rejected.length > 0) {
    lines.push('', 'refused peers:', ...s.rejected.map((r) => `  ${r.key}: ${r.reason}`));
    if (s.rejectedCount > s.rejected.length) lines.push(`  ... and ${s.rejectedCount - s.rejected.length} more`);
  }
  if (s.errors.length > 0) {
    lines.push('', 'problems (most recent first):', ...s.errors.map((e) => `  ${e.lastSeen}  ${e.message}${e.count > 1 ? ` (seen ${e.count} times since ${e.firstSeen})` : ''}`));
  }
  return `${lines.join('\n')}\n${renderWarnings(s.warnings)}`;
}
