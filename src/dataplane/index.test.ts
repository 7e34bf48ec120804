// The factory's choice of backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Rtnetlink } from '../netlink/index.ts';
import { createBackend, HostGwBackend, VxlanBackend } from './index.ts';

test('createBackend picks the implementation; auto publishes vxlan', () => {
  const nl = {} as Rtnetlink;
  const node = { underlayInterface: 'eth0', underlayIndex: 2, underlayMtu: 1500, publicIp: '192.168.1.10' };
  assert.ok(createBackend(nl, node, { type: 'host-gw' }) instanceof HostGwBackend);
  const auto = createBackend(nl, node, { type: 'auto', vni: 7, port: 8472, mtu: undefined, learning: false, directRouting: true });
  assert.ok(auto instanceof VxlanBackend);
  assert.equal(auto.type, 'auto');
  assert.equal(auto.spec.name, 'flannel.7');
});
