// Human-readable forms of `lab check` and `lab status` (the --json forms are the objects).
import type { CheckReport } from './check.ts';
import { compareMemberNames } from './names.ts';
import type { LabStatus } from './status.ts';

function formatRtt(ms: number): string {
  return ms < 10 ? ms.toFixed(2) : ms.toFixed(1);
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((row) => row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** Rows: probe sources; columns: targets; each cell ✓ with the rtt in ms, ✗, or · when not probed. */
export function renderCheckMatrix(report: CheckReport): string {
  const froms = [...new Set(report.probes.map((p) => p.from))].sort(compareMemberNames);
  const tos = [...new Set(report.probes.map((p) => p.to))].sort(compareMemberNames);
  const cell = new Map(report.probes.map((p) => [`${p.from}\0${p.to}`, p.ok ? `✓${p.rtt_ms === null ? '' : formatRtt(p.rtt_ms)}` : '✗']));
  const rows = [['from \\ to', ...tos], ...froms.map((f) => [f, ...tos.map((t) => cell.get(`${f}\0${t}`) ?? '·')])];
  const failures = report.probes.filter((p) => !p.ok).map((p) => `✗ ${p.from} → ${p.to} (${p.kind})${sourceNote(p)}`);
  const summary = `${report.probes.length} probes: ${report.passed} passed, ${report.failed} failed (rtt in ms)`;
  const skipped = (report.skipped ?? []).map((k) => `not run: ${k.kind}: ${k.reason}`);
  return [report.probes.length === 0 ? 'no probes' : table(rows), ...failures, summary, ...skipped].join('\n') + '\n';
}

function agentDetail(a: LabStatus['nodes'][number]['agent']): string {
  if (a === null) return '';
  if (!a.answering) return ', agent not answering';
  if (a.mesh !== null) {
    const m = a.mesh;
    const ring = m.ringId === null ? 'no ring yet' : `ring ${m.ringId.slice(0, 12)}`;
    return `, mesh ${m.name ?? '?'}${a.ready ? '' : ' (not ready)'}, ipam ${m.ipamStatus ?? '?'}, ${ring}, ${m.peers} peer${m.peers === 1 ? '' : 's'} (${m.established} established)`;
  }
  const paths = Object.entries(a.peerPaths).map(([path, count]) => `${path} ${count}`).join(', ');
  return `, ${a.backend ?? '?'}${a.ready ? '' : ' (not ready)'}, ${a.peers} peer${a.peers === 1 ? '' : 's'}${paths === '' ? '' : ` (${paths})`}`;
}

/** Why a pod-outside probe failed, in terms of what the outside host saw. */
function sourceNote(p: CheckReport['probes'][number]): string {
  if (p.kind !== 'pod-outside' || p.expected_source === undefined) return '';
  if (p.source_seen === null || p.source_seen === undefined) return ': nothing arrived at outside';
  if (p.source_seen !== p.expected_source) return `: outside saw source ${p.source_seen}, not the node's ${p.expected_source} (not masqueraded)`;
  return ': outside saw the node address, but its answer did not come back';
}

function storeDetail(s: LabStatus): string {
  if (s.store === 'kube') return `, store kube (weft's stand-in API server, backend ${s.etcd?.backend ?? '?'}) with an agent per node`;
  if (s.store === 'etcd') return `, store etcd (${s.etcd?.api ?? '?'} API, backend ${s.etcd?.backend ?? '?'}) with an agent per node`;
  if (s.store === 'mesh' && s.mesh !== null) {
    const m = s.mesh;
    return `, store mesh (range ${m.range} in /${m.blockPrefix} blocks${m.init === null ? '' : `, ipalloc-init ${m.init}`}${m.password ? ', password' : ''}, TCP ${m.port}, VXLAN UDP 6784) with an agent per node`;
  }
  return s.daemons ? ' with cni-server per node' : '';
}

export function renderStatus(s: LabStatus): string {
  const lines = [
    `lab ${s.name}: ${s.phase}${s.interrupted ? ' (interrupted: its `lab up` is gone; run `weft lab down`)' : ''}${s.error === undefined ? '' : ` (${s.error})`}, cni ${s.cni}${storeDetail(s)}, state ${s.dir}`,
  ];
  const rows: string[][] = [['member', 'namespace', 'address', 'detail']];
  for (const z of s.zones) rows.push([z.name, z.ns, z.subnet, 'bridge br0']);
  rows.push([s.router.name, s.router.ns, s.router.addresses.join(' '), 'forwarding']);
  if (s.etcd !== null) {
    const e = s.etcd;
    rows.push([e.name, e.ns, e.address, `${e.endpoint}, pid ${e.pid ?? '-'} ${!e.alive ? 'DEAD' : e.healthy ? 'healthy' : 'NOT ANSWERING'}`]);
  }
  rows.push([s.outside.name, s.outside.ns, s.outside.address, '']);
  const notes: string[] = [];
  for (const n of s.nodes) {
    if (n.removed) {
      rows.push([n.name, n.ns, n.address, `zone ${n.zone}, removed (lab node remove)`]);
      continue;
    }
    const daemon = n.daemon === null ? (s.store === 'mesh' ? ', agent not started' : '') : `, ${n.daemon.kind} pid ${n.daemon.pid} ${n.daemon.alive ? 'alive' : 'DEAD'}`;
    rows.push([n.name, n.ns, n.address, `zone ${n.zone}, pods ${n.podSubnet ?? '-'}${agentDetail(n.agent)}${daemon}`]);
    for (const p of n.pods) rows.push([`  ${p.name}`, p.ns, p.addresses.join(' '), '']);
    for (const e of n.agent?.errors ?? []) notes.push(`${n.name} agent error: ${e}`);
  }
  lines.push(table(rows));
  lines.push(...notes);
  if (s.mesh?.partition != null) lines.push(`partition: ${s.mesh.partition.join(' ')} cut off from the other nodes (TCP ${s.mesh.port}, UDP 6784 dropped); \`weft lab heal --name ${s.name}\` ends it`);
  if (s.missingNamespaces.length > 0) lines.push(`missing namespaces: ${s.missingNamespaces.join(', ')}`);
  return lines.join('\n') + '\n';
}
