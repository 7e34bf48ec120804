// Test support for `weft check` against the stand-in API server: a fake kubelet, in-process,
// that sees the check's pods through the stand-in's store, and plays each one's part with the
// real probe code on loopback. A responder pod gets 127.0.1.<k> as its IP and a real
// `weft probe serve` bound there; a client pod's command is run as given (`weft` being
// bin/weft), and its output becomes the pod's log. Per pod, a test can script something else:
// a phase with a waiting reason, a pod left as it is, canned output.
import type { V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { KubeStandin } from '../kube/standin/server.ts';
import { startProbeServer, type ProbeServer } from '../probe/serve.ts';
import { ROLE_LABEL } from './pods.ts';

const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));

export type PodPart =
  /** what a working node does */
  | { kind: 'normal' }
  /** a responder that is Ready but answers nothing (its tcp and udp probes fail) */
  | { kind: 'no-responder' }
  /** stuck: phase Pending, the container waiting with this reason */
  | { kind: 'waiting'; reason: string; message: string }
  /** the kubelet never touches it (no status at all) */
  | { kind: 'ignore' }
  /** a client that prints this and exits with this code */
  | { kind: 'canned'; log: string; exitCode: number }
  /** a client that runs and never ends */
  | { kind: 'hang' };

export interface FakeKubeletOptions {
  /** default: normal */
  part?: (pod: V1Pod) => PodPart;
  /** called with each new pod as the kubelet first sees it */
  onPod?: (pod: V1Pod) => void;
}

const serverIP = (name: string): string => `127.0.1.${Number(/^srv-(\d+)$/.exec(name)?.[1] ?? 250) + 1}`;

export class FakeKubelet {
  /** every pod the kubelet saw, as created (for assertions on the specs) */
  readonly seen: V1Pod[] = [];
  private readonly standin: KubeStandin;
  private readonly o: FakeKubeletOptions;
  private readonly handled = new Set<string>();
  private readonly responders = new Map<string, ProbeServer>();
  private readonly children = new Map<string, ChildProcess>();
  private readonly unsubscribe: () => void;
  private scheduled = false;
  private stopped = false;

  constructor(standin: KubeStandin, o: FakeKubeletOptions = {}) {
    this.standin = standin;
    this.o = o;
    this.unsubscribe = standin.onChange((e) => {
      if (e.resource === 'pods' || e.resource === 'namespaces') this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.reconcile();
    });
  }

  private async reconcile(): Promise<void> {
    const pods = this.standin.list('pods') as V1Pod[];
    const present = new Set(pods.map((p) => p.metadata?.uid ?? ''));
    // Pods deleted (with their namespace): stop what ran for them, as a kubelet kills containers.
    for (const [uid, r] of this.responders) if (!present.has(uid)) void r.close().then(() => this.responders.delete(uid));
    for (const [uid, c] of this.children) if (!present.has(uid)) c.kill('SIGKILL');
    for (const p of pods) {
      const uid = p.metadata?.uid ?? '';
      if (this.handled.has(uid)) continue;
      this.handled.add(uid);
      this.seen.push(structuredClone(p));
      this.o.onPod?.(p);
      await this.start(p).catch((e: unknown) => this.setStatus(p, { phase: 'Failed', message: `fake kubelet: ${String(e)}` }));
    }
  }

  private setStatus(p: V1Pod, status: NonNullable<V1Pod['status']>): void {
    const current = this.standin.get('pods', p.metadata?.namespace, p.metadata?.name ?? '') as V1Pod | undefined;
    if (current === undefined || current.metadata?.uid !== p.metadata?.uid) return;
    this.standin.update('pods', { ...current, status });
  }

  private running(p: V1Pod, podIP: string | undefined, ready: boolean): void {
    this.setStatus(p, {
      phase: 'Running',
      ...(podIP === undefined ? {} : { podIP, podIPs: [{ ip: podIP }] }),
      conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: [{ name: 'probe', image: 'x', imageID: '', ready, restartCount: 0, started: true, state: { running: {} } }],
    });
  }

  private finished(p: V1Pod, exitCode: number, log: string): void {
    this.standin.setPodLog(p.metadata?.namespace ?? '', p.metadata?.name ?? '', log);
    this.setStatus(p, {
      phase: exitCode === 0 ? 'Succeeded' : 'Failed',
      podIP: '127.0.0.1',
      containerStatuses: [{ name: 'probe', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error' } } }],
    });
  }

  private async start(p: V1Pod): Promise<void> {
    const part = this.o.part?.(p) ?? { kind: 'normal' };
    const uid = p.metadata?.uid ?? '';
    const role = p.metadata?.labels?.[ROLE_LABEL];
    const command = p.spec?.containers?.[0]?.command ?? [];
    if (part.kind === 'ignore') return;
    if (part.kind === 'waiting') {
      this.setStatus(p, {
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True' }],
        containerStatuses: [{ name: 'probe', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: part.reason, message: part.message } } }],
      });
      return;
    }
    if (role === 'server') {
      const ip = serverIP(p.metadata?.name ?? '');
      if (part.kind !== 'no-responder') {
        const port = Number(command[command.indexOf('--port') + 1]);
        this.responders.set(uid, await startProbeServer({ port, address: ip }));
      }
      this.running(p, ip, true);
      return;
    }
    if (part.kind === 'canned') return this.finished(p, part.exitCode, part.log);
    this.running(p, p.spec?.hostNetwork === true ? undefined : '127.0.0.1', true);
    if (part.kind === 'hang') {
      this.children.set(uid, spawn('sleep', ['600'], { stdio: 'ignore' }));
      return;
    }
    if (command[0] !== 'weft') throw new Error(`unexpected command ${command.join(' ')}`);
    const child = spawn(WEFT_BIN, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.set(uid, child);
    let out = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('close', (code) => {
      this.children.delete(uid);
      if (!this.stopped) this.finished(p, code ?? 137, out);
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    for (const c of this.children.values()) c.kill('SIGKILL');
    await Promise.all([...this.responders.values()].map((r) => r.close()));
    this.responders.clear();
  }
}
