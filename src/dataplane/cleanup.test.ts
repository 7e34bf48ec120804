// Which routes the start-up clean-up removes: weft-owned ones outside every given network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Link, Route } from '../netlink/index.ts';
import { overlayDevices, routesOutside, weftOwnedRoute } from './cleanup.ts';
import { RTPROT_WEFT } from './plan.ts';

const ETH0 = 2;
const FLANNEL = 5;
const OTHER_VXLAN = 6;

function route(r: Partial<Route> & { dst: string }): Route {
  return { family: 4, scope: 'universe', onlink: false, protocol: RTPROT_WEFT, table: 254, type: 'unicast', flags: 0, ...r };
}

const links = [
  { index: ETH0, name: 'eth0', kind: undefined },
  { index: FLANNEL, name: 'flannel.1', kind: 'vxlan' },
  { index: OTHER_VXLAN, name: 'vxlan-ops', kind: 'vxlan' },
  { index: 7, name: 'flannel.9', kind: 'bridge' },
] as unknown as Link[];

test('overlay devices are flannel.<N> vxlan links only', () => {
  assert.deepEqual([...overlayDevices(links)], [FLANNEL]);
});

test('weft-owned: protocol 0x57 anywhere, or a non-kernel route of the main table on flannel.<N>', () => {
  const devices = overlayDevices(links);
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: ETH0 }), devices), true);
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: ETH0, table: 100 }), devices), true);
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: FLANNEL, protocol: 3 }), devices), true, "flanneld's route on the device");
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: FLANNEL, protocol: 2 }), devices), false, 'kernel route');
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: FLANNEL, protocol: 3, table: 255 }), devices), false, 'local table');
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: OTHER_VXLAN, protocol: 4 }), devices), false, "an operator's vxlan");
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', oif: ETH0, protocol: 4 }), devices), false, 'static on the underlay');
  assert.equal(weftOwnedRoute(route({ dst: '10.1.0.0/24', type: 'blackhole' }), devices), false);
});

test('routesOutside: weft-owned routes not inside any network, the default route included', () => {
  const routes = [
    route({ dst: '10.244.2.0/24', gateway: '10.244.2.0', oif: FLANNEL, onlink: true }), // a peer: kept
    route({ dst: '10.244.3.0/24', gateway: '192.168.1.12', oif: ETH0 }), // a direct peer: kept
    route({ dst: '192.168.1.5/32', gateway: '10.244.9.0', oif: FLANNEL, onlink: true }), // etcd's address into the overlay
    route({ dst: '172.16.0.0/16', gateway: '192.168.1.13', oif: ETH0 }), // a bad lease's direct route
    route({ dst: '0.0.0.0/0', gateway: '10.244.9.0', oif: FLANNEL, onlink: true, protocol: 3 }),
    route({ dst: '10.0.0.0/8', gateway: '10.244.9.0', oif: FLANNEL, onlink: true }), // contains the Network
    route({ dst: '0.0.0.0/0', gateway: '192.168.1.1', oif: ETH0, protocol: 3 }), // the node's default route
    route({ dst: '192.168.1.0/24', oif: ETH0, protocol: 2 }), // connected
    route({ dst: '172.17.0.0/16', gateway: '192.168.1.1', oif: ETH0, protocol: 4 }), // an operator's
  ];
  const out = routesOutside(routes, overlayDevices(links), ['10.244.0.0/16']);
  assert.deepEqual(out.map((r) => r.dst), ['192.168.1.5/32', '172.16.0.0/16', '0.0.0.0/0', '10.0.0.0/8']);
  assert.deepEqual(routesOutside(routes, overlayDevices(links), ['10.244.0.0/16', '172.16.0.0/12', '192.168.0.0/16']).map((r) => r.dst), ['0.0.0.0/0', '10.0.0.0/8']);
  assert.deepEqual(routesOutside(routes, overlayDevices(links), []), [], 'no network known: nothing is judged');
  assert.throws(() => routesOutside(routes, overlayDevices(links), ['nope']), /network "nope" is not a CIDR/);
});
