// `weft status` for humans: the node, its lease and backend, then one line per peer.
import type { AgentStatus } from './status.ts';

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

export function renderStatus(s: AgentStatus): string {
  const lines = [
    `node       ${s.node} (${s.ready ? 'ready' : 'not ready'})`,
    `public IP  ${s.publicIp ?? '-'} on ${s.interface ?? '-'}`,
    `backend    ${s.backend ?? '-'}, pod MTU ${s.mtu ?? '-'}`,
    `lease      ${s.lease ? `${s.lease.subnet}, ${s.lease.reservation ? 'reservation (no expiry)' : `expires ${s.lease.expiresAt}`}` : '-'}`,
    `store      ${s.store.kind} ${s.store.endpoints.join(',')} prefix ${s.store.prefix}`,
    `last sync  ${s.lastSync ?? 'never'}`,
    '',
  ];
  if (s.peers.length === 0) lines.push('no peers');
  else lines.push(table([['PEER SUBNET', 'PUBLIC IP', 'BACKEND', 'PATH', 'ERROR'], ...s.peers.map((p) => [p.subnet, p.publicIp, p.backendType, p.path, p.error ?? ''])]));
  if (s.errors.length > 0) lines.push('', 'recent errors:', ...s.errors.map((e) => `  ${e.at}  ${e.message}`));
  return `${lines.join('\n')}\n`;
}
