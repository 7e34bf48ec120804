// `weft check --cleanup`: namespaces a check left behind (it was killed with SIGKILL, or lost
// the API at the end). Only namespaces with the check's label and name prefix, and only those
// older than a check can run, so a check still running elsewhere keeps its namespace.
import type { V1Namespace } from '@kubernetes/client-node';
import type { CheckApi } from './api.ts';
import { clean } from './nodes.ts';
import { APP_LABEL, STARTED_ANNOTATION } from './pods.ts';

export interface CleanupReport {
  deleted: string[];
  kept: { name: string; reason: string }[];
  failed: { name: string; error: string }[];
}

/** When the check started: its annotation, else the namespace's creationTimestamp; undefined if neither parses. */
function startedAt(ns: V1Namespace): number | undefined {
  const candidates: unknown[] = [ns.metadata?.annotations?.[STARTED_ANNOTATION], ns.metadata?.creationTimestamp];
  for (const c of candidates) {
    const t = c instanceof Date ? c.getTime() : typeof c === 'string' ? Date.parse(c) : NaN;
    if (Number.isFinite(t)) return t;
  }
  return undefined;
}

export async function cleanupStaleChecks(api: CheckApi, o: { prefix: string; olderThanMs: number; now?: number; signal?: AbortSignal }): Promise<CleanupReport> {
  const now = o.now ?? Date.now();
  const report: CleanupReport = { deleted: [], kept: [], failed: [] };
  const namespaces = await api.listNamespaces(`app=${APP_LABEL}`, o.signal);
  for (const ns of namespaces) {
    const name = ns.metadata?.name;
    if (typeof name !== 'string' || !name.startsWith(`${o.prefix}-`)) continue;
    const started = startedAt(ns);
    if (started === undefined) {
      report.kept.push({ name, reason: 'no start time recorded' });
      continue;
    }
    const age = now - started;
    if (age < o.olderThanMs) {
      report.kept.push({ name, reason: `started ${Math.max(0, Math.round(age / 60_000))} min ago: a check may still be running` });
      continue;
    }
    try {
      await api.deleteNamespace(name, o.signal);
      report.deleted.push(name);
    } catch (e) {
      report.failed.push({ name, error: clean(e instanceof Error ? e.message : String(e), 300) });
    }
  }
  return report;
}
