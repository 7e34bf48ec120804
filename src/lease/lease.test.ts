import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatCidr, parseCidr } from '../net/cidr.ts';
import {
  formatLeaseValue, leaseKey, parseLeaseKey, parseLeaseValue, parseStoredLease, subnetsCompatible,
  type LeaseAttrs,
} from './lease.ts';
import { parseNetworkConfig } from './network-config.ts';

const reservationsDoc = '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}';

describe('subnet keys', () => {
  it('formats IPv4, dual-stack and IPv6-only keys as flannel does', () => {
    assert.equal(leaseKey({ ipv4: parseCidr('10.16.85.0/24'), ipv6: undefined }), 'subnets/10.16.85.0-24');
    assert.equal(leaseKey({ ipv4: parseCidr('10.244.1.0/24'), ipv6: parseCidr('2001:cafe:42:1::/64') }), 'subnets/10.244.1.0-24&2001:cafe:42:1::-64');
    assert.equal(leaseKey({ ipv4: undefined, ipv6: parseCidr('fd00:0:0:5::/64') }), 'subnets/0.0.0.0-0&fd00:0:0:5::-64');
  });

  it('parses them back, with or without the subnets/ directory', () => {
    for (const key of ['subnets/10.16.85.0-24', '10.244.1.0-24&2001:cafe:42:1::-64', 'subnets/0.0.0.0-0&fd00:0:0:5::-64']) {
      const parsed = parseLeaseKey(key);
      assert.ok(parsed.ok, key);
      assert.equal(leaseKey(parsed.value), key.startsWith('subnets/') ? key : `subnets/${key}`);
    }
    const dual = parseLeaseKey('10.244.1.0-24&2001:cafe:42:1::-64');
    assert.ok(dual.ok);
    assert.equal(dual.value.ipv6 && formatCidr(dual.value.ipv6), '2001:cafe:42:1::/64');
  });

  it('skips what is not a subnet key, with a reason', () => {
    const cases: [string, RegExp][] = [
      ['subnets/garbage', /"garbage" is not a subnet key/],
      ['subnets/10.16.85.0', /is not a subnet key/],
      ['subnets/10.16.85.3-24', /has host bits set/],
      ['subnets/10.16.300.0-24', /octet 300 is out of range/],
      ['subnets/10.16.85.0-33', /prefix 33 is longer than 32/],
      ['subnets/10.1.0.0-24&10.2.0.0-24', /is not an IPv6 address/],
      ['subnets/0.0.0.0-0', /names no subnet/],
    ];
    for (const [key, reason] of cases) {
      const parsed = parseLeaseKey(key);
      assert.ok(!parsed.ok, key);
      assert.match(parsed.reason, reason);
    }
  });
});

