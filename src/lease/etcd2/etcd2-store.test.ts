import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../../errors.ts';
import { Etcd2LeaseStore } from './etcd2-store.ts';

// No request is made: these check how keys API replies become events.
const store = new Etcd2LeaseStore({ endpoints: ['http://127.0.0.1:2379'], prefix: '/coreos.com/network/' });
after(() => store.close());

const reply = (status: number, body: unknown) => ({ status, index: 40, text: JSON.stringify(body) });
const node = (key: string, extra: Record<string, unknown> = {}) => ({ key: `/coreos.com/network/${key}`, modifiedIndex: 41, createdIndex: 30, ...extra });

test('set/create/update/compareAndSwap are puts with the node expiry; no expiration is a reservation', () => {
  for (const action of ['set', 'create', 'update', 'compareAndSwap']) {
    const r = store.decodeWatchReply(reply(200, { action, node: node('subnets/10.5.1.0-24', { value: '{"PublicIP":"1.2.3.4"}', expiration: '2030-01-02T03:04:05.123456789Z', ttl: 5 }) }));
    assert.equal(r.next, 42);
    assert.deepEqual(r.event, {
      type: 'put', revision: 41,
      lease: { key: 'subnets/10.5.1.0-24', value: '{"PublicIP":"1.2.3.4"}', hasTtl: true, expiresAt: Date.UTC(2030, 0, 2, 3, 4, 5, 123), version: 41 },
    });
  }
  const r = store.decodeWatchReply(reply(200, { action: 'set', node: node('subnets/10.5.1.0-24', { value: 'v' }) }));
  assert.equal(r.event?.type === 'put' && r.event.lease.expiresAt, null);
  assert.equal(r.event?.type === 'put' && r.event.lease.hasTtl, false);
});

test('delete/expire/compareAndDelete are deletes', () => {
  for (const action of ['delete', 'expire', 'compareAndDelete']) {
    const r = store.decodeWatchReply(reply(200, { action, node: node('subnets/10.244.1.0-24&2001:cafe:42:1::-64') }));
    assert.deepEqual(r.event, { type: 'delete', key: 'subnets/10.244.1.0-24&2001:cafe:42:1::-64', revision: 41 });
  }
});

test('event index cleared (401) and a removed subnets directory ask for a re-list', () => {
  const cleared = store.decodeWatchReply(reply(400, { errorCode: 401, message: 'The event in requested index is outdated and cleared', cause: 'the requested history has been cleared [1008/4]', index: 2007 }));
  assert.match(cleared.reset ?? '', /cleared/);
  const dir = store.decodeWatchReply(reply(200, { action: 'delete', node: node('subnets', { dir: true }) }));
  assert.match(dir.reset ?? '', /removed/);
  const mkdir = store.decodeWatchReply(reply(200, { action: 'set', node: node('subnets/x', { dir: true }) }));
  assert.deepEqual(mkdir, { next: 42, event: null });
});

test('malformed replies are WEFT_DECODE; other API errors are not silently events', () => {
  assert.throws(() => store.decodeWatchReply({ status: 200, index: 1, text: 'not json' }), (e: unknown) => isWeftError(e, 'WEFT_DECODE'));
  assert.throws(() => store.decodeWatchReply(reply(200, { action: 'set', node: { key: 3 } })), (e: unknown) => isWeftError(e, 'WEFT_DECODE'));
  assert.throws(() => store.decodeWatchReply(reply(200, { action: 'set', node: { key: '/elsewhere/x', modifiedIndex: 3 } })), (e: unknown) => isWeftError(e, 'WEFT_DECODE'));
  assert.throws(() => store.decodeWatchReply(reply(500, { errorCode: 300, message: 'Raft Internal Error' })), (e: unknown) => isWeftError(e, 'WEFT_NOT_READY') && /Raft Internal Error/.test(e.message));
  assert.throws(() => store.decodeWatchReply({ status: 404, index: null, text: '404 page not found\n' }), (e: unknown) => isWeftError(e, 'WEFT_NOT_READY') && /--enable-v2/.test(e.message));
});
