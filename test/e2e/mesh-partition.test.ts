// Mesh mode through a partition (root only): one node cut off the other two for 30 s (TCP 6783
// and UDP 6784 dropped both ways), pods added on both sides meanwhile, then healed: no pod
// address is held twice anywhere in the cluster, and every probe passes again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labHeal, labPartition } from '../../src/lab/index.ts';
import { addPods, checkPasses, connectedTo, duplicates, meshPrerequisiteProblem, pause, podAddresses, startMeshLab, waitMesh } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const PARTITION_MS = 30_000;

test('partition: n3 cut off for 30 s, pods added on both sides, healed: no duplicate address, every probe passes', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 3, podsPerNode: 1 });
  await checkPasses(lab);

  const cut = await labPartition(lab.name, ['n3']);
  assert.deepEqual(cut, { cut: ['n3'], rest: ['n1', 'n2'] });
  const since = Date.now();
  t.after(() => labHeal(lab.name).catch(() => {}));
  // The cut is real: both sides lose their connections to the other.
  await waitMesh(lab, 'n1', 'no connection to n3 while partitioned', (m) => !connectedTo(m, 'n3'));
  await waitMesh(lab, 'n3', 'no connection to n1 or n2 while partitioned', (m) => !connectedTo(m, 'n1') && !connectedTo(m, 'n2'));

  // Pods start on both sides while the mesh is split: each side allocates from its own blocks.
  const added = await Promise.all([addPods(lab, 'n3', 3), addPods(lab, 'n1', 2), addPods(lab, 'n2', 2)]);
  assert.deepEqual(added.map((a) => a.length), [3, 2, 2]);
  const during = await podAddresses(lab);
  assert.deepEqual(duplicates(during), [], 'no address held twice while partitioned');

  await pause(Math.max(0, since + PARTITION_MS - Date.now()));
  await labHeal(lab.name);
  for (const [node, peers] of [['n1', ['n2', 'n3']], ['n2', ['n1', 'n3']], ['n3', ['n1', 'n2']]] as const) {
    await waitMesh(lab, node, `connected to ${peers.join(' and ')} again`, (m) => peers.every((p) => connectedTo(m, p)), 90_000);
  }
  const rings = await Promise.all(['n1', 'n2', 'n3'].map(async (n) => (await waitMesh(lab, n, 'ipam ready', (m) => m.ipamStatus === 'ready')).ringId));
  assert.equal(new Set(rings).size, 1, `one ring after the heal: ${rings.join(' ')}`);

  const after = await podAddresses(lab);
  assert.equal([...after.values()].flat().length, 3 + 7, 'every pod still has its address');
  assert.deepEqual(duplicates(after), [], 'no address held twice after the heal');
  const report = await checkPasses(lab);
  assert.ok(report.probes.some((p) => p.from === added[0]?.[0]?.name && p.kind === 'pod-pod-other-zone'), 'the pods added during the partition are probed too');
});