describe('lease values', () => {
  const attrs: LeaseAttrs = { publicIp: '192.168.64.3', publicIpv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: 'c6:d2:32:6f:8f:44' }, backendV6Data: undefined };

  it('writes exactly what Documentation/reservations.md shows: field order, null PublicIPv6, lower-case MAC', () => {
    assert.equal(formatLeaseValue(attrs), reservationsDoc);
  });

  it('omits empty backend fields (host-gw) but never PublicIPv6; writes BackendV6Data for dual stack', () => {
    assert.equal(formatLeaseValue({ ...attrs, backendType: 'host-gw', backendData: undefined }), '{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"host-gw"}');
    assert.equal(formatLeaseValue({ ...attrs, publicIpv6: 'fd00::3', backendV6Data: { VNI: 1, VtepMAC: 'aa:bb:cc:dd:ee:ff' } }),
      '{"PublicIP":"192.168.64.3","PublicIPv6":"fd00::3","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"},"BackendV6Data":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}}');
  });

  it('round-trips', () => {
    const parsed = parseLeaseValue(reservationsDoc);
    assert.ok(parsed.ok);
    assert.equal(formatLeaseValue(parsed.value), reservationsDoc);
  });

  it('reads old leases (no PublicIPv6, even no PublicIP) and keys in any case, as Go does', () => {
    const old = parseLeaseValue('{"PublicIP":"10.0.0.7","BackendType":"udp"}');
    assert.ok(old.ok);
    assert.deepEqual(old.value, { publicIp: '10.0.0.7', publicIpv6: null, backendType: 'udp', backendData: undefined, backendV6Data: undefined });
    const bare = parseLeaseValue('{}');
    assert.ok(bare.ok);
    assert.equal(bare.value.publicIp, '0.0.0.0');
    const folded = parseLeaseValue('{"publicip":"10.0.0.8","publicipv6":"FD00::8","backendtype":"vxlan","backenddata":{"vni":2,"vtepmac":"AA:BB:CC:DD:EE:FF"}}');
    assert.ok(folded.ok);
    assert.equal(folded.value.publicIpv6, 'fd00::8');
    // BackendData is the backend's: kept as written (decoded by src/dataplane/vxlan/lease-data.ts).
    assert.deepEqual(folded.value.backendData, { vni: 2, vtepmac: 'AA:BB:CC:DD:EE:FF' });
  });

  it('rejects values that are not leases, with a reason', () => {
    const cases: [string, RegExp][] = [
      ['not json', /not JSON/],
      ['"10.0.0.1"', /not a JSON object/],
      ['{"PublicIP":"fd00::1"}', /PublicIP "fd00::1" is not an IPv4 address/],
      ['{"PublicIP":null}', /PublicIP null is not a string/],
      ['{"PublicIP":"10.0.0.1","PublicIPv6":"10.0.0.2"}', /PublicIPv6 "10.0.0.2" is not an IPv6 address/],
      ['{"PublicIP":"10.0.0.1","BackendType":5}', /BackendType 5 is not a string/],
    ];
    for (const [value, reason] of cases) {
      const parsed = parseLeaseValue(value);
      assert.ok(!parsed.ok, value);
      assert.match(parsed.reason, reason);
    }
  });

  it('parseStoredLease names the key of a bad value', () => {
    const bad = parseStoredLease({ key: 'subnets/10.1.2.0-24', value: '{', hasTtl: false, expiresAt: null, version: 3 });
    assert.ok(!bad.ok);
    assert.match(bad.reason, /^subnets\/10.1.2.0-24: value is not a flannel lease: not JSON/);
    const good = parseStoredLease({ key: 'subnets/10.1.2.0-24', value: reservationsDoc, hasTtl: true, expiresAt: 5, version: 3 });
    assert.ok(good.ok);
    assert.equal(good.value.attrs.publicIp, '192.168.64.3');
  });
});

describe('subnetsCompatible (flannel\'s reuse rule)', () => {
  const v4 = parseNetworkConfig('{"Network":"10.1.0.0/16","SubnetMin":"10.1.10.0","SubnetMax":"10.1.20.0"}');
  const dual = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/56"}');
  const s = (v4text?: string, v6text?: string) => ({ ipv4: v4text ? parseCidr(v4text) : undefined, ipv6: v6text ? parseCidr(v6text) : undefined });

  it('needs the configured length inside [SubnetMin, SubnetMax] for each enabled family, nothing for a disabled one', () => {
    assert.ok(subnetsCompatible(v4, s('10.1.10.0/24')));
    assert.ok(subnetsCompatible(v4, s('10.1.20.0/24')));
    assert.ok(!subnetsCompatible(v4, s('10.1.9.0/24')), 'below SubnetMin');
    assert.ok(!subnetsCompatible(v4, s('10.1.21.0/24')), 'above SubnetMax');
    assert.ok(!subnetsCompatible(v4, s('10.1.12.0/25')), 'other length');
    assert.ok(!subnetsCompatible(v4, s('10.1.12.0/24', 'fd00:0:0:1::/64')), 'IPv6 part on an IPv4-only network');
    assert.ok(subnetsCompatible(dual, s('10.1.12.0/24', 'fd00:0:0:1::/64')));
    assert.ok(!subnetsCompatible(dual, s('10.1.12.0/24')), 'dual stack needs both');
    assert.ok(!subnetsCompatible(dual, s('10.1.12.0/24', 'fd00::/64')), 'first IPv6 subnet is skipped');
  });
});
