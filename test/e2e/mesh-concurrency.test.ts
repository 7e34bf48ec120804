// Mesh mode under concurrent pod starts (root only): 16 CNI ADDs at once on each of three
// nodes (48 in flight), with /28 blocks so that every node must activate a second block while
// they run: every address is distinct cluster-wide and lies in a block its node owns, and the
// new pods reach their gateways and each other across nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labCheck } from '../../src/lab/index.ts';
import { pingFrom } from '../../src/lab/ping.ts';
import { addPods, duplicates, inCidr, ipOf, meshPrerequisiteProblem, podAddresses, startMeshLab, status } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const PER_NODE = 16;
const NODES = ['n1', 'n2', 'n3'];

test(`concurrency: ${PER_NODE} concurrent ADDs on every node at once: all addresses distinct cluster-wide, each in its node's blocks`, { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 3, podsPerNode: 0, ipallocBlock: 28 });
  const added = await Promise.all(NODES.map((n) => addPods(lab, n, PER_NODE)));
  assert.deepEqual(added.map((a) => a.length), NODES.map(() => PER_NODE));

  const all = await podAddresses(lab);
  assert.equal(all.size, NODES.length * PER_NODE, 'one address per pod');
  assert.deepEqual(duplicates(all), []);
  for (const [i, node] of NODES.entries()) {
    const blocks = (await status(lab, node))?.lease?.subnets ?? [];
    for (const pod of added[i] ?? []) {
      const a = pod.addresses[0] ?? '';
      assert.ok(blocks.some((b) => inCidr(a, b)), `${pod.name} ${a} is in one of ${node}'s blocks ${blocks.join(' ')}`);
    }
    // 16 pods do not fit one /28 (13 pod addresses): the burst had to open a second block.
    const used = new Set((added[i] ?? []).map((p) => p.addresses[0]?.split('/')[0]?.replace(/\.(\d+)$/, (_, d: string) => `.${Number(d) & ~15}`)));
    assert.ok(used.size >= 2, `${PER_NODE} pods on ${node} span two /28 blocks or more: ${[...used].join(' ')}`);
  }

  // Every pod reaches its own gateway (each block has its own), and a few reach pods elsewhere.
  // A routed pod (the second e2e pass) has no block gateway but the link-local next hop: its node instead.
  const routed = (await lab.state()).dataPath?.podLink === 'routed';
  const gateways = await labCheck(lab.name, { kinds: [routed ? 'pod-node' : 'pod-gateway'] });
  assert.equal(gateways.failed, 0, JSON.stringify(gateways.probes.filter((p) => !p.ok)));
  assert.equal(gateways.probes.length, NODES.length * PER_NODE);
  const state = await lab.state();
  for (const [i, from] of NODES.entries()) {
    const to = NODES[(i + 1) % NODES.length] ?? '';
    const src = state.topology.nodes.find((n) => n.name === from)?.pods.at(-1);
    const dst = state.pods[added[(i + 1) % NODES.length]?.[0]?.name ?? '']?.addresses[0];
    assert.ok(src && dst);
    const r = await pingFrom(src.ns, ipOf(dst), { attempts: 10 });
    assert.ok(r.ok, `${src.name} → a pod on ${to} (${dst})`);
  }
});
