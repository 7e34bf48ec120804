import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMeshStatus, parseRmpeerAnswer, parseRmpeerRequest } from './schema.ts';
import { isWeftError } from '../../errors.ts';
import type { MeshStatus } from './types.ts';

const sample: MeshStatus = {
  version: '0.1.0', protocol: { min: 1, max: 1 }, name: 'aa:bb:cc:dd:ee:01', nickname: 'n1', encryption: false, peerDiscovery: true,
  targets: ['172.31.1.12'],
  connections: [
    { direction: 'outbound', address: '172.31.1.12:6783', state: 'established', peer: { name: 'aa:bb:cc:dd:ee:02', nickname: 'n2' }, encrypted: false, attrs: { mtu: '1410' } },
    { direction: 'outbound', address: '172.31.1.13:6783', state: 'failed', info: 'connection refused', retry: null },
  ],
  peers: [{ name: 'aa:bb:cc:dd:ee:01', nickname: 'n1', self: true, reachable: true, connections: [] }],
  trustedSubnets: [],
  ipam: { status: 'idle', range: '10.32.0.0/12', defaultSubnet: '10.32.0.0/12', blockPrefix: 26, ringId: null, owners: [], blocksOwned: 0, blocksFree: 16384 },
  dataPlaneEncrypted: false,
};

test('a well-formed mesh status passes through whole, fields this version does not know included', () => {
  assert.deepEqual(parseMeshStatus(sample), sample);
  const newer = { ...sample, somethingNew: { x: 1 }, ipam: { ...sample.ipam, extra: true } };
  assert.deepEqual(parseMeshStatus(newer), newer);
});

test('a malformed mesh status is one WEFT_DECODE naming the field', () => {
  const cases: [unknown, RegExp][] = [
    [null, /malformed/],
    ['text', /malformed/],
    [{ ...sample, peers: 'x' }, /\(peers: /],
    [{ ...sample, ipam: { ...sample.ipam, owners: [{ name: 'a', nickname: 'b', addresses: -1, self: true, reachable: true }] } }, /ipam\.owners\.0\.addresses/],
    [{ ...sample, connections: [{ ...sample.connections[0], state: 'dancing' }] }, /connections\.0\.state/],
    [{ ...sample, connections: [{ ...sample.connections[0], attrs: { mtu: 1410 } }] }, /connections\.0\.attrs\.mtu/],
    [{ ...sample, dataPlaneEncrypted: true }, /dataPlaneEncrypted/],
    [{ ...sample, ipam: { ...sample.ipam, blockPrefix: 33 } }, /ipam\.blockPrefix/],
  ];
  for (const [raw, re] of cases) {
    assert.throws(() => parseMeshStatus(raw), (e) => isWeftError(e, 'WEFT_DECODE') && re.test(e.message), JSON.stringify(raw)?.slice(0, 80));
  }
});

test('rmpeer: the request names one peer; the answer says how many addresses moved', () => {
  assert.equal(parseRmpeerRequest({ peer: ' node-3 ' }), 'node-3');
  for (const bad of [null, {}, { peer: '' }, { peer: 3 }, { peer: 'x'.repeat(254) }]) {
    assert.throws(() => parseRmpeerRequest(bad), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /rmpeer wants/.test(e.message));
  }
  assert.deepEqual(parseRmpeerAnswer({ addresses: 512, peer: 'aa:bb:cc:dd:ee:03(node-3)' }), { addresses: 512, peer: 'aa:bb:cc:dd:ee:03(node-3)' });
  assert.throws(() => parseRmpeerAnswer({ addresses: 1.5, peer: 'x' }), (e) => isWeftError(e, 'WEFT_DECODE'));
});
