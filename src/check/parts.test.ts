// The pure parts of `weft check`: which nodes, what a pod's status means, the matrix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { clean, selectNodes } from './nodes.ts';
import { isHopeless, isReady, podCondition, podIP } from './pod-state.ts';
import { clientPod, probeTargets, serverPod } from './pods.ts';
import { renderCheck } from './render.ts';
import { buildReport } from './report.ts';
import type { ProbeRecord } from '../probe/types.ts';

const node = (name: string, o: { ip?: string; ready?: string; unschedulable?: boolean; os?: string } = {}): V1Node => ({
  metadata: { name, labels: o.os === undefined ? {} : { 'kubernetes.io/os': o.os } },
  spec: { unschedulable: o.unschedulable ?? false },
  status: { addresses: o.ip === undefined ? [] : [{ type: 'InternalIP', address: o.ip }], conditions: [{ type: 'Ready', status: o.ready ?? 'True', reason: o.ready === 'False' ? 'KubeletNotReady' : 'KubeletReady' }] },
});

test('nodes: Ready, schedulable linux nodes with an InternalIP, in natural order; the rest say why', () => {
  const { nodes, skipped } = selectNodes([
    node('n10', { ip: '10.0.0.10' }), node('n2', { ip: '10.0.0.2' }), node('cordoned', { ip: '10.0.0.3', unschedulable: true }),
    node('down', { ip: '10.0.0.4', ready: 'False' }), node('win', { ip: '10.0.0.5', os: 'windows' }), node('noip'), node('badip', { ip: '10.0.0.300' }),
    node('Bad_Name', { ip: '10.0.0.6' }), node('n2', { ip: '10.0.0.99' }),
  ]);
  assert.deepEqual(nodes, [{ name: 'n2', internalIP: '10.0.0.2', index: 0 }, { name: 'n10', internalIP: '10.0.0.10', index: 1 }]);
  assert.deepEqual(skipped, [
    { name: 'badip', reason: 'no valid InternalIP in status.addresses' },
    { name: 'cordoned', reason: 'cordoned (spec.unschedulable)' },
    { name: 'down', reason: 'not Ready (KubeletNotReady)' },
    { name: 'noip', reason: 'no valid InternalIP in status.addresses' },
    { name: 'win', reason: 'runs windows, not linux' },
  ]);
  const picked = selectNodes([node('a', { ip: '10.0.0.1' }), node('b', { ip: '10.0.0.2' })], ['b', 'ghost']);
  assert.deepEqual(picked.nodes.map((n) => n.name), ['b']);
  assert.deepEqual(picked.skipped, [{ name: 'ghost', reason: 'no such Node' }]);
});

test('text from the cluster is one bounded printable line', () => {
  assert.equal(clean('a\u001b[31mb\nc\td'), 'a [31mb c d');
  assert.equal(clean('x'.repeat(500), 10).length, 10);
  assert.equal(clean(42), '');
});

