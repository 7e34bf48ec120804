import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dataplaneBackendConfig } from './backend-config.ts';
import { parseNetworkConfig } from '../lease/network-config.ts';

const backend = (b: unknown) => parseNetworkConfig(JSON.stringify({ Network: '10.16.0.0/16', Backend: b })).backend;

test("flannel's Backend becomes the data plane's config; auto always routes directly where it can", () => {
  assert.deepEqual(dataplaneBackendConfig(backend({ Type: 'vxlan', VNI: 4096, MTU: 9001, DirectRouting: true })),
    { type: 'vxlan', vni: 4096, port: 8472, mtu: 9001, learning: false, directRouting: true });
  assert.deepEqual(dataplaneBackendConfig(backend({ Type: 'host-gw' })), { type: 'host-gw' });
  assert.equal((dataplaneBackendConfig(backend({ Type: 'auto', DirectRouting: false })) as { directRouting: boolean }).directRouting, true);
});

test('what the data plane cannot do is refused with the field named', () => {
  assert.throws(() => dataplaneBackendConfig(backend({ Type: 'vxlan', GBP: true })), /"Backend.GBP"/);
  assert.throws(() => dataplaneBackendConfig(backend({ Type: 'vxlan', MTU: 100 })), /"Backend.MTU" 100 leaves less than/);
});
