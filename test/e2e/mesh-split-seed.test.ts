// Split seeding (root only): four nodes with --ipalloc-init consensus=2 start in two groups that
// cannot reach each other ({n1,n2} | {n3,n4}, a partition in place before any agent starts), so
// each pair agrees on a ring of its own over the same range. Then the groups are connected: the
// conflict is reported (different rings), neither side adopts the other's ring, no ring hands
// out a pod address twice, and no node routes to the other ring's blocks.
//
// Two rings seeded apart own overlapping blocks, so once they meet one of them must stop handing
// out addresses: every peer picks the same survivor (more seeds, then the lower ring id), and the
// other ring's nodes refuse new pods (saying why) while their old pods keep working. So after
// the meeting no address is handed out twice anywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labAddPods, labHeal, labNodeStart, labPartition } from '../../src/lab/index.ts';
import { inNs, mesh, meshPrerequisiteProblem, remoteRoutes, startMeshLab, status, waitMesh, waitSaid, cidrWithin, duplicates, podAddresses } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const RANGE = '10.32.0.0/12';
const GROUPS = [['n1', 'n2'], ['n3', 'n4']] as const;

test('split seed: two pairs seed two rings apart; connected, the conflict is reported and nothing is handed out twice or routed across', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 4, podsPerNode: 0, start: 0, ipallocInit: 'consensus=2' });
  await labPartition(lab.name, [...GROUPS[0]]);
  t.after(() => labHeal(lab.name).catch(() => {}));
  await labNodeStart(lab.name, ['n1', 'n2', 'n3', 'n4'], { pods: false });

  const ringOf = async (n: string): Promise<string> => (await waitMesh(lab, n, 'a ring', (m) => m.ringId !== null)).ringId ?? '';
  const [r1, r2, r3, r4] = await Promise.all(['n1', 'n2', 'n3', 'n4'].map(ringOf));
  assert.equal(r1, r2, 'n1 and n2 share a ring');
  assert.equal(r3, r4, 'n3 and n4 share a ring');
  assert.notEqual(r1, r3, 'the two groups seeded apart');

  const healedAt = Date.now();
  await labHeal(lab.name);
  // Each side names the conflict, in status or log.
  for (const node of ['n1', 'n3']) {
    const line = await waitSaid(lab, node, healedAt, [/ring|seed/i, /mismatch|conflict|differ/i], 'that the other group has another ring', 90_000);
    t.diagnostic(`${node}: ${line.slice(0, 300)}`);
  }
  for (const [node, ring] of [['n1', r1], ['n2', r1], ['n3', r3], ['n4', r3]] as const) {
    assert.equal((await mesh(lab, node))?.ringId, ring, `${node} kept its own ring`);
  }

  // The ring with the lower id survives (both were seeded by two peers); the other yields.
  const [survivors, yielding] = (r1 ?? '') < (r3 ?? '') ? [GROUPS[0], GROUPS[1]] : [GROUPS[1], GROUPS[0]];
  for (const node of yielding) await waitMesh(lab, node, 'the yield to the other ring', (m) => /yields to ring/.test(m.ipamStatus ?? ''), 60_000);

  // New pods everywhere at once: the surviving ring starts them, the yielding one refuses them, and no address is handed out twice.
  const results = (await Promise.all(['n1', 'n2', 'n3', 'n4'].map((n) => labAddPods(lab.name, n, 4)))).flat();
  t.diagnostic(`ADDs: ${results.map((r) => ('error' in r ? `${r.name} refused: ${r.error.slice(0, 120)}` : `${r.name} ${r.addresses.join(' ')}`)).join(', ')}`);
  for (const r of results) {
    const node = r.name.split('-')[0] ?? '';
    if ((survivors as readonly string[]).includes(node)) assert.ok(!('error' in r), `${r.name} on the surviving ring starts: ${'error' in r ? r.error : ''}`);
    else assert.ok('error' in r && /ring conflict/.test(r.error), `${r.name} on the yielding ring is refused, saying why: ${JSON.stringify(r)}`);
  }
  assert.deepEqual(duplicates(await podAddresses(lab)), [], 'no address handed out twice in the whole cluster');

  // Routes: each node programs only its ring-mate's blocks, never the other ring's peers.
  const addressOf = (n: string): string => lab.node(n).address;
  for (const [group, other] of [[GROUPS[0], GROUPS[1]], [GROUPS[1], GROUPS[0]]] as const) {
    for (const node of group) {
      const mate = group.find((n) => n !== node) ?? '';
      const s = await status(lab, node);
      assert.ok(s);
      assert.ok(!s.peers.some((p) => other.some((o) => p.publicIp === addressOf(o))), `${node}'s data-plane peers are its ring-mate only: ${JSON.stringify(s.peers.map((p) => p.publicIp))}`);
      const mateBlocks = s.peers.filter((p) => p.publicIp === addressOf(mate)).flatMap((p) => p.subnets);
      const routes = await remoteRoutes(lab, node, RANGE);
      assert.ok(mateBlocks.length > 0 && routes.length > 0, `${node} routes to its ring-mate ${mate}: blocks ${mateBlocks.join(' ')}, routes ${routes.join('; ')}`);
      for (const route of routes) {
        const dst = route.split(' ')[0] ?? '';
        assert.ok(mateBlocks.some((b) => cidrWithin(dst, b)), `${node}: route ${route} is for a block of ${mate} (${mateBlocks.join(' ')})`);
        for (const o of other) assert.ok(!route.includes(` ${addressOf(o)} `), `${node}: no route via ${o}: ${route}`);
      }
      const fdb = await inNs(lab.node(node).ns, ['bridge', 'fdb', 'show']);
      for (const o of other) assert.ok(!fdb.includes(`dst ${addressOf(o)} `), `${node}: no VXLAN FDB entry towards ${o}`);
    }
  }
});
