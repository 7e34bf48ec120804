// A late joiner (root only): three nodes agree on a ring; a fourth starts while it cannot reach
// any of them (partitioned before its agent starts). It waits, and its status says so and why;
// it never seeds a ring of its own. Once healed it joins the existing ring (same ring id), and
// every probe, its pods' included, passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labHeal, labNodeStart, labPartition } from '../../src/lab/index.ts';
import { checkPasses, connectedTo, mesh, meshPrerequisiteProblem, pause, startMeshLab, status, waitMesh } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();

test('late joiner: n4 starts cut off, waits without seeding, then joins the existing ring', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 4, podsPerNode: 1, start: 3 });
  const rings = await Promise.all(['n1', 'n2', 'n3'].map(async (n) => (await waitMesh(lab, n, 'ipam ready with a ring', (m) => m.ipamStatus === 'ready' && m.ringId !== null)).ringId));
  assert.equal(new Set(rings).size, 1, `n1..n3 share one ring: ${rings.join(' ')}`);
  const ring = rings[0];
  assert.equal((await status(lab, 'n4')), undefined, 'n4 has no agent yet');

  await labPartition(lab.name, ['n4']);
  t.after(() => labHeal(lab.name).catch(() => {}));
  await labNodeStart(lab.name, ['n4'], { wait: false });
  const waiting = await waitMesh(lab, 'n4', 'waiting for its peers, and saying why', (m, s) =>
    !s.ready && /wait|await/i.test(m.ipamStatus ?? '') && s.reasons.length > 0 && m.connections.some((c) => c.state !== 'established'));
  t.diagnostic(`n4 while cut off: ipam "${waiting.ipamStatus}"; connections ${JSON.stringify(waiting.connections)}`);
  // Several connection attempts later it still has no ring of its own.
  await pause(10_000);
  const still = await status(lab, 'n4');
  const m4 = await mesh(lab, 'n4');
  assert.equal(still?.ready, false, 'still not ready');
  assert.equal(m4?.ringId ?? null, null, `n4 seeded nothing: ${JSON.stringify(m4)}`);
  assert.ok(still?.reasons.join(' ').length, `the status says why: ${JSON.stringify(still?.reasons)}`);

  await labHeal(lab.name);
  await labNodeStart(lab.name, ['n4']); // now waits until it is ready and attaches its pod
  const joined = await waitMesh(lab, 'n4', 'in the ring, connected to all three', (m) => m.ringId !== null && ['n1', 'n2', 'n3'].every((p) => connectedTo(m, p)));
  assert.equal(joined.ringId, ring, 'n4 joined the existing ring');
  for (const n of ['n1', 'n2', 'n3']) assert.equal((await mesh(lab, n))?.ringId, ring, `${n} kept its ring`);
  assert.ok(joined.owners.some((o) => o.self && o.addresses > 0), 'n4 got space from the ring');
  const report = await checkPasses(lab);
  assert.ok(report.probes.some((p) => p.from === 'n4-p1'), 'n4\'s pod is probed');
});
