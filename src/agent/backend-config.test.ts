import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backendSection, checkBackendSection } from './backend-config.ts';

const backend = (b: Record<string, unknown> | undefined) => ({ raw: b ?? {} });

test("flannel's Backend reaches the data plane raw and is validated by the backend it names", () => {
  assert.deepEqual(backendSection(backend({ Type: 'vxlan', VNI: 4096 })), { Type: 'vxlan', VNI: 4096 });
  assert.deepEqual(checkBackendSection(backend({ Type: 'vxlan', VNI: 4096, MTU: 9001, DirectRouting: true })).config,
    { type: 'vxlan', settings: { vni: 4096, port: 8472, mtu: 9001, learning: false, directRouting: true } });
  assert.deepEqual(checkBackendSection(backend(undefined)).config.type, 'vxlan');
});

test('what the data plane cannot do is refused with the field named', () => {
  assert.throws(() => checkBackendSection(backend({ Type: 'vxlan', GBP: true })), /"Backend.GBP"/);
  assert.throws(() => checkBackendSection(backend({ Type: 'vxlan', MTU: 100 })), /"Backend.MTU" 100 leaves less than/);
  assert.throws(() => checkBackendSection(backend({ Type: 'udp' })), /"udp" \("Backend\.Type"\) is not supported by weft/);
});
