// The pure planning of every backend: which peers get which entries, what is ours in the
// kernel, and the diff between the two. A small in-memory "kernel" applies the operations the
// way rtnetlink does, to show that one diff always reaches the desired state.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { FdbEntry as KernelFdb, Neighbour, Route } from '../netlink/index.ts';
import { NlWriter, parseMessages } from '../netlink/codec.ts';
import { RTM_NEWROUTE } from '../netlink/constants.ts';
import { decodeRoute } from '../netlink/route.ts';
import type { Peer } from './backend.ts';
import { decodeVxlanLeaseData } from './vxlan/lease-data.ts';
import {
  canonicalSubnet, deviceAddress, diff, diffAddresses, directlyReachable, ownedFdb, ownedRoutes, planPeers, RTPROT_WEFT,
  type ActualState, type Operation, type PlanContext,
} from './plan.ts';
import { operationRequest } from './reconcile.ts';

const ETH0 = 2;
const FLANNEL = 5;
const MAC_A = '0a:00:00:00:00:0a';
const MAC_B = '0a:00:00:00:00:0b';

function route(r: Partial<Route> & { dst: string }): Route {
  return { family: 4, scope: r.gateway ? 'universe' : 'link', onlink: false, protocol: RTPROT_WEFT, table: 254, type: 'unicast', flags: r.onlink ? 4 : 0, ...r };
}

// A node at 192.168.1.10/24 on eth0, default route via 192.168.1.1.
const UNDERLAY: Route[] = [
  route({ dst: '0.0.0.0/0', gateway: '192.168.1.1', oif: ETH0, protocol: 3 }),
  route({ dst: '192.168.1.0/24', oif: ETH0, protocol: 2, src: '192.168.1.10' }),
];

function ctx(over: Partial<PlanContext> = {}): PlanContext {
  return {
    mode: 'vxlan', directRouting: false, network: NETWORK, vni: 1, deviceIndex: FLANNEL, decodeTunnel: decodeVxlanLeaseData,
    underlayIndex: ETH0, underlayName: 'eth0', publicIp: '192.168.1.10', ownSubnet: '10.244.1.0/24', routes: UNDERLAY, ...over,
  };
}

const NETWORK = '10.244.0.0/16';

/** A vxlan peer as a lease announces it; the id is what reports are keyed by. */
function vx(id: string, subnet: string, publicIp: string, vtepMac: unknown, vni: unknown = 1): Peer {
  return { id, subnets: [subnet], publicIp, backendType: 'vxlan', backendData: { VNI: vni, VtepMAC: vtepMac } };
}
const sub = (p: Peer): string => p.subnets[0] as string;
const macOf = (p: Peer): string => (p.backendData as { VtepMAC: string }).VtepMAC;
/** The same peer with another subnet (and id), or another VtepMAC. */
const at = (p: Peer, subnet: string, id = `${p.id}@${subnet}`): Peer => ({ ...p, id, subnets: [subnet] });
const withMac = (p: Peer, vtepMac: unknown, id = p.id): Peer => ({ ...p, id, backendData: { ...(p.backendData as object), VtepMAC: vtepMac } });

const peerA = vx('subnets/10.244.2.0-24', '10.244.2.0/24', '192.168.1.11', MAC_A);
const peerB = vx('subnets/10.244.3.0-24', '10.244.3.0/24', '172.16.0.5', MAC_B);

const neigh = (ip: string, mac: string, state = 0x80): Neighbour => ({ index: FLANNEL, family: 4, ip, mac, state, flags: 0 });
const fdb = (mac: string, dst: string): KernelFdb => ({ index: FLANNEL, mac, dst, state: 0x80, flags: 2 });

/** The kernel state a vxlan peer needs, as the kernel reports it (protocol boot = made by flanneld). */
function vxlanEntries(p: Peer, protocol = RTPROT_WEFT): ActualState {
  const gw = sub(p).replace(/\/\d+$/, '');
  return {
    routes: [route({ dst: sub(p), gateway: gw, oif: FLANNEL, onlink: true, protocol })],
    neighbours: [neigh(gw, macOf(p))],
    fdb: [fdb(macOf(p), p.publicIp)],
  };
}

function merge(...states: ActualState[]): ActualState {
  return { routes: states.flatMap((s) => s.routes), neighbours: states.flatMap((s) => s.neighbours), fdb: states.flatMap((s) => s.fdb) };
}

const summary = (ops: Operation[]): string[] => ops.map((op) => {
  switch (op.kind) {
    case 'route': return `route ${op.action} ${op.route.dst}${op.route.gateway ? ` via ${op.route.gateway}` : ''}${op.route.oif ? ` dev ${op.route.oif}` : ''}${op.route.onlink ? ' onlink' : ''}`;
    case 'neigh': return `neigh ${op.action} ${op.neigh.ip}${'mac' in op.neigh ? ` ${op.neigh.mac}` : ''}`;
    case 'fdb': return `fdb ${op.action} ${op.fdb.mac} ${op.fdb.dst}`;
  }
});

