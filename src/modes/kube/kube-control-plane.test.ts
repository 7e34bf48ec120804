// kube mode's control plane through the real client library over real HTTP, against weft's
// stand-in API server (src/kube/standin; not Kubernetes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlPlaneContract, Recorder } from '../../agent/control-plane-contract.ts';
import { isWeftError } from '../../errors.ts';
import { kubeContractCluster, kubeTestCluster, netConf, NAMESPACE } from './contract-cluster.ts';
import { claimLease } from './claims.ts';
import { parseCidr } from '../../net/cidr.ts';

controlPlaneContract('kube mode over the stand-in API server', () => kubeContractCluster());
// A real API server's watch cache lags its writes: the Leases' watch 300 ms behind, the Nodes' on time.
controlPlaneContract('kube mode, the claims watch lagging', () => kubeContractCluster({ watchLagMs: { leases: 300 } }));

test('a lagging claims watch never costs the node its claim: lost, claimed again, and lost again is noticed again', async (t) => {
  const c = await kubeTestCluster(netConf(), { watchLagMs: { leases: 300 } });
  t.after(() => c.close());
  const cp = c.controlPlane('n1');
  t.after(() => cp.stop());
  const events = new Recorder();
  await cp.open(events);
  const held = await cp.acquire(me('192.0.2.1'));
  await cp.start();
  const other = c.standin.addNode('busy', { internalIP: '192.0.2.9' }) as { metadata: Record<string, unknown> };
  const nodeEvents = setInterval(() => c.standin.update('nodes', { ...other, metadata: { ...other.metadata, annotations: { tick: String(Date.now()) } } }), 20);
  t.after(() => clearInterval(nodeEvents));
  const lose = async (round: number): Promise<void> => {
    for (const l of c.standin.list('leases', NAMESPACE) as { metadata: { name: string } }[]) c.standin.delete('leases', NAMESPACE, l.metadata.name);
    await events.until(`loss ${round} reported`, () => events.ranges.filter((r) => r === null).length === round);
    await events.until(`claim ${round} regained`, () => events.ranges.at(-1) !== null && events.ranges.lastIndexOf(null) === events.ranges.length - 2);
    await events.until(`claim ${round} in the API`, () => c.standin.list('leases', NAMESPACE).length === 1);
  };
  await lose(1);
  await lose(2);
  await new Promise((r) => setTimeout(r, 800)); // past the watch lag: no late "loss" of the new claim
  assert.equal(events.ranges.filter((r) => r === null).length, 2, 'each deletion is one loss, never a spurious one');
  assert.deepEqual(events.ranges.at(-1)?.subnets, held.subnets, 'the same subnet back');
  assert.match(String((cp.status() as { summary?: string }).summary), /subnet from claim weft\/subnet-/);
});

const me = (ip: string) => ({ publicIp: ip, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } });

test('eight nodes claiming at once get eight different subnets, and every claim is owned by its Node', async (t) => {
  const c = await kubeTestCluster(netConf('10.16.0.0/16'));
  t.after(() => c.close());
  const names = Array.from({ length: 8 }, (_, i) => `n${i}`);
  const planes = names.map((n) => c.controlPlane(n));
  t.after(() => Promise.all(planes.map((p) => p.stop())));
  await Promise.all(planes.map((p) => p.open(new Recorder())));
  const ranges = await Promise.all(planes.map((p, i) => p.acquire(me(`192.0.2.${i + 1}`))));
  const subnets = ranges.map((r) => r.subnets[0]);
  assert.equal(new Set(subnets).size, 8, `no subnet twice: ${subnets.join(' ')}`);
  const claims = c.standin.list('leases', NAMESPACE) as { metadata: { ownerReferences: { name: string; uid: string }[] }; spec: { holderIdentity: string } }[];
  assert.equal(claims.length, 8);
  for (const l of claims) {
    const node = c.standin.get('nodes', undefined, l.spec.holderIdentity) as { metadata: { uid: string } };
    assert.equal(l.metadata.ownerReferences[0]!.uid, node.metadata.uid);
  }
});

test('the claims race for one last subnet: exactly one node gets it, the other is told the Network is full', async (t) => {
  const c = await kubeTestCluster(JSON.stringify({ Network: '10.16.0.0/22', SubnetLen: 24, SubnetMin: '10.16.1.0', SubnetMax: '10.16.1.0', Backend: { Type: 'host-gw' } }));
  t.after(() => c.close());
  const [a, b] = [c.controlPlane('a'), c.controlPlane('b')];
  t.after(() => Promise.all([a.stop(), b.stop()]));
  await Promise.all([a.open(new Recorder()), b.open(new Recorder())]);
  const results = await Promise.allSettled([a.acquire(me('192.0.2.1')), b.acquire(me('192.0.2.2'))]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r) => r.status === 'rejected');
  assert.equal(won.length, 1);
  assert.equal(lost.length, 1);
  assert.ok(isWeftError((lost[0] as PromiseRejectedResult).reason, 'WEFT_IPAM_EXHAUSTED'));
  assert.match((lost[0] as PromiseRejectedResult).reason.message, /out of subnets/);
});

test('a restart keeps the claim; a deleted Node\'s claim is collected and its subnet goes to the next node', async (t) => {
  const c = await kubeTestCluster(JSON.stringify({ Network: '10.16.0.0/22', SubnetLen: 24, SubnetMin: '10.16.1.0', SubnetMax: '10.16.1.0', Backend: { Type: 'host-gw' } }));
  t.after(() => c.close());
  const first = c.controlPlane('old');
  await first.open(new Recorder());
  const held = await first.acquire(me('192.0.2.1'));
  await first.stop();
  const again = c.controlPlane('old');
  await again.open(new Recorder());
  assert.deepEqual((await again.acquire(me('192.0.2.1'))).subnets, held.subnets, 'a restart gets the same subnet back');
  await again.stop();
  c.standin.delete('nodes', undefined, 'old');
  const next = c.controlPlane('new');
  t.after(() => next.stop());
  const events = new Recorder();
  await next.open(events);
  assert.deepEqual((await next.acquire(me('192.0.2.2'))).subnets, held.subnets, 'the only subnet is free again once the Node is gone');
});

