// `weft probe` without --json: one line per probe.
import type { ProbeRecord, ProbeReport } from './types.ts';

export function targetText(r: Pick<ProbeRecord, 'method' | 'address' | 'port'>): string {
  if (r.method === 'icmp' || r.port === null) return `${r.method} ${r.address}`;
  return `${r.method} ${r.address.includes(':') ? `[${r.address}]` : r.address}:${r.port}`;
}

export function renderProbeReport(report: ProbeReport): string {
  const lines = report.results.map((r) =>
    r.ok ? `✓ ${targetText(r)} ${r.rtt_ms ?? '?'} ms${r.seen === null ? '' : ` (seen as ${r.seen})`}` : `✗ ${targetText(r)}: ${r.error ?? 'failed'}`,
  );
  lines.push(`${report.results.length} probes: ${report.passed} passed, ${report.failed} failed`);
  return `${lines.join('\n')}\n`;
}
