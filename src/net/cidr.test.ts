import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import {
  addToIp, broadcastAddress, cidrContains, cidrContainsCidr, cidrSize, cidrsOverlap, compareIp, formatAddressWithPrefix,
  formatCidr, formatIp, hasHostBits, lastAddress, maskToNetwork, networkAddress, parseAddressWithPrefix, parseCidr,
  parseIp, prefixMask, tryParseIp,
} from './cidr.ts';

const roundTrip = (text: string): string => formatIp(parseIp(text));

function assertRejected(fn: () => unknown, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isWeftError(e, 'WEFT_INVALID_CONFIG'), `expected WEFT_INVALID_CONFIG, got ${String(e)}`);
    for (const f of fragments) assert.match(e.message, new RegExp(f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

describe('parseIp / formatIp, IPv4', () => {
  it('parses dotted quads to their 32-bit value', () => {
    assert.deepEqual(parseIp('10.1.2.3'), { family: 4, value: 0x0a010203n });
    assert.deepEqual(parseIp('0.0.0.0'), { family: 4, value: 0n });
    assert.deepEqual(parseIp('255.255.255.255'), { family: 4, value: 0xffffffffn });
  });

  it('formats back to the same text', () => {
    for (const text of ['10.1.2.3', '0.0.0.0', '255.255.255.255', '192.168.100.1']) assert.equal(roundTrip(text), text);
  });

  it('rejects malformed text, naming it and the reason', () => {
    assertRejected(() => parseIp('256.1.1.1'), '"256.1.1.1"', 'out of range');
    assertRejected(() => parseIp('01.2.3.4'), '"01.2.3.4"', 'leading zeros');
    assertRejected(() => parseIp('1.2.3'), '4 dot-separated octets');
    for (const bad of ['1.2.3.4.5', '', ' 1.2.3.4', '1.2.3.4 ', 'a.b.c.d', '1.2.3.-1', '1..2.3', '1.2.3.4/24', '0x1.2.3.4']) {
      assert.equal(tryParseIp(bad), undefined, bad);
      assertRejected(() => parseIp(bad), `"${bad}"`);
    }
  });
});

describe('parseIp / formatIp, IPv6', () => {
  it('parses compressed, full and embedded-IPv4 forms', () => {
    assert.deepEqual(parseIp('::'), { family: 6, value: 0n });
    assert.deepEqual(parseIp('::1'), { family: 6, value: 1n });
    assert.equal(parseIp('fd00::').value, 0xfd00n << 112n);
    assert.equal(parseIp('1:2:3:4:5:6:7:8').value, 0x00010002000300040005000600070008n);
    assert.equal(parseIp('1:2:3:4:5:6:7::').value, 0x00010002000300040005000600070000n);
    assert.equal(parseIp('::ffff:1.2.3.4').value, 0xffff01020304n);
    assert.equal(parseIp('1:2:3:4:5:6:1.2.3.4').value, 0x00010002000300040005000601020304n);
    assert.equal(parseIp('FD00::ABCD').value, parseIp('fd00::abcd').value);
  });

  it('formats in RFC 5952 canonical form, as Go net.IP.String does', () => {
    const cases: [string, string][] = [
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not compressed
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest run wins
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first of equal runs wins
      ['0:0:0:0:0:0:0:0', '::'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['1:0:0:0:0:0:0:0', '1::'],
      ['FD00:0:0:0:0:0:0:ABCD', 'fd00::abcd'],
      ['fd00:0:0:1::', 'fd00:0:0:1::'],
      ['0:1:0:1:0:1:0:1', '0:1:0:1:0:1:0:1'],
      ['::ffff:1.2.3.4', '::ffff:102:304'],
    ];
    for (const [input, canonical] of cases) assert.equal(roundTrip(input), canonical, input);
  });

  it('rejects malformed text', () => {
    for (const bad of ['1::2::3', ':::', ':1::', '1::2:', '12345::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', 'fe80::1%eth0',
      'g::1', '::1.2.3', '::1.2.3.4:5', '1:2:3:4:5:6:7:1.2.3.4', '::256.1.1.1', ':', '1:2:3:4:5:6:7:8::']) {
      assert.equal(tryParseIp(bad), undefined, bad);
      assertRejected(() => parseIp(bad), `"${bad}"`);
    }
  });
});

describe('CIDR parsing', () => {
  it('parses networks and addresses with prefix', () => {
    assert.deepEqual(parseCidr('10.0.0.0/8'), { family: 4, network: 0x0a000000n, prefix: 8 });
    assert.deepEqual(parseCidr('0.0.0.0/0'), { family: 4, network: 0n, prefix: 0 });
    assert.deepEqual(parseCidr('fd00::/64'), { family: 6, network: 0xfd00n << 112n, prefix: 64 });
    assert.deepEqual(parseAddressWithPrefix('10.1.2.3/24'), { family: 4, address: 0x0a010203n, prefix: 24 });
    assert.equal(formatCidr(parseCidr('2001:db8:0:0::/64')), '2001:db8::/64');
    assert.equal(formatAddressWithPrefix(parseAddressWithPrefix('fd00::0001/64')), 'fd00::1/64');
  });

  it('rejects host bits in a network, naming the network it meant', () => {
    assertRejected(() => parseCidr('10.1.2.3/24'), '"10.1.2.3/24" has host bits set', '10.1.2.0/24');
    assertRejected(() => parseCidr('fd00::1/64'), 'fd00::/64');
  });

  it('rejects bad prefixes and missing parts', () => {
    assertRejected(() => parseCidr('10.0.0.0/33'), '"10.0.0.0/33"', 'prefix 33 is longer than 32');
    assertRejected(() => parseCidr('fd00::/129'), 'prefix 129 is longer than 128');
    assertRejected(() => parseCidr('10.0.0.0'), 'CIDR notation');
    for (const bad of ['10.0.0.0/', '10.0.0.0/024', '10.0.0.0/-1', '10.0.0.0/8/8', '/24', '10.0.0/24', '10.0.0.0/ 8']) {
      assertRejected(() => parseCidr(bad), `"${bad}"`);
    }
  });
});

describe('CIDR math', () => {
  it('masks an interface address to its network', () => {
    const a = parseAddressWithPrefix('10.16.85.1/24');
    assert.ok(hasHostBits(a));
    assert.equal(formatCidr(maskToNetwork(a)), '10.16.85.0/24');
    assert.equal(formatCidr(maskToNetwork(parseAddressWithPrefix('fd00::12:3456/112'))), 'fd00::12:0/112');
    assert.ok(!hasHostBits(parseAddressWithPrefix('10.16.85.0/24')));
    assert.equal(formatCidr(maskToNetwork(parseAddressWithPrefix('1.2.3.4/0'))), '0.0.0.0/0');
  });

  it('computes masks, sizes, network, last and broadcast addresses', () => {
    assert.equal(prefixMask(4, 24), 0xffffff00n);
    assert.equal(prefixMask(4, 0), 0n);
    assert.equal(prefixMask(6, 128), (1n << 128n) - 1n);
    const v4 = parseCidr('10.1.2.0/24');
    assert.equal(cidrSize(v4), 256n);
    assert.equal(cidrSize(parseCidr('::/0')), 1n << 128n);
    assert.equal(formatIp(networkAddress(v4)), '10.1.2.0');
    assert.equal(formatIp(lastAddress(v4)), '10.1.2.255');
    assert.equal(formatIp(broadcastAddress(v4)!), '10.1.2.255');
    assert.equal(broadcastAddress(parseCidr('10.1.2.0/31')), undefined);
    assert.equal(broadcastAddress(parseCidr('fd00::/64')), undefined);
    assert.equal(formatIp(lastAddress(parseCidr('fd00::/64'))), 'fd00::ffff:ffff:ffff:ffff');
  });

  it('tests containment and overlap within one family only', () => {
    const net = parseCidr('10.1.0.0/16');
    assert.ok(cidrContains(net, parseIp('10.1.255.255')));
    assert.ok(!cidrContains(net, parseIp('10.2.0.0')));
    assert.ok(!cidrContains(parseCidr('::/0'), parseIp('10.1.0.1')));
    assert.ok(cidrContainsCidr(net, parseCidr('10.1.2.0/24')));
    assert.ok(!cidrContainsCidr(parseCidr('10.1.2.0/24'), net));
    assert.ok(cidrsOverlap(parseCidr('10.1.2.0/24'), net));
    assert.ok(cidrsOverlap(net, net));
    assert.ok(!cidrsOverlap(parseCidr('10.1.2.0/24'), parseCidr('10.1.3.0/24')));
    assert.ok(!cidrsOverlap(parseCidr('0.0.0.0/0'), parseCidr('::/0')));
  });

  it('adds offsets and refuses to leave the family', () => {
    assert.equal(formatIp(addToIp(parseIp('10.1.2.255'), 1)), '10.1.3.0');
    assert.equal(formatIp(addToIp(parseIp('10.1.3.0'), -1n)), '10.1.2.255');
    assert.equal(formatIp(addToIp(parseIp('fd00::ffff'), 1)), 'fd00::1:0');
    assert.throws(() => addToIp(parseIp('255.255.255.255'), 1), RangeError);
    assert.throws(() => addToIp(parseIp('0.0.0.0'), -1), RangeError);
    assert.throws(() => addToIp(parseIp('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), 1), RangeError);
  });

  it('orders addresses by family, then value', () => {
    const sorted = ['fd00::1', '10.0.0.10', '10.0.0.9', '::1'].map(parseIp).sort(compareIp).map(formatIp);
    assert.deepEqual(sorted, ['10.0.0.9', '10.0.0.10', '::1', 'fd00::1']);
  });
});
