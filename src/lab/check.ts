// `weft lab check`: run the planned probes concurrently and report each one.
import { WeftError } from '../errors.ts';
import { mapLimit } from './concurrency.ts';
import { probeOutside, startOutsideEcho, type OutsideEcho } from './outside-probe.ts';
import { pingFrom, type PingOptions } from './ping.ts';
import { defaultKinds, planProbes, probeView, skippedKinds, type ProbeKind, type SkippedKind } from './probes.ts';
import { LAB_STATE_ROOT } from './paths.ts';
import { loadLab } from './status.ts';

/** The JSON shape `weft lab check --json` prints, field for field. */
export interface ProbeResult {
  from: string;
  to: string;
  kind: ProbeKind;
  ok: boolean;
  rtt_ms: number | null;
  /** pod-outside only: the source address the outside host saw (null: nothing arrived); ok needs it to be the node's. */
  source_seen?: string | null;
  /** pod-outside only: the address it had to be (the pod's node's eth0). */
  expected_source?: string;
}

export interface CheckReport {
  probes: ProbeResult[];
  passed: number;
  failed: number;
  /** Kinds that did not run, each with why (one node, no store, no pods, …). */
  skipped: SkippedKind[];
}

export interface LabCheckOptions extends PingOptions {
  stateRoot?: string;
  /** Default: every kind in labs whose nodes run agents (store etcd), else the same-node kinds. */
  kinds?: readonly ProbeKind[];
  /** Probes in flight at once. */
  concurrency?: number;
}

export async function labCheck(name: string, o: LabCheckOptions = {}): Promise<CheckReport> {
  const state = await loadLab(name, o.stateRoot ?? LAB_STATE_ROOT);
  if (state.phase !== 'ready') {
    throw new WeftError('WEFT_LAB', `lab ${name} is not ready (its \`up\` ${state.phase === 'failed' ? `failed: ${state.error}` : 'did not finish'}); run \`weft lab down --name ${name}\` and \`weft lab up\` again`);
  }
  const view = probeView(state);
  const probes = planProbes(view, o.kinds ?? defaultKinds(state));
  const skipped = skippedKinds(view, state, o.kinds);
  const pingOptions = { ...(o.attempts === undefined ? {} : { attempts: o.attempts }), ...(o.waitSeconds === undefined ? {} : { waitSeconds: o.waitSeconds }) };
  let echo: OutsideEcho | undefined;
  try {
    if (probes.some((p) => p.kind === 'pod-outside')) echo = await startOutsideEcho(state.topology.outside.ns, state.topology.outside.address);
    const results = await mapLimit(probes, o.concurrency ?? 16, async (p): Promise<ProbeResult> => {
      if (p.kind === 'pod-outside' && echo !== undefined && p.expectSource !== undefined) {
        const r = await probeOutside(echo, p.fromNs, p.expectSource, pingOptions);
        return { from: p.from, to: p.to, kind: p.kind, ok: r.ok, rtt_ms: r.rttMs, source_seen: r.sourceSeen, expected_source: p.expectSource };
      }
      const r = await pingFrom(p.fromNs, p.address, pingOptions);
      return { from: p.from, to: p.to, kind: p.kind, ok: r.ok, rtt_ms: r.rttMs };
    });
    const passed = results.filter((r) => r.ok).length;
    return { probes: results, passed, failed: results.length - passed, skipped };
  } finally {
    await echo?.stop();
  }
}
