import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endianness } from 'node:os';
import { isWeftError } from '../errors.ts';
import {
  decodeNetwork, decodePeerKey, decodePod, decodeU32, encodeIfindex, encodeNetwork, encodePeerKey, encodePod, encodeU32,
  formatMac, parseMac, STAT_NAMES, sumPerCpu,
} from './maps.ts';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
// The kernel stores integers in the host's order; these tests spell the bytes for the host they run on.
const le = endianness() === 'LE';
const u32hex = (n: number): string => { const b = Buffer.alloc(4); if (le) b.writeUInt32LE(n); else b.writeUInt32BE(n); return b.toString('hex'); };

test('u32 keys are in host order and round-trip', () => {
  assert.equal(hex(encodeU32(0x01020304)), u32hex(0x01020304));
  assert.equal(decodeU32(encodeU32(4000000000)), 4000000000);
  assert.equal(decodeU32(encodeIfindex(7)), 7);
});

test('interface indexes and u32s out of range are refused', () => {
  for (const bad of [0, -1, 1.5, 0x80000000, NaN]) {
    assert.throws(() => encodeIfindex(bad), (e) => isWeftError(e, 'WEFT_FASTPATH') && /not an interface index/.test(e.message));
  }
  assert.throws(() => encodeU32(2 ** 32), /not an unsigned 32-bit integer/);
  assert.throws(() => decodeU32(new Uint8Array(3)), /3 bytes, expected 4/);
});

test('a pod value is the address in network order, then the pod MAC, then the host MAC', () => {
  const bytes = encodePod({ ipv4: '10.244.1.2', podMac: 'AA:bb:cc:00:11:22', hostMac: '02:00:00:00:00:01' });
  assert.equal(hex(bytes), '0af40102' + 'aabbcc001122' + '020000000001');
  assert.deepEqual(decodePod(bytes), { ipv4: '10.244.1.2', podMac: 'aa:bb:cc:00:11:22', hostMac: '02:00:00:00:00:01' });
});

test('a pod value refuses IPv6, bad addresses and bad MACs', () => {
  assert.throws(() => encodePod({ ipv4: 'fd00::1', podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02' }), /IPv4 only/);
  assert.throws(() => encodePod({ ipv4: '10.1.2.300', podMac: '02:00:00:00:00:01', hostMac: '02:00:00:00:00:02' }), /not a valid IP address/);
  assert.throws(() => encodePod({ ipv4: '10.1.2.3', podMac: '02:00:00:00:01', hostMac: '02:00:00:00:00:02' }), /not a MAC address/);
  assert.throws(() => encodePod({ ipv4: '10.1.2.3', podMac: '02:00:00:00:00:01', hostMac: '02-00-00-00-00-02' }), /not a MAC address/);
  assert.throws(() => decodePod(new Uint8Array(12)), /12 bytes, expected 16/);
});

test('MACs round-trip in lower case', () => {
  assert.equal(formatMac(parseMac('DE:AD:be:ef:00:0A')), 'de:ad:be:ef:00:0a');
});

test('a peer key is the prefix length in host order and the network in network order', () => {
  const key = encodePeerKey('10.244.2.0/24');
  assert.equal(hex(key), u32hex(24) + '0af40200');
  assert.equal(decodePeerKey(key), '10.244.2.0/24');
  assert.equal(decodePeerKey(encodePeerKey('192.168.7.9/32')), '192.168.7.9/32');
  assert.throws(() => encodePeerKey('10.244.2.1/24'), (e) => isWeftError(e, 'WEFT_FASTPATH') && /host bits set/.test(e.message));
  assert.throws(() => encodePeerKey('fd00::/64'), /IPv4 only/);
  assert.throws(() => encodePeerKey('10.244.2.0'), /CIDR notation/);
  const badPrefix = new Uint8Array(8);
  badPrefix.set(encodeU32(33), 0);
  assert.throws(() => decodePeerKey(badPrefix), /prefix length 33/);
});

test('the network is its address and mask in network order; /0 is refused', () => {
  assert.equal(hex(encodeNetwork('10.244.0.0/16')), '0af40000' + 'ffff0000');
  assert.equal(hex(encodeNetwork('10.0.0.0/8')), '0a000000' + 'ff000000');
  assert.equal(decodeNetwork(encodeNetwork('10.244.0.0/16')), '10.244.0.0/16');
  assert.equal(decodeNetwork(encodeNetwork('10.1.2.3/32')), '10.1.2.3/32');
  assert.equal(decodeNetwork(encodeNetwork('128.0.0.0/1')), '128.0.0.0/1');
  assert.equal(decodeNetwork(new Uint8Array(8)), undefined);
  assert.throws(() => encodeNetwork('0.0.0.0/0'), /a \/0 would put every address/);
  assert.throws(() => encodeNetwork('10.244.0.0/33'), /longer than 32/);
});

test('per-CPU counters are summed over every CPU slot', () => {
  const cpus = 3;
  const bytes = new Uint8Array(cpus * 8);
  const v = new DataView(bytes.buffer);
  [5n, 0n, 2n ** 40n].forEach((n, i) => v.setBigUint64(i * 8, n, le));
  assert.equal(sumPerCpu(bytes, cpus), 5 + 2 ** 40);
  assert.throws(() => sumPerCpu(bytes, 4), /expected 32/);
});

test('the stat names follow the C enum', () => {
  assert.deepEqual([...STAT_NAMES], ['rx_redirect', 'tx_local', 'tx_remote', 'tx_remote_neigh', 'pass_nat', 'pass_not_pod', 'pass_other']);
});