test('pod status: ready, hopeless, and why not, most specific first', () => {
  const pod = (status: V1Pod['status']): V1Pod => ({ metadata: { name: 'p' }, status });
  const ready = pod({ phase: 'Running', podIP: '10.244.1.5', conditions: [{ type: 'Ready', status: 'True' }] });
  assert.equal(isReady(ready), true);
  assert.equal(podIP(ready), '10.244.1.5');
  assert.equal(podIP(pod({ phase: 'Running', podIP: '10.244.1.5; rm -rf /' })), undefined);
  assert.equal(podCondition(pod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/3 nodes are available' }] })), 'Pending (not scheduled: Unschedulable: 0/3 nodes are available)');
  const pulling = pod({ phase: 'Pending', containerStatuses: [{ name: 'probe', image: 'i', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ErrImagePull', message: 'not found' } } }] });
  assert.equal(podCondition(pulling), 'Pending (ErrImagePull: not found)');
  assert.equal(isHopeless(pulling), true);
  const creating = pod({ phase: 'Pending', containerStatuses: [{ name: 'probe', image: 'i', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } }] });
  assert.equal(isHopeless(creating), false);
  assert.equal(podCondition(pod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'False' }] })), 'Running, not Ready (its readiness probe has not passed)');
  assert.equal(podCondition(undefined), 'the pod is gone');
  assert.equal(podCondition(pod(undefined)), 'no status yet');
});

test('pod specs: pinned, tolerant, the responder not on the host network, the host client on it', () => {
  const n = { name: 'ip-10-0-1-5.ec2.internal', internalIP: '10.0.1.5', index: 4 };
  const s = { namespace: 'weft-check-abc', image: 'img', port: 6785, serveSeconds: 540, attempts: 3, waitMs: 2000 };
  const srv = serverPod(n, s);
  assert.equal(srv.metadata?.name, 'srv-4');
  assert.equal(srv.spec?.nodeName, n.name);
  assert.equal(srv.spec?.hostNetwork, undefined);
  assert.deepEqual(srv.spec?.containers?.[0]?.command, ['weft', 'probe', 'serve', '--port', '6785', '--exit-after', '540s']);
  const targets = probeTargets(['10.244.1.2', 'fd00::5'], ['10.0.1.5'], 6785);
  assert.equal(targets, '10.244.1.2:6785,[fd00::5]:6785,icmp://10.0.1.5');
  const host = clientPod('host-client', n, s, targets);
  assert.equal(host.spec?.hostNetwork, true);
  assert.equal(host.metadata?.name, 'host-4');
  assert.deepEqual(host.spec?.containers?.[0]?.command?.slice(-2), ['--to', targets]);
});

const rec = (method: ProbeRecord['method'], address: string, ok: boolean, seen: string | null = null): ProbeRecord =>
  ({ method, address, port: method === 'icmp' ? null : 6785, ok, rtt_ms: ok ? 0.31 : null, error: ok ? null : 'no echo reply within 2 s', seen, nonce: null, attempts: 1 });

test('the matrix: kinds by source and target, a masqueraded pod path is a warning, rendering shows cells and failures', () => {
  const nodes = [{ name: 'n1', internalIP: '10.0.0.1', index: 0 }, { name: 'n2', internalIP: '10.0.0.2', index: 1 }];
  const servers = new Map([['n1', '10.244.1.2'], ['n2', '10.244.2.2']]);
  const pods = (seen: string): ProbeRecord[] => ['10.244.1.2', '10.244.2.2'].flatMap((a) => [rec('icmp', a, true), rec('tcp', a, true, seen), rec('udp', a, true, seen)]);
  const r = buildReport({
    namespace: 'weft-check-abc', nodes, skipped: [{ name: 'n3', reason: 'cordoned (spec.unschedulable)' }], servers, problems: [], namespaceDeleted: true,
    clients: [
      { node: nodes[0]!, role: 'client', podIP: '10.244.1.3', report: { weft_probe: 1, results: [...pods('10.244.1.3'), rec('icmp', '10.0.0.1', true), rec('icmp', '10.0.0.2', false)], passed: 0, failed: 0 } },
      { node: nodes[1]!, role: 'client', podIP: '10.244.2.3', report: { weft_probe: 1, results: [...pods('10.0.0.2'), rec('icmp', '10.0.0.1', true), rec('icmp', '10.0.0.2', true)], passed: 0, failed: 0 } },
      { node: nodes[0]!, role: 'host-client', podIP: '10.0.0.1', report: { weft_probe: 1, results: pods('10.0.0.1'), passed: 0, failed: 0 } },
    ],
  });
  assert.deepEqual([r.passed, r.failed], [21, 1]);
  assert.deepEqual(r.probes.filter((p) => !p.ok).map((p) => [p.from_node, p.to_node, p.to, p.kind]), [['n1', 'n2', 'node', 'pod-remote-node']]);
  assert.deepEqual(r.probes.filter((p) => p.from === 'host').map((p) => p.kind), ['node-pod', 'node-pod', 'node-pod', 'node-remote-pod', 'node-remote-pod', 'node-remote-pod']);
  assert.deepEqual(r.warnings, [
    "n2 pod → n1 pod: the responder saw 10.0.0.2, not the client pod's 10.244.2.3: pod-to-pod traffic is masqueraded (NetworkPolicy by pod address will not work)",
    "n2 pod → n2 pod: the responder saw 10.0.0.2, not the client pod's 10.244.2.3: pod-to-pod traffic is masqueraded (NetworkPolicy by pod address will not work)",
  ]);
  const text = renderCheck(r);
  assert.equal(text.split('\n').slice(1, 5).join('\n'), [
    'from \\ to  n1 pod  n1 node  n2 pod  n2 node',
    'n1 pod     ✓0.31   ✓0.31    ✓0.31   ✗',
    'n1 host    ✓0.31   ·        ✓0.31   ·',
    'n2 pod     ✓0.31   ✓0.31    ✓0.31   ✓0.31',
  ].join('\n'));
  assert.match(text, /\n✗ n1 pod → n2 node \(pod-remote-node\) icmp 10\.0\.0\.2: no echo reply within 2 s\n/);
  assert.match(text, /22 probes: 21 passed, 1 failed/);
  assert.match(text, /\nnot probed: node n3: cordoned/);
  assert.match(text, /\nwarning: n2 pod → n1 pod: the responder saw 10\.0\.0\.2/);
});
