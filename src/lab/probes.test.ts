import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CROSS_NODE_KINDS, DEFAULT_KINDS, PROBE_KINDS, SAME_NODE_KINDS, defaultKinds, isProbeKind, planProbes, probeView, skippedKinds, type ProbeKind } from './probes.ts';
import type { LabState, PodState } from './state.ts';
import { calcTopology } from './topology.ts';

function labState(nodes: number, podsPerNode: number, attached: (pod: string) => boolean = () => true): LabState {
  const topology = calcTopology({ name: 'x', nodes, podsPerNode, labDir: '/l' });
  const pods: Record<string, PodState> = {};
  for (const n of topology.nodes) {
    for (const p of n.pods) {
      if (attached(p.name)) pods[p.name] = { containerId: p.containerId, addresses: [`10.16.${n.index}.${p.index + 1}/24`], result: {} };
    }
  }
  return { version: 1, name: 'x', createdAt: '', phase: 'ready', upPid: 1, cni: 'bridge', plugin: '', daemons: false, topology, namespaces: [], daemonPids: {}, pods };
}

const count = (kind: ProbeKind, s: LabState): number => planProbes(probeView(s), [kind]).length;

test('the default probes are the same-node kinds; every kind is either same-node or cross-node', () => {
  assert.deepEqual(DEFAULT_KINDS, SAME_NODE_KINDS);
  assert.deepEqual([...SAME_NODE_KINDS, ...CROSS_NODE_KINDS].sort(), [...PROBE_KINDS].sort());
  assert.ok(isProbeKind('pod-outside'));
  assert.ok(!isProbeKind('pod-moon'));
});

test('2 nodes x 3 pods: 12 pod pairs, 6 of each pod/node kind, 30 in all by default', () => {
  const s = labState(2, 3);
  assert.equal(count('pod-pod-same-node', s), 12);
  assert.equal(count('pod-gateway', s), 6);
  assert.equal(count('pod-node', s), 6);
  assert.equal(count('node-pod', s), 6);
  assert.equal(planProbes(probeView(s)).length, 30);
});

test('probes name their source and target and aim at the right addresses', () => {
  const probes = planProbes(probeView(labState(2, 2)));
  assert.deepEqual(probes.find((p) => p.kind === 'pod-pod-same-node'), { kind: 'pod-pod-same-node', from: 'n1-p1', fromNs: 'weft-x-n1-p1', to: 'n1-p2', address: '10.16.1.3' });
  assert.deepEqual(probes.find((p) => p.kind === 'pod-gateway' && p.from === 'n2-p1'), { kind: 'pod-gateway', from: 'n2-p1', fromNs: 'weft-x-n2-p1', to: 'n2:cni0', address: '10.16.2.1' });
  assert.deepEqual(probes.find((p) => p.kind === 'pod-node' && p.from === 'n2-p1'), { kind: 'pod-node', from: 'n2-p1', fromNs: 'weft-x-n2-p1', to: 'n2', address: '172.31.2.12' });
  assert.deepEqual(probes.find((p) => p.kind === 'node-pod'), { kind: 'node-pod', from: 'n1', fromNs: 'weft-x-n1', to: 'n1-p1', address: '10.16.1.2' });
  assert.ok(probes.every((p) => p.from.split('-')[0] === p.to.split(/[-:]/)[0]), 'same-node kinds stay on one node');
});

test('cross-node kinds pair nodes by zone (n1, n3 in zone a; n2 in zone b)', () => {
  const s = labState(3, 2);
  assert.equal(count('pod-pod-same-zone', s), 2 * (2 * 2)); // n1<->n3, 2x2 pods each way
  assert.equal(count('pod-pod-other-zone', s), 2 * 2 * (2 * 2)); // n1<->n2, n3<->n2
  assert.equal(count('pod-remote-node', s), 6 * 2);
  assert.equal(count('node-remote-pod', s), 3 * 4);
  const outside = planProbes(probeView(s), ['pod-outside']);
  assert.equal(outside.length, 6);
  assert.ok(outside.every((p) => p.to === 'outside' && p.address === '203.0.113.2'));
  assert.deepEqual(outside.map((p) => [p.from, p.expectSource]).slice(0, 3), [['n1-p1', '172.31.1.11'], ['n1-p2', '172.31.1.11'], ['n2-p1', '172.31.2.12']]);
});

