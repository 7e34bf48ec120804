import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { formatCidr, formatIp, parseIp } from '../net/cidr.ts';
import { allocationOrder, formatRangeSet, parseRangeSets, rangeSetCapacity } from './ranges.ts';

function assertConfigError(raw: unknown, ...fragments: string[]): void {
  assert.throws(() => parseRangeSets(raw), (e: unknown) => {
    assert.ok(isWeftError(e, 'WEFT_INVALID_CONFIG'), `expected WEFT_INVALID_CONFIG, got ${String(e)}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `"${e.message}" should include "${f}"`);
    return true;
  });
}

const order = (raw: unknown, last?: string): string[] =>
  [...allocationOrder(parseRangeSets(raw)[0]!, last === undefined ? undefined : parseIp(last))].map(({ ip }) => formatIp(ip));

describe('parseRangeSets', () => {
  it('fills in host-local defaults for IPv4 and IPv6', () => {
    const [v4, v6] = parseRangeSets([[{ subnet: '10.1.2.0/24' }], [{ subnet: 'fd00::/64' }]]);
    const r4 = v4![0]!;
    assert.equal(formatCidr(r4.subnet), '10.1.2.0/24');
    assert.deepEqual([r4.gateway, r4.rangeStart, r4.rangeEnd].map(formatIp), ['10.1.2.1', '10.1.2.1', '10.1.2.254']);
    const r6 = v6![0]!;
    assert.deepEqual([r6.gateway, r6.rangeStart, r6.rangeEnd].map(formatIp), ['fd00::1', 'fd00::1', 'fd00::ffff:ffff:ffff:ffff']);
    assert.equal(formatRangeSet(v4!), '10.1.2.1-10.1.2.254');
  });

  it('keeps explicit values', () => {
    const r = parseRangeSets([[{ subnet: '10.1.2.0/24', rangeStart: '10.1.2.100', rangeEnd: '10.1.2.200', gateway: '10.1.2.254' }]])[0]![0]!;
    assert.deepEqual([r.gateway, r.rangeStart, r.rangeEnd].map(formatIp), ['10.1.2.254', '10.1.2.100', '10.1.2.200']);
  });

  it('rejects malformed shapes, naming the field', () => {
    assertConfigError(undefined, 'ipam.ranges: must be a non-empty array');
    assertConfigError([], 'ipam.ranges: must be a non-empty array');
    assertConfigError([{ subnet: '10.0.0.0/24' }], 'ipam.ranges[0]: must be a non-empty array of ranges');
    assertConfigError([[]], 'ipam.ranges[0]: must be a non-empty array of ranges');
    assertConfigError([['10.0.0.0/24']], 'ipam.ranges[0][0]: must be an object');
    assertConfigError([[{}]], 'ipam.ranges[0][0].subnet: is required');
    assertConfigError([[{ subnet: 24 }]], 'ipam.ranges[0][0].subnet: is required');
    assertConfigError([[{ subnet: '10.0.0.0/24', gateway: 5 }]], 'ipam.ranges[0][0].gateway: must be an IP address string');
  });

  it('rejects bad subnets: unparseable, too small, host bits', () => {
    assertConfigError([[{ subnet: '10.0.0.0/33' }]], 'ipam.ranges[0][0].subnet', 'prefix 33');
    assertConfigError([[{ subnet: '10.0.0.0/31' }]], 'ipam.ranges[0][0].subnet', '10.0.0.0/31 is too small');
    assertConfigError([[{ subnet: '10.0.0.0/32' }]], 'too small');
    assertConfigError([[{ subnet: 'fd00::/127' }]], 'fd00::/127 is too small');
    assertConfigError([[{ subnet: '10.0.0.5/24' }]], 'ipam.ranges[0][0].subnet: 10.0.0.5/24 has host bits set', '10.0.0.0/24');
    assert.equal(parseRangeSets([[{ subnet: '10.0.0.0/30' }]]).length, 1);
  });

  it('rejects rangeStart, rangeEnd and gateway outside the subnet or on its edges', () => {
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]], 'ipam.ranges[0][0].rangeStart: 10.0.1.5 is not in subnet 10.0.0.0/24');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeEnd: 'fd00::5' }]], 'ipam.ranges[0][0].rangeEnd: fd00::5 is not in subnet');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.300' }]], 'ipam.ranges[0][0].rangeEnd', '"10.0.0.300"');
    assertConfigError([[{ subnet: '10.0.0.0/24', gateway: '10.0.9.1' }]], 'ipam.ranges[0][0].gateway: 10.0.9.1 is not in subnet');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.0' }]], 'rangeStart: 10.0.0.0 is the network address');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.255' }]], 'rangeEnd: 10.0.0.255 is the broadcast address');
    assertConfigError([[{ subnet: '10.0.0.0/24', gateway: '10.0.0.255' }]], 'gateway: 10.0.0.255 is the network or broadcast');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.9', rangeEnd: '10.0.0.8' }]], 'rangeStart: 10.0.0.9 is after rangeEnd 10.0.0.8');
  });

  it('rejects mixed families in a set and overlapping ranges anywhere', () => {
    assertConfigError([[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]], 'ipam.ranges[0][1].subnet: mixes IPv6');
    assertConfigError([[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.0/16' }]], 'ipam.ranges[1][0]', 'overlaps ipam.ranges[0][0]');
    assertConfigError([[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.50' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.50' }]],
      'ipam.ranges[0][1]: range 10.0.0.50-10.0.0.254 overlaps ipam.ranges[0][0] (10.0.0.1-10.0.0.50)');
    // Disjoint ranges of one subnet are fine, and so are two sets of one family.
    assert.equal(parseRangeSets([[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.49' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.50' }]])[0]!.length, 2);
    assert.equal(parseRangeSets([[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.1.0/24' }]]).length, 2);
  });

  it('uses a custom field name', () => {
    assert.throws(() => parseRangeSets([[{}]], 'runtimeConfig.ipRanges'), /runtimeConfig\.ipRanges\[0\]\[0\]\.subnet/);
  });
});

describe('allocationOrder', () => {
  it('starts at rangeStart, skipping the gateway, and never reaches network or broadcast', () => {
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29' }]]), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('continues after the last reserved address and wraps around to it', () => {
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29' }]], '10.0.0.4'), ['10.0.0.5', '10.0.0.6', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29' }]], '10.0.0.6'), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('skips a gateway in the middle of the range', () => {
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29', gateway: '10.0.0.3' }]]), ['10.0.0.1', '10.0.0.2', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('walks from one range of the set into the next, wrapping to the first', () => {
    const set = [[
      { subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.11' },
      { subnet: '10.0.1.0/24', rangeStart: '10.0.1.20', rangeEnd: '10.0.1.21' },
    ]];
    assert.deepEqual(order(set, '10.0.0.11'), ['10.0.1.20', '10.0.1.21', '10.0.0.10', '10.0.0.11']);
    assert.deepEqual(order(set, '10.0.1.20'), ['10.0.1.21', '10.0.0.10', '10.0.0.11', '10.0.1.20']);
  });

  it('restarts at the first rangeStart when the last reservation is outside every range', () => {
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29' }]], '192.168.0.1'), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    assert.deepEqual(order([[{ subnet: '10.0.0.0/29' }]], 'fd00::1')[0], '10.0.0.2');
  });

  it('walks IPv6 ranges up to the last address', () => {
    assert.deepEqual(order([[{ subnet: 'fd00::/126' }]]), ['fd00::2', 'fd00::3']);
  });

  it('counts capacity without gateways', () => {
    assert.equal(rangeSetCapacity(parseRangeSets([[{ subnet: '10.0.0.0/29' }]])[0]!), 5n);
    assert.equal(rangeSetCapacity(parseRangeSets([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.109' }]])[0]!), 10n);
    assert.equal(rangeSetCapacity(parseRangeSets([[{ subnet: 'fd00::/64' }]])[0]!), (1n << 64n) - 2n);
  });
});
