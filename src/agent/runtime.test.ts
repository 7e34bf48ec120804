// The node runtime with injected fakes: a scripted control plane, a backend that records what
// it was asked, files and firewall that can be made to fail. The real parts behind the same
// seams run in test/e2e (agent-*.test.ts, lab-etcd.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../log/logger.ts';
import type { Backend, Peer, ReconcileReport } from '../dataplane/index.ts';
import type { Announcement, ClusterConfig, ControlPlane, ControlPlaneEvents, NodeRanges } from './control-plane.ts';
import { AgentMetrics } from './metrics.ts';
import { createNodeRuntime, type NodeKernel, type RuntimeDeps } from './runtime.ts';

/** Lets the runtime's promise chains (the backend's reconcile) run. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

const config: ClusterConfig = { network: '10.16.0.0/16', backend: { Type: 'vxlan' }, nftables: false, restartKey: 'plan-a', warnings: [] };

class ScriptedControlPlane implements ControlPlane {
  readonly mode = 'test';
  events!: ControlPlaneEvents;
  announced: Announcement[] = [];
  openGate: Promise<void> = Promise.resolve();
  ranges: NodeRanges = { subnets: ['10.16.5.0/24'], expiresAt: Date.now() + 3_600_000 };
  async open(events: ControlPlaneEvents): Promise<ClusterConfig> {
    this.events = events;
    events.onPhase('waiting-for-store', 'store at test:// not answering');
    await this.openGate;
    return config;
  }
  async previousBackendData(): Promise<unknown> { return undefined; }
  async acquire(a: Announcement): Promise<NodeRanges> { this.announced.push(a); return this.ranges; }
  async announce(a: Announcement): Promise<void> { this.announced.push(a); }
  async start(): Promise<void> { this.events.onPeers({ peers: [], rejected: [] }); }
  status() { return { kind: 'test', endpoints: [], prefix: '' }; }
  async stop(): Promise<void> {}
}

class RecordingBackend implements Backend {
  readonly type: string;
  reconciled: (readonly Peer[])[] = [];
  attached: string[] = [];
  unreachable = new Set<string>();
  constructor(type = 'vxlan') { this.type = type; }
  prepare() { return { backendType: this.type === 'host-gw' ? 'host-gw' : 'vxlan', backendData: this.type === 'host-gw' ? undefined : { VNI: 1, VtepMAC: '02:00:00:00:00:01' }, mtu: this.type === 'host-gw' ? 1500 : 1450, changes: 0 }; }
  attach(subnet: string): number { this.attached.push(subnet); return 0; }
  async reconcile(peers: readonly Peer[]): Promise<ReconcileReport> {
    this.reconciled.push(peers);
    const paths = new Map(peers.map((p) => [p.id, this.unreachable.has(p.id) ? 'unreachable' as const : 'vxlan' as const]));
    return { changes: 0, paths, errors: peers.filter((p) => this.unreachable.has(p.id)).map((p) => ({ peer: p.id, subnet: p.subnets[0]!, error: 'announces VNI 2, this node uses VNI 1' })), warnings: [] };
  }
  async teardown(): Promise<void> {}
}

function harness(over: Partial<RuntimeDeps> = {}) {
  const cp = new ScriptedControlPlane();
  const backends: RecordingBackend[] = [];
  const calls: string[] = [];
  const files = { written: [] as string[], fail: undefined as string | undefined, intact: true, previous: undefined as { networks: string[]; subnet: string | undefined } | undefined };
  const kernel: NodeKernel = {
    externalInterface: () => ({ name: 'eth0', index: 2, publicIp: '192.0.2.10', mtu: 1500 } as ReturnType<NodeKernel['externalInterface']>),
    createBackend: (section) => {
      const b = new RecordingBackend(String(section.Type));
      backends.push(b);
      return b;
    },
    removeRoutesOutside: (networks) => { calls.push(`removeRoutesOutside ${networks.join(',')}`); return 0; },
    removeUnusedDevices: (section) => { calls.push(`removeUnusedDevices ${String(section.Type)}`); return []; },
    removeStaleBridgeAddress: () => [],
    backendDevices: (section) => (section.Type === 'host-gw' ? [] : ['flannel.1']),
    close: () => undefined,
  };
  const deps: RuntimeDeps = {
    node: 'n1', controlPlane: cp, kernel,
    firewall: { ensure: async () => { calls.push('firewall'); } },
    subnetFile: {
      previous: () => files.previous,
      intact: () => files.intact,
      write: (network, subnet, mtu) => {
        if (files.fail) throw new Error(files.fail);
        files.written.push(`${network} ${subnet} ${mtu}`);
        files.intact = true;
      },
    },
    metrics: new AgentMetrics({ version: 't', mode: 'test' }),
    log: silentLogger,
    reconcileMs: 3_600_000, firewallResyncMs: 3_600_000,
    ...over,
  };
  const runtime = createNodeRuntime(deps);
  return { cp, backends, calls, files, runtime, deps };
}

test('status is there before the store answers: the phase and why', async (t) => {
  const h = harness();
  let open: () => void = () => undefined;
  h.cp.openGate = new Promise((r) => (open = r));
  const running = h.runtime.run();
  t.after(() => h.runtime.stop());
  await new Promise((r) => setImmediate(r));
  const s = h.runtime.status();
  assert.equal(s.phase, 'waiting-for-store');
  assert.equal(s.ready, false);
  assert.match(s.reasons.join(), /not answering/);
  open();
  await running;
  assert.equal(h.runtime.status().phase, 'ready');
  assert.deepEqual(h.files.written, ['10.16.0.0/16 10.16.5.0/24 1450']);
  assert.deepEqual(h.backends[0]?.attached, ['10.16.5.0/24']);
});

test('routes outside the last known Network go before the store is asked', async (t) => {
  const h = harness();
  h.files.previous = { networks: ['10.16.0.0/16'], subnet: '10.16.5.0/24' };
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  assert.equal(h.calls[0], 'removeRoutesOutside 10.16.0.0/16');
});

test('a lost lease makes the node not ready, with why; regaining it makes it ready again', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.cp.events.onRanges(null, 'lease 10.16.5.0/24 revoked (deleted): its key was deleted');
  assert.equal(h.runtime.status().ready, false);
  assert.match(h.runtime.status().reasons.join(), /lease was lost/);
  assert.ok(h.runtime.status().errors.some((e) => /revoked/.test(e.message)));
  h.cp.events.onRanges({ subnets: ['10.16.5.0/24'], expiresAt: Date.now() + 60_000 }, 'the same subnet re-acquired');
  await new Promise((r) => setImmediate(r));
  assert.equal(h.runtime.status().ready, true);
});

test('an expired lease is not ready even when nobody said it was lost', async (t) => {
  let now = Date.now();
  const h = harness({ now: () => now });
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  now = h.cp.ranges.expiresAt! + 1;
  h.cp.events.onProblem('lease-renewal', 'renewing the lease failed: etcd unreachable');
  assert.equal(h.runtime.status().ready, false);
  assert.match(h.runtime.status().reasons.join(), /expired/);
});

test('subnet.env on a read-only filesystem: no crash, not ready with the reason; fine again once it can be written', async (t) => {
  const h = harness();
  h.files.fail = 'cannot write /run/flannel/subnet.env: it is on a read-only filesystem';
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  const s = h.runtime.status();
  assert.equal(s.ready, false);
  assert.match(s.reasons.join(), /read-only filesystem/);
  h.files.fail = undefined;
  h.cp.events.onRanges({ subnets: ['10.16.6.0/24'], expiresAt: Date.now() + 60_000 }, 'moved');
  await new Promise((r) => setImmediate(r));
  assert.equal(h.runtime.status().ready, true);
  assert.deepEqual(h.files.written, ['10.16.0.0/16 10.16.6.0/24 1450']);
});

test('a subnet.env that could not be written at start is retried on the timer', async (t) => {
  const h = harness({ reconcileMs: 20 });
  h.files.fail = 'no space left on the device holding /run/flannel/subnet.env';
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  assert.equal(h.runtime.status().ready, false);
  h.files.fail = undefined;
  for (let i = 0; i < 500 && !h.runtime.status().ready; i++) await settle();
  assert.equal(h.runtime.status().ready, true);
  assert.deepEqual(h.files.written, ['10.16.0.0/16 10.16.5.0/24 1450']);
});

test('an unreachable peer makes the node degraded and says which; refused peers are shown, never crowd the problem log', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.backends[0]!.unreachable.add('subnets/10.16.7.0-24');
  const peer = { id: 'subnets/10.16.7.0-24', subnets: ['10.16.7.0/24'], publicIp: '192.0.2.11', backendType: 'vxlan', backendData: {} };
  const rejected = [{ key: 'subnets/10.200.0.0-24', reason: 'subnet 10.200.0.0/24 is outside the Network 10.16.0.0/16' }];
  for (let i = 0; i < 30; i++) {
    h.cp.events.onPeers({ peers: [peer], rejected });
    await settle();
  }
  const s = h.runtime.status();
  assert.equal(s.phase, 'degraded');
  assert.match(s.reasons.join(), /1 peer\(s\) unreachable: 10\.16\.7\.0\/24/);
  assert.equal(s.peers[0]?.path, 'unreachable');
  assert.match(s.peers[0]?.error ?? '', /VNI 2/);
  assert.deepEqual(s.rejected, rejected);
  assert.equal(s.rejectedCount, 1);
  assert.equal(s.errors.filter((e) => e.key === 'peer subnets/10.200.0.0-24').length, 0);
  const peerErrors = s.errors.filter((e) => e.key === 'peer subnets/10.16.7.0-24');
  assert.equal(peerErrors.length, 1);
  assert.equal(peerErrors[0]?.count, 30);
});

test('a new address plan is never half-applied: the node keeps serving and says a restart is required', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.cp.events.onConfig({ ...config, network: '10.99.0.0/16', restartKey: 'plan-b' });
  await new Promise((r) => setImmediate(r));
  const s = h.runtime.status();
  assert.equal(s.ready, false);
  assert.match(s.reasons.join(), /config changed: restart required/);
  assert.equal(s.network, '10.16.0.0/16');
  assert.equal(h.backends.length, 1, 'no new backend for a plan that cannot be applied');
});

test('a backend change is applied live: the new one is built and announced, unused devices go, subnet.env gets the new MTU', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.cp.events.onConfig({ ...config, backend: { Type: 'host-gw' } });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.backends.length, 2);
  assert.equal(h.cp.announced.at(-1)?.backendType, 'host-gw');
  assert.ok(h.calls.includes('removeUnusedDevices host-gw'));
  assert.equal(h.files.written.at(-1), '10.16.0.0/16 10.16.5.0/24 1500');
  assert.equal(h.runtime.status().backend, 'host-gw');
  assert.equal(h.runtime.status().ready, true);
});

test('thousands of refused peers: the status shows the first 100 and the count, and a lease revocation stays in the problem log', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.cp.events.onRanges(null, 'lease 10.16.5.0/24 revoked (deleted): its key was deleted');
  const rejected = Array.from({ length: 5000 }, (_, i) => ({ key: `subnets/10.${200 + (i >> 8)}.${i & 255}.0-24`, reason: 'outside the Network' }));
  h.cp.events.onPeers({ peers: [], rejected });
  await settle();
  const s = h.runtime.status();
  assert.equal(s.rejected.length, 100);
  assert.equal(s.rejectedCount, 5000);
  assert.ok(s.errors.some((e) => /revoked/.test(e.message)));
});

test('a backend change whose announcement fails keeps the old backend', async (t) => {
  const h = harness();
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  h.cp.announce = async () => { throw new Error('etcd unreachable'); };
  h.cp.events.onConfig({ ...config, backend: { Type: 'host-gw' } });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(h.runtime.status().backend, 'vxlan');
  assert.ok(!h.calls.includes('removeUnusedDevices host-gw'));
  assert.ok(h.runtime.status().errors.some((e) => /announcing the new backend failed/.test(e.message)));
});

/** A fast path that records what the runtime told it. */
function recordingFastPath(notice?: string) {
  const seen = { starts: [] as { network: string; uplinks: readonly string[] }[], peers: [] as (readonly string[])[], reconciles: 0 };
  const fastPath = {
    start: (t: { network: string; uplinks: readonly string[] }) => void seen.starts.push(t),
    setPeers: (s: readonly string[]) => void seen.peers.push(s),
    reconcile: () => void seen.reconciles++,
    status: () => ({ active: notice === undefined, ...(notice === undefined ? {} : { reason: notice }), uplinks: [], pods: 0, peers: 0 }),
    notice: () => notice,
  };
  return { seen, fastPath };
}

