// Runs a list of probes, a bounded number at once, into the report `weft probe --json` prints.
import { icmpProbe } from './icmp.ts';
import { tcpProbe } from './tcp.ts';
import { udpProbe } from './udp.ts';
import { boundedError, type ProbeOutcome, type ProbeRecord, type ProbeReport, type ProbeTarget } from './types.ts';

export interface RunProbesOptions {
  /** Tries per probe (default 3). */
  attempts?: number;
  /** Milliseconds each try waits for its answer (default 1000; icmp rounds up to whole seconds, as ping -W does). */
  waitMs?: number;
  /** Probes in flight at once (default 16). */
  concurrency?: number;
  /** tcp payload echoed (default 4096 bytes). */
  tcpPayloadBytes?: number;
}

export function probeOne(t: ProbeTarget, o: RunProbesOptions = {}): Promise<ProbeOutcome> {
  const attempts = o.attempts ?? 3;
  const waitMs = o.waitMs ?? 1000;
  if (t.method === 'icmp') return icmpProbe(t.address, { attempts, waitSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
  const port = t.port ?? 0;
  if (t.method === 'tcp') return tcpProbe(t.address, port, { attempts, timeoutMs: waitMs, ...(o.tcpPayloadBytes === undefined ? {} : { payloadBytes: o.tcpPayloadBytes }) });
  return udpProbe(t.address, port, { attempts, waitMs });
}

export function toRecord(t: ProbeTarget, r: ProbeOutcome): ProbeRecord {
  return {
    method: t.method,
    address: t.address,
    port: t.port ?? null,
    ok: r.ok,
    rtt_ms: r.ok ? (r.rttMs ?? null) : null,
    error: r.ok ? null : (r.error ?? 'failed'),
    seen: r.seen ?? null,
    nonce: r.nonce ?? null,
    attempts: r.attempts,
  };
}

export async function runProbes(targets: readonly ProbeTarget[], o: RunProbesOptions = {}): Promise<ProbeReport> {
  const results = new Array<ProbeRecord>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const t = targets[i] as ProbeTarget;
      let r: ProbeOutcome;
      try {
        r = await probeOne(t, o);
      } catch (e) {
        r = { ok: false, error: boundedError(`probe failed: ${e instanceof Error ? e.message : String(e)}`), attempts: 0 };
      }
      results[i] = toRecord(t, r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 16, targets.length) }, worker));
  const passed = results.filter((r) => r.ok).length;
  return { weft_probe: 1, results, passed, failed: results.length - passed };
}
