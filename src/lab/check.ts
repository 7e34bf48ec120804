// `weft lab check`: run the planned probes concurrently and report each one.
import { WeftError } from '../errors.ts';
import { mapLimit } from './concurrency.ts';
import { pingFrom, type PingOptions } from './ping.ts';
import { DEFAULT_KINDS, planProbes, probeView, type ProbeKind } from './probes.ts';
import { LAB_STATE_ROOT } from './paths.ts';
import { loadLab } from './status.ts';

/** The JSON shape `weft lab check --json` prints, field for field. */
export interface ProbeResult {
  from: string;
  to: string;
  kind: ProbeKind;
  ok: boolean;
  rtt_ms: number | null;
}

export interface CheckReport {
  probes: ProbeResult[];
  passed: number;
  failed: number;
}

export interface LabCheckOptions extends PingOptions {
  stateRoot?: string;
  kinds?: readonly ProbeKind[];
  /** Probes in flight at once. */
  concurrency?: number;
}

export async function labCheck(name: string, o: LabCheckOptions = {}): Promise<CheckReport> {
  const state = await loadLab(name, o.stateRoot ?? LAB_STATE_ROOT);
  if (state.phase !== 'ready') {
    throw new WeftError('WEFT_LAB', `lab ${name} is not ready (its \`up\` ${state.phase === 'failed' ? `failed: ${state.error}` : 'did not finish'}); run \`weft lab down --name ${name}\` and \`weft lab up\` again`);
  }
  const probes = planProbes(probeView(state), o.kinds ?? DEFAULT_KINDS);
  const pingOptions = { ...(o.attempts === undefined ? {} : { attempts: o.attempts }), ...(o.waitSeconds === undefined ? {} : { waitSeconds: o.waitSeconds }) };
  const results = await mapLimit(probes, o.concurrency ?? 16, async (p): Promise<ProbeResult> => {
    const r = await pingFrom(p.fromNs, p.address, pingOptions);
    return { from: p.from, to: p.to, kind: p.kind, ok: r.ok, rtt_ms: r.rttMs };
  });
  const passed = results.filter((r) => r.ok).length;
  return { probes: results, passed, failed: results.length - passed };
}