function plannedDiff(peers: Peer[], actual: ActualState, c = ctx()): string[] {
  return summary(diff(planPeers(peers, c).desired, actual));
}

describe('directlyReachable', () => {
  test('a peer on the underlay subnet is direct; one behind the default gateway is not', () => {
    assert.equal(directlyReachable(UNDERLAY, ETH0, '192.168.1.11'), true);
    assert.equal(directlyReachable(UNDERLAY, ETH0, '172.16.0.5'), false);
  });
  test('a more specific route through a gateway wins over the connected subnet', () => {
    const routes = [...UNDERLAY, route({ dst: '192.168.1.128/25', gateway: '192.168.1.1', oif: ETH0, protocol: 4 })];
    assert.equal(directlyReachable(routes, ETH0, '192.168.1.200'), false);
    assert.equal(directlyReachable(routes, ETH0, '192.168.1.20'), true);
  });
  test('a connected subnet on another interface is not direct on the underlay; nor is a blackhole', () => {
    const routes = [...UNDERLAY, route({ dst: '10.9.0.0/16', oif: 7, protocol: 2 }), route({ dst: '10.8.0.0/16', type: 'blackhole' })];
    assert.equal(directlyReachable(routes, ETH0, '10.9.0.1'), false);
    assert.equal(directlyReachable(routes, ETH0, '10.8.0.1'), false);
    assert.equal(directlyReachable([], ETH0, '192.168.1.11'), false);
  });
  test('on equal prefixes the lower metric wins', () => {
    const routes = [route({ dst: '10.7.0.0/24', oif: ETH0, priority: 100 }), route({ dst: '10.7.0.0/24', gateway: '192.168.1.1', oif: ETH0, priority: 50 })];
    assert.equal(directlyReachable(routes, ETH0, '10.7.0.9'), false);
  });
});

