import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePluginConfig } from './config.ts';
import { parseSubnetEnv } from '../subnet/subnet-env.ts';
import { planPodNetwork, routedPodAddressing, withAllocationGateways } from './plan.ts';
import { formatCidr } from '../net/cidr.ts';

const v4 = parseSubnetEnv('FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.85.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
const dual = parseSubnetEnv('FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.85.1/24\nFLANNEL_IPV6_NETWORK=fd10::/48\nFLANNEL_IPV6_SUBNET=fd10:0:0:55::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n');
const weft = parsePluginConfig({ cniVersion: '1.0.0', name: 'weft', type: 'weft' });

test('weft form: gateway .1, default route and cluster route via it, MTU from subnet.env', () => {
  const plan = planPodNetwork(weft, v4);
  assert.deepEqual(plan.gateways, ['10.16.85.1/24']);
  assert.deepEqual(plan.routes, [{ dst: '0.0.0.0/0', gw: '10.16.85.1' }, { dst: '10.16.0.0/16', gw: '10.16.85.1' }]);
  assert.equal(plan.mtu, 1450);
  assert.equal(formatCidr(plan.rangeSets[0]![0]!.subnet), '10.16.85.0/24');
  assert.equal(plan.podMasq, false, 'the agent masquerades when FLANNEL_IPMASQ=true');
});

test('dual stack: one range set and gateway per family; FLANNEL_IPMASQ=false makes the plugin masquerade', () => {
  const plan = planPodNetwork(weft, dual);
  assert.equal(plan.rangeSets.length, 2);
  assert.deepEqual(plan.gateways, ['10.16.85.1/24', 'fd10:0:0:55::1/64']);
  assert.deepEqual(plan.routes.map((r) => r.dst), ['0.0.0.0/0', '10.16.0.0/16', '::/0', 'fd10::/48']);
  assert.equal(plan.podMasq, true);
});

test('flannel form without isDefaultGateway routes only the cluster network, as flannel does', () => {
  const flannel = parsePluginConfig({ cniVersion: '0.3.1', name: 'cbr0', type: 'flannel', delegate: { mtu: 1400, ipMasq: true } });
  const plan = planPodNetwork(flannel, v4);
  assert.deepEqual(plan.routes, [{ dst: '10.16.0.0/16', gw: '10.16.85.1' }]);
  assert.equal(plan.mtu, 1400);
  assert.equal(plan.podMasq, true);
});

test('extra ipam routes are added once, via the gateway of their family unless they name one', () => {
  const c = parsePluginConfig({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ipam: { routes: [{ dst: '192.0.2.0/24' }, { dst: '10.16.0.0/16' }, { dst: '198.51.100.0/24', gw: '10.16.85.9' }] } });
  assert.deepEqual(planPodNetwork(c, v4).routes.slice(2), [{ dst: '192.0.2.0/24', gw: '10.16.85.1' }, { dst: '198.51.100.0/24', gw: '10.16.85.9' }]);
});

const mesh = parseSubnetEnv('FLANNEL_NETWORK=10.32.0.0/12\nFLANNEL_SUBNET=10.32.0.1/26\nFLANNEL_MTU=1376\nFLANNEL_IPMASQ=true\n');

test("block IPAM: the pod's block gateway replaces subnet.env's on the bridge and in every route via it", () => {
  const c = parsePluginConfig({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ipam: { routes: [{ dst: '192.0.2.0/24' }, { dst: '198.51.100.0/24', gw: '10.32.0.9' }] } });
  const plan = planPodNetwork(c, mesh);
  const pod = withAllocationGateways(plan, [{ family: 4, gateway: '10.32.1.65', prefix: 26 }]);
  assert.deepEqual(pod.gateways, ['10.32.1.65/26']);
  assert.deepEqual(pod.routes, [
    { dst: '0.0.0.0/0', gw: '10.32.1.65' }, { dst: '10.32.0.0/12', gw: '10.32.1.65' },
    { dst: '192.0.2.0/24', gw: '10.32.1.65' }, { dst: '198.51.100.0/24', gw: '10.32.0.9' },
  ]);
  assert.deepEqual(pod.rangeSets, plan.rangeSets, 'the rest of the plan is unchanged');
  assert.deepEqual(plan.gateways, ['10.32.0.1/26'], 'and the plan itself is not modified');
});

test('etcd mode: the allocation carries subnet.env\'s gateway, so the plan stays as it was', () => {
  const plan = planPodNetwork(weft, dual);
  const pod = withAllocationGateways(plan, [{ family: 4, gateway: '10.16.85.1', prefix: 24 }, { family: 6, gateway: 'fd10:0:0:55::1', prefix: 64 }]);
  assert.deepEqual(pod, plan);
});

test('dual stack with IPv4 blocks: the IPv6 gateway and routes stay, a family without an allocation keeps its gateway', () => {
  const plan = planPodNetwork(weft, dual);
  const pod = withAllocationGateways(plan, [{ family: 4, gateway: '10.16.9.129', prefix: 26 }]);
  assert.deepEqual(pod.gateways, ['10.16.9.129/26', 'fd10:0:0:55::1/64']);
  assert.deepEqual(pod.routes.map((r) => r.gw), ['10.16.9.129', '10.16.9.129', 'fd10:0:0:55::1', 'fd10:0:0:55::1']);
});

test('the pod link comes from subnet.env: bridge when WEFT_POD_LINK is absent, routed when it says so', () => {
  assert.equal(planPodNetwork(weft, v4).podLink, 'bridge');
  const routed = parseSubnetEnv('FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.85.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\nWEFT_POD_LINK=routed\n');
  assert.equal(planPodNetwork(weft, routed).podLink, 'routed');
});

test('routed: host addresses, and every route via the link-local gateway of its family, a named gw included', () => {
  const c = parsePluginConfig({ cniVersion: '1.0.0', name: 'weft', type: 'weft', ipam: { routes: [{ dst: '198.51.100.0/24', gw: '10.16.85.9' }] } });
  const plan = planPodNetwork(c, dual);
  const r = routedPodAddressing(['10.16.85.7/24', 'fd10:0:0:55::7/64'], plan.routes);
  assert.deepEqual(r.addresses, ['10.16.85.7/32', 'fd10:0:0:55::7/128']);
  assert.deepEqual(r.routes, [
    { dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '10.16.0.0/16', gw: '169.254.1.1' },
    { dst: '::/0', gw: 'fe80::1' }, { dst: 'fd10::/48', gw: 'fe80::1' }, { dst: '198.51.100.0/24', gw: '169.254.1.1' },
  ]);
  assert.deepEqual(r.gateways, ['169.254.1.1', 'fe80::1']);
});

test('routed: a family the pod has no address in gets no route and no gateway', () => {
  const plan = planPodNetwork(weft, dual);
  const r = routedPodAddressing(['10.16.85.7/24'], plan.routes);
  assert.deepEqual(r.routes.map((x) => x.dst), ['0.0.0.0/0', '10.16.0.0/16']);
  assert.deepEqual(r.gateways, ['169.254.1.1']);
  assert.deepEqual(routedPodAddressing([], plan.routes), { addresses: [], routes: [], gateways: [] });
});
