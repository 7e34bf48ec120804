// `weft check`'s Kubernetes side against the stand-in API server (real client-node over real
// HTTP), with a fake kubelet that plays the pods with the real probe code on loopback (no root).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isWeftError } from '../errors.ts';
import { connectKube } from '../kube/client.ts';
import { KubeStandin } from '../kube/standin/server.ts';
import { checkApiFor, type CheckApi } from './api.ts';
import { cleanupStaleChecks } from './cleanup.ts';
import { ROLE_LABEL } from './pods.ts';
import { renderCheck } from './render.ts';
import { CheckInterrupted, runClusterCheck, type ClusterCheckOptions } from './run.ts';
import { FakeKubelet, type FakeKubeletOptions } from './testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

let port: number;
before(async () => (port = await freePort()));

interface Cluster {
  standin: KubeStandin;
  api: CheckApi;
  kubelet: FakeKubelet;
}

/** A stand-in with nodes n1..n<count> (InternalIP 127.0.2.<i>) and a fake kubelet; closed after the test. */
async function cluster(t: { after: (fn: () => Promise<void>) => void }, count: number, kubelet: FakeKubeletOptions = {}): Promise<Cluster> {
  const standin = await KubeStandin.start();
  const kubeconfig = join(dir, `kc-${Math.random().toString(36).slice(2)}.yaml`);
  standin.writeKubeconfig(kubeconfig);
  for (let i = 1; i <= count; i++) standin.addNode(`n${i}`, { internalIP: `127.0.2.${i}` });
  const fake = new FakeKubelet(standin, kubelet);
  t.after(async () => {
    await fake.stop();
    await standin.close();
  });
  return { standin, api: await checkApiFor(await connectKube({ kubeconfigFile: kubeconfig })), kubelet: fake };
}

const options = (c: Cluster, o: Partial<ClusterCheckOptions> = {}): ClusterCheckOptions => ({
  api: c.api, image: 'weft:test', timeoutMs: 120_000, port, pollMs: 50, attempts: 2, waitMs: 500, ...o,
});

const checkNamespaces = (s: KubeStandin): string[] =>
  (s.list('namespaces') as V1Namespace[]).map((n) => n.metadata?.name ?? '').filter((n) => n.startsWith('weft-check-'));

const role = (p: V1Pod): string | undefined => p.metadata?.labels?.[ROLE_LABEL];
const countBy = <T>(items: readonly T[], key: (x: T) => string): Record<string, number> =>
  items.reduce<Record<string, number>>((acc, x) => ({ ...acc, [key(x)]: (acc[key(x)] ?? 0) + 1 }), {});

test('three nodes: every path passes with the real probes, pods are pinned and tolerant, the namespace is gone at the end', async (t) => {
  const c = await cluster(t, 3);
  const progress: string[] = [];
  const r = await runClusterCheck(options(c, { onProgress: (l) => progress.push(l) }));
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.probes.filter((p) => !p.ok).map((p) => `${p.from_node} ${p.from} → ${p.to_node} ${p.to} ${p.method}: ${p.error}`), []);
  // 3 responders × icmp/tcp/udp from 6 clients, and icmp to 3 nodes from the 3 pod clients.
  assert.deepEqual([r.passed, r.failed], [63, 0]);
  assert.deepEqual(countBy(r.probes, (p) => p.kind), {
    'pod-pod-same-node': 9, 'pod-pod-cross-node': 18, 'pod-node': 3, 'pod-remote-node': 6, 'node-pod': 9, 'node-remote-pod': 18,
  });
  assert.ok(r.probes.filter((p) => p.method === 'tcp').every((p) => p.seen === '127.0.0.1'));
  assert.deepEqual(r.nodes.map((n) => [n.name, n.internal_ip, n.server_pod_ip]), [['n1', '127.0.2.1', '127.0.1.1'], ['n2', '127.0.2.2', '127.0.1.2'], ['n3', '127.0.2.3', '127.0.1.3']]);
  assert.equal(r.namespace_deleted, true);
  assert.match(r.namespace, /^weft-check-[0-9a-f]{6}$/);
  assert.deepEqual(checkNamespaces(c.standin), []);
  assert.equal(c.standin.list('pods', r.namespace).length, 0);
  assert.match(r.not_tested.join(' '), /API server → pod.*EKS.*expected, not a weft fault/);
  assert.ok(progress.some((l) => /responders ready on 3 of 3 nodes/.test(l)), progress.join('\n'));

  // What was created: 9 pods, each pinned to its node, tolerating everything, labelled, never restarted.
  assert.deepEqual(countBy(c.kubelet.seen, (p) => `${role(p)} ${p.spec?.nodeName}`), {
    'server n1': 1, 'server n2': 1, 'server n3': 1, 'client n1': 1, 'client n2': 1, 'client n3': 1, 'host-client n1': 1, 'host-client n2': 1, 'host-client n3': 1,
  });
  for (const p of c.kubelet.seen) {
    assert.equal(p.metadata?.labels?.app, 'weft-check');
    assert.equal(p.spec?.restartPolicy, 'Never');
    assert.deepEqual(p.spec?.tolerations, [{ operator: 'Exists' }]);
    assert.equal(p.spec?.hostNetwork === true, role(p) === 'host-client', p.metadata?.name);
    assert.equal(p.spec?.containers?.[0]?.image, 'weft:test');
  }

  const text = renderCheck(r);
  assert.match(text, /^namespace weft-check-[0-9a-f]{6} \(deleted\)\nfrom \\ to +n1 pod +n1 node +n2 pod +n2 node +n3 pod +n3 node\n/);
  assert.match(text, /\nn1 host +✓[\d.]+ +· +✓/);
  assert.match(text, /63 probes: 63 passed, 0 failed/);
  assert.match(text, /note: API server → pod/);
});

