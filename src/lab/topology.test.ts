import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { calcTopology, plannedSubnet, validateCounts, validateZones } from './topology.ts';

const t = calcTopology({ name: 'x', nodes: 3, podsPerNode: 2, labDir: '/run/weft/lab/x' });

test('nodes alternate zones and route via the router in their zone', () => {
  assert.deepEqual(t.nodes.map((n) => [n.name, n.ns, n.zone, n.address, n.gateway]), [
    ['n1', 'weft-x-n1', 'a', '172.31.1.11', '172.31.1.1'],
    ['n2', 'weft-x-n2', 'b', '172.31.2.12', '172.31.2.1'],
    ['n3', 'weft-x-n3', 'a', '172.31.1.13', '172.31.1.1'],
  ]);
  assert.deepEqual(t.zones.map((z) => [z.ns, z.subnet, z.gateway]), [
    ['weft-x-az-a', '172.31.1.0/24', '172.31.1.1'],
    ['weft-x-az-b', '172.31.2.0/24', '172.31.2.1'],
  ]);
  assert.equal(t.router.ns, 'weft-x-router');
  assert.equal(t.outside.ns, 'weft-x-outside');
});

test('each node has its own pod subnet and its own directory', () => {
  assert.deepEqual(t.nodes.map((n) => [n.podSubnet, n.podGateway, n.dir]), [
    ['10.16.1.0/24', '10.16.1.1', '/run/weft/lab/x/n1'],
    ['10.16.2.0/24', '10.16.2.1', '/run/weft/lab/x/n2'],
    ['10.16.3.0/24', '10.16.3.1', '/run/weft/lab/x/n3'],
  ]);
});

test('pods are named per node, with container IDs that are valid CNI IDs and unique', () => {
  const pods = t.nodes.flatMap((n) => n.pods);
  assert.deepEqual(pods.map((p) => p.name), ['n1-p1', 'n1-p2', 'n2-p1', 'n2-p2', 'n3-p1', 'n3-p2']);
  assert.equal(pods[0]?.ns, 'weft-x-n1-p1');
  assert.equal(new Set(pods.map((p) => p.containerId)).size, pods.length);
  for (const p of pods) assert.match(p.containerId, /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
});

test('node and pod counts are bounded', () => {
  for (const [nodes, pods] of [[0, 1], [65, 1], [1.5, 1], [1, -1], [1, 101]] as const) {
    assert.throws(() => validateCounts(nodes, pods), (e) => isWeftError(e, 'WEFT_LAB'), `${nodes} ${pods}`);
  }
  validateCounts(64, 0);
  const big = calcTopology({ name: 'x', nodes: 64, podsPerNode: 0, labDir: '/l' });
  assert.equal(new Set(big.nodes.map((n) => n.address)).size, 64);
  assert.ok(big.nodes.every((n) => Number(n.address.split('.')[3]) < 255));
});

test('store etcd: an etcd member on zone a, and no planned pod subnets (the agents lease them)', () => {
  const e = calcTopology({ name: 'x', nodes: 2, podsPerNode: 1, labDir: '/l', store: 'etcd' });
  assert.deepEqual(e.etcd, { ns: 'weft-x-etcd', zone: 'a', address: '172.31.1.5', gateway: '172.31.1.1', clientUrl: 'http://172.31.1.5:2379', dir: '/l/etcd' });
  assert.ok(e.nodes.every((n) => n.podSubnet === null && n.podGateway === null));
  assert.equal(t.etcd, null);
  assert.throws(() => plannedSubnet(e.nodes[0]!), (err) => isWeftError(err, 'WEFT_INTERNAL'));
  assert.deepEqual(plannedSubnet(t.nodes[0]!), { podSubnet: '10.16.1.0/24', podGateway: '10.16.1.1' });
});

test('one zone puts every node on zone a’s segment', () => {
  const one = calcTopology({ name: 'x', nodes: 3, podsPerNode: 0, labDir: '/l', zones: 1 });
  assert.deepEqual(one.nodes.map((n) => [n.zone, n.address, n.gateway]), [['a', '172.31.1.11', '172.31.1.1'], ['a', '172.31.1.12', '172.31.1.1'], ['a', '172.31.1.13', '172.31.1.1']]);
  assert.equal(one.nodeZones, 1);
  for (const bad of [0, 3, 1.5]) assert.throws(() => validateZones(bad), (e) => isWeftError(e, 'WEFT_LAB'), String(bad));
});
