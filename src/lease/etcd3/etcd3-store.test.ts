import { test } from 'node:test';
import assert from 'node:assert/strict';
import { joinKey, normalizePrefix } from './etcd3-store.ts';
import { decodeTtl, encodeTtlReply } from './lease-ttl.ts';

test('prefix and keys join like Go path.Join (a trailing slash is harmless)', () => {
  assert.equal(normalizePrefix('/coreos.com/network'), '/coreos.com/network');
  assert.equal(normalizePrefix('/coreos.com/network/'), '/coreos.com/network');
  assert.equal(normalizePrefix('/coreos.com//network///'), '/coreos.com/network');
  assert.equal(normalizePrefix('coreos.com/network'), 'coreos.com/network');
  assert.equal(normalizePrefix('/'), '/');
  assert.equal(normalizePrefix(''), '');
  assert.equal(joinKey('/coreos.com/network', 'config'), '/coreos.com/network/config');
  assert.equal(joinKey('/', 'subnets/10.5.52.0-24'), '/subnets/10.5.52.0-24');
  assert.equal(joinKey('', 'config'), 'config');
});

test('LeaseTimeToLive replies decode, including TTL -1 (unknown lease) and 63-bit lease ids', () => {
  assert.equal(decodeTtl(encodeTtlReply(7587853312340000001n, 86_399n, 86_400n)), 86_399);
  assert.equal(decodeTtl(encodeTtlReply(1n, -1n, 0n)), -1);
  assert.equal(decodeTtl(encodeTtlReply(1n, 0n, 5n)), 0);
});

test('malformed LeaseTimeToLive replies are errors, not zeros', () => {
  const good = encodeTtlReply(1n, 60n, 60n);
  assert.throws(() => decodeTtl(good.subarray(0, 3)), /short/);
  assert.throws(() => decodeTtl(good.subarray(0, good.length - 1)), /truncated/);
  const compressed = Buffer.from(good);
  compressed[0] = 1;
  assert.throws(() => decodeTtl(compressed), /compressed/);
});