describe('planPeers', () => {
  test('vxlan peer: neighbour .0 -> VtepMAC, FDB VtepMAC -> PublicIP, route via .0 onlink on the device; paths by peer id', () => {
    const plan = planPeers([withMac(peerA, MAC_A.toUpperCase())], ctx());
    assert.deepEqual([...plan.desired.neighbours.values()], [{ index: FLANNEL, ip: '10.244.2.0', mac: MAC_A, peer: peerA.id }]);
    assert.deepEqual([...plan.desired.fdb.values()], [{ index: FLANNEL, mac: MAC_A, dst: '192.168.1.11', peer: peerA.id }]);
    assert.deepEqual([...plan.desired.routes.values()], [{ dst: '10.244.2.0/24', gateway: '10.244.2.0', oif: FLANNEL, onlink: true, peer: peerA.id }]);
    assert.deepEqual([...plan.paths], [[peerA.id, 'vxlan']]);
    assert.deepEqual([plan.errors, plan.warnings], [[], []]);
  });

  test('a peer with several subnets: one neighbour and FDB entry, a route per subnet via its first subnet\'s address', () => {
    const mesh: Peer = { ...peerA, id: 'node-7', subnets: ['10.244.8.0/26', '10.244.9.0/26'] };
    const plan = planPeers([mesh], ctx());
    assert.deepEqual([...plan.desired.neighbours.keys()], ['10.244.8.0']);
    assert.deepEqual([...plan.desired.fdb.keys()], [MAC_A]);
    assert.deepEqual([...plan.desired.routes.values()].map((r) => `${r.dst} via ${r.gateway}`), ['10.244.8.0/26 via 10.244.8.0', '10.244.9.0/26 via 10.244.8.0']);
    const direct = planPeers([mesh], ctx({ directRouting: true }));
    assert.deepEqual([...direct.desired.routes.values()].map((r) => `${r.dst} via ${r.gateway}`), ['10.244.8.0/26 via 192.168.1.11', '10.244.9.0/26 via 192.168.1.11']);
    const bad = planPeers([{ ...mesh, subnets: ['10.244.8.0/26', '10.99.0.0/24'] }], ctx());
    assert.equal(bad.desired.routes.size, 0, 'one bad subnet refuses the whole peer');
    assert.deepEqual(bad.errors.map((e) => [e.peer, e.subnet]), [['node-7', '10.99.0.0/24']]);
  });

  test('a subnet that overlaps ours, another peer\'s, or is the whole Network is refused: longest-prefix routing would let it steal traffic', () => {
    const insideOurs = vx('subnets/10.244.1.128-25', '10.244.1.128/25', '192.168.1.21', '0a:00:00:00:00:21');
    const insideA = vx('subnets/10.244.2.0-25', '10.244.2.0/25', '192.168.1.22', '0a:00:00:00:00:22');
    const coversA = vx('subnets/10.244.2.0-23', '10.244.2.0/23', '192.168.1.23', '0a:00:00:00:00:23');
    const whole = vx('subnets/10.244.0.0-16', '10.244.0.0/16', '192.168.1.24', '0a:00:00:00:00:24');
    const plan = planPeers([peerA, insideOurs, insideA, coversA, whole, peerB], ctx());
    assert.deepEqual([...plan.desired.routes.keys()].sort(), ['10.244.2.0/24', '10.244.3.0/24']);
    const why = (p: Peer): string => plan.errors.find((e) => e.peer === p.id)?.error ?? '';
    assert.match(why(insideOurs), /overlaps our own lease subnet 10\.244\.1\.0\/24/);
    assert.match(why(insideA), /10\.244\.2\.0\/24, which overlaps 10\.244\.2\.0\/25/);
    assert.match(why(coversA), /10\.244\.2\.0\/24, which overlaps 10\.244\.2\.0\/23/);
    assert.match(why(whole), /the whole cluster Network/);
    for (const p of [insideOurs, insideA, coversA, whole]) assert.equal(plan.paths.get(p.id), 'unreachable');
  });

  test('DirectRouting: the same-subnet peer gets a plain route on the underlay, the routed one vxlan', () => {
    const plan = planPeers([peerA, peerB], ctx({ directRouting: true }));
    assert.deepEqual(plan.desired.routes.get('10.244.2.0/24'), { dst: '10.244.2.0/24', gateway: '192.168.1.11', oif: ETH0, onlink: false, peer: peerA.id });
    assert.deepEqual(plan.desired.routes.get('10.244.3.0/24')?.oif, FLANNEL);
    assert.deepEqual([...plan.desired.fdb.keys()], [MAC_B]);
    assert.deepEqual(Object.fromEntries(plan.paths), { [peerA.id]: 'direct', [peerB.id]: 'vxlan' });
  });

  test('DirectRouting needs no VtepMAC for a direct peer', () => {
    const plan = planPeers([{ ...peerA, backendData: undefined }], ctx({ directRouting: true }));
    assert.equal(plan.paths.get(peerA.id), 'direct');
    assert.deepEqual(plan.errors, []);
  });

  test('host-gw: a same-subnet peer gets a route via its PublicIP; a routed one is unreachable with a reason', () => {
    const hg = (p: Peer): Peer => ({ ...p, backendType: 'host-gw', backendData: undefined });
    const plan = planPeers([hg(peerA), hg(peerB)], ctx({ mode: 'host-gw', deviceIndex: undefined }));
    assert.deepEqual([...plan.desired.routes.values()], [{ dst: '10.244.2.0/24', gateway: '192.168.1.11', oif: ETH0, onlink: false, peer: peerA.id }]);
    assert.equal(plan.desired.neighbours.size + plan.desired.fdb.size, 0);
    assert.deepEqual(Object.fromEntries(plan.paths), { [peerA.id]: 'direct', [peerB.id]: 'unreachable' });
    assert.equal(plan.errors.length, 1);
    assert.deepEqual([plan.errors[0]?.peer, plan.errors[0]?.subnet], [peerB.id, sub(peerB)]);
    assert.match(plan.errors[0]!.error, /host-gw cannot reach 172\.16\.0\.5: it is not on a subnet directly connected to eth0/);
  });

  test('peers of another backend type are ignored with a warning, as flanneld does', () => {
    const plan = planPeers([{ ...peerA, backendType: 'host-gw' }], ctx());
    assert.equal(plan.paths.get(peerA.id), 'ignored');
    assert.equal(plan.desired.routes.size, 0);
    assert.match(plan.warnings[0]!.warning, /BackendType is "host-gw"/);
    assert.equal(plan.warnings[0]?.peer, peerA.id);
    const hg = planPeers([peerA], ctx({ mode: 'host-gw', deviceIndex: undefined }));
    assert.equal(hg.paths.get(peerA.id), 'ignored');
  });

  test('broken leases are reported per peer and planned for nothing', () => {
    const plan = planPeers([
      { ...peerA, backendData: undefined },
      withMac(peerB, 'not-a-mac'),
      { ...at(peerA, '10.244.4.0/24'), publicIp: '192.168.1.10' }, // our own PublicIP
      at(peerA, '10.244.5.1/24'), // host bits
      at(peerA, 'fd00::/64'),
      { ...at(peerA, '10.244.6.0/24'), publicIp: 'nope' },
      withMac(at(peerA, '10.244.7.0/24'), '01:00:5e:00:00:01'), // a multicast MAC
      { ...at(peerA, '10.244.8.0/24'), subnets: [] },
      { ...at(peerA, '10.244.9.0/24'), backendData: { VNI: 'one', VtepMAC: '0a:00:00:00:00:09' } },
    ], ctx());
    assert.equal(plan.desired.routes.size, 0);
    assert.deepEqual([...plan.paths.values()], Array(9).fill('unreachable'));
    const errors = plan.errors.map((e) => e.error);
    assert.match(errors[0]!, /no usable BackendData\.VtepMAC \(null\)/);
    assert.match(errors[1]!, /"not-a-mac"/);
    assert.match(errors[2]!, /our own PublicIP 192\.168\.1\.10/);
    assert.match(errors[3]!, /host bits/);
    assert.match(errors[4]!, /not IPv4/);
    assert.match(errors[5]!, /PublicIP "nope" is not an IPv4 address/);
    assert.match(errors[6]!, /no usable BackendData\.VtepMAC \("01:00:5e:00:00:01"\)/);
    assert.match(errors[7]!, /no subnet/);
    assert.match(errors[8]!, /BackendData\.VNI "one" is not a 24-bit number/);
  });

  test('a duplicate subnet, a VtepMAC shared by two peers, a duplicate id and our own subnet are not programmed twice', () => {
    const plan = planPeers([
      peerA,
      at(peerB, sub(peerA)),
      withMac(peerB, MAC_A),
      withMac(at(peerB, '10.244.1.0/24'), '0a:00:00:00:00:01'),
      withMac(at(peerB, '10.244.20.0/24', peerA.id), '0a:00:00:00:00:02'),
    ], ctx({ routes: [...UNDERLAY, route({ dst: '10.244.1.0/24', oif: 9, protocol: 2 })] })); // with our cni0
    assert.deepEqual([...plan.desired.routes.keys()], ['10.244.2.0/24']);
    assert.match(plan.errors[0]!.error, /another peer \(subnets\/10\.244\.2\.0-24\) already has subnet 10\.244\.2\.0\/24/);
    assert.match(plan.errors[1]!.error, /VtepMAC 0a:00:00:00:00:0a is also announced by subnets\/10\.244\.2\.0-24/);
    assert.equal(plan.paths.get('subnets/10.244.3.0-24@10.244.1.0/24'), 'ignored');
    assert.match(plan.errors[2]!.error, /another peer has the same id "subnets\/10\.244\.2\.0-24"/);
    assert.equal(plan.paths.get(peerA.id), 'vxlan', 'the first of two same ids keeps its path');
  });

  test('a peer subnet outside the cluster Network is never routed (the default route, the underlay, etcd\'s address)', () => {
    const plan = planPeers([
      at(peerA, '0.0.0.0/0'),
      at(peerB, '192.168.0.0/16'),
      at(peerA, '172.16.0.0/24'),
      at(peerA, '10.0.0.0/8'), // contains the Network
    ], ctx({ directRouting: true }));
    assert.equal(plan.desired.routes.size, 0);
    assert.equal(plan.desired.fdb.size + plan.desired.neighbours.size, 0);
    for (const [i, dst] of ['0.0.0.0/0', '192.168.0.0/16', '172.16.0.0/24', '10.0.0.0/8'].entries()) {
      assert.match(plan.errors[i]!.error, new RegExp(`subnet ${dst.replace(/\./g, '\\.')} is outside the cluster Network 10\\.244\\.0\\.0/16`));
    }
  });

  test('without a Network every peer is refused, nothing is routed', () => {
    const plan = planPeers([peerA, peerB], ctx({ network: undefined, directRouting: true }));
    assert.equal(plan.desired.routes.size, 0);
    assert.deepEqual([...plan.paths.values()], ['unreachable', 'unreachable']);
    assert.match(plan.errors[0]!.error, /set up without a valid cluster Network: no peer is routed without one/);
    assert.match(planPeers([peerA], ctx({ network: 'garbage' })).errors[0]!.error, /without a valid cluster Network \(/);
  });

  test('inside a Network that overlaps the underlay, a subnet overlapping a connected network is still refused', () => {
    const plan = planPeers([at(peerB, '192.168.0.0/16')], ctx({ network: '192.168.0.0/15' }));
    assert.equal(plan.desired.routes.size, 0);
    assert.match(plan.errors[0]!.error, /subnet 192\.168\.0\.0\/16 overlaps the connected network 192\.168\.1\.0\/24 on link #2/);
  });

  test('unusable PublicIPs are refused: 0.0.0.0, loopback, multicast, broadcast, link-local, reserved, inside the Network', () => {
    const ips = ['0.0.0.0', '127.0.0.1', '224.0.0.1', '255.255.255.255', '169.254.0.1', '240.0.0.1', '10.244.200.1'];
    const plan = planPeers(ips.map((ip, i) => ({ ...at(peerB, `10.244.${30 + i}.0/24`), publicIp: ip, backendData: { VNI: 1, VtepMAC: `0a:00:00:00:01:0${i}` } })), ctx({ directRouting: true }));
    assert.equal(plan.desired.routes.size + plan.desired.fdb.size, 0);
    const why = plan.errors.map((e) => e.error.replace(/^the peer's PublicIP \S+ /, ''));
    assert.match(why[0]!, /0\.0\.0\.0\/8/);
    assert.match(why[1]!, /loopback/);
    assert.match(why[2]!, /multicast/);
    assert.match(why[3]!, /broadcast/);
    assert.match(why[4]!, /link-local/);
    assert.match(why[5]!, /reserved/);
    assert.match(why[6]!, /inside the cluster Network 10\.244\.0\.0\/16/);
  });

  test('a peer on another VNI is unreachable, with both VNIs named, and gets no entries', () => {
    const plan = planPeers([vx('x', '10.244.2.0/24', '192.168.1.11', MAC_A, 4096)], ctx());
    assert.equal(plan.paths.get('x'), 'unreachable');
    assert.equal(plan.desired.routes.size + plan.desired.neighbours.size + plan.desired.fdb.size, 0);
    assert.match(plan.errors[0]!.error, /the peer announces VNI 4096 but this node uses VNI 1/);
    assert.deepEqual(plan.warnings, []);
    // A lease without a VNI gives no evidence of a mismatch.
    assert.equal(planPeers([{ ...peerA, backendData: { VtepMAC: MAC_A } }], ctx()).paths.get(peerA.id), 'vxlan');
  });
});

describe('ownedRoutes', () => {
  const foreign = [
    ...UNDERLAY,
    route({ dst: '10.99.0.0/16', gateway: '192.168.1.1', oif: ETH0, protocol: 4 }), // an operator's static route
    route({ dst: '10.244.7.0/24', gateway: '192.168.1.1', oif: ETH0, protocol: 4 }), // static, inside Network
    route({ dst: '10.244.9.0/24', type: 'blackhole', protocol: RTPROT_WEFT }),
    route({ dst: '10.244.1.0/24', oif: 9, protocol: 2 }), // cni0's prefix route
    // A routed pod's host route (the CNI plugin's proto 88, src/cni/routed-link.ts): the data plane must never take it for a stale peer route.
    route({ dst: '10.244.1.7/32', oif: 21, scope: 'link', protocol: 88 }),
  ];
  const ours = [
    route({ dst: '10.244.2.0/24', gateway: '10.244.2.0', oif: FLANNEL, onlink: true, protocol: 3 }), // flanneld's vxlan route
    route({ dst: '10.244.3.0/24', gateway: '192.168.1.12', oif: ETH0, protocol: RTPROT_WEFT }),
    route({ dst: '10.244.4.0/24', gateway: '10.1.1.1', oif: 11, protocol: RTPROT_WEFT }), // ours, on an old underlay
    route({ dst: '10.244.5.0/24', gateway: '192.168.1.13', oif: ETH0, protocol: 3 }), // flanneld's host-gw route
  ];
  const all = [...foreign, ...ours];

  test('with the Network known: weft-protocol routes, non-kernel routes on the device, flanneld routes on the underlay inside the Network', () => {
    const owned = ownedRoutes(all, { deviceIndex: FLANNEL, underlayIndex: ETH0, network: '10.244.0.0/16', desired: new Set() });
    assert.deepEqual(owned.map((r) => r.dst), ours.map((r) => r.dst));
  });

  test('without the Network only a boot route to a desired destination is adopted', () => {
    const owned = ownedRoutes(all, { deviceIndex: FLANNEL, underlayIndex: ETH0, desired: new Set(['10.244.5.0/24']) });
    assert.deepEqual(owned.map((r) => r.dst), ours.map((r) => r.dst));
    const none = ownedRoutes(all, { deviceIndex: FLANNEL, underlayIndex: ETH0, desired: new Set() });
    assert.deepEqual(none.map((r) => r.dst), ['10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24']);
  });

  test('the default route and kernel routes are never ours, even when desired or inside the Network', () => {
    const owned = ownedRoutes(UNDERLAY, { deviceIndex: FLANNEL, underlayIndex: ETH0, network: '0.0.0.0/0', desired: new Set(['0.0.0.0/0', '192.168.1.0/24']) });
    assert.deepEqual(owned, []);
    const onDevice = [route({ dst: '10.244.1.0/24', oif: FLANNEL, protocol: 2 })];
    assert.deepEqual(ownedRoutes(onDevice, { deviceIndex: FLANNEL, underlayIndex: ETH0, desired: new Set() }), []);
  });

  test('ownedFdb: permanent entries with a destination on the device only', () => {
    const entries: KernelFdb[] = [
      fdb(MAC_A, '192.168.1.11'),
      { ...fdb(MAC_B, '192.168.1.12'), state: 0x02 }, // learned
      { ...fdb('00:00:00:00:00:00', '192.168.1.99') }, // flood entry
      { index: FLANNEL, mac: '0a:00:00:00:00:0c', state: 0x80, flags: 2 }, // no dst
      { ...fdb('0a:00:00:00:00:0d', '192.168.1.13'), index: 9 }, // another device
      { ...fdb('0a:00:00:00:00:0e', '192.168.1.14'), master: 9 }, // a bridge's entry
    ];
    assert.deepEqual(ownedFdb(entries, FLANNEL).map((f) => f.mac), [MAC_A]);
  });
});

describe('diff', () => {
  const empty: ActualState = { routes: [], neighbours: [], fdb: [] };

  test('in sync: no operation (and flanneld-made entries, protocol boot, count as in sync)', () => {
    assert.deepEqual(plannedDiff([peerA, peerB], merge(vxlanEntries(peerA), vxlanEntries(peerB))), []);
    assert.deepEqual(plannedDiff([peerA, peerB], merge(vxlanEntries(peerA, 3), vxlanEntries(peerB, 3))), []);
    assert.deepEqual(plannedDiff([], empty), []);
  });

  test('new peers: neighbour and FDB entry first, the route last', () => {
    assert.deepEqual(plannedDiff([peerA], empty), [
      `neigh replace 10.244.2.0 ${MAC_A}`,
      `fdb replace ${MAC_A} 192.168.1.11`,
      `route replace 10.244.2.0/24 via 10.244.2.0 dev ${FLANNEL} onlink`,
    ]);
  });

  test('a vanished peer: its route goes first, then its neighbour and FDB entry', () => {
    assert.deepEqual(plannedDiff([peerB], merge(vxlanEntries(peerA), vxlanEntries(peerB))), [
      `route delete 10.244.2.0/24 via 10.244.2.0 dev ${FLANNEL} onlink`,
      'neigh delete 10.244.2.0',
      `fdb delete ${MAC_A} 192.168.1.11`,
    ]);
  });

  test('a peer whose VtepMAC changed: neighbour replaced, old FDB entry deleted, new one added, route kept', () => {
    const moved = withMac(peerA, '0a:00:00:00:00:99');
    assert.deepEqual(plannedDiff([moved], vxlanEntries(peerA)), [
      'neigh replace 10.244.2.0 0a:00:00:00:00:99',
      `fdb delete ${MAC_A} 192.168.1.11`,
      'fdb replace 0a:00:00:00:00:99 192.168.1.11',
    ]);
  });

  test('a peer whose PublicIP changed: one FDB replace', () => {
    assert.deepEqual(plannedDiff([{ ...peerA, publicIp: '192.168.1.50' }], vxlanEntries(peerA)), [`fdb replace ${MAC_A} 192.168.1.50`]);
  });

  test('a host-gw peer whose PublicIP changed: one route replace', () => {
    const hg: Peer = { ...peerA, backendType: 'host-gw' };
    const c = ctx({ mode: 'host-gw', deviceIndex: undefined });
    const actual = { ...empty, routes: [route({ dst: sub(peerA), gateway: '192.168.1.11', oif: ETH0 })] };
    assert.deepEqual(plannedDiff([hg], actual, c), []);
    assert.deepEqual(plannedDiff([{ ...hg, publicIp: '192.168.1.12' }], actual, c), [`route replace 10.244.2.0/24 via 192.168.1.12 dev ${ETH0}`]);
    assert.deepEqual(plannedDiff([], actual, c), [`route delete 10.244.2.0/24 via 192.168.1.11 dev ${ETH0}`]);
  });

  test('a peer moving from vxlan to a direct route: the route is replaced and the vxlan entries removed', () => {
    assert.deepEqual(plannedDiff([peerA], vxlanEntries(peerA), ctx({ directRouting: true })), [
      'neigh delete 10.244.2.0',
      `fdb delete ${MAC_A} 192.168.1.11`,
      `route replace 10.244.2.0/24 via 192.168.1.11 dev ${ETH0}`,
    ]);
  });

  test('a kernel-made (not permanent) neighbour at a peer address is replaced; a stale one elsewhere is left alone', () => {
    const actual = merge(vxlanEntries(peerA), { ...empty, neighbours: [neigh('10.244.8.0', MAC_B, 0x20)] });
    actual.neighbours = actual.neighbours.map((n) => (n.ip === '10.244.2.0' ? { ...n, state: 0x04 } : n));
    assert.deepEqual(plannedDiff([peerA], actual), [`neigh replace 10.244.2.0 ${MAC_A}`]);
  });

  test('extra routes for a peer subnet (another metric) go; a MAC with several destinations keeps the right one', () => {
    const actual = merge(vxlanEntries(peerA), {
      routes: [route({ dst: sub(peerA), gateway: '10.244.2.0', oif: FLANNEL, onlink: true, priority: 100 })],
      neighbours: [],
      fdb: [fdb(MAC_A, '192.168.1.99')],
    });
    assert.deepEqual(plannedDiff([peerA], actual), [
      `route delete 10.244.2.0/24 via 10.244.2.0 dev ${FLANNEL} onlink`,
      `fdb delete ${MAC_A} 192.168.1.99`,
    ]);
    // Without an exact match the first destination is rewritten and the others deleted.
    const wrong = { ...empty, fdb: [fdb(MAC_A, '192.168.1.98'), fdb(MAC_A, '192.168.1.99')] };
    const ops = diff(planPeers([peerA], ctx()).desired, wrong).filter((o) => o.kind === 'fdb');
    assert.deepEqual(summary(ops), [`fdb delete ${MAC_A} 192.168.1.99`, `fdb replace ${MAC_A} 192.168.1.11`]);
  });

  test('a peer refused now (out of the Network, another VNI) loses the entries an earlier version programmed', () => {
    const rogue = vx('rogue', '172.16.0.0/24', '192.168.1.11', MAC_A);
    const stale = merge(vxlanEntries(rogue), {
      routes: [route({ dst: '192.168.7.0/24', gateway: '192.168.1.13', oif: ETH0 })], // a direct route outside the Network
      neighbours: [],
      fdb: [],
    });
    const c = ctx({ directRouting: true });
    const routesOf = (ops: string[]): string[] => ops.filter((o) => o.startsWith('route'));
    assert.deepEqual(routesOf(plannedDiff([rogue, vx('r2', '192.168.7.0/24', '192.168.1.13', MAC_B)], stale, c)), [
      `route delete 172.16.0.0/24 via 172.16.0.0 dev ${FLANNEL} onlink`,
      `route delete 192.168.7.0/24 via 192.168.1.13 dev ${ETH0}`,
    ]);
    const otherVni = vx('v', sub(peerB), peerB.publicIp, MAC_B, 4096);
    assert.deepEqual(plannedDiff([otherVni], vxlanEntries(peerB)), [
      `route delete 10.244.3.0/24 via 10.244.3.0 dev ${FLANNEL} onlink`,
      'neigh delete 10.244.3.0',
      `fdb delete ${MAC_B} 172.16.0.5`,
    ]);
  });

  test('an owned route that differs (e.g. lost onlink) is replaced in place', () => {
    const actual = vxlanEntries(peerA);
    actual.routes = [route({ dst: sub(peerA), gateway: '10.244.2.0', oif: FLANNEL, onlink: false })];
    assert.deepEqual(plannedDiff([peerA], actual), [`route replace 10.244.2.0/24 via 10.244.2.0 dev ${FLANNEL} onlink`]);
  });
});

// --- one diff reaches the desired state, whatever the start ------------------------------

/** Applies operations the way rtnetlink does (replace = same dst and metric 0; FDB replace rewrites the first destination). */
function apply(state: ActualState, ops: Operation[]): ActualState {
  let { routes, neighbours, fdb: entries } = { routes: [...state.routes], neighbours: [...state.neighbours], fdb: [...state.fdb] };
  for (const op of ops) {
    if (op.kind === 'route' && op.action === 'replace') {
      routes = routes.filter((r) => !(r.dst === op.route.dst && (r.priority ?? 0) === 0));
      routes.push(route({ ...op.route, protocol: RTPROT_WEFT }));
    } else if (op.kind === 'route') {
      const victim = op.route;
      routes = routes.filter((r) => r !== victim);
    } else if (op.kind === 'neigh') {
      neighbours = neighbours.filter((n) => n.ip !== op.neigh.ip);
      if (op.action === 'replace') neighbours.push(neigh(op.neigh.ip, op.neigh.mac));
    } else if (op.action === 'delete') {
      entries = entries.filter((f) => !(f.mac === op.fdb.mac && f.dst === op.fdb.dst));
    } else {
      const at = entries.findIndex((f) => f.mac === op.fdb.mac);
      if (at >= 0) entries[at] = { ...(entries[at] as KernelFdb), dst: op.fdb.dst };
      else entries.push(fdb(op.fdb.mac, op.fdb.dst));
    }
  }
  return { routes, neighbours, fdb: entries };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s / 2 ** 32;
  };
}

test('from any start, applying one diff reaches the desired state, and a second diff is empty', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rand = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const macs = ['0a:00:00:00:00:01', '0a:00:00:00:00:02', '0a:00:00:00:00:03', '0a:00:00:00:00:04', '0a:00:00:00:00:05', '0a:00:00:00:00:06'];
    const ips = ['192.168.1.11', '192.168.1.12', '172.16.0.5', '172.16.0.6'];
    const subnetsOf = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.244.${10 + i}.0/24`);
    const randomPeers = (): Peer[] => subnetsOf(6).filter(() => rand() < 0.6).map((subnet, i) =>
      vx(subnet, subnet, pick(ips), macs[(i + Math.floor(rand() * 2)) % macs.length]));
    const c = ctx({ directRouting: rand() < 0.5 });
    // Start from the desired state of other peers, then disturb it.
    const before = planPeers(randomPeers(), c).desired;
    let actual: ActualState = {
      routes: [...before.routes.values()].map((r) => route({ ...r, priority: rand() < 0.1 ? 7 : undefined, protocol: rand() < 0.3 ? 3 : RTPROT_WEFT })),
      neighbours: [...before.neighbours.values()].map((n) => neigh(n.ip, rand() < 0.2 ? pick(macs) : n.mac, rand() < 0.1 ? 0x04 : 0x80)),
      // A MAC may have several destinations, never the same one twice (the kernel refuses that).
      fdb: [...before.fdb.values()].flatMap((f) => (rand() < 0.2 ? [fdb(f.mac, pick(ips.filter((ip) => ip !== f.dst))), fdb(f.mac, f.dst)] : [fdb(f.mac, f.dst)])),
    };
    const plan = planPeers(randomPeers(), c);
    actual = apply(actual, diff(plan.desired, actual));
    assert.deepEqual(diff(plan.desired, actual), [], `seed ${seed}: converged`);
    assert.deepEqual(actual.routes.map((r) => r.dst).sort(), [...plan.desired.routes.keys()].sort(), `seed ${seed}: routes`);
    assert.deepEqual(actual.neighbours.filter((n) => n.state === 0x80).map((n) => `${n.ip} ${n.mac}`).sort(),
      [...plan.desired.neighbours.values()].map((n) => `${n.ip} ${n.mac}`).sort(), `seed ${seed}: neighbours`);
    assert.deepEqual(actual.fdb.map((f) => `${f.mac} ${f.dst}`).sort(), [...plan.desired.fdb.values()].map((f) => `${f.mac} ${f.dst}`).sort(), `seed ${seed}: fdb`);
  }
});

test('operationRequest: routes weft adds carry protocol 0x57; deletes name the exact route', () => {
  const decode = (op: Operation): Route => {
    const req = operationRequest(op);
    const w = new NlWriter();
    const s = w.beginMessage(RTM_NEWROUTE, 0, 1);
    req.write(w);
    w.endMessage(s);
    const [msg] = parseMessages(w.bytes());
    const r = decodeRoute(msg!);
    assert.ok(r);
    return r;
  };
  const added = decode({ kind: 'route', action: 'replace', route: { dst: '10.244.2.0/24', gateway: '10.244.2.0', oif: FLANNEL, onlink: true }, peer: 'x' });
  assert.deepEqual([added.dst, added.gateway, added.oif, added.onlink, added.protocol, added.table], ['10.244.2.0/24', '10.244.2.0', FLANNEL, true, RTPROT_WEFT, 254]);
  const deleted = decode({ kind: 'route', action: 'delete', route: route({ dst: '10.244.3.0/24', gateway: '192.168.1.12', oif: ETH0, priority: 7 }), peer: 'x' });
  assert.deepEqual([deleted.dst, deleted.gateway, deleted.oif, deleted.priority, deleted.protocol], ['10.244.3.0/24', '192.168.1.12', ETH0, 7, 0]);
  assert.match(operationRequest({ kind: 'fdb', action: 'replace', fdb: { index: FLANNEL, mac: MAC_A, dst: '192.168.1.11' }, peer: 'x' }).what, /replace fdb entry 0a:00:00:00:00:0a dst 192\.168\.1\.11/);
});

test('addresses: exactly the lease subnet network address /32 stays on the device', () => {
  assert.equal(deviceAddress('10.16.85.0/24'), '10.16.85.0/32');
  assert.deepEqual(diffAddresses(['10.16.85.0/32'], '10.16.85.0/32'), { add: undefined, remove: [] });
  assert.deepEqual(diffAddresses(['10.16.84.0/32', '192.0.2.1/24'], '10.16.85.0/32'), { add: '10.16.85.0/32', remove: ['10.16.84.0/32', '192.0.2.1/24'] });
  assert.equal(canonicalSubnet('10.16.85.0/24'), '10.16.85.0/24');
  assert.throws(() => canonicalSubnet('10.16.85.1/24'), /host bits/);
});
