// `weft rmpeer` in a mesh lab (root only): n3 dies for good (agent SIGKILLed, its namespaces
// deleted), `weft rmpeer <n3's peer name>` on n1 gives n3's blocks to n1: both surviving nodes'
// IPAM views then show them as n1's, and n1's new pods get addresses from them.
//
// A small range (10.32.0.0/26 in /28 blocks: four blocks for three nodes) keeps "new pods use
// the blocks taken over" reachable with a handful of pods: n1 owns one or two blocks of 13 pod
// addresses each before, so its new pods reach n3's former block after at most ~26 ADDs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labNodeRemove, labNodeWeft } from '../../src/lab/index.ts';
import { pingFrom } from '../../src/lab/ping.ts';
import { addPods, inCidr, ipOf, logTails, meshPrerequisiteProblem, podAddresses, duplicates, status, startMeshLab, waitMesh } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const RANGE = '10.32.0.0/26';

test('rmpeer: n3 removed, `weft rmpeer` on n1 takes its blocks; the IPAM views agree and n1\'s new pods use them', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 3, podsPerNode: 1, ipallocRange: RANGE, ipallocBlock: 28 });
  const n3 = await waitMesh(lab, 'n1', 'n3 among the block owners', (m) => m.owners.some((o) => o.nickname === 'n3' && o.addresses > 0));
  const n3Owner = n3.owners.find((o) => o.nickname === 'n3');
  const n1Owner = n3.owners.find((o) => o.self);
  assert.ok(n3Owner && n1Owner);
  const n3Name = (await waitMesh(lab, 'n3', 'its name', (m) => m.name !== null)).name ?? '';
  assert.equal(n3Owner.name, n3Name);
  // The status lists a node's blocks coalesced (two neighbouring /28s as one /27).
  const n3Blocks = (await status(lab, 'n3'))?.lease?.subnets ?? [];
  const size = (cidr: string): number => 2 ** (32 - Number(cidr.split('/')[1]));
  assert.ok(n3Blocks.length > 0 && n3Blocks.reduce((n, b) => n + size(b), 0) === n3Owner.addresses, `n3's blocks ${n3Blocks.join(' ')} make its ${n3Owner.addresses} addresses`);

  await labNodeRemove(lab.name, ['n3']);
  // rmpeer is for a peer that is gone: wait until n1 no longer reaches it.
  await waitMesh(lab, 'n1', 'n3 unreachable', (m) => m.owners.some((o) => o.name === n3Name && !o.reachable), 90_000);

  const r = await labNodeWeft(lab.name, 'n1', ['rmpeer', n3Name]);
  assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
  assert.ok(r.stdout.includes(`${n3Owner.addresses} IPs taken over from ${n3Name}`), r.stdout);

  const want = n1Owner.addresses + n3Owner.addresses;
  for (const node of ['n1', 'n2']) {
    await waitMesh(lab, node, `n3's blocks owned by n1 (${want} addresses), none by n3`, (m) => {
      const n1 = m.owners.find((o) => o.nickname === 'n1');
      return n1?.addresses === want && !m.owners.some((o) => o.name === n3Name && o.addresses > 0);
    });
  }

  // n1's new pods: keep adding until one lands in a block n3 had (bounded by what n1 now owns).
  const taken: string[] = [];
  for (let round = 0; round <= Math.ceil(want / 4) && !taken.some((a) => n3Blocks.some((b) => inCidr(a, b))); round++) {
    const pods = await addPods(lab, 'n1', 4).catch(async (e: unknown) => {
      throw new Error(`${(e as Error).message}\nn1's blocks now: ${JSON.stringify((await status(lab, 'n1'))?.lease?.subnets)}; n3 had ${n3Blocks.join(' ')}; pods so far ${taken.join(' ')}\n${await logTails(lab.dir, 30)}`);
    });
    taken.push(...pods.flatMap((p) => p.addresses));
  }
  const reused = taken.find((a) => n3Blocks.some((b) => inCidr(a, b)));
  assert.ok(reused, `a new pod on n1 got an address from n3's former blocks (${n3Blocks.join(' ')}); got ${taken.join(' ')}`);
  assert.deepEqual(duplicates(await podAddresses(lab)), []);

  // And it works: that pod reaches n2's pod across the zones.
  const state = await lab.state();
  const pod = Object.entries(state.pods).find(([, p]) => p.addresses.includes(reused))?.[0];
  const podNs = state.topology.nodes[0]?.pods.find((p) => p.name === pod)?.ns;
  assert.ok(podNs);
  const target = ipOf(state.pods['n2-p1']?.addresses[0] ?? '');
  const ping = await pingFrom(podNs, target, { attempts: 20 });
  assert.ok(ping.ok, `${pod} (${reused}) reaches n2-p1 (${target})`);
});