test('a responder that answers nothing fails exactly its tcp and udp paths; a pod that cannot pull its image names its node and reason', async (t) => {
  const c = await cluster(t, 4, {
    part: (p) => {
      if (p.spec?.nodeName === 'n4') return { kind: 'waiting', reason: 'ImagePullBackOff', message: 'Back-off pulling image "weft:test"' };
      if (p.spec?.nodeName === 'n3' && role(p) === 'server') return { kind: 'no-responder' };
      return { kind: 'normal' };
    },
  });
  const r = await runClusterCheck(options(c));
  const failed = r.probes.filter((p) => !p.ok);
  assert.ok(failed.length > 0);
  assert.deepEqual([...new Set(failed.map((p) => `${p.to_node} ${p.to} ${p.method}`))].sort(), ['n3 pod tcp', 'n3 pod udp']);
  assert.equal(failed.length, 12, '6 clients on n1-n3, tcp and udp each');
  assert.ok(failed.every((p) => typeof p.error === 'string' && p.error.length > 0));
  assert.match(failed.find((p) => p.method === 'tcp')?.error ?? '', /refused/);
  assert.ok(r.probes.some((p) => p.to_node === 'n3' && p.method === 'icmp' && p.ok), 'icmp to the n3 pod still passes');
  assert.deepEqual(r.problems.filter((p) => /node n4/.test(p)).length, 3, r.problems.join('\n'));
  assert.match(r.problems.join('\n'), /responder pod srv-3 on node n4 is not ready: Pending \(ImagePullBackOff: Back-off pulling image "weft:test"\)/);
  assert.match(r.problems.join('\n'), /client pod pod-3 on node n4 did not finish: Pending \(ImagePullBackOff/);
  assert.equal(r.nodes.find((n) => n.name === 'n4')?.server_pod_ip, null);
  assert.ok(r.probes.every((p) => p.from_node !== 'n4'));
  assert.ok(r.probes.some((p) => p.to_node === 'n4' && p.to === 'node'), 'n4 is still a node target');
  const text = renderCheck(r);
  assert.match(text, /✗ n1 pod → n3 pod \(pod-pod-cross-node\) tcp 127\.0\.1\.3: connection refused/);
  assert.match(text, /problem: responder pod srv-3 on node n4/);
  assert.deepEqual(checkNamespaces(c.standin), []);
});

test('client reports are untrusted: garbage is a problem, a failed probe keeps its reason, a missing one fails, an unasked one is ignored', async (t) => {
  const report = (results: object[]): string => `some warning\n${JSON.stringify({ weft_probe: 1, results })}\n`;
  const probe = (method: string, address: string, ok: boolean, error: string | null = null): object =>
    ({ method, address, port: method === 'icmp' ? null : port, ok, rtt_ms: ok ? 0.5 : null, error, seen: null, nonce: null, attempts: 1 });
  const c = await cluster(t, 2, {
    part: (p) => {
      if (role(p) === 'server') return { kind: 'normal' };
      if (role(p) === 'host-client') return { kind: 'canned', exitCode: 2, log: 'exec: "weft": executable file not found in $PATH\n' };
      const mine = p.spec?.nodeName === 'n1';
      return {
        kind: 'canned',
        exitCode: mine ? 1 : 0,
        log: report([
          ...['127.0.1.1', '127.0.1.2'].flatMap((a) => ['icmp', 'tcp', 'udp'].map((m) => probe(m, a, true))),
          probe('icmp', '127.0.2.1', true),
          ...(mine ? [probe('icmp', '127.0.2.2', false, 'no echo reply within 1 s')] : []),
          probe('icmp', '10.9.9.9', true),
        ]),
      };
    },
  });
  const r = await runClusterCheck(options(c));
  const failed = r.probes.filter((p) => !p.ok).map((p) => `${p.from_node} → ${p.to_node} ${p.to} ${p.kind}: ${p.error}`);
  assert.deepEqual(failed, ['n1 → n2 node pod-remote-node: no echo reply within 1 s', "n2 → n2 node pod-node: missing from the client's report"]);
  assert.ok(r.probes.every((p) => p.address !== '10.9.9.9'));
  assert.equal(r.probes.length, 2 * (6 + 2));
  const problems = r.problems.join('\n');
  assert.match(problems, /client pod host-0 on node n1 left no probe report \(Failed \(container exited 2, Error\)\); its log ends: exec: "weft": executable file not found/);
  assert.match(problems, /host-1 on node n2 left no probe report/);
});

test('a client that never finishes is reported with its node once the wait is over; the namespace is still deleted', async (t) => {
  const c = await cluster(t, 2, {
    part: (p) => (role(p) === 'server' ? { kind: 'normal' } : p.spec?.nodeName === 'n2' ? { kind: 'ignore' } : { kind: 'hang' }),
  });
  const r = await runClusterCheck(options(c, { timeoutMs: 1500 }));
  assert.deepEqual(r.probes, []);
  assert.match(r.problems.join('\n'), /client pod pod-0 on node n1 did not finish within \d+ s: Running/);
  assert.match(r.problems.join('\n'), /client pod pod-1 on node n2 did not finish within \d+ s: Pending \(no container status: the node's kubelet has not started it\)/);
  assert.equal(r.problems.length, 4);
  assert.deepEqual(checkNamespaces(c.standin), []);
});

test('no responder ready: an error that says why for each node, and nothing is left', async (t) => {
  const c = await cluster(t, 2, { part: () => ({ kind: 'waiting', reason: 'CreateContainerConfigError', message: 'secret "x" not found' }) });
  await assert.rejects(runClusterCheck(options(c)), (e) => {
    assert.ok(isWeftError(e, 'WEFT_NOT_READY'));
    assert.match(e.message, /no responder pod became ready.*srv-0 on node n1 is not ready: Pending \(CreateContainerConfigError: secret "x" not found\).*srv-1 on node n2/);
    return true;
  });
  assert.deepEqual(checkNamespaces(c.standin), []);
});

test('interrupted (AbortSignal) while the clients run, or while waiting for responders: the namespace is deleted and the error says so', async (t) => {
  for (const at of ['client', 'server'] as const) {
    const controller = new AbortController();
    const c = await cluster(t, 2, {
      part: (p) => (role(p) === at ? { kind: 'hang' } : { kind: 'normal' }),
      onPod: (p) => {
        if (role(p) === at) setTimeout(() => controller.abort(new Error('SIGINT')), 100);
      },
    });
    await assert.rejects(runClusterCheck(options(c, { signal: controller.signal })), (e) => {
      assert.ok(e instanceof CheckInterrupted, String(e));
      assert.equal(e.deleted, true);
      assert.match(e.message, /^interrupted; namespace weft-check-[0-9a-f]{6} deleted$/);
      return true;
    });
    assert.deepEqual(checkNamespaces(c.standin), [], at);
    assert.equal(c.standin.list('pods').length, 0, at);
  }
});

test('the API gone at the end: the report says the namespace is left and how to remove it', async (t) => {
  const c = await cluster(t, 1);
  const r = await runClusterCheck(options(c, { onProgress: (l) => l === 'clients finished' && c.standin.setAvailable(false) }));
  assert.equal(r.failed, 0);
  assert.equal(r.namespace_deleted, false);
  assert.match(r.problems.join('\n'), /namespace weft-check-[0-9a-f]{6} could not be deleted \(.*503.*\): run `weft check --cleanup`/);
  c.standin.setAvailable(true);
  assert.equal(checkNamespaces(c.standin).length, 1);
});

test('--cleanup removes only check namespaces older than the limit', async (t) => {
  const c = await cluster(t, 0);
  const now = Date.now();
  const ago = (minutes: number): string => new Date(now - minutes * 60_000).toISOString();
  const ns = (name: string, labels: Record<string, string>, started: string): void =>
    void c.standin.create('namespaces', { metadata: { name, labels, annotations: { 'weft.dev/check-started': started } } });
  ns('weft-check-aaaaaa', { app: 'weft-check' }, ago(120));
  ns('weft-check-bbbbbb', { app: 'weft-check' }, ago(10));
  ns('weft-check-cccccc', { app: 'other' }, ago(600));
  ns('other-dddddd', { app: 'weft-check' }, ago(600));
  // No usable start time of its own: its creationTimestamp (just now) counts.
  ns('weft-check-eeeeee', { app: 'weft-check' }, 'garbage');
  const r = await cleanupStaleChecks(c.api, { prefix: 'weft-check', olderThanMs: 3600_000, now });
  assert.deepEqual(r.deleted, ['weft-check-aaaaaa']);
  assert.deepEqual(r.kept.map((k) => k.name).sort(), ['weft-check-bbbbbb', 'weft-check-eeeeee']);
  assert.match(r.kept.find((k) => k.name === 'weft-check-bbbbbb')?.reason ?? '', /started 10 min ago: a check may still be running/);
  assert.deepEqual(r.failed, []);
  assert.deepEqual(checkNamespaces(c.standin).sort(), ['weft-check-bbbbbb', 'weft-check-cccccc', 'weft-check-eeeeee']);
  assert.ok(c.standin.get('namespaces', undefined, 'other-dddddd'));
});
