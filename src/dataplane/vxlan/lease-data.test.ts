import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeVxlanLeaseData, vxlanLeaseData } from './lease-data.ts';

test("vxlan BackendData: flannel's field names, MAC lower-cased", () => {
  assert.deepEqual(vxlanLeaseData(1, 'C6:D2:32:6F:8F:44'), { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' });
  assert.deepEqual(Object.keys(vxlanLeaseData(1, 'c6:d2:32:6f:8f:44')), ['VNI', 'VtepMAC']);
});

test('a peer\'s BackendData is decoded as flanneld reads it (keys in any case), and refused when unusable', () => {
  assert.deepEqual(decodeVxlanLeaseData({ vni: 2, vtepmac: 'AA:BB:CC:DD:EE:FE' }), { mac: 'aa:bb:cc:dd:ee:fe', vni: 2 });
  assert.deepEqual(decodeVxlanLeaseData({ VtepMAC: '0a:00:00:00:00:01' }), { mac: '0a:00:00:00:00:01', vni: undefined });
  const refused: [unknown, RegExp][] = [
    [undefined, /no usable BackendData\.VtepMAC \(null\)/],
    ['0a:00:00:00:00:01', /no usable BackendData\.VtepMAC/],
    [{ VNI: 1, VtepMAC: 'nope' }, /"nope"/],
    [{ VNI: 1, VtepMAC: '00:00:00:00:00:00' }, /VtepMAC/],
    [{ VNI: 1, VtepMAC: 'ff:ff:ff:ff:ff:ff' }, /VtepMAC/],
    [{ VNI: -1, VtepMAC: 'aa:bb:cc:dd:ee:fe' }, /VNI -1 is not a 24-bit number/],
    [{ VNI: 16777216, VtepMAC: 'aa:bb:cc:dd:ee:fe' }, /VNI 16777216/],
    [{ VNI: '1', VtepMAC: 'aa:bb:cc:dd:ee:fe' }, /VNI "1"/],
  ];
  for (const [data, re] of refused) {
    const d = decodeVxlanLeaseData(data);
    assert.equal(typeof d, 'string', JSON.stringify(data));
    assert.match(d as string, re);
  }
});
