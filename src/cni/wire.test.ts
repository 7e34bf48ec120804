import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse, MAX_FIELD, MAX_REQUEST_BYTES } from './wire.ts';

test('requests and responses round-trip, including multi-byte text and "=" in values', () => {
  const req = { env: { CNI_COMMAND: 'ADD', CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=wéb' }, stdin: '{"name":"ünï"}' };
  assert.deepEqual(decodeRequest(encodeRequest(req)), req);
  const res = { exitCode: 1, stdout: '{"code":7}\n', stderr: 'log' };
  assert.deepEqual(decodeResponse(encodeResponse(res)), res);
});

test('bad frames give clear errors instead of crashes', () => {
  assert.throws(() => decodeRequest(Buffer.from('HTTP/1.1')), /expected a "WCNI" frame/);
  const good = encodeRequest({ env: { CNI_COMMAND: 'ADD' }, stdin: '{}' });
  assert.throws(() => decodeRequest(good.subarray(0, good.length - 1)), /truncated in stdin/);
  assert.throws(() => decodeRequest(Buffer.concat([good, Buffer.from('x')])), /trailing bytes/);
  const bad = Buffer.concat([Buffer.from('WCNI'), Buffer.from([0, 0, 0, 1, 0, 0, 0, 3]), Buffer.from('abc'), Buffer.from([0, 0, 0, 0])]);
  assert.throws(() => decodeRequest(bad), /"abc" is not KEY=VALUE/);
});

test('no field may claim more than the request bound', () => {
  assert.equal(MAX_FIELD, MAX_REQUEST_BYTES);
  const header = Buffer.from([0x57, 0x43, 0x4e, 0x49, 0, 0, 0, 0]);
  const claim = Buffer.alloc(4);
  claim.writeUInt32BE(MAX_FIELD + 1);
  assert.throws(() => decodeRequest(Buffer.concat([header, claim, Buffer.alloc(MAX_FIELD + 1)])), /stdin claims 1048577 bytes, more than the 1 MiB limit/);
  assert.deepEqual(decodeRequest(encodeRequest({ env: {}, stdin: 'x'.repeat(MAX_FIELD) })).stdin.length, MAX_FIELD);
});
