import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectExternalInterface, type InterfaceSnapshot } from './interface.ts';
import type { Address, Link, Route } from '../netlink/index.ts';

const link = (index: number, name: string, mtu = 1500): Link => ({ index, name, mtu, up: true, operUp: true, flags: 1 });
const addr = (index: number, address: string, family: 4 | 6 = 4): Address => ({ index, family, address, prefixLen: 24, cidr: `${address}/24`, scope: 0, flags: 0 });
const snapshot: InterfaceSnapshot = {
  links: [link(1, 'lo', 65536), link(2, 'eth0', 9001), link(3, 'eth1')],
  addresses: [addr(1, '127.0.0.1'), addr(2, '172.31.1.11'), addr(3, '192.168.7.3'), addr(3, 'fd00::3', 6)],
  routes: [{ family: 4, dst: '0.0.0.0/0', gateway: '172.31.1.1', oif: 2, scope: 'universe', onlink: false, protocol: 3, table: 254, type: 'unicast', flags: 0 } as Route],
};
const none = { iface: [], ifaceRegex: [], publicIp: undefined };

test('without flags: the default route interface and its address', () => {
  assert.deepEqual(selectExternalInterface(snapshot, none), { name: 'eth0', index: 2, mtu: 9001, address: '172.31.1.11', publicIp: '172.31.1.11' });
});

test('--iface by name or by address, in order; --public-ip overrides the advertised address', () => {
  assert.equal(selectExternalInterface(snapshot, { ...none, iface: ['eth1'] }).name, 'eth1');
  assert.equal(selectExternalInterface(snapshot, { ...none, iface: ['eth9', '192.168.7.3'] }).name, 'eth1');
  const pub = selectExternalInterface(snapshot, { ...none, publicIp: '198.51.100.7' });
  assert.equal(pub.address, '172.31.1.11');
  assert.equal(pub.publicIp, '198.51.100.7');
});

test('--iface-regex matches addresses before names', () => {
  assert.equal(selectExternalInterface(snapshot, { ...none, ifaceRegex: ['^192\\.168\\.'] }).name, 'eth1');
  assert.equal(selectExternalInterface(snapshot, { ...none, ifaceRegex: ['^eth1$'] }).name, 'eth1');
});

test('no match, no default route, or a bad --public-ip: errors that say what exists', () => {
  assert.throws(() => selectExternalInterface(snapshot, { ...none, iface: ['eth7'] }), /no interface matches --iface eth7; interfaces here: eth0 \(172.31.1.11\), eth1 \(192.168.7.3\)/);
  assert.throws(() => selectExternalInterface({ ...snapshot, routes: [] }, none), /no default route .* pass --iface/);
  assert.throws(() => selectExternalInterface(snapshot, { ...none, publicIp: 'fd00::1' }), /--public-ip="fd00::1" is not an IPv4 address/);
});
