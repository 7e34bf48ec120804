import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalCidr, formatCidr, hostOf, networkOf, parseCidr } from './cidr.ts';
import { isWeftError } from '../errors.ts';

test('IPv4 CIDRs parse, mask and print the way iptables-save prints them', () => {
  assert.equal(formatCidr(networkOf(parseCidr('10.244.1.7/24'))), '10.244.1.0/24');
  assert.equal(formatCidr(hostOf(parseCidr('10.244.1.7/24'))), '10.244.1.7/32');
  assert.equal(canonicalCidr('192.0.2.1'), '192.0.2.1/32');
  assert.equal(formatCidr(networkOf(parseCidr('255.255.255.255/0'))), '0.0.0.0/0');
});

test('IPv6 prints in RFC 5952 form (longest zero run compressed, first on a tie, lowercase)', () => {
  assert.equal(canonicalCidr('FD00:0099:0000:0001:0000:0000:0000:0000/64'), 'fd00:99:0:1::/64');
  assert.equal(canonicalCidr('ff00::/8'), 'ff00::/8');
  assert.equal(canonicalCidr('::'), '::/128');
  assert.equal(canonicalCidr('1:0:0:2:0:0:3:4'), '1::2:0:0:3:4/128');
  assert.equal(canonicalCidr('1:0:2:3:4:5:6:7'), '1:0:2:3:4:5:6:7/128'); // a single zero group is not compressed
  assert.equal(formatCidr(networkOf(parseCidr('fd00:99:0:1::2/48'))), 'fd00:99::/48');
});

test('bad input is a WEFT_INVALID_CONFIG error naming the value', () => {
  for (const bad of ['10.0.0.0/33', '10.0.0/8', 'fd00::/129', 'nonsense', '10.0.0.0/x', '::ffff:1.2.3.4/128']) {
    assert.throws(() => parseCidr(bad), (e: unknown) => isWeftError(e, 'WEFT_INVALID_CONFIG') && e.message.includes(bad), bad);
  }
});
