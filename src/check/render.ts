// `weft check` without --json: the matrix, as `weft lab check` draws it (rows: where probes
// start; columns: what they reach; ✓ with the icmp rtt in ms when every method passed, ✗ when
// one failed, · when not probed), then each failure, the problems, and what was not tested.
import { compareNames } from './nodes.ts';
import type { CheckProbe, ClusterCheckReport } from './report.ts';

const source = (p: CheckProbe): string => `${p.from_node} ${p.from}`;
const target = (p: CheckProbe): string => `${p.to_node} ${p.to}`;

function byNodeThen(order: readonly string[]): (a: string, b: string) => number {
  return (a, b) => {
    const [na = '', ka = ''] = a.split(' ');
    const [nb = '', kb = ''] = b.split(' ');
    return compareNames(na, nb) || order.indexOf(ka) - order.indexOf(kb);
  };
}

function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((row) => row.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

function cell(probes: readonly CheckProbe[]): string {
  if (probes.length === 0) return '·';
  if (probes.some((p) => !p.ok)) return '✗';
  const rtt = probes.find((p) => p.method === 'icmp')?.rtt_ms ?? probes[0]?.rtt_ms ?? null;
  return rtt === null ? '✓' : `✓${rtt < 10 ? rtt.toFixed(2) : rtt.toFixed(1)}`;
}

export function renderCheck(r: ClusterCheckReport): string {
  const froms = [...new Set(r.probes.map(source))].sort(byNodeThen(['pod', 'host']));
  const tos = [...new Set(r.probes.map(target))].sort(byNodeThen(['pod', 'node']));
  const cells = new Map<string, CheckProbe[]>();
  for (const p of r.probes) cells.set(`${source(p)}\0${target(p)}`, [...(cells.get(`${source(p)}\0${target(p)}`) ?? []), p]);
  const rows = [['from \\ to', ...tos], ...froms.map((f) => [f, ...tos.map((t) => cell(cells.get(`${f}\0${t}`) ?? []))])];
  const lines = [`namespace ${r.namespace}${r.namespace_deleted ? ' (deleted)' : ' (kept: delete it with `kubectl delete namespace ' + r.namespace + '`)'}`];
  lines.push(r.probes.length === 0 ? 'no probes' : table(rows));
  for (const p of r.probes.filter((x) => !x.ok)) lines.push(`✗ ${source(p)} → ${target(p)} (${p.kind}) ${p.method} ${p.address}: ${p.error ?? 'failed'}`);
  lines.push(`${r.probes.length} probes: ${r.passed} passed, ${r.failed} failed (icmp, tcp and udp to each responder pod; icmp to each node; rtt in ms)`);
  for (const p of r.problems) lines.push(`problem: ${p}`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  for (const s of r.skipped_nodes) lines.push(`not probed: node ${s.name}: ${s.reason}`);
  for (const n of r.not_tested) lines.push(`note: ${n}`);
  return `${lines.join('\n')}\n`;
}
