import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshHandshakeError } from './errors.ts';
import { agree, decodeHello, decodeIdentity, decodeRefuse, encodeHello, encodeRefuse, helloVersions, identityProblem } from './hello.ts';

const hello = { min: 1, max: 2, password: true, port: 6783, meshId: 'ab'.repeat(32), description: '10.32.0.0/12 in /26 blocks' };
const reason = (e: unknown): string | undefined => (e instanceof MeshHandshakeError ? e.reason : undefined);

test('a hello round-trips, and bytes after the known fields are ignored (room for later versions)', () => {
  const body = encodeHello(hello);
  assert.ok(body.subarray(0, 9).equals(Buffer.from('weft-mesh')));
  assert.deepEqual(decodeHello(body, 'p'), hello);
  assert.deepEqual(decodeHello(Buffer.concat([body, Buffer.from('future')]), 'p'), hello);
});

test('the version range is readable even when the rest of a hello is not', () => {
  const future = Buffer.concat([Buffer.from('weft-mesh'), Buffer.from([0, 5, 0, 9]), Buffer.from('anything')]);
  assert.deepEqual(helloVersions(future, 'p'), { min: 5, max: 9 });
  assert.throws(() => decodeHello(future, 'p'), (e) => reason(e) === 'garbage');
  assert.throws(() => helloVersions(Buffer.from('weave\x01\x02'), 'p'), /not a weft mesh peer/);
  assert.throws(() => helloVersions(Buffer.concat([Buffer.from('weft-mesh'), Buffer.from([0, 3, 0, 2])]), 'p'), /invalid protocol range \[3,2\]/);
});

test('agree: version first, then mesh, then password; the highest common version wins', () => {
  const ours = { min: 1, max: 3, password: true, meshId: hello.meshId, description: 'ours' };
  assert.equal(agree(ours, hello, 'p'), 2);
  assert.throws(() => agree(ours, { ...hello, min: 4, max: 5, meshId: 'cd' }, 'p'), (e) => reason(e) === 'version');
  assert.throws(() => agree(ours, { ...hello, meshId: 'cd', password: false }, 'p'), (e) => reason(e) === 'mesh');
  assert.throws(() => agree(ours, { ...hello, password: false }, 'p'), { message: /^password specified, but peer p requested an unencrypted connection/ });
});

test('a refusal from the peer keeps a known reason and makes its text safe to log', () => {
  const e = decodeRefuse(encodeRefuse('auth', 'wrong\npassword\u0007'), '10.0.0.2:6783');
  assert.equal(e.reason, 'auth');
  assert.equal(e.message, 'peer 10.0.0.2:6783 refused the connection: wrong?password?');
  assert.equal(decodeRefuse(Buffer.from('{"reason":"rm -rf","message":1}'), 'p').reason, 'closed');
  assert.match(decodeRefuse(Buffer.from('\xff{'), 'p').message, /unreadable/);
});

test('identity validation', () => {
  const good = { name: 'aa:bb:cc:dd:ee:ff', uid: '0123456789abcdef', nickname: 'node-1', port: 6783 };
  assert.equal(identityProblem(good), undefined);
  assert.equal(identityProblem({ ...good, name: 'my-node.example_1' }), undefined);
  for (const bad of [
    { ...good, name: 'AA:BB:CC:DD:EE:FF:00' }, { ...good, name: '' }, { ...good, name: 'x'.repeat(64) }, { ...good, name: 'a/b' },
    { ...good, uid: '0123456789ABCDEF0' }, { ...good, uid: 12 }, { ...good, nickname: 'tab\there' }, { ...good, nickname: 'n'.repeat(64) },
    { ...good, port: 0 }, { ...good, port: 65536 }, { ...good, port: 1.5 }, null, 'x',
  ]) {
    assert.ok(identityProblem(bad), JSON.stringify(bad));
  }
  assert.deepEqual(decodeIdentity(Buffer.from(JSON.stringify({ ...good, extra: 1 })), 'p'), good);
  assert.throws(() => decodeIdentity(Buffer.from('{'), 'p'), (e) => reason(e) === 'identity');
});