test('a re-created Node of the same name does not inherit the old claim; orphans are swept without a garbage collector, live claims never', async (t) => {
  const c = await kubeTestCluster(netConf(), { gc: false });
  t.after(() => c.close());
  const cp = c.controlPlane('n1', { orphanGraceMs: 50 });
  await cp.open(new Recorder());
  await cp.acquire(me('192.0.2.1'));
  await cp.stop();
  const node = c.standin.get('nodes', undefined, 'n1') as { metadata: { uid: string } };
  // A leftover claim of a Node the garbage collector never saw go (another uid, no Node).
  c.standin.create('leases', { metadata: { name: 'subnet-10-16-77-0-24', namespace: NAMESPACE, labels: { 'weft.dev/claim': 'subnet' }, annotations: { 'weft.dev/subnet': '10.16.77.0/24' }, ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: 'ghost', uid: 'uid-ghost' }] }, spec: { holderIdentity: 'ghost' } });
  // A live Node's claim, held by a node whose agent is not running here: never an orphan.
  const live = c.controlPlane('live');
  await live.open(new Recorder());
  await live.acquire(me('192.0.2.3'));
  await live.stop();
  c.standin.delete('nodes', undefined, 'n1');
  const reborn = c.standin.addNode('n1', { internalIP: '192.0.2.1' }) as { metadata: { uid: string } };
  assert.notEqual(reborn.metadata.uid, node.metadata.uid);
  const cp2 = c.controlPlane('n1', { orphanGraceMs: 50 });
  t.after(() => cp2.stop());
  const events = new Recorder();
  await cp2.open(events);
  await cp2.acquire(me('192.0.2.1'));
  await cp2.start();
  const claims = () => c.standin.list('leases', NAMESPACE) as { metadata: { name: string; ownerReferences: { uid: string }[] } }[];
  await events.until('only the live nodes\' claims left', () => claims().length === 2);
  const owners = claims().map((l) => l.metadata.ownerReferences[0]!.uid);
  assert.ok(owners.includes(reborn.metadata.uid), 'the reborn node holds a claim');
  assert.ok(!owners.includes(node.metadata.uid) && !owners.includes('uid-ghost'), 'the claims of Nodes that are gone were deleted');
});

test('spec.podCIDR, when the cluster sets one, is the subnet (no claim); outside the Network it is refused', async (t) => {
  const c = await kubeTestCluster(netConf());
  t.after(() => c.close());
  c.standin.addNode('pc', { internalIP: '192.0.2.9', podCIDR: '10.16.42.0/24' });
  const cp = c.controlPlane('pc');
  t.after(() => cp.stop());
  await cp.open(new Recorder());
  assert.deepEqual((await cp.acquire(me('192.0.2.9'))).subnets, ['10.16.42.0/24']);
  assert.equal(c.standin.list('leases', NAMESPACE).length, 0);
  c.standin.addNode('bad', { internalIP: '192.0.2.10', podCIDR: '10.99.1.0/24' });
  const bad = c.controlPlane('bad');
  t.after(() => bad.stop());
  await bad.open(new Recorder());
  await assert.rejects(bad.acquire(me('192.0.2.10')), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /outside the Network 10\.16\.0\.0\/16/.test(e.message));
});

test('the API going away and coming back: the node reports it and recovers, keeping its ranges', async (t) => {
  const c = await kubeTestCluster(netConf());
  t.after(() => c.close());
  const cp = c.controlPlane('n1');
  t.after(() => cp.stop());
  const events = new Recorder();
  await cp.open(events);
  await cp.acquire(me('192.0.2.1'));
  await cp.start();
  c.standin.setAvailable(false);
  c.standin.endWatches();
  await events.until('a problem reported', () => events.problems.length > 0);
  c.standin.setAvailable(true);
  c.standin.addNode('n2', { internalIP: '192.0.2.2' });
  const peer = c.controlPlane('n2');
  t.after(() => peer.stop());
  await peer.open(new Recorder());
  const theirs = await peer.acquire(me('192.0.2.2'));
  await events.until('the new peer after the outage', () => events.peers.peers.some((p) => p.subnets.includes(theirs.subnets[0]!)));
  assert.ok(!events.ranges.includes(null), 'the outage never cost the node its ranges');
});

test('a Node holding two claims keeps the first by name (the one peers route) and releases the other', async (t) => {
  const c = await kubeTestCluster(netConf());
  t.after(() => c.close());
  const node = c.standin.addNode('twice', { internalIP: '192.0.2.5' }) as { metadata: { uid: string } };
  for (const subnet of ['10.16.9.0/24', '10.16.3.0/24']) c.standin.create('leases', claimLease(NAMESPACE, parseCidr(subnet), { name: 'twice', uid: node.metadata.uid }));
  const cp = c.controlPlane('twice');
  t.after(() => cp.stop());
  await cp.open(new Recorder());
  assert.deepEqual((await cp.acquire(me('192.0.2.5'))).subnets, ['10.16.3.0/24']);
  assert.deepEqual((c.standin.list('leases', NAMESPACE) as { metadata: { name: string } }[]).map((l) => l.metadata.name), ['subnet-10-16-3-0-24']);
});
