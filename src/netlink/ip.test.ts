import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { formatIp, formatMac, networkOf, parseCidr, parseIp, parseMac } from './ip.ts';

test('IPv4 addresses round-trip through bytes', () => {
  const ip = parseIp('10.1.2.3');
  assert.equal(ip.family, 4);
  assert.deepEqual([...ip.bytes], [10, 1, 2, 3]);
  assert.equal(formatIp(ip.bytes), '10.1.2.3');
});

test('IPv6 addresses parse to the right bytes', () => {
  assert.equal(parseIp('fd00::1').bytes.toString('hex'), 'fd000000000000000000000000000001');
  assert.equal(parseIp('::').bytes.toString('hex'), '0'.repeat(32));
  assert.equal(parseIp('1::').bytes.toString('hex'), '0001' + '0'.repeat(28));
  assert.equal(parseIp('::ffff:10.1.2.3').bytes.toString('hex'), '00000000000000000000ffff0a010203');
  assert.equal(parseIp('::10.1.2.3').bytes.toString('hex'), '0000000000000000000000000a010203');
  assert.equal(parseIp('1:2:3:4:5:6:10.1.2.3').bytes.toString('hex'), '000100020003000400050006' + '0a010203');
  assert.equal(parseIp('2001:DB8:0:0:8:800:200C:417A').bytes.toString('hex'), '20010db80000000000080800200c417a');
});

test('IPv6 formatting follows RFC 5952 (as iproute2 prints)', () => {
  const canon = (s: string): string => formatIp(parseIp(s).bytes);
  assert.equal(canon('fd00:0:0:0:0:0:0:1'), 'fd00::1');
  assert.equal(canon('0:0:0:0:0:0:0:0'), '::');
  assert.equal(canon('::1'), '::1');
  assert.equal(canon('1:0:0:1:0:0:0:1'), '1:0:0:1::1'); // the longest run
  assert.equal(canon('1:0:0:2:3:0:0:4'), '1::2:3:0:0:4'); // the first of equal runs
  assert.equal(canon('1:2:3:4:5:6:7:0'), '1:2:3:4:5:6:7:0'); // a single zero stays
  assert.equal(canon('2001:0DB8::0001'), '2001:db8::1');
  assert.equal(canon('::ffff:1.2.3.4'), '::ffff:1.2.3.4');
  assert.equal(canon('fe80::'), 'fe80::');
});

test('CIDRs keep host bits; a bare address is a host prefix', () => {
  const c = parseCidr('10.1.2.3/24');
  assert.deepEqual([c.family, c.prefixLen, c.bytes.toString('hex')], [4, 24, '0a010203']);
  assert.equal(parseCidr('10.1.2.3').prefixLen, 32);
  assert.equal(parseCidr('fd00::1').prefixLen, 128);
  assert.equal(parseCidr('::/0').prefixLen, 0);
  assert.equal(formatIp(networkOf(parseCidr('10.1.2.3/20'))), '10.1.0.0');
  assert.equal(formatIp(networkOf(parseCidr('fd00:1:2:3::9/50'))), 'fd00:1:2::');
});

test('invalid addresses, prefixes and MACs are WEFT_INVALID_CONFIG errors quoting the value', () => {
  for (const bad of ['1.2.3', '10.0.0.256', 'x', '', 'fe80::1%eth0', '1::2::3']) {
    assert.throws(() => parseIp(bad), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && (e as Error).message.includes(JSON.stringify(bad)), bad);
  }
  for (const bad of ['10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/', 'fd00::/129', '10.0.0.0/2x']) {
    assert.throws(() => parseCidr(bad), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG'), bad);
  }
  for (const bad of ['aa:bb:cc:dd:ee', 'aa-bb-cc-dd-ee-ff', 'gg:bb:cc:dd:ee:ff']) {
    assert.throws(() => parseMac(bad), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG'), bad);
  }
});

test('MAC addresses round-trip, lower-cased', () => {
  assert.deepEqual([...parseMac('02:AB:cd:00:01:ff')], [2, 0xab, 0xcd, 0, 1, 0xff]);
  assert.equal(formatMac(parseMac('02:AB:cd:00:01:ff')), '02:ab:cd:00:01:ff');
  assert.equal(formatMac(Buffer.alloc(6)), '00:00:00:00:00:00');
});