test('pods without an address (ADD not done) are not probed', () => {
  const s = labState(1, 3, (p) => p !== 'n1-p2');
  assert.equal(count('pod-pod-same-node', s), 2);
  assert.ok(planProbes(probeView(s)).every((p) => p.from !== 'n1-p2' && p.to !== 'n1-p2'));
});

test('labs with agents (store etcd) probe every kind by default; others the same-node kinds', () => {
  assert.deepEqual(defaultKinds({ store: 'etcd' }), PROBE_KINDS);
  assert.deepEqual(defaultKinds({ store: 'none' }), SAME_NODE_KINDS);
  assert.deepEqual(defaultKinds({}), SAME_NODE_KINDS);
});

test('store etcd: the pods’ gateway comes from their ADD result, else from the recorded lease', () => {
  const topology = calcTopology({ name: 'x', nodes: 2, podsPerNode: 1, labDir: '/l', store: 'etcd' });
  const s: LabState = {
    version: 1, name: 'x', createdAt: '', phase: 'ready', upPid: 1, cni: 'weft', plugin: '', daemons: true, store: 'etcd', topology, namespaces: [], daemonPids: {},
    leases: { n2: { subnet: '10.16.77.0/24', gateway: '10.16.77.1', backend: 'vxlan', publicIp: null } },
    pods: {
      'n1-p1': { containerId: 'a', addresses: ['10.16.40.2/24'], result: { ips: [{ address: '10.16.40.2/24', gateway: '10.16.40.1' }] } },
      'n2-p1': { containerId: 'b', addresses: ['10.16.77.2/24'], result: {} },
    },
  };
  const gateways = planProbes(probeView(s), ['pod-gateway']).map((p) => [p.from, p.to, p.address]);
  assert.deepEqual(gateways, [['n1-p1', 'n1:cni0', '10.16.40.1'], ['n2-p1', 'n2:cni0', '10.16.77.1']]);
});

test('routed pod links: the link-local gateway is not pinged, and the skip says why', () => {
  const topology = calcTopology({ name: 'x', nodes: 1, podsPerNode: 1, labDir: '/l', store: 'etcd' });
  const s: LabState = {
    version: 1, name: 'x', createdAt: '', phase: 'ready', upPid: 1, cni: 'weft', plugin: '', daemons: true, store: 'etcd', topology, namespaces: [], daemonPids: {},
    pods: { 'n1-p1': { containerId: 'a', addresses: ['10.16.40.2/32'], result: { ips: [{ address: '10.16.40.2/32', gateway: '169.254.1.1' }] } } },
  };
  assert.deepEqual(planProbes(probeView(s), ['pod-gateway']), []);
  const skipped = skippedKinds(probeView(s), s, ['pod-gateway']);
  assert.match(skipped[0]?.reason ?? '', /link-local next hop.*routed pod links/);
});

test('a 1-node lab says which kinds it could not run and why, instead of passing with fewer probes', () => {
  const one = labState(1, 2);
  const etcd = { ...one, store: 'etcd' as const };
  const skipped = skippedKinds(probeView(etcd), etcd, undefined);
  assert.deepEqual(skipped.map((k) => k.kind), ['pod-pod-same-zone', 'pod-pod-other-zone', 'pod-remote-node', 'node-remote-pod']);
  for (const k of skipped) assert.match(k.reason, /the lab has one node/);
});

test('a lab without a store leaves out the cross-node kinds by default and says so; --kinds given reports only what cannot run', () => {
  const s = labState(2, 1);
  const skipped = skippedKinds(probeView(s), s, undefined);
  assert.deepEqual(skipped.map((k) => k.kind), ['pod-pod-same-node', ...CROSS_NODE_KINDS]);
  assert.match(skipped[0]?.reason ?? '', /no node has two pods/);
  assert.match(skipped[1]?.reason ?? '', /no agent \(lab up --store none\).*--kinds all/);
  assert.deepEqual(skippedKinds(probeView(s), s, ['pod-node', 'pod-pod-same-zone']), [
    { kind: 'pod-pod-same-zone', reason: 'no two nodes share a zone (lab up --nodes 3 or more, or --zones 1)' },
  ]);
  const empty = labState(2, 0);
  assert.ok(skippedKinds(probeView(empty), empty, ['pod-node']).every((k) => /no pods/.test(k.reason)));
});
