// flannel's "Backend" object read as flanneld reads it, and the factory's choice of backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import type { Rtnetlink } from '../netlink/index.ts';
import { createBackend, HostGwBackend, parseBackendConfig, VxlanBackend } from './index.ts';

test('vxlan defaults: VNI 1, Port 0 (8472), no MTU override, learning and DirectRouting off', () => {
  assert.deepEqual(parseBackendConfig({ Type: 'vxlan' }), { type: 'vxlan', vni: 1, port: 0, mtu: undefined, learning: false, directRouting: false });
});

test('keys and the type match case-insensitively, as Go does; unknown keys are ignored', () => {
  assert.deepEqual(parseBackendConfig({ type: 'VXLAN', vni: 4096, PORT: 4789, mtu: 9001, directrouting: true, MacPrefix: '0E-2A' }),
    { type: 'vxlan', vni: 4096, port: 4789, mtu: 9001, learning: false, directRouting: true });
  assert.deepEqual(parseBackendConfig({ Type: 'host-gw' }), { type: 'host-gw' });
});

test('auto always routes directly where it can', () => {
  assert.equal((parseBackendConfig({ Type: 'auto', DirectRouting: false }) as { directRouting: boolean }).directRouting, true);
});

test('wrong values are WEFT_INVALID_CONFIG errors naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [null, /must be an object/],
    [{}, /"Type" must be a string/],
    [{ Type: 'udp' }, /Type "udp" is not supported by weft/],
    [{ Type: 'vxlan', VNI: -1 }, /"VNI" must be an integer in 0-16777215, not -1/],
    [{ Type: 'vxlan', VNI: '1' }, /"VNI" must be an integer/],
    [{ Type: 'vxlan', Port: 70000 }, /"Port" must be an integer in 0-65535/],
    [{ Type: 'vxlan', MTU: 100 }, /"MTU" 100 leaves less than/],
    [{ Type: 'vxlan', DirectRouting: 'yes' }, /"DirectRouting" must be true or false/],
    [{ Type: 'vxlan', GBP: true }, /"GBP" .* not supported/],
  ];
  for (const [raw, message] of bad) {
    assert.throws(() => parseBackendConfig(raw), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && message.test((e as Error).message), String(message));
  }
});

test('createBackend picks the implementation; auto publishes vxlan', () => {
  const nl = {} as Rtnetlink;
  const node = { underlayInterface: 'eth0', underlayIndex: 2, underlayMtu: 1500, publicIp: '192.168.1.10' };
  assert.ok(createBackend(nl, node, { type: 'host-gw' }) instanceof HostGwBackend);
  const auto = createBackend(nl, node, parseBackendConfig({ Type: 'auto', VNI: 7 }));
  assert.ok(auto instanceof VxlanBackend);
  assert.equal(auto.type, 'auto');
  assert.equal(auto.spec.name, 'flannel.7');
});