test('the fast path is pointed at the underlay and the backend device, and gets the peers the data plane carries', async (t) => {
  const { seen, fastPath } = recordingFastPath();
  const h = harness({ fastPath });
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  assert.deepEqual(seen.starts, [{ network: '10.16.0.0/16', uplinks: ['eth0', 'flannel.1'] }]);
  h.backends[0]!.unreachable.add('bad');
  const peer = (id: string, subnet: string): Peer => ({ id, subnets: [subnet], publicIp: '192.0.2.20', backendType: 'vxlan', backendData: {} });
  h.cp.events.onPeers({ peers: [peer('good', '10.16.7.0/24'), peer('bad', '10.16.8.0/24')], rejected: [] });
  await settle();
  assert.deepEqual(seen.peers.at(-1), ['10.16.7.0/24'], 'an unreachable peer is not fast-pathed');
  assert.equal(h.runtime.status().fastPath?.active, true);
  assert.equal(h.runtime.status().notes, undefined);
});

test('a fast path that fell back leaves the node ready, with the reason as a note', async (t) => {
  const { fastPath } = recordingFastPath('the eBPF fast path could not be loaded, so pods use the normal path: no BTF');
  const h = harness({ fastPath });
  t.after(() => h.runtime.stop());
  await h.runtime.run();
  const s = h.runtime.status();
  assert.equal(s.ready, true);
  assert.deepEqual(s.notes, ['the eBPF fast path could not be loaded, so pods use the normal path: no BTF']);
  assert.equal(s.fastPath?.active, false);
  assert.match(h.runtime.readiness().notes?.join() ?? '', /no BTF/);
});
