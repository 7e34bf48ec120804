// Reading a `weft probe --json` report back, from a child's stdout or a pod's log: untrusted
// text, so every field is checked, sizes are bounded, and a bad record is dropped, not trusted.
import { isIP } from 'node:net';
import { MAX_ERROR_CHARS, MAX_TARGETS, isProbeMethod, type ProbeRecord, type ProbeReport } from './types.ts';

/** The most of a report anyone reads (a full report of MAX_TARGETS × 3 records fits). */
export const MAX_REPORT_BYTES = 2 * 1024 * 1024;

const str = (v: unknown, max: number): string | null => (typeof v === 'string' && v.length <= max ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 && v < 1e9 ? v : null);

function record(v: unknown): ProbeRecord | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  const method = typeof r.method === 'string' && isProbeMethod(r.method) ? r.method : undefined;
  const address = str(r.address, 64);
  if (method === undefined || address === null || isIP(address) === 0 || typeof r.ok !== 'boolean') return undefined;
  const port = num(r.port);
  return {
    method,
    address,
    port: port !== null && Number.isInteger(port) && port <= 65535 ? port : null,
    ok: r.ok,
    rtt_ms: r.ok ? num(r.rtt_ms) : null,
    error: r.ok ? null : (str(r.error, MAX_ERROR_CHARS + 8) ?? 'failed (no reason given)'),
    seen: str(r.seen, 64),
    nonce: str(r.nonce, 64),
    attempts: Math.min(num(r.attempts) ?? 0, 1000),
  };
}

/**
 * The report in `text`: the last line that is one (a log may hold warnings before it), or
 * undefined when there is none. Records that do not check out are left out.
 */
export function parseProbeReport(text: string): ProbeReport | undefined {
  const lines = text.slice(0, MAX_REPORT_BYTES).split('\n').reverse();
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      continue;
    }
    if (typeof v !== 'object' || v === null || (v as { weft_probe?: unknown }).weft_probe !== 1) continue;
    const raw = (v as { results?: unknown }).results;
    const results = (Array.isArray(raw) ? raw.slice(0, MAX_TARGETS * 3) : []).flatMap((r) => record(r) ?? []);
    const passed = results.filter((r) => r.ok).length;
    return { weft_probe: 1, results, passed, failed: results.length - passed };
  }
  return undefined;
}
