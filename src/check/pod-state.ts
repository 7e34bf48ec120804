// What a pod's status says, read defensively (it comes from the cluster): is a responder up,
// has a client finished, and if neither, why not, in words that name the node.
import type { V1Pod } from '@kubernetes/client-node';
import { isIP } from 'node:net';
import { clean } from './nodes.ts';

/** The pod's IP when it is a valid IP literal (status.podIP is written by the kubelet, not by us). */
export function podIP(p: V1Pod): string | undefined {
  const ip = p.status?.podIP;
  return typeof ip === 'string' && isIP(ip) !== 0 ? ip : undefined;
}

export function isReady(p: V1Pod): boolean {
  return p.status?.phase === 'Running' && (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

export function hasFinished(p: V1Pod): boolean {
  return p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed';
}

/** Waiting reasons that will not clear by themselves within a check. */
const HOPELESS = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull', 'CreateContainerConfigError', 'CreateContainerError', 'RunContainerError']);

/** A responder that will never be ready: give up on it now rather than at the deadline. */
export function isHopeless(p: V1Pod): boolean {
  if (hasFinished(p)) return true;
  return (p.status?.containerStatuses ?? []).some((c) => HOPELESS.has(c.state?.waiting?.reason ?? ''));
}

const part = (reason: unknown, message: unknown): string => {
  const r = clean(reason, 60);
  const m = clean(message, 200);
  return [r, m].filter((x) => x !== '').join(': ');
};

/** Why the pod is not (yet) where we wait for it to be: phase, then the most specific reason. */
export function podCondition(p: V1Pod | undefined): string {
  if (p === undefined) return 'the pod is gone';
  const phase = clean(p.status?.phase ?? 'no status yet', 30);
  const unscheduled = (p.status?.conditions ?? []).find((c) => c.type === 'PodScheduled' && c.status === 'False');
  if (unscheduled !== undefined) return `${phase} (not scheduled: ${part(unscheduled.reason, unscheduled.message) || 'no reason given'})`;
  for (const c of p.status?.containerStatuses ?? []) {
    const waiting = c.state?.waiting;
    if (waiting !== undefined) return `${phase} (${part(waiting.reason, waiting.message) || 'waiting'})`;
    const done = c.state?.terminated;
    if (done !== undefined) return `${phase} (container exited ${typeof done.exitCode === 'number' ? done.exitCode : '?'}${done.reason === undefined ? '' : `, ${clean(done.reason, 60)}`})`;
  }
  if (p.status?.phase === 'Running' && !isReady(p)) return 'Running, not Ready (its readiness probe has not passed)';
  if (p.status?.phase === 'Pending' && (p.status.containerStatuses ?? []).length === 0) return 'Pending (no container status: the node\'s kubelet has not started it)';
  const top = part(p.status?.reason, p.status?.message);
  return top === '' ? phase : `${phase} (${top})`;
}
