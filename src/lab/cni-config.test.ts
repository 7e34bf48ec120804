import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calcConflist, nodeSubnetEnv, pluginRequestConfig } from './cni-config.ts';
import { formatSubnetEnv } from '../subnet/subnet-env.ts';
import { nodeFiles } from './paths.ts';
import { calcTopology, plannedSubnet } from './topology.ts';

const plan = calcTopology({ name: 'x', nodes: 2, podsPerNode: 1, labDir: '/run/weft/lab/x' }).nodes[1];
assert.ok(plan);
const node = plannedSubnet(plan);
const files = nodeFiles(plan.dir);

test('subnet.env is byte for byte what flanneld writes, with the .1 address', () => {
  assert.equal(formatSubnetEnv(nodeSubnetEnv(node)), 'FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
});

test('the weft conflist points at the node’s own files', () => {
  assert.deepEqual(calcConflist('weft', node, files), {
    cniVersion: '1.0.0',
    name: 'weft',
    plugins: [{ type: 'weft', subnetFile: '/run/weft/lab/x/n2/subnet.env', dataDir: '/run/weft/lab/x/n2/cni-networks', bridge: 'cni0', hairpinMode: true }],
  });
});

test('the bridge conflist uses host-local over the node subnet with the node’s data dir', () => {
  const plugin = calcConflist('bridge', node, files).plugins[0];
  assert.deepEqual(plugin, {
    type: 'bridge',
    bridge: 'cni0',
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: true,
    mtu: 1450,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.16.2.0/24' }]], dataDir: '/run/weft/lab/x/n2/cni-networks', routes: [{ dst: '10.16.0.0/16' }] },
  });
});

test('the per-plugin request adds cniVersion and name (and prevResult for DEL) without touching the list', () => {
  const list = calcConflist('weft', node, files);
  const before = JSON.stringify(list);
  const add = pluginRequestConfig(list);
  assert.equal(add.cniVersion, '1.0.0');
  assert.equal(add.name, 'weft');
  assert.equal(add.type, 'weft');
  assert.equal('prevResult' in add, false);
  const del = pluginRequestConfig(list, 0, { ips: [] });
  assert.deepEqual(del.prevResult, { ips: [] });
  assert.equal(JSON.stringify(list), before);
  assert.throws(() => pluginRequestConfig(list, 1), RangeError);
});
